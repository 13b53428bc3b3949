/*
 * Entry points of int32 -> int8/uint8 requantization (qcore_kernels.h): the ONNX
 * real-valued form and the TFLite fixed-point form, per tensor or per output channel, with
 * fused bias and clamp. Formulas: docs/ARITHMETIC.md, "Requantization (float, ONNX)" and
 * "TFLite convention"; the scalar definitions are qc__requant_float and
 * qc__multiply_by_quantized_multiplier (requant.h).
 */
#include <math.h>

#include "elementwise.h"

/* Shared argument checks; *lo / *hi are the clamp bounds. */
static qc_status qc__check_requant_args(const int32_t *acc, size_t outer, size_t channels, size_t inner,
                                        const void *multipliers, const int32_t *zero_points, int32_t output_min,
                                        int32_t output_max, int output_dtype, const void *y, size_t *count_out) {
    int32_t qmin = 0;
    int32_t qmax = 0;
    if ((output_dtype != QC_DTYPE_INT8 && output_dtype != QC_DTYPE_UINT8) ||
        qc__dtype_range(output_dtype, &qmin, &qmax)) {
        return QC_E_DTYPE;
    }
    QC__TRY(qc__layout_size(outer, channels, inner, count_out));
    if ((channels > 0 && multipliers == NULL) || (*count_out > 0 && (acc == NULL || y == NULL))) {
        return QC_E_NULL_POINTER;
    }
    if (output_min < qmin || output_max > qmax || output_min > output_max) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (zero_points != NULL) {
        for (size_t c = 0; c < channels; c++) {
            if (zero_points[c] < qmin || zero_points[c] > qmax) {
                return QC_E_ZERO_POINT;
            }
        }
    } else if (qmin > 0) {
        return QC_E_ZERO_POINT;
    }
    return QC_OK;
}

qc_status qc_requantize(const int32_t *acc, size_t outer, size_t channels, size_t inner, const int32_t *bias,
                        const float *multipliers, const int32_t *zero_points, int32_t output_min,
                        int32_t output_max, int output_dtype, void *y, const qc_options *options) {
    size_t count = 0;
    QC__TRY(qc__check_requant_args(acc, outer, channels, inner, multipliers, zero_points, output_min, output_max,
                                   output_dtype, y, &count));
    for (size_t c = 0; c < channels; c++) {
        if (!(isfinite(multipliers[c]) && multipliers[c] > 0.0f)) {
            return QC_E_SCALE;
        }
    }
    const qc__elementwise_kernels *k = NULL;
    QC__TRY(qc__elementwise_resolve(options, &k));
    if (count == 0) {
        return QC_OK;
    }
    uint8_t *out = (uint8_t *)y;
    if (channels == 1) {
        k->requant(count, acc, bias ? bias[0] : 0, multipliers[0], zero_points ? zero_points[0] : 0, output_min,
                   output_max, out);
    } else if (inner == 1) {
        for (size_t o = 0; o < outer; o++) {
            k->requant_channels(channels, acc + o * channels, bias, multipliers, zero_points, output_min, output_max,
                                out + o * channels);
        }
    } else {
        for (size_t o = 0; o < outer; o++) {
            for (size_t c = 0; c < channels; c++) {
                size_t offset = (o * channels + c) * inner;
                k->requant(inner, acc + offset, bias ? bias[c] : 0, multipliers[c], zero_points ? zero_points[c] : 0,
                           output_min, output_max, out + offset);
            }
        }
    }
    return QC_OK;
}

qc_status qc_requantize_fixedpoint(const int32_t *acc, size_t outer, size_t channels, size_t inner,
                                   const int32_t *bias, const int32_t *multipliers, const int32_t *shifts,
                                   const int32_t *zero_points, int32_t output_min, int32_t output_max,
                                   int output_dtype, void *y, const qc_options *options) {
    size_t count = 0;
    QC__TRY(qc__check_requant_args(acc, outer, channels, inner, multipliers, zero_points, output_min, output_max,
                                   output_dtype, y, &count));
    if (channels > 0 && shifts == NULL) {
        return QC_E_NULL_POINTER;
    }
    for (size_t c = 0; c < channels; c++) {
        if (shifts[c] < -31 || shifts[c] > 31) {
            return QC_E_INVALID_ARGUMENT;
        }
    }
    const qc__elementwise_kernels *k = NULL;
    QC__TRY(qc__elementwise_resolve(options, &k));
    if (count == 0) {
        return QC_OK;
    }
    uint8_t *out = (uint8_t *)y;
    if (channels == 1) {
        k->requant_fixed(count, acc, bias ? bias[0] : 0, multipliers[0], shifts[0], zero_points ? zero_points[0] : 0,
                         output_min, output_max, out);
    } else if (inner == 1) {
        for (size_t o = 0; o < outer; o++) {
            k->requant_fixed_channels(channels, acc + o * channels, bias, multipliers, shifts, zero_points, output_min,
                                      output_max, out + o * channels);
        }
    } else {
        for (size_t o = 0; o < outer; o++) {
            for (size_t c = 0; c < channels; c++) {
                size_t offset = (o * channels + c) * inner;
                k->requant_fixed(inner, acc + offset, bias ? bias[c] : 0, multipliers[c], shifts[c],
                                 zero_points ? zero_points[c] : 0, output_min, output_max, out + offset);
            }
        }
    }
    return QC_OK;
}
