"""The PyTorch / FBGEMM convention, bit-exact (docs/ARITHMETIC.md, "PyTorch / FBGEMM convention").

- Quantize (``at::native::quantize_val``, ``fbgemm::Quantize<T, LEGACY=false>``):
  ``q = saturate(zero_point + nearbyint(x * (1.0f / scale)))``: a float32 reciprocal,
  a float32 multiply, round half to even, then the zero point is added.
- Requantize (FBGEMM ``ReQuantizeOutput``):
  ``y = saturate(nearbyint(float32(acc) * multiplier) + zero_point)`` with the float32
  multiplier ``(input_scale * weight_scale) / output_scale``: the ONNX real-valued form.
- Parameters: :func:`qcore.reference.params.choose_qparams` with ``convention="pytorch"``
  (symmetric ``max|x| / 127.5`` over [-128, 127], ``reduce_range`` 7-bit, ``eps``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DTypeError, NonFiniteError, QuantParamError
from .dtypes import IntType, int_type

__all__ = ["quantize", "requantize", "requantize_multiplier"]


def _zero_point(zero_point: ArrayLike, itype: IntType) -> np.ndarray:
    zp = np.asarray(zero_point)
    if zp.dtype.kind not in "iu":
        raise DTypeError(f"zero_point must be an integer array, got dtype {zp.dtype}")
    if zp.size and (zp.min() < itype.qmin or zp.max() > itype.qmax):
        raise QuantParamError(f"zero_point outside the range of {itype.name} [{itype.qmin}, {itype.qmax}]")
    return zp.astype(np.int64)


def quantize(x: ArrayLike, scale: ArrayLike, zero_point: ArrayLike = 0, dtype: str | IntType = "int8") -> np.ndarray:
    """PyTorch's quantize_per_tensor / quantize_per_channel element formula.

    Parameters
    ----------
    x : array_like of float
        Cast to float32.
    scale : float or array_like
        > 0, broadcast against ``x`` (reshape per-channel scales to the channel axis).
    zero_point : int or array_like
        Broadcast against ``x``.
    dtype : str or IntType
        Output type; the saturation range is the whole type (``reduce_range`` only
        changes the parameters, never the clamp).

    Returns
    -------
    numpy.ndarray
        The container dtype of ``dtype``.

    Raises
    ------
    DTypeError, NonFiniteError, QuantParamError

    Notes
    -----
    ``inv = float32(1) / float32(scale)``;
    ``q = clip(zero_point + round_half_even(float32(x) * inv), qmin, qmax)``, the clip
    done in float64 as FBGEMM does (no int32 overflow for huge values).
    Differs from ONNX (``x / scale``) when the product and the quotient round to
    different sides of a tie, e.g. ``x = 0.273939937``, ``scale = 0.00214854861``:
    ``x * inv = 127.5`` rounds to 128, ``x / scale = 127.49999`` rounds to 127.
    """
    itype = int_type(dtype)
    xs = np.asarray(x)
    if xs.dtype.kind != "f":
        raise DTypeError(f"x must be a float array, got dtype {xs.dtype}")
    xs = xs.astype(np.float32)
    if np.any(np.isnan(xs)):
        raise NonFiniteError("x contains NaN")
    s = np.asarray(scale, dtype=np.float32)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise QuantParamError("scale must be finite and > 0")
    zp = _zero_point(zero_point, itype)
    inv = np.float32(1) / s
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = np.rint(xs * inv)
    return np.clip(rounded.astype(np.float64) + zp, itype.qmin, itype.qmax).astype(itype.container)


def requantize_multiplier(input_scale: ArrayLike, weight_scale: ArrayLike, output_scale: float) -> np.ndarray:
    """FBGEMM's float32 multiplier ``float32(input_scale * weight_scale) / output_scale``."""
    product = np.asarray(input_scale, np.float32) * np.asarray(weight_scale, np.float32)
    return (product / np.float32(output_scale)).astype(np.float32)


def requantize(
    acc: ArrayLike, multiplier: ArrayLike, zero_point: int = 0, dtype: str | IntType = "uint8"
) -> np.ndarray:
    """FBGEMM's requantization of int32 accumulators (float32, ties to even).

    Notes
    -----
    ``y = clip(round_half_even(float32(acc) * float32(multiplier)) + zero_point, qmin, qmax)``.
    """
    itype = int_type(dtype)
    a = np.asarray(acc)
    if a.dtype.kind not in "iu":
        raise DTypeError(f"acc must be an integer array, got dtype {a.dtype}")
    m = np.asarray(multiplier, dtype=np.float32)
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise QuantParamError("multiplier must be finite and > 0")
    zp = int(_zero_point(zero_point, itype))
    scaled = np.rint(a.astype(np.float32) * m)
    return np.clip(scaled.astype(np.float64) + zp, itype.qmin, itype.qmax).astype(itype.container)
