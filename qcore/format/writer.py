"""The streaming, atomic, deterministic .qcm writer (docs/FORMAT.md, "Writing").

Tensor data is written as it arrives, each tensor at the next 64-byte boundary; the
directory (tensor table, name index, names, metadata) follows the data and the 64-byte
preamble at offset 0 is filled in last. The file is built under a temporary name in the
destination directory, flushed and fsynced, then renamed over the final name, so a crash
at any point leaves either the old file or the complete new one, never a partial file.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..reference.dtypes import int_type
from ..reference.tensor import QuantizedTensor
from . import errors as E
from . import layout as L
from .metadata import check_key, encode_metadata, encode_value
from .validate import scale_shape_ok

_ZEROS = bytes(L.ALIGNMENT)
_PACK_CHUNK = 1 << 20  # sub-byte tensors are packed and written 1 Mi elements at a time


class _Record:
    """One tensor record, filled in as its data is written."""

    __slots__ = ("name", "etype", "shape", "offset", "size", "crc", "role", "scheme", "convention",
                 "axis", "block_size", "scale_index", "zero_point_index", "owner_index")

    def __init__(self, name: bytes, etype: L.ElementType, shape: tuple[int, ...], role: int) -> None:
        self.name = name
        self.etype = etype
        self.shape = shape
        self.role = role
        self.offset = self.size = self.crc = 0
        self.scheme = self.convention = self.axis = self.block_size = 0
        self.scale_index = self.zero_point_index = self.owner_index = L.NONE

    def pack(self, name_offset: int) -> bytes:
        dims = list(self.shape) + [0] * (L.MAX_RANK - len(self.shape))
        return L.RECORD.pack(
            self.offset, self.size, name_offset, len(self.name), self.etype.code, len(self.shape),
            self.role, self.scheme, self.convention, 0, self.axis, self.block_size,
            self.scale_index, self.zero_point_index, self.owner_index, self.crc, 0, *dims,
        )


def _check_name(name: Any) -> bytes:
    if not isinstance(name, str):
        raise E.BadNameError(f"tensor names are str, got {type(name).__name__}")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise E.BadNameError(f"name {name!r} is not encodable as UTF-8") from None
    if not 1 <= len(raw) <= L.MAX_NAME or b"\0" in raw:
        raise E.BadNameError(f"name {name!r} must be 1..{L.MAX_NAME} UTF-8 bytes without NUL")
    return raw


def _check_shape(shape: tuple[int, ...], etype: L.ElementType, name: str) -> None:
    if len(shape) > L.MAX_RANK:
        raise E.RankError(f"rank {len(shape)} is over {L.MAX_RANK}", tensor=name)
    count = math.prod(shape)
    if count > L.INT64_MAX or etype.byte_size(count) > L.INT64_MAX:
        raise E.ShapeOverflowError(f"shape {shape} has over 2**63 - 1 elements or bytes", tensor=name)


class QcmWriter:
    """Write a .qcm file one tensor at a time.

    Use as a context manager. Leaving the block normally completes the file (directory,
    preamble, fsync, rename); leaving it with an exception removes the temporary file and
    leaves any existing file at ``path`` untouched.

    Parameters
    ----------
    path : str or os.PathLike
        Final file name. The temporary file is created next to it (same file system, so
        the final rename is atomic).
    metadata : Mapping, optional
        Initial metadata; more can be added with :meth:`set_metadata` before the file is
        completed.
    version : int, optional
        None (default): the most compact encoding, version 2 only if the content uses it
        (float16 scales, omitted zero points), else version 1. ``1``: always version 1
        (float32 scales, every zero-point record written), for readers older than
        version 2.

    Notes
    -----
    Scales that float16 represents exactly (every value ``s`` with
    ``float32(float16(s)) == s``) are stored as float16, and the zero-point record of a
    quantized tensor whose zero points are all 0 is omitted (format version 2). Both are
    lossless: the reader gives back the same float32 scales and zero points.
    Resident memory is bounded by the largest tensor: :meth:`add_tensor` writes the
    array's bytes straight from its buffer (a copy is made only to make it contiguous and
    little-endian; int4/int2 data is packed and written 1 Mi elements at a time) and keeps
    just the fixed-size record.
    The output is a pure function of the sequence of ``add_tensor`` calls and the
    metadata mapping: the same content written twice gives identical bytes.

    Examples
    --------
    >>> with QcmWriter(path) as writer:                          # doctest: +SKIP
    ...     writer.add_tensor("fc.weight", quantized_weight)
    ...     writer.add_tensor("fc.bias", np.zeros(16, np.int32))
    ...     writer.set_metadata("qcore.graph.schema_version", 1)
    """

    def __init__(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None, *,
                 version: int | None = None) -> None:
        if version not in (None, L.VERSION_MIN, L.VERSION):
            raise ValueError(f"version must be None, {L.VERSION_MIN} or {L.VERSION}, got {version!r}")
        self.path = Path(path)
        self._compact = version != L.VERSION_MIN
        self._version = L.VERSION_MIN
        self._metadata: dict[str, Any] = {}
        self._records: list[_Record] = []
        self._names: dict[bytes, int] = {}
        self._file = None
        self._tmp: Path | None = None
        self._offset = L.PREAMBLE_SIZE
        self._done = False
        for key, value in (metadata or {}).items():
            self.set_metadata(key, value)

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> "QcmWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Create the temporary file (called by ``__enter__``)."""
        if self._file is not None or self._done:
            raise RuntimeError("QcmWriter is already open or finished")
        directory = self.path.parent
        for _ in range(100):
            tmp = directory / f".{self.path.name}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - 100 random collisions
            raise FileExistsError(f"could not create a temporary file in {directory}")
        self._tmp = tmp
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._write_all(bytes(L.PREAMBLE_SIZE))  # filled in by close()

    def abort(self) -> None:
        """Discard the file being written; ``path`` is left as it was."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None
        self._done = True

    def close(self) -> None:
        """Write the directory and preamble, fsync, and rename to the final name."""
        if self._done:
            return
        if self._file is None:
            raise RuntimeError("QcmWriter was never opened; use it as a context manager")
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise

    # -- content -------------------------------------------------------------------------

    def set_metadata(self, key: str, value: Any) -> None:
        """Set one metadata entry (validated now, encoded when the file is completed)."""
        check_key(key)
        encode_value(key, value)  # type check now; the graph-schema rule at completion
        self._metadata[key] = value

    def add_tensor(self, name: str, tensor: np.ndarray | QuantizedTensor) -> None:
        """Write one tensor's data now.

        Parameters
        ----------
        name : str
            Unique name, 1..1024 UTF-8 bytes, no NUL.
        tensor : numpy.ndarray or QuantizedTensor
            A plain array (float16/32/64, int8..int64, uint8..uint64, any byte order and
            layout), or quantized data with its scale and zero point, which are written
            as two further records named ``name + "::scale"`` and ``name + "::zero_point"``.

        Raises
        ------
        DuplicateNameError
            The name (or a derived scale / zero-point name) is already in the file.
        BadNameError, RankError, ShapeOverflowError, QuantTypeError, ScaleCountError,
        ZeroPointShapeError, BadScaleError, ZeroPointRangeError, DataRangeError
            The tensor would break the rule of the same name.
        qcore.DTypeError
            The array's dtype has no element type in the format.
        """
        if self._file is None:
            raise RuntimeError("add_tensor needs an open QcmWriter (use it as a context manager)")
        needed = 3 if isinstance(tensor, QuantizedTensor) else 1
        if len(self._records) + needed > L.MAX_TENSORS:
            raise E.TooManyTensorsError(f"a file holds at most {L.MAX_TENSORS} tensor records", tensor=name)
        if isinstance(tensor, QuantizedTensor):
            self._add_quantized(name, tensor)
        else:
            self._add_plain(name, tensor)

    def _new_record(self, name: str, etype: L.ElementType, shape: tuple[int, ...], role: int) -> _Record:
        raw = _check_name(name)
        if raw in self._names:
            raise E.DuplicateNameError(f"name {name!r} was already written", tensor=name)
        _check_shape(shape, etype, name)
        return _Record(raw, etype, shape, role)

    def _write_all(self, data) -> None:
        """Write every byte (a raw write may be partial; Linux caps one at ~2 GiB)."""
        view = memoryview(data).cast("B")
        while view.nbytes:
            written = self._file.write(view)
            view = view[written:]

    def _commit(self, record: _Record, chunks: Iterable[np.ndarray]) -> int:
        """Write the record's bytes (contiguous little-endian chunks, in order) at the next
        aligned offset, computing the CRC as they pass."""
        record.offset = self._offset
        size = crc = 0
        for chunk in chunks:
            if chunk.size:
                crc = L.crc32c(chunk, crc)
                self._write_all(chunk)
                size += chunk.nbytes
        if size != record.etype.byte_size(math.prod(record.shape)):  # pragma: no cover - internal invariant
            raise RuntimeError(f"wrote {size} bytes for {record.name!r}, expected another size")
        record.size, record.crc = size, crc
        padding = L.align(size) - size
        self._write_all(_ZEROS[:padding])
        self._offset += size + padding
        index = len(self._records)
        self._records.append(record)
        self._names[record.name] = index
        return index

    @staticmethod
    def _little_endian(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return np.ascontiguousarray(array, dtype=dtype)

    def _add_plain(self, name: str, array: Any) -> None:
        from ..errors import DTypeError

        if not isinstance(array, np.ndarray):
            raise DTypeError(f"tensor {name!r}: expected numpy.ndarray or QuantizedTensor, got {type(array).__name__}")
        etype = L.PLAIN_TYPES.get(array.dtype.name)
        if etype is None:
            raise DTypeError(
                f"tensor {name!r}: dtype {array.dtype} has no .qcm element type; "
                f"supported: {', '.join(L.PLAIN_TYPES)} (sub-byte types via QuantizedTensor)"
            )
        record = self._new_record(name, etype, tuple(int(d) for d in array.shape), L.ROLE_DATA)
        self._commit(record, [self._little_endian(array, etype.numpy)])

    def _add_quantized(self, name: str, qt: QuantizedTensor) -> None:
        itype = int_type(qt.dtype)
        etype = L.ELEMENT_TYPES_BY_NAME[itype.name]
        shape = tuple(int(d) for d in qt.shape)
        record = self._new_record(name, etype, shape, L.ROLE_DATA)
        scale_name = name + L.SCALE_SUFFIX
        zp_name = name + L.ZERO_POINT_SUFFIX
        zp_type = L.ELEMENT_TYPES[etype.zero_point_code]
        scale = np.asarray(qt.scale)
        zero_point = np.asarray(qt.zero_point)
        scale_record = self._new_record(scale_name, L.FLOAT32, tuple(int(d) for d in scale.shape), L.ROLE_SCALE)
        zp_record = self._new_record(zp_name, zp_type, tuple(int(d) for d in zero_point.shape), L.ROLE_ZERO_POINT)
        if scale_record.name == zp_record.name or record.name in (scale_record.name, zp_record.name):
            raise E.DuplicateNameError(f"derived names collide for {name!r}", tensor=name)

        if qt.axis is None:
            scheme, axis, block = L.SCHEME_PER_TENSOR, 0, 0
        elif qt.block_size:
            scheme, axis, block = L.SCHEME_BLOCKED, int(qt.axis), int(qt.block_size)
        else:
            scheme, axis, block = L.SCHEME_PER_AXIS, int(qt.axis), 0
        if block > 0xFFFFFFFF:
            raise E.BlockSizeError(f"block size {block} does not fit in 32 bits", tensor=name)
        record.scheme, record.axis, record.block_size = scheme, axis, block
        record.convention = L.CONVENTION_CODES[qt.convention]
        if scale.dtype != np.float32:
            raise E.QuantTypeError(f"scale dtype is {scale.dtype}, must be float32", tensor=name)
        if zero_point.dtype != zp_type.numpy:
            raise E.QuantTypeError(f"zero point dtype is {zero_point.dtype}, must be {zp_type.name}", tensor=name)
        if not scale_shape_ok(shape, scheme, axis, block, scale.shape):
            raise E.ScaleCountError(
                f"scale shape {scale.shape} does not match {_SCHEME_NAMES[scheme]} quantization of shape "
                f"{shape} (axis {axis}, block size {block})", tensor=name)
        if zero_point.shape != scale.shape:
            raise E.ZeroPointShapeError(
                f"zero point shape {zero_point.shape} != scale shape {scale.shape}", tensor=name)
        bad = ~(np.isfinite(scale) & (scale > 0))
        if bad.any():
            raise E.BadScaleError(f"scale {float(scale.reshape(-1)[np.argmax(bad.reshape(-1))])} is not finite and positive",
                                  tensor=name)
        qmin, qmax = etype.qrange
        zp_bad = (zero_point < qmin) | (zero_point > qmax)
        if zp_bad.any():
            raise E.ZeroPointRangeError(
                f"zero point {zero_point.reshape(-1)[np.argmax(zp_bad.reshape(-1))]} outside [{qmin}, {qmax}] "
                f"of {etype.name}", tensor=name)

        # Version 2 encodings, both lossless: float16 scales when float16 holds every
        # scale exactly, no zero-point record when every zero point is 0.
        half = False
        omit_zp = False
        if self._compact:
            with np.errstate(over="ignore"):
                half = bool(np.array_equal(scale.astype(np.float16).astype(np.float32), scale))
            omit_zp = not zero_point.any()
        if half:
            scale_record.etype = L.FLOAT16
        if etype.packed and qt.packed is not None:
            # a tensor read from a file, still packed: every nibble is a value of the type
            chunks = iter(L.packed_chunks(qt.packed, math.prod(shape), etype.bits))
        elif etype.packed:
            data = qt.data
            if data.size and (int(data.min()) < qmin or int(data.max()) > qmax):
                raise E.DataRangeError(f"tensor {name!r}: {etype.name} data outside [{qmin}, {qmax}]")
            flat = np.ascontiguousarray(data).reshape(-1)
            step = _PACK_CHUNK  # a multiple of 4 elements: chunks pack to whole bytes
            chunks = (L.pack_subbyte(flat[start:start + step], etype.bits) for start in range(0, flat.size, step))
        else:
            chunks = iter([self._little_endian(qt.data, etype.numpy)])
        index = len(self._records)
        record.scale_index, record.zero_point_index = index + 1, (L.NONE if omit_zp else index + 2)
        scale_record.owner_index = zp_record.owner_index = index
        self._commit(record, chunks)
        self._commit(scale_record, [self._little_endian(scale, scale_record.etype.numpy)])
        if not omit_zp:
            self._commit(zp_record, [self._little_endian(zero_point, zp_type.numpy)])
        if half or omit_zp:
            self._version = L.VERSION

    # -- completion ----------------------------------------------------------------------

    def _finish(self) -> None:
        meta_bytes, meta_count = encode_metadata(self._metadata)
        order = sorted(range(len(self._records)), key=lambda i: self._records[i].name)
        parts: list[bytes] = []
        name_offset = 0
        for record in self._records:
            parts.append(record.pack(name_offset))
            name_offset += len(record.name) + 1
        parts.append(np.asarray(order, dtype="<u4").tobytes())
        names = b"".join(r.name + b"\0" for r in self._records)
        parts.append(names)
        parts.append(meta_bytes)
        directory = b"".join(parts)
        if len(directory) > L.MAX_DIRECTORY:
            raise E.HeaderTooLargeError(f"directory of {len(directory)} bytes is over the {L.MAX_DIRECTORY} cap")
        directory_offset = self._offset
        file_size = directory_offset + len(directory)
        head = L.PREAMBLE.pack(L.MAGIC, L.BYTE_ORDER_MARK, self._version, 0, L.ALIGNMENT, file_size,
                               directory_offset, len(directory), len(self._records), meta_count,
                               len(names), 0)[:60]
        crc = L.crc32c(directory, L.crc32c(head))
        self._write_all(directory)
        self._file.seek(0)
        self._write_all(head + crc.to_bytes(4, "little"))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._tmp, self.path)
        self._tmp = None
        self._done = True
        _fsync_directory(self.path.parent)


_SCHEME_NAMES = {L.SCHEME_PER_TENSOR: "per-tensor", L.SCHEME_PER_AXIS: "per-axis", L.SCHEME_BLOCKED: "blocked"}




def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX: fsync the directory entry)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save_tensors(
    path: str | os.PathLike,
    tensors: Mapping[str, np.ndarray | QuantizedTensor],
    metadata: Mapping[str, Any] | None = None,
    *,
    version: int | None = None,
) -> None:
    """Write a mapping of tensors and optional metadata to a .qcm file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; replaced atomically if it exists.
    tensors : Mapping[str, numpy.ndarray | QuantizedTensor]
        Written in the mapping's iteration order.
    metadata : Mapping[str, str | int | float | bool | list], optional
        Typed key-value metadata (docs/FORMAT.md, "Metadata").
    version : int, optional
        None: the compact encoding (see :class:`QcmWriter`); 1: a version-1 file.

    Raises
    ------
    FormatError
        The subclass of the rule the content would break (see :class:`QcmWriter`).

    Notes
    -----
    Deterministic: the same tensors in the same order with the same metadata give the
    same bytes.
    """
    with QcmWriter(path, metadata, version=version) as writer:
        for name, tensor in tensors.items():
            writer.add_tensor(name, tensor)
