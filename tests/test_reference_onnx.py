"""Golden, hand-computed cases for the ONNX ops of qcore.reference (docs/ARITHMETIC.md).

Each expected value is worked out in the comment beside it, so a failure points at the
rule that broke (rounding, order of operations, saturation, broadcasting, validation).
"""

from __future__ import annotations

import numpy as np
import pytest

from qcore.errors import DTypeError, NonFiniteError, QuantParamError, ShapeError
from qcore.reference.tensor import QuantizedTensor
from qcore.reference import (
    conv_integer,
    dequantize_linear,
    dynamic_quantize_linear,
    matmul_integer,
    pack_int2,
    pack_int4,
    qlinear_conv,
    qlinear_matmul,
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


def test_quantize_float16_scale_divides_in_float16() -> None:
    # float16(0.3) = 0.2998046875. 59.25 / it = 197.4679, which float16 (spacing 0.125)
    # rounds to the tie 197.5 -> 198; a float32 quotient would give 197.
    # float16(96.2) = 96.1875; / 0.2998046875 = 320.5728 -> float16 (spacing 0.25) 320.5
    # -> 320 (even); a float32 quotient would give 321.
    x = np.array([59.25, 96.2], dtype=np.float16)
    eq(quantize_linear(x, np.float16(0.3), np.int16(0)), [198, 320], np.int16)
    # float32 x with a float16 scale: x is converted to float16 first (ONNX schema:
    # the scale's type is the precision; onnxruntime >= opset 23 agrees). ONNX's reference
    # evaluator divides in float32 here and gives [197, 321].
    eq(quantize_linear(x.astype(np.float32), np.float16(0.3), np.int16(0)), [198, 320], np.int16)
    # 70000 does not fit float16: it becomes inf and saturates.
    eq(quantize_linear(f32([70000, -70000]), np.float16(0.3), np.int16(0)), [32767, -32768], np.int16)
    # float16 x with a float32 scale divides in float32: 96.1875 / float32(0.3) = 320.625 -> 321.
    eq(quantize_linear(np.array([96.2], np.float16), f32(0.3), np.int16(0)), [321], np.int16)


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


def test_dequantize_float16_output_beyond_range_is_inf() -> None:
    y = dequantize_linear(np.array([30000, -30000, 10], np.int16), np.float16(4))
    eq(y, [np.inf, -np.inf, 40], np.float16)


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


def test_dequantize_rejects_ml_dtypes_subbyte_arrays() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(DTypeError, match="one per element"):
        dequantize_linear(np.array([1, -2], dtype=ml_dtypes.int4), f32(1))


def test_quantized_tensor_dequantize_uses_the_reference() -> None:
    data = np.array([[1, 2, 3], [4, 5, 6]], np.int8)
    tensor = QuantizedTensor(data, f32([0.5, 2.0]), np.array([1, -1], np.int8), "int8", axis=0)
    eq(tensor.dequantize(), [[0, 0.5, 1], [10, 12, 14]], np.float32)
    tensor = QuantizedTensor(data, f32(0.25), np.int8(2), "int8")
    eq(tensor.dequantize(), [[-0.25, 0, 0.25], [0.5, 0.75, 1]], np.float32)


def test_empty_and_zero_size_shapes() -> None:
    eq(matmul_integer(np.zeros((2, 0), np.int8), np.zeros((0, 3), np.int8)), np.zeros((2, 3)), np.int32)
    eq(matmul_integer(np.zeros((0, 4), np.uint8), np.ones((4, 3), np.uint8)), np.zeros((0, 3)), np.int32)
    eq(conv_integer(np.zeros((0, 2, 5), np.uint8), np.ones((3, 2, 2), np.uint8)), np.zeros((0, 3, 4)), np.int32)
    eq(dequantize_linear(np.zeros((0, 3), np.uint8), f32([1, 2, 3])), np.zeros((0, 3)), np.float32)


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


# --- MatMulInteger ------------------------------------------------------------------------


def test_matmul_integer_hand_computed_with_per_row_and_per_column_zero_points() -> None:
    # A = [[1,2],[3,4]] - [1,2] per row = [[0,1],[1,2]]; B = [[5,6],[7,8]] - [5,0] per column
    # = [[0,6],[2,8]]; A @ B = [[2, 8], [4, 22]].
    a = np.array([[1, 2], [3, 4]], np.uint8)
    b = np.array([[5, 6], [7, 8]], np.uint8)
    y = matmul_integer(a, b, np.array([1, 2], np.uint8), np.array([5, 0], np.uint8))
    eq(y, [[2, 8], [4, 22]], np.int32)
    # (255 - 128) * 1 + (0 - 128) * 2 = -129.
    eq(matmul_integer(np.array([[255, 0]], np.uint8), np.array([[1], [2]], np.uint8), 128), [[-129]], np.int32)


def test_matmul_integer_mixed_signedness_full_range() -> None:
    # u8 x s8 at the extremes: 255 * -128 * 3 = -97920 (saturating int16 pair sums would not give it).
    a = np.full((2, 3), 255, np.uint8)
    b = np.full((3, 2), -128, np.int8)
    eq(matmul_integer(a, b), np.full((2, 2), -97920), np.int32)
    eq(matmul_integer(b.T.copy(), a.T.copy()), np.full((2, 2), -97920), np.int32)


@pytest.mark.parametrize(
    ("a_value", "b_value", "k", "expected"),
    [
        (255, 255, 33027, -2147386621),  # 33027 * 65025 = 2147580675 = 2**31 + 96827
        (-128, -128, 131073, -2147467264),  # 131073 * 16384 = 2147500032
        (-128, 255, 65794, 2147451136),  # -128 * 255 * 65794 = -2147516160
    ],
)
def test_matmul_integer_wraps_in_int32(a_value: int, b_value: int, k: int, expected: int) -> None:
    a = np.full((1, k), a_value, np.uint8 if a_value > 0 else np.int8)
    b = np.full((k, 1), b_value, np.uint8 if b_value > 0 else np.int8)
    eq(matmul_integer(a, b), [[expected]], np.int32)


def test_matmul_integer_batch_broadcasting_and_nd_zero_points() -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (2, 1, 3, 5)).astype(np.int8)
    b = rng.integers(0, 256, (4, 5, 2)).astype(np.uint8)
    a_zp = rng.integers(-128, 128, (2, 1, 3, 1)).astype(np.int8)  # per row, per batch
    b_zp = rng.integers(0, 256, (4, 1, 2)).astype(np.uint8)  # per column, per batch
    y = matmul_integer(a, b, a_zp, b_zp)
    assert y.shape == (2, 4, 3, 2)
    a_diff = a.astype(np.int64) - a_zp
    b_diff = b.astype(np.int64) - b_zp
    expected = np.matmul(np.broadcast_to(a_diff, (2, 4, 3, 5)), np.broadcast_to(b_diff, (2, 4, 5, 2)))
    eq(y, expected, np.int32)


def test_matmul_integer_one_dimensional_operands() -> None:
    a = np.array([1, 2, 3], np.int8)
    b = np.array([[1, 0], [0, 1], [1, 1]], np.int8)
    eq(matmul_integer(a, b, 1, np.array([0, 1], np.int8)), [2, 0], np.int32)  # [0,1,2] @ [[1,-1],[0,0],[1,0]]
    eq(matmul_integer(a, a), np.array(14), np.int32)
    eq(matmul_integer(b.T.copy(), a), [4, 5], np.int32)


def test_matmul_integer_rejects_bad_input() -> None:
    a = np.ones((2, 3), np.uint8)
    b = np.ones((3, 4), np.int8)
    with pytest.raises(DTypeError):
        matmul_integer(a.astype(np.int16), b)
    with pytest.raises(DTypeError):
        matmul_integer(a, b.astype(np.float32))
    with pytest.raises(ShapeError, match="scalar"):
        matmul_integer(np.uint8(1), b)
    with pytest.raises(ShapeError, match="inner"):
        matmul_integer(a, np.ones((4, 3), np.int8))
    with pytest.raises(ShapeError, match="batch"):
        matmul_integer(np.ones((2, 2, 3), np.uint8), np.ones((3, 3, 4), np.int8))
    with pytest.raises(DTypeError, match="a_zero_point"):
        matmul_integer(a, b, np.int8(0))
    with pytest.raises(ShapeError, match="a_zero_point"):
        matmul_integer(a, b, np.zeros(3, np.uint8))  # per-row needs M = 2
    with pytest.raises(ShapeError, match="b_zero_point"):
        matmul_integer(a, b, None, np.zeros(3, np.int8))  # per-column needs N = 4
    with pytest.raises(ShapeError, match="b_zero_point"):
        matmul_integer(a, b, None, np.zeros((3, 4), np.int8))
    with pytest.raises(QuantParamError):
        matmul_integer(a, b, 256)
    with pytest.raises(QuantParamError):
        matmul_integer(a, b, None, -129)


# --- QLinearMatMul ------------------------------------------------------------------------


def _qlmm(a, b, a_scale=1.0, b_scale=1.0, y_scale=1.0, y_zp=np.uint8(0), a_zp=None, b_zp=None):
    return qlinear_matmul(a, f32(a_scale), a_zp, b, f32(b_scale), b_zp, f32(y_scale), y_zp)


def test_qlinear_matmul_rounds_half_even_before_adding_odd_zero_point() -> None:
    a = np.array([[1], [3], [5]], np.uint8)
    b = np.array([[1]], np.uint8)
    # acc * 0.5 = 0.5, 1.5, 2.5 -> 0, 2, 2, then + 1. (ONNX's evaluator adds first: 2, 2, 4.)
    eq(_qlmm(a, b, y_scale=2.0, y_zp=np.uint8(1)), [[1], [3], [3]], np.uint8)


def test_qlinear_matmul_multiplies_in_float32() -> None:
    # multiplier = float32(0.1); 5 * 0.1f = 0.5 exactly in float32 -> 0. In float64 the
    # product is 0.50000000745 -> 1 (what ONNX's evaluator gives).
    eq(_qlmm(np.array([[5]], np.uint8), np.array([[1]], np.uint8), a_scale=0.1), [[0]], np.uint8)


def test_qlinear_matmul_saturates_and_uses_y_zero_point_type() -> None:
    a = np.array([[255, 255]], np.uint8)
    b = np.array([[255], [0]], np.uint8)
    eq(_qlmm(a, b), [[255]], np.uint8)  # 65025 -> 255
    a8 = np.array([[-128, 127]], np.int8)
    b8 = np.array([[127], [0]], np.int8)
    eq(_qlmm(a8, b8, y_zp=np.int8(-3)), [[-128]], np.int8)  # -16256 - 3 -> -128
    eq(_qlmm(a8, b8, y_scale=256.0, y_zp=np.int8(0)), [[-64]], np.int8)  # -63.5 -> -64 (even)
    eq(_qlmm(a8, b8, y_scale=256.0, y_zp=None), [[-64]], np.int8)  # no zero point: a's type


def test_qlinear_matmul_per_row_and_per_column_scales() -> None:
    # acc = [[2, 8], [4, 22]] (see the MatMulInteger case); multiplier[m, n] = sa[m] * sb[n] / 2.
    a = np.array([[1, 2], [3, 4]], np.uint8)
    b = np.array([[5, 6], [7, 8]], np.uint8)
    y = qlinear_matmul(a, f32([1, 2]), np.array([1, 2], np.uint8), b, f32([1, 0.5]),
                       np.array([5, 0], np.uint8), f32(2), np.uint8(10))
    # [[2*0.5, 8*0.25], [4*1, 22*0.5]] = [[1, 2], [4, 11]] + 10
    eq(y, [[11, 12], [14, 21]], np.uint8)


def test_qlinear_matmul_is_requantized_matmul_integer() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        a = rng.integers(-128, 128, (3, 7, 9)).astype(np.int8)
        b = rng.integers(-128, 128, (9, 5)).astype(np.int8)
        a_scale, b_scale, y_scale = (f32(v) for v in rng.uniform(1e-3, 1e-1, 3))
        a_zp, b_zp, y_zp = (np.int8(v) for v in rng.integers(-128, 128, 3))
        y = qlinear_matmul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)
        acc = matmul_integer(a, b, a_zp, b_zp)
        multiplier = (a_scale * b_scale) / y_scale
        eq(y, requantize_float(acc, multiplier, int(y_zp), -128, 127).astype(np.int8), np.int8)


def test_qlinear_matmul_rejects_bad_input() -> None:
    a = np.ones((2, 3), np.uint8)
    b = np.ones((3, 4), np.uint8)
    zp = np.uint8(0)
    with pytest.raises(QuantParamError, match="b_scale"):
        qlinear_matmul(a, f32(1), zp, b, f32(0), zp, f32(1), zp)
    with pytest.raises(ShapeError, match="y_scale"):
        qlinear_matmul(a, f32(1), zp, b, f32(1), zp, f32([1, 1]), np.zeros(2, np.uint8))
    with pytest.raises(ShapeError, match="a_scale"):
        qlinear_matmul(a, f32([1, 1]), zp, b, f32(1), zp, f32(1), zp)
    with pytest.raises(ShapeError, match="b_scale"):
        qlinear_matmul(a, f32(1), zp, b, f32([1, 1, 1]), np.zeros(3, np.uint8), f32(1), zp)
    with pytest.raises(DTypeError, match="y_zero_point"):
        qlinear_matmul(a, f32(1), zp, b, f32(1), zp, f32(1), np.int16(0))
    with pytest.raises(DTypeError, match="a_scale"):
        qlinear_matmul(a, np.float64(1), zp, b, f32(1), zp, f32(1), zp)


# --- ConvInteger --------------------------------------------------------------------------


def test_conv_integer_1d_hand_computed() -> None:
    # x - 1 = [0, 1, 2, 3, 4]; kernel [1, 2]: out[i] = x[i] + 2 x[i + 1].
    x = np.array([[[1, 2, 3, 4, 5]]], np.uint8)
    w = np.array([[[1, 2]]], np.uint8)
    eq(conv_integer(x, w, np.uint8(1)), [[[2, 5, 8, 11]]], np.int32)
    # Padding holds the real value 0 (the zero point): [0, 0,1,2,3,4, 0].
    eq(conv_integer(x, w, np.uint8(1), pads=[1, 1]), [[[0, 2, 5, 8, 11, 4]]], np.int32)
    eq(conv_integer(x, w, np.uint8(1), strides=[2]), [[[2, 8]]], np.int32)
    # Dilation 2: out[i] = x[i] + 2 x[i + 2].
    eq(conv_integer(x, w, np.uint8(1), dilations=[2]), [[[4, 7, 10]]], np.int32)


def test_conv_integer_auto_pad_upper_lower_valid() -> None:
    x = np.array([[[1, 2, 3, 4]]], np.int8)
    w = np.array([[[1, 1]]], np.int8)
    # Total padding (4 - 1) * 1 + 2 - 4 = 1: at the end (UPPER) or the beginning (LOWER).
    eq(conv_integer(x, w, auto_pad="SAME_UPPER"), [[[3, 5, 7, 4]]], np.int32)
    eq(conv_integer(x, w, auto_pad="SAME_LOWER"), [[[1, 3, 5, 7]]], np.int32)
    eq(conv_integer(x, w, auto_pad="VALID"), [[[3, 5, 7]]], np.int32)
    # Stride 2, length 5, kernel 3: out = ceil(5 / 2) = 3, total padding 2, one on each side.
    x5 = np.array([[[1, 2, 3, 4, 5]]], np.int8)
    w3 = np.array([[[1, 1, 1]]], np.int8)
    eq(conv_integer(x5, w3, auto_pad="SAME_UPPER", strides=[2]), [[[3, 9, 9]]], np.int32)
    eq(conv_integer(x5, w3, auto_pad="SAME_LOWER", strides=[2]), [[[3, 9, 9]]], np.int32)


def test_conv_integer_groups_and_per_channel_weight_zero_points() -> None:
    x = np.array([[[1, 2], [10, 20]]], np.uint8)  # N=1, C=2, W=2
    # Depthwise with multiplier 2: output channels 0, 1 see input 0; 2, 3 see input 1.
    w = np.array([[[5]], [[5]], [[5]], [[5]]], np.uint8)
    w_zp = np.array([3, 6, 4, 5], np.uint8)  # effective weights 2, -1, 1, 0
    eq(conv_integer(x, w, None, w_zp, group=2), [[[2, 4], [-1, -2], [10, 20], [0, 0]]], np.int32)


def test_conv_integer_wraps_in_int32() -> None:
    channels = 33027  # 33027 * 255 * 255 = 2**31 + 96827
    x = np.full((1, channels, 1), 255, np.uint8)
    w = np.full((1, channels, 1), 255, np.uint8)
    eq(conv_integer(x, w), [[[-2147386621]]], np.int32)


def _naive_conv(x, w, group, strides, dilations, begin, end):
    """Direct loops over every output and tap (independent of the im2col implementation)."""
    n, c = x.shape[:2]
    m = w.shape[0]
    kernel = w.shape[2:]
    padded = np.pad(x.astype(np.int64), [(0, 0), (0, 0)] + list(zip(begin, end)))
    out_shape = [(padded.shape[2 + i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1
                 for i in range(len(kernel))]
    y = np.zeros((n, m, *out_shape), np.int64)
    cg, mg = c // group, m // group
    for b in range(n):
        for oc in range(m):
            g = oc // mg
            for pos in np.ndindex(*out_shape):
                total = 0
                for ic in range(cg):
                    for tap in np.ndindex(*kernel):
                        idx = tuple(pos[i] * strides[i] + tap[i] * dilations[i] for i in range(len(kernel)))
                        total += padded[(b, g * cg + ic) + idx] * int(w[(oc, ic) + tap])
                y[(b, oc) + pos] = total
    return y


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "group", "strides", "dilations", "pads"),
    [
        ((2, 3, 11), (4, 3, 3), 1, [2], [1], [1, 2]),
        ((1, 4, 7, 6), (6, 2, 3, 2), 2, [1, 2], [2, 1], [1, 0, 2, 1]),
        ((1, 4, 6, 5), (4, 1, 2, 2), 4, [2, 2], [1, 1], [0, 1, 1, 0]),
        ((1, 2, 4, 5, 3), (2, 2, 2, 3, 2), 1, [1, 2, 1], [1, 1, 2], [1, 0, 1, 0, 1, 1]),
    ],
)
def test_conv_integer_matches_direct_loops(x_shape, w_shape, group, strides, dilations, pads) -> None:
    rng = np.random.default_rng(13)
    x = rng.integers(0, 256, x_shape).astype(np.uint8)
    w = rng.integers(-128, 128, w_shape).astype(np.int8)
    spatial = len(x_shape) - 2
    y = conv_integer(x, w, np.uint8(100), np.int8(-7), group=group, strides=strides, dilations=dilations, pads=pads)
    expected = _naive_conv(x.astype(np.int64) - 100, w.astype(np.int64) + 7, group, strides, dilations,
                           pads[:spatial], pads[spatial:])
    eq(y, expected, np.int32)


def test_conv_integer_rejects_bad_input() -> None:
    x = np.ones((1, 4, 5, 5), np.uint8)
    w = np.ones((2, 4, 3, 3), np.uint8)
    cases = [
        (lambda: conv_integer(x.reshape(4, 25), w), ShapeError),
        (lambda: conv_integer(x, w[:, :, 0]), ShapeError),  # rank mismatch
        (lambda: conv_integer(x, w[:, :3]), ShapeError),  # channels
        (lambda: conv_integer(x, np.ones((3, 2, 3, 3), np.uint8), group=2), ShapeError),  # M % group
        (lambda: conv_integer(x, w, group=0), ShapeError),
        (lambda: conv_integer(x, w, kernel_shape=[2, 2]), ShapeError),
        (lambda: conv_integer(x, w, strides=[1]), ShapeError),
        (lambda: conv_integer(x, w, strides=[0, 1]), ShapeError),
        (lambda: conv_integer(x, w, dilations=[1, 0]), ShapeError),
        (lambda: conv_integer(x, w, pads=[0, 0, -1, 0]), ShapeError),
        (lambda: conv_integer(x, w, auto_pad="SAME"), ShapeError),
        (lambda: conv_integer(x, w, auto_pad="SAME_UPPER", pads=[1, 1, 1, 1]), ShapeError),
        (lambda: conv_integer(x, np.ones((2, 4, 6, 3), np.uint8)), ShapeError),  # kernel > input
        (lambda: conv_integer(x, w, np.zeros(4, np.uint8)), ShapeError),  # x zero point per-tensor only
        (lambda: conv_integer(x, w, None, np.zeros(3, np.uint8)), ShapeError),  # needs M = 2
        (lambda: conv_integer(x, w, np.int8(0)), DTypeError),
        (lambda: conv_integer(x.astype(np.float32), w), DTypeError),
        (lambda: conv_integer(x, w.astype(np.int32)), DTypeError),
    ]
    for call, error in cases:
        with pytest.raises(error):
            call()


# --- QLinearConv --------------------------------------------------------------------------


def test_qlinear_conv_hand_computed_with_bias_and_ties() -> None:
    # acc = x * 1 + B = [2, 4] + 1 = [3, 5]; * (0.5 * 1 / 1) = [1.5, 2.5] -> [2, 2] + 1 = [3, 3].
    x = np.array([[[2, 4]]], np.uint8)
    w = np.array([[[1]]], np.uint8)
    bias = np.array([1], np.int32)
    y = qlinear_conv(x, f32(0.5), np.uint8(0), w, f32(1), np.uint8(0), f32(1), np.uint8(1), bias)
    eq(y, [[[3, 3]]], np.uint8)


def test_qlinear_conv_per_channel_weight_scales() -> None:
    # Two output channels with effective weights 1 and -2 (zp 0), scales 1 and 0.25:
    # channel 0: [10, 20] * 1 / 2 = [5, 10]; channel 1: [-20, -40] * 0.25 / 2 = [-2.5, -5]
    # -> [-2 (even), -5]; + y_zp -1.
    x = np.array([[[10, 20]]], np.int8)
    w = np.array([[[1]], [[-2]]], np.int8)
    y = qlinear_conv(x, f32(1), np.int8(0), w, f32([1, 0.25]), np.zeros(2, np.int8), f32(2), np.int8(-1))
    eq(y, [[[4, 9], [-3, -6]]], np.int8)


def test_qlinear_conv_rejects_bad_input() -> None:
    x = np.ones((1, 1, 3, 3), np.uint8)
    w = np.ones((2, 1, 1, 1), np.uint8)
    zp = np.uint8(0)
    with pytest.raises(DTypeError, match="B"):
        qlinear_conv(x, f32(1), zp, w, f32(1), zp, f32(1), zp, np.array([1, 2], np.int64))
    with pytest.raises(ShapeError, match="B"):
        qlinear_conv(x, f32(1), zp, w, f32(1), zp, f32(1), zp, np.array([1, 2, 3], np.int32))
    with pytest.raises(ShapeError, match="x_scale"):
        qlinear_conv(x, f32([1, 1]), np.zeros(2, np.uint8), w, f32(1), zp, f32(1), zp)
    with pytest.raises(ShapeError, match="w_scale"):
        qlinear_conv(x, f32(1), zp, w, f32([1, 1, 1]), np.zeros(3, np.uint8), f32(1), zp)
    with pytest.raises(ShapeError, match="w_scale"):
        qlinear_conv(x, f32(1), zp, w, f32([1, 1]), zp, f32(1), zp)
    with pytest.raises(QuantParamError, match="y_scale"):
        qlinear_conv(x, f32(1), zp, w, f32(1), zp, f32(np.nan), zp)


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
