"""Golden, hand-computed cases for the ONNX ops of qcore.reference (docs/ARITHMETIC.md).

Each expected value is worked out in the comment beside it, so a failure points at the
rule that broke (rounding, order of operations, saturation, broadcasting, validation).
"""

from __future__ import annotations

import numpy as np
import pytest

from qcore.errors import DTypeError, NonFiniteError, QuantParamError, ShapeError
from qcore.reference import (
    dequantize_linear,
    dynamic_quantize_linear,
    pack_int2,
    pack_int4,
    quantize_linear,
    requantize_float,
    unpack_int2,
    unpack_int4,
)

f32 = np.float32


def eq(actual: np.ndarray, expected: list | np.ndarray, dtype: type) -> None:
    np.testing.assert_array_equal(actual, np.asarray(expected, dtype=dtype), strict=True)


# --- QuantizeLinear: rounding -------------------------------------------------------------


def test_quantize_ties_round_half_even_before_adding_odd_zero_point() -> None:
    # rint(0.5)=0, rint(1.5)=2, rint(2.5)=2, then +3. Adding the zero point first would
    # give rint(3.5)=4, rint(4.5)=4, rint(5.5)=6: the order matters for odd zero points.
    x = f32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])
    eq(quantize_linear(x, f32(1.0), np.int8(3)), [3, 5, 5, 3, 1, 1], np.int8)
    eq(quantize_linear(x, f32(1.0), np.int8(-3)), [-3, -1, -1, -3, -5, -5], np.int8)


def test_quantize_divides_instead_of_multiplying_by_reciprocal() -> None:
    x, scale = f32(0.273939937), f32(0.00214854861)
    assert x / scale < 127.5  # float32 division: 127.49999
    assert x * (f32(1) / scale) == 127.5  # reciprocal multiply lands on the tie: 128
    eq(quantize_linear(np.array([x]), scale, np.uint8(0)), [127], np.uint8)


def test_quantize_float16_divides_in_float16() -> None:
    # Both float16: the quotient is a float16. 59.25 / float16(0.3) = 197.4679 exactly,
    # which is 197.5 in float16 (spacing 0.125) -> 198 (even); a float32 quotient gives 197.
    # 96.2 (float16 96.1875) / 0.3 = 320.57 -> float16 320.5 -> 320 (even); float32: 321.
    x = np.array([59.25, 96.2], dtype=np.float16)
    eq(quantize_linear(x, np.float16(0.3), np.int16(0)), [198, 320], np.int16)
    # float32 x with a float16 scale divides in float32 (NumPy promotion, as ONNX's evaluator).
    eq(quantize_linear(x.astype(np.float32), np.float16(0.3), np.int16(0)), [197, 321], np.int16)


def test_quantize_no_zero_point_gives_uint8_and_output_dtype_selects_type() -> None:
    x = f32([-1.0, 0.4, 0.6, 300.0])
    eq(quantize_linear(x, f32(1.0)), [0, 0, 1, 255], np.uint8)
    eq(quantize_linear(x, f32(1.0), output_dtype="int16"), [-1, 0, 1, 300], np.int16)
    eq(quantize_linear(x, f32(1.0), output_dtype=np.int8), [-1, 0, 1, 127], np.int8)
    eq(quantize_linear(x, 0.5, 7, output_dtype="uint16"), [5, 8, 8, 607], np.uint16)


# --- QuantizeLinear: saturation -----------------------------------------------------------


def test_quantize_saturates_huge_and_infinite_values_without_wrapping() -> None:
    x = f32([1e30, -1e30, np.inf, -np.inf, 3e9, -3e9, 127.5, 128.5, -128.5, -129.0])
    # 127.5 -> 128 -> 127; -128.5 -> -128 (even); inf and 3e9 would wrap in a plain cast.
    expected = [127, -128, 127, -128, 127, -128, 127, 127, -128, -128]
    eq(quantize_linear(x, f32(1.0), np.int8(0)), expected, np.int8)


def test_quantize_saturates_after_adding_zero_point() -> None:
    # uint8 zp 250: 5 -> 255; 5.5 -> 6 -> 256 -> 255; -250.5 -> -250 -> 0; -251 -> -1 -> 0.
    x = f32([5.0, 5.5, -250.5, -251.0, -250.0])
    eq(quantize_linear(x, f32(1.0), np.uint8(250)), [255, 255, 0, 0, 0], np.uint8)


def test_quantize_float16_overflowing_quotient_saturates() -> None:
    # 60000 / 0.001 overflows float16 to inf: the result is qmax, not a wrapped value.
    x = np.array([60000, -60000], dtype=np.float16)
    eq(quantize_linear(x, np.float16(0.001), np.int8(0)), [127, -128], np.int8)


def test_quantize_all_subbyte_types_saturate_to_their_range() -> None:
    # int4 zp -1: 7-1=6, 8-1=7, -7-1=-8, -8-1=-9 -> -8, 100 -> 7.
    x = f32([7, 8, -7, -8, 100])
    eq(quantize_linear(x, f32(1), np.int8(-1), output_dtype="int4"), [6, 7, -8, -8, 7], np.int8)
    # uint4 zp 15: 0 -> 15, 1 -> 16 -> 15, -15 -> 0, -16 -> -1 -> 0, -7.5 -> -8 -> 7.
    x = f32([0, 1, -15, -16, -7.5])
    eq(quantize_linear(x, f32(1), np.uint8(15), output_dtype="uint4"), [15, 15, 0, 0, 7], np.uint8)
    # int2 [-2, 1]: 0.5 -> 0, 1.5 -> 2 -> 1, -1.5 -> -2, -2.5 -> -2, 3 -> 1.
    x = f32([0.5, 1.5, -1.5, -2.5, 3])
    eq(quantize_linear(x, f32(1), output_dtype="int2"), [0, 1, -2, -2, 1], np.int8)
    # uint2 zp 1: 0.5 -> 0+1, 1.5 -> 2+1 = 3, -1 -> 0, 5 -> 3, -9 -> 0.
    x = f32([0.5, 1.5, -1, 5, -9])
    eq(quantize_linear(x, f32(1), np.uint8(1), output_dtype="uint2"), [1, 3, 0, 3, 0], np.uint8)


def test_quantize_empty_input_gives_empty_output() -> None:
    eq(quantize_linear(np.zeros((0, 3), np.float32), f32(1), np.int8(0)), np.zeros((0, 3)), np.int8)


# --- QuantizeLinear: granularity ----------------------------------------------------------


def test_quantize_per_axis_negative_axis() -> None:
    # Columns: /1 +0; /2 +1 (1 -> 2, -1.5 -> -2 -> -1); /4 -1 (1 -> 0, 1.5 -> 2 -> 1).
    x = f32([[1, 2, 4], [-1, -3, 6]])
    scale, zp = f32([1, 2, 4]), np.array([0, 1, -1], np.int8)
    expected = [[1, 2, 0], [-1, -1, 1]]
    eq(quantize_linear(x, scale, zp, axis=-1), expected, np.int8)
    eq(quantize_linear(x, scale, zp, axis=1), expected, np.int8)


def test_quantize_per_axis_default_axis_is_one() -> None:
    x = np.ones((2, 3, 2), np.float32) * f32(6)
    y = quantize_linear(x, f32([1, 2, 3]), np.array([0, 0, 0], np.int8))
    eq(y, np.broadcast_to(np.array([6, 3, 2]).reshape(1, 3, 1), (2, 3, 2)), np.int8)


def test_quantize_blocked_partial_last_block() -> None:
    # x (2, 5), axis 1, block 2: blocks [0:2], [2:4], [4:5] (partial), scale shape (2, 3).
    # row 0: [1,2]/1+0 = [1,2]; [3,4]/2+1 = [2(1.5),2]+1 = [3,3]; [10]/4 = 2.5 -> 2, -1 -> 1.
    # row 1: [1,-1]/0.5+2 = [4,0]; [3,5]/1 = [3,5]; [12]/8 = 1.5 -> 2, +3 -> 5.
    x = f32([[1, 2, 3, 4, 10], [1, -1, 3, 5, 12]])
    scale = f32([[1, 2, 4], [0.5, 1, 8]])
    zp = np.array([[0, 1, -1], [2, 0, 3]], np.int8)
    expected = [[1, 2, 3, 3, 1], [4, 0, 3, 5, 5]]
    eq(quantize_linear(x, scale, zp, axis=1, block_size=2), expected, np.int8)
    eq(quantize_linear(x, scale, zp, axis=-1, block_size=2), expected, np.int8)


def test_quantize_blocked_along_axis_zero_of_3d() -> None:
    # x (3, 1, 2) with block 2 along axis 0: rows 0-1 use scale row 0, row 2 scale row 1.
    x = f32([[[2, 4]], [[6, 8]], [[10, 12]]])
    scale = f32([[[2, 4]], [[5, 3]]])
    expected = [[[1, 1]], [[3, 2]], [[2, 4]]]
    eq(quantize_linear(x, scale, axis=0, block_size=2), expected, np.uint8)


def test_quantize_one_element_scale_is_per_tensor() -> None:
    x = f32([[2, 4], [6, 8]])
    eq(quantize_linear(x, f32([2]), np.array([1], np.int8)), [[2, 3], [4, 5]], np.int8)


# --- QuantizeLinear: bad input ------------------------------------------------------------


@pytest.mark.parametrize("scale", [f32(0), f32(-1), f32(np.nan), f32(np.inf), f32([1, 0, 1])])
def test_quantize_rejects_bad_scales(scale: np.ndarray) -> None:
    with pytest.raises(QuantParamError, match="y_scale"):
        quantize_linear(np.ones((2, 3), np.float32), scale, axis=1)


def test_quantize_rejects_nan_input() -> None:
    with pytest.raises(NonFiniteError, match="NaN"):
        quantize_linear(f32([1, np.nan]), f32(1))


@pytest.mark.parametrize(
    ("zero_point", "output_dtype", "error"),
    [
        (np.int8(8), "int4", QuantParamError),  # int4 is [-8, 7]
        (np.int8(-9), "int4", QuantParamError),
        (np.uint8(16), "uint4", QuantParamError),
        (np.int8(2), "int2", QuantParamError),
        (np.uint8(4), "uint2", QuantParamError),
        (np.uint8(3), "int8", DTypeError),  # uint8 container cannot hold an int8 zero point
        (np.uint8(3), "int4", DTypeError),
        (np.int16(3), "int8", DTypeError),
        (np.int32(0), None, DTypeError),  # int32 is not a quantized output type
        (300, "uint8", QuantParamError),
        (1.5, None, DTypeError),
    ],
)
def test_quantize_rejects_bad_zero_points(zero_point: object, output_dtype: str | None, error: type) -> None:
    with pytest.raises(error):
        quantize_linear(f32([1, 2]), f32(1), zero_point, output_dtype=output_dtype)


@pytest.mark.parametrize("output_dtype", ["int3", "float8", "int32", "bool"])
def test_quantize_rejects_unknown_output_types(output_dtype: str) -> None:
    with pytest.raises(DTypeError):
        quantize_linear(f32([1, 2]), f32(1), output_dtype=output_dtype)


@pytest.mark.parametrize("x", [np.ones(3, np.float64), np.ones(3, np.int32), [1.0, 2.0]])
def test_quantize_rejects_non_float32_float16_input(x: object) -> None:
    with pytest.raises(DTypeError, match="x must be"):
        quantize_linear(x, f32(1))


def test_quantize_rejects_float64_scale_array() -> None:
    with pytest.raises(DTypeError, match="y_scale"):
        quantize_linear(f32([1, 2]), np.float64(0.5))


@pytest.mark.parametrize(
    ("scale_shape", "kwargs"),
    [
        ((4,), {"axis": 1}),  # per-axis length must be x.shape[1] == 3
        ((2,), {"axis": -1}),
        ((2, 3), {}),  # 2-D without block_size
        ((2, 3), {"axis": 1, "block_size": 2}),  # needs (2, ceil(3 / 2)) = (2, 2)
        ((2, 1), {"axis": 1, "block_size": 2}),
        ((2,), {"axis": 1, "block_size": 2}),  # blocked needs the rank of x
        ((1, 2), {"axis": 1, "block_size": 2}),
        ((0,), {}),
    ],
)
def test_quantize_rejects_bad_parameter_shapes(scale_shape: tuple[int, ...], kwargs: dict) -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ShapeError):
        quantize_linear(x, np.ones(scale_shape, np.float32), **kwargs)
    # The shapes next to them are accepted.
    eq(quantize_linear(x, np.ones((2, 2), np.float32), axis=1, block_size=2), np.ones((2, 3)), np.uint8)
    eq(quantize_linear(x, np.ones(3, np.float32), axis=-1), np.ones((2, 3)), np.uint8)


def test_quantize_rejects_zero_point_shape_different_from_scale() -> None:
    with pytest.raises(ShapeError, match="must match"):
        quantize_linear(np.ones((2, 3), np.float32), f32([1, 1, 1]), np.zeros(2, np.uint8))


@pytest.mark.parametrize(("axis", "block_size"), [(2, 0), (-3, 0), (1, -1), (5, 2), (1.0, 0)])
def test_quantize_rejects_bad_axis_and_block_size(axis: object, block_size: int) -> None:
    with pytest.raises(QuantParamError):
        quantize_linear(np.ones((2, 3), np.float32), f32([1, 1, 1]), axis=axis, block_size=block_size)


# --- DequantizeLinear ---------------------------------------------------------------------


def test_dequantize_basic_and_exact_integer_subtraction() -> None:
    eq(dequantize_linear(np.array([0, 128, 255], np.uint8), f32(0.5), np.uint8(128)), [-64, 0, 63.5], np.float32)
    # 32767 - (-32768) = 65535 exactly; an int16 subtraction would wrap to -1.
    x = np.array([32767, -32768], np.int16)
    eq(dequantize_linear(x, f32(1), np.int16(-32768)), [65535, 0], np.float32)


def test_dequantize_int32_above_2_pow_24_rounds_to_float32() -> None:
    # 2**24 + 1 is not a float32: it rounds (ties to even) to 2**24 before the multiply.
    x = np.array([2**24 + 1, 2**24 + 3, -(2**31), 2**31 - 1], np.int32)
    expected = [2.0**24, 2.0**24 + 4, -(2.0**31), 2.0**31]
    eq(dequantize_linear(x, f32(1)), expected, np.float32)
    eq(dequantize_linear(x, f32(1), np.int32(0)), expected, np.float32)


def test_dequantize_float16_scale_gives_float16_computed_in_float32() -> None:
    # float16(0.1) = 0.0999755859375; 3 * that in float32 = 0.29992676, rounded to float16 0.2998.
    y = dequantize_linear(np.array([3], np.int8), np.float16(0.1))
    assert y.dtype == np.float16
    assert y[0] == np.float16(np.float32(3) * np.float32(np.float16(0.1)))
    assert dequantize_linear(np.array([3], np.int8), np.float16(0.1), output_dtype="float32")[0] == f32(3) * f32(
        np.float16(0.1)
    )


def test_dequantize_per_axis_and_blocked() -> None:
    x = np.array([[10, 20, 30], [-10, 0, 10]], np.int8)
    scale, zp = f32([1, 0.5, 0.25]), np.array([0, 20, -2], np.int8)
    eq(dequantize_linear(x, scale, zp, axis=-1), [[10, 0, 8], [-10, -10, 3]], np.float32)
    # Blocked along axis 1, block 2: columns 0-1 use block 0, column 2 block 1 (partial).
    scale_b, zp_b = f32([[1, 2], [4, 8]]), np.array([[0, 1], [2, 3]], np.int8)
    eq(dequantize_linear(x, scale_b, zp_b, axis=1, block_size=2), [[10, 20, 58], [-48, -8, 56]], np.float32)


def test_dequantize_subbyte_values_in_containers() -> None:
    x = unpack_int4(pack_int4(np.array([-8, -1, 0, 7], np.int8)), 4)
    eq(dequantize_linear(x, f32(0.5), np.int8(-1)), [-3.5, 0, 0.5, 4], np.float32)


def test_dequantize_rejects_bad_input() -> None:
    x = np.array([1, 2], np.uint8)
    with pytest.raises(DTypeError, match="x must be"):
        dequantize_linear(np.array([1.0, 2.0], np.float32), f32(1))
    with pytest.raises(DTypeError, match="x must be"):
        dequantize_linear(np.array([1, 2], np.int64), f32(1))
    with pytest.raises(DTypeError, match="x_zero_point"):
        dequantize_linear(x, f32(1), np.int8(0))
    with pytest.raises(QuantParamError, match="int32"):
        dequantize_linear(np.array([1], np.int32), f32(1), np.int32(5))
    with pytest.raises(QuantParamError, match="x_scale"):
        dequantize_linear(x, f32(-0.5))
    with pytest.raises(QuantParamError, match="x_scale"):
        dequantize_linear(x, f32(np.inf))
    with pytest.raises(DTypeError, match="output_dtype"):
        dequantize_linear(x, f32(1), output_dtype="int4")
    with pytest.raises(DTypeError, match="output_dtype"):
        dequantize_linear(x, f32(1), output_dtype=np.float64)
    with pytest.raises(ShapeError):
        dequantize_linear(np.ones((2, 3), np.uint8), f32([1, 1]), axis=1)
    with pytest.raises(ShapeError):
        dequantize_linear(np.ones((2, 3), np.uint8), np.ones((2, 1), np.float32), axis=1, block_size=2)
    with pytest.raises(ShapeError, match="empty"):
        dequantize_linear(x, np.zeros(0, np.float32))


# --- DynamicQuantizeLinear ----------------------------------------------------------------


def test_dynamic_quantize_hand_computed() -> None:
    # scale = 2 / 255 = 0.007843138 (float32); -(-1) / scale = 127.49999 in float32 -> 127.
    # y: -1 / scale = -127.49999 -> -127 + 127 = 0;  1 / scale -> 127 + 127 = 254.
    y, scale, zero_point = dynamic_quantize_linear(f32([-1, 0, 1]))
    eq(y, [0, 127, 254], np.uint8)
    assert scale.dtype == np.float32 and scale.shape == () and scale == f32(2) / f32(255)
    assert zero_point.dtype == np.uint8 and zero_point.shape == () and zero_point == 127


def test_dynamic_quantize_range_always_includes_zero() -> None:
    # All positive: lo = 0, zp = 0, scale = 4 / 255; 3 / (4/255) = 191.25 -> 191.
    y, scale, zero_point = dynamic_quantize_linear(f32([1, 3, 4]))
    assert zero_point == 0 and scale == f32(4) / f32(255)
    eq(y, [64, 191, 255], np.uint8)


def test_dynamic_quantize_all_zero_follows_onnxruntime() -> None:
    y, scale, zero_point = dynamic_quantize_linear(np.zeros((2, 2), np.float32))
    eq(y, np.zeros((2, 2)), np.uint8)
    assert scale == f32(1.0) and zero_point == 0


def test_dynamic_quantize_rejects_bad_input() -> None:
    with pytest.raises(ShapeError, match="empty"):
        dynamic_quantize_linear(np.zeros(0, np.float32))
    with pytest.raises(NonFiniteError, match="NaN"):
        dynamic_quantize_linear(f32([1, np.nan]))
    with pytest.raises(NonFiniteError, match="inf"):
        dynamic_quantize_linear(f32([1, np.inf]))
    with pytest.raises(NonFiniteError, match="overflows"):
        dynamic_quantize_linear(f32([-3e38, 3e38]))
    with pytest.raises(QuantParamError, match="too small"):
        dynamic_quantize_linear(f32([0, 1e-44]))
    with pytest.raises(DTypeError):
        dynamic_quantize_linear(np.ones(3, np.float16))


# --- requantize_float (the definition of csrc/src/requant.h qc__requant_float) ------------


def test_requantize_float_rounds_then_adds_zero_point_then_clips() -> None:
    acc = np.array([1, 3, 5, -1, -3, 1000, -1000, 2**31 - 1, -(2**31)], np.int32)
    # acc * 0.5: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2; +1; clip [-128, 127].
    expected = [1, 3, 3, 1, -1, 127, -128, 127, -128]
    eq(requantize_float(acc, f32(0.5), 1, -128, 127), expected, np.int32)


def test_requantize_float_clips_before_converting_to_integer() -> None:
    # 2**31 - 1 times 4 is far beyond int32: clipped to 2147483520 before rounding, then +zp.
    acc = np.array([2**31 - 1, -(2**31)], np.int32)
    eq(requantize_float(acc, f32(4.0), -5, -(2**31), 2**31 - 1), [2147483515, -(2**31)], np.int32)


def test_requantize_float_multiplies_in_float32() -> None:
    # float32(16777217) = 16777216: the accumulator is rounded to float32 before the multiply.
    acc = np.array([16777217], np.int32)
    eq(requantize_float(acc, f32(1.0), 0, -(2**31), 2**31 - 1), [16777216], np.int32)
    # 5 * float32(0.1) is 0.50000000745 in float64 (rounds to 1) but exactly 0.5 in
    # float32 (rounds to 0, even).
    eq(requantize_float(np.array([5], np.int32), f32(0.1), 0, -128, 127), [0], np.int32)


def test_requantize_float_rejects_bad_arguments() -> None:
    with pytest.raises(DTypeError):
        requantize_float(np.array([1], np.int64), f32(1), 0, -128, 127)
    with pytest.raises(DTypeError):
        requantize_float(np.array([1], np.int32), np.float64(1), 0, -128, 127)
    with pytest.raises(QuantParamError):
        requantize_float(np.array([1], np.int32), f32(0), 0, -128, 127)
    with pytest.raises(QuantParamError):
        requantize_float(np.array([1], np.int32), f32(1), 0, 5, 4)


# --- Packing ------------------------------------------------------------------------------


def test_pack_int4_onnx_layout_with_odd_count() -> None:
    eq(pack_int4(np.array([1, 2, 3, 5, -8, -6], np.int8)), [0x21, 0x53, 0xA8], np.uint8)
    # Odd count: the high nibble of the last byte is 0.
    eq(pack_int4(np.array([1, 2, -1], np.int8)), [0x21, 0x0F], np.uint8)
    eq(pack_int4(np.array([15, 0, 9], np.uint8), signed=False), [0x0F, 0x09], np.uint8)


def test_unpack_int4_sign_extends_and_ignores_padding() -> None:
    eq(unpack_int4(np.array([0x21, 0xFF], np.uint8), 3), [1, 2, -1], np.int8)
    eq(unpack_int4(np.array([0x21, 0xFF], np.uint8), 3, signed=False), [1, 2, 15], np.uint8)
    eq(unpack_int4(np.array([0x21, 0x53, 0xA8], np.uint8), (2, 3)), [[1, 2, 3], [5, -8, -6]], np.int8)


def test_pack_int2_onnx_layout() -> None:
    # Elements 0, 1, 2, 3 in bits 0-1, 2-3, 4-5, 6-7: 0b11_10_01_00 = 0xE4; then 1 -> 0x01.
    eq(pack_int2(np.array([0, 1, 2, 3, 1], np.uint8), signed=False), [0xE4, 0x01], np.uint8)
    eq(pack_int2(np.array([0, 1, -2, -1, -2], np.int8)), [0xE4, 0x02], np.uint8)
    eq(unpack_int2(np.array([0xE4, 0x02], np.uint8), 5), [0, 1, -2, -1, -2], np.int8)


@pytest.mark.parametrize(("bits", "signed"), [(4, True), (4, False), (2, True), (2, False)])
def test_pack_unpack_round_trip_every_value_and_length(bits: int, signed: bool) -> None:
    pack, unpack = (pack_int4, unpack_int4) if bits == 4 else (pack_int2, unpack_int2)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    dtype = np.int8 if signed else np.uint8
    rng = np.random.default_rng(20261126)
    for count in range(0, 19):
        values = rng.integers(lo, hi + 1, size=count).astype(dtype)
        packed = pack(values, signed=signed)
        assert packed.size == -(-count * bits // 8)
        eq(unpack(packed, count, signed=signed), values, dtype)


def test_packing_rejects_bad_input() -> None:
    with pytest.raises(QuantParamError):
        pack_int4(np.array([8], np.int8))
    with pytest.raises(QuantParamError):
        pack_int2(np.array([4], np.uint8), signed=False)
    with pytest.raises(DTypeError):
        pack_int4(np.array([1], np.int16))
    with pytest.raises(DTypeError):
        pack_int4(np.array([1], np.uint8))  # signed int4 lives in int8
    with pytest.raises(DTypeError):
        unpack_int4(np.array([1], np.int8), 2)
    with pytest.raises(ShapeError):
        unpack_int4(np.array([1, 2], np.uint8), 5)
    with pytest.raises(ShapeError):
        unpack_int2(np.array([1], np.uint8), 5)
