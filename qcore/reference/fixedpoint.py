"""TFLite's integer-only requantization (docs/ARITHMETIC.md, "TFLite convention").

A real multiplier ``M > 0`` is stored as an int32 significand ``q`` in ``[2**30, 2**31)``
and a power-of-two exponent ``shift`` with ``M ~= q * 2**(shift - 31)``; an int32
accumulator is then rescaled with integer operations only. These functions follow
TFLite's ``QuantizeMultiplier`` and ``MultiplyByQuantizedMultiplier`` (the double-rounding
build) and gemmlowp's ``SaturatingRoundingDoublingHighMul`` / ``RoundingDivideByPOT``, and
agree bit for bit with the inline C helpers in ``csrc/src/requant.h``.

One decision differs from TFLite: TFLite shifts left in int32 (``x * (1 << shift)``),
undefined behaviour when the product overflows; qcore saturates the shifted value to the
int32 range instead (the C helpers do the same).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DTypeError, QuantParamError, ShapeError

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: Valid ``shift`` values of :func:`multiply_by_quantized_multiplier`. gemmlowp's
#: RoundingDivideByPOT accepts exponents up to 31; a left shift of 31 saturates every
#: non-zero accumulator.
MIN_SHIFT = -31
MAX_SHIFT = 31


def round_half_away(x: ArrayLike) -> np.ndarray:
    """Round to the nearest integer, ties away from zero (C ``round``/``roundf``).

    Exact for every finite float: ``x - trunc(x)`` is computed without rounding error.
    The result keeps the float dtype of ``x``.
    """
    x = np.asarray(x)
    whole = np.trunc(x)
    with np.errstate(invalid="ignore"):  # inf - inf: the NaN fraction leaves inf unchanged
        frac = x - whole
    return whole + np.where(np.abs(frac) >= 0.5, np.sign(x), 0).astype(x.dtype)


def _as_int32(name: str, value: ArrayLike) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.size and (arr.min() < INT32_MIN or arr.max() > INT32_MAX):
        raise QuantParamError(f"{name} has values outside the int32 range")
    return arr.astype(np.int64)


def quantize_multiplier(real: ArrayLike) -> tuple:
    """Decompose a real multiplier into TFLite's (int32 significand, shift).

    Parameters
    ----------
    real : float or array_like of float
        The multiplier, e.g. ``input_scale * weight_scale / output_scale`` computed in
        float64. Must be finite and >= 0.

    Returns
    -------
    multiplier, shift
        Python ints for a scalar input; int32 arrays of the input's shape otherwise.
        ``multiplier`` is in ``[2**30, 2**31)``, or 0 together with ``shift == 0``.

    Raises
    ------
    QuantParamError
        ``real`` is negative, NaN or infinite.

    Notes
    -----
    ``(m, e) = frexp(real)`` with ``m`` in ``[0.5, 1)``;
    ``q = round_half_away(m * 2**31)``; if ``q == 2**31`` then ``q = 2**30`` and
    ``e += 1``; ``real == 0`` or ``e < -31`` (``real`` below about ``2**-32``) gives
    ``(0, 0)``, TFLite's flush to zero. ``shift = e`` (positive: left shift). No upper
    bound is applied, as in TFLite; :func:`multiply_by_quantized_multiplier` rejects
    shifts above 31.
    """
    arr = np.asarray(real, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise QuantParamError("real multiplier must be finite")
    if np.any(arr < 0):
        raise QuantParamError("real multiplier must be >= 0 (TFLite's positive-multiplier form)")
    mantissa, exponent = np.frexp(arr)
    q = round_half_away(mantissa * float(1 << 31)).astype(np.int64)
    exponent = exponent.astype(np.int64)
    carry = q == (1 << 31)
    q = np.where(carry, q // 2, q)
    exponent = np.where(carry, exponent + 1, exponent)
    flush = (arr == 0) | (exponent < -31)
    q = np.where(flush, 0, q).astype(np.int32)
    exponent = np.where(flush, 0, exponent).astype(np.int32)
    if arr.ndim == 0:
        return int(q), int(exponent)
    return q, exponent


def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 arrays (broadcasting).

    Returns
    -------
    numpy.ndarray
        int32: the high 32 bits of ``2 * a * b``, rounded half up (toward +inf).

    Raises
    ------
    DTypeError, QuantParamError
        Non-integer input, or values outside int32.

    Notes
    -----
    With ``ab = a * b`` in 64 bits: ``nudge = 2**30`` if ``ab >= 0`` else ``1 - 2**30``;
    the result is ``(ab + nudge) / 2**31`` truncated toward zero, which equals
    ``floor((ab + 2**30) / 2**31)``. ``a == b == INT32_MIN`` saturates to ``INT32_MAX``.
    """
    a64 = _as_int32("a", a)
    b64 = _as_int32("b", b)
    ab = a64 * b64
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    # C's truncating division by 2**31, spelled with shifts on the magnitude.
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    overflow = (a64 == INT32_MIN) & (b64 == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int32)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: ``x / 2**exponent`` rounded half away from zero.

    Parameters
    ----------
    x : array_like of int32
    exponent : int or array_like of int, in ``[0, 31]`` (broadcasts against ``x``)

    Returns
    -------
    numpy.ndarray
        int32.

    Raises
    ------
    QuantParamError
        An exponent outside ``[0, 31]`` or ``x`` outside int32.

    Notes
    -----
    ``mask = 2**exponent - 1``, ``remainder = x & mask``,
    ``threshold = (mask >> 1) + (x < 0)``; result ``(x >> exponent) + (remainder > threshold)``
    with an arithmetic right shift.
    """
    x64 = _as_int32("x", x)
    e = np.asarray(exponent)
    if e.dtype.kind not in "iu":
        raise DTypeError(f"exponent must be an integer array, got dtype {e.dtype}")
    if e.size and (e.min() < 0 or e.max() > 31):
        raise QuantParamError("exponent must be in [0, 31]")
    e = e.astype(np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x64 & mask
    threshold = (mask >> 1) + (x64 < 0)
    return ((x64 >> e) + (remainder > threshold)).astype(np.int32)


def multiply_by_quantized_multiplier(acc: ArrayLike, multiplier: ArrayLike, shift: ArrayLike) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), vectorised.

    Parameters
    ----------
    acc : array_like of int32
        Accumulators.
    multiplier : int or array_like of int32
        Significands from :func:`quantize_multiplier` (any int32 is accepted).
    shift : int or array_like of int, in ``[-31, 31]``
        Exponents from :func:`quantize_multiplier`. ``multiplier`` and ``shift``
        broadcast against ``acc`` (per-channel: shape ``(C,)`` against ``(..., C)``, or
        reshape them for another axis).

    Returns
    -------
    numpy.ndarray
        int32, the broadcast shape.

    Raises
    ------
    DTypeError
        A non-integer argument.
    QuantParamError
        Values outside int32, or ``shift`` outside ``[-31, 31]``.
    ShapeError
        The arguments do not broadcast.

    Notes
    -----
    ``left = max(shift, 0)``, ``right = max(-shift, 0)``;
    ``RoundingDivideByPOT(SRDHM(saturate_int32(acc * 2**left), multiplier), right)``.
    Two roundings (SRDHM half up, then the division half away from zero), so the result
    can differ by one from ``round(acc * multiplier * 2**(shift - 31))``. The saturation
    of the left shift is qcore's definition of what TFLite leaves undefined.
    """
    acc64 = _as_int32("acc", acc)
    mult = _as_int32("multiplier", multiplier)
    sh = np.asarray(shift)
    if sh.dtype.kind not in "iu":
        raise DTypeError(f"shift must be an integer array, got dtype {sh.dtype}")
    if sh.size and (sh.min() < MIN_SHIFT or sh.max() > MAX_SHIFT):
        raise QuantParamError(f"shift must be in [{MIN_SHIFT}, {MAX_SHIFT}]")
    sh = sh.astype(np.int64)
    try:
        np.broadcast_shapes(acc64.shape, mult.shape, sh.shape)
    except ValueError as exc:
        raise ShapeError(
            f"acc {acc64.shape}, multiplier {mult.shape} and shift {sh.shape} do not broadcast"
        ) from exc
    left = np.maximum(sh, 0)
    right = np.maximum(-sh, 0)
    shifted = np.clip(acc64 << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, mult), right)


def dequantize_multiplier(multiplier: int, shift: int) -> float:
    """The real value ``multiplier * 2**(shift - 31)`` a (multiplier, shift) pair stands for."""
    return math.ldexp(float(multiplier), int(shift) - 31)
