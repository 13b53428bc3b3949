"""float32 erf, GELU, softmax and layer norm on the C core (csrc/include/qcore_activation.h).

Bit-identical on every ISA path and to the NumPy definition
:mod:`qcore.reference.activation`; ``isa`` (``"scalar"``, ``"avx2"``, ...; ``None`` picks
``QCORE_ISA`` or the best) exists for testing and benchmarking.
"""

from __future__ import annotations

import numpy as np

from ._native import c_floats, check, copy_back, ffi, float_target, lib, make_options
from .errors import DTypeError, QuantParamError, ShapeError


def _run(fn, name: str, x: np.ndarray, out: np.ndarray | None, isa: str | None) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError(f"{name}: expected float32 input, got {x.dtype}")
    src = c_floats(x)
    if out is None:
        out = np.empty(src.shape, dtype=np.float32)
    elif out.shape != src.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise DTypeError(f"{name}: out must be a C-contiguous float32 array of shape {src.shape}")
    if src.size:
        target = float_target(out)
        status = fn(ffi.cast("const float *", ffi.from_buffer(src)), src.size,
                    ffi.cast("float *", ffi.from_buffer(target)), make_options(isa, None))
        check(status, name)
        copy_back(out, target)
    return out


def erf(x: np.ndarray, *, out: np.ndarray | None = None, isa: str | None = None) -> np.ndarray:
    """Element-wise error function of float32 ``x`` (:func:`qcore.reference.activation.erf`).

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        C-contiguous float32 array of ``x``'s shape to write into (may be ``x`` itself).
    isa : str, optional
        Instruction-set path.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32 or ``out`` does not fit.
    UnsupportedISAError
        ``isa`` cannot run here.

    Notes
    -----
    ``erf(x) = sign(x) * z * S(z^2)`` for ``z = |x| < 0.5``, else ``sign(x) * (1 - erfc(z))``
    (docs in csrc/include/qcore_activation.h); absolute error below 3e-7.
    """
    return _run(lib.qc_erf_f32, "erf", x, out, isa)


def gelu(x: np.ndarray, *, out: np.ndarray | None = None, isa: str | None = None) -> np.ndarray:
    """Element-wise GELU ``x / 2 * (1 + erf(x / sqrt 2))`` of float32 ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        C-contiguous float32 array of ``x``'s shape to write into (may be ``x`` itself).
    isa : str, optional
        Instruction-set path.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32 or ``out`` does not fit.
    UnsupportedISAError
        ``isa`` cannot run here.

    Notes
    -----
    :func:`qcore.reference.activation.gelu`: ``u = x * 0.70710677``,
    ``uc = min(max(u, -A), A)``, ``s = uc * uc``, ``y = (0.5 x) * (1 + uc * P(s) / Q(s))``
    with a rational erf of its own (P of degree 7, Q monic of degree 3; ``A = 3.7021167``,
    where it reaches 1) and ``y = -0`` for ``u < -A``; one division and no exp per value,
    unlike :func:`erf`. The error is
    absolute: ``|y - gelu(x)| < 2.5e-7 * max(1, |x|)``. NaN in gives NaN out,
    ``gelu(+-inf) = +inf, -0``, ``gelu(+-0) = +-0`` (docs/ARITHMETIC.md, "GELU (float32)").
    """
    return _run(lib.qc_gelu_f32, "gelu", x, out, isa)


def softmax(x: np.ndarray, *, out: np.ndarray | None = None, isa: str | None = None) -> np.ndarray:
    """Softmax of float32 ``x`` over its last axis (:func:`qcore.reference.activation.softmax`).

    Parameters
    ----------
    x : numpy.ndarray
        float32, at least 1-D.
    out : numpy.ndarray, optional
        C-contiguous float32 array of ``x``'s shape to write into (may be ``x`` itself).
    isa : str, optional
        Instruction-set path.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32, is 0-d, or ``out`` does not fit.
    UnsupportedISAError
        ``isa`` cannot run here.

    Notes
    -----
    ``y = exp(x - max) / sum`` with qcore's float32 exp and a fixed 8-lane summation
    order, so every ISA gives the same bits.
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise DTypeError("softmax needs at least one axis")
    cols = x.shape[-1]

    def run(xp, n, yp, options):
        return lib.qc_softmax_f32(xp, n // cols if cols else 0, cols, yp, options)
    return _run(run, "softmax", x, out, isa)


def norm_params(gamma: np.ndarray | None, beta: np.ndarray | None, cols: int) -> tuple:
    """A layer norm's scale and shift as contiguous 1-D float32 arrays (None stays None).

    Raises
    ------
    DTypeError
        One is not float32.
    ShapeError
        One does not have ``cols`` values.
    """
    params = []
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is None:
            params.append(None)
            continue
        p = np.asarray(p)
        if p.dtype != np.float32:
            raise DTypeError(f"layer_norm: {name} must be float32, got {p.dtype}")
        if p.size != cols:
            raise ShapeError(f"layer_norm: {name} has {p.size} values, x has {cols} columns")
        params.append(c_floats(p).reshape(-1))
    return params[0], params[1]


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None, epsilon: float, *,
               residual: np.ndarray | None = None, out: np.ndarray | None = None, isa: str | None = None) -> np.ndarray:
    """Layer normalization of float32 ``x`` (or ``x + residual``) over its last axis.

    Parameters
    ----------
    x : numpy.ndarray
        float32, at least 1-D.
    gamma : numpy.ndarray
        float32 scale, one value per element of the last axis.
    beta : numpy.ndarray or None
        float32 shift, the same size, or None.
    epsilon : float
        Added to the variance, finite and >= 0 (rounded to float32).
    residual : numpy.ndarray, optional
        float32 of ``x``'s shape, added to ``x`` first (the fused residual Add).
    out : numpy.ndarray, optional
        C-contiguous float32 array of ``x``'s shape to write into (may be ``x`` or
        ``residual``).
    isa : str, optional
        Instruction-set path.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        An operand is not float32, ``x`` is 0-d, or ``out`` does not fit.
    ShapeError
        ``gamma`` / ``beta`` not one value per column, or ``residual`` not ``x``'s shape.
    QuantParamError
        ``epsilon`` negative or not finite.

    Notes
    -----
    :func:`qcore.reference.activation.layer_norm`: per row ``mean = S(v) / n``,
    ``c = v - mean``, ``y = (c / sqrt(S(c * c) / n + eps)) * gamma + beta`` with ``S`` an
    8-lane float32 sum in a fixed order, so every ISA gives the same bits.
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError(f"layer_norm: expected float32 input, got {x.dtype}")
    if x.ndim == 0:
        raise DTypeError("layer_norm needs at least one axis")
    cols = x.shape[-1]
    if not (np.isfinite(epsilon) and epsilon >= 0):
        raise QuantParamError(f"layer_norm: epsilon must be finite and >= 0, got {epsilon}")
    g, b = norm_params(gamma, beta, cols)
    if g is None:
        raise DTypeError("layer_norm: gamma is required")
    src = c_floats(x)
    res = None
    if residual is not None:
        res = np.asarray(residual)
        if res.dtype != np.float32:
            raise DTypeError(f"layer_norm: residual must be float32, got {res.dtype}")
        if res.shape != x.shape:
            raise ShapeError(f"layer_norm: residual has shape {res.shape}, x has {x.shape}")
        res = c_floats(res)
    if out is None:
        out = np.empty(src.shape, dtype=np.float32)
    elif out.shape != src.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise DTypeError(f"layer_norm: out must be a C-contiguous float32 array of shape {src.shape}")
    if src.size:
        target = float_target(out)
        status = lib.qc_layer_norm_f32(
            ffi.cast("const float *", ffi.from_buffer(src)),
            ffi.NULL if res is None else ffi.cast("const float *", ffi.from_buffer(res)),
            src.size // cols, cols, ffi.cast("const float *", ffi.from_buffer(g)),
            ffi.NULL if b is None else ffi.cast("const float *", ffi.from_buffer(b)), float(epsilon),
            ffi.cast("float *", ffi.from_buffer(target)), make_options(isa, None))
        check(status, "layer_norm")
        copy_back(out, target)
    return out
