"""qcore._activation (C erf / GELU) against qcore.reference.activation, bit for bit, on every ISA."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qcore import _activation, _native
from qcore.errors import DTypeError
from qcore.reference import activation as ref

ISAS = _native.available_isas()
OPS = ("erf", "gelu")

SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 0.5, -0.5, np.nextafter(np.float32(0.5), 0),
                    0.5 * math.sqrt(2), -0.5 * math.sqrt(2), 1e-30, -1e-38, 1e-45, -1e-45, 3.9, 9.0, -9.0,
                    np.nextafter(np.float32(9), np.float32(10)), 12.7279, -12.7279, 13.0, -13.0, 20.0, -20.0,
                    3.4e38, -3.4e38, 1.0, -1.0, 2.0, -2.0], dtype=np.float32)


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


def test_gelu_accuracy():
    x = _inputs()
    x = x[np.isfinite(x)]
    exact = np.array([0.5 * float(v) * math.erfc(-float(v) / math.sqrt(2.0)) for v in x])
    got = ref.gelu(x).astype(np.float64)
    assert np.abs(got - exact).max() < 5e-7 * max(1.0, np.abs(x).max())
    normal = np.abs(exact) > 1e-30
    # relative accuracy holds on the negative tail too (no 1 + erf cancellation); what is
    # left there is the float32 rounding of z * z inside exp (about 64 * 2^-24 at z = 8)
    assert (np.abs(got - exact)[normal] / np.abs(exact[normal])).max() < 3e-5


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
