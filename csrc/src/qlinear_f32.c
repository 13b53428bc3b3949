/*
 * qc_linear_dynamic_u8_f32 and qc_linear_dynamic_smoothed_u8_f32 (qcore_linear.h): per-row
 * dynamic quantization with the public element-wise kernel (of the row times the smoothing
 * vector, formed in a row-sized scratch buffer, for the smoothed form), the packed GEMM writing int32 into the output buffer, then the
 * float32 epilogue in place, row by row.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "qcore.h"
#include "qlinear_f32.h"

void qc_s32_f32_dequant_bias_ukernel__scalar(size_t n, void *buf, float x_scale, const float *w_scale,
                                             int per_column, const float *bias) {
    unsigned char *p = (unsigned char *)buf;
    for (size_t j = 0; j < n; j++) {
        int32_t acc;
        memcpy(&acc, p + 4 * j, sizeof acc);
        float mult = x_scale * w_scale[per_column ? j : 0];
        float v = (float)acc * mult;
        if (bias != NULL) {
            v = v + bias[j];
        }
        memcpy(p + 4 * j, &v, sizeof v);
    }
}

static qc_status linear_dynamic(size_t m, const float *x, const float *x_mul, const void *packed,
                                const float *w_scale, size_t w_scale_count, const float *bias, float *y,
                                const qc_options *options) {
    int isa = QC_ISA_SCALAR;
    int threads = 1;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (packed == NULL || w_scale == NULL) {
        return QC_E_NULL_POINTER;
    }
    size_t k = 0;
    size_t n = 0;
    QC__TRY(qc_gemm_packed_dims(packed, &k, &n));
    if (w_scale_count != 1 && w_scale_count != n) {
        return QC_E_SHAPE;
    }
    if (m == 0 || n == 0) {
        return QC_OK;
    }
    if (y == NULL || (x == NULL && k > 0)) {
        return QC_E_NULL_POINTER;
    }
    qc__dequant_row_fn epilogue = qc_s32_f32_dequant_bias_ukernel__scalar;
#if defined(QC__BUILD_AVX2)
    if (isa == QC_ISA_AVX2) {
        epilogue = qc_s32_f32_dequant_bias_ukernel__avx2;
    }
#endif
    size_t q_bytes = 0;
    size_t row_bytes = 0;
    if (qc__mul_size(m, k, &q_bytes) || qc__mul_size(m, sizeof(float), &row_bytes)) {
        return QC_E_OVERFLOW;
    }
    size_t smooth_bytes = 0;
    if (x_mul != NULL && qc__mul_size(k, sizeof(float), &smooth_bytes)) {
        return QC_E_OVERFLOW;
    }
    uint8_t *q = malloc(q_bytes > 0 ? q_bytes : 1);
    float *scales = malloc(row_bytes);
    int32_t *zps = malloc(row_bytes);
    float *smoothed = x_mul != NULL ? malloc(smooth_bytes > 0 ? smooth_bytes : 1) : NULL;
    qc_status status = QC_OK;
    if (q == NULL || scales == NULL || zps == NULL || (x_mul != NULL && smoothed == NULL)) {
        status = QC_E_NO_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < m && status == QC_OK; i++) {
        uint8_t *qi = q + i * k;
        if (k == 0) {
            scales[i] = 1.0f;
            zps[i] = 0;
            continue;
        }
        const float *row = x + i * k;
        if (x_mul != NULL) { /* the smoothing Mul: one float32 product per element, as NumPy's */
            for (size_t j = 0; j < k; j++) {
                smoothed[j] = row[j] * x_mul[j];
            }
            row = smoothed;
        }
        uint8_t zp = 0;
        status = qc_dynamic_quantize_u8(row, k, qi, &scales[i], &zp, options);
        if (status == QC_E_SCALE) { /* range / 255 underflows: every value rounds to 0 */
            scales[i] = 1.0f;
            zp = 0;
            memset(qi, 0, k);
            status = QC_OK;
        }
        zps[i] = zp;
    }
    if (status != QC_OK) {
        goto done;
    }
    status = qc_gemm_packed_s32(m, QC_GEMM_U8, q, k, zps, m, packed, (int32_t *)(void *)y, n, options);
    if (status != QC_OK) {
        goto done;
    }
    for (size_t i = 0; i < m; i++) {
        epilogue(n, y + i * n, scales[i], w_scale, w_scale_count != 1, bias);
    }
done:
    free(q);
    free(scales);
    free(zps);
    free(smoothed);
    return status;
}

qc_status qc_linear_dynamic_u8_f32(size_t m, const float *x, const void *packed, const float *w_scale,
                                   size_t w_scale_count, const float *bias, float *y, const qc_options *options) {
    return linear_dynamic(m, x, NULL, packed, w_scale, w_scale_count, bias, y, options);
}

qc_status qc_linear_dynamic_smoothed_u8_f32(size_t m, const float *x, const float *x_mul, const void *packed,
                                            const float *w_scale, size_t w_scale_count, const float *bias, float *y,
                                            const qc_options *options) {
    if (x_mul == NULL) {
        return QC_E_NULL_POINTER;
    }
    return linear_dynamic(m, x, x_mul, packed, w_scale, w_scale_count, bias, y, options);
}
