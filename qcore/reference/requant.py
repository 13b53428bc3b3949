"""The ONNX float requantization of int32 accumulators (docs/ARITHMETIC.md, "Requantization").

QLinearMatMul and QLinearConv end with it; csrc/src/requant.h ``qc__requant_float`` is the
C statement of the same formula and must agree with :func:`requantize_float` bit for bit.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import DTypeError, QuantParamError

__all__ = ["requantize_float"]

#: float32 just below 2**31, and -2**31: the clip bounds of qc__requant_float.
_REQUANT_HI = np.float32(2147483520.0)
_REQUANT_LO = np.float32(-2147483648.0)


def requantize_float(
    acc: np.ndarray,
    multiplier: np.ndarray | float,
    zero_point: np.ndarray | int,
    qmin: int,
    qmax: int,
) -> np.ndarray:
    """The ONNX requantization of int32 accumulators, as csrc/src/requant.h defines it.

    Parameters
    ----------
    acc : numpy.ndarray
        int32 accumulators.
    multiplier : numpy.ndarray or float
        float32 multiplier(s), broadcastable to ``acc``, finite and > 0.
    zero_point : numpy.ndarray or int
        Output zero point(s), broadcastable to ``acc``.
    qmin, qmax : int
        Clamp bounds (the output type's range, or narrower for fused activations).

    Returns
    -------
    numpy.ndarray
        int32, ``clip(round_half_even(float32(acc) * multiplier) + zero_point, qmin, qmax)``.

    Raises
    ------
    DTypeError
        ``acc`` is not int32 or ``multiplier`` not float32.
    QuantParamError
        ``qmin > qmax``, or a multiplier that is not finite and > 0.

    Notes
    -----
    ``float32(acc) * multiplier`` is one float32 multiply (no FMA, no float64). The
    product is clipped to ``[-2**31, 2147483520]`` (the float32 values nearest the int32
    range) before rounding, so huge products saturate instead of wrapping; the zero point
    is added in integers after rounding. Bit-identical to ``qc__requant_float``.
    See docs/ARITHMETIC.md, "Requantization".
    """
    acc = np.asarray(acc)
    if acc.dtype != np.int32:
        raise DTypeError(f"acc must be int32, got {acc.dtype}")
    if isinstance(multiplier, numbers.Real) and not isinstance(multiplier, (bool, np.generic)):
        multiplier = np.float32(multiplier)
    multiplier = np.asarray(multiplier)
    if multiplier.dtype != np.float32:
        raise DTypeError(f"multiplier must be float32, got {multiplier.dtype}")
    if not (np.isfinite(multiplier).all() and (multiplier > 0).all()):
        raise QuantParamError("multiplier must be finite and > 0")
    if qmin > qmax:
        raise QuantParamError(f"qmin {qmin} > qmax {qmax}")
    with np.errstate(over="ignore"):
        scaled = acc.astype(np.float32) * multiplier
    scaled = np.where(scaled < _REQUANT_HI, scaled, _REQUANT_HI)
    scaled = np.where(scaled < _REQUANT_LO, _REQUANT_LO, scaled)
    rounded = np.rint(scaled).astype(np.int64) + np.asarray(zero_point, dtype=np.int64)
    return np.clip(rounded, qmin, qmax).astype(np.int32)
