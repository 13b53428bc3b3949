/* Epilogue kernels of qc_linear_dynamic_u8_f32 (qcore_linear.h). */
#ifndef QCORE_QLINEAR_F32_H
#define QCORE_QLINEAR_F32_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* One row, in place: buf[n] holds int32 acc on entry and float32
 * (float)acc * (x_scale * w_scale[n or 0]) + bias[n] on return (bias may be NULL). */
typedef void (*qc__dequant_row_fn)(size_t n, void *buf, float x_scale, const float *w_scale, int per_column,
                                   const float *bias);

void qc_s32_f32_dequant_bias_ukernel__scalar(size_t n, void *buf, float x_scale, const float *w_scale,
                                             int per_column, const float *bias);
#if defined(QC__BUILD_AVX2)
void qc_s32_f32_dequant_bias_ukernel__avx2(size_t n, void *buf, float x_scale, const float *w_scale,
                                           int per_column, const float *bias);
#endif

#endif /* QCORE_QLINEAR_F32_H */
