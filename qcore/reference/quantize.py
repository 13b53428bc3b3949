"""The public quantization entry point: float array -> :class:`QuantizedTensor`.

``quantize_tensor`` finds the real range (of the whole tensor, of each channel, or of each
block; or takes it from a calibrated observer), chooses the parameters with
:func:`qcore.reference.params.choose_qparams`, and rounds with the chosen convention's
own quantize formula (docs/ARITHMETIC.md, "Choosing parameters").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DTypeError, NonFiniteError, QuantParamError, ShapeError
from . import pytorch as _pytorch
from . import tflite as _tflite
from .dtypes import IntType
from .params import _quantizable, check_convention, check_scale_dtype, choose_qparams, float16_scale
from .tensor import QuantizedTensor, expand_to

GRANULARITIES = ("per_tensor", "per_channel", "per_block")


def _as_float32(x: ArrayLike) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise DTypeError(f"quantize_tensor needs a float array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ShapeError("cannot quantize an empty array")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise NonFiniteError("cannot quantize NaN or infinite values (choose a range with an observer first)")
    return arr


def _normalize_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise QuantParamError(f"axis {axis} out of range for rank {ndim}")
    return axis % ndim


def _block_ranges(x: np.ndarray, axis: int, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, x.shape[axis], block_size)
    return np.minimum.reduceat(x, starts, axis=axis), np.maximum.reduceat(x, starts, axis=axis)


def _observer_range(observer: Any, x: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    if not callable(getattr(observer, "compute_range", None)):
        raise QuantParamError("observer must provide compute_range() -> (min, max)")
    lo, hi = observer.compute_range()  # CalibrationError if it has seen no data
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    obs_axis = getattr(observer, "axis", None)
    if axis is None:
        if obs_axis is not None or lo.ndim != 0:
            raise QuantParamError("per-tensor quantization needs a per-tensor observer")
    else:
        if obs_axis is None or _normalize_axis(obs_axis, x.ndim) != axis or lo.shape != (x.shape[axis],):
            raise QuantParamError(f"per-channel quantization on axis {axis} needs an observer of that axis and length")
    return lo, hi


def quantize_tensor(
    x: ArrayLike,
    dtype: str | IntType = "int8",
    *,
    granularity: str = "per_tensor",
    axis: int = 0,
    block_size: int | None = None,
    symmetric: bool = True,
    convention: str = "onnx",
    reduce_range: bool = False,
    observer: Any = None,
    scale_dtype: str = "float32",
) -> QuantizedTensor:
    """Quantize a float array, choosing scale and zero point from its range.

    Parameters
    ----------
    x : array_like of float
        Non-empty, finite; cast to float32.
    dtype : str or IntType
        int8, uint8, int16, uint16, int4, uint4, int2, uint2.
    granularity : {"per_tensor", "per_channel", "per_block"}
        ``"per_axis"`` is accepted for ``"per_channel"``.
    axis : int
        Channel axis (per_channel) or block axis (per_block); negative counts from the end.
    block_size : int, optional
        Block length along ``axis`` for per_block (>= 1); the last block may be partial.
    symmetric : bool
        Symmetric (zero point fixed) or affine.
    convention : {"onnx", "tflite", "pytorch"}
        Whose parameter choice and rounding to reproduce.
    reduce_range : bool
        See :func:`qcore.reference.params.quant_range`.
    observer : object, optional
        A calibrated observer (:mod:`qcore.reference.observers`); its ``compute_range()``
        replaces the range of ``x``. Per-tensor observers for per_tensor, observers with the
        same ``axis`` for per_channel; not supported for per_block.
    scale_dtype : {"float32", "float16"}
        ``"float16"``: round each chosen scale up to a float16 value
        (:func:`qcore.reference.params.float16_scale`) and quantize with that scale, so
        that a file stores the scales in two bytes without changing any value. Kept
        float32 when a scale is outside float16's normal range. Not with the tflite
        convention's symmetric formula, which does not divide by the scale.

    Returns
    -------
    QuantizedTensor

    Raises
    ------
    DTypeError
        ``x`` is not a float array, or ``dtype`` is unknown.
    ShapeError
        ``x`` is empty.
    NonFiniteError
        ``x`` contains NaN or +-inf.
    QuantParamError
        Bad granularity, axis, block size, convention, or an observer that does not fit.
    CalibrationError
        The observer has seen no data.

    Notes
    -----
    ``(rmin, rmax)`` per tensor / channel / block, then ``choose_qparams`` and:

    - onnx: ``qcore.reference.onnx_ops.quantize_linear`` (``x / scale``, ties to even);
    - tflite: affine ``round_half_away(x / scale) + zp``; symmetric
      ``round_half_away(x * (qmax / max|r|))`` clipped to ``[-qmax, qmax]`` (the converter);
    - pytorch: ``round_half_even(x * (1 / scale) + zp)`` (reciprocal multiply, zero point
      before rounding; per_block uses the per-channel kernel's form).
    """
    itype = _quantizable(dtype)
    check_convention(convention)
    if granularity == "per_axis":  # QuantizedTensor.granularity's name for it
        granularity = "per_channel"
    if granularity not in GRANULARITIES:
        raise QuantParamError(f"unknown granularity {granularity!r}; known: {', '.join(GRANULARITIES)}")
    xs = _as_float32(x)
    q_axis: int | None = None
    block = 0
    if granularity == "per_tensor":
        if block_size:
            raise QuantParamError("block_size is only valid with granularity='per_block'")
        if observer is not None:
            lo, hi = _observer_range(observer, xs, None)
        else:
            lo, hi = xs.min(), xs.max()
    else:
        if xs.ndim == 0:
            raise ShapeError(f"{granularity} quantization needs an array of rank >= 1")
        q_axis = _normalize_axis(axis, xs.ndim)
        if granularity == "per_channel":
            if block_size:
                raise QuantParamError("block_size is only valid with granularity='per_block'")
            if observer is not None:
                lo, hi = _observer_range(observer, xs, q_axis)
            else:
                others = tuple(d for d in range(xs.ndim) if d != q_axis)
                lo, hi = xs.min(axis=others), xs.max(axis=others)
        else:
            if block_size is None or isinstance(block_size, bool) or int(block_size) != block_size or block_size < 1:
                raise QuantParamError(f"per_block needs an integer block_size >= 1, got {block_size!r}")
            if observer is not None:
                raise QuantParamError("observers give per-tensor or per-channel ranges, not per-block")
            block = int(block_size)
            lo, hi = _block_ranges(xs, q_axis, block)
    check_scale_dtype(scale_dtype)
    if scale_dtype == "float16" and convention == "tflite" and symmetric:
        raise QuantParamError("float16 scales are not available with the tflite symmetric formula")
    scale, zero_point = choose_qparams(
        lo, hi, itype, symmetric=symmetric, convention=convention, reduce_range=reduce_range
    )
    if scale_dtype == "float16":
        half = float16_scale(scale)
        if half is not None:
            scale = half.reshape(np.shape(scale))
    full_scale = expand_to(scale, xs.shape, q_axis, block)
    full_zp = expand_to(zero_point.astype(np.int64), xs.shape, q_axis, block)
    if convention == "onnx":
        from .onnx_ops import quantize_linear

        data = quantize_linear(
            xs,
            scale,
            zero_point,
            axis=1 if q_axis is None else q_axis,
            block_size=block,
            output_dtype=itype.name,
        )
    elif convention == "tflite" and symmetric:
        absmax = np.maximum(np.abs(np.minimum(lo, 0)), np.abs(np.maximum(hi, 0))).astype(np.float32)
        data, _ = _tflite.quantize_symmetric(xs, expand_to(absmax, xs.shape, q_axis, block), itype)
    elif convention == "tflite":
        data = _tflite.quantize(xs, full_scale, full_zp, itype)
    else:
        data = _pytorch.quantize(xs, full_scale, full_zp, itype, per_channel=q_axis is not None)
    return QuantizedTensor(
        data=np.asarray(data, dtype=itype.container),
        scale=scale,
        zero_point=zero_point,
        dtype=itype.name,
        axis=q_axis,
        block_size=block,
        convention=convention,
    )
