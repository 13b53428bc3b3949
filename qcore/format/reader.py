"""The .qcm reader: memory-maps the file, validates it, hands out zero-copy NumPy views.

The rules of docs/FORMAT.md are checked in the order the document lists them (header
level in :mod:`qcore.format.validate`, value level here; the C reader in
csrc/src/format.c follows the same order), and the first broken one raises its own
:class:`~qcore.format.errors.QcmError` subclass.
"""

from __future__ import annotations

import functools
import math
import mmap
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from .._native import ffi, lib
from ..reference.tensor import QuantizedTensor
from . import errors as E
from . import layout as L
from .validate import ROLE_NAMES, SCHEME_NAMES, parse

Tensor = Union[np.ndarray, QuantizedTensor]
_PACKED_CODES = frozenset(t.code for t in L.ELEMENT_TYPES.values() if t.packed)


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


def _make_info(table: np.ndarray, names: list[str], i: int) -> TensorInfo:
    rec = table[i]
    rank = int(rec["rank"])
    convention = int(rec["convention"])
    return TensorInfo(
        i, names[i], L.ELEMENT_TYPES[int(rec["element_type"])].name, tuple(int(d) for d in rec["dims"][:rank]),
        int(rec["data_offset"]), int(rec["data_size"]), int(rec["crc"]), ROLE_NAMES[int(rec["role"])],
        SCHEME_NAMES[int(rec["scheme"])], int(rec["axis"]), int(rec["block_size"]),
        L.CONVENTION_NAMES.get(convention), _opt(int(rec["scale_index"])), _opt(int(rec["zero_point_index"])),
        _opt(int(rec["owner_index"])))


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
                parse(f.read(), size)  # raises TruncatedError
            self._map: mmap.mmap | None = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            directory = parse(self._map, size)
            self.metadata = directory.metadata
            self.version = directory.version
            self._table = directory.table
            self._names = directory.names
            self._infos: list[TensorInfo | None] = [None] * len(self._names)
            self._by_name = dict(zip(self._names, range(len(self._names))))
            roles = self._table["role"]
            self._keys = [self._names[i] for i in np.flatnonzero(roles == L.ROLE_DATA)]
            self._verified = False
            self._params_checked: set[int] = set()
            if verify:
                self.verify()
        except BaseException:
            self.close()
            raise

    # -- mapping -------------------------------------------------------------------------

    def _info(self, i: int) -> TensorInfo:
        info = self._infos[i]
        if info is None:
            info = self._infos[i] = _make_info(self._table, self._names, i)
        return info

    def __getitem__(self, name: str) -> Tensor:
        i = self._by_name.get(name)
        if i is None or self._table["role"][i] != L.ROLE_DATA:
            raise KeyError(name)
        info = self._info(i)
        if info.scheme == "none":
            return self._view(info)
        if not self._verified and info.index not in self._params_checked:
            self._verify_params(info)
            self._params_checked.add(info.index)
        scale = self._view(self._info(info.scale_index))
        if scale.dtype != np.float32:
            scale = scale.astype(np.float32)  # float16 scales widen exactly (docs/ARITHMETIC.md)
        etype = L.ELEMENT_TYPES_BY_NAME[info.element_type]
        if info.zero_point_index is None:  # omitted: every zero point is 0
            zero_point = np.zeros(scale.shape, L.ELEMENT_TYPES[etype.zero_point_code].numpy)
        else:
            zero_point = self._view(self._info(info.zero_point_index))
        data = self._view(info)
        if etype.packed:
            # kept packed (a view of the file); unpacked only if something reads .data
            count = math.prod(info.shape)
            packed = data.reshape(-1)[:(count * etype.bits + 7) // 8]
            return QuantizedTensor.from_packed(
                packed, tuple(info.shape),
                functools.partial(L.unpack_subbyte, packed, count, etype.bits, etype.qrange[0] < 0),
                scale=scale, zero_point=zero_point, dtype=info.element_type,
                axis=None if info.scheme == "per_tensor" else info.axis, block_size=info.block_size,
                convention=info.convention)
        return QuantizedTensor(
            data=data, scale=scale, zero_point=zero_point, dtype=info.element_type,
            axis=None if info.scheme == "per_tensor" else info.axis, block_size=info.block_size,
            convention=info.convention)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, name: object) -> bool:
        i = self._by_name.get(name)  # type: ignore[arg-type]
        return i is not None and self._table["role"][i] == L.ROLE_DATA

    def info(self, name: str) -> TensorInfo:
        """The record of any tensor, including ``name + "::scale"`` / ``"::zero_point"``."""
        return self._info(self._by_name[name])

    def infos(self) -> list[TensorInfo]:
        """Every record in table (data) order."""
        return [self._info(i) for i in range(len(self._names))]

    def raw(self, name: str) -> np.ndarray:
        """Zero-copy view of the stored elements of any tensor.

        For packed types (int4, uint4, int2, uint2) this is the uint8 bytes, two (four)
        elements per byte, first element in the low bits; otherwise the typed array.
        """
        return self._view(self.info(name))

    def _view(self, info: TensorInfo) -> np.ndarray:
        if self._map is None:
            raise ValueError(f"{self.path} is closed")
        etype = L.ELEMENT_TYPES_BY_NAME[info.element_type]
        if etype.packed:
            return np.frombuffer(self._map, np.uint8, info.nbytes, info.offset)
        count = math.prod(info.shape)
        return np.frombuffer(self._map, etype.numpy, count, info.offset).reshape(info.shape)

    def release_pages(self, offset: int = 0, size: int | None = None) -> None:
        """Let the kernel drop the resident pages of ``[offset, offset + size)`` of the map.

        The map is read-only and file-backed, so this never changes what is read: a later
        access faults the pages back in from the page cache. It lowers the resident set
        (and its peak) after the data has been read once, e.g. by :meth:`verify` or by a
        runtime that keeps its own packed copy of some tensors. Whole pages only; a no-op
        where ``madvise(MADV_DONTNEED)`` is unavailable or the file is closed.
        """
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        length = len(self._map)
        start = (offset // mmap.PAGESIZE) * mmap.PAGESIZE
        end = length if size is None else min(length, offset + size)
        if end > start:
            try:
                self._map.madvise(mmap.MADV_DONTNEED, start, end - start)
            except (OSError, ValueError):
                pass  # advice only

    # -- value-level rules ---------------------------------------------------------------

    def verify(self) -> None:
        """Check every value-level rule: checksums and padding of all tensors, then scales
        and zero points (docs/FORMAT.md, "Value rules").

        Raises
        ------
        TensorChecksumError, NonZeroPaddingError, BadScaleError, ZeroPointRangeError
        """
        table = self._table
        offsets = table["data_offset"].tolist()
        sizes = table["data_size"].tolist()
        crcs = table["crc"].tolist()
        codes = table["element_type"].tolist()
        # Bits of the last byte in use, for packed types with a partial last byte, else 0.
        unused_dims = np.arange(L.MAX_RANK)[None, :] >= table["rank"][:, None]
        counts = np.prod(np.where(unused_dims, 1, table["dims"]), axis=1, dtype=np.uint64)
        bits = np.array([L.ELEMENT_TYPES[c].bits if c in _PACKED_CODES else 0 for c in codes], np.uint64)
        used_bits = ((counts % np.uint64(8)) * bits % np.uint64(8)).tolist()
        if self._map is None:
            raise ValueError(f"{self.path} is closed")
        base = ffi.from_buffer("uint8_t[]", self._map)
        try:
            for i, (offset, size, stored) in enumerate(zip(offsets, sizes, crcs)):
                crc = lib.qc_crc32c(0, base + offset, size) if size else 0
                if crc != stored:
                    raise E.TensorChecksumError(f"computed 0x{crc:08x}, stored 0x{stored:08x}", tensor=self._names[i])
                end = offset + size
                pad = self._map[end:-(-end // L.ALIGNMENT) * L.ALIGNMENT]
                if pad.count(0) != len(pad) or (used_bits[i] and self._map[end - 1] >> used_bits[i]):
                    self._padding_error(i, codes[i], end)
                self.release_pages(offset, size)  # checked once: no need to keep it resident
        finally:
            base = None  # release the buffer export before any close()
        self._verify_all_params()
        self._verified = True

    def _verify_all_params(self) -> None:
        """Rules scale-value and zero-point-range for every quantized tensor at once; the
        first tensor (in table order) with a bad value is re-checked exactly to raise."""
        table = self._table
        quantized = np.flatnonzero((table["role"] == L.ROLE_DATA) & (table["scheme"] != L.SCHEME_NONE))
        if quantized.size == 0:
            return

        def bounds_of(counts: list[int]) -> np.ndarray:
            bounds = np.zeros(len(counts) + 1, np.int64)
            np.cumsum(counts, out=bounds[1:])
            return bounds

        def per_tensor(bad: np.ndarray, bounds: np.ndarray) -> np.ndarray:
            running = np.zeros(bad.size + 1, np.int64)
            np.cumsum(bad, out=running[1:])
            return running[bounds[1:]] > running[bounds[:-1]]

        scale_index = table["scale_index"][quantized]
        scale_types = [L.ELEMENT_TYPES[c].numpy for c in table["element_type"][scale_index].tolist()]
        counts = [size // t.itemsize for t, size in zip(scale_types, table["data_size"][scale_index].tolist())]
        scales = np.concatenate([np.frombuffer(self._map, t, count, offset).astype(np.float32) for t, count, offset
                                 in zip(scale_types, counts, table["data_offset"][scale_index].tolist())])
        flagged = per_tensor(~(np.isfinite(scales) & (scales > 0)), bounds_of(counts))

        with_zp = table["zero_point_index"][quantized] != L.NONE
        if not with_zp.any():
            if flagged.any():
                self._verify_params(self._info(int(quantized[np.argmax(flagged)])))
            return
        zp_index = table["zero_point_index"][quantized[with_zp]]
        zp_types = [L.ELEMENT_TYPES[c] for c in table["element_type"][zp_index].tolist()]
        data_types = [L.ELEMENT_TYPES[c] for c in table["element_type"][quantized[with_zp]].tolist()]
        offsets = table["data_offset"][zp_index].tolist()
        sizes = table["data_size"][zp_index].tolist()
        parts = [np.frombuffer(self._map, t.numpy, size // t.numpy.itemsize, offset).astype(np.int64)
                 for t, size, offset in zip(zp_types, sizes, offsets)]
        counts = [part.size for part in parts]
        values = np.concatenate(parts)
        low = np.repeat([t.qrange[0] for t in data_types], counts)
        high = np.repeat([t.qrange[1] for t in data_types], counts)
        flagged[with_zp] |= per_tensor((values < low) | (values > high), bounds_of(counts))
        if flagged.any():
            self._verify_params(self._info(int(quantized[np.argmax(flagged)])))

    def _padding_error(self, i: int, code: int, end: int) -> None:
        """Rule padding for record ``i``: the unused bits of a packed type's last byte,
        then the padding bytes."""
        info = self._info(i)
        etype = L.ELEMENT_TYPES[code]
        if etype.packed and info.nbytes:
            used = (math.prod(info.shape) * etype.bits) % 8
            if used and self._map[end - 1] >> used:
                raise E.NonZeroPaddingError(f"unused bits of the last byte (at {end - 1}) are not zero",
                                            tensor=info.name)
        pad = self._map[end:L.align(end)]
        if pad.count(0) != len(pad):
            at = end + next(k for k, b in enumerate(pad) if b)
            raise E.NonZeroPaddingError(f"padding byte at {at} is not zero", tensor=info.name)

    def _verify_params(self, info: TensorInfo) -> None:
        scale = self._view(self._info(info.scale_index)).reshape(-1)
        bad = ~(np.isfinite(scale) & (scale > 0))
        if bad.any():
            k = int(np.argmax(bad))
            raise E.BadScaleError(f"scale[{k}] = {float(scale[k])} is not finite and positive", tensor=info.name)
        if info.zero_point_index is None:
            return
        zero_point = self._view(self._info(info.zero_point_index)).reshape(-1)
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
