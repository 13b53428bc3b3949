"""Hand-computed golden cases for the TFLite and PyTorch conventions, and where they
disagree with ONNX (docs/ARITHMETIC.md, "Where the conventions disagree")."""

from __future__ import annotations

import numpy as np
import pytest

from qcore.errors import DTypeError, NonFiniteError, QuantParamError
from qcore.reference import pytorch, tflite
from qcore.reference.fixedpoint import quantize_multiplier, round_half_away
from qcore.reference.params import choose_qparams


def onnx_quantize(x, scale, zp, lo, hi):
    """ONNX QuantizeLinear written out for the comparisons (x / scale, ties to even)."""
    x = np.asarray(x, np.float32)
    return np.clip(np.rint(x / np.float32(scale)) + zp, lo, hi).astype(np.int64)


def test_ties_away_from_zero_vs_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 3.5], np.float32)
    np.testing.assert_array_equal(tflite.quantize(x, 1.0, 0), np.array([1, 2, 3, -1, -3, 4], np.int8), strict=True)
    np.testing.assert_array_equal(pytorch.quantize(x, 1.0, 0), np.array([0, 2, 2, 0, -2, 4], np.int8), strict=True)
    np.testing.assert_array_equal(onnx_quantize(x, 1.0, 0, -128, 127), [0, 2, 2, 0, -2, 4])


def test_tie_with_odd_zero_point():
    # ONNX and TFLite round x / scale first, then add the zero point; PyTorch's tensor
    # kernels add the zero point first and round x * inv + zp half to even.
    x = np.array([2.5, -2.5, 1.5, -1.5], np.float32)
    # ONNX: 2+3, -2+3, 2+3, -2+3
    np.testing.assert_array_equal(onnx_quantize(x, 1.0, 3, 0, 255), [5, 1, 5, 1])
    # TFLite: 3+3, -3+3, 2+3, -2+3 (ties away from zero)
    np.testing.assert_array_equal(tflite.quantize(x, 1.0, 3, "uint8"), np.array([6, 0, 5, 1], np.uint8), strict=True)
    # PyTorch: rint(5.5), rint(0.5), rint(4.5), rint(1.5)
    expected = np.array([6, 0, 4, 2], np.uint8)
    np.testing.assert_array_equal(pytorch.quantize(x, 1.0, 3, "uint8"), expected, strict=True)
    np.testing.assert_array_equal(pytorch.quantize(x, 1.0, 3, "uint8", per_channel=True), expected, strict=True)


def test_pytorch_fused_vs_unfused_zero_point_add():
    # x * inv is not exact in float32 here; the fused form rounds x * inv + zp once.
    x = np.float32([0.1234567])
    inv = np.float32(1) / np.float32(0.0123)
    exact = float(x[0]) * float(inv) + 100  # exact in float64
    assert pytorch.fma_float32(x, np.array([inv]), 100)[0] == np.float32(exact)
    # a constructed case where the fused and unfused sums differ
    a = np.float32(1 + 2**-23)
    b = np.float32(1 - 2**-24)
    fused = pytorch.fma_float32(np.array([a]), np.array([b]), np.float32(-1))[0]
    unfused = a * b - np.float32(1)
    assert fused == np.float32(2**-24 - 2**-47) and unfused == 0
    # float64 double rounding trap: 2**30 + 128 + 64 - 2**-40 is exactly a float32 tie once
    # rounded to float64; the true value is below it, so one rounding gives 2**30 + 128.
    a = np.array([64 * (1 + 2**-23)], np.float32)
    b = np.array([1 - 2**-23], np.float32)
    assert (a.astype(np.float64) * b + (2**30 + 128)).astype(np.float32)[0] == 2**30 + 256
    assert pytorch.fma_float32(a, b, 2**30 + 128)[0] == 2**30 + 128


def test_reciprocal_multiply_vs_division():
    x = np.array([0.273939937], np.float32)
    scale = np.float32(0.00214854861)
    assert x[0] / scale == np.float32(127.49999)  # division
    assert x[0] * (np.float32(1) / scale) == np.float32(127.5)  # reciprocal
    assert pytorch.quantize(x, scale, 0, "uint8")[0] == 128
    assert onnx_quantize(x, scale, 0, 0, 255)[0] == 127
    assert tflite.quantize(x, scale, 0, "uint8")[0] == 127


def test_symmetric_weights_127_vs_127_5():
    w = np.array([-1.0, 0.5, 1.0, -0.25], np.float32)
    data, scale = tflite.quantize_symmetric(w, 1.0)
    assert scale == np.float32(1 / 127)
    # 0.5 * 127 = 63.5 rounds away to 64; -0.25 * 127 = -31.75 -> -32
    np.testing.assert_array_equal(data, np.array([-127, 64, 127, -32], np.int8), strict=True)
    s, zp = choose_qparams(-1.0, 1.0, "int8", symmetric=True, convention="pytorch")
    assert s == np.float32(1 / 127.5) and zp == 0
    # 1 / float32(1/127.5) = 127.49999: -127.49999 -> -127, 63.749995 -> 64, 127.49999 -> 127
    np.testing.assert_array_equal(pytorch.quantize(w, s, zp), np.array([-127, 64, 127, -32], np.int8), strict=True)
    # x = -1.00001 reaches -128 only in the [-128, 127] PyTorch range
    assert pytorch.quantize(np.float32([-1.0039]), s, zp)[0] == -128
    assert tflite.quantize_symmetric(np.float32([-1.0039]), 1.0)[0][0] == -127
    s_onnx, zp_onnx = choose_qparams(-1.0, 1.0, "int8", symmetric=True, convention="onnx")
    assert s_onnx == np.float32(2 / 254) and zp_onnx == 0
    assert onnx_quantize([0.5], s_onnx, 0, -128, 127)[0] == 64  # 63.5 -> 64 (even)
    assert onnx_quantize([1.5 / 127], s_onnx, 0, -128, 127)[0] == 2  # 1.5 -> 2 (even)
    assert tflite.quantize_symmetric(np.float32([2.5 / 127]), 1.0)[0][0] == 3  # 2.5 -> 3 (away)


def test_tflite_converter_multiplies_by_qmax_over_absmax():
    # 127 / absmax is not 1 / (absmax / 127) in float32 for every absmax: find one where the
    # two disagree on a real weight and check the converter's form is used.
    rng = np.random.default_rng(3)
    for _ in range(10_000):
        absmax = np.float32(rng.uniform(0.01, 10))
        k = np.float32(rng.integers(-126, 127)) + np.float32(0.5)
        w = np.float32(k * absmax / np.float32(127))
        via_inv = np.float32(127) / absmax * w
        via_scale = w / (absmax / np.float32(127))
        if round_half_away(via_inv) != round_half_away(via_scale):
            data, _ = tflite.quantize_symmetric(np.array([w]), absmax)
            assert data[0] == round_half_away(via_inv)
            return
    pytest.fail("no disagreeing case found")


def test_tflite_activation_params_nudged_zero_point():
    # range [-77.5, 177.5] over 255 steps: scale 1, zero point -128 + 77.5 = -50.5
    s, zp = choose_qparams(-77.5, 177.5, "int8", symmetric=False, convention="tflite")
    assert s == 1.0 and zp == -51  # ties away
    s, zp = choose_qparams(-77.5, 177.5, "int8", symmetric=False, convention="onnx")
    assert s == 1.0 and zp == -50  # ties to even
    s, zp = choose_qparams(-77.5, 177.5, "int8", symmetric=False, convention="pytorch")
    assert s == 1.0 and zp == -50  # qmin - round_half_even(-77.5) = -128 + 78
    s, zp = choose_qparams(-1.0, 2.0, "int8", symmetric=False, convention="tflite")
    assert s == np.float32(3) / np.float32(255) and zp == -43
    # an all-positive range: zero point at qmin, zero still exact
    s, zp = choose_qparams(0.5, 2.0, "int8", symmetric=False, convention="tflite")
    assert zp == -128 and tflite.quantize(np.float32([0.0]), s, zp)[0] == -128


def test_tflite_bias():
    data, scale = tflite.quantize_bias(np.array([1.0625, -1.0625, 1e30, -1e30]), 0.5, 0.25)
    assert scale == np.float32(0.125)
    np.testing.assert_array_equal(data, np.array([9, -9, 2**31 - 1, -(2**31 - 1)], np.int32), strict=True)
    per_channel, scales = tflite.quantize_bias(np.array([1.0, 1.0]), 0.5, np.array([0.25, 0.5]))
    np.testing.assert_array_equal(per_channel, np.array([8, 4], np.int32), strict=True)
    np.testing.assert_array_equal(scales, np.array([0.125, 0.25], np.float32))


def test_tflite_requantize_double_rounding_and_ties():
    mult, shift = quantize_multiplier(0.375)
    assert (mult, shift) == (3 << 29, -1)
    acc = np.array([6, 5, -3, -2, -5], np.int32)
    # 6 * 0.375 = 2.25: SRDHM gives 4.5 -> 5 (half up), then 5 / 2 = 2.5 -> 3: double rounding
    np.testing.assert_array_equal(tflite.requantize(acc, mult, shift, 0), np.array([3, 2, -1, -1, -2], np.int8), strict=True)
    np.testing.assert_array_equal(pytorch.requantize(acc, 0.375, 0, "int8"), np.array([2, 2, -1, -1, -2], np.int8), strict=True)
    # exact ties: acc * 0.5 with 2**30 (shift 0): SRDHM rounds half up (toward +inf)
    half_m, half_s = quantize_multiplier(0.5)
    acc = np.array([5, -5, -3], np.int32)
    np.testing.assert_array_equal(tflite.requantize(acc, half_m, half_s, 0), np.array([3, -2, -1], np.int8), strict=True)
    np.testing.assert_array_equal(pytorch.requantize(acc, 0.5, 0, "int8"), np.array([2, -2, -2], np.int8), strict=True)
    # a tie in the final right shift rounds away from zero: -2 * 0.25 = -0.5 -> -1 (ONNX: 0)
    qm, qs = quantize_multiplier(0.25)
    assert tflite.requantize(np.array([-2], np.int32), qm, qs, 0)[0] == -1
    assert pytorch.requantize(np.array([-2], np.int32), 0.25, 0, "int8")[0] == 0


def test_tflite_requantize_zero_point_and_activation_clamp():
    m, s = quantize_multiplier(0.5)
    acc = np.array([-1000, -10, 0, 10, 1000], np.int32)
    np.testing.assert_array_equal(tflite.requantize(acc, m, s, -5), np.array([-128, -10, -5, 0, 127], np.int8))
    np.testing.assert_array_equal(
        tflite.requantize(acc, m, s, -5, activation_min=-5), np.array([-5, -5, -5, 0, 127], np.int8)
    )
    with pytest.raises(QuantParamError):
        tflite.requantize(acc, m, s, 0, activation_min=10, activation_max=5)
    with pytest.raises(QuantParamError):
        tflite.requantize(acc, m, s, 300)


def test_tflite_effective_multiplier_in_float64():
    got = tflite.effective_multiplier(np.float32(0.1), np.float32(0.2), np.float32(0.3))
    assert got.dtype == np.float64
    assert got == float(np.float32(0.1)) * float(np.float32(0.2)) / float(np.float32(0.3))
    assert tflite.multiplier_for(0.5, 0.5, 0.5) == quantize_multiplier(0.5)


def test_saturation_of_huge_and_infinite_values():
    x = np.array([np.inf, -np.inf, 3e38, -3e38, 1e10], np.float32)
    np.testing.assert_array_equal(tflite.quantize(x, 1e-3, 0), np.array([127, -128, 127, -128, 127], np.int8))
    np.testing.assert_array_equal(pytorch.quantize(x, 1e-3, 0), np.array([127, -128, 127, -128, 127], np.int8))
    np.testing.assert_array_equal(pytorch.quantize(x, 1e-3, 10, "uint8"), np.array([255, 0, 255, 0, 255], np.uint8))


@pytest.mark.parametrize("module", [tflite, pytorch])
def test_bad_input(module):
    with pytest.raises(NonFiniteError):
        module.quantize(np.array([np.nan], np.float32), 1.0, 0)
    with pytest.raises(QuantParamError):
        module.quantize(np.array([1.0]), 0.0, 0)
    with pytest.raises(QuantParamError):
        module.quantize(np.array([1.0]), np.nan, 0)
    with pytest.raises(QuantParamError):
        module.quantize(np.array([1.0]), 1.0, 200)
    with pytest.raises(DTypeError):
        module.quantize(np.array([1, 2]), 1.0, 0)
    with pytest.raises(DTypeError):
        module.quantize(np.array([1.0]), 1.0, 0.5)
    with pytest.raises(DTypeError):
        module.quantize(np.array([1.0]), 1.0, 0, "float8")


def test_tflite_symmetric_needs_signed():
    with pytest.raises(QuantParamError):
        tflite.quantize_symmetric(np.zeros(3, np.float32), 1.0, "uint8")
    with pytest.raises(QuantParamError):
        tflite.quantize_symmetric(np.zeros(3, np.float32), -1.0)
    data, scale = tflite.quantize_symmetric(np.zeros(3, np.float32), 0.0)
    assert scale == 1.0 and not data.any()
