"""The TFLite / LiteRT convention, bit-exact (docs/ARITHMETIC.md, "TFLite convention").

- Quantize (the QUANTIZE op, ``reference_ops::AffineQuantize``):
  ``q = saturate(round_half_away(x / scale) + zero_point)`` in float32.
- Weights (the converter): symmetric int8 in ``[-127, 127]``, zero point 0, per tensor or
  per output channel, ``scale = max|w| / 127`` and
  ``q = clip(round_half_away(w * (127 / max|w|)), -127, 127)`` -- a multiply by
  ``127 / max|w|``, which is not always ``1 / scale``.
- Bias: int32, ``scale = input_scale * weight_scale`` (float32),
  ``q = clip(round_half_away(b * float32(1 / scale)), -(2**31 - 1), 2**31 - 1)``.
- Requantization: integer only, through :mod:`qcore.reference.fixedpoint`, with the
  real multiplier ``input_scale * weight_scale / output_scale`` computed in float64.

Parameter choice (activations asymmetric, nudged zero point) is
:func:`qcore.reference.params.choose_qparams` with ``convention="tflite"``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DTypeError, NonFiniteError, QuantParamError
from .dtypes import IntType, int_type
from .fixedpoint import INT32_MAX, multiply_by_quantized_multiplier, quantize_multiplier, round_half_away

_F32_TINY = np.finfo(np.float32).tiny

__all__ = [
    "effective_multiplier",
    "quantize",
    "quantize_bias",
    "quantize_symmetric",
    "requantize",
]


def _float32_data(x: ArrayLike, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise DTypeError(f"{name} must be a float array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if np.any(np.isnan(arr)):
        raise NonFiniteError(f"{name} contains NaN")
    return arr


def _positive_scale(scale: ArrayLike, name: str = "scale") -> np.ndarray:
    s = np.asarray(scale, dtype=np.float32)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise QuantParamError(f"{name} must be finite and > 0")
    return s


def _saturate(values: np.ndarray, qmin: int, qmax: int, container: np.dtype) -> np.ndarray:
    """Clip in float64 (no int wrap-around for huge or infinite values), then narrow."""
    return np.clip(values.astype(np.float64), qmin, qmax).astype(container)


def quantize(x: ArrayLike, scale: ArrayLike, zero_point: ArrayLike = 0, dtype: str | IntType = "int8") -> np.ndarray:
    """TFLite's QUANTIZE op: float32 division, ties away from zero.

    Parameters
    ----------
    x : array_like of float
        Cast to float32.
    scale : float or array_like
        > 0, broadcast against ``x`` (reshape per-channel scales to the channel axis).
    zero_point : int or array_like
        Broadcast against ``x``; within the range of ``dtype``.
    dtype : str or IntType
        Output type.

    Returns
    -------
    numpy.ndarray
        The container dtype of ``dtype``.

    Raises
    ------
    DTypeError, NonFiniteError, QuantParamError

    Notes
    -----
    ``q = clip(round_half_away(float32(x) / float32(scale)) + zero_point, qmin, qmax)``.
    +-inf saturate. TFLite's ``static_cast<int32>`` of a huge quotient is undefined;
    qcore clips before narrowing.
    """
    itype = int_type(dtype)
    xs = _float32_data(x)
    s = _positive_scale(scale)
    zp = _zero_point(zero_point, itype)
    with np.errstate(over="ignore"):
        rounded = round_half_away(xs / s)
    return _saturate(rounded.astype(np.float64) + zp, itype.qmin, itype.qmax, itype.container)


def _zero_point(zero_point: ArrayLike, itype: IntType) -> np.ndarray:
    zp = np.asarray(zero_point)
    if zp.dtype.kind not in "iu":
        raise DTypeError(f"zero_point must be an integer array, got dtype {zp.dtype}")
    if zp.size and (zp.min() < itype.qmin or zp.max() > itype.qmax):
        raise QuantParamError(f"zero_point outside the range of {itype.name} [{itype.qmin}, {itype.qmax}]")
    return zp.astype(np.int64)


def quantize_symmetric(x: ArrayLike, absmax: ArrayLike, dtype: str | IntType = "int8") -> tuple[np.ndarray, np.ndarray]:
    """The converter's symmetric weight quantization (per tensor or per channel).

    Parameters
    ----------
    x : array_like of float
        Weights, cast to float32.
    absmax : float or array_like
        ``max|w|`` of the tensor or of each channel (>= 0), broadcast against ``x``.
    dtype : str or IntType
        A signed type; int8 gives the range ``[-127, 127]``.

    Returns
    -------
    data : numpy.ndarray
        Container dtype of ``dtype``, values in ``[-qmax, qmax]``.
    scale : numpy.ndarray
        float32, ``absmax / qmax``, the shape of ``absmax``; 1 where that is below the
        smallest normal float32 (a zero range, where TFLite would store 0).

    Notes
    -----
    ``inv = float32(qmax) / absmax`` (1, matching the scale, for the degenerate ranges
    above; TFLite zeroes such tensors, the same result for the all-zero data it sees),
    ``q = clip(round_half_away(float32(w) * inv), -qmax, qmax)``.
    """
    itype = int_type(dtype)
    if not itype.signed:
        raise QuantParamError(f"symmetric TFLite quantization needs a signed type, got {itype.name}")
    xs = _float32_data(x)
    a = np.asarray(absmax, dtype=np.float32)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise QuantParamError("absmax must be finite and >= 0")
    qmax = np.float32(itype.qmax)
    scale = a / qmax
    degenerate = scale < _F32_TINY
    inv = np.where(degenerate, np.float32(1), qmax / np.where(degenerate, np.float32(1), a))
    with np.errstate(over="ignore"):
        data = _saturate(round_half_away(xs * inv), -itype.qmax, itype.qmax, itype.container)
    return data, np.where(degenerate, np.float32(1), scale).astype(np.float32)


def quantize_bias(bias: ArrayLike, input_scale: float, weight_scale: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """int32 bias with scale ``input_scale * weight_scale`` (per tensor or per channel).

    Returns
    -------
    data : numpy.ndarray
        int32, in ``[-(2**31 - 1), 2**31 - 1]``.
    scale : numpy.ndarray
        float32, ``float32(input_scale) * float32(weight_scale)``.

    Notes
    -----
    ``inv = float32(1.0 / float64(scale))``;
    ``q = clip(round_half_away(float32(b) * inv), -(2**31 - 1), 2**31 - 1)``.
    """
    b = _float32_data(bias, "bias")
    scale = _positive_scale(input_scale, "input_scale") * _positive_scale(weight_scale, "weight_scale")
    if np.any(scale == 0):
        raise QuantParamError("input_scale * weight_scale underflows to 0 in float32")
    inv = (1.0 / scale.astype(np.float64)).astype(np.float32)
    with np.errstate(over="ignore"):
        rounded = round_half_away(b * inv)
    return _saturate(rounded, -INT32_MAX, INT32_MAX, np.dtype(np.int32)), scale.astype(np.float32)


def effective_multiplier(input_scale: ArrayLike, weight_scale: ArrayLike, output_scale: float) -> np.ndarray:
    """``input_scale * weight_scale / output_scale`` in float64, as TFLite's kernels compute it."""
    return (
        np.asarray(input_scale, np.float32).astype(np.float64)
        * np.asarray(weight_scale, np.float32).astype(np.float64)
        / np.float64(np.float32(output_scale))
    )


def requantize(
    acc: ArrayLike,
    multiplier: ArrayLike,
    shift: ArrayLike,
    zero_point: int = 0,
    dtype: str | IntType = "int8",
    *,
    activation_min: int | None = None,
    activation_max: int | None = None,
) -> np.ndarray:
    """int32 accumulators to the output type, integer only (TFLite's conv/FC epilogue).

    Parameters
    ----------
    acc : array_like of int32
        Accumulators (bias already added).
    multiplier, shift : int or array_like
        From :func:`qcore.reference.fixedpoint.quantize_multiplier` applied to
        :func:`effective_multiplier`; broadcast against ``acc`` for per-channel.
    zero_point : int
        Output zero point.
    dtype : str or IntType
        Output type.
    activation_min, activation_max : int, optional
        Fused activation clamp (ReLU: ``zero_point``), intersected with the type range.

    Returns
    -------
    numpy.ndarray
        The container dtype of ``dtype``.

    Notes
    -----
    ``y = clip(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zero_point,
    max(activation_min, qmin), min(activation_max, qmax))``. The addition is exact
    (int64); TFLite adds in int32, which cannot overflow for valid zero points.
    """
    itype = int_type(dtype)
    zp = int(_zero_point(zero_point, itype))
    lo = itype.qmin if activation_min is None else max(int(activation_min), itype.qmin)
    hi = itype.qmax if activation_max is None else min(int(activation_max), itype.qmax)
    if lo > hi:
        raise QuantParamError(f"activation range [{lo}, {hi}] is empty")
    scaled = multiply_by_quantized_multiplier(acc, multiplier, shift).astype(np.int64) + zp
    return np.clip(scaled, lo, hi).astype(itype.container)


def multiplier_for(input_scale: ArrayLike, weight_scale: ArrayLike, output_scale: float) -> tuple:
    """``quantize_multiplier(effective_multiplier(...))``: the (multiplier, shift) pair TFLite stores."""
    return quantize_multiplier(effective_multiplier(input_scale, weight_scale, output_scale))
