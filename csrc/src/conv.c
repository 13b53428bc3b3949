/*
 * 2-D int8 convolution (qcore_conv.h): validation, im2col in row chunks, the packed GEMM
 * of qcore_gemm.h per chunk and group, and the output stages; and int8 max pooling.
 *
 * Design (docs/KERNELS.md, "Convolution"): rows of the im2col matrix are output positions
 * (n, oh, ow); a chunk of rows is unfolded into a small buffer (about 48 KB, so it stays
 * in L1/L2 while the GEMM packs it), multiplied by each group's packed weights into an
 * int32 chunk, and the output stage turns that chunk into the output type and layout.
 * Every value computed here is exact integer arithmetic or one IEEE float32 operation per
 * step (no FMA: -ffp-contract=off), so the result does not depend on the ISA: the GEMM and
 * the quantize kernel it calls are bit-identical on every path (their own tests), and the
 * loops here are plain C.
 *
 * An NHWC input with a 1x1 kernel, stride 1 and no padding needs no unfolding: the GEMM
 * reads the input rows in place (strided per group). That is also how a linear layer runs
 * through this entry point (height = width = 1).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv_internal.h"
#include "internal.h"
#include "requant.h"

/* Target bytes of one unfolded chunk (rows * K). */
#define QC__CONV_CHUNK_BYTES (48u * 1024u)
#define QC__CONV_MIN_ROWS 64u
#define QC__CONV_MAX_ROWS 4096u

static int qc__x8_range(int type, int32_t *lo, int32_t *hi) {
    if (type == QC_DTYPE_INT8) {
        *lo = -128;
        *hi = 127;
        return 1;
    }
    if (type == QC_DTYPE_UINT8) {
        *lo = 0;
        *hi = 255;
        return 1;
    }
    return 0;
}

static int qc__gemm_type(int type) { return type == QC_DTYPE_INT8 ? QC_GEMM_S8 : QC_GEMM_U8; }

qc_status qc_conv2d_output_size(const qc_conv2d_shape *shape, size_t *out_height, size_t *out_width) {
    if (shape == NULL || out_height == NULL || out_width == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (shape->kernel_height == 0 || shape->kernel_width == 0 || shape->stride_height == 0 ||
        shape->stride_width == 0 || shape->dilation_height == 0 || shape->dilation_width == 0) {
        return QC_E_SHAPE;
    }
    size_t span_h, span_w, size_h, size_w;
    if (qc__mul_size(shape->kernel_height - 1, shape->dilation_height, &span_h) ||
        qc__mul_size(shape->kernel_width - 1, shape->dilation_width, &span_w) ||
        qc__add_size(shape->height, shape->pad_top, &size_h) || qc__add_size(size_h, shape->pad_bottom, &size_h) ||
        qc__add_size(shape->width, shape->pad_left, &size_w) || qc__add_size(size_w, shape->pad_right, &size_w)) {
        return QC_E_OVERFLOW;
    }
    span_h += 1;
    span_w += 1;
    if (size_h < span_h || size_w < span_w) {
        return QC_E_SHAPE;
    }
    *out_height = (size_h - span_h) / shape->stride_height + 1;
    *out_width = (size_w - span_w) / shape->stride_width + 1;
    return QC_OK;
}

/* Element count of a [batch, channels, height, width] tensor, overflow-checked. */
static qc_status qc__count4(size_t a, size_t b, size_t c, size_t d, size_t *out) {
    size_t t;
    if (qc__mul_size(a, b, &t) || qc__mul_size(t, c, &t) || qc__mul_size(t, d, &t)) {
        return QC_E_OVERFLOW;
    }
    *out = t;
    return QC_OK;
}

static qc_status qc__check_output(const qc_conv2d_shape *shape, const qc_conv_output *out) {
    if (out->layout != QC_CONV_NCHW && out->layout != QC_CONV_NHWC) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (out->kind < QC_CONV_OUT_S32 || out->kind > QC_CONV_OUT_F32_QUANTIZE) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (out->kind == QC_CONV_OUT_S32) {
        return QC_OK;
    }
    if (out->multiplier == NULL) {
        return QC_E_NULL_POINTER;
    }
    size_t count = out->multiplier_per_channel ? shape->out_channels : 1;
    for (size_t i = 0; i < count; i++) {
        float m = out->multiplier[i];
        if (!(m >= 0.0f) || !isfinite(m)) {
            return QC_E_SCALE;
        }
    }
    if (out->kind == QC_CONV_OUT_F32) {
        return QC_OK;
    }
    int32_t lo, hi;
    if (!qc__x8_range(out->type, &lo, &hi)) {
        return QC_E_DTYPE;
    }
    if (out->output_zero_point < lo || out->output_zero_point > hi) {
        return QC_E_ZERO_POINT;
    }
    if (out->clamp_min < lo || out->clamp_max > hi || out->clamp_min > out->clamp_max) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (out->kind == QC_CONV_OUT_F32_QUANTIZE && !(out->output_scale > 0.0f && isfinite(out->output_scale))) {
        return QC_E_SCALE;
    }
    return QC_OK;
}

/* The output stage of one chunk: rows [row0, row0 + rows) of group g, acc row-major with
 * row length ng. work is rows * ng floats (F32_QUANTIZE), qwork rows * ng bytes. */
static qc_status qc__conv_store(const qc__conv_plan *plan, const qc_conv_output *out, size_t row0, size_t rows,
                                size_t g, const int32_t *acc, float *work, uint8_t *qwork, void *y,
                                const qc_options *options) {
    const size_t ng = plan->ng;
    const size_t oc0 = g * ng;
    const size_t total = rows * ng;
    switch (out->kind) {
    case QC_CONV_OUT_S32:
        qc__conv_scatter_s32(plan, out->layout, row0, rows, oc0, acc, (int32_t *)y);
        return QC_OK;
    case QC_CONV_OUT_REQUANT:
        qc_s32_conv_requant_ukernel__scalar(rows, ng, acc, out->bias_s32 ? out->bias_s32 + oc0 : NULL,
                                            out->multiplier + (out->multiplier_per_channel ? oc0 : 0),
                                            out->multiplier_per_channel, out->output_zero_point, out->clamp_min,
                                            out->clamp_max, qwork);
        qc__conv_scatter_x8(plan, out->layout, row0, rows, oc0, qwork, (uint8_t *)y);
        return QC_OK;
    case QC_CONV_OUT_F32:
        qc_s32_conv_dequant_ukernel__scalar(rows, ng, acc, out->multiplier + (out->multiplier_per_channel ? oc0 : 0),
                                            out->multiplier_per_channel, out->bias_f32 ? out->bias_f32 + oc0 : NULL,
                                            work);
        qc__conv_scatter_f32(plan, out->layout, row0, rows, oc0, work, (float *)y);
        return QC_OK;
    default: {
        qc_s32_conv_dequant_ukernel__scalar(rows, ng, acc, out->multiplier + (out->multiplier_per_channel ? oc0 : 0),
                                            out->multiplier_per_channel, out->bias_f32 ? out->bias_f32 + oc0 : NULL,
                                            work);
        float scale = out->output_scale;
        int32_t zp = out->output_zero_point;
        QC__TRY(qc_quantize_f32(work, 1, 1, total, &scale, &zp, out->type, qwork, options));
        int32_t lo = 0, hi = 0;
        qc__x8_range(out->type, &lo, &hi);
        if (out->clamp_min > lo || out->clamp_max < hi) {
            qc_x8_clamp_ukernel__scalar(total, out->type == QC_DTYPE_INT8, out->clamp_min, out->clamp_max, qwork);
        }
        qc__conv_scatter_x8(plan, out->layout, row0, rows, oc0, qwork, (uint8_t *)y);
        return QC_OK;
    }
    }
}

qc_status qc_conv2d(const qc_conv2d_shape *shape, const qc_conv_input *input, const void *const *packed_weights,
                    const qc_conv_output *output, void *y, const qc_options *options) {
    if (shape == NULL || input == NULL || packed_weights == NULL || output == NULL) {
        return QC_E_NULL_POINTER;
    }
    int isa, threads;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    qc__conv_plan plan;
    memset(&plan, 0, sizeof(plan));
    plan.shape = *shape;
    if (shape->groups == 0 || shape->channels % shape->groups || shape->out_channels % shape->groups) {
        return QC_E_SHAPE;
    }
    QC__TRY(qc_conv2d_output_size(shape, &plan.out_height, &plan.out_width));
    if (input->layout != QC_CONV_NCHW && input->layout != QC_CONV_NHWC) {
        return QC_E_INVALID_ARGUMENT;
    }
    int qtype = input->type == QC_DTYPE_FLOAT32 ? input->quantized_type : input->type;
    int32_t lo, hi;
    if (!qc__x8_range(qtype, &lo, &hi)) {
        return QC_E_DTYPE;
    }
    if (input->zero_point < lo || input->zero_point > hi) {
        return QC_E_ZERO_POINT;
    }
    if (input->type == QC_DTYPE_FLOAT32 && !(input->scale > 0.0f && isfinite(input->scale))) {
        return QC_E_SCALE;
    }
    QC__TRY(qc__check_output(shape, output));
    plan.layout = input->layout;
    plan.cg = shape->channels / shape->groups;
    plan.ng = shape->out_channels / shape->groups;
    size_t taps, in_count, out_count;
    if (qc__mul_size(shape->kernel_height, shape->kernel_width, &taps) || qc__mul_size(taps, plan.cg, &plan.k)) {
        return QC_E_OVERFLOW;
    }
    QC__TRY(qc__count4(shape->batch, shape->channels, shape->height, shape->width, &in_count));
    QC__TRY(qc__count4(shape->batch, shape->out_channels, plan.out_height, plan.out_width, &out_count));
    if (qc__mul_size(plan.out_height, plan.out_width, &plan.positions) ||
        qc__mul_size(plan.positions, shape->batch, &plan.rows)) {
        return QC_E_OVERFLOW;
    }
    for (size_t g = 0; g < shape->groups; g++) {
        size_t pk, pn;
        if (packed_weights[g] == NULL) {
            return QC_E_NULL_POINTER;
        }
        QC__TRY(qc_gemm_packed_dims(packed_weights[g], &pk, &pn));
        if (pk != plan.k || pn != plan.ng) {
            return QC_E_SHAPE;
        }
    }
    if (out_count == 0) {
        return QC_OK;
    }
    if (input->data == NULL || y == NULL) {
        return QC_E_NULL_POINTER;
    }
    plan.pad_value = (uint8_t)input->zero_point;
    plan.x = (const uint8_t *)input->data;

    qc_status status = QC_OK;
    uint8_t *quantized = NULL;
    uint8_t *cols = NULL;
    int32_t *acc = NULL;
    float *work = NULL;
    uint8_t *qwork = NULL;
    if (input->type == QC_DTYPE_FLOAT32 && in_count > 0) {
        quantized = (uint8_t *)malloc(in_count);
        if (quantized == NULL) {
            return QC_E_NO_MEMORY;
        }
        float scale = input->scale;
        int32_t zp = input->zero_point;
        status = qc_quantize_f32((const float *)input->data, 1, 1, in_count, &scale, &zp, qtype, quantized, options);
        if (status != QC_OK) {
            free(quantized);
            return status;
        }
        plan.x = quantized;
    }

    /* Direct: the GEMM reads NHWC rows in place. */
    int direct = plan.layout == QC_CONV_NHWC && shape->kernel_height == 1 && shape->kernel_width == 1 &&
                 shape->stride_height == 1 && shape->stride_width == 1 && shape->pad_top == 0 &&
                 shape->pad_left == 0 && shape->pad_bottom == 0 && shape->pad_right == 0;
    size_t chunk = plan.k ? QC__CONV_CHUNK_BYTES / plan.k : QC__CONV_MAX_ROWS;
    if (chunk < QC__CONV_MIN_ROWS) {
        chunk = QC__CONV_MIN_ROWS;
    }
    if (chunk > QC__CONV_MAX_ROWS) {
        chunk = QC__CONV_MAX_ROWS;
    }
    if (chunk > plan.rows) {
        chunk = plan.rows;
    }
    size_t acc_count = chunk * plan.ng;
    acc = (int32_t *)malloc((acc_count ? acc_count : 1) * sizeof(int32_t));
    work = (float *)malloc((acc_count ? acc_count : 1) * sizeof(float));
    qwork = (uint8_t *)malloc(acc_count ? acc_count : 1);
    if (!direct) {
        cols = (uint8_t *)malloc(chunk * plan.k > 0 ? chunk * plan.k : 1);
    }
    if (acc == NULL || work == NULL || qwork == NULL || (!direct && cols == NULL)) {
        status = QC_E_NO_MEMORY;
        goto done;
    }
    int gemm_type = qc__gemm_type(qtype);
    int32_t a_zp = input->zero_point;
    for (size_t row0 = 0; row0 < plan.rows && status == QC_OK; row0 += chunk) {
        size_t rows = plan.rows - row0 < chunk ? plan.rows - row0 : chunk;
        for (size_t g = 0; g < shape->groups; g++) {
            const uint8_t *a;
            size_t a_stride;
            if (direct) {
                a = plan.x + row0 * shape->channels + g * plan.cg;
                a_stride = shape->channels;
            } else {
                qc__conv_im2col(&plan, row0, rows, g, cols);
                a = cols;
                a_stride = plan.k;
            }
            status = qc_gemm_packed_s32(rows, gemm_type, a, a_stride, &a_zp, 1, packed_weights[g], acc, plan.ng,
                                        options);
            if (status != QC_OK) {
                break;
            }
            status = qc__conv_store(&plan, output, row0, rows, g, acc, work, qwork, y, options);
            if (status != QC_OK) {
                break;
            }
        }
    }
done:
    free(quantized);
    free(cols);
    free(acc);
    free(work);
    free(qwork);
    return status;
}

qc_status qc_maxpool2d_x8(const qc_conv2d_shape *shape, int type, int layout, const void *x, void *y,
                          const qc_options *options) {
    if (shape == NULL) {
        return QC_E_NULL_POINTER;
    }
    int isa, threads;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    int32_t lo, hi;
    if (!qc__x8_range(type, &lo, &hi)) {
        return QC_E_DTYPE;
    }
    if (layout != QC_CONV_NCHW && layout != QC_CONV_NHWC) {
        return QC_E_INVALID_ARGUMENT;
    }
    qc__conv_plan plan;
    memset(&plan, 0, sizeof(plan));
    plan.shape = *shape;
    plan.layout = layout;
    QC__TRY(qc_conv2d_output_size(shape, &plan.out_height, &plan.out_width));
    size_t in_count, out_count;
    QC__TRY(qc__count4(shape->batch, shape->channels, shape->height, shape->width, &in_count));
    QC__TRY(qc__count4(shape->batch, shape->channels, plan.out_height, plan.out_width, &out_count));
    if (out_count == 0) {
        return QC_OK;
    }
    if (x == NULL || y == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (type == QC_DTYPE_INT8) {
        qc_s8_maxpool_ukernel__scalar(&plan, (const int8_t *)x, (int8_t *)y);
    } else {
        qc_u8_maxpool_ukernel__scalar(&plan, (const uint8_t *)x, (uint8_t *)y);
    }
    return QC_OK;
}
