/* Row kernels of qc_linear_dynamic_u8_f32 (qcore_linear.h): the smoothing product fused into
 * the min/max pass, quantization straight into the GEMM's packed A, the float epilogue.
 * Every AVX2 kernel is bit-identical to its __scalar twin (csrc/tests/test_linear.c). */
#ifndef QCORE_QLINEAR_F32_H
#define QCORE_QLINEAR_F32_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* The epilogue, in place: rows x n values at buf (row r at buf + r * stride values) hold
 * int32 acc on entry and float32 (float)acc * (x_scale[r] * w_scale[j or 0]) + bias[j] on
 * return (bias may be NULL): the product of the scales rounded to float32 first, no FMA. */
typedef void (*qc__dequant_rows_fn)(size_t rows, size_t n, void *buf, size_t stride, const float *x_scale,
                                    const float *w_scale, int per_column, const float *bias);
/* The n >= 1 float32 products prod[j] = x[j] * mul[j] (one IEEE multiply each, exactly
 * NumPy's `x * mul`) and their min and max; returns nonzero when a product is NaN (min and
 * max then unspecified). min and max are equal as floats across ISAs (a zero's sign may
 * differ: the callers take min(min, 0) and max(max, 0), where it never shows). */
typedef int (*qc__mul_minmax_fn)(size_t n, const float *x, const float *mul, float *prod, float *min_out,
                                 float *max_out);

/* One row of k floats quantized to uint8 with (scale, zero_point), zero_point in [0, 255]:
 * q = saturate(round_half_even(x / scale) + zero_point) as qc_dynamic_quantize_u8, stored
 * centred, q - zero_point (int16 in [-255, 255]), in the GEMM's packed int16 A layout of
 * block height mr (gemm_internal.h): element kk of the row at dst[(kk / 4) * mr * 4 + kk % 4]
 * for kk < kp, zero for k <= kk < kp (kp >= k, a multiple of 4). *rowsum gets the sum of
 * the stored values. Returns nonzero when x held a NaN (the stored values are then
 * unspecified). Only the AVX2 GEMM takes this layout today: the __scalar twin is the
 * reference the AVX2 kernel is tested against (and is itself tested against
 * qc_dynamic_quantize_u8 on every architecture). */
typedef int (*qc__quantize_pack_fn)(size_t k, size_t kp, const float *x, float scale, int32_t zero_point, size_t mr,
                                    int16_t *dst, int32_t *rowsum);

void qc_s32_f32_dequant_bias_ukernel__scalar(size_t rows, size_t n, void *buf, size_t stride, const float *x_scale,
                                             const float *w_scale, int per_column, const float *bias);
int qc_f32_mul_minmax_ukernel__scalar(size_t n, const float *x, const float *mul, float *prod, float *min_out,
                                      float *max_out);
int qc_f32_qu8_quantize_centered_pack_ukernel__scalar(size_t k, size_t kp, const float *x, float scale,
                                                      int32_t zero_point, size_t mr, int16_t *dst, int32_t *rowsum);
#if defined(QC__BUILD_AVX2)
void qc_s32_f32_dequant_bias_ukernel__avx2(size_t rows, size_t n, void *buf, size_t stride, const float *x_scale,
                                           const float *w_scale, int per_column, const float *bias);
int qc_f32_mul_minmax_ukernel__avx2(size_t n, const float *x, const float *mul, float *prod, float *min_out,
                                    float *max_out);
int qc_f32_qu8_quantize_centered_pack_ukernel__avx2(size_t k, size_t kp, const float *x, float scale,
                                                    int32_t zero_point, size_t mr, int16_t *dst, int32_t *rowsum);
#endif

#endif /* QCORE_QLINEAR_F32_H */
