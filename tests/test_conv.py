"""qcore._conv (C convolution and max pooling) against qcore.reference, on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qcore import _conv
from qcore._native import available_isas
from qcore.errors import DTypeError, NonFiniteError, QuantParamError, ShapeError
from qcore.reference import conv as ref
from qcore.reference.onnx_ops import quantize_linear

ISAS = available_isas()
PAIRS = [(np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8), (np.int8, np.uint8)]


def rand(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


GEOMETRIES = [
    # (C, OC, group, kernel, attrs)
    (3, 5, 1, (3, 3), {"pads": [1, 1, 1, 1]}),
    (4, 6, 2, (3, 2), {"pads": [1, 0, 2, 1], "strides": [2, 1], "dilations": [1, 2]}),
    (8, 8, 4, (3, 3), {"pads": [1, 1, 1, 1]}),
    (6, 6, 6, (3, 3), {"pads": [0, 2, 1, 0], "strides": [1, 2]}),  # depthwise
    (5, 7, 1, (1, 1), {}),
    (16, 32, 1, (3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    (2, 3, 1, (2, 3), {"auto_pad": "SAME_LOWER", "dilations": [2, 1]}),
]


@pytest.mark.parametrize("isa", ISAS)
def test_conv_integer_large_image(isa):
    # more (position, tap) pairs than the C pointer table holds: per-row bounds checks
    rng = np.random.default_rng(11)
    x = rand(rng, np.uint8, (1, 3, 100, 90))
    w = rand(rng, np.int8, (4, 3, 3, 3))
    attrs = {"pads": [1, 2, 1, 0], "strides": [1, 1]}
    np.testing.assert_array_equal(_conv.conv_integer(x, w, np.uint8(9), isa=isa, **attrs),
                                  ref.conv_integer(x, w, np.uint8(9), **attrs), strict=True)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("x_dtype, w_dtype", PAIRS)
@pytest.mark.parametrize("geometry", range(len(GEOMETRIES)))
def test_conv_integer_matches_reference(isa, x_dtype, w_dtype, geometry):
    c, oc, group, kernel, attrs = GEOMETRIES[geometry]
    rng = np.random.default_rng(geometry)
    x = rand(rng, x_dtype, (3, c, 9, 7))
    w = rand(rng, w_dtype, (oc, c // group) + kernel)
    x_zp = rand(rng, x_dtype, ())
    w_zp = rand(rng, w_dtype, (oc,))
    got = _conv.conv_integer(x, w, x_zp, w_zp, group=group, isa=isa, **attrs)
    np.testing.assert_array_equal(got, ref.conv_integer(x, w, x_zp, w_zp, group=group, **attrs), strict=True)
    got = _conv.conv_integer(x, w, group=group, isa=isa, **attrs)  # no zero points
    np.testing.assert_array_equal(got, ref.conv_integer(x, w, group=group, **attrs), strict=True)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("x_dtype, w_dtype", PAIRS)
def test_conv_integer_extreme_values(isa, x_dtype, w_dtype):
    xi, wi = np.iinfo(x_dtype), np.iinfo(w_dtype)
    for xv, wv, zx, zw in [(xi.max, wi.max, xi.min, wi.min), (xi.min, wi.max, xi.max, wi.min),
                           (xi.max, wi.min, xi.min, wi.max), (xi.min, wi.min, xi.max, wi.max)]:
        x = np.full((2, 64, 5, 5), xv, x_dtype)
        w = np.full((9, 64, 3, 3), wv, w_dtype)
        args = (x, w, x_dtype(zx), w_dtype(zw))
        got = _conv.conv_integer(*args, pads=[1, 1, 1, 1], isa=isa)
        np.testing.assert_array_equal(got, ref.conv_integer(*args, pads=[1, 1, 1, 1]), strict=True)


def test_conv_integer_wraps_like_the_reference():
    # K = 4 * 128 * 128 taps of 255 * 255: past int32, wrapped identically.
    x = np.full((1, 256, 128, 1), 255, np.uint8)
    w = np.full((2, 256, 128, 1), 255, np.uint8)
    got = _conv.conv_integer(x, w, np.uint8(0), np.uint8(0))
    np.testing.assert_array_equal(got, ref.conv_integer(x, w, np.uint8(0), np.uint8(0)), strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_conv1d_and_3d(isa):
    rng = np.random.default_rng(5)
    x = rand(rng, np.uint8, (2, 4, 13))
    w = rand(rng, np.int8, (6, 2, 3))
    attrs = {"group": 2, "pads": [2, 1], "strides": [2], "dilations": [2]}
    np.testing.assert_array_equal(_conv.conv_integer(x, w, np.uint8(7), isa=isa, **attrs),
                                  ref.conv_integer(x, w, np.uint8(7), **attrs), strict=True)
    x3 = rand(rng, np.uint8, (1, 2, 4, 4, 3))
    w3 = rand(rng, np.int8, (3, 2, 2, 2, 2))
    np.testing.assert_array_equal(_conv.conv_integer(x3, w3, isa=isa), ref.conv_integer(x3, w3), strict=True)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("x_dtype, w_dtype", PAIRS)
@pytest.mark.parametrize("geometry", [0, 1, 3])
def test_qlinear_conv_matches_reference(isa, x_dtype, w_dtype, geometry):
    c, oc, group, kernel, attrs = GEOMETRIES[geometry]
    rng = np.random.default_rng(10 + geometry)
    x = rand(rng, x_dtype, (2, c, 8, 6))
    w = rand(rng, w_dtype, (oc, c // group) + kernel)
    w_scale = rng.uniform(0.001, 0.02, size=oc).astype(np.float32)
    bias = rng.integers(-5000, 5000, size=oc).astype(np.int32)
    for y_zp in (np.uint8(3), np.int8(-5)):
        args = (x, np.float32(0.05), rand(rng, x_dtype, ()), w, w_scale, rand(rng, w_dtype, (oc,)),
                np.float32(0.7), y_zp, bias)
        got = _conv.qlinear_conv(*args, group=group, isa=isa, **attrs)
        np.testing.assert_array_equal(got, ref.qlinear_conv(*args, group=group, **attrs), strict=True)


def float_conv_then_quantize(q, x_zp, qw, w_zp, multiplier, bias, group, attrs, out_scale, out_zp, relu):
    """The runtime's unfused chain: exact integer conv, float32 output, (ReLU), quantize."""
    acc = ref.conv_integer(q, qw, x_zp, w_zp, group=group, **attrs)
    y = acc.astype(np.float32) * multiplier.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)
    if relu:
        y = np.maximum(y, np.float32(0))
    return y, quantize_linear(y, np.float32(out_scale), out_zp)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("group", [1, 2])
def test_conv2d_float_input_and_quantized_output(isa, layout, group):
    rng = np.random.default_rng(group)
    c, oc = 4, 6
    x = rng.normal(0, 2, size=(3, c, 6, 5)).astype(np.float32)
    x[0, 0, 0, 0] = 1e9  # saturates
    x[0, 1, 0, 0] = -np.inf
    qw = rand(rng, np.int8, (oc, c // group, 3, 3))
    multiplier = rng.uniform(1e-4, 1e-2, size=oc).astype(np.float32)
    bias = rng.normal(size=oc).astype(np.float32)
    attrs = {"pads": [1, 2, 0, 1], "strides": [1, 2]}
    x_scale, x_zp = np.float32(0.03), np.uint8(120)
    q = quantize_linear(x, x_scale, x_zp)
    weights = _conv.ConvWeights(qw, group=group)
    x_in = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    common = dict(input_layout=layout, x_dtype="float32", x_scale=x_scale, x_zero_point=120, quantized_dtype="uint8",
                  pads=[1, 2, 0, 1], strides=[1, 2], multiplier=multiplier, bias=bias, isa=isa)
    for out_layout in ("NCHW", "NHWC"):
        y = _conv.Conv2d(weights, output="float32", output_layout=out_layout, **common)(x_in)
        expect, _ = float_conv_then_quantize(q, x_zp, qw, None, multiplier, bias, group, attrs, 1.0, np.uint8(0),
                                             False)
        if out_layout == "NHWC":
            expect = expect.transpose(0, 2, 3, 1)
        np.testing.assert_array_equal(y, expect, strict=True)
        for out_zp, relu in ((np.uint8(17), True), (np.int8(-9), False), (np.int8(4), True)):
            info = np.iinfo(out_zp.dtype)
            conv = _conv.Conv2d(weights, output="quantize", output_layout=out_layout, output_scale=0.05,
                                output_zero_point=int(out_zp), output_dtype=str(out_zp.dtype),
                                clamp=(int(out_zp), int(info.max)) if relu else None, **common)
            _, expect = float_conv_then_quantize(q, x_zp, qw, None, multiplier, bias, group, attrs, 0.05, out_zp,
                                                 relu)
            if out_layout == "NHWC":
                expect = expect.transpose(0, 2, 3, 1)
            np.testing.assert_array_equal(conv(x_in), expect, strict=True)


@given(n=st.integers(0, 3), c=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       pads=st.lists(st.integers(0, 2), min_size=4, max_size=4), oc_per_group=st.integers(1, 9),
       groups=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_conv_integer_property(n, c, h, w, kh, kw, sh, sw, pads, oc_per_group, groups, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, np.uint8, (n, c * groups, h, w))
    wt = rand(rng, np.int8, (oc_per_group * groups, c, kh, kw))
    attrs = {"group": groups, "pads": pads, "strides": [sh, sw]}
    if h + pads[0] + pads[2] < kh or w + pads[1] + pads[3] < kw:
        with pytest.raises(ShapeError):
            _conv.conv_integer(x, wt, **attrs)
        return
    np.testing.assert_array_equal(_conv.conv_integer(x, wt, np.uint8(seed % 256), **attrs),
                                  ref.conv_integer(x, wt, np.uint8(seed % 256), **attrs), strict=True)


def float_max_pool(x, kernel, strides, pads):
    xp = np.pad(x, [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])], constant_values=-np.inf)
    oh = (xp.shape[2] - kernel[0]) // strides[0] + 1
    ow = (xp.shape[3] - kernel[1]) // strides[1] + 1
    out = np.full(x.shape[:2] + (oh, ow), -np.inf, np.float32)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            out = np.maximum(out, xp[:, :, i:i + strides[0] * (oh - 1) + 1:strides[0],
                                     j:j + strides[1] * (ow - 1) + 1:strides[1]])
    return out


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("kernel, strides, pads", [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (1, 2), (1, 1, 1, 0)),
                                                   ((3, 2), (2, 1), (2, 0, 2, 1))])
def test_max_pool_commutes_with_quantization(isa, dtype, layout, kernel, strides, pads):
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, size=(2, 5, 7, 6)).astype(np.float32)
    zp = dtype(-3 if dtype == np.int8 else 128)
    scale = np.float32(0.02)  # many values saturate: extremes included
    q = quantize_linear(x, scale, zp)
    expect = quantize_linear(float_max_pool(x, kernel, strides, pads), scale, zp)
    q_in = q if layout == "NCHW" else np.ascontiguousarray(q.transpose(0, 2, 3, 1))
    got = _conv.max_pool2d(q_in, kernel, strides=strides, pads=pads, layout=layout, isa=isa)
    if layout == "NHWC":
        got = got.transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(got, expect, strict=True)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("pool", [(2, 2), (3, 2), (1, 3)])
@pytest.mark.parametrize("out_zp", [np.uint8(17), np.int8(-9)])
def test_conv2d_fused_max_pool_is_pooling_the_output(isa, layout, pool, out_zp):
    """Conv2d(pool=...) == the reference conv, float output stage, quantize, then max pool."""
    rng = np.random.default_rng(pool[0] * 10 + pool[1])
    c, oc, group = 4, 6, 2
    x = rng.normal(0, 2, size=(3, c, 7, 8)).astype(np.float32)
    x[0, 0, 0, 0] = 1e9  # saturates
    qw = rand(rng, np.int8, (oc, c // group, 3, 3))
    multiplier = rng.uniform(1e-4, 1e-2, size=oc).astype(np.float32)
    bias = rng.normal(size=oc).astype(np.float32)
    attrs = {"pads": [1, 1, 1, 1]}
    x_scale, x_zp = np.float32(0.03), np.uint8(120)
    q = quantize_linear(x, x_scale, x_zp)
    info = np.iinfo(out_zp.dtype)
    _, quantized = float_conv_then_quantize(q, x_zp, qw, None, multiplier, bias, group, attrs, 0.05, out_zp, True)
    oh, ow = quantized.shape[2] // pool[0], quantized.shape[3] // pool[1]
    expect = quantized[:, :, :oh * pool[0], :ow * pool[1]].reshape(3, oc, oh, pool[0], ow, pool[1]).max(axis=(3, 5))
    weights = _conv.ConvWeights(qw, group=group)
    for kind in ("quantize", "requant"):
        common = dict(x_dtype="uint8", x_zero_point=int(x_zp), pads=[1, 1, 1, 1], output_layout=layout,
                      output_zero_point=int(out_zp), output_dtype=str(out_zp.dtype), isa=isa,
                      clamp=(int(out_zp), int(info.max)))
        if kind == "quantize":
            common.update(multiplier=multiplier, bias=bias, output_scale=0.05)
        else:  # QLinearConv's requantization
            common.update(multiplier=multiplier / np.float32(0.05), bias=rng.integers(-999, 999, oc).astype(np.int32))
        plain = _conv.Conv2d(weights, output=kind, **common)(q)
        pooled = _conv.Conv2d(weights, output=kind, pool=pool, **common)(q)
        np.testing.assert_array_equal(pooled, _conv.max_pool2d(plain, pool, strides=pool, layout=layout, isa=isa),
                                      strict=True)
        if kind == "quantize":
            np.testing.assert_array_equal(pooled, expect if layout == "NCHW" else expect.transpose(0, 2, 3, 1),
                                          strict=True)
    with pytest.raises(ShapeError, match="larger than"):
        _conv.Conv2d(weights, output="requant", pool=(9, 1), **common)(q)
    with pytest.raises(ShapeError, match="quantized output"):
        _conv.Conv2d(weights, x_dtype="uint8", x_zero_point=0, multiplier=np.float32(1), pool=pool)


def test_empty_batch():
    w = _conv.ConvWeights(np.ones((4, 2, 3, 3), np.int8))
    conv = _conv.Conv2d(w, x_dtype="float32", x_scale=0.1, x_zero_point=0, multiplier=np.float32(1))
    assert conv(np.zeros((0, 2, 5, 5), np.float32)).shape == (0, 4, 3, 3)
    assert _conv.conv_integer(np.zeros((0, 2, 5, 5), np.uint8), np.ones((4, 2, 3, 3), np.int8)).shape == (0, 4, 3, 3)
    assert _conv.max_pool2d(np.zeros((0, 2, 4, 4), np.uint8), (2, 2)).shape == (0, 2, 2, 2)


def test_bad_input():
    x = np.zeros((1, 4, 5, 5), np.uint8)
    w = np.zeros((6, 2, 3, 3), np.int8)
    with pytest.raises(DTypeError):
        _conv.conv_integer(x.astype(np.float32), w)
    with pytest.raises(ShapeError):
        _conv.conv_integer(x, w)  # 4 channels, weights for 2 without groups
    with pytest.raises(ShapeError):
        _conv.conv_integer(x, w, group=2, pads=[1, 1])
    with pytest.raises(ShapeError):
        _conv.conv_integer(x[:, :, :1, :1], w, group=2)  # kernel larger than the input
    with pytest.raises(QuantParamError):
        _conv.conv_integer(x, w, 300, group=2)
    with pytest.raises(DTypeError):
        _conv.conv_integer(x, w, np.int8(0), group=2)
    with pytest.raises(ShapeError):
        _conv.ConvWeights(w, group=4)
    weights = _conv.ConvWeights(w, group=2)
    conv = _conv.Conv2d(weights, x_dtype="float32", x_scale=0.1, x_zero_point=0, multiplier=np.float32(1))
    with pytest.raises(NonFiniteError):
        conv(np.full((1, 4, 5, 5), np.nan, np.float32))
    with pytest.raises(DTypeError):
        conv(x)
    with pytest.raises(ShapeError):
        conv(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(QuantParamError):
        _conv.Conv2d(weights, x_dtype="float32", x_scale=0.0, x_zero_point=0, multiplier=np.float32(1))(
            np.zeros((1, 4, 5, 5), np.float32))
    with pytest.raises(QuantParamError):
        _conv.Conv2d(weights, x_dtype="uint8", x_zero_point=0, multiplier=np.float32(np.nan))(x)
    with pytest.raises(QuantParamError):
        _conv.Conv2d(weights, x_dtype="uint8", x_zero_point=300, output="int32")(x)
    with pytest.raises(ShapeError):
        _conv.Conv2d(weights, x_dtype="uint8", x_zero_point=0, multiplier=np.ones(5, np.float32))
    with pytest.raises(DTypeError):
        _conv.Conv2d(weights, x_dtype="uint8", x_zero_point=0, multiplier=np.float32(1), bias=np.zeros(6, np.int32))
    with pytest.raises(DTypeError):
        _conv.max_pool2d(np.zeros((1, 1, 4, 4), np.float32), (2, 2))
    with pytest.raises(ShapeError):
        _conv.max_pool2d(np.zeros((1, 1, 4, 4), np.uint8), (5, 5))
    with pytest.raises(ShapeError):
        _conv.max_pool2d(np.zeros((1, 1, 4, 4), np.uint8), (2, 2), layout="NWHC")
