"""ONNX's packed byte layout for 4-bit and 2-bit integers (docs/ARITHMETIC.md, "Integer types").

Elements are taken in C order and packed from the low bits up: for int4/uint4 the first
element of each pair is the low nibble; for int2/uint2 element ``i`` of each group of four
occupies bits ``2*(i % 4)`` and ``2*(i % 4) + 1``. When the element count is not a
multiple of the per-byte count, the unused high bits of the last byte are 0.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DTypeError, QuantParamError, ShapeError

__all__ = ["pack_int2", "pack_int4", "unpack_int2", "unpack_int4"]


def _pack(values: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    name = f"{'' if signed else 'u'}int{bits}"
    values = np.asarray(values)
    container = np.dtype(np.int8 if signed else np.uint8)
    if values.dtype != container:
        raise DTypeError(f"{name} values must be held in {container}, got {values.dtype}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    flat = values.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < lo or flat.max() > hi):
        bad = flat[(flat < lo) | (flat > hi)][0]
        raise QuantParamError(f"value {bad} outside the {name} range [{lo}, {hi}]")
    per_byte = 8 // bits
    padded = np.zeros(math.ceil(flat.size / per_byte) * per_byte, dtype=np.int64)
    padded[: flat.size] = flat & ((1 << bits) - 1)  # two's complement field of `bits` bits
    groups = padded.reshape(-1, per_byte)
    shifts = np.arange(per_byte, dtype=np.int64) * bits
    return (groups << shifts).sum(axis=1).astype(np.uint8)


def _unpack(packed: np.ndarray, shape: int | tuple[int, ...], bits: int, signed: bool) -> np.ndarray:
    name = f"{'' if signed else 'u'}int{bits}"
    packed = np.asarray(packed)
    if packed.dtype != np.uint8:
        raise DTypeError(f"packed {name} data must be uint8, got {packed.dtype}")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ShapeError(f"negative dimension in shape {shape}")
    count = math.prod(shape)
    per_byte = 8 // bits
    if packed.size != math.ceil(count / per_byte):
        raise ShapeError(
            f"{packed.size} bytes cannot hold exactly {count} {name} values "
            f"(needs {math.ceil(count / per_byte)})"
        )
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    fields = ((packed.reshape(-1, 1) >> shifts) & ((1 << bits) - 1)).reshape(-1)[:count]
    if not signed:
        return fields.astype(np.uint8).reshape(shape)
    values = fields.astype(np.int16)
    values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    return values.astype(np.int8).reshape(shape)


def pack_int4(values: np.ndarray, *, signed: bool = True) -> np.ndarray:
    """Pack 4-bit values two per byte, first element in the low nibble (ONNX layout).

    Parameters
    ----------
    values : numpy.ndarray
        int8 array with values in [-8, 7] (``signed=True``) or uint8 in [0, 15].
    signed : bool
        int4 (True) or uint4 (False).

    Returns
    -------
    numpy.ndarray
        1-D uint8 array of ``ceil(values.size / 2)`` bytes.

    Raises
    ------
    DTypeError
        ``values`` is not in the container dtype of the type.
    QuantParamError
        A value is outside the type's range.

    Examples
    --------
    >>> pack_int4(np.array([1, 2, 3, 5, -8, -6], np.int8))
    array([ 33,  83, 168], dtype=uint8)
    """
    return _pack(values, 4, signed)


def unpack_int4(packed: np.ndarray, shape: int | tuple[int, ...], *, signed: bool = True) -> np.ndarray:
    """Unpack ONNX-layout 4-bit values into one value per element.

    Parameters
    ----------
    packed : numpy.ndarray
        uint8 bytes, exactly ``ceil(prod(shape) / 2)`` of them.
    shape : int or tuple of int
        Shape (or element count) of the result.
    signed : bool
        int4 (True, result int8, sign-extended) or uint4 (False, result uint8).

    Returns
    -------
    numpy.ndarray
        Array of ``shape``. The padding nibble of an odd count is ignored.

    Raises
    ------
    DTypeError
        ``packed`` is not uint8.
    ShapeError
        The byte count does not match ``shape``.
    """
    return _unpack(packed, shape, 4, signed)


def pack_int2(values: np.ndarray, *, signed: bool = True) -> np.ndarray:
    """Pack 2-bit values four per byte, first element in the lowest two bits (ONNX layout).

    Parameters
    ----------
    values : numpy.ndarray
        int8 array with values in [-2, 1] (``signed=True``) or uint8 in [0, 3].
    signed : bool
        int2 (True) or uint2 (False).

    Returns
    -------
    numpy.ndarray
        1-D uint8 array of ``ceil(values.size / 4)`` bytes.

    Raises
    ------
    DTypeError
        ``values`` is not in the container dtype of the type.
    QuantParamError
        A value is outside the type's range.

    Examples
    --------
    >>> pack_int2(np.array([0, 1, 2, 3, 1], np.uint8), signed=False)
    array([228,   1], dtype=uint8)
    """
    return _pack(values, 2, signed)


def unpack_int2(packed: np.ndarray, shape: int | tuple[int, ...], *, signed: bool = True) -> np.ndarray:
    """Unpack ONNX-layout 2-bit values into one value per element.

    Parameters
    ----------
    packed : numpy.ndarray
        uint8 bytes, exactly ``ceil(prod(shape) / 4)`` of them.
    shape : int or tuple of int
        Shape (or element count) of the result.
    signed : bool
        int2 (True, result int8, sign-extended) or uint2 (False, result uint8).

    Returns
    -------
    numpy.ndarray
        Array of ``shape``; padding bits of the last byte are ignored.

    Raises
    ------
    DTypeError
        ``packed`` is not uint8.
    ShapeError
        The byte count does not match ``shape``.
    """
    return _unpack(packed, shape, 2, signed)
