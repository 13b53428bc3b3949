"""Models in .qcm files: the graph structure, and the tensors as file tensors or packed.

Schema (docs/GRAPH.md): ``qcore.graph.schema_version`` (int) and the JSON document of
:meth:`Graph.structure_json`, in one of three places:

- ``qcore.graph.structure`` (string: the document);
- ``qcore.graph.structure_zlib`` (string: base64 of the zlib-compressed document);
- schema version 2: the first ``qcore.graph.pack_structure_bytes`` bytes of the file
  tensor ``qcore.graph.pack`` (the zlib stream, not base64), followed in that tensor by
  the small initializers listed under ``"packed"`` in the document (what
  :func:`save_graph` writes by default).

Every other initializer is one file tensor under its value name.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import zlib
from typing import Any

import numpy as np

from ..errors import ModelError
from ..reference.tensor import QuantizedTensor
from .ir import GRAPH_SCHEMA_VERSION, Graph

SCHEMA_KEY = "qcore.graph.schema_version"
STRUCTURE_KEY = "qcore.graph.structure"
STRUCTURE_ZLIB_KEY = "qcore.graph.structure_zlib"
PACK_STRUCTURE_KEY = "qcore.graph.pack_structure_bytes"
#: Name of the file tensor that holds the packed structure and initializers.
PACK_TENSOR = "qcore.graph.pack"
#: Default of ``pack_limit``: initializers stored in at most this many bytes (data,
#: scales and zero points together) are packed.
PACK_LIMIT = 65536
#: The graph schema version of files with a pack (version 1 files have none).
PACK_SCHEMA_VERSION = 2


def compress_structure(text: str) -> str:
    """base64 (standard alphabet, padded) of the zlib stream (level 9) of UTF-8 ``text``."""
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def decompress_structure(value: str) -> str:
    """Inverse of :func:`compress_structure`.

    Raises
    ------
    ModelError
        ``value`` is not base64 of a zlib stream of UTF-8 text.
    """
    try:
        return zlib.decompress(base64.b64decode(value.encode("ascii"), validate=True)).decode("utf-8")
    except (binascii.Error, zlib.error, UnicodeError, ValueError) as exc:
        raise ModelError(f"{STRUCTURE_ZLIB_KEY} is not base64 zlib-compressed UTF-8 text: {exc}") from None


def graph_metadata(graph: Graph) -> dict[str, Any]:
    """The metadata entries that describe ``graph`` without a pack (the structure compressed)."""
    return {SCHEMA_KEY: GRAPH_SCHEMA_VERSION, STRUCTURE_ZLIB_KEY: compress_structure(graph.structure_json())}


# -- packed initializers -------------------------------------------------------------------

def _stored_parts(tensor: Any) -> list[tuple[np.ndarray, int]] | None:
    """The byte runs of a packed initializer with their alignments, in pack order, or None
    for a tensor that cannot be packed. Quantized: data, scale, zero point (omitted when
    all 0); scales as float16 when float16 holds them exactly (the rules of .qcm version 2)."""
    from ..format import layout as L  # noqa: PLC0415

    if isinstance(tensor, QuantizedTensor):
        etype = L.ELEMENT_TYPES_BY_NAME[tensor.dtype]
        if etype.packed:
            packed = tensor.packed  # a tensor read from a file: its bytes, padding bits cleared
            data = np.concatenate(L.packed_chunks(packed, math.prod(tensor.shape), etype.bits)) \
                if packed is not None else L.pack_subbyte(np.ascontiguousarray(tensor.data), etype.bits)
        else:
            data = np.ascontiguousarray(tensor.data, etype.numpy)
        scale = np.asarray(tensor.scale, np.float32)
        with np.errstate(over="ignore"):
            half = scale.astype(np.float16)
        if np.array_equal(half.astype(np.float32), scale):
            scale = half
        parts = [(data, data.dtype.itemsize), (np.ascontiguousarray(scale, scale.dtype.newbyteorder("<")),
                                               scale.dtype.itemsize)]
        if np.asarray(tensor.zero_point).any():
            zp = np.ascontiguousarray(tensor.zero_point, L.ELEMENT_TYPES[etype.zero_point_code].numpy)
            parts.append((zp, zp.dtype.itemsize))
        return parts
    etype = L.PLAIN_TYPES.get(np.asarray(tensor).dtype.name)
    if etype is None:
        return None
    data = np.ascontiguousarray(tensor, etype.numpy)
    return [(data, data.dtype.itemsize)]


def _entry(name: str, tensor: Any, parts: list[tuple[np.ndarray, int]]) -> list[Any]:
    """The document's description of one packed initializer (docs/GRAPH.md)."""
    if not isinstance(tensor, QuantizedTensor):
        return [name, parts[0][0].dtype.name, [int(d) for d in tensor.shape]]
    return [name, tensor.dtype, [int(d) for d in tensor.shape],
            [tensor.axis, int(tensor.block_size), tensor.convention, parts[1][0].dtype.name, len(parts) == 3,
             [int(d) for d in np.shape(tensor.scale)] if tensor.axis is None else None]]


def _align(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment


def save_graph(graph: Graph, path: str | os.PathLike, metadata: dict[str, Any] | None = None, *,
               pack_limit: int = PACK_LIMIT) -> None:
    """Write ``graph`` to a .qcm file (atomic, via :func:`qcore.format.save_tensors`).

    Parameters
    ----------
    graph : Graph
    path : str or os.PathLike
    metadata : dict, optional
        Extra metadata entries.
    pack_limit : int
        Initializers stored in at most this many bytes go into the pack tensor
        ``qcore.graph.pack`` together with the compressed structure (graph schema 2);
        larger ones are file tensors of their own. ``0``: no pack (graph schema 1, the
        structure in ``qcore.graph.structure_zlib``).

    Notes
    -----
    A file record costs 132 bytes plus its name and up to 63 bytes of alignment; packing
    the small tensors of a model (biases, norms, small layers) saves that per tensor and
    the base64 inflation of the structure. Packed arrays are still views into the map.
    """
    from .. import format as qcm  # noqa: PLC0415

    graph.validate()
    if pack_limit < 0:
        raise ModelError(f"pack_limit must be >= 0, got {pack_limit}")
    if PACK_TENSOR in graph.initializers:
        raise ModelError(f"the initializer name {PACK_TENSOR!r} is reserved for the pack")
    meta = dict(metadata or {})
    # .qcm has no boolean element type: bool constants travel as uint8 0/1 and are listed
    # in the structure's "bool_initializers" (docs/GRAPH.md)
    tensors = {name: (value.astype(np.uint8) if isinstance(value, np.ndarray) and value.dtype == np.bool_ else value)
               for name, value in graph.initializers.items()}
    if pack_limit == 0:
        meta.update(graph_metadata(graph))
        qcm.save_tensors(path, tensors, metadata=meta)
        return

    doc = json.loads(graph.structure_json())
    packed: list[list[Any]] = []
    runs: list[tuple[np.ndarray, int]] = []
    for name in sorted(tensors):
        parts = _stored_parts(tensors[name])
        if parts is None or sum(p.nbytes for p, _ in parts) > pack_limit:
            continue
        packed.append(_entry(name, tensors.pop(name), parts))
        runs += parts
    doc["schema_version"] = PACK_SCHEMA_VERSION
    doc["initializers"] = sorted(tensors)
    doc["packed"] = packed
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    head = np.frombuffer(zlib.compress(text.encode("utf-8"), 9), np.uint8)
    size = head.size
    for array, alignment in runs:
        size = _align(size, alignment) + array.nbytes
    pack = np.zeros(size, np.uint8)
    pack[:head.size] = head
    cursor = head.size
    for array, alignment in runs:
        cursor = _align(cursor, alignment)
        pack[cursor:cursor + array.nbytes] = array.reshape(-1).view(np.uint8)
        cursor += array.nbytes
    meta[SCHEMA_KEY] = PACK_SCHEMA_VERSION
    meta[PACK_STRUCTURE_KEY] = int(head.size)
    qcm.save_tensors(path, {PACK_TENSOR: pack, **tensors}, metadata=meta)


def _unpack(entries: Any, pack: np.ndarray, start: int) -> dict[str, Any]:
    """The packed initializers, as views into ``pack`` (sub-byte data unpacked).

    Raises
    ------
    ModelError
        A malformed entry, bytes outside the pack, non-zero padding or trailing bytes, or
        parameters a QuantizedTensor refuses (non-positive scale, zero point out of range).
    """
    from ..errors import QcoreError  # noqa: PLC0415
    from ..format import layout as L  # noqa: PLC0415

    out: dict[str, Any] = {}
    cursor = start
    gaps: list[tuple[int, int]] = []

    def take(name: str, dtype: np.dtype, count: int, nbytes: int) -> np.ndarray:
        nonlocal cursor
        at = _align(cursor, dtype.itemsize)
        if at + nbytes > pack.size:
            raise ModelError(f"packed initializer {name!r} runs past the end of the {pack.size}-byte pack")
        gaps.append((cursor, at))
        cursor = at + nbytes
        return pack[at:at + nbytes].view(dtype)[:count] if count else pack[at:at].view(dtype)

    if not isinstance(entries, list):
        raise ModelError("the structure's 'packed' must be a list")
    for entry in entries:
        try:
            name, dtype, shape = str(entry[0]), str(entry[1]), tuple(int(d) for d in entry[2])
            quant = entry[3] if len(entry) > 3 else None
            if any(d < 0 for d in shape) or name in out:
                raise ValueError("negative dimension or duplicate name")
            count = math.prod(shape)
            if quant is None:
                etype = L.PLAIN_TYPES[dtype]
                out[name] = take(name, etype.numpy, count, etype.byte_size(count)).reshape(shape)
                continue
            axis, block, convention, scale_dtype, has_zp, scale_shape = quant
            etype = L.ELEMENT_TYPES_BY_NAME[dtype]
            if etype.qrange is None or scale_dtype not in ("float16", "float32"):
                raise ValueError(f"{dtype} data with {scale_dtype} scales")
            if axis is None:
                scale_shape = tuple(int(d) for d in scale_shape)
            else:  # per-axis: (shape[axis],); blocked: shape with ceil(shape[axis] / block) along axis
                axis = int(axis)
                if not 0 <= axis < len(shape) or int(block) < 0:
                    raise ValueError(f"axis {axis} / block size {block} for shape {shape}")
                if int(block):
                    scale_shape = shape[:axis] + (-(-shape[axis] // int(block)),) + shape[axis + 1:]
                else:
                    scale_shape = (shape[axis],)
            raw = take(name, np.dtype(np.uint8) if etype.packed else etype.numpy, count if not etype.packed else
                       etype.byte_size(count), etype.byte_size(count))
            if etype.packed:
                used = (count * etype.bits) % 8
                if used and int(raw[-1]) >> used:
                    raise ModelError(f"packed initializer {name!r}: unused bits of its last byte are not zero")
                data = L.unpack_subbyte(raw, count, etype.bits, etype.qrange[0] < 0).reshape(shape)
            else:
                data = raw.reshape(shape)
            scale_count = math.prod(scale_shape)
            scale_np = np.dtype("<f2" if scale_dtype == "float16" else "<f4")
            scale = take(name, scale_np, scale_count, scale_count * scale_np.itemsize).reshape(scale_shape)
            scale = scale.astype(np.float32)  # float16 widens exactly; float32: a copy, as small
            zp_type = L.ELEMENT_TYPES[etype.zero_point_code].numpy
            if has_zp:
                zero_point = take(name, zp_type, scale_count, scale_count * zp_type.itemsize).reshape(scale_shape)
            else:
                zero_point = np.zeros(scale_shape, zp_type)
            out[name] = QuantizedTensor(data, scale, zero_point, dtype, None if axis is None else int(axis),
                                        int(block), str(convention))
        except ModelError:
            raise
        except (QcoreError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModelError(f"packed initializer entry {str(entry)[:80]}: {exc}") from None
    if cursor != pack.size:
        raise ModelError(f"the pack has {pack.size - cursor} bytes after its last initializer")
    for begin, end in gaps:
        if pack[begin:end].any():
            raise ModelError(f"padding bytes {begin}..{end - 1} of the pack are not zero")
    return out


# -- reading ---------------------------------------------------------------------------------

def has_graph(metadata: Any) -> bool:
    """Whether a .qcm file's metadata holds a model graph (any of the stored structure forms)."""
    return STRUCTURE_KEY in metadata or STRUCTURE_ZLIB_KEY in metadata or PACK_STRUCTURE_KEY in metadata


def structure_text(metadata: Any, pack: np.ndarray | None = None) -> str:
    """The structure JSON document of a file's metadata, from whichever place holds it
    (``pack``: the pack tensor's bytes, needed for schema-2 files)."""
    if STRUCTURE_KEY in metadata:
        return str(metadata[STRUCTURE_KEY])
    if STRUCTURE_ZLIB_KEY in metadata:
        return decompress_structure(str(metadata[STRUCTURE_ZLIB_KEY]))
    length = metadata.get(PACK_STRUCTURE_KEY)
    if pack is None or not isinstance(length, int) or isinstance(length, bool) or not 0 < length <= pack.size:
        raise ModelError(f"{PACK_STRUCTURE_KEY} = {length!r} does not give the structure's length in the "
                         f"{PACK_TENSOR!r} tensor")
    try:
        return zlib.decompress(pack[:length].tobytes()).decode("utf-8")
    except (zlib.error, UnicodeError) as exc:
        raise ModelError(f"the first {length} bytes of {PACK_TENSOR!r} are not zlib-compressed UTF-8: {exc}") from None


def graph_from_file(qcm_file: Any) -> Graph:
    """Rebuild the graph of an opened .qcm file (tensors stay memory-mapped).

    Raises
    ------
    ModelError
        The file holds no graph, or one written by a newer schema, or a malformed pack.
    """
    metadata = qcm_file.metadata
    if not has_graph(metadata):
        raise ModelError("the file holds tensors but no model graph (no qcore.graph.structure metadata)")
    places = [k for k in (STRUCTURE_KEY, STRUCTURE_ZLIB_KEY, PACK_STRUCTURE_KEY) if k in metadata]
    if len(places) > 1:
        raise ModelError(f"the file holds {' and '.join(places)}; exactly one structure is allowed")
    version = metadata.get(SCHEMA_KEY)
    want = PACK_SCHEMA_VERSION if PACK_STRUCTURE_KEY in metadata else GRAPH_SCHEMA_VERSION
    if version != want:
        raise ModelError(f"graph schema version {version!r} is not supported here (this qcore reads "
                         f"{GRAPH_SCHEMA_VERSION}, and {PACK_SCHEMA_VERSION} with a {PACK_TENSOR!r} tensor)")
    pack = None
    if PACK_STRUCTURE_KEY in metadata:
        if PACK_TENSOR not in qcm_file:
            raise ModelError(f"{PACK_STRUCTURE_KEY} is set but the file has no {PACK_TENSOR!r} tensor")
        pack = qcm_file[PACK_TENSOR]
        if not isinstance(pack, np.ndarray) or pack.dtype != np.uint8 or pack.ndim != 1:
            raise ModelError(f"{PACK_TENSOR!r} must be a 1-D uint8 tensor")
    text = structure_text(metadata, pack)
    tensors = {name: qcm_file[name] for name in qcm_file if name != PACK_TENSOR}
    if pack is not None:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ModelError(f"graph structure is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("schema_version") != PACK_SCHEMA_VERSION:
            raise ModelError(f"the packed structure must be a JSON object of schema_version {PACK_SCHEMA_VERSION}")
        packed = _unpack(doc.get("packed"), pack, int(metadata[PACK_STRUCTURE_KEY]))
        clash = sorted(set(packed) & set(tensors))
        if clash:
            raise ModelError(f"initializers both packed and in the file: {', '.join(clash[:5])}")
        tensors.update(packed)
    return Graph.from_structure_json(text, tensors)


def load_graph(path: str | os.PathLike, *, verify: bool = True) -> Graph:
    """Open a .qcm model file and return its graph."""
    from .. import format as qcm  # noqa: PLC0415

    if not os.path.exists(os.fspath(path)):
        raise ModelError(f"model file not found: {os.fspath(path)}")
    return graph_from_file(qcm.load_tensors(path, verify=verify))
