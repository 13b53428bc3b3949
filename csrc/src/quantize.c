/*
 * Entry points of quantize, dequantize and dynamic quantize (qcore_kernels.h): argument
 * checks, then the [outer, channels, inner] walk over the ISA's row or channel kernels.
 * Formulas: docs/ARITHMETIC.md, "QuantizeLinear", "DequantizeLinear",
 * "DynamicQuantizeLinear".
 */
#include <math.h>

#include "elementwise.h"

static qc_status qc__check_scales(const float *scales, size_t channels) {
    for (size_t c = 0; c < channels; c++) {
        if (!(isfinite(scales[c]) && scales[c] > 0.0f)) {
            return QC_E_SCALE;
        }
    }
    return QC_OK;
}

static qc_status qc__check_zero_points(const int32_t *zero_points, size_t channels, int32_t qmin, int32_t qmax) {
    if (zero_points == NULL) {
        return (qmin <= 0 && 0 <= qmax) ? QC_OK : QC_E_ZERO_POINT;
    }
    for (size_t c = 0; c < channels; c++) {
        if (zero_points[c] < qmin || zero_points[c] > qmax) {
            return QC_E_ZERO_POINT;
        }
    }
    return QC_OK;
}

qc_status qc_quantize_f32(const float *x, size_t outer, size_t channels, size_t inner, const float *scales,
                          const int32_t *zero_points, int output_dtype, void *y, const qc_options *options) {
    int32_t qmin = 0;
    int32_t qmax = 0;
    if (output_dtype == QC_DTYPE_INT32 || qc__dtype_range(output_dtype, &qmin, &qmax)) {
        return QC_E_DTYPE;
    }
    size_t count = 0;
    QC__TRY(qc__layout_size(outer, channels, inner, &count));
    if (channels > 0 && scales == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (count > 0 && (x == NULL || y == NULL)) {
        return QC_E_NULL_POINTER;
    }
    QC__TRY(qc__check_scales(scales, channels));
    QC__TRY(qc__check_zero_points(zero_points, channels, qmin, qmax));
    const qc__elementwise_kernels *k = NULL;
    QC__TRY(qc__elementwise_resolve(options, &k));
    if (count == 0) {
        return QC_OK;
    }

    const int wide = output_dtype == QC_DTYPE_INT16 || output_dtype == QC_DTYPE_UINT16;
    const size_t elem = wide ? 2 : 1;
    qc__quantize_fn row = wide ? k->quantize_q16 : k->quantize_q8;
    qc__quantize_channels_fn chan = wide ? k->quantize_channels_q16 : k->quantize_channels_q8;
    unsigned char *out = (unsigned char *)y;
    int nan_seen = 0;

    if (channels == 1) {
        /* One parameter set: the whole tensor is one contiguous run. */
        nan_seen = row(count, x, scales[0], zero_points ? zero_points[0] : 0, qmin, qmax, out);
    } else if (inner == 1) {
        for (size_t o = 0; o < outer && !nan_seen; o++) {
            nan_seen = chan(channels, x + o * channels, scales, zero_points, qmin, qmax, out + o * channels * elem);
        }
    } else {
        for (size_t o = 0; o < outer && !nan_seen; o++) {
            for (size_t c = 0; c < channels && !nan_seen; c++) {
                size_t offset = (o * channels + c) * inner;
                nan_seen = row(inner, x + offset, scales[c], zero_points ? zero_points[c] : 0, qmin, qmax,
                               out + offset * elem);
            }
        }
    }
    return nan_seen ? QC_E_NONFINITE : QC_OK;
}

static size_t qc__dtype_size(int dtype) {
    switch (dtype) {
    case QC_DTYPE_INT8:
    case QC_DTYPE_UINT8: return 1;
    case QC_DTYPE_INT16:
    case QC_DTYPE_UINT16: return 2;
    default: return 4;
    }
}

qc_status qc_dequantize_f32(const void *x, int input_dtype, size_t outer, size_t channels, size_t inner,
                            const float *scales, const int32_t *zero_points, float *y, const qc_options *options) {
    int32_t qmin = 0;
    int32_t qmax = 0;
    if (input_dtype < 0 || input_dtype >= QC__DEQUANT_TYPES || qc__dtype_range(input_dtype, &qmin, &qmax)) {
        return QC_E_DTYPE;
    }
    size_t count = 0;
    QC__TRY(qc__layout_size(outer, channels, inner, &count));
    if (channels > 0 && scales == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (count > 0 && (x == NULL || y == NULL)) {
        return QC_E_NULL_POINTER;
    }
    QC__TRY(qc__check_scales(scales, channels));
    QC__TRY(qc__check_zero_points(zero_points, channels, qmin, qmax));
    const qc__elementwise_kernels *k = NULL;
    QC__TRY(qc__elementwise_resolve(options, &k));
    if (count == 0) {
        return QC_OK;
    }

    const size_t elem = qc__dtype_size(input_dtype);
    const unsigned char *in = (const unsigned char *)x;
    qc__dequantize_fn row = k->dequantize[input_dtype];
    if (channels == 1) {
        row(count, in, scales[0], zero_points ? zero_points[0] : 0, y);
    } else if (inner == 1) {
        qc__dequantize_channels_fn chan = k->dequantize_channels[input_dtype];
        for (size_t o = 0; o < outer; o++) {
            chan(channels, in + o * channels * elem, scales, zero_points, y + o * channels);
        }
    } else {
        for (size_t o = 0; o < outer; o++) {
            for (size_t c = 0; c < channels; c++) {
                size_t offset = (o * channels + c) * inner;
                row(inner, in + offset * elem, scales[c], zero_points ? zero_points[c] : 0, y + offset);
            }
        }
    }
    return QC_OK;
}

qc_status qc_dynamic_quantize_u8(const float *x, size_t n, uint8_t *y, float *scale_out, uint8_t *zero_point_out,
                                 const qc_options *options) {
    if (scale_out == NULL || zero_point_out == NULL || x == NULL || y == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (n == 0) {
        return QC_E_SHAPE; /* no data, no range */
    }
    const qc__elementwise_kernels *k = NULL;
    QC__TRY(qc__elementwise_resolve(options, &k));
    float xmin = 0.0f;
    float xmax = 0.0f;
    if (k->minmax(n, x, &xmin, &xmax)) {
        return QC_E_NONFINITE;
    }
    float scale = 1.0f;
    int32_t zero_point = 0;
    QC__TRY(qc__dynamic_u8_params(xmin, xmax, &scale, &zero_point));
    *scale_out = scale;
    *zero_point_out = (uint8_t)zero_point;
    return k->quantize_q8(n, x, scale, zero_point, 0, 255, y) ? QC_E_NONFINITE : QC_OK;
}
