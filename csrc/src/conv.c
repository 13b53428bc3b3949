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
#ifndef QC__CONV_CHUNK_BYTES
#define QC__CONV_CHUNK_BYTES (48u * 1024u)
#endif
#define QC__CONV_MIN_ROWS 64u
/* Target bytes of one chunk's int32 accumulators (rows * out_channels * 4): small enough to
 * stay in L2 and to come from the heap rather than a fresh mmap (page faults) per call. */
#ifndef QC__CONV_ACC_BYTES
#define QC__CONV_ACC_BYTES (64u * 1024u)
#endif
/* Groups with fewer input channels gather each row's taps into one run (flat panels). */
#ifndef QC__CONV_FLAT_BELOW
#define QC__CONV_FLAT_BELOW 16u
#endif
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
    const int pooled = out->pool_height > 1 || out->pool_width > 1;
    if (pooled && out->kind != QC_CONV_OUT_REQUANT && out->kind != QC_CONV_OUT_F32_QUANTIZE) {
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

/* The output stage of one chunk: rows [row0, row0 + rows), acc row-major with row length
 * out_channels. work is rows * out_channels floats, qwork as many bytes. */
static qc_status qc__conv_store(const qc__conv_plan *plan, const qc_conv_output *out, size_t row0, size_t rows,
                                const int32_t *acc, float *work, uint8_t *qwork, void *y, int isa) {
    const size_t oc = plan->shape.out_channels;
    switch (out->kind) {
    case QC_CONV_OUT_S32:
        qc__conv_scatter_s32(plan, out->layout, row0, rows, acc, (int32_t *)y);
        return QC_OK;
    case QC_CONV_OUT_REQUANT:
        qc_s32_conv_requant_ukernel__scalar(rows, oc, acc, out->bias_s32, out->multiplier, out->multiplier_per_channel,
                                            out->output_zero_point, out->clamp_min, out->clamp_max, qwork);
        break;
    case QC_CONV_OUT_F32:
        qc_s32_conv_dequant_ukernel__scalar(rows, oc, acc, out->multiplier, out->multiplier_per_channel,
                                            out->bias_f32, work);
        qc__conv_scatter_f32(plan, out->layout, row0, rows, work, (float *)y);
        return QC_OK;
    default: {
        const float *m = out->multiplier;
        int pc = out->multiplier_per_channel;
#if defined(QC__BUILD_AVX2)
        if (isa == QC_ISA_AVX2) {
            qc_s32_conv_quantize_ukernel__avx2(rows, oc, acc, m, pc, out->bias_f32, out->output_scale,
                                               out->output_zero_point, out->clamp_min, out->clamp_max, qwork);
        } else
#endif
        {
            qc_s32_conv_quantize_ukernel__scalar(rows, oc, acc, m, pc, out->bias_f32, out->output_scale,
                                                 out->output_zero_point, out->clamp_min, out->clamp_max, qwork);
        }
        break;
    }
    }
    /* the quantized kinds: qwork holds the chunk's bytes */
    if (plan->pool_height * plan->pool_width > 1) {
        qc__conv_pool_x8(plan, out->layout, out->type == QC_DTYPE_INT8, row0, rows, qwork, (uint8_t *)y);
    } else {
        qc__conv_scatter_x8(plan, out->layout, row0, rows, qwork, (uint8_t *)y);
    }
    return QC_OK;
}

/* Shape fields of the weights, validated. */
static qc_status qc__weights_geometry(const qc_conv2d_shape *shape, size_t *cg, size_t *ng, size_t *taps) {
    if (shape->groups == 0 || shape->channels % shape->groups || shape->out_channels % shape->groups ||
        shape->kernel_height == 0 || shape->kernel_width == 0) {
        return QC_E_SHAPE;
    }
    *cg = shape->channels / shape->groups;
    *ng = shape->out_channels / shape->groups;
    if (qc__mul_size(shape->kernel_height, shape->kernel_width, taps)) {
        return QC_E_OVERFLOW;
    }
    return QC_OK;
}

/* Sizes of the packed buffer's parts. */
static qc_status qc__weights_layout(const qc_conv2d_shape *shape, qc__conv_weights_header *h, size_t *total) {
    size_t cg, ng, taps, k, gemm_size, direct, gemm, flat;
    QC__TRY(qc__weights_geometry(shape, &cg, &ng, &taps));
    size_t cg2 = cg + (cg & 1);
    size_t blocks = (ng + 7) / 8;
    if (qc__mul_size(taps, cg, &k)) {
        return QC_E_OVERFLOW;
    }
    QC__TRY(qc_gemm_packed_size(k, ng, &gemm_size));
    /* direct: groups * blocks * taps * cg2 / 2 pairs of 16 int16 (32 bytes) */
    if (qc__mul_size(shape->groups, blocks, &direct) || qc__mul_size(direct, taps, &direct) ||
        qc__mul_size(direct, cg2 / 2, &direct) || qc__mul_size(direct, 32, &direct) ||
        qc__mul_size(shape->groups, blocks, &flat) || qc__mul_size(flat, (k + 1) / 2, &flat) ||
        qc__mul_size(flat, 32, &flat) ||
        qc__add_size(gemm_size, 63, &gemm_size) || qc__mul_size(shape->groups, gemm_size / 64 * 64, &gemm) ||
        qc__add_size(QC__CONV_HEADER_BYTES, direct, total) || qc__add_size(*total, flat, total) ||
        qc__add_size(*total, gemm, total)) {
        return QC_E_OVERFLOW;
    }
    memset(h, 0, sizeof(*h));
    h->magic = QC__CONV_MAGIC;
    h->version = QC__CONV_VERSION;
    h->out_channels = shape->out_channels;
    h->cg = cg;
    h->kernel_height = shape->kernel_height;
    h->kernel_width = shape->kernel_width;
    h->groups = shape->groups;
    h->cg2 = cg2;
    h->blocks = blocks;
    h->direct_offset = QC__CONV_HEADER_BYTES;
    h->flat_offset = QC__CONV_HEADER_BYTES + direct;
    h->flat_pairs = (k + 1) / 2;
    h->gemm_offset = QC__CONV_HEADER_BYTES + direct + flat;
    h->gemm_stride = gemm_size / 64 * 64;
    return QC_OK;
}

qc_status qc_conv2d_packed_size(const qc_conv2d_shape *shape, size_t *size_out) {
    if (shape == NULL || size_out == NULL) {
        return QC_E_NULL_POINTER;
    }
    qc__conv_weights_header h;
    return qc__weights_layout(shape, &h, size_out);
}

qc_status qc_conv2d_pack_weights(const qc_conv2d_shape *shape, int w_type, const void *w,
                                 const int32_t *w_zero_point, size_t w_zero_point_count, void *packed,
                                 size_t packed_size, const qc_options *options) {
    if (shape == NULL || packed == NULL) {
        return QC_E_NULL_POINTER;
    }
    int isa, threads;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    int32_t lo, hi;
    if (!qc__x8_range(w_type, &lo, &hi)) {
        return QC_E_DTYPE;
    }
    qc__conv_weights_header h;
    size_t total;
    QC__TRY(qc__weights_layout(shape, &h, &total));
    if (packed_size < total || ((uintptr_t)packed % 32) != 0) {
        return QC_E_INVALID_ARGUMENT;
    }
    const size_t oc = shape->out_channels, cg = (size_t)h.cg, taps = shape->kernel_height * shape->kernel_width;
    const size_t ng = oc / shape->groups, k = taps * cg;
    if (w_zero_point_count != 0 && w_zero_point_count != 1 && w_zero_point_count != oc) {
        return QC_E_SHAPE;
    }
    if (w_zero_point_count != 0 && w_zero_point == NULL) {
        return QC_E_NULL_POINTER;
    }
    for (size_t i = 0; i < w_zero_point_count; i++) {
        if (w_zero_point[i] < lo || w_zero_point[i] > hi) {
            return QC_E_ZERO_POINT;
        }
    }
    if (w == NULL && oc * k > 0) {
        return QC_E_NULL_POINTER;
    }
    const uint8_t *wb = (const uint8_t *)w;
    const int is_signed = w_type == QC_DTYPE_INT8;
#define QC__W(o, c, t)                                                                 \
    (is_signed ? (int32_t)(int8_t)wb[((o) * cg + (c)) * taps + (t)]                   \
               : (int32_t)wb[((o) * cg + (c)) * taps + (t)])
#define QC__WZP(o) (w_zero_point_count == 0 ? 0 : w_zero_point[w_zero_point_count == 1 ? 0 : (o)])
    memcpy(packed, &h, sizeof(h));
    int16_t *direct = (int16_t *)((uint8_t *)packed + h.direct_offset);
    const size_t pairs = (size_t)h.cg2 / 2;
    for (size_t g = 0; g < shape->groups; g++) {
        for (size_t j = 0; j < h.blocks; j++) {
            int16_t *panel = direct + ((g * h.blocks + j) * taps) * pairs * 16;
            for (size_t t = 0; t < taps; t++) {
                for (size_t p = 0; p < pairs; p++) {
                    for (size_t c = 0; c < 8; c++) {
                        for (size_t e = 0; e < 2; e++) {
                            size_t col = j * 8 + c, ci = 2 * p + e;
                            int32_t v = 0;
                            if (col < ng && ci < cg) {
                                size_t o = g * ng + col;
                                v = QC__W(o, ci, t) - QC__WZP(o);
                            }
                            panel[(t * pairs + p) * 16 + 2 * c + e] = (int16_t)v;
                        }
                    }
                }
            }
        }
    }
    int16_t *flat = (int16_t *)((uint8_t *)packed + h.flat_offset);
    for (size_t g = 0; g < shape->groups; g++) {
        for (size_t j = 0; j < h.blocks; j++) {
            int16_t *panel = flat + (g * h.blocks + j) * (size_t)h.flat_pairs * 16;
            for (size_t p = 0; p < h.flat_pairs; p++) {
                for (size_t c = 0; c < 8; c++) {
                    for (size_t e = 0; e < 2; e++) {
                        size_t col = j * 8 + c, kk = 2 * p + e;
                        int32_t v = 0;
                        if (col < ng && kk < k) {
                            size_t o = g * ng + col;
                            v = QC__W(o, kk % cg, kk / cg) - QC__WZP(o);
                        }
                        panel[p * 16 + 2 * c + e] = (int16_t)v;
                    }
                }
            }
        }
    }
    /* GEMM buffers (NEON paths): N x K rows in the NHWC im2col order. */
    uint8_t *rows = (uint8_t *)malloc(ng * k > 0 ? ng * k : 1);
    if (rows == NULL) {
        return QC_E_NO_MEMORY;
    }
    qc_status status = QC_OK;
    for (size_t g = 0; g < shape->groups && status == QC_OK; g++) {
        for (size_t col = 0; col < ng; col++) {
            for (size_t t = 0; t < taps; t++) {
                for (size_t c = 0; c < cg; c++) {
                    rows[col * k + t * cg + c] = wb[((g * ng + col) * cg + c) * taps + t];
                }
            }
        }
        const int32_t *zp = w_zero_point_count == oc && oc > 0 ? w_zero_point + g * ng : w_zero_point;
        size_t zp_count = w_zero_point_count == oc ? ng : w_zero_point_count;
        status = qc_gemm_pack_b(k, ng, qc__gemm_type(w_type), QC_GEMM_B_NK, ng * k > 0 ? rows : NULL, k, zp, zp_count,
                                (uint8_t *)packed + h.gemm_offset + g * h.gemm_stride, h.gemm_stride, options);
    }
    free(rows);
#undef QC__W
#undef QC__WZP
    return status;
}

/* Rows [row0, row0 + rows), every group, by the direct microkernels into acc (row length
 * out_channels). x16 holds the centred images from first_image on, each with its padding
 * border (qc__conv_center), so
 * every tap of every output position is inside it: row i's pointer for tap t is the
 * window's top-left pixel plus offsets[t]. ptrs holds taps * QC__CONV_MR pointers. */
static void qc__conv_direct_chunk(const qc__conv_plan *plan, const qc__conv_weights_header *h, const int16_t *x16,
                                  const int16_t *panels, const int16_t *flat_panels, int16_t *flat_rows, size_t row0,
                                  size_t rows, size_t first_image, int isa, const int16_t **ptrs,
                                  const ptrdiff_t *offsets, int32_t *acc) {
    const qc_conv2d_shape *s = &plan->shape;
    const size_t taps = s->kernel_height * s->kernel_width, pairs = (size_t)h->cg2 / 2;
    const size_t pixel = s->groups * (size_t)h->cg2; /* int16 per input pixel */
    const size_t panel = taps * pairs * 16, oc = s->out_channels, ng = plan->ng;
    const size_t padded_width = plan->padded_width, image_size = plan->padded_height * padded_width * pixel;
    const size_t step_h = s->stride_height * padded_width * pixel, step_w = s->stride_width * pixel;
    qc__conv_ukernel_fn k16 = qc_s16_conv_ukernel_6x16__scalar, k8 = qc_s16_conv_ukernel_6x8__scalar;
#if defined(QC__BUILD_AVX2)
    if (isa == QC_ISA_AVX2) {
        k16 = qc_s16_conv_ukernel_6x16__avx2;
        k8 = qc_s16_conv_ukernel_6x8__avx2;
    }
#endif
    /* One group, no column dilation: a kernel row's taps are adjacent pixels, whose int16
     * runs follow each other in x16 as their weights do in the panel (index t * pairs + p),
     * so each kernel row runs as one tap of kernel_width * pairs pairs (the same integer
     * products, fewer pointers and longer inner loops). */
    const int merge_rows = s->groups == 1 && s->dilation_width == 1;
    const size_t kernel_taps = merge_rows ? s->kernel_height : taps;
    const size_t kernel_pairs = merge_rows ? s->kernel_width * pairs : pairs;
    const size_t tap_step = merge_rows ? s->kernel_width : 1;
    /* (n, oh, ow) of the next row, advanced one row at a time. */
    size_t n = row0 / plan->positions, p = row0 % plan->positions;
    size_t oh = p / plan->out_width, ow = p % plan->out_width;
    const int16_t *corners[QC__CONV_MR]; /* each row's window corner (rows past the block: row 0's) */
    for (size_t r = 0; r < rows; r += QC__CONV_MR) {
        size_t block = rows - r < QC__CONV_MR ? rows - r : QC__CONV_MR;
        for (size_t i = 0; i < QC__CONV_MR; i++) {
            if (i >= block) {
                corners[i] = corners[0];
                continue;
            }
            corners[i] = x16 + (n - first_image) * image_size + oh * step_h + ow * step_w;
            if (++ow == plan->out_width) {
                ow = 0;
                if (++oh == plan->out_height) {
                    oh = 0;
                    n++;
                }
            }
        }
        if (flat_rows == NULL) { /* the per-tap kernels read through pointers */
            for (size_t t = 0; t < kernel_taps; t++) {
                for (size_t i = 0; i < QC__CONV_MR; i++) {
                    ptrs[t * QC__CONV_MR + i] = corners[i] + offsets[t * tap_step];
                }
            }
        }
        for (size_t g = 0; g < s->groups; g++) {
            const int16_t *base = panels + g * (size_t)h->blocks * panel;
            int32_t *c = acc + r * oc + g * ng;
            size_t a_offset = g * (size_t)h->cg2;
            size_t j = 0;
            if (flat_rows != NULL) {
                /* gather the rows' taps of group g: k = t * cg + c, padded to even */
                const size_t cg = plan->cg, fk = 2 * (size_t)h->flat_pairs;
                const int16_t *row_ptrs[QC__CONV_MR];
                for (size_t i = 0; i < QC__CONV_MR; i++) {
                    int16_t *dst = flat_rows + i * fk;
                    const int16_t *corner = corners[i] + a_offset;
                    /* fixed-size copies for the common channel counts (a memcpy call costs more) */
                    if (cg == 1) {
                        for (size_t t = 0; t < taps; t++) {
                            dst[t] = corner[offsets[t]];
                        }
                    } else if (cg == 8) {
                        for (size_t t = 0; t < taps; t++) {
                            memcpy(dst + 8 * t, corner + offsets[t], 8 * sizeof(int16_t));
                        }
                    } else if (cg == 16) {
                        for (size_t t = 0; t < taps; t++) {
                            memcpy(dst + 16 * t, corner + offsets[t], 16 * sizeof(int16_t));
                        }
                    } else if (cg == 4) {
                        for (size_t t = 0; t < taps; t++) {
                            memcpy(dst + 4 * t, corner + offsets[t], 4 * sizeof(int16_t));
                        }
                    } else {
                        for (size_t t = 0; t < taps; t++) {
                            const int16_t *src = corner + offsets[t];
                            for (size_t ci = 0; ci < cg; ci++) {
                                dst[t * cg + ci] = src[ci];
                            }
                        }
                    }
                    if (fk != taps * cg) {
                        dst[taps * cg] = 0;
                    }
                    row_ptrs[i] = dst;
                }
                const size_t fpanel = (size_t)h->flat_pairs * 16;
                const int16_t *fbase = flat_panels + g * (size_t)h->blocks * fpanel;
                for (; j + 1 < h->blocks; j += 2) {
                    size_t cols = ng - 8 * j < 16 ? ng - 8 * j : 16;
                    k16(1, (size_t)h->flat_pairs, row_ptrs, 0, fbase + j * fpanel, fbase + (j + 1) * fpanel,
                        c + 8 * j, oc, block, cols);
                }
                if (j < h->blocks) {
                    k8(1, (size_t)h->flat_pairs, row_ptrs, 0, fbase + j * fpanel, NULL, c + 8 * j, oc, block,
                       ng - 8 * j);
                }
                continue;
            }
            for (; j + 1 < h->blocks; j += 2) {
                size_t cols = ng - 8 * j < 16 ? ng - 8 * j : 16;
                k16(kernel_taps, kernel_pairs, ptrs, a_offset, base + j * panel, base + (j + 1) * panel, c + 8 * j, oc,
                    block, cols);
            }
            if (j < h->blocks) {
                k8(kernel_taps, kernel_pairs, ptrs, a_offset, base + j * panel, NULL, c + 8 * j, oc, block,
                   ng - 8 * j);
            }
        }
    }
}

/* dst[i] = x[i] - zero_point as int16 over a run of bytes. Kept out of line: inside the large
 * caller the loop is not vectorised. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static void qc__center_run(const uint8_t *restrict src, int16_t *restrict dst, size_t count, int is_signed,
                           int16_t zero_point) {
    if (is_signed) {
        for (size_t i = 0; i < count; i++) {
            dst[i] = (int16_t)((int16_t)(int8_t)src[i] - zero_point);
        }
    } else {
        for (size_t i = 0; i < count; i++) {
            dst[i] = (int16_t)((int16_t)src[i] - zero_point);
        }
    }
}

/* x16[n][ih][iw][g][c] = x - zero_point (int16) over the padded image (pad_top rows above,
 * pad_left columns left, ...; padding is 0, the centred zero point), channels of each
 * group padded to cg2 with 0. */
static void qc__conv_center(const qc__conv_plan *plan, const qc__conv_weights_header *h, int is_signed,
                            int32_t zero_point, size_t first_image, size_t images, int16_t *x16) {
    const qc_conv2d_shape *s = &plan->shape;
    const size_t c = s->channels, hw = s->height * s->width, cg = plan->cg, cg2 = (size_t)h->cg2;
    const size_t pixel = s->groups * cg2, pw = plan->padded_width, ph = plan->padded_height;
    const size_t image_size = ph * pw * pixel, row_size = pw * pixel;
    /* the same bytes whatever the layout: NHWC with even channels per group, or one channel */
    const int contiguous = cg2 == cg && (plan->layout == QC_CONV_NHWC || c == 1);
    for (size_t n = first_image; n < first_image + images; n++) {
        const uint8_t *img = plan->x + n * hw * c;
        int16_t *dst = x16 + (n - first_image) * image_size;
        memset(dst, 0, s->pad_top * row_size * sizeof(int16_t));
        memset(dst + (s->pad_top + s->height) * row_size, 0, s->pad_bottom * row_size * sizeof(int16_t));
        for (size_t ih = 0; ih < s->height; ih++) {
            int16_t *line = dst + (s->pad_top + ih) * row_size;
            memset(line, 0, s->pad_left * pixel * sizeof(int16_t));
            memset(line + (s->pad_left + s->width) * pixel, 0, s->pad_right * pixel * sizeof(int16_t));
            line += s->pad_left * pixel;
            if (contiguous) {
                qc__center_run(img + ih * s->width * c, line, s->width * c, is_signed, (int16_t)zero_point);
                continue;
            }
            if (cg == 1 && cg2 == 2 && s->groups == 1) {
                /* one channel: (x - zp, 0) pairs */
                const uint8_t *src = img + ih * s->width;
                for (size_t iw = 0; iw < s->width; iw++) {
                    line[2 * iw] = (int16_t)((is_signed ? (int32_t)(int8_t)src[iw] : (int32_t)src[iw]) - zero_point);
                    line[2 * iw + 1] = 0;
                }
                continue;
            }
            for (size_t iw = 0; iw < s->width; iw++) {
                size_t q = ih * s->width + iw;
                for (size_t g = 0; g < s->groups; g++) {
                    int16_t *d = line + iw * pixel + g * cg2;
                    for (size_t ci = 0; ci < cg; ci++) {
                        size_t channel = g * cg + ci;
                        uint8_t v = plan->layout == QC_CONV_NHWC ? img[q * c + channel] : img[channel * hw + q];
                        d[ci] = (int16_t)((is_signed ? (int32_t)(int8_t)v : (int32_t)v) - zero_point);
                    }
                    if (cg2 != cg) {
                        d[cg] = 0;
                    }
                }
            }
        }
    }
}

/* An NHWC copy of an NCHW int8 / uint8 tensor (the GEMM path's im2col reads NHWC). */
static void qc__to_nhwc(const qc_conv2d_shape *s, const uint8_t *x, uint8_t *y) {
    const size_t c = s->channels, hw = s->height * s->width;
    for (size_t n = 0; n < s->batch; n++) {
        for (size_t ci = 0; ci < c; ci++) {
            for (size_t q = 0; q < hw; q++) {
                y[(n * hw + q) * c + ci] = x[(n * c + ci) * hw + q];
            }
        }
    }
}

qc_status qc_conv2d(const qc_conv2d_shape *shape, const qc_conv_input *input, const void *packed_weights,
                    const qc_conv_output *output, void *y, const qc_options *options) {
    if (shape == NULL || input == NULL || packed_weights == NULL || output == NULL) {
        return QC_E_NULL_POINTER;
    }
    int isa, threads;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    qc__conv_plan plan;
    memset(&plan, 0, sizeof(plan));
    plan.shape = *shape;
    qc__conv_weights_header expect, h;
    size_t total, taps;
    QC__TRY(qc__weights_layout(shape, &expect, &total));
    memcpy(&h, packed_weights, sizeof(h));
    if (h.magic != QC__CONV_MAGIC || h.version != QC__CONV_VERSION) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (memcmp(&h, &expect, sizeof(h)) != 0) {
        return QC_E_SHAPE;
    }
    QC__TRY(qc__weights_geometry(shape, &plan.cg, &plan.ng, &taps));
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
    plan.pool_height = output->pool_height > 1 ? output->pool_height : 1;
    plan.pool_width = output->pool_width > 1 ? output->pool_width : 1;
    if (plan.pool_height > plan.out_height || plan.pool_width > plan.out_width) {
        return QC_E_SHAPE;
    }
    plan.pooled_height = plan.out_height / plan.pool_height;
    plan.pooled_width = plan.out_width / plan.pool_width;
    if (qc__add_size(shape->height, shape->pad_top, &plan.padded_height) ||
        qc__add_size(plan.padded_height, shape->pad_bottom, &plan.padded_height) ||
        qc__add_size(shape->width, shape->pad_left, &plan.padded_width) ||
        qc__add_size(plan.padded_width, shape->pad_right, &plan.padded_width)) {
        return QC_E_OVERFLOW;
    }
    size_t in_count, out_count;
    plan.k = taps * plan.cg;
    QC__TRY(qc__count4(shape->batch, shape->channels, shape->height, shape->width, &in_count));
    QC__TRY(qc__count4(shape->batch, shape->out_channels, plan.pooled_height, plan.pooled_width, &out_count));
    if (qc__mul_size(plan.out_height, plan.out_width, &plan.positions) ||
        qc__mul_size(plan.positions, shape->batch, &plan.rows)) {
        return QC_E_OVERFLOW;
    }
    if (out_count == 0) {
        return QC_OK;
    }
    if (input->data == NULL || y == NULL) {
        return QC_E_NULL_POINTER;
    }
    plan.pad_value = (uint8_t)input->zero_point;
    plan.x = (const uint8_t *)input->data;
    const int direct = isa == QC_ISA_SCALAR || isa == QC_ISA_AVX2;
    size_t chunk_images = 0;

    qc_status status = QC_OK;
    uint8_t *quantized = NULL, *nhwc = NULL, *cols = NULL, *qwork = NULL;
    int16_t *x16 = NULL;
    const int16_t **ptrs = NULL;
    ptrdiff_t *offsets = NULL;
    int16_t *flat_rows = NULL;
    int32_t *acc = NULL;
    float *work = NULL;
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
    /* Row chunks: the int32 accumulators and the output stage's buffers stay in cache. */
    size_t chunk = plan.k ? QC__CONV_CHUNK_BYTES / plan.k : QC__CONV_MAX_ROWS;
    size_t acc_rows = QC__CONV_ACC_BYTES / (4 * shape->out_channels);
    chunk = chunk > acc_rows ? acc_rows : chunk;
    chunk = chunk < QC__CONV_MIN_ROWS ? QC__CONV_MIN_ROWS : chunk > QC__CONV_MAX_ROWS ? QC__CONV_MAX_ROWS : chunk;
    if (plan.pool_height * plan.pool_width > 1) {
        /* the fused pool reads whole images: chunks of whole images */
        size_t images = chunk / plan.positions;
        chunk = (images ? images : 1) * plan.positions;
    }
    chunk = chunk > plan.rows ? plan.rows : chunk;
    size_t acc_count = chunk * shape->out_channels;
    acc = (int32_t *)malloc((acc_count ? acc_count : 1) * sizeof(int32_t));
    work = (float *)malloc((acc_count ? acc_count : 1) * sizeof(float));
    qwork = (uint8_t *)malloc(acc_count ? acc_count : 1);
    if (acc == NULL || work == NULL || qwork == NULL) {
        status = QC_E_NO_MEMORY;
        goto done;
    }
    const int16_t *panels = (const int16_t *)((const uint8_t *)packed_weights + h.direct_offset);
    const int16_t *flat_panels = (const int16_t *)((const uint8_t *)packed_weights + h.flat_offset);
    if (direct) {
        /* the images one chunk of rows reaches, centred chunk by chunk */
        size_t x16_count, padded_width = plan.padded_width;
        chunk_images = chunk / plan.positions + 2;
        chunk_images = chunk_images > shape->batch ? shape->batch : chunk_images;
        if (qc__count4(chunk_images, plan.padded_height, padded_width, shape->groups * (size_t)h.cg2, &x16_count) ||
            x16_count > SIZE_MAX / sizeof(int16_t)) {
            status = QC_E_OVERFLOW;
            goto done;
        }
        x16 = (int16_t *)malloc((x16_count ? x16_count : 1) * sizeof(int16_t));
        ptrs = (const int16_t **)malloc((taps ? taps : 1) * QC__CONV_MR * sizeof(*ptrs));
        offsets = (ptrdiff_t *)malloc((taps ? taps : 1) * sizeof(*offsets));
        if (x16 == NULL || ptrs == NULL || offsets == NULL) {
            status = QC_E_NO_MEMORY;
            goto done;
        }
        if (plan.cg < QC__CONV_FLAT_BELOW) {
            flat_rows = (int16_t *)malloc(QC__CONV_MR * 2 * (size_t)h.flat_pairs * sizeof(int16_t) + 1);
            if (flat_rows == NULL) {
                status = QC_E_NO_MEMORY;
                goto done;
            }
        }
        for (size_t kh = 0; kh < shape->kernel_height; kh++) {
            for (size_t kw = 0; kw < shape->kernel_width; kw++) {
                offsets[kh * shape->kernel_width + kw] =
                    (ptrdiff_t)((kh * shape->dilation_height * padded_width + kw * shape->dilation_width) *
                                shape->groups * (size_t)h.cg2);
            }
        }
    } else {
        if (plan.layout == QC_CONV_NCHW && shape->channels > 1) {
            nhwc = (uint8_t *)malloc(in_count ? in_count : 1);
            if (nhwc == NULL) {
                status = QC_E_NO_MEMORY;
                goto done;
            }
            qc__to_nhwc(shape, plan.x, nhwc);
            plan.x = nhwc;
        }
        plan.layout = QC_CONV_NHWC;
        cols = (uint8_t *)malloc(chunk * plan.k > 0 ? chunk * plan.k : 1);
        if (cols == NULL) {
            status = QC_E_NO_MEMORY;
            goto done;
        }
    }
    int gemm_type = qc__gemm_type(qtype);
    int32_t a_zp = input->zero_point;
    for (size_t row0 = 0; row0 < plan.rows && status == QC_OK; row0 += chunk) {
        size_t rows = plan.rows - row0 < chunk ? plan.rows - row0 : chunk;
        if (direct) {
            size_t first_image = row0 / plan.positions, last_image = (row0 + rows - 1) / plan.positions;
            qc__conv_center(&plan, &h, qtype == QC_DTYPE_INT8, input->zero_point, first_image,
                            last_image - first_image + 1, x16);
            qc__conv_direct_chunk(&plan, &h, x16, panels, flat_panels, flat_rows, row0, rows, first_image, isa, ptrs,
                                  offsets, acc);
        } else {
            for (size_t g = 0; g < shape->groups && status == QC_OK; g++) {
                qc__conv_im2col(&plan, row0, rows, g, cols);
                status = qc_gemm_packed_s32(rows, gemm_type, cols, plan.k, &a_zp, 1,
                                            (const uint8_t *)packed_weights + h.gemm_offset + g * h.gemm_stride,
                                            acc + g * plan.ng, shape->out_channels, options);
            }
        }
        if (status == QC_OK) {
            status = qc__conv_store(&plan, output, row0, rows, acc, work, qwork, y, isa);
        }
    }
done:
    free(quantized);
    free(nhwc);
    free(cols);
    free(x16);
    free(ptrs);
    free(offsets);
    free(flat_rows);
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
