"""qcore._elementwise (C core) against qcore.reference, bit for bit, on every available ISA."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import qcore
from qcore import _elementwise as ew
from qcore import _native
from qcore import reference as ref
from qcore.reference import fixedpoint

ISAS = _native.available_isas()
RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535)}


def seed(*key: object) -> int:
    """A stable seed from a parametrisation (``hash`` of strings varies per process)."""
    return zlib.crc32(repr(key).encode())


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(actual, expected, strict=True)


def edge_floats(rng: np.random.Generator, size: int, scale: float, span: int) -> np.ndarray:
    """Random float32 data around the quantized range, with ties, +-inf, huge, subnormal and
    signed-zero values mixed in."""
    x = ((rng.integers(-span, span, size) + rng.random(size)) * scale).astype(np.float32)
    ties = ((rng.integers(-span, span, size) + 0.5) * scale).astype(np.float32)
    specials = np.array([np.inf, -np.inf, 3e38, -3e38, 0.0, -0.0, 1e-45, -1e-45, 2.5, -2.5], np.float32)
    pick = rng.random(size)
    x = np.where(pick < 0.2, ties, x)
    x = np.where(pick > 0.95, specials[rng.integers(0, len(specials), size)], x)
    return x


# ---------------------------------------------------------------------------------------
# quantize_linear
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", list(RANGES))
@pytest.mark.parametrize(
    "shape, axis, per_axis",
    [((), 1, False), ((0,), 1, False), ((1,), 0, False), ((37,), 0, False), ((1000,), 0, True),
     ((3, 40), 0, True), ((3, 40), 1, True), ((3, 40), -1, True), ((2, 5, 7), 1, True), ((2, 5, 33), -3, True),
     ((4, 3, 2, 17), 2, True), ((2, 3, 0), 1, True)],
)
def test_quantize_matches_reference(isa, dtype, shape, axis, per_axis):
    rng = np.random.default_rng(seed(dtype, shape, axis))
    qmin, qmax = RANGES[dtype]
    n_params = shape[axis] if per_axis else 1
    scales = (2.0 ** rng.integers(-12, 4, n_params) * (1 + rng.random(n_params))).astype(np.float32)
    scales[rng.random(n_params) < 0.3] = 2.0**-4  # powers of two give exact ties
    zps = rng.integers(qmin, qmax, n_params, endpoint=True).astype(dtype)
    zps[: min(2, n_params)] = [qmin, qmax][: min(2, n_params)]
    if not per_axis:
        scales, zps = scales[0], zps[0]
    x = edge_floats(rng, int(np.prod(shape)), 2.0**-4, (qmax - qmin) // 2 + 8).reshape(shape)
    got = ew.quantize_linear(x, scales, zps, axis=axis, isa=isa)
    assert_same(got, ref.quantize_linear(x, scales, zps, axis=axis))


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_known_values(isa):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, -128.5, np.inf, -np.inf, 3e9], np.float32)
    expect = np.array([0, 2, 2, 0, -2, -2, 126, 127, -128, 127, -128, 127], np.int8)
    assert_same(ew.quantize_linear(x, np.float32(1.0), np.int8(0), isa=isa), expect)
    # A true division: x * (1 / scale) would give 128.
    got = ew.quantize_linear(np.float32(0.273939937), np.float32(0.00214854861), isa=isa)
    assert_same(got, np.asarray(np.uint8(127)))


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_no_zero_point_defaults_to_uint8(isa):
    x = np.linspace(-3, 300, 50, dtype=np.float32)
    assert_same(ew.quantize_linear(x, 1.0, isa=isa), ref.quantize_linear(x, 1.0))
    assert_same(
        ew.quantize_linear(x, 1.0, output_dtype="int16", isa=isa), ref.quantize_linear(x, 1.0, output_dtype="int16")
    )


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_non_contiguous_inputs(isa):
    rng = np.random.default_rng(7)
    base = (rng.standard_normal((6, 50)) * 40).astype(np.float32)
    scales = np.linspace(0.1, 2, 25, dtype=np.float32)
    zps = np.arange(-12, 13, dtype=np.int8)
    for view in (base[:, ::2], base.T[::2].T, np.asfortranarray(base)[:, 1::2]):
        assert not view.flags.c_contiguous or view is base
        got = ew.quantize_linear(view, scales, zps, axis=1, isa=isa)
        assert_same(got, ref.quantize_linear(view, scales, zps, axis=1))
    # Per-axis along axis 0 of a transposed view.
    t = base.T
    got = ew.quantize_linear(t, np.float32(0.5), np.int8(1), isa=isa)
    assert_same(got, ref.quantize_linear(t, np.float32(0.5), np.int8(1)))


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_paths_left_to_the_reference(isa):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((4, 10)) * 5).astype(np.float32)
    # Blocked parameters.
    scales = np.full((4, 3), 0.25, np.float32)
    zps = np.zeros((4, 3), np.int8)
    assert_same(
        ew.quantize_linear(x, scales, zps, axis=1, block_size=4, isa=isa),
        ref.quantize_linear(x, scales, zps, axis=1, block_size=4),
    )
    # Sub-byte outputs.
    assert_same(
        ew.quantize_linear(x, np.float32(0.5), np.int8(1), output_dtype="int4", isa=isa),
        ref.quantize_linear(x, np.float32(0.5), np.int8(1), output_dtype="int4"),
    )
    # The division is in the scale's dtype: a float16 scale divides in float16 (reference),
    # a float32 scale in float32 (C, float16 x converted exactly).
    x16 = x.astype(np.float16)
    assert_same(ew.quantize_linear(x16, np.float16(0.3), isa=isa), ref.quantize_linear(x16, np.float16(0.3)))
    assert_same(ew.quantize_linear(x16, np.float32(0.3), isa=isa), ref.quantize_linear(x16, np.float32(0.3)))
    wide = (rng.standard_normal(2000) * 3e4).astype(np.float32)  # float16 rounding and overflow matter here
    for scale in (np.float16(251.3), np.float32(251.3)):
        got = ew.quantize_linear(wide, scale, np.int16(0), isa=isa)
        assert_same(got, ref.quantize_linear(wide, scale, np.int16(0)))


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_bad_input_raises_like_the_reference(isa):
    x = np.ones((3, 4), np.float32)
    cases = [
        (dict(x=x.astype(np.float64), s=np.float32(1)), qcore.DTypeError),
        (dict(x=x, s=np.float64(1)), qcore.DTypeError),
        (dict(x=x, s=np.float32(0)), qcore.QuantParamError),
        (dict(x=x, s=np.float32(-1)), qcore.QuantParamError),
        (dict(x=x, s=np.float32(np.inf)), qcore.QuantParamError),
        (dict(x=x, s=np.float32(1), zp=np.int16(5)), None),  # int16 output: valid
        (dict(x=x, s=np.float32(1), zp=np.uint8(5), out="int8"), qcore.DTypeError),
        (dict(x=x, s=np.float32(1), zp=300), qcore.QuantParamError),
        (dict(x=x, s=np.ones(5, np.float32)), qcore.ShapeError),
        (dict(x=x, s=np.ones(4, np.float32), axis=0), qcore.ShapeError),
        (dict(x=x, s=np.ones(4, np.float32), axis=2), qcore.QuantParamError),
        (dict(x=x, s=np.ones(4, np.float32), zp=np.zeros(3, np.uint8), axis=1), qcore.ShapeError),
        (dict(x=x, s=np.ones((2, 2), np.float32)), qcore.ShapeError),
        (dict(x=x, s=np.array([], np.float32)), qcore.ShapeError),
    ]
    for case, exc in cases:
        kwargs = dict(axis=case.get("axis", 1), output_dtype=case.get("out"))
        args = (case["x"], case["s"], case.get("zp"))
        if exc is None:
            assert_same(ew.quantize_linear(*args, **kwargs, isa=isa), ref.quantize_linear(*args, **kwargs))
            continue
        with pytest.raises(exc):
            ref.quantize_linear(*args, **kwargs)
        with pytest.raises(exc):
            ew.quantize_linear(*args, **kwargs, isa=isa)


@pytest.mark.parametrize("isa", ISAS)
def test_bad_values_found_in_c_get_the_reference_message(isa):
    x = np.ones((2, 3), np.float32)
    scales = np.array([0.5, -1.0, 0.5], np.float32)
    with pytest.raises(qcore.QuantParamError, match="y_scale must be > 0"):
        ew.quantize_linear(x, scales, np.zeros(3, np.int8), axis=1, isa=isa)
    with pytest.raises(qcore.QuantParamError, match="x_scale must be finite"):
        ew.dequantize_linear(x.astype(np.uint8), np.float32(np.inf), isa=isa)
    with pytest.raises(qcore.NonFiniteError, match="NaN"):
        ew.quantize_linear(np.array([1.0, np.nan], np.float32), np.float32(1.0), isa=isa)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("where", [0, 31, 32, 99])
def test_quantize_nan_raises_nonfinite(isa, where):
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    x[where] = np.nan
    with pytest.raises(qcore.NonFiniteError):
        ew.quantize_linear(x, np.float32(0.1), isa=isa)
    with pytest.raises(qcore.NonFiniteError):
        ew.quantize_linear(x.reshape(1, 100), np.full(100, 0.1, np.float32), axis=1, isa=isa)


@pytest.mark.parametrize("isa", ISAS)
def test_read_only_and_broadcast_inputs(isa):
    x = np.linspace(-4, 4, 64, dtype=np.float32)
    x.flags.writeable = False
    assert_same(ew.quantize_linear(x, np.float32(0.1), isa=isa), ref.quantize_linear(x, np.float32(0.1)))
    wide = np.broadcast_to(x, (3, 64))  # zero strides: copied before the C call
    assert_same(ew.quantize_linear(wide, np.float32(0.1), isa=isa), ref.quantize_linear(wide, np.float32(0.1)))
    q = np.broadcast_to(np.int8(7), (5, 6))
    assert_same(ew.dequantize_linear(q, np.float32(0.5), isa=isa), ref.dequantize_linear(q, np.float32(0.5)))


def test_unknown_isa_rejected():
    with pytest.raises(qcore.UnsupportedISAError):
        ew.quantize_linear(np.ones(3, np.float32), 1.0, isa="sparc")
    with pytest.raises(qcore.UnsupportedISAError):
        ew.requantize(np.ones(3, np.int32), 1.0, isa="sparc")


@st.composite
def quantize_cases(draw):
    dtype = draw(st.sampled_from(list(RANGES)))
    qmin, qmax = RANGES[dtype]
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40))
    elements = st.floats(width=32, allow_nan=False, allow_infinity=True, allow_subnormal=True)
    x = draw(hnp.arrays(np.float32, shape, elements=elements))
    per_axis = draw(st.booleans())
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis] if per_axis else 1
    positive = st.floats(min_value=float(np.float32(1e-30)), max_value=float(np.float32(1e30)), width=32)
    scales = draw(hnp.arrays(np.float32, (n,), elements=positive))
    zps = draw(hnp.arrays(np.dtype(dtype), (n,), elements=st.integers(qmin, qmax)))
    if not per_axis:
        scales, zps = scales.reshape(()), zps.reshape(())
    return x, scales, zps, axis


@given(case=quantize_cases())
def test_quantize_property(case):
    x, scales, zps, axis = case
    expected = ref.quantize_linear(x, scales, zps, axis=axis)
    for isa in ISAS:
        assert_same(ew.quantize_linear(x, scales, zps, axis=axis, isa=isa), expected)


# ---------------------------------------------------------------------------------------
# dequantize_linear
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32"])
@pytest.mark.parametrize(
    "shape, axis, per_axis",
    [((), 1, False), ((0,), 0, False), ((33,), 0, False), ((1000,), 0, True), ((3, 41), 1, True),
     ((3, 41), 0, True), ((2, 4, 9), -2, True)],
)
def test_dequantize_matches_reference(isa, dtype, shape, axis, per_axis):
    rng = np.random.default_rng(seed(dtype, shape, axis))
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)
    x.reshape(-1)[:: max(1, x.size // 5)] = info.max
    n = shape[axis] if per_axis else 1
    scales = (2.0 ** rng.integers(-20, 10, n) * (1 + rng.random(n))).astype(np.float32)
    if dtype == "int32":
        zps = np.zeros(n, dtype)
    else:
        zps = rng.integers(info.min, info.max, n, endpoint=True, dtype=dtype)
    if not per_axis:
        scales, zps = scales[0], zps[0]
    got = ew.dequantize_linear(x, scales, zps, axis=axis, isa=isa)
    assert_same(got, ref.dequantize_linear(x, scales, zps, axis=axis))
    got16 = ew.dequantize_linear(x, scales, zps, axis=axis, output_dtype=np.float16, isa=isa)
    assert_same(got16, ref.dequantize_linear(x, scales, zps, axis=axis, output_dtype=np.float16))


@pytest.mark.parametrize("isa", ISAS)
def test_dequantize_int32_beyond_float32_precision(isa):
    x = np.array([2**31 - 1, -(2**31), 2**24 + 1, -(2**24) - 1, 2**24 + 3], np.int32)
    assert_same(ew.dequantize_linear(x, np.float32(1.0), isa=isa), ref.dequantize_linear(x, np.float32(1.0)))
    scale16 = np.float16(0.5)
    assert_same(ew.dequantize_linear(x, scale16, isa=isa), ref.dequantize_linear(x, scale16))


@pytest.mark.parametrize("isa", ISAS)
def test_dequantize_non_contiguous_and_fallbacks(isa):
    rng = np.random.default_rng(9)
    x = rng.integers(-128, 127, (8, 30), endpoint=True, dtype=np.int8)
    scales = np.linspace(0.01, 1, 15, dtype=np.float32)
    zps = np.arange(15, dtype=np.int8) - 7
    view = x[::2, ::2]
    assert_same(ew.dequantize_linear(view, scales, zps, isa=isa), ref.dequantize_linear(view, scales, zps))
    blocked = np.full((8, 3), 0.5, np.float32)
    assert_same(
        ew.dequantize_linear(x, blocked, axis=1, block_size=10, isa=isa),
        ref.dequantize_linear(x, blocked, axis=1, block_size=10),
    )


@pytest.mark.parametrize("isa", ISAS)
def test_dequantize_bad_input(isa):
    x = np.zeros(4, np.int32)
    with pytest.raises(qcore.QuantParamError, match="int32"):
        ew.dequantize_linear(x, np.float32(1), np.int32(1), isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.dequantize_linear(np.zeros(4, np.float32), np.float32(1), isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.dequantize_linear(np.zeros(4, np.uint8), np.float32(1), np.int8(0), isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.dequantize_linear(np.zeros(4, np.uint8), np.float32(1), output_dtype="int8", isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.dequantize_linear(np.zeros(4, np.uint8), np.float32(np.nan), isa=isa)
    with pytest.raises(qcore.ShapeError):
        ew.dequantize_linear(np.zeros((2, 4), np.uint8), np.ones(3, np.float32), isa=isa)


@given(
    x=hnp.arrays(st.sampled_from([np.int8, np.uint8, np.int16, np.uint16]), hnp.array_shapes(max_dims=3, max_side=30)),
    scale=st.floats(min_value=float(np.float32(1e-38)), max_value=float(np.float32(1e30)), width=32),
    data=st.data(),
)
def test_dequantize_property(x, scale, data):
    info = np.iinfo(x.dtype)
    zp = x.dtype.type(data.draw(st.integers(int(info.min), int(info.max))))
    expected = ref.dequantize_linear(x, np.float32(scale), zp)
    for isa in ISAS:
        assert_same(ew.dequantize_linear(x, np.float32(scale), zp, isa=isa), expected)


# ---------------------------------------------------------------------------------------
# dynamic_quantize_linear
# ---------------------------------------------------------------------------------------


def assert_dynamic_same(x, isa):
    y, s, zp = ew.dynamic_quantize_linear(x, isa=isa)
    ry, rs, rzp = ref.dynamic_quantize_linear(x)
    assert_same(y, ry)
    assert_same(s, rs)
    assert_same(zp, rzp)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 33, 1000])
@pytest.mark.parametrize("kind", ["mixed", "positive", "negative", "zeros", "subnormal", "wide"])
def test_dynamic_matches_reference(isa, n, kind):
    rng = np.random.default_rng(n)
    u = rng.random(n).astype(np.float32)
    x = {
        "mixed": (u * 2 - 1) * 37.5,
        "positive": u * 1e5,
        "negative": -u * 1e-3,
        "zeros": np.zeros(n),
        "subnormal": (u - 0.3) * 1e-39,
        "wide": (u * 2 - 1) * 1.5e38,
    }[kind].astype(np.float32)
    assert_dynamic_same(x, isa)
    assert_dynamic_same(x[::-1], isa)  # a non-contiguous view


@pytest.mark.parametrize("isa", ISAS)
def test_dynamic_golden_and_errors(isa):
    y, s, zp = ew.dynamic_quantize_linear(np.array([0, 2, -3, -2.5, 1.34, 0.5], np.float32), isa=isa)
    assert_same(y, np.array([153, 255, 0, 26, 221, 179], np.uint8))
    assert_same(zp, np.asarray(np.uint8(153)))
    for bad in (np.nan, np.inf, -np.inf):
        x = np.linspace(-1, 1, 40, dtype=np.float32)
        x[33] = bad
        with pytest.raises(qcore.NonFiniteError):
            ew.dynamic_quantize_linear(x, isa=isa)
    with pytest.raises(qcore.NonFiniteError):
        ew.dynamic_quantize_linear(np.array([-3e38, 3e38], np.float32), isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.dynamic_quantize_linear(np.array([0, 1e-45], np.float32), isa=isa)
    with pytest.raises(qcore.ShapeError):
        ew.dynamic_quantize_linear(np.zeros(0, np.float32), isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.dynamic_quantize_linear(np.zeros(3, np.float64), isa=isa)


@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(max_dims=2, max_side=50),
        elements=st.floats(min_value=float(np.float32(-1e37)), max_value=float(np.float32(1e37)), width=32),
    )
)
def test_dynamic_property(x):
    expected = None
    try:
        expected = ref.dynamic_quantize_linear(x)
    except qcore.QuantParamError:
        for isa in ISAS:
            with pytest.raises(qcore.QuantParamError):
                ew.dynamic_quantize_linear(x, isa=isa)
        return
    for isa in ISAS:
        got = ew.dynamic_quantize_linear(x, isa=isa)
        for g, e in zip(got, expected):
            assert_same(g, e)


# ---------------------------------------------------------------------------------------
# requantize / requantize_fixedpoint
# ---------------------------------------------------------------------------------------


def wrap_add(acc: np.ndarray, bias) -> np.ndarray:
    """acc + bias with int32 wrap-around."""
    if bias is None:
        return acc
    return (acc.astype(np.int64) + np.asarray(bias, np.int64)).astype(np.int32)


def full_range_acc(rng, shape):
    acc = rng.integers(-(2**31), 2**31, shape, dtype=np.int64).astype(np.int32)
    flat = acc.reshape(-1)
    small = rng.random(flat.size) < 0.5
    flat[small] = rng.integers(-3000, 3000, int(small.sum()))
    flat[:: max(1, flat.size // 7)] = np.int32(-(2**31))
    flat[1 :: max(1, flat.size // 7)] = np.int32(2**31 - 1)
    return acc


def broadcast_channel(param, acc_shape, axis):
    """A per-channel parameter reshaped to broadcast along ``axis`` of acc."""
    param = np.asarray(param)
    if param.ndim == 0:
        return param
    dims = [1] * len(acc_shape)
    dims[axis] = param.shape[0]
    return param.reshape(dims)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("out", ["int8", "uint8"])
@pytest.mark.parametrize(
    "shape, axis, per_channel",
    [((), -1, False), ((0,), -1, False), ((45,), -1, False), ((45,), 0, True), ((7, 40), -1, True),
     ((7, 40), 0, True), ((3, 5, 37), 1, True), ((2, 300), 1, True)],
)
@pytest.mark.parametrize("clamp", [None, "relu", (-20, 100), (0, 6)])
def test_requantize_matches_reference(isa, out, shape, axis, per_channel, clamp):
    rng = np.random.default_rng(seed(out, shape, axis, clamp))
    qmin, qmax = RANGES[out]
    acc = full_range_acc(rng, shape)
    n = shape[axis] if per_channel else 1
    mult = (2.0 ** rng.integers(-30, 2, n) * (1 + rng.random(n))).astype(np.float32)
    mult[rng.random(n) < 0.3] = np.float32(0.5)  # ties after the multiply
    zps = rng.integers(qmin, qmax, n, endpoint=True).astype(np.int32)
    bias = rng.integers(-(2**31), 2**31, n, dtype=np.int64).astype(np.int32)
    if not per_channel:
        mult, zps, bias = mult.reshape(()), zps.reshape(()), bias.reshape(())
    if clamp == "relu":
        clamp = (int(zps.reshape(-1)[0]), qmax)
    lo, hi = (qmin, qmax) if clamp is None else (max(clamp[0], qmin), min(clamp[1], qmax))
    got = ew.requantize(acc, mult, zps, bias=bias, axis=axis, clamp=clamp, output_dtype=out, isa=isa)
    b = lambda p: broadcast_channel(p, shape, axis) if per_channel else p  # noqa: E731
    expected = ref.requantize_float(wrap_add(acc, b(bias)), b(mult), b(zps), lo, hi).astype(out)
    assert_same(got, expected)

    shifts = rng.integers(-31, 31, n, endpoint=True).astype(np.int32)
    shifts[rng.random(n) < 0.7] = rng.integers(-12, 2)
    qmult = rng.integers(2**30, 2**31, n).astype(np.int32)
    qmult[rng.random(n) < 0.2] = np.int32(2**30)  # exact ties in both roundings
    qmult[rng.random(n) < 0.1] = np.int32(-(2**31))
    if not per_channel:
        shifts, qmult = shifts.reshape(()), qmult.reshape(())
    got = ew.requantize_fixedpoint(
        acc, qmult, shifts, zps, bias=bias, axis=axis, clamp=clamp, output_dtype=out, isa=isa
    )
    scaled = fixedpoint.multiply_by_quantized_multiplier(wrap_add(acc, b(bias)), b(qmult), b(shifts))
    expected = np.clip(scaled.astype(np.int64) + b(zps), lo, hi).astype(out)
    assert_same(got, expected)


@pytest.mark.parametrize("isa", ISAS)
def test_requantize_non_contiguous_and_per_tensor_bias(isa):
    rng = np.random.default_rng(11)
    acc = full_range_acc(rng, (9, 64))[:, ::2]
    mult = np.linspace(1e-4, 1e-2, 32, dtype=np.float32)
    got = ew.requantize(acc, mult, 5, bias=17, isa=isa)
    assert_same(got, ref.requantize_float(wrap_add(acc, 17), mult, 5, -128, 127).astype(np.int8))
    got = ew.requantize_fixedpoint(acc.T, 1 << 30, -3, 0, axis=0, output_dtype="uint8", isa=isa)
    expected = np.clip(fixedpoint.multiply_by_quantized_multiplier(acc.T, 1 << 30, -3), 0, 255).astype(np.uint8)
    assert_same(got, expected)


@pytest.mark.parametrize("isa", ISAS)
def test_requantize_bad_input(isa):
    acc = np.zeros((2, 3), np.int32)
    m = np.float32(0.5)
    with pytest.raises(qcore.DTypeError):
        ew.requantize(acc.astype(np.int64), m, isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.requantize(acc, np.float64(0.5), isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.requantize(acc, m, output_dtype="int16", isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.requantize(acc, m, bias=np.zeros(3, np.float32), isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.requantize(acc, np.float32(0), isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.requantize(acc, np.float32(np.inf), isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.requantize(acc, m, 200, isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.requantize(acc, m, clamp=(10, 5), isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.requantize(acc, m, clamp=(200, 300), isa=isa)
    with pytest.raises(qcore.ShapeError):
        ew.requantize(acc, np.ones(2, np.float32), isa=isa)  # axis -1 has 3 channels
    with pytest.raises(qcore.QuantParamError):
        ew.requantize(acc, np.ones(3, np.float32), axis=2, isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.requantize_fixedpoint(acc, 1 << 30, 32, isa=isa)
    with pytest.raises(qcore.QuantParamError):
        ew.requantize_fixedpoint(acc, 1 << 31, 0, isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.requantize_fixedpoint(acc, 0.5, 0, isa=isa)


@given(
    acc=hnp.arrays(np.int32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=40)),
    multiplier=st.floats(min_value=float(np.float32(1e-12)), max_value=1e3, width=32),
    qmultiplier=st.integers(-(2**31), 2**31 - 1),
    shift=st.integers(-31, 31),
    zero_point=st.integers(-128, 127),
    bias=st.integers(-(2**31), 2**31 - 1),
)
def test_requantize_property(acc, multiplier, qmultiplier, shift, zero_point, bias):
    a = wrap_add(acc, bias)
    expected = ref.requantize_float(a, np.float32(multiplier), zero_point, -128, 127).astype(np.int8)
    expected_fixed = np.clip(
        fixedpoint.multiply_by_quantized_multiplier(a, qmultiplier, shift).astype(np.int64) + zero_point, -128, 127
    ).astype(np.int8)
    for isa in ISAS:
        assert_same(ew.requantize(acc, np.float32(multiplier), zero_point, bias=bias, isa=isa), expected)
        got = ew.requantize_fixedpoint(acc, qmultiplier, shift, zero_point, bias=bias, isa=isa)
        assert_same(got, expected_fixed)


# ---------------------------------------------------------------------------------------
# int4 packing
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("n", [0, 1, 2, 31, 32, 33, 63, 64, 65, 1001])
def test_int4_matches_reference(isa, signed, n):
    rng = np.random.default_rng(n)
    lo, hi, dtype = (-8, 7, np.int8) if signed else (0, 15, np.uint8)
    values = rng.integers(lo, hi, n, endpoint=True).astype(dtype)
    packed = ew.pack_int4(values, signed=signed, isa=isa)
    assert_same(packed, ref.pack_int4(values, signed=signed))
    assert_same(ew.unpack_int4(packed, n, signed=signed, isa=isa), values)
    random_bytes = rng.integers(0, 255, (n + 1) // 2, endpoint=True).astype(np.uint8)
    assert_same(
        ew.unpack_int4(random_bytes, (n,), signed=signed, isa=isa), ref.unpack_int4(random_bytes, n, signed=signed)
    )
    if n:
        bad = values.copy()
        bad[n // 2] = hi + 1
        with pytest.raises(qcore.QuantParamError, match="range"):
            ew.pack_int4(bad, signed=signed, isa=isa)


@pytest.mark.parametrize("isa", ISAS)
def test_int4_onnx_example_shapes_and_errors(isa):
    assert_same(ew.pack_int4(np.array([1, 2, 3, 5, -8, -6], np.int8), isa=isa), np.array([0x21, 0x53, 0xA8], np.uint8))
    values = np.arange(-8, 8, dtype=np.int8).reshape(4, 4)
    assert_same(ew.pack_int4(values.T, isa=isa), ref.pack_int4(values.T))
    assert_same(ew.unpack_int4(ew.pack_int4(values, isa=isa), (4, 4), isa=isa), values)
    with pytest.raises(qcore.DTypeError):
        ew.pack_int4(np.zeros(4, np.uint8), signed=True, isa=isa)
    with pytest.raises(qcore.DTypeError):
        ew.unpack_int4(np.zeros(2, np.int8), 4, isa=isa)
    with pytest.raises(qcore.ShapeError):
        ew.unpack_int4(np.zeros(2, np.uint8), 5, isa=isa)
    with pytest.raises(qcore.ShapeError):
        ew.unpack_int4(np.zeros(2, np.uint8), (-1, 4), isa=isa)
