/*
 * Portable row kernels of the dynamic linear layer (qlinear_f32.h): the twins the AVX2
 * kernels are tested against.
 */
#include <string.h>

#include "elementwise.h"
#include "gemm_internal.h"
#include "qlinear_f32.h"

void qc_s32_f32_dequant_bias_ukernel__scalar(size_t rows, size_t n, void *buf, size_t stride, const float *x_scale,
                                             const float *w_scale, int per_column, const float *bias) {
    for (size_t r = 0; r < rows; r++) {
        unsigned char *p = (unsigned char *)buf + r * stride * 4;
        for (size_t j = 0; j < n; j++) {
            int32_t acc;
            memcpy(&acc, p + 4 * j, sizeof acc);
            float mult = x_scale[r] * w_scale[per_column ? j : 0];
            float v = (float)acc * mult;
            if (bias != NULL) {
                v = v + bias[j];
            }
            memcpy(p + 4 * j, &v, sizeof v);
        }
    }
}

int qc_f32_mul_minmax_ukernel__scalar(size_t n, const float *x, const float *mul, float *prod, float *min_out,
                                      float *max_out) {
    return qc__minmax_scalar(n, x, mul, prod, min_out, max_out);
}

int qc_f32_qu8_quantize_centered_pack_ukernel__scalar(size_t k, size_t kp, const float *x, float scale,
                                                      int32_t zero_point, size_t mr, int16_t *dst, int32_t *rowsum) {
    const size_t step = mr * QC__GEMM_KG;
    int nan_seen = 0;
    uint32_t sum = 0;
    for (size_t kk = 0; kk < kp; kk++) {
        int32_t v = kk < k ? qc__quantize_value(x[kk], scale, zero_point, 0, 255, &nan_seen) - zero_point : 0;
        dst[(kk / QC__GEMM_KG) * step + kk % QC__GEMM_KG] = (int16_t)v;
        sum += (uint32_t)v;
    }
    *rowsum = (int32_t)sum;
    return nan_seen;
}
