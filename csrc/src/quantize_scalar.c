/*
 * Portable scalar quantize / dequantize / min-max kernels: the twins every SIMD kernel is
 * tested against (docs/ARITHMETIC.md, "QuantizeLinear", "DequantizeLinear").
 */
#include <string.h>

#include "elementwise.h"

int qc_f32_q8_quantize_ukernel__scalar(size_t n, const float *x, float scale, int32_t zero_point, int32_t qmin,
                                       int32_t qmax, void *y) {
    uint8_t *out = (uint8_t *)y;
    int nan_seen = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint8_t)qc__quantize_value(x[i], scale, zero_point, qmin, qmax, &nan_seen);
    }
    return nan_seen;
}

int qc_f32_q16_quantize_ukernel__scalar(size_t n, const float *x, float scale, int32_t zero_point, int32_t qmin,
                                        int32_t qmax, void *y) {
    uint16_t *out = (uint16_t *)y;
    int nan_seen = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint16_t)qc__quantize_value(x[i], scale, zero_point, qmin, qmax, &nan_seen);
    }
    return nan_seen;
}

int qc_f32_q8_quantize_channels_ukernel__scalar(size_t n, const float *x, const float *scales,
                                                const int32_t *zero_points, int32_t qmin, int32_t qmax, void *y) {
    uint8_t *out = (uint8_t *)y;
    int nan_seen = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t zp = zero_points ? zero_points[i] : 0;
        out[i] = (uint8_t)qc__quantize_value(x[i], scales[i], zp, qmin, qmax, &nan_seen);
    }
    return nan_seen;
}

int qc_f32_q16_quantize_channels_ukernel__scalar(size_t n, const float *x, const float *scales,
                                                 const int32_t *zero_points, int32_t qmin, int32_t qmax, void *y) {
    uint16_t *out = (uint16_t *)y;
    int nan_seen = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t zp = zero_points ? zero_points[i] : 0;
        out[i] = (uint16_t)qc__quantize_value(x[i], scales[i], zp, qmin, qmax, &nan_seen);
    }
    return nan_seen;
}

/* Dequantize kernels for each input type, row and channel forms. */
#define QC__DEQUANT_SCALAR(name, ctype)                                                                       \
    void qc_##name##_f32_dequantize_ukernel__scalar(size_t n, const void *x, float scale, int32_t zero_point,  \
                                                    float *y) {                                                \
        const ctype *in = (const ctype *)x;                                                                    \
        for (size_t i = 0; i < n; i++) {                                                                       \
            y[i] = qc__dequantize_value(in[i], scale, zero_point);                                             \
        }                                                                                                      \
    }                                                                                                          \
    void qc_##name##_f32_dequantize_channels_ukernel__scalar(size_t n, const void *x, const float *scales,     \
                                                             const int32_t *zero_points, float *y) {           \
        const ctype *in = (const ctype *)x;                                                                    \
        for (size_t i = 0; i < n; i++) {                                                                       \
            y[i] = qc__dequantize_value(in[i], scales[i], zero_points ? zero_points[i] : 0);                   \
        }                                                                                                      \
    }

QC__DEQUANT_SCALAR(qs8, int8_t)
QC__DEQUANT_SCALAR(qu8, uint8_t)
QC__DEQUANT_SCALAR(qs16, int16_t)
QC__DEQUANT_SCALAR(qu16, uint16_t)
QC__DEQUANT_SCALAR(qs32, int32_t)

int qc_f32_minmax_ukernel__scalar(size_t n, const float *x, float *min_out, float *max_out) {
    return qc__minmax_scalar(n, x, NULL, NULL, min_out, max_out);
}
