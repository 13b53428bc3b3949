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
    layer = DynamicLinear(packed, w_scale, bias, x_mul, isa=isa, num_threads=num_threads)
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError(f"x must be float32, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != packed.k:
        raise ShapeError(f"x must be (M, {packed.k}), got {x.shape}")
    x = np.ascontiguousarray(x)
    return layer(x, np.empty((x.shape[0], packed.n), dtype=np.float32) if out is None else out)


class DynamicLinear:
    """One dynamically quantized linear layer prepared for many calls of :func:`linear_dynamic`.

    The weights, scales, bias, smoothing vector and call options are checked and turned
    into C pointers once; each call then checks only its input and output buffer. Results
    are those of :func:`linear_dynamic` with the same arguments, bit for bit.

    Parameters
    ----------
    packed : qcore._gemm.PackedWeights
        The int8/uint8 weights ``(K, N)``.
    w_scale : numpy.ndarray
        float32 weight scales: one, or one per output column.
    bias : numpy.ndarray, optional
        float32 ``(N,)``.
    x_mul : numpy.ndarray, optional
        float32 ``(K,)``: the smoothing vector (see :func:`linear_dynamic`).
    isa, num_threads
        Instruction-set path and GEMM threads (results are identical for all).

    Raises
    ------
    DTypeError
        ``packed`` not a PackedWeights, or ``x_mul`` not float32.
    ShapeError
        A scale, bias or ``x_mul`` of the wrong size.
    UnsupportedISAError
        ``isa`` cannot run here.
    QuantParamError
        ``num_threads`` not in [1, 256].
    """

    def __init__(self, packed: PackedWeights, w_scale: np.ndarray, bias: np.ndarray | None = None,
                 x_mul: np.ndarray | None = None, *, isa: str | None = None, num_threads: int | None = None) -> None:
        if not isinstance(packed, PackedWeights):
            raise DTypeError(f"packed must be a PackedWeights, got {type(packed).__name__}")
        self.k, self.n = packed.k, packed.n
        self._packed = packed
        self._ws = np.ascontiguousarray(w_scale, dtype=np.float32).reshape(-1)
        if self._ws.size not in (1, self.n):
            raise ShapeError(f"w_scale has {self._ws.size} values; it must have 1 or {self.n}")
        self._bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
        if self._bias is not None and self._bias.size != self.n:
            raise ShapeError(f"bias has {self._bias.size} values; it must have {self.n}")
        self._x_mul = None
        if x_mul is not None:
            s = np.asarray(x_mul)
            if s.dtype != np.float32:
                raise DTypeError(f"x_mul must be float32, got {s.dtype}")
            if s.size != self.k:
                raise ShapeError(f"x_mul has {s.size} values; it must have {self.k}")
            self._x_mul = np.ascontiguousarray(s).reshape(-1)
        self._w_ptr = ffi.cast("const float *", ffi.from_buffer(self._ws))
        self._b_ptr = ffi.NULL if self._bias is None else ffi.cast("const float *", ffi.from_buffer(self._bias))
        self._s_ptr = None if self._x_mul is None else ffi.cast("const float *", ffi.from_buffer(self._x_mul))
        self._p_ptr = packed._ptr()
        self._options = make_options(isa, num_threads)  # None: QCORE_ISA / QCORE_NUM_THREADS, read by C per call

    def __call__(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Run the layer on ``x`` into ``out``.

        Parameters
        ----------
        x : numpy.ndarray
            C-contiguous float32 ``(M, K)``.
        out : numpy.ndarray
            Writeable C-contiguous float32 ``(M, N)``, not overlapping ``x``.

        Returns
        -------
        numpy.ndarray
            ``out``.

        Raises
        ------
        DTypeError
            ``x`` not float32.
        ShapeError
            ``x`` or ``out`` of the wrong shape or layout.
        NonFiniteError
            NaN or infinity in ``x`` (or in ``x * x_mul``).
        """
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise DTypeError(f"x must be a float32 array, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.ndim != 2 or x.shape[1] != self.k or not x.flags.c_contiguous:
            raise ShapeError(f"x must be C-contiguous (M, {self.k}), got {x.shape}")
        m = x.shape[0]
        if (not isinstance(out, np.ndarray) or out.shape != (m, self.n) or out.dtype != np.float32
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise ShapeError(f"out must be a writeable C-contiguous float32 array of shape {(m, self.n)}")
        if m == 0 or self.n == 0:
            return out
        x_ptr = ffi.cast("const float *", ffi.from_buffer(x)) if x.size else ffi.NULL
        y_ptr = ffi.cast("float *", ffi.from_buffer(out))
        if self._s_ptr is None:
            status = lib.qc_linear_dynamic_u8_f32(m, x_ptr, self._p_ptr, self._w_ptr, self._ws.size,
                                                  self._b_ptr, y_ptr, self._options)
        else:
            status = lib.qc_linear_dynamic_smoothed_u8_f32(m, x_ptr, self._s_ptr, self._p_ptr, self._w_ptr,
                                                           self._ws.size, self._b_ptr, y_ptr, self._options)
        check(status, "linear_dynamic")
        return out
