"""Arrays at an odd byte offset (a record field, a view into a byte buffer) reach every C
entry point of the linear layers, the GEMM, the convolution and the element-wise
operators as copies, never as misaligned typed pointers, and give the aligned results."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from qcore import _conv, _elementwise, _gemm, _linear, _native

sys.path.insert(0, os.path.dirname(__file__))
from alignment import misaligned  # noqa: E402

ISAS = _native.available_isas()


@pytest.mark.parametrize("isa", ISAS)
def test_dynamic_linear_layers(isa):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 40)).astype(np.float32)
    w = rng.integers(-127, 128, size=(40, 24)).astype(np.int8)
    packed = _gemm.PackedWeights(w)
    w_scale = rng.uniform(0.01, 0.02, 24).astype(np.float32)
    bias = rng.normal(size=24).astype(np.float32)
    x_mul = rng.uniform(0.5, 2, 40).astype(np.float32)
    gamma, beta = rng.normal(size=24).astype(np.float32), rng.normal(size=24).astype(np.float32)
    residual = rng.normal(size=(5, 24)).astype(np.float32)
    for post in (None, "gelu", "layer_norm"):
        norm = {"gamma": gamma, "beta": beta} if post == "layer_norm" else {}
        res = residual if post == "layer_norm" else None
        expected = _linear.linear_dynamic(x, packed, w_scale, bias, x_mul=x_mul, post=post, residual=res,
                                          isa=isa, **norm)
        out = misaligned(np.zeros((5, 24), np.float32))
        got = _linear.linear_dynamic(misaligned(x), packed, misaligned(w_scale), misaligned(bias),
                                     x_mul=misaligned(x_mul), post=post, out=out,
                                     residual=None if res is None else misaligned(res), isa=isa,
                                     **{k: misaligned(v) for k, v in norm.items()})
        assert got is out
        np.testing.assert_array_equal(got, expected, strict=False)
        layer = _linear.DynamicLinear(packed, misaligned(w_scale), misaligned(bias), misaligned(x_mul), post=post,
                                      isa=isa, **norm)
        out = misaligned(np.zeros((5, 24), np.float32))
        layer(misaligned(x), out, None if res is None else misaligned(res))
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("isa", ISAS)
def test_int4_weights_and_linear(isa):
    rng = np.random.default_rng(2)
    values = rng.integers(-8, 8, size=(64, 12)).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, size=(2, 12)).astype(np.float32)
    zero = rng.integers(-8, 8, size=(2, 12)).astype(np.int8)
    aligned = _gemm.Int4Weights.from_values(values, scale, zero, block_size=32)
    shifted = _gemm.Int4Weights.from_values(values, misaligned(scale), zero, block_size=32)
    a = rng.normal(size=(3, 64)).astype(np.float32)
    bias = rng.normal(size=12).astype(np.float32)
    np.testing.assert_array_equal(_gemm.linear_int4(misaligned(a), shifted, misaligned(bias), isa=isa),
                                  _gemm.linear_int4(a, aligned, bias, isa=isa))
    np.testing.assert_array_equal(shifted.dequantize(isa=isa), aligned.dequantize(isa=isa))


@pytest.mark.parametrize("isa", ISAS)
def test_requantized_gemm_parameters(isa):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(4, 33)).astype(np.uint8)
    packed = _gemm.PackedWeights(rng.integers(-127, 128, size=(33, 9)).astype(np.int8))
    mult = rng.uniform(1e-4, 1e-3, 9).astype(np.float32)
    bias = rng.integers(-5000, 5000, 9).astype(np.int32)
    expected = _gemm.linear_packed(a, np.uint8(3), packed, mult, np.uint8(128), bias=bias, isa=isa)
    got = _gemm.linear_packed(a, np.uint8(3), packed, misaligned(mult), np.uint8(128), bias=misaligned(bias), isa=isa)
    np.testing.assert_array_equal(got, expected, strict=True)
    zb = rng.integers(-3, 3, 9).astype(np.int32)
    w = rng.integers(-127, 128, size=(33, 9)).astype(np.int8)
    np.testing.assert_array_equal(
        _gemm.matmul_integer(a, w, np.uint8(3), misaligned(zb.astype(np.int8)), isa=isa),
        _gemm.matmul_integer(a, w, np.uint8(3), zb.astype(np.int8), isa=isa), strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_qlinear_conv_parameters(isa):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(1, 3, 8, 8)).astype(np.uint8)
    w = rng.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    w_scale = rng.uniform(0.001, 0.01, 4).astype(np.float32)
    bias = rng.integers(-2000, 2000, 4).astype(np.int32)
    args = (x, np.float32(0.02), np.uint8(120), w)
    w_zero = np.zeros(4, np.int8)
    expected = _conv.qlinear_conv(*args, w_scale, w_zero, np.float32(0.05), np.uint8(128), bias, isa=isa)
    got = _conv.qlinear_conv(*args, misaligned(w_scale), w_zero, np.float32(0.05), np.uint8(128),
                             misaligned(bias), isa=isa)
    np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_conv_with_a_float_input(isa):
    rng = np.random.default_rng(6)
    w = rng.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    conv = _conv.Conv2d(_conv.ConvWeights(w), x_dtype="float32", x_scale=np.float32(0.05), x_zero_point=128,
                        quantized_dtype="uint8", multiplier=misaligned(np.full(4, 1e-3, np.float32)),
                        output="float32", isa=isa)
    x = rng.normal(size=(1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(conv(misaligned(x)), conv(x), strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_quantize_and_dequantize_per_axis(isa):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 6, 5)).astype(np.float32)
    scale = rng.uniform(0.01, 0.05, 6).astype(np.float32)
    zero = rng.integers(-5, 5, 6).astype(np.int8)
    q = _elementwise.quantize_linear(x, scale, zero, axis=1, isa=isa)
    np.testing.assert_array_equal(_elementwise.quantize_linear(misaligned(x), misaligned(scale), zero, axis=1,
                                                               isa=isa), q, strict=True)
    np.testing.assert_array_equal(_elementwise.dequantize_linear(q, misaligned(scale), zero, axis=1, isa=isa),
                                  _elementwise.dequantize_linear(q, scale, zero, axis=1, isa=isa), strict=True)
