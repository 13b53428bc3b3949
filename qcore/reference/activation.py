"""NumPy definition of qcore's float32 error function, GELU, softmax and layer norm (the C kernels' oracle).

Every operation is a float32 NumPy ufunc (IEEE, correctly rounded), applied in the order
the C kernels (csrc/include/qcore_activation.h) apply them, so C and NumPy agree bit for
bit. Absolute error of :func:`erf` against the true function is below 3e-7.
"""

from __future__ import annotations

import numpy as np

from ..errors import DTypeError

_F = np.float32
ERF_SERIES = tuple(_F(c) for c in (1.1283791670955126, -0.37612638903183754, 0.11283791670955126,
                                   -0.026866170645131252, 0.005223977625442188, -0.0008548327023450852,
                                   0.00012055332981789664))
ERFC_POLY = tuple(_F(c) for c in (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                                  -1.13520398, 1.48851587, -0.82215223, 0.17087277))
EXP_TAYLOR = tuple(_F(c) for c in (1.0, 1.0, 0.5, 0.16666666666666666, 0.041666666666666664,
                                   0.008333333333333333, 0.001388888888888889, 0.0001984126984126984))
SPLIT = _F(0.5)
Z_MAX = _F(9.0)
# GELU's erf: uc * P(s) / Q(s), s = uc * uc, uc = x * INV_SQRT2 clamped to [-A, A]; P of
# degree 7, Q monic of degree 3 (ascending coefficients), fitted by tools/fit_gelu.py.
GELU_INV_SQRT2 = _F(0.70710677)
GELU_ERF_A = _F(3.7021167)
GELU_ERF_P = tuple(_F(c) for c in (242.66454, 15.292289, 7.7902617, -0.23335302, 0.023203049, -0.0010815004,
                                   2.8516211e-05, -3.2990764e-07))
GELU_ERF_Q = tuple(_F(c) for c in (215.0557, 85.23937, 13.805925, 1.0))
_ROUND = _F(12582912.0)
_LOG2E = _F(1.44269504088896341)
_LN2_HI = _F(0.693145751953125)
_LN2_LO = _F(1.428606765330187e-06)


def _f32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise DTypeError(f"expected float32 input, got {x.dtype}")
    return x


def _horner(coeffs: tuple, v: np.ndarray) -> np.ndarray:
    """``c[0] + v * (c[1] + v * (...))`` evaluated innermost first, one rounding per op."""
    p = np.full_like(v, coeffs[-1])
    for c in coeffs[-2::-1]:
        p = p * v + c
    return p


def _horner_monic(coeffs: tuple, v: np.ndarray) -> np.ndarray:
    """Horner for a polynomial whose leading coefficient ``coeffs[-1]`` is 1: starts at ``v + c[-2]``."""
    p = v + coeffs[-2]
    for c in coeffs[-3::-1]:
        p = p * v + c
    return p


def exp_f32(a: np.ndarray) -> np.ndarray:
    """``exp(a)`` for float32 ``a`` in [-88, 1]: ``p(r) * 2^k``.

    Notes
    -----
    ``k = (a * log2e + 1.5 * 2^23) - 1.5 * 2^23`` (round half to even),
    ``r = (a - k * ln2_hi) - k * ln2_lo``, ``p`` the degree-7 Taylor polynomial of exp.
    """
    with np.errstate(all="ignore"):
        kf = (a * _LOG2E + _ROUND) - _ROUND
        r = (a - kf * _LN2_HI) - kf * _LN2_LO
        p = _horner(EXP_TAYLOR, r)
        k = kf.astype(np.int32)
        scale = ((k + np.int32(127)).astype(np.uint32) << np.uint32(23)).view(np.float32)
        return p * scale


def erf_series(z: np.ndarray) -> np.ndarray:
    """``z * S(z * z)``: erf(z) for ``0 <= z < 0.5``."""
    with np.errstate(all="ignore"):
        return z * _horner(ERF_SERIES, z * z)


def erfc_big(z: np.ndarray) -> np.ndarray:
    """``t * exp(P(t) - z * z)``, ``t = 1 / (1 + 0.5 z)``: erfc(z) for ``0.5 <= z <= 9``, 0 above 9."""
    with np.errstate(all="ignore"):
        zc = np.where(z < Z_MAX, z, Z_MAX)
        t = _F(1) / (_F(1) + _F(0.5) * zc)
        e = t * exp_f32(_horner(ERFC_POLY, t) - zc * zc)
        return np.where(z > Z_MAX, _F(0), e)


def erf(x: np.ndarray) -> np.ndarray:
    """qcore's float32 error function.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32.

    Notes
    -----
    ``z = |x|``; ``erf(x) = sign(x) * z * S(z^2)`` for ``z < 0.5`` (Maclaurin series to
    z^13), else ``sign(x) * (1 - erfc(z))`` with Numerical Recipes' erfcc fit evaluated in
    float32 (:func:`erfc_big`). NaN stays NaN, ``erf(+-inf) = +-1``, ``erf(-0) = -0``.
    """
    x = _f32(x)
    z = np.abs(x)
    with np.errstate(all="ignore"):
        v = np.where(z < SPLIT, erf_series(z), _F(1) - erfc_big(z))
        out = np.copysign(v, x)
    return np.where(np.isnan(x), x, out).astype(np.float32, copy=False)


def gelu(x: np.ndarray) -> np.ndarray:
    """qcore's float32 GELU, ``x / 2 * (1 + erf(x / sqrt 2))`` (ONNX Gelu, approximate none).

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32.

    Notes
    -----
    ``u = x * 0.70710677``, ``uc = min(max(u, -A), A)`` (``A = 3.7021167``), ``s = uc * uc``,
    ``g = 1 + uc * (P(s) / Q(s))``, ``y = (0.5 * x) * g``: a rational fit of erf
    (:data:`GELU_ERF_P` of degree 7, :data:`GELU_ERF_Q` monic of degree 3, Horner; fitted by
    tools/fit_gelu.py) that is exactly +-1 at ``+-A``. Its absolute error is below 3.71e-7
    for every float32 ``u``, so ``|y - gelu(x)| <= 2.5e-7 * max(1, |x|)``: the error is
    absolute (``1 + erf`` cancels for negative ``x``), unlike :func:`erf`'s. ``y = -0`` for
    ``u < -A`` (also ``gelu(-inf)``); ``y = x`` exactly for ``u >= A``; ``gelu(+inf) = +inf``;
    ``gelu(+-0) = +-0``; NaN in gives NaN out (a NaN ``u`` is clamped to ``-A`` and the NaN
    passes through ``0.5 * x``). Every step is one float32 operation, so C and NumPy agree.
    """
    x = _f32(x)
    with np.errstate(all="ignore"):
        u = x * GELU_INV_SQRT2
        uc = np.where(u > -GELU_ERF_A, u, -GELU_ERF_A)  # NaN -> -A, as max(u, -A) in AVX2
        uc = np.where(uc < GELU_ERF_A, uc, GELU_ERF_A).astype(np.float32)
        s = uc * uc
        g = _F(1) + uc * (_horner(GELU_ERF_P, s) / _horner_monic(GELU_ERF_Q, s))
        y = (_F(0.5) * x) * g
        return np.where(u < -GELU_ERF_A, _F(-0.0), y).astype(np.float32, copy=False)


SOFTMAX_MIN_ARG = _F(-87.0)


def softmax(x: np.ndarray) -> np.ndarray:
    """qcore's float32 softmax over the last axis.

    Parameters
    ----------
    x : numpy.ndarray
        float32, at least 1-D.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        ``x`` is not float32.

    Notes
    -----
    Per row: ``m = max x``; ``e = exp_f32(x - m)`` (0 where ``x - m < -87``); the sum is
    taken in 8 lanes (lane ``j`` sums ``e[i]`` for ``i = j mod 8`` in increasing ``i``),
    then ``((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))``; ``y = e / sum``. A row with
    NaN or an infinite maximum is all NaN.
    """
    x = _f32(x)
    if x.ndim == 0:
        raise DTypeError("softmax needs at least one axis")
    shape = x.shape
    cols = shape[-1]
    rows = x.reshape(-1, cols) if cols else x.reshape(0, 0)
    if rows.size == 0:
        return np.array(x, dtype=np.float32, copy=True)
    with np.errstate(all="ignore"):
        m = rows.max(axis=1, keepdims=True)
        bad = np.isnan(rows).any(axis=1) | np.isinf(m[:, 0])
        a = rows - m
        e = np.where(a < SOFTMAX_MIN_ARG, _F(0), exp_f32(np.maximum(a, SOFTMAX_MIN_ARG)))
        pad = (-cols) % 8
        blocks = np.concatenate([e, np.zeros((e.shape[0], pad), np.float32)], axis=1).reshape(e.shape[0], -1, 8)
        lanes = np.zeros((e.shape[0], 8), np.float32)
        for b in range(blocks.shape[1]):
            lanes = lanes + blocks[:, b, :]
        s = ((lanes[:, 0] + lanes[:, 1]) + (lanes[:, 2] + lanes[:, 3])) + \
            ((lanes[:, 4] + lanes[:, 5]) + (lanes[:, 6] + lanes[:, 7]))
        y = e / s[:, None]
    y[bad] = np.nan
    return y.astype(np.float32, copy=False).reshape(shape)


def _lane_sum(rows: np.ndarray) -> np.ndarray:
    """Per row: 8 lanes (lane ``j`` sums ``i = j mod 8`` in increasing ``i``), combined pairwise."""
    pad = (-rows.shape[1]) % 8
    blocks = np.concatenate([rows, np.zeros((rows.shape[0], pad), np.float32)], axis=1).reshape(rows.shape[0], -1, 8)
    lanes = np.zeros((rows.shape[0], 8), np.float32)
    for b in range(blocks.shape[1]):
        lanes = lanes + blocks[:, b, :]
    return ((lanes[:, 0] + lanes[:, 1]) + (lanes[:, 2] + lanes[:, 3])) + \
        ((lanes[:, 4] + lanes[:, 5]) + (lanes[:, 6] + lanes[:, 7]))


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None, epsilon: float,
               residual: np.ndarray | None = None) -> np.ndarray:
    """qcore's float32 layer normalization over the last axis, of ``x`` or ``x + residual``.

    Parameters
    ----------
    x : numpy.ndarray
        float32, at least 1-D.
    gamma, beta : numpy.ndarray
        float32, one value per element of the last axis (``beta`` may be None).
    epsilon : float
        Added to the variance (taken as float32).
    residual : numpy.ndarray, optional
        float32 of ``x``'s shape, added to ``x`` first.

    Returns
    -------
    numpy.ndarray
        float32, same shape.

    Raises
    ------
    DTypeError
        An operand is not float32.

    Notes
    -----
    Per row of ``v = x (+ residual)``: ``mean = S(v) / n``, ``c = v - mean``,
    ``d = sqrt(S(c * c) / n + eps)``, ``y = (c / d) * gamma + beta``; ``S`` the 8-lane sum of
    :func:`softmax`; every operation rounded to float32.
    """
    x = _f32(x)
    gamma = _f32(gamma).reshape(-1)
    if x.ndim == 0:
        raise DTypeError("layer_norm needs at least one axis")
    shape = x.shape
    cols = shape[-1]
    v = x if residual is None else x + _f32(residual)
    rows = v.reshape(-1, cols) if cols else v.reshape(0, 0)
    if rows.size == 0:
        return np.array(v, dtype=np.float32, copy=True)
    count = _F(cols)
    with np.errstate(all="ignore"):
        mean = (_lane_sum(rows) / count)[:, None]
        c = rows - mean
        d = np.sqrt(_lane_sum(c * c) / count + _F(epsilon))[:, None]
        y = (c / d) * gamma
        if beta is not None:
            y = y + _f32(beta).reshape(-1)
    return y.astype(np.float32, copy=False).reshape(shape)
