"""Byte layout of .qcm version 1 (docs/FORMAT.md): constants, element types, the
preamble and tensor-record structs, sub-byte packing and the CRC-32C binding.

Everything here is shared by the writer and the reader, so the two cannot disagree.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .._native import ffi, lib

MAGIC = b"\x89QCM\r\n\x1a\n"
BYTE_ORDER_MARK = 0x01020304
#: The newest format version written and read; version 2 adds float16 scales and
#: omitted (all-zero) zero points. The writer stamps a file 2 only when it uses one of
#: those, so every other file stays byte-identical to (and readable as) version 1.
VERSION = 2
VERSION_MIN = 1
ALIGNMENT = 64
PREAMBLE_SIZE = 64
RECORD_SIZE = 128
INDEX_ENTRY_SIZE = 4
MAX_RANK = 8
MAX_DIRECTORY = 128 << 20
MAX_TENSORS = 262144
MAX_METADATA = 65536
MAX_NAME = 1024
MAX_KEY = 256
NONE = 0xFFFFFFFF
INT64_MAX = (1 << 63) - 1

# Preamble: magic, byte-order mark, version, flags, alignment, file size, directory
# offset, directory length, tensor count, metadata count, names length, header CRC.
PREAMBLE = struct.Struct("<8sIIIIQQQIIII")
assert PREAMBLE.size == PREAMBLE_SIZE

# Tensor record: data offset, data size, name offset, name length, element type, rank,
# role, scheme, convention, reserved0, axis, block size, scale index, zero-point index,
# owner index, data CRC, reserved1, dims[8].
RECORD = struct.Struct("<QQIIHBBBBHIIIIIIQ8Q")
assert RECORD.size == RECORD_SIZE

ROLE_DATA, ROLE_SCALE, ROLE_ZERO_POINT = 0, 1, 2
SCHEME_NONE, SCHEME_PER_TENSOR, SCHEME_PER_AXIS, SCHEME_BLOCKED = 0, 1, 2, 3
CONVENTION_CODES = {"onnx": 1, "tflite": 2, "pytorch": 3}
CONVENTION_NAMES = {code: name for name, code in CONVENTION_CODES.items()}

#: Suffixes of the names given to a quantized tensor's scale and zero-point records.
SCALE_SUFFIX = "::scale"
ZERO_POINT_SUFFIX = "::zero_point"


@dataclass(frozen=True)
class ElementType:
    """One element type code of the tensor table.

    Attributes
    ----------
    code : int
        The on-disk code.
    name : str
        ``"float32"``, ``"int4"``, ...
    bits : int
        Width of one element (4 and 2 for the packed types).
    numpy : numpy.dtype
        Little-endian dtype of the stored elements (uint8 bytes for packed types).
    container : numpy.dtype
        Dtype of one element once unpacked (int8 / uint8 for sub-byte types).
    qrange : tuple of int or None
        ``(qmin, qmax)`` when the type may hold quantized data, else None.
    zero_point_code : int
        Element type code of the zero points of quantized data of this type.
    """

    code: int
    name: str
    bits: int
    numpy: np.dtype
    container: np.dtype
    qrange: tuple[int, int] | None
    zero_point_code: int

    @property
    def packed(self) -> bool:
        """True for the sub-byte types stored several to a byte."""
        return self.bits < 8

    def byte_size(self, count: int) -> int:
        """Bytes taken by ``count`` elements (packed types round up to whole bytes)."""
        if self.bits >= 8:
            return count * (self.bits // 8)
        per_byte = 8 // self.bits
        return -(-count // per_byte)


def _et(code, name, bits, np_name, container, qrange=None, zp_code=0):
    return ElementType(code, name, bits, np.dtype(np_name), np.dtype(container), qrange, zp_code)


ELEMENT_TYPES: dict[int, ElementType] = {
    t.code: t
    for t in (
        _et(1, "float32", 32, "<f4", "<f4"),
        _et(2, "float16", 16, "<f2", "<f2"),
        _et(3, "float64", 64, "<f8", "<f8"),
        _et(4, "int8", 8, "i1", "i1", (-128, 127), 4),
        _et(5, "uint8", 8, "u1", "u1", (0, 255), 5),
        _et(6, "int16", 16, "<i2", "<i2", (-32768, 32767), 6),
        _et(7, "uint16", 16, "<u2", "<u2", (0, 65535), 7),
        _et(8, "int32", 32, "<i4", "<i4", (-(1 << 31), (1 << 31) - 1), 8),
        _et(9, "uint32", 32, "<u4", "<u4"),
        _et(10, "int64", 64, "<i8", "<i8"),
        _et(11, "uint64", 64, "<u8", "<u8"),
        _et(12, "int4", 4, "u1", "i1", (-8, 7), 4),
        _et(13, "uint4", 4, "u1", "u1", (0, 15), 5),
        _et(14, "int2", 2, "u1", "i1", (-2, 1), 4),
        _et(15, "uint2", 2, "u1", "u1", (0, 3), 5),
    )
}
ELEMENT_TYPES_BY_NAME: dict[str, ElementType] = {t.name: t for t in ELEMENT_TYPES.values()}
FLOAT32 = ELEMENT_TYPES_BY_NAME["float32"]
FLOAT16 = ELEMENT_TYPES_BY_NAME["float16"]

#: NumPy dtypes a plain (unquantized) array may have, by dtype name.
PLAIN_TYPES: dict[str, ElementType] = {
    name: ELEMENT_TYPES_BY_NAME[name]
    for name in ("float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32",
                 "uint32", "int64", "uint64")
}


def align(offset: int) -> int:
    """Round ``offset`` up to the next multiple of 64."""
    return -(-offset // ALIGNMENT) * ALIGNMENT


def pack_subbyte(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack integers of ``bits`` bits (2 or 4), first element in the lowest bits.

    Parameters
    ----------
    values : numpy.ndarray
        int8 / uint8 values already known to fit in ``bits`` bits (two's complement).
    bits : int
        2 or 4.

    Returns
    -------
    numpy.ndarray
        uint8, ``ceil(values.size * bits / 8)`` bytes; unused high bits of the last byte
        are zero.

    Notes
    -----
    Element ``k`` occupies bits ``(k % p) * bits`` .. ``+ bits - 1`` of byte ``k // p``,
    with ``p = 8 // bits`` (the ONNX int4 layout, extended to int2).
    """
    per_byte = 8 // bits
    flat = values.reshape(-1).view(np.uint8) & np.uint8((1 << bits) - 1)
    pad = (-flat.size) % per_byte
    if pad:
        flat = np.concatenate([flat, np.zeros(pad, np.uint8)])
    lanes = flat.reshape(-1, per_byte)
    out = np.zeros(lanes.shape[0], np.uint8)
    for k in range(per_byte):
        out |= lanes[:, k] << np.uint8(k * bits)
    return out


def packed_chunks(packed: np.ndarray, count: int, bits: int) -> list[np.ndarray]:
    """``count`` packed values of ``bits`` bits as byte runs to write, with the unused high
    bits of the last byte cleared (a file read with ``verify=False`` may carry other bits
    there, which a file written from them must not); no copy but of that last byte."""
    packed = np.asarray(packed, np.uint8).reshape(-1)
    used = (count * bits) % 8
    if not used or not packed.size:
        return [packed]
    last = packed[-1:] & np.uint8((1 << used) - 1)
    return [packed[:-1], last]


def unpack_subbyte(packed: np.ndarray, count: int, bits: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_subbyte`: ``count`` values as int8 (signed) or uint8.

    Notes
    -----
    Signed values are sign-extended: ``v - 2**bits`` when ``v >= 2**(bits - 1)``.
    """
    per_byte = 8 // bits
    mask = np.uint8((1 << bits) - 1)
    packed = np.asarray(packed, np.uint8).reshape(-1)
    # in place, so a table of n values needs n bytes plus one lane's worth of scratch
    # (a 30522 x 384 int4 embedding unpacked through int16 temporaries peaked at 6 n)
    lanes = np.empty((packed.size, per_byte), np.uint8)
    shifted = np.empty(packed.size, np.uint8)
    for k in range(per_byte):
        np.right_shift(packed, np.uint8(k * bits), out=shifted)
        np.bitwise_and(shifted, mask, out=lanes[:, k])
    del shifted
    flat = lanes.reshape(-1)[:count]
    if not signed:
        return flat
    half = np.int8(1 << (bits - 1))
    values = flat.view(np.int8)  # 0 .. 2**bits - 1: (v ^ half) - half cannot wrap in int8
    np.bitwise_xor(values, half, out=values)
    np.subtract(values, half, out=values)
    return values


def crc32c(data, crc: int = 0) -> int:
    """CRC-32C of a bytes-like object (C core; hardware instructions when available)."""
    view = memoryview(data)
    if view.nbytes == 0:
        return crc
    if not view.c_contiguous:
        raise ValueError("crc32c needs a contiguous buffer")
    return lib.qc_crc32c(crc, ffi.from_buffer(view.cast("B") if view.ndim != 1 or view.format != "B" else view),
                         view.nbytes)
