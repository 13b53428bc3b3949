"""The PyTorch / FBGEMM convention, bit-exact (docs/ARITHMETIC.md, "PyTorch / FBGEMM convention").

- Quantize (``torch.quantize_per_tensor`` / ``quantize_per_channel`` on x86 with FBGEMM):
  ``q = saturate(nearbyint(x * (1.0f / scale) + zero_point))``: a float32 reciprocal, a
  multiply, the zero point added *before* rounding half to even (fused per tensor,
  unfused per channel; see :func:`quantize`).
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

__all__ = ["fma_float32", "quantize", "requantize", "requantize_multiplier"]


def _zero_point(zero_point: ArrayLike, itype: IntType) -> np.ndarray:
    zp = np.asarray(zero_point)
    if zp.dtype.kind not in "iu":
        raise DTypeError(f"zero_point must be an integer array, got dtype {zp.dtype}")
    if zp.size and (zp.min() < itype.qmin or zp.max() > itype.qmax):
        raise QuantParamError(f"zero_point outside the range of {itype.name} [{itype.qmin}, {itype.qmax}]")
    return zp.astype(np.int64)


def fma_float32(a: np.ndarray, b: np.ndarray, c: ArrayLike) -> np.ndarray:
    """``float32(a * b + c)`` rounded once, as a fused multiply-add does (float32 ``a, b``).

    The product of two float32 values is exact in float64; the sum is formed in float64
    with its exact rounding error (TwoSum) so that a float64 result lying exactly on a
    float32 tie is resolved in the direction of the true value.
    """
    product = a.astype(np.float64) * b.astype(np.float64)
    addend = np.asarray(c, dtype=np.float64)
    total = product + addend
    virtual = total - product
    err = (product - (total - virtual)) + (addend - virtual)  # total + err == product + c
    rounded = total.astype(np.float32)
    back = rounded.astype(np.float64)
    # the float32 neighbour on the other side of ``total``
    other = np.nextafter(rounded, np.where(total > back, np.float32(np.inf), np.float32(-np.inf)))
    tie = (total != back) & (np.abs(total - back) == np.abs(other.astype(np.float64) - total))
    toward_err = np.where(err > 0, np.maximum(rounded, other), np.minimum(rounded, other))
    return np.where(tie & (err != 0), toward_err, rounded).astype(np.float32)


def quantize(
    x: ArrayLike, scale: ArrayLike, zero_point: ArrayLike = 0, dtype: str | IntType = "int8", *, per_channel: bool = False
) -> np.ndarray:
    """What ``torch.quantize_per_tensor`` / ``torch.quantize_per_channel`` compute (FBGEMM, x86).

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
    per_channel : bool
        Use the per-channel kernel's rounding (see Notes).

    Returns
    -------
    numpy.ndarray
        The container dtype of ``dtype``.

    Raises
    ------
    DTypeError, NonFiniteError, QuantParamError

    Notes
    -----
    ``inv = float32(1) / float32(scale)``, then, measured against torch 2.13.0 on x86-64
    with AVX2 (FBGEMM):

    - per tensor: ``q = clip(round_half_even(fma(x, inv, zero_point)), qmin, qmax)``: one
      fused multiply-add in float32 (FBGEMM's AVX2 ``QuantizeAvx2``);
    - per channel: ``q = clip(round_half_even(float32(float32(x * inv) + zero_point)), ...)``.

    Both add the zero point before rounding and multiply by the reciprocal, unlike ONNX
    (``round(x / scale)`` then ``+ zp``). Example: ``x = 0.273939937``,
    ``scale = 0.00214854861``, ``zp = 0``: ``x * inv = 127.5`` rounds to 128,
    ``x / scale = 127.49999`` to 127. FBGEMM's scalar ``Quantize<T, LEGACY=false>``
    (``zp + nearbyint(x * inv)``, rounding first) is not what the tensor kernels run.
    The clip is done in float64, so huge values and infinities saturate.
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
        if per_channel:
            shifted = (xs * inv) + zp.astype(np.float32)
        else:
            shifted = fma_float32(xs, np.broadcast_to(inv, np.broadcast_shapes(xs.shape, inv.shape)), zp)
        rounded = np.rint(shifted)
    return np.clip(rounded.astype(np.float64), itype.qmin, itype.qmax).astype(itype.container)


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
