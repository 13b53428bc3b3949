"""ONNX MatMulInteger and QLinearMatMul in NumPy (docs/ARITHMETIC.md, "MatMulInteger", "QLinearMatMul").

Both behave like :func:`numpy.matmul` (1-D operands, batch broadcasting) on int8/uint8
operands with zero points per tensor, per row of ``a`` or per column of ``b``.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import DTypeError, QuantParamError, ShapeError
from ._params import as_scale
from .dtypes import int_type
from .requant import requantize_float

__all__ = ["matmul_integer", "qlinear_matmul"]

_OPERAND_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))
_PER_TENSOR = ((), (1,))


def _operand(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype not in _OPERAND_DTYPES:
        raise DTypeError(f"{name} must be int8 or uint8, got {arr.dtype}")
    if arr.ndim == 0:
        raise ShapeError(f"{name} must have rank >= 1 (numpy.matmul), got a scalar")
    return arr


def _matmul_shapes(a: np.ndarray, b: np.ndarray) -> None:
    k_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if a.shape[-1] != k_b:
        raise ShapeError(f"inner dimensions differ: a {a.shape} and b {b.shape}")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"batch dimensions of a {a.shape} and b {b.shape} do not broadcast") from None


def _zero_point_values(zero_point: object, dtype: np.dtype, name: str) -> np.ndarray:
    """The zero point as int64, checked to be of the operand's type."""
    if isinstance(zero_point, (np.ndarray, np.generic)):
        if zero_point.dtype != dtype:
            raise DTypeError(f"{name} must have the dtype of its operand ({dtype}), got {zero_point.dtype}")
        return np.asarray(zero_point).astype(np.int64)
    if isinstance(zero_point, numbers.Integral) and not isinstance(zero_point, bool):
        info = np.iinfo(dtype)
        if not info.min <= zero_point <= info.max:
            raise QuantParamError(f"{name} {zero_point} outside the {dtype} range [{info.min}, {info.max}]")
        return np.asarray(int(zero_point), dtype=np.int64)
    raise DTypeError(f"{name} must be an integer array or int, got {type(zero_point).__name__}")


def _row_param(param: np.ndarray, a_shape: tuple[int, ...], name: str) -> np.ndarray:
    """Per-tensor or per-row parameter of ``a``, shaped to broadcast against ``a``."""
    if param.shape in _PER_TENSOR:
        return param.reshape(())
    if len(a_shape) >= 2:
        m = a_shape[-2]
        if param.shape == (m,):
            return param.reshape(m, 1)
        if param.ndim >= 2 and param.shape[-2:] == (m, 1) and _broadcasts_into(param.shape, a_shape):
            return param
    raise ShapeError(
        f"{name} has shape {param.shape}; for a of shape {a_shape} it must be per-tensor (a scalar) or "
        "per-row ((M,) or [..., M, 1])"
    )


def _column_param(param: np.ndarray, b_shape: tuple[int, ...], name: str) -> np.ndarray:
    """Per-tensor or per-column parameter of ``b``, shaped to broadcast against ``b``."""
    if param.shape in _PER_TENSOR:
        return param.reshape(())
    if len(b_shape) >= 2:
        n = b_shape[-1]
        if param.shape == (n,):
            return param.reshape(1, n)
        if param.ndim >= 2 and param.shape[-2:] == (1, n) and _broadcasts_into(param.shape, b_shape):
            return param
    raise ShapeError(
        f"{name} has shape {param.shape}; for b of shape {b_shape} it must be per-tensor (a scalar) or "
        "per-column ((N,) or [..., 1, N])"
    )


def _broadcasts_into(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def _promote(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[bool, bool]]:
    """numpy.matmul's promotion of 1-D operands: ``a`` to ``[1, K]``, ``b`` to ``[K, 1]``."""
    squeeze = (a.ndim == 1, b.ndim == 1)
    return (a.reshape(1, -1) if squeeze[0] else a), (b.reshape(-1, 1) if squeeze[1] else b), squeeze


def _squeezed_shape(a: np.ndarray, b: np.ndarray, squeeze: tuple[bool, bool]) -> tuple[int, ...]:
    """The shape numpy.matmul gives for the original operands of the promoted ``a``, ``b``."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return batch + ((a.shape[-2],) if not squeeze[0] else ()) + ((b.shape[-1],) if not squeeze[1] else ())


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact ``a @ b`` of int64 arrays whose entries lie in [-255, 255], as int64.

    Computed with float64 matmul, which is exact here: every product has magnitude at
    most 255 * 255 < 2**16, so every partial sum of K terms is an integer below
    K * 2**16 < 2**53 for any K that fits in memory (K < 2**37), and float64 represents
    all such integers, whatever the summation order or FMA use.
    """
    k = a.shape[-1]
    assert k < 2**37
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (value mod 2**32 in [-2**31, 2**31))."""
    return (((values + 2**31) & 0xFFFFFFFF) - 2**31).astype(np.int32)


def matmul_integer(
    a: np.ndarray,
    b: np.ndarray,
    a_zero_point: np.ndarray | int | None = None,
    b_zero_point: np.ndarray | int | None = None,
) -> np.ndarray:
    """ONNX MatMulInteger: ``(a - a_zero_point) @ (b - b_zero_point)`` as int32.

    Parameters
    ----------
    a : numpy.ndarray
        int8 or uint8, shape ``[..., M, K]`` (or ``[K]``).
    b : numpy.ndarray
        int8 or uint8, shape ``[..., K, N]`` (or ``[K]``).
    a_zero_point : numpy.ndarray or int, optional
        Same dtype as ``a``. Per-tensor (``()`` or ``(1,)``) or per-row (``(M,)`` or
        ``[..., M, 1]`` broadcastable to ``a``). Default 0.
    b_zero_point : numpy.ndarray or int, optional
        Same dtype as ``b``. Per-tensor or per-column (``(N,)`` or ``[..., 1, N]``). Default 0.

    Returns
    -------
    numpy.ndarray
        int32, shape as :func:`numpy.matmul` gives.

    Raises
    ------
    DTypeError
        An operand not int8/uint8, or a zero point of another dtype than its operand.
    ShapeError
        Scalar operand, inner or batch dimensions that do not match, zero point of a
        shape that is neither per-tensor nor per-row/column.
    QuantParamError
        A Python-int zero point outside the operand's range.

    Notes
    -----
    The differences and their products are exact; the sum is computed exactly and then
    wrapped to int32 in two's complement (ONNX: "the accumulation may overflow if and
    only if in 32 bits"). The wrap is order-independent: the result is the exact sum
    modulo 2**32. See docs/ARITHMETIC.md, "MatMulInteger".

    Examples
    --------
    >>> matmul_integer(np.array([[255, 0]], np.uint8), np.array([[1], [2]], np.uint8), np.uint8(128))
    array([[-129]], dtype=int32)
    """
    a = _operand(a, "a")
    b = _operand(b, "b")
    _matmul_shapes(a, b)
    a, b, squeeze = _promote(a, b)
    a_diff = a.astype(np.int64)
    b_diff = b.astype(np.int64)
    if a_zero_point is not None:
        a_diff = a_diff - _row_param(_zero_point_values(a_zero_point, a.dtype, "a_zero_point"), a.shape,
                                     "a_zero_point")
    if b_zero_point is not None:
        b_diff = b_diff - _column_param(_zero_point_values(b_zero_point, b.dtype, "b_zero_point"), b.shape,
                                        "b_zero_point")
    return _wrap_int32(_exact_matmul(a_diff, b_diff)).reshape(_squeezed_shape(a, b, squeeze))


def qlinear_matmul(
    a: np.ndarray,
    a_scale: np.ndarray | float,
    a_zero_point: np.ndarray | int | None,
    b: np.ndarray,
    b_scale: np.ndarray | float,
    b_zero_point: np.ndarray | int | None,
    y_scale: np.ndarray | float,
    y_zero_point: np.ndarray | int | None,
) -> np.ndarray:
    """ONNX QLinearMatMul: a quantized matrix product with float requantization.

    Parameters
    ----------
    a, b : numpy.ndarray
        int8 or uint8 operands, as in :func:`matmul_integer`.
    a_scale, a_zero_point : numpy.ndarray
        Per-tensor or per-row (``(M,)`` or ``[..., M, 1]``), same shape; scale float32 or
        float16, finite and > 0; zero point of ``a``'s dtype (None means 0).
    b_scale, b_zero_point : numpy.ndarray
        Per-tensor or per-column (``(N,)`` or ``[..., 1, N]``), same shape.
    y_scale, y_zero_point : numpy.ndarray
        Per-tensor. The zero point's dtype (int8 or uint8) is the output type; None means
        0 of ``a``'s dtype.

    Returns
    -------
    numpy.ndarray
        int8 or uint8, shape as :func:`numpy.matmul` gives.

    Raises
    ------
    DTypeError, ShapeError, QuantParamError
        As :func:`matmul_integer`, plus bad scales (non-finite, <= 0, not float32/float16),
        scale and zero point shapes that differ, or a non-scalar output parameter.

    Notes
    -----
    ::

        acc = matmul_integer(a, b, a_zero_point, b_zero_point)           # int32, wraps
        multiplier = float32(float32(a_scale) * float32(b_scale)) / float32(y_scale)
        y = saturate(round_half_even(float32(acc) * multiplier) + y_zero_point)

    in float32 throughout, exactly :func:`qcore.reference.requantize_float` (and the C
    ``qc__requant_float``). float16 scales are widened to float32 first. See
    docs/ARITHMETIC.md, "QLinearMatMul".
    """
    a = _operand(a, "a")
    b = _operand(b, "b")
    _matmul_shapes(a, b)
    out_dtype = a.dtype
    if y_zero_point is not None:
        out_dtype = np.asarray(y_zero_point).dtype
        if out_dtype not in _OPERAND_DTYPES:
            raise DTypeError(f"y_zero_point must be int8 or uint8, got {out_dtype}")
    a_scale_v, b_scale_v, y_scale_v = (as_scale(s, n) for s, n in
                                       ((a_scale, "a_scale"), (b_scale, "b_scale"), (y_scale, "y_scale")))
    _same_shape(a_scale_v, a_zero_point, "a")
    _same_shape(b_scale_v, b_zero_point, "b")
    _same_shape(y_scale_v, y_zero_point, "y")
    if y_scale_v.shape not in _PER_TENSOR:
        raise ShapeError(f"y_scale must be per-tensor (a scalar), got shape {y_scale_v.shape}")
    promoted_a, promoted_b, squeeze = _promote(a, b)
    a_scale_b = _row_param(a_scale_v.astype(np.float32), promoted_a.shape, "a_scale")
    b_scale_b = _column_param(b_scale_v.astype(np.float32), promoted_b.shape, "b_scale")
    acc = matmul_integer(a, b, a_zero_point, b_zero_point)
    multiplier = (a_scale_b * b_scale_b) / y_scale_v.astype(np.float32).reshape(())
    if multiplier.ndim:  # per-row/column: drop the axes numpy.matmul dropped for 1-D operands
        axes = tuple(ax for ax, drop in ((-2, squeeze[0]), (-1, squeeze[1])) if drop)
        multiplier = np.squeeze(multiplier, axis=axes) if axes else multiplier
    zero_point = 0 if y_zero_point is None else _zero_point_values(y_zero_point, out_dtype, "y_zero_point").reshape(())
    out = int_type(out_dtype)
    return requantize_float(acc, multiplier, zero_point, out.qmin, out.qmax).astype(out.container)


def _same_shape(scale: np.ndarray, zero_point: object, name: str) -> None:
    if zero_point is None or isinstance(zero_point, numbers.Integral):
        if scale.shape not in _PER_TENSOR:
            raise ShapeError(f"{name}_zero_point is a scalar but {name}_scale has shape {scale.shape}")
        return
    zp_shape = np.shape(zero_point)
    if zp_shape != scale.shape and not (zp_shape in _PER_TENSOR and scale.shape in _PER_TENSOR):
        raise ShapeError(f"{name}_scale shape {scale.shape} != {name}_zero_point shape {zp_shape}")
