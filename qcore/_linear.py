"""A dynamically quantized linear layer in one C call (csrc/include/qcore_linear.h).

Per-row uint8 dynamic quantization of float32 activations, the exact int32 product with
pre-packed int8/uint8 weights, and the float32 epilogue
``y = float32(acc) * float32(s_x[m] * s_w[n]) + bias[n]``: bit-identical to
:func:`qcore.runtime.kernels.dynamic_quantize` (per row) followed by
:meth:`qcore.runtime.kernels.PackedLinear.run`, on every ISA.
"""

from __future__ import annotations

import numpy as np

from ._gemm import PackedWeights
from ._native import check, ffi, lib, make_options
from .errors import DTypeError, ShapeError


def linear_dynamic(x: np.ndarray, packed: PackedWeights, w_scale: np.ndarray, bias: np.ndarray | None = None, *,
                   x_mul: np.ndarray | None = None, out: np.ndarray | None = None,
                   isa: str | None = None, num_threads: int | None = None) -> np.ndarray:
    """``y = dequantize(dynamic_quantize_rows(x)) @ dequantize(W) + bias``, exactly as the runtime defines it.

    Parameters
    ----------
    x : numpy.ndarray
        float32 ``(M, K)``.
    packed : qcore._gemm.PackedWeights
        The int8/uint8 weights ``(K, N)`` with their zero points.
    w_scale : numpy.ndarray
        float32 weight scales: one, or one per output column ``(N,)``.
    bias : numpy.ndarray, optional
        float32 ``(N,)``.
    x_mul : numpy.ndarray, optional
        float32 ``(K,)``: the layer runs on ``x * x_mul`` (a SmoothQuant smoothing Mul),
        formed row by row during quantization, bit-identical to multiplying first.
    out : numpy.ndarray, optional
        C-contiguous float32 ``(M, N)`` to write into (must not overlap ``x``).
    isa, num_threads
        Instruction-set path and GEMM threads (results are identical for all).

    Returns
    -------
    numpy.ndarray
        float32 ``(M, N)``.

    Raises
    ------
    DTypeError
        ``x`` not float32 or ``packed`` not a PackedWeights.
    ShapeError
        ``x`` not ``(M, K)``, a scale / bias / ``x_mul`` of the wrong size, or an ``out``
        that does not fit.
    NonFiniteError
        NaN or infinity in ``x`` (or in ``x * x_mul``).

    Notes
    -----
    Row ``m``: ``lo = min(0, min x)``, ``hi = max(0, max x)``, ``s = (hi - lo) / 255``
    (1 when that is 0), ``z = round_half_even(clip(-lo / s, 0, 255))``,
    ``q = saturate(round_half_even(x / s) + z)``; then
    ``acc = sum_k (q - z)(w - zw)`` in int32 and ``y = float32(acc) * float32(s * s_w[n]) + b[n]``.
    With ``x_mul`` the row is ``x[m, k] * x_mul[k]`` (float32) before all of this.
    """
    if not isinstance(packed, PackedWeights):
        raise DTypeError(f"packed must be a PackedWeights, got {type(packed).__name__}")
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError(f"x must be float32, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != packed.k:
        raise ShapeError(f"x must be (M, {packed.k}), got {x.shape}")
    x = np.ascontiguousarray(x)
    ws = np.ascontiguousarray(w_scale, dtype=np.float32).reshape(-1)
    if ws.size not in (1, packed.n):
        raise ShapeError(f"w_scale has {ws.size} values; it must have 1 or {packed.n}")
    b = None
    if bias is not None:
        b = np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
        if b.size != packed.n:
            raise ShapeError(f"bias has {b.size} values; it must have {packed.n}")
    if out is None:
        y = np.empty((x.shape[0], packed.n), dtype=np.float32)
    elif (not isinstance(out, np.ndarray) or out.shape != (x.shape[0], packed.n) or out.dtype != np.float32
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ShapeError(f"out must be a writeable C-contiguous float32 array of shape {(x.shape[0], packed.n)}")
    else:
        y = out
    x_ptr = ffi.cast("const float *", ffi.from_buffer(x)) if x.size else ffi.NULL
    w_ptr = ffi.cast("const float *", ffi.from_buffer(ws))
    b_ptr = ffi.NULL if b is None else ffi.cast("const float *", ffi.from_buffer(b))
    y_ptr = ffi.cast("float *", ffi.from_buffer(y)) if y.size else ffi.NULL
    if x_mul is None:
        status = lib.qc_linear_dynamic_u8_f32(x.shape[0], x_ptr, packed._ptr(), w_ptr, ws.size, b_ptr, y_ptr,
                                              make_options(isa, num_threads))
    else:
        s = np.asarray(x_mul)
        if s.dtype != np.float32:
            raise DTypeError(f"x_mul must be float32, got {s.dtype}")
        if s.size != packed.k:
            raise ShapeError(f"x_mul has {s.size} values; it must have {packed.k}")
        s = np.ascontiguousarray(s).reshape(-1)
        status = lib.qc_linear_dynamic_smoothed_u8_f32(x.shape[0], x_ptr, ffi.cast("const float *", ffi.from_buffer(s)),
                                                       packed._ptr(), w_ptr, ws.size, b_ptr, y_ptr,
                                                       make_options(isa, num_threads))
    check(status, "linear_dynamic")
    return y
