"""The .qcm reader: memory-maps the file, validates it, hands out zero-copy NumPy views.

The rules of docs/FORMAT.md are checked in the order the document lists them (the C
reader in csrc/src/format.c follows the same order), and the first broken one raises
its own :class:`~qcore.format.errors.QcmError` subclass.
"""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from ..reference.tensor import QuantizedTensor
from . import errors as E
from . import layout as L
from .metadata import MetadataValue, decode_metadata

Tensor = Union[np.ndarray, QuantizedTensor]
_SCHEMES = {L.SCHEME_NONE: "none", L.SCHEME_PER_TENSOR: "per_tensor", L.SCHEME_PER_AXIS: "per_axis",
            L.SCHEME_BLOCKED: "blocked"}
_ROLES = {L.ROLE_DATA: "data", L.ROLE_SCALE: "scale", L.ROLE_ZERO_POINT: "zero_point"}


@dataclass(frozen=True)
class TensorInfo:
    """One validated tensor record.

    Attributes
    ----------
    index : int
        Position in the tensor table (data order).
    name : str
    element_type : str
        ``"float32"``, ``"int4"``, ...
    shape : tuple of int
    offset, nbytes : int
        Where the stored bytes are in the file, and how many (packed for sub-byte types).
    crc32c : int
        Stored CRC-32C of those bytes.
    role : str
        ``"data"``, ``"scale"`` or ``"zero_point"``.
    scheme : str
        ``"none"``, ``"per_tensor"``, ``"per_axis"`` or ``"blocked"``.
    axis, block_size : int
    convention : str or None
        ``"onnx"``, ``"tflite"``, ``"pytorch"``; None for unquantized tensors.
    scale_index, zero_point_index, owner_index : int or None
        Table indices of the related records.
    """

    index: int
    name: str
    element_type: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    crc32c: int
    role: str
    scheme: str
    axis: int
    block_size: int
    convention: str | None
    scale_index: int | None
    zero_point_index: int | None
    owner_index: int | None


def _opt(index: int) -> int | None:
    return None if index == L.NONE else index


def _parse(buf, size: int) -> tuple[list[TensorInfo], dict[str, MetadataValue]]:
    """Apply every header-level rule to the bytes ``buf`` (length ``size``)."""
    if size < L.PREAMBLE_SIZE:
        raise E.TruncatedError(f"file is {size} bytes, shorter than the {L.PREAMBLE_SIZE}-byte preamble")
    (magic, mark, version, flags, alignment, file_size, dir_offset, dir_length, tensor_count,
     metadata_count, names_length, stored_crc) = L.PREAMBLE.unpack_from(buf, 0)
    if magic != L.MAGIC:
        raise E.BadMagicError(f"first bytes are {bytes(magic)!r}, expected {L.MAGIC!r}")
    if mark != L.BYTE_ORDER_MARK:
        what = "a big-endian file" if mark == 0x04030201 else "not a byte-order mark"
        raise E.ByteOrderError(f"byte-order mark reads 0x{mark:08x} ({what}); version 1 files are little-endian")
    if version != L.VERSION:
        raise E.UnsupportedVersionError(f"format version {version}; this reader reads version {L.VERSION}")
    if flags != 0:
        raise E.UnsupportedFlagsError(f"preamble flags 0x{flags:08x}; version 1 defines none")
    if alignment != L.ALIGNMENT:
        raise E.UnsupportedAlignmentError(f"alignment field {alignment}, must be {L.ALIGNMENT}")
    if size < file_size:
        raise E.TruncatedError(f"file is {size} bytes but declares {file_size}")
    if size > file_size:
        raise E.TrailingDataError(f"file is {size} bytes but declares {file_size}")
    if dir_length > L.MAX_DIRECTORY:
        raise E.HeaderTooLargeError(f"directory length {dir_length} is over the cap {L.MAX_DIRECTORY}")
    if tensor_count > L.MAX_TENSORS:
        raise E.TooManyTensorsError(f"tensor count {tensor_count} is over the cap {L.MAX_TENSORS}")
    if metadata_count > L.MAX_METADATA:
        raise E.TooManyMetadataError(f"metadata count {metadata_count} is over the cap {L.MAX_METADATA}")
    fixed = tensor_count * (L.RECORD_SIZE + L.INDEX_ENTRY_SIZE) + names_length
    if (dir_offset < L.PREAMBLE_SIZE or dir_offset % L.ALIGNMENT or dir_offset > file_size
            or file_size - dir_offset != dir_length):
        raise E.DirectoryBoundsError(
            f"directory at {dir_offset} of length {dir_length} does not end the {file_size}-byte file "
            f"at a 64-byte boundary after the preamble")
    if fixed > dir_length:
        raise E.DirectoryBoundsError(
            f"{tensor_count} records, their index and {names_length} bytes of names need {fixed} bytes; "
            f"the directory has {dir_length}")
    directory = memoryview(buf)[dir_offset:dir_offset + dir_length]
    crc = L.crc32c(directory, L.crc32c(memoryview(buf)[:60]))
    if crc != stored_crc:
        raise E.HeaderChecksumError(f"computed 0x{crc:08x}, stored 0x{stored_crc:08x}")

    names_offset = tensor_count * (L.RECORD_SIZE + L.INDEX_ENTRY_SIZE)
    pool = bytes(directory[names_offset:names_offset + names_length])
    raw = list(L.RECORD.iter_unpack(directory[:tensor_count * L.RECORD_SIZE]))
    names: list[bytes] = []
    infos_partial = []
    cursor = L.PREAMBLE_SIZE
    pool_cursor = 0
    for i, rec in enumerate(raw):
        (offset, data_size, name_offset, name_length, code, rank, role, scheme, convention, reserved0,
         axis, block_size, scale_index, zp_index, owner, data_crc, reserved1) = rec[:17]
        dims = rec[17:]
        tag = f"#{i}"
        if name_length == 0 or name_length > L.MAX_NAME:
            raise E.BadNameError(f"tensor {tag}: name length {name_length} not in 1..{L.MAX_NAME}")
        if name_offset != pool_cursor:
            raise E.BadNameError(f"tensor {tag}: name offset {name_offset}, expected {pool_cursor} (pool is tiled in order)")
        if name_length + 1 > names_length - pool_cursor:
            raise E.BadNameError(f"tensor {tag}: name of {name_length} bytes runs past the name pool")
        name_raw = pool[name_offset:name_offset + name_length]
        try:
            if b"\0" in name_raw or pool[name_offset + name_length] != 0:
                raise UnicodeError
            name = name_raw.decode("utf-8")
        except UnicodeError:
            raise E.BadNameError(f"tensor {tag}: name {name_raw!r} is not NUL-free UTF-8 followed by NUL") from None
        pool_cursor += name_length + 1
        etype = L.ELEMENT_TYPES.get(code)
        if etype is None:
            raise E.UnknownElementTypeError(f"element type code {code}", tensor=name)
        if rank > L.MAX_RANK:
            raise E.RankError(f"rank {rank} is over {L.MAX_RANK}", tensor=name)
        if reserved0 or reserved1:
            raise E.ReservedFieldError(f"reserved record fields are {reserved0}, {reserved1}", tensor=name)
        if any(dims[rank:]):
            raise E.ReservedFieldError(f"dimension slots past rank {rank} are {dims[rank:]}", tensor=name)
        shape = tuple(dims[:rank])
        count = 1
        for d in shape:
            count *= d
            if count > L.INT64_MAX:
                break
        nbytes = etype.byte_size(count)
        if count > L.INT64_MAX or nbytes > L.INT64_MAX:
            raise E.ShapeOverflowError(f"shape {shape} has over 2**63 - 1 elements or bytes", tensor=name)
        if data_size != nbytes:
            raise E.SizeMismatchError(f"data size {data_size}, {etype.name} {shape} takes {nbytes}", tensor=name)
        if offset % L.ALIGNMENT:
            raise E.MisalignedError(f"data offset {offset} is not a multiple of {L.ALIGNMENT}", tensor=name)
        if offset < cursor:
            raise E.OverlapError(f"data offset {offset} is before the previous tensor's padded end {cursor}", tensor=name)
        if offset > cursor:
            raise E.HoleError(f"data offset {offset} leaves a hole after {cursor}", tensor=name)
        end = offset + data_size
        if end > dir_offset:
            raise E.OverlapError(f"data ends at {end}, inside the directory at {dir_offset}", tensor=name)
        cursor = L.align(end)
        if role > L.ROLE_ZERO_POINT:
            raise E.UnknownRoleError(f"role code {role}", tensor=name)
        if scheme > L.SCHEME_BLOCKED:
            raise E.UnknownSchemeError(f"scheme code {scheme}", tensor=name)
        if (convention != 0) if scheme == L.SCHEME_NONE else convention not in L.CONVENTION_NAMES:
            raise E.UnknownConventionError(
                f"convention code {convention} with scheme {_SCHEMES[scheme]}", tensor=name)
        if scheme != L.SCHEME_NONE and etype.qrange is None:
            raise E.QuantTypeError(f"{etype.name} data cannot be quantized", tensor=name)
        if (axis >= rank) if scheme in (L.SCHEME_PER_AXIS, L.SCHEME_BLOCKED) else axis != 0:
            raise E.AxisError(f"axis {axis} with scheme {_SCHEMES[scheme]} and rank {rank}", tensor=name)
        if (block_size == 0) if scheme == L.SCHEME_BLOCKED else block_size != 0:
            raise E.BlockSizeError(f"block size {block_size} with scheme {_SCHEMES[scheme]}", tensor=name)
        names.append(name_raw)
        infos_partial.append(TensorInfo(
            i, name, etype.name, shape, offset, data_size, data_crc, _ROLES[role], _SCHEMES[scheme], axis,
            block_size, L.CONVENTION_NAMES.get(convention), _opt(scale_index), _opt(zp_index), _opt(owner)))
    if pool_cursor != names_length:
        raise E.BadNameError(f"names use {pool_cursor} bytes of a {names_length}-byte pool")
    if cursor != dir_offset:
        raise E.HoleError(f"tensor data ends at {cursor}, the directory starts at {dir_offset}")

    _check_references(infos_partial, raw)
    index = np.frombuffer(directory, "<u4", tensor_count, tensor_count * L.RECORD_SIZE).tolist()
    prev = None
    for k, i in enumerate(index):
        if i >= tensor_count:
            raise E.NameIndexError(f"name index entry {k} is {i}, there are {tensor_count} tensors")
        if prev is not None:
            if names[prev] == names[i]:
                raise E.DuplicateNameError(f"tensors #{prev} and #{i} share the name", tensor=infos_partial[i].name)
            if names[prev] > names[i]:
                raise E.NameIndexError(f"name index entry {k} is out of ascending name order",
                                       tensor=infos_partial[i].name)
        prev = i
    metadata = decode_metadata(directory[names_offset + names_length:], metadata_count)
    return infos_partial, metadata


def _check_references(infos: list[TensorInfo], raw: list[tuple]) -> None:
    """Rules reference, quant-type (scales and zero points), scale-count, zero-point-shape."""
    n = len(infos)
    for info, rec in zip(infos, raw):
        i, name = info.index, info.name
        scale_index, zp_index, owner = rec[12], rec[13], rec[14]
        if info.role == "data":
            if owner != L.NONE:
                raise E.BadReferenceError(f"data tensor has owner index {owner}", tensor=name)
            if info.scheme == "none":
                if scale_index != L.NONE or zp_index != L.NONE:
                    raise E.BadReferenceError(
                        f"unquantized tensor references scale {scale_index} / zero point {zp_index}", tensor=name)
                continue
            if scale_index >= n:
                raise E.BadReferenceError(f"scale index {scale_index} out of range ({n} tensors)", tensor=name)
            scale = infos[scale_index]
            if scale.role != "scale" or scale.owner_index != i:
                raise E.BadReferenceError(f"tensor #{scale_index} is not a scale owned by #{i}", tensor=name)
            if zp_index >= n:
                raise E.BadReferenceError(f"zero-point index {zp_index} out of range ({n} tensors)", tensor=name)
            zp = infos[zp_index]
            if zp.role != "zero_point" or zp.owner_index != i:
                raise E.BadReferenceError(f"tensor #{zp_index} is not a zero point owned by #{i}", tensor=name)
            if scale.element_type != "float32":
                raise E.QuantTypeError(f"scale element type {scale.element_type}, must be float32", tensor=name)
            etype = L.ELEMENT_TYPES_BY_NAME[info.element_type]
            zp_type = L.ELEMENT_TYPES[etype.zero_point_code].name
            if zp.element_type != zp_type:
                raise E.QuantTypeError(f"zero point element type {zp.element_type}, must be {zp_type}", tensor=name)
            if not _scale_shape_ok(info, scale.shape):
                raise E.ScaleCountError(
                    f"scale shape {scale.shape} does not fit {info.scheme} quantization of {info.shape} "
                    f"(axis {info.axis}, block size {info.block_size})", tensor=name)
            if zp.shape != scale.shape:
                raise E.ZeroPointShapeError(f"zero point shape {zp.shape} != scale shape {scale.shape}", tensor=name)
        else:
            if info.scheme != "none" or scale_index != L.NONE or zp_index != L.NONE:
                raise E.BadReferenceError(f"{info.role} tensor is itself quantized or references others", tensor=name)
            if owner >= n:
                raise E.BadReferenceError(f"owner index {owner} out of range ({n} tensors)", tensor=name)
            o = infos[owner]
            back = o.scale_index if info.role == "scale" else o.zero_point_index
            if o.role != "data" or back != i:
                raise E.BadReferenceError(f"owner #{owner} does not reference this {info.role}", tensor=name)


def _scale_shape_ok(info: TensorInfo, scale_shape: tuple[int, ...]) -> bool:
    if info.scheme == "per_tensor":
        return all(d == 1 for d in scale_shape)
    if info.scheme == "per_axis":
        return len(scale_shape) == 1 and scale_shape[0] == info.shape[info.axis]
    if len(scale_shape) != len(info.shape):
        return False
    want = list(info.shape)
    want[info.axis] = -(-want[info.axis] // info.block_size)
    return list(scale_shape) == want


class QcmFile(Mapping):
    """A validated, memory-mapped .qcm file: a read-only mapping name -> tensor.

    Values are ``numpy.ndarray`` for plain tensors and :class:`QuantizedTensor` for
    quantized ones. Arrays are read-only views into the memory map (no copy), except the
    data of int4/uint4/int2/uint2 tensors, which is unpacked into a new int8/uint8 array
    on each access (:meth:`raw` gives the packed bytes without a copy). Scale and
    zero-point records are not keys of the mapping; they come with their tensor.

    Attributes
    ----------
    path : pathlib.Path
    metadata : dict
        The typed metadata: key -> str, int, float, bool, or list of one of those.

    Notes
    -----
    ``close()`` drops the file's reference to the map. Arrays already handed out keep the
    map alive (they hold a reference to it), so they stay valid; the map is released when
    the last of them is gone.
    """

    def __init__(self, path: str | os.PathLike, *, verify: bool = True) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < L.PREAMBLE_SIZE:
                _parse(f.read(), size)  # raises TruncatedError
            self._map: mmap.mmap | None = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._infos, self.metadata = _parse(self._map, size)
            self._by_name = {info.name: info for info in self._infos}
            self._keys = [info.name for info in self._infos if info.role == "data"]
            self._verified = False
            self._params_checked: set[int] = set()
            if verify:
                self.verify()
        except BaseException:
            self.close()
            raise

    # -- mapping -------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Tensor:
        info = self._by_name.get(name)
        if info is None or info.role != "data":
            raise KeyError(name)
        if info.scheme == "none":
            return self._view(info)
        if not self._verified and info.index not in self._params_checked:
            self._verify_params(info)
            self._params_checked.add(info.index)
        scale = self._view(self._infos[info.scale_index])
        zero_point = self._view(self._infos[info.zero_point_index])
        etype = L.ELEMENT_TYPES_BY_NAME[info.element_type]
        data = self._view(info)
        if etype.packed:
            data = L.unpack_subbyte(data, math.prod(info.shape), etype.bits, etype.qrange[0] < 0).reshape(info.shape)
        return QuantizedTensor(
            data=data, scale=scale, zero_point=zero_point, dtype=info.element_type,
            axis=None if info.scheme == "per_tensor" else info.axis, block_size=info.block_size,
            convention=info.convention)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, name: object) -> bool:
        info = self._by_name.get(name)  # type: ignore[arg-type]
        return info is not None and info.role == "data"

    def info(self, name: str) -> TensorInfo:
        """The record of any tensor, including ``name + "::scale"`` / ``"::zero_point"``."""
        return self._by_name[name]

    def infos(self) -> list[TensorInfo]:
        """Every record in table (data) order."""
        return list(self._infos)

    def raw(self, name: str) -> np.ndarray:
        """Zero-copy view of the stored elements of any tensor.

        For packed types (int4, uint4, int2, uint2) this is the uint8 bytes, two (four)
        elements per byte, first element in the low bits; otherwise the typed array.
        """
        return self._view(self._by_name[name])

    def _view(self, info: TensorInfo) -> np.ndarray:
        if self._map is None:
            raise ValueError(f"{self.path} is closed")
        etype = L.ELEMENT_TYPES_BY_NAME[info.element_type]
        if etype.packed:
            return np.frombuffer(self._map, np.uint8, info.nbytes, info.offset)
        count = math.prod(info.shape)
        return np.frombuffer(self._map, etype.numpy, count, info.offset).reshape(info.shape)

    # -- value-level rules ---------------------------------------------------------------

    def verify(self) -> None:
        """Check every value-level rule: checksums and padding of all tensors, then scales
        and zero points (docs/FORMAT.md, "Value rules").

        Raises
        ------
        TensorChecksumError, NonZeroPaddingError, BadScaleError, ZeroPointRangeError
        """
        for info in self._infos:
            self._verify_bytes(info)
        for info in self._infos:
            if info.role == "data" and info.scheme != "none":
                self._verify_params(info)
        self._verified = True

    def _verify_bytes(self, info: TensorInfo) -> None:
        mm = self._map
        crc = L.crc32c(memoryview(mm)[info.offset:info.offset + info.nbytes])
        if crc != info.crc32c:
            raise E.TensorChecksumError(f"computed 0x{crc:08x}, stored 0x{info.crc32c:08x}", tensor=info.name)
        etype = L.ELEMENT_TYPES_BY_NAME[info.element_type]
        end = info.offset + info.nbytes
        if etype.packed and info.nbytes:
            used = (math.prod(info.shape) * etype.bits) % 8
            if used and mm[end - 1] >> used:
                raise E.NonZeroPaddingError(f"unused bits of the last byte (at {end - 1}) are not zero",
                                            tensor=info.name)
        pad = mm[end:L.align(end)]
        if pad.count(0) != len(pad):
            at = end + next(k for k, b in enumerate(pad) if b)
            raise E.NonZeroPaddingError(f"padding byte at {at} is not zero", tensor=info.name)

    def _verify_params(self, info: TensorInfo) -> None:
        scale = self._view(self._infos[info.scale_index]).reshape(-1)
        bad = ~(np.isfinite(scale) & (scale > 0))
        if bad.any():
            k = int(np.argmax(bad))
            raise E.BadScaleError(f"scale[{k}] = {float(scale[k])} is not finite and positive", tensor=info.name)
        zero_point = self._view(self._infos[info.zero_point_index]).reshape(-1)
        qmin, qmax = L.ELEMENT_TYPES_BY_NAME[info.element_type].qrange
        bad = (zero_point < qmin) | (zero_point > qmax)
        if bad.any():
            k = int(np.argmax(bad))
            raise E.ZeroPointRangeError(
                f"zero_point[{k}] = {int(zero_point[k])} outside [{qmin}, {qmax}] of {info.element_type}",
                tensor=info.name)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the file's map (views already handed out keep it alive)."""
        mm, self._map = self._map, None
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                pass  # arrays still reference it; unmapped when the last one is freed

    def __enter__(self) -> "QcmFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"QcmFile({str(self.path)!r}, {len(self)} tensors, {len(self.metadata)} metadata entries)"


def load_tensors(path: str | os.PathLike, *, verify: bool = True) -> QcmFile:
    """Open a .qcm file: memory-map it, validate it, return a read-only mapping of tensors.

    Parameters
    ----------
    path : str or os.PathLike
    verify : bool, default True
        True: check every rule, including every tensor's CRC-32C, padding, scales and
        zero points (reads the whole file). False: check only the header-level rules
        (preamble, directory, header CRC; independent of the data size); the scales and
        zero points of a quantized tensor are still checked when it is accessed.

    Returns
    -------
    QcmFile

    Raises
    ------
    FormatError
        The :mod:`qcore.format.errors` subclass of the first broken rule.
    OSError
        The file cannot be opened.
    """
    return QcmFile(path, verify=verify)
