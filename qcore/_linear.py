"""A dynamically quantized linear layer in one C call (csrc/include/qcore_linear.h).

Per-row uint8 dynamic quantization of float32 activations, the exact int32 product with
pre-packed int8/uint8 weights, and the float32 epilogue
``y = float32(acc) * float32(s_x[m] * s_w[n]) + bias[n]``: bit-identical to
:func:`qcore.runtime.kernels.dynamic_quantize` (per row) followed by
:meth:`qcore.runtime.kernels.PackedLinear.run`, on every ISA.
"""

from __future__ import annotations

import numpy as np

from ._activation import norm_params
from ._gemm import PackedWeights
from ._native import c_floats, check, copy_back, ffi, float_target, lib, make_options
from .errors import DTypeError, QuantParamError, ShapeError


def linear_dynamic(x: np.ndarray, packed: PackedWeights, w_scale: np.ndarray, bias: np.ndarray | None = None, *,
                   x_mul: np.ndarray | None = None, out: np.ndarray | None = None,
                   post: str | None = None, residual: np.ndarray | None = None, gamma: np.ndarray | None = None,
                   beta: np.ndarray | None = None, epsilon: float = 1e-5,
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
    post : {None, "gelu", "layer_norm"}
        Applied to the result row block by row block while it is in cache, bit for bit
        what :func:`qcore._activation.gelu` or :func:`qcore._activation.layer_norm`
        (with ``residual``, ``gamma``, ``beta``, ``epsilon``) give on the whole result.
    residual, gamma, beta, epsilon
        ``post="layer_norm"`` only: float32 ``(M, N)`` added first (optional; must not
        overlap ``out``), ``(N,)`` scale, optional ``(N,)`` shift, finite ``epsilon >= 0``.
    isa, num_threads
        Instruction-set path and GEMM threads (results are identical for all).

    Returns
    -------
    numpy.ndarray
        float32 ``(M, N)``.

    Raises
    ------
    DTypeError
        ``x`` not float32, ``packed`` not a PackedWeights, or a layer-norm operand not
        float32.
    ShapeError
        ``x`` not ``(M, K)``, a scale / bias / ``x_mul`` / layer-norm operand of the wrong
        size, or an ``out`` that does not fit (or overlaps ``residual``).
    QuantParamError
        An unknown ``post``, a layer norm without ``gamma`` or with a bad ``epsilon``.
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
    layer = DynamicLinear(packed, w_scale, bias, x_mul, post=post, gamma=gamma, beta=beta, epsilon=epsilon,
                          isa=isa, num_threads=num_threads)
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError(f"x must be float32, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != packed.k:
        raise ShapeError(f"x must be (M, {packed.k}), got {x.shape}")
    x = c_floats(x)
    return layer(x, np.empty((x.shape[0], packed.n), dtype=np.float32) if out is None else out, residual)


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
    post, gamma, beta, epsilon
        The row-wise operation after the layer (see :func:`linear_dynamic`); the
        layer norm's residual comes with each call.
    isa, num_threads
        Instruction-set path and GEMM threads (results are identical for all).

    Raises
    ------
    DTypeError
        ``packed`` not a PackedWeights, or ``x_mul``, ``gamma`` or ``beta`` not float32.
    ShapeError
        A scale, bias, ``x_mul``, ``gamma`` or ``beta`` of the wrong size.
    UnsupportedISAError
        ``isa`` cannot run here.
    QuantParamError
        ``num_threads`` not in [1, 256].
    """

    def __init__(self, packed: PackedWeights, w_scale: np.ndarray, bias: np.ndarray | None = None,
                 x_mul: np.ndarray | None = None, *, post: str | None = None, gamma: np.ndarray | None = None,
                 beta: np.ndarray | None = None, epsilon: float = 1e-5,
                 isa: str | None = None, num_threads: int | None = None) -> None:
        if not isinstance(packed, PackedWeights):
            raise DTypeError(f"packed must be a PackedWeights, got {type(packed).__name__}")
        self.k, self.n = packed.k, packed.n
        self._keep: list = []  # arrays the post-op struct points into
        self._packed = packed
        self._ws = c_floats(np.asarray(w_scale, dtype=np.float32).reshape(-1))
        if self._ws.size not in (1, self.n):
            raise ShapeError(f"w_scale has {self._ws.size} values; it must have 1 or {self.n}")
        self._bias = None if bias is None else c_floats(np.asarray(bias, dtype=np.float32).reshape(-1))
        if self._bias is not None and self._bias.size != self.n:
            raise ShapeError(f"bias has {self._bias.size} values; it must have {self.n}")
        self._x_mul = None
        if x_mul is not None:
            s = np.asarray(x_mul)
            if s.dtype != np.float32:
                raise DTypeError(f"x_mul must be float32, got {s.dtype}")
            if s.size != self.k:
                raise ShapeError(f"x_mul has {s.size} values; it must have {self.k}")
            self._x_mul = c_floats(s.reshape(-1))
        self._w_ptr = ffi.cast("const float *", ffi.from_buffer(self._ws))
        self._b_ptr = ffi.NULL if self._bias is None else ffi.cast("const float *", ffi.from_buffer(self._bias))
        self._s_ptr = ffi.NULL if self._x_mul is None else ffi.cast("const float *", ffi.from_buffer(self._x_mul))
        self._p_ptr = packed._ptr()
        self._options = make_options(isa, num_threads)  # None: QCORE_ISA / QCORE_NUM_THREADS, read by C per call
        self._post = None
        self._layer_norm = post == "layer_norm"
        if post is not None:
            self._post = _post_struct(post, self.n, gamma, beta, epsilon, self._keep)

    def __call__(self, x: np.ndarray, out: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
        """Run the layer on ``x`` into ``out``.

        Parameters
        ----------
        x : numpy.ndarray
            C-contiguous float32 ``(M, K)``.
        out : numpy.ndarray
            Writeable C-contiguous float32 ``(M, N)``, not overlapping ``x``.
        residual : numpy.ndarray, optional
            With ``post="layer_norm"``: float32 ``(M, N)`` added before the layer norm
            (not overlapping ``out``).

        Returns
        -------
        numpy.ndarray
            ``out``.

        Raises
        ------
        DTypeError
            ``x`` not float32.
        ShapeError
            ``x``, ``out`` or ``residual`` of the wrong shape or layout, a residual
            without a layer norm, or one overlapping ``out``.
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
        x = c_floats(x)  # a copy only when x starts at an odd byte offset
        target = float_target(out)
        x_ptr = ffi.cast("const float *", ffi.from_buffer(x)) if x.size else ffi.NULL
        y_ptr = ffi.cast("float *", ffi.from_buffer(target))
        post = ffi.NULL if self._post is None else self._post
        if residual is not None:
            if not self._layer_norm:
                raise ShapeError("a residual needs post='layer_norm'")
            if (not isinstance(residual, np.ndarray) or residual.dtype != np.float32 or residual.shape != out.shape
                    or not residual.flags.c_contiguous):
                raise ShapeError(f"residual must be a C-contiguous float32 array of shape {out.shape}")
            if np.may_share_memory(residual, out):
                raise ShapeError("residual overlaps out")
            residual = c_floats(residual)
            post = ffi.new("qc_linear_post *", self._post[0])
            post.residual = ffi.cast("const float *", ffi.from_buffer(residual))
        # one entry point for every form: NULL x_mul (no smoothing) and NULL post (nothing after)
        status = lib.qc_linear_dynamic_post_f32(m, x_ptr, self._s_ptr, self._p_ptr, self._w_ptr, self._ws.size,
                                                self._b_ptr, post, y_ptr, self._options)
        check(status, "linear_dynamic")
        return copy_back(out, target)


_POST_OPS = {"gelu": "QC_LINEAR_POST_GELU", "layer_norm": "QC_LINEAR_POST_LAYER_NORM"}


def _post_struct(post: str, n: int, gamma: np.ndarray | None, beta: np.ndarray | None, epsilon: float,
                 keep: list):
    """The checked ``qc_linear_post`` of a layer with ``n`` outputs (``keep`` holds what it points into)."""
    if post not in _POST_OPS:
        raise QuantParamError(f"post must be None, 'gelu' or 'layer_norm', got {post!r}")
    struct = ffi.new("qc_linear_post *")
    struct.op = getattr(lib, _POST_OPS[post])
    if post == "layer_norm":
        if gamma is None:
            raise QuantParamError("a layer norm needs gamma")
        if not (np.isfinite(epsilon) and epsilon >= 0):
            raise QuantParamError(f"epsilon must be finite and >= 0, got {epsilon}")
        for name, p in zip(("gamma", "beta"), norm_params(gamma, beta, n)):
            if p is not None:
                keep.append(p)
                setattr(struct, name, ffi.cast("const float *", ffi.from_buffer(p)))
        struct.epsilon = float(epsilon)
    return struct
