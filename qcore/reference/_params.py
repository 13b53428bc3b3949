"""Validation and broadcasting of scales and zero points (docs/ARITHMETIC.md, "ONNX convention").

QuantizeLinear and DequantizeLinear share one rule for the granularity of their
parameters, decided by the parameter shape and ``block_size``:

- per-tensor: a scalar or a 1-element 1-D array;
- per-axis: a 1-D array of length ``x.shape[axis]``;
- blocked (``block_size > 0``): the rank of ``x``, equal to ``x.shape`` except along
  ``axis`` where it is ``ceil(x.shape[axis] / block_size)``; the last block may be partial.

Everything here is private to :mod:`qcore.reference`.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import DTypeError, QuantParamError, ShapeError
from .dtypes import QUANTIZED_TYPES, IntType, int_type

#: Float dtypes a scale may have. The scale's dtype fixes the precision of the arithmetic.
SCALE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


def as_scale(scale: object, name: str) -> np.ndarray:
    """Return ``scale`` as a float32/float16 array after checking every value.

    A Python ``float``/``int`` becomes float32 (rounded to nearest). NumPy arrays must
    already be float32 or float16: a float64 array is rejected rather than rounded silently.

    Raises
    ------
    DTypeError
        Not a float32/float16 array or a Python number.
    ShapeError
        The array is empty.
    QuantParamError
        A value is NaN, infinite, zero or negative.
    """
    if isinstance(scale, numbers.Real) and not isinstance(scale, (bool, np.generic)):
        arr = np.asarray(scale, dtype=np.float32)
    else:
        arr = np.asarray(scale)
        if arr.dtype not in SCALE_DTYPES:
            raise DTypeError(f"{name} must be float32 or float16, got {arr.dtype}")
    if arr.size == 0:
        raise ShapeError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise QuantParamError(f"{name} must be finite, got {arr[~np.isfinite(arr)].flat[0]!r}")
    if not np.all(arr > 0):
        raise QuantParamError(f"{name} must be > 0, got {arr[~(arr > 0)].flat[0]!r}")
    return arr


def resolve_quantized_type(zero_point: object, output_dtype: object, name: str) -> IntType:
    """The integer type of a QuantizeLinear output (ONNX: ``output_dtype``, else the
    zero point's type, else uint8).

    A zero point in an int8/uint8 container is a full-width int8/uint8 unless
    ``output_dtype`` names a sub-byte type held in that container.

    Raises
    ------
    DTypeError
        ``output_dtype`` is unknown or not a quantized type, or the zero point's container
        does not hold it.
    """
    if output_dtype is not None:
        itype = int_type(output_dtype)
        if itype.name not in QUANTIZED_TYPES:
            raise DTypeError(f"cannot quantize to {itype.name}; supported: {', '.join(QUANTIZED_TYPES)}")
    elif isinstance(zero_point, np.ndarray) or isinstance(zero_point, np.generic):
        itype = int_type(zero_point.dtype)
        if itype.name not in QUANTIZED_TYPES:
            raise DTypeError(f"{name} has dtype {zero_point.dtype}: not a quantized type")
    else:
        itype = int_type("uint8")
    if isinstance(zero_point, (np.ndarray, np.generic)) and zero_point.dtype != itype.container:
        raise DTypeError(
            f"{name} has dtype {zero_point.dtype}, but {itype.name} is held in {itype.container}"
        )
    return itype


def as_zero_point(zero_point: object, itype: IntType, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Return the zero point as an int64 array of ``shape`` (zeros when None).

    ``zero_point`` may be None, a Python int, or an array in ``itype``'s container dtype.

    Raises
    ------
    DTypeError
        An array of another dtype, or a non-integer Python value.
    ShapeError
        The shape differs from the scale's (``()`` and ``(1,)`` count as the same
        per-tensor shape, as ONNX's own test vectors mix them).
    QuantParamError
        A value lies outside ``[itype.qmin, itype.qmax]``.
    """
    if zero_point is None:
        return np.zeros(shape, dtype=np.int64)
    if isinstance(zero_point, (np.ndarray, np.generic)):
        if zero_point.dtype != itype.container:
            raise DTypeError(
                f"{name} has dtype {zero_point.dtype}, but {itype.name} is held in {itype.container}"
            )
        arr = np.asarray(zero_point).astype(np.int64)
    elif isinstance(zero_point, numbers.Integral) and not isinstance(zero_point, bool):
        arr = np.asarray(int(zero_point), dtype=np.int64)
    else:
        raise DTypeError(f"{name} must be an integer array or int, got {type(zero_point).__name__}")
    per_tensor = ((), (1,))
    if arr.shape != shape and not (arr.shape in per_tensor and shape in per_tensor):
        raise ShapeError(f"{name} has shape {arr.shape}, the scale has shape {shape}: they must match")
    if arr.size and (arr.min() < itype.qmin or arr.max() > itype.qmax):
        bad = arr[(arr < itype.qmin) | (arr > itype.qmax)].flat[0]
        raise QuantParamError(f"{name} value {bad} outside the {itype.name} range [{itype.qmin}, {itype.qmax}]")
    return arr


def normalize_axis(axis: int, ndim: int) -> int:
    """Map ``axis`` in ``[-ndim, ndim - 1]`` to ``[0, ndim - 1]``.

    Raises
    ------
    QuantParamError
        ``axis`` is out of range or not an integer.
    """
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise QuantParamError(f"axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise QuantParamError(f"axis {axis} out of range for a tensor of rank {ndim}")
    return int(axis) % ndim


def broadcast_param(param: np.ndarray, x_shape: tuple[int, ...], axis: int, block_size: int, name: str) -> np.ndarray:
    """Expand a scale or zero point so that it broadcasts against an array of ``x_shape``.

    Returns a scalar (per-tensor), a ``[1, ..., D_axis, ..., 1]`` array (per-axis) or an
    array of ``x_shape`` (blocked: each value repeated ``block_size`` times along ``axis``,
    the last block cut to what remains).

    Raises
    ------
    QuantParamError
        ``block_size`` negative or not an int; ``axis`` out of range.
    ShapeError
        ``param`` has no valid shape for the granularity.
    """
    if not isinstance(block_size, numbers.Integral) or isinstance(block_size, bool) or block_size < 0:
        raise QuantParamError(f"block_size must be an int >= 0, got {block_size!r}")
    ndim = len(x_shape)
    if block_size == 0:
        if param.ndim == 0 or param.shape == (1,):
            return param.reshape(())
        if param.ndim != 1:
            raise ShapeError(
                f"{name} has shape {param.shape}: per-tensor needs a scalar, per-axis a 1-D array "
                "(blocked quantization needs block_size > 0)"
            )
        if ndim == 0:
            raise ShapeError(f"{name} has shape {param.shape}, but a scalar input needs a scalar {name}")
        ax = normalize_axis(axis, ndim)
        if param.shape[0] != x_shape[ax]:
            raise ShapeError(
                f"per-axis {name} has length {param.shape[0]}, input axis {ax} has length {x_shape[ax]}"
            )
        dims = [1] * ndim
        dims[ax] = param.shape[0]
        return param.reshape(dims)
    if ndim == 0:
        raise ShapeError("blocked quantization needs an input of rank >= 1")
    ax = normalize_axis(axis, ndim)
    expected = list(x_shape)
    expected[ax] = -(-x_shape[ax] // block_size)
    if param.shape != tuple(expected):
        raise ShapeError(
            f"blocked {name} has shape {param.shape}; input shape {tuple(x_shape)} with axis {ax} and "
            f"block_size {block_size} needs {tuple(expected)}"
        )
    return np.repeat(param, block_size, axis=ax).take(np.arange(x_shape[ax]), axis=ax)
