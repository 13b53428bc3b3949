/*
 * qcore element-wise kernels: quantize / dequantize, requantization, int4 packing.
 * Included by qcore.h; see docs/ARITHMETIC.md for every formula and docs/C-API.md for
 * how to call them.
 *
 * Layout. Every per-tensor / per-channel kernel sees its tensor as a C-contiguous
 * [outer, channels, inner] array: element (o, c, i) is at index (o * channels + c) * inner
 * + i and uses the parameters of channel c (scales[c], zero_points[c], ...). Per-tensor is
 * channels == 1; per-axis quantization along axis a of a shape d is outer = d[0] * ... *
 * d[a-1], channels = d[a], inner = d[a+1] * ... (so any axis works). Parameter arrays hold
 * `channels` entries; a NULL zero-point or bias array means all zeros.
 *
 * Results are bit-identical on every ISA path (scalar, AVX2, NEON). When a function fails,
 * the contents of its output buffers are unspecified. Element-wise kernels are memory
 * bound and run on the calling thread; options->num_threads is accepted and ignored.
 */
#ifndef QCORE_KERNELS_H
#define QCORE_KERNELS_H

/* cdef: begin */
/* Element types of kernel inputs and outputs. */
typedef enum qc_dtype {
    QC_DTYPE_INT8 = 0,
    QC_DTYPE_UINT8 = 1,
    QC_DTYPE_INT16 = 2,
    QC_DTYPE_UINT16 = 3,
    QC_DTYPE_INT32 = 4,
    QC_DTYPE_FLOAT32 = 5
} qc_dtype;

/* ONNX QuantizeLinear: y = saturate(round_half_even(x / scales[c]) + zero_points[c]).
 * A true float32 division; the clip to the range of output_dtype (int8, uint8, int16 or
 * uint16) happens before narrowing, so +-inf and huge values saturate. Scales must be
 * finite and > 0 (QC_E_SCALE), zero points in the output range (QC_E_ZERO_POINT).
 * A NaN anywhere in x: QC_E_NONFINITE. y has outer * channels * inner elements. */
qc_status qc_quantize_f32(const float *x, size_t outer, size_t channels, size_t inner, const float *scales,
                          const int32_t *zero_points, int output_dtype, void *y, const qc_options *options);

/* ONNX DequantizeLinear: y = (float)(x - zero_points[c]) * scales[c]. The subtraction is
 * exact (in 64 bits for int32 input), its conversion to float32 rounds half to even, then
 * one float32 multiply. input_dtype: int8, uint8, int16, uint16 or int32; zero points in
 * its range (QC_E_ZERO_POINT); scales finite and > 0 (QC_E_SCALE). */
qc_status qc_dequantize_f32(const void *x, int input_dtype, size_t outer, size_t channels, size_t inner,
                            const float *scales, const int32_t *zero_points, float *y, const qc_options *options);

/* ONNX DynamicQuantizeLinear to uint8, all in float32:
 *   lo = min(0, min x), hi = max(0, max x), scale = (hi - lo) / 255,
 *   zero_point = round_half_even(clip(0 - lo / scale, 0, 255)),
 *   y = saturate(round_half_even(x / scale) + zero_point).
 * All-zero input (hi == lo): scale 1.0 and zero point 0, as onnxruntime (ONNX's reference
 * evaluator gives 1/255). n == 0: QC_E_SHAPE. Any NaN or infinity in x, or hi - lo
 * overflowing float32: QC_E_NONFINITE. A range so small that (hi - lo) / 255 underflows to
 * 0: QC_E_SCALE. */
qc_status qc_dynamic_quantize_u8(const float *x, size_t n, uint8_t *y, float *scale_out, uint8_t *zero_point_out,
                                 const qc_options *options);

/* ONNX real-valued requantization of int32 accumulators (QLinearMatMul / QLinearConv):
 *   a = acc + bias[c]                               (int32, wrapping)
 *   y = clamp(round_half_even((float)a * multipliers[c]) + zero_points[c], output_min, output_max)
 * in float32 without FMA contraction (requant.h, qc__requant_float). output_dtype is int8
 * or uint8; [output_min, output_max] must lie in its range with output_min <= output_max
 * (the full range, or ReLU / ReLU6 / any min-max fusion given as integers): otherwise
 * QC_E_INVALID_ARGUMENT. Multipliers finite and > 0 (QC_E_SCALE); zero points in the
 * output range (QC_E_ZERO_POINT). */
qc_status qc_requantize(const int32_t *acc, size_t outer, size_t channels, size_t inner, const int32_t *bias,
                        const float *multipliers, const int32_t *zero_points, int32_t output_min,
                        int32_t output_max, int output_dtype, void *y, const qc_options *options);

/* TFLite fixed-point requantization:
 *   a = acc + bias[c]                               (int32, wrapping)
 *   y = clamp(MultiplyByQuantizedMultiplier(a, multipliers[c], shifts[c]) + zero_points[c],
 *             output_min, output_max)
 * with gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT (requant.h,
 * qc__multiply_by_quantized_multiplier; a left shift that overflows saturates).
 * Any int32 multiplier; shifts in [-31, 31] (QC_E_INVALID_ARGUMENT otherwise); the other
 * arguments as for qc_requantize. */
qc_status qc_requantize_fixedpoint(const int32_t *acc, size_t outer, size_t channels, size_t inner,
                                   const int32_t *bias, const int32_t *multipliers, const int32_t *shifts,
                                   const int32_t *zero_points, int32_t output_min, int32_t output_max,
                                   int output_dtype, void *y, const qc_options *options);

/* ONNX int4 / uint4 packing: two values per byte, element 2k in the low nibble of byte k,
 * element 2k+1 in the high nibble; an odd n leaves the last high nibble 0. packed holds
 * (n + 1) / 2 bytes. is_signed selects int4 ([-8, 7], values as int8) or uint4 ([0, 15],
 * values as uint8, passed through the same pointer type). A value outside the range:
 * QC_E_INVALID_ARGUMENT (nothing guaranteed about packed). */
qc_status qc_pack_int4(const int8_t *values, size_t n, int is_signed, uint8_t *packed, const qc_options *options);

/* The inverse of qc_pack_int4: n values (sign-extended for int4) from (n + 1) / 2 bytes.
 * Every byte is valid input; with odd n the last high nibble is ignored. */
qc_status qc_unpack_int4(const uint8_t *packed, size_t n, int is_signed, int8_t *values, const qc_options *options);
/* cdef: end */

#endif /* QCORE_KERNELS_H */
