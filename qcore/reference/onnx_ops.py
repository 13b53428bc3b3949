"""ONNX integer quantization operators in NumPy (docs/ARITHMETIC.md, "ONNX convention").

QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear, exactly as the ONNX 1.23
schemas define them; the matrix and convolution operators live in :mod:`.matmul` and
:mod:`.conv` and are re-exported here, so every ONNX operator of the reference can be
imported from this module. Every function validates its inputs and raises a
:class:`qcore.errors.QcoreError` subclass that names what is wrong; none of them emits
NumPy warnings on valid input.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError, NonFiniteError, QuantParamError, ShapeError
from ._params import as_scale, as_zero_point, broadcast_param, resolve_quantized_type
from .dtypes import IntType, int_type

__all__ = [
    "conv_integer",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "matmul_integer",
    "qlinear_conv",
    "qlinear_matmul",
    "quantize_linear",
]

#: Float dtypes of quantize inputs and dequantize outputs.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


def _float_input(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in FLOAT_DTYPES:
        raise DTypeError(f"{name} must be float32 or float16, got {arr.dtype}")
    return arr


def _reject_nan(x: np.ndarray, name: str) -> None:
    if np.isnan(x).any():
        raise NonFiniteError(f"{name} contains NaN; qcore does not quantize NaN (docs/ARITHMETIC.md)")


def _saturate_rounded(rounded: np.ndarray, zero_point: np.ndarray, itype: IntType) -> np.ndarray:
    """``clip(rounded + zero_point, qmin, qmax)`` in int64, clipping before any narrowing.

    ``rounded`` holds integral floats (possibly +-inf); values beyond +-2**40 are clipped
    first so the int64 conversion can neither overflow nor wrap.
    """
    bounded = np.clip(rounded.astype(np.float64), -(2.0**40), 2.0**40).astype(np.int64)
    return np.clip(bounded + zero_point, itype.qmin, itype.qmax).astype(itype.container)


def quantize_linear(
    x: np.ndarray,
    y_scale: np.ndarray | float,
    y_zero_point: np.ndarray | int | None = None,
    *,
    axis: int = 1,
    block_size: int = 0,
    output_dtype: str | np.dtype | IntType | None = None,
) -> np.ndarray:
    """ONNX QuantizeLinear: ``y = saturate(round_half_even(x / y_scale) + y_zero_point)``.

    Parameters
    ----------
    x : numpy.ndarray
        float32 or float16 data, any shape. NaN is rejected; +-inf saturate.
    y_scale : numpy.ndarray or float
        float32 or float16, all finite and > 0 (a Python float becomes float32). Shape
        ``()`` or ``(1,)`` per-tensor, ``(x.shape[axis],)`` per-axis, or, with
        ``block_size > 0``, ``x.shape`` with ``ceil(x.shape[axis] / block_size)`` along ``axis``.
    y_zero_point : numpy.ndarray or int, optional
        Same shape as ``y_scale``, in the container dtype of the output type (int8 array
        for int4). Default 0.
    axis : int
        Quantization axis for per-axis and blocked scales, in ``[-x.ndim, x.ndim - 1]``.
    block_size : int
        Block length along ``axis`` for blocked quantization; 0 otherwise.
    output_dtype : str, numpy.dtype or IntType, optional
        ``"int8"``, ``"uint8"``, ``"int16"``, ``"uint16"``, ``"int4"``, ``"uint4"``,
        ``"int2"``, ``"uint2"``. Default: the zero point's dtype, else uint8.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``, one value per element in the output type's container dtype.

    Raises
    ------
    DTypeError
        ``x`` or ``y_scale`` is not float32/float16; unknown ``output_dtype``; zero point
        of another dtype than the output container.
    NonFiniteError
        ``x`` contains NaN.
    QuantParamError
        Non-finite or non-positive scale; zero point outside the output range; bad
        ``axis`` or ``block_size``.
    ShapeError
        Empty scale; scale/zero-point shapes that fit no granularity or differ.

    Notes
    -----
    The division is a true IEEE division (never a multiply by the reciprocal) in the
    scale's dtype, as the ONNX schema says: ``x`` is first converted to that dtype (float32
    ``x`` with a float16 scale is rounded to float16, values beyond 65504 become +-inf and
    saturate). The quotient is rounded half to even, then the
    zero point is added in exact integer arithmetic, then the result is clipped to
    ``[qmin, qmax]`` of the output type (``inf`` gives ``qmax``, ``-inf`` gives ``qmin``).
    See docs/ARITHMETIC.md, "ONNX convention".

    Examples
    --------
    >>> quantize_linear(np.array([0.5, 1.5, 2.5], np.float32), np.float32(1.0), np.uint8(1))
    array([1, 3, 3], dtype=uint8)
    """
    x = _float_input(x, "x")
    scale = as_scale(y_scale, "y_scale")
    itype = resolve_quantized_type(y_zero_point, output_dtype, "y_zero_point")
    zero_point = as_zero_point(y_zero_point, itype, scale.shape, "y_zero_point")
    scale_b = broadcast_param(scale, x.shape, axis, block_size, "y_scale")
    zero_point_b = broadcast_param(zero_point, x.shape, axis, block_size, "y_zero_point")
    _reject_nan(x, "x")
    # The scale's dtype is the precision of the division (ONNX spec; onnxruntime >= opset 23).
    with np.errstate(over="ignore"):  # x or x / scale may overflow to +-inf: that saturates
        quotient = np.divide(x.astype(scale.dtype), scale_b)
    return _saturate_rounded(np.rint(quotient), zero_point_b, itype)


def _float_output_dtype(output_dtype: object, default: np.dtype) -> np.dtype:
    if output_dtype is None:
        return default
    try:
        dtype = np.dtype(output_dtype)
    except TypeError:
        dtype = None
    if dtype not in FLOAT_DTYPES:
        raise DTypeError(
            f"output_dtype of dequantize_linear is the float output type (float32 or float16), "
            f"got {output_dtype!r}"
        )
    return dtype


def dequantize_linear(
    x: np.ndarray,
    x_scale: np.ndarray | float,
    x_zero_point: np.ndarray | int | None = None,
    *,
    axis: int = 1,
    block_size: int = 0,
    output_dtype: str | np.dtype | None = None,
) -> np.ndarray:
    """ONNX DequantizeLinear: ``y = (x - x_zero_point) * x_scale``.

    Parameters
    ----------
    x : numpy.ndarray
        int8, uint8, int16, uint16 or int32 (sub-byte values in their int8/uint8
        container: the arithmetic does not depend on the width).
    x_scale : numpy.ndarray or float
        float32 or float16, finite and > 0; granularity as in :func:`quantize_linear`.
    x_zero_point : numpy.ndarray or int, optional
        Same shape as ``x_scale`` and same dtype as ``x``. Must be 0 for int32 ``x``.
    axis, block_size : int
        As in :func:`quantize_linear`.
    output_dtype : str or numpy.dtype, optional
        The float output type, ``float32`` or ``float16`` (ONNX's ``output_dtype``
        attribute). Default: the dtype of ``x_scale``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``, dtype ``output_dtype``.

    Raises
    ------
    DTypeError
        ``x`` not one of the integer types, zero point of another dtype than ``x``,
        scale or ``output_dtype`` not float32/float16.
    QuantParamError
        Non-finite or non-positive scale; nonzero int32 zero point; bad axis/block size.
    ShapeError
        Empty scale; scale/zero-point shapes that fit no granularity or differ.

    Notes
    -----
    ``x - x_zero_point`` is exact (int64). The difference is converted to float32 (exact
    for every type up to 16 bits; an int32 difference above 2**24 in magnitude rounds to
    the nearest float32, ties to even), multiplied once by the float32 scale, and the
    product is rounded to ``output_dtype`` (a float16 result beyond 65504 becomes +-inf,
    as in onnxruntime). See docs/ARITHMETIC.md, "ONNX convention".

    Examples
    --------
    >>> dequantize_linear(np.array([0, 3, 255], np.uint8), np.float32(0.5), np.uint8(3))
    array([ -1.5,   0. , 126. ], dtype=float32)
    """
    x = np.asarray(x)
    try:
        itype = int_type(x.dtype)
    except DTypeError:
        raise DTypeError(f"x must be int8, uint8, int16, uint16 or int32, got {x.dtype}") from None
    if x.dtype != itype.container:
        raise DTypeError(
            f"x has dtype {x.dtype}: {itype.name} values must be held one per element in "
            f"{itype.container} (unpack packed data first)"
        )
    scale = as_scale(x_scale, "x_scale")
    out = _float_output_dtype(output_dtype, scale.dtype)
    zero_point = as_zero_point(x_zero_point, itype, scale.shape, "x_zero_point")
    if itype.name == "int32" and np.any(zero_point != 0):
        raise QuantParamError("an int32 input has no zero point (ONNX): x_zero_point must be 0")
    scale_b = broadcast_param(scale, x.shape, axis, block_size, "x_scale")
    zero_point_b = broadcast_param(zero_point, x.shape, axis, block_size, "x_zero_point")
    difference = x.astype(np.int64) - zero_point_b
    with np.errstate(over="ignore"):  # beyond float16's range the result is +-inf
        return (difference.astype(np.float32) * scale_b.astype(np.float32)).astype(out)


def dynamic_quantize_linear(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX DynamicQuantizeLinear: uint8 quantization with a range computed from ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        float32, non-empty, every value finite.

    Returns
    -------
    y : numpy.ndarray
        uint8, same shape as ``x``.
    y_scale : numpy.ndarray
        float32 scalar (shape ``()``).
    y_zero_point : numpy.ndarray
        uint8 scalar (shape ``()``).

    Raises
    ------
    DTypeError
        ``x`` is not float32.
    ShapeError
        ``x`` is empty.
    NonFiniteError
        ``x`` contains NaN or +-inf, or its range overflows float32.
    QuantParamError
        The range is so small that ``range / 255`` underflows to 0 in float32.

    Notes
    -----
    All arithmetic in float32::

        lo = min(0, min(x)); hi = max(0, max(x))
        y_scale = (hi - lo) / 255                        (1.0 when hi == lo, i.e. all zero)
        y_zero_point = round_half_even(clip(0 - lo / y_scale, 0, 255))
        y = clip(round_half_even(x / y_scale) + y_zero_point, 0, 255)

    The all-zero input follows onnxruntime (scale 1.0, zero point 0); ONNX's reference
    evaluator gives 1/255 there. See docs/ARITHMETIC.md, "DynamicQuantizeLinear".

    Examples
    --------
    >>> y, s, zp = dynamic_quantize_linear(np.array([0, 2, -3, -2.5, 1.34, 0.5], np.float32))
    >>> y, s, zp
    (array([153, 255,   0,  26, 221, 179], dtype=uint8), array(0.01960784, dtype=float32), array(153, dtype=uint8))
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError(f"x must be float32, got {x.dtype}")
    if x.size == 0:
        raise ShapeError("x is empty: DynamicQuantizeLinear needs data to compute a range")
    _reject_nan(x, "x")
    if not np.isfinite(x).all():
        raise NonFiniteError("x contains +-inf: DynamicQuantizeLinear cannot compute a finite scale")
    lo = np.minimum(np.float32(0), x.min())
    hi = np.maximum(np.float32(0), x.max())
    with np.errstate(over="ignore"):
        span = hi - lo
    if not np.isfinite(span):
        raise NonFiniteError(f"the range [{lo}, {hi}] of x overflows float32")
    if span == 0:
        scale = np.float32(1.0)
    else:
        with np.errstate(under="ignore"):
            scale = span / np.float32(255)
        if scale == 0:
            raise QuantParamError(f"the range [{lo}, {hi}] of x is too small: range / 255 underflows to 0")
    zero_point = np.rint(np.clip(np.float32(0) - lo / scale, np.float32(0), np.float32(255)))
    y = np.clip(np.rint(x / scale) + zero_point, np.float32(0), np.float32(255))
    return y.astype(np.uint8), np.asarray(scale, dtype=np.float32), np.asarray(zero_point.astype(np.uint8))


# Re-exported at the end: .matmul and .conv import nothing from this module.
from .conv import conv_integer, qlinear_conv  # noqa: E402
from .matmul import matmul_integer, qlinear_matmul  # noqa: E402
