"""qcore._linear.linear_dynamic (one C call) against the NumPy definition, bit for bit, on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qcore import _gemm, _linear, _native
from qcore.errors import DTypeError, NonFiniteError, ShapeError, UnsupportedISAError
from qcore.reference.tensor import QuantizedTensor
from qcore.runtime import kernels

ISAS = _native.available_isas()


def definition(x: np.ndarray, w: np.ndarray, zw: np.ndarray, w_scale: np.ndarray, bias: np.ndarray | None):
    """NumPy only: per-row dynamic uint8 quantization, int64 product, float32 epilogue."""
    lo = np.minimum(x.min(axis=1, keepdims=True), np.float32(0))
    hi = np.maximum(x.max(axis=1, keepdims=True), np.float32(0))
    s = ((hi - lo) / np.float32(255)).astype(np.float32)
    s = np.where(s == 0, np.float32(1), s).astype(np.float32)
    z = np.clip(np.rint(-lo / s), 0, 255).astype(np.float32)
    q = np.clip(np.rint(x / s) + z, 0, 255).astype(np.int64)
    acc = (q - z.astype(np.int64)) @ (w.astype(np.int64) - zw.astype(np.int64).reshape(1, -1))
    acc = acc.astype(np.int32).astype(np.float32)
    with np.errstate(over="ignore"):  # huge rows overflow to inf, in C as here
        y = acc * (s * w_scale.reshape(1, -1)).astype(np.float32)
    return y if bias is None else y + bias


def case(seed: int, m: int, k: int, n: int, per_column: bool = True, with_bias: bool = True, wtype=np.int8):
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if wtype == np.int8 else (0, 256)
    w = rng.integers(lo, hi, (k, n)).astype(wtype)
    zw = rng.integers(lo, hi, n if per_column else 1).astype(wtype)
    ws = (rng.random(n if per_column else 1) * 0.02 + 1e-4).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    x = (rng.standard_normal((m, k)) * rng.choice([1e-3, 1.0, 50.0], (m, 1))).astype(np.float32)
    if m > 3:
        x[1] = 0                       # all-zero row: s = 1, z = 0
        x[2] = np.abs(x[2])            # no negative values: z = 0
        x[3] = np.float32(1e-44)       # range / 255 underflows: s = 1, everything rounds to 0
    return x, w, zw, ws, bias


def _check(x, w, zw, ws, bias):
    packed = _gemm.PackedWeights(w, zw if zw.size > 1 else zw.reshape(()))
    expected = definition(x, w, zw, ws, bias)
    for isa in ISAS:
        y = _linear.linear_dynamic(x, packed, ws, bias, isa=isa)
        np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32), strict=True)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 7, 13), (128, 384, 384), (17, 1536, 40), (6, 33, 9)])
@pytest.mark.parametrize("per_column", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_matches_definition(m, k, n, per_column, with_bias):
    _check(*case(m * 1000 + k + n, m, k, n, per_column, with_bias))


def test_uint8_weights_and_extremes():
    x, w, zw, ws, bias = case(7, 9, 64, 24, wtype=np.uint8)
    x[4] = np.float32(3e38)
    x[4, ::2] = np.float32(-3e38)  # range overflows float32
    with pytest.raises(NonFiniteError):
        _linear.linear_dynamic(x, _gemm.PackedWeights(w, zw), ws, bias)
    x[4] = np.float32(1e38)
    x[5, :] = np.float32(-7.5)
    _check(x, w, zw, ws, bias)


@given(st.integers(1, 12), st.integers(1, 40), st.integers(1, 20), st.integers(0, 2**31))
def test_random_shapes(m, k, n, seed):
    _check(*case(seed, m, k, n))


def test_same_as_runtime_two_step_form():
    x, w, _, ws, bias = case(3, 32, 96, 48)
    qt = QuantizedTensor(w, ws, np.zeros(48, np.int8), "int8", axis=1)
    packed = kernels.PackedLinear.from_matmul(qt, bias)
    two_step = packed.run(*kernels.dynamic_quantize(x, True))
    np.testing.assert_array_equal(packed.run_dynamic_rows(x), two_step, strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_nan_raises(isa):
    x, w, zw, ws, bias = case(4, 6, 20, 10)
    x[2, 19] = np.nan
    with pytest.raises(NonFiniteError):
        _linear.linear_dynamic(x, _gemm.PackedWeights(w, zw), ws, bias, isa=isa)


def test_empty_and_bad_arguments():
    x, w, zw, ws, bias = case(5, 4, 8, 6)
    packed = _gemm.PackedWeights(w, zw)
    assert _linear.linear_dynamic(np.zeros((0, 8), np.float32), packed, ws, bias).shape == (0, 6)
    with pytest.raises(DTypeError):
        _linear.linear_dynamic(x.astype(np.float64), packed, ws, bias)
    with pytest.raises(DTypeError):
        _linear.linear_dynamic(x, w, ws, bias)
    with pytest.raises(ShapeError):
        _linear.linear_dynamic(x[:, :7], packed, ws, bias)
    with pytest.raises(ShapeError):
        _linear.linear_dynamic(x, packed, ws[:2], bias)
    with pytest.raises(ShapeError):
        _linear.linear_dynamic(x, packed, ws, bias[:5])


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 7, 13), (128, 384, 384), (17, 1536, 40)])
def test_smoothed_equals_mul_then_linear(m, k, n):
    """x_mul: the smoothing Mul folded into the row quantization gives the two-step bits."""
    x, w, zw, ws, bias = case(m + 7 * k + n, m, k, n)
    rng = np.random.default_rng(k)
    smooth = np.exp(rng.normal(0, 1.5, k)).astype(np.float32)
    smooth[0] = 0.0  # a channel multiplied away entirely
    packed = _gemm.PackedWeights(w, zw)
    expected = definition(x * smooth, w, zw, ws, bias)
    for isa in ISAS:
        y = _linear.linear_dynamic(x, packed, ws, bias, x_mul=smooth, isa=isa)
        np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32), strict=True)
        out = np.full((m, n), np.nan, np.float32)
        assert _linear.linear_dynamic(x, packed, ws, bias, x_mul=smooth, out=out, isa=isa) is out
        np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32), strict=True)
        assert not np.array_equal(_linear.linear_dynamic(x, packed, ws, bias, isa=isa), out)


def test_smoothed_overflow_and_bad_arguments():
    x, w, zw, ws, bias = case(9, 4, 8, 6)
    packed = _gemm.PackedWeights(w, zw)
    big = np.full(8, 3e38, np.float32)
    with pytest.raises(NonFiniteError):  # x * x_mul overflows to inf, as the NumPy Mul would
        _linear.linear_dynamic(x * 0 + 2, packed, ws, bias, x_mul=big)
    with pytest.raises(DTypeError):
        _linear.linear_dynamic(x, packed, ws, bias, x_mul=np.ones(8))
    with pytest.raises(ShapeError):
        _linear.linear_dynamic(x, packed, ws, bias, x_mul=np.ones(7, np.float32))
    with pytest.raises(ShapeError):
        _linear.linear_dynamic(x, packed, ws, bias, out=np.empty((4, 5), np.float32))
    assert _linear.linear_dynamic(np.zeros((0, 8), np.float32), packed, ws, bias,
                                  x_mul=np.ones(8, np.float32)).shape == (0, 6)


def extreme_rows(seed: int, m: int, k: int) -> np.ndarray:
    """M x K float32 rows of every awkward kind, cycling: all equal (positive, negative),
    huge, subnormal, range underflowing 255 * 2^-149, all zero, one-signed, mixed scales."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
    for i in range(m):
        kind = (seed + i) % 8
        if kind == 0:
            x[i] = np.float32(2.75)
        elif kind == 1:
            x[i] = np.float32(-1e-3)
        elif kind == 2:
            x[i] = (rng.random(k) * 2 - 1) * np.float32(1.5e38)
        elif kind == 3:
            x[i] = (rng.random(k) * 2 - 1) * np.float32(1e-39)
        elif kind == 4:
            x[i] = np.float32(1e-44) * rng.integers(-1, 2, k)
        elif kind == 5:
            x[i] = 0
        elif kind == 6:
            x[i] = -np.abs(x[i])
    return x.astype(np.float32)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 6, 7, 13])
@pytest.mark.parametrize("k", [1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 100])
def test_extreme_rows_every_isa(m, k):
    """Plain and smoothed forms on every ISA, M across the 6-row block, K across 4/8/16/32."""
    _, w, zw, ws, bias = case(m * 100 + k, m, k, 11)
    x = extreme_rows(m * 31 + k, m, k)
    rng = np.random.default_rng(k)
    smooth = np.exp(rng.normal(0, 1, k)).astype(np.float32)
    smooth[rng.random(k) < 0.2] = 0.0
    packed = _gemm.PackedWeights(w, zw)
    expected = definition(x, w, zw, ws, bias)
    for isa in ISAS:
        y = _linear.linear_dynamic(x, packed, ws, bias, isa=isa)
        np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32), strict=True)
    # smoothing factors up to ~50 (huge rows may then overflow) and the same capped at 1 (never)
    for x_mul in (smooth, np.minimum(smooth, np.float32(1))):
        with np.errstate(over="ignore"):
            smoothed = x * x_mul
            ranges = np.maximum(smoothed.max(axis=1), 0) - np.minimum(smoothed.min(axis=1), 0)
        for isa in ISAS:
            if not np.isfinite(ranges).all():  # an infinite product or a row range past float32
                with pytest.raises(NonFiniteError):
                    _linear.linear_dynamic(x, packed, ws, bias, x_mul=x_mul, isa=isa)
                continue
            y = _linear.linear_dynamic(x, packed, ws, bias, x_mul=x_mul, isa=isa)
            expected_smoothed = definition(smoothed, w, zw, ws, bias)
            np.testing.assert_array_equal(y.view(np.uint32), expected_smoothed.view(np.uint32), strict=True)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k", [5, 16, 37])
def test_non_finite_rejected_plain_and_smoothed(isa, k):
    """NaN or infinity anywhere in x, in x_mul, or in their product (0 * inf, overflow): NonFiniteError."""
    x, w, zw, ws, bias = case(k, 7, k, 9)
    packed = _gemm.PackedWeights(w, zw)
    ones = np.ones(k, np.float32)
    for row, col in [(0, 0), (6, k - 1), (3, k // 2)]:
        for bad in (np.nan, np.inf, -np.inf):
            xb = x.copy()
            xb[row, col] = bad
            with pytest.raises(NonFiniteError):
                _linear.linear_dynamic(xb, packed, ws, bias, isa=isa)
            with pytest.raises(NonFiniteError):
                _linear.linear_dynamic(xb, packed, ws, bias, x_mul=ones, isa=isa)
            mul = ones.copy()
            mul[col] = bad
            with pytest.raises(NonFiniteError):  # x[:, col] is nonzero somewhere: inf or NaN products
                _linear.linear_dynamic(x, packed, ws, bias, x_mul=mul, isa=isa)
    xz = x.copy()
    xz[:, 1] = 0
    mul = ones.copy()
    mul[1] = np.inf
    with pytest.raises(NonFiniteError):  # 0 * inf is NaN, as in NumPy
        _linear.linear_dynamic(xz, packed, ws, bias, x_mul=mul, isa=isa)
    with pytest.raises(NonFiniteError):  # finite factors, infinite product
        _linear.linear_dynamic(x * 0 + np.float32(1e30), packed, ws, bias, x_mul=ones * np.float32(1e10), isa=isa)


@given(st.integers(1, 9), st.integers(1, 70), st.integers(1, 20), st.integers(0, 2**31))
def test_random_shapes_smoothed(m, k, n, seed):
    x, w, zw, ws, bias = case(seed, m, k, n)
    rng = np.random.default_rng(seed)
    smooth = np.exp(rng.normal(0, 2, k)).astype(np.float32)
    smooth[rng.random(k) < 0.1] = 0.0
    expected = definition(x * smooth, w, zw, ws, bias)
    packed = _gemm.PackedWeights(w, zw)
    for isa in ISAS:
        y = _linear.linear_dynamic(x, packed, ws, bias, x_mul=smooth, isa=isa, num_threads=1 + seed % 2)
        np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32), strict=True)


def test_environment_read_at_every_call(monkeypatch):
    """QCORE_ISA / QCORE_NUM_THREADS are read at each call (docs/C-API.md), not cached."""
    x, w, zw, ws, bias = case(8, 20, 40, 16)
    packed = _gemm.PackedWeights(w, zw)
    expected = definition(x, w, zw, ws, bias)
    for isa in ISAS:
        monkeypatch.setenv("QCORE_ISA", isa)
        monkeypatch.setenv("QCORE_NUM_THREADS", "2")
        np.testing.assert_array_equal(_linear.linear_dynamic(x, packed, ws, bias).view(np.uint32),
                                      expected.view(np.uint32), strict=True)
    monkeypatch.setenv("QCORE_ISA", "no-such-isa")
    with pytest.raises(UnsupportedISAError):
        _linear.linear_dynamic(x, packed, ws, bias)
    with pytest.raises(UnsupportedISAError):
        _linear.linear_dynamic(x, packed, ws, bias, x_mul=np.ones(40, np.float32))
    monkeypatch.delenv("QCORE_ISA")
    np.testing.assert_array_equal(_linear.linear_dynamic(x, packed, ws, bias).view(np.uint32),
                                  expected.view(np.uint32), strict=True)
