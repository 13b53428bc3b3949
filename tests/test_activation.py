"""qcore._activation (C erf / GELU) against qcore.reference.activation, bit for bit, on every ISA."""

from __future__ import annotations

import math

import os
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qcore import _activation, _native
from qcore.errors import DTypeError
from qcore.reference import activation as ref

sys.path.insert(0, os.path.dirname(__file__))
from alignment import misaligned  # noqa: E402

ISAS = _native.available_isas()
OPS = ("erf", "gelu")

SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 0.5, -0.5, np.nextafter(np.float32(0.5), 0),
                    0.5 * math.sqrt(2), -0.5 * math.sqrt(2), 1e-30, -1e-38, 1e-45, -1e-45, 3.9, 9.0, -9.0,
                    np.nextafter(np.float32(9), np.float32(10)), 12.7279, -12.7279, 13.0, -13.0, 20.0, -20.0,
                    3.4e38, -3.4e38, 1.0, -1.0, 2.0, -2.0, 3e38, -3e38,
                    # GELU's clamp: x * 0.70710677 reaches A = 3.7021167 at x = 5.235584
                    5.2355833, 5.235584, 5.2355843, -5.2355833, -5.235584, -5.2355843], dtype=np.float32)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(20261126)
    return np.concatenate([SPECIAL, rng.standard_normal(4099).astype(np.float32) * 3,
                           np.linspace(-14, 14, 5001, dtype=np.float32),
                           (rng.standard_normal(997) * 1e-3).astype(np.float32)])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("op", OPS)
def test_matches_definition_bit_for_bit(isa, op):
    x = _inputs()
    expected = getattr(ref, op)(x)
    np.testing.assert_array_equal(_bits(getattr(_activation, op)(x, isa=isa)), _bits(expected), strict=True)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 16, 17, 33])
def test_tails_match(isa, op, n):
    with np.errstate(over="ignore"):  # 3.4e38 * 1.1 = inf: one more special value
        x = _inputs()[:n] * np.float32(1.1)
    np.testing.assert_array_equal(_bits(getattr(_activation, op)(x, isa=isa)), _bits(getattr(ref, op)(x)),
                                  strict=True)


@given(hnp.arrays(np.float32, st.integers(0, 70), elements=st.floats(width=32, allow_nan=True)))
def test_any_float32_matches_on_every_isa(x):
    for op in OPS:
        expected = _bits(getattr(ref, op)(x))
        for isa in ISAS:
            np.testing.assert_array_equal(_bits(getattr(_activation, op)(x, isa=isa)), expected, strict=True)


def test_erf_accuracy():
    x = _inputs()
    x = x[np.isfinite(x)]
    exact = np.array([math.erf(float(v)) for v in x])
    got = ref.erf(x).astype(np.float64)
    assert np.abs(got - exact).max() < 3e-7
    small = (np.abs(x) < 0.5) & (np.abs(x) > 1e-37)  # subnormal results carry fewer bits
    assert (np.abs(got - exact)[small] / np.abs(exact[small])).max() < 3e-7


def _gelu_exact(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * float(v) * math.erfc(-float(v) / math.sqrt(2.0)) for v in x])


def test_gelu_accuracy():
    """Absolute error (1 + erf cancels for negative x): below 2.5e-7 * max(1, |x|).

    The rational erf inside is within 3.71e-7 of erf for every float32 (tools/fit_gelu.py
    checks them all); every float32 with |x| <= 8 measured 2.37e-7 * max(1, |x|) at most.
    """
    rng = np.random.default_rng(7)
    x = np.concatenate([_inputs(), np.linspace(-8, 8, 40001, dtype=np.float32),
                        rng.uniform(-6, 6, 20000).astype(np.float32)])
    x = x[np.isfinite(x)]
    got = ref.gelu(x).astype(np.float64)
    err = np.abs(got - _gelu_exact(x)) / np.maximum(1.0, np.abs(x.astype(np.float64)))
    assert err.max() < 2.5e-7
    # 1 + erf stays within [0, 2]: 0 <= y <= x for x >= 0 and x / 2 <= y <= 0 for x < 0
    pos = x >= 0
    assert np.all((got[pos] >= 0) & (got[pos] <= x[pos]))
    assert np.all((got[~pos] <= 0) & (got[~pos] >= np.float32(0.5) * x[~pos]))


@pytest.mark.parametrize("isa", ISAS)
def test_gelu_clamp(isa):
    """erf is exactly +-1 from u = +-A on: y = x above, y = -0 below (also -inf; NaN stays)."""
    a = ref.GELU_ERF_A
    assert np.float32(5.2355833) * ref.GELU_INV_SQRT2 < a <= np.float32(5.235584) * ref.GELU_INV_SQRT2
    big = np.array([5.235584, 5.2355843, 6, 100, 3e38, 3.4028235e38, np.inf], np.float32)
    np.testing.assert_array_equal(_bits(_activation.gelu(big, isa=isa)), _bits(big), strict=True)
    y = _activation.gelu(-big, isa=isa)
    assert np.all(y == 0) and np.all(np.signbit(y))
    below = _activation.gelu(np.array([-5.2355833, -5.0], np.float32), isa=isa)
    assert np.all(below < 0) and np.all(below > -2e-6)
    nan = np.array([np.nan, -np.nan], np.float32)
    assert np.isnan(_activation.gelu(nan, isa=isa)).all()


def test_gelu_constants_come_from_the_fit():
    """tools/fit_gelu.py reproduces P, Q (to float32 rounding noise of the fit) and A exactly."""
    pytest.importorskip("scipy.special")
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fit_gelu", Path(__file__).parents[1] / "tools" / "fit_gelu.py")
    fit_gelu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit_gelu)
    b = fit_gelu.erf_rounds_to_one()
    assert b == np.float32(3.919206)
    err, p, q = fit_gelu.fit(7, 3, float(b))
    assert err < 1e-7
    np.testing.assert_allclose(p, np.array(ref.GELU_ERF_P, np.float64), rtol=1e-6)
    np.testing.assert_allclose(q, np.array(ref.GELU_ERF_Q, np.float64), rtol=1e-6)
    p32, q32 = np.array(ref.GELU_ERF_P, np.float32), np.array(ref.GELU_ERF_Q, np.float32)
    assert fit_gelu.first_reaching_one(p32, q32, b) == ref.GELU_ERF_A
    assert fit_gelu.erf_f32(p32, q32, np.array([ref.GELU_ERF_A], np.float32))[0] == 1


@pytest.mark.parametrize("op", OPS)
def test_special_values(op):
    fn = getattr(_activation, op)
    y = fn(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32))
    assert np.isnan(y[0])
    if op == "erf":
        assert y[1] == 1 and y[2] == -1
    else:
        assert y[1] == np.inf and y[2] == 0
    assert y[3] == 0 and not np.signbit(y[3])
    assert y[4] == 0 and np.signbit(y[4])


@pytest.mark.parametrize("op", OPS)
def test_shapes_out_and_in_place(op):
    fn = getattr(_activation, op)
    x = np.random.default_rng(3).standard_normal((4, 5, 6)).astype(np.float32)
    y = fn(x)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(fn(x[:, ::2]), getattr(ref, op)(np.ascontiguousarray(x[:, ::2])), strict=True)
    buf = x.copy()
    assert fn(buf, out=buf) is buf
    np.testing.assert_array_equal(buf, y, strict=True)
    assert fn(np.zeros((0, 3), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("op", OPS)
def test_bad_input_raises(op):
    fn = getattr(_activation, op)
    with pytest.raises(DTypeError):
        fn(np.zeros(3, np.float64))
    with pytest.raises(DTypeError):
        getattr(ref, op)(np.zeros(3, np.float16))
    with pytest.raises(DTypeError):
        fn(np.zeros(3, np.float32), out=np.zeros(4, np.float32))


SOFTMAX_SHAPES = [(1, 1), (3, 7), (2, 8), (4, 9), (12, 128), (5, 33), (2, 3, 17), (1, 1000)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES)
def test_softmax_matches_definition(isa, shape):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * rng.choice([0.1, 3.0, 40.0])).astype(np.float32)
    if shape[-1] > 4:
        x[..., 1] = np.float32(-3.4e38)  # an attention mask
        x[..., 3] = -np.inf
    expected = ref.softmax(x)
    y = _activation.softmax(x, isa=isa)
    np.testing.assert_array_equal(_bits(y), _bits(expected), strict=True)
    exact = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    exact /= exact.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(y, exact, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("isa", ISAS)
def test_softmax_bad_rows_are_nan(isa):
    x = np.zeros((5, 10), np.float32)
    x[0, 3] = np.nan
    x[1, :] = -np.inf
    x[2, 4] = np.inf
    y = _activation.softmax(x, isa=isa)
    assert np.isnan(y[:3]).all()
    np.testing.assert_array_equal(y[3:], np.full((2, 10), 0.1, np.float32), strict=True)
    np.testing.assert_array_equal(_bits(y), _bits(ref.softmax(x)), strict=True)


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20),
                  elements=st.floats(-1e6, 1e6, width=32)))
def test_softmax_any_input_matches_on_every_isa(x):
    expected = _bits(ref.softmax(x))
    for isa in ISAS:
        np.testing.assert_array_equal(_bits(_activation.softmax(x, isa=isa)), expected, strict=True)


def test_softmax_bad_input():
    with pytest.raises(DTypeError):
        _activation.softmax(np.float32(1.0))
    with pytest.raises(DTypeError):
        _activation.softmax(np.zeros(3, np.float64))
    assert _activation.softmax(np.zeros((0, 4), np.float32)).shape == (0, 4)
    assert _activation.softmax(np.zeros((3, 0), np.float32)).shape == (3, 0)


LAYER_NORM_COLS = [1, 7, 8, 9, 16, 23, 384]


def _ln_case(seed: int, rows: int, cols: int):
    rng = np.random.default_rng(seed)
    x = (rng.normal(0, 3, (rows, cols)) * rng.choice([1e-3, 1.0, 1e4], (rows, 1))).astype(np.float32)
    r = rng.normal(0, 3, (rows, cols)).astype(np.float32)
    g = rng.normal(1, 0.3, cols).astype(np.float32)
    b = rng.normal(0, 0.3, cols).astype(np.float32)
    return x, r, g, b


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cols", LAYER_NORM_COLS)
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("with_beta", [False, True])
def test_layer_norm_matches_definition(isa, cols, with_residual, with_beta):
    x, r, g, b = _ln_case(cols, 11, cols)
    x[3] = 0  # zero variance: (0 / sqrt(eps)) * gamma + beta
    residual = r if with_residual else None
    beta = b if with_beta else None
    expected = ref.layer_norm(x, g, beta, 1e-12, residual=residual)
    got = _activation.layer_norm(x, g, beta, 1e-12, residual=residual, isa=isa)
    np.testing.assert_array_equal(_bits(got), _bits(expected), strict=True)
    # float64 layer norm: the float32 kernel is within a few ulp of it
    v = x.astype(np.float64) + (0 if residual is None else r)
    c = v - v.mean(axis=-1, keepdims=True)
    exact = c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + 1e-12) * g + (0 if beta is None else b)
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5)


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20),
                  elements=st.floats(width=32, allow_nan=True)), st.booleans())
def test_layer_norm_any_input_matches_on_every_isa(x, residual):
    cols = x.shape[-1]
    g = np.linspace(-2, 2, cols, dtype=np.float32)
    b = np.linspace(1, -1, cols, dtype=np.float32)
    res = x[::-1].copy() if residual else None
    with np.errstate(all="ignore"):
        expected = ref.layer_norm(x, g, b, 1e-5, residual=res)
    for isa in ISAS:
        got = _activation.layer_norm(x, g, b, 1e-5, residual=res, isa=isa)
        # NaN positions must agree; a NaN's sign and payload are not promised (two NaN
        # operands of the residual add: which one comes through is the compiler's choice)
        nan = np.isnan(expected)
        np.testing.assert_array_equal(np.isnan(got), nan)
        np.testing.assert_array_equal(_bits(got)[~nan], _bits(expected)[~nan], strict=True)


def test_layer_norm_in_place_shapes_and_bad_input():
    from qcore.errors import QuantParamError, ShapeError

    x, r, g, b = _ln_case(5, 6, 24)
    x3 = x.reshape(2, 3, 24)
    expected = ref.layer_norm(x3, g, b, 1e-5, residual=r.reshape(2, 3, 24))
    inplace = x3.copy()
    got = _activation.layer_norm(inplace, g, b, 1e-5, residual=r.reshape(2, 3, 24), out=inplace)
    assert got is inplace
    np.testing.assert_array_equal(_bits(got), _bits(expected), strict=True)
    res = r.reshape(2, 3, 24).copy()
    got = _activation.layer_norm(x3, g, b, 1e-5, residual=res, out=res)  # written over the residual
    np.testing.assert_array_equal(_bits(got), _bits(expected), strict=True)
    x[2, 5] = np.nan
    assert np.isnan(_activation.layer_norm(x, g, b, 1e-5)[2]).all()
    assert _activation.layer_norm(np.zeros((0, 24), np.float32), g, b, 1e-5).shape == (0, 24)
    with pytest.raises(DTypeError):
        _activation.layer_norm(x.astype(np.float64), g, b, 1e-5)
    with pytest.raises(DTypeError):
        _activation.layer_norm(np.float32(1), g[:1], None, 1e-5)
    with pytest.raises(DTypeError):
        _activation.layer_norm(x, g.astype(np.float64), b, 1e-5)
    with pytest.raises(ShapeError):
        _activation.layer_norm(x, g[:5], b, 1e-5)
    with pytest.raises(ShapeError):
        _activation.layer_norm(x, g, b, 1e-5, residual=r[:3])
    with pytest.raises(DTypeError):
        _activation.layer_norm(x, g, b, 1e-5, out=np.empty((6, 23), np.float32))
    for eps in (-1.0, float("nan"), float("inf")):
        with pytest.raises(QuantParamError):
            _activation.layer_norm(x, g, b, eps)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("valid", [1, 5, 8, 19, 64, 127])
def test_softmax_attention_mask_padding(isa, valid):
    """Rows whose tail is masked with -3.4e38 (whole 8-lane blocks of zeros): same bits."""
    rng = np.random.default_rng(valid)
    x = rng.normal(0, 3, (4, 3, 128)).astype(np.float32)
    x[..., valid:] += np.float32(-3.4028235e38)
    x[1, 2, :] = np.float32(-3.4028235e38)  # a fully masked row: uniform
    got = _activation.softmax(x, isa=isa)
    np.testing.assert_array_equal(_bits(got), _bits(ref.softmax(x)), strict=True)
    padded = np.ones((4, 3), bool)
    padded[1, 2] = False
    assert np.all(got[padded][:, valid:] == 0)
    np.testing.assert_allclose(got[1, 2], np.full(128, 1 / 128, np.float32))


@pytest.mark.parametrize("isa", ISAS)
def test_misaligned_operands_give_the_aligned_results(isa):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    r = rng.standard_normal((5, 40)).astype(np.float32)
    g = rng.standard_normal(40).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    for op in (_activation.erf, _activation.gelu, _activation.softmax):
        want = op(x, isa=isa)
        out = misaligned(np.zeros_like(x))
        got = op(misaligned(x), out=out, isa=isa)
        assert got is out
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    want = _activation.layer_norm(x, g, b, 1e-5, residual=r, isa=isa)
    out = misaligned(np.zeros_like(x))
    got = _activation.layer_norm(misaligned(x), misaligned(g), misaligned(b), 1e-5, residual=misaligned(r),
                                 out=out, isa=isa)
    assert got is out
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
