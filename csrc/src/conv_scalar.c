/*
 * Portable loops of the convolution and pooling (conv.c): im2col, the output stages and
 * max pooling. Plain C; GCC vectorises the channel loops on its own. Every value is an
 * exact copy, an integer max, or the float32 steps of the formulas in qcore_conv.h.
 */
#include <math.h>
#include <string.h>

#include "conv_internal.h"
#include "internal.h"
#include "requant.h"

void qc__conv_im2col(const qc__conv_plan *plan, size_t row0, size_t rows, size_t g, uint8_t *cols) {
    const qc_conv2d_shape *s = &plan->shape;
    const size_t kh_n = s->kernel_height, kw_n = s->kernel_width;
    const size_t cg = plan->cg, c = s->channels;
    const size_t h = s->height, w = s->width;
    const uint8_t pad = plan->pad_value;
    for (size_t r = 0; r < rows; r++) {
        size_t row = row0 + r;
        size_t n = row / plan->positions;
        size_t p = row % plan->positions;
        size_t oh = p / plan->out_width, ow = p % plan->out_width;
        /* Input coordinates may be negative (padding): computed in signed arithmetic. */
        ptrdiff_t ih0 = (ptrdiff_t)(oh * s->stride_height) - (ptrdiff_t)s->pad_top;
        ptrdiff_t iw0 = (ptrdiff_t)(ow * s->stride_width) - (ptrdiff_t)s->pad_left;
        uint8_t *dst = cols + r * plan->k;
        const uint8_t *image = plan->x + n * h * w * c + g * cg;
        for (size_t kh = 0; kh < kh_n; kh++) {
            ptrdiff_t ih = ih0 + (ptrdiff_t)(kh * s->dilation_height);
            for (size_t kw = 0; kw < kw_n; kw++) {
                ptrdiff_t iw = iw0 + (ptrdiff_t)(kw * s->dilation_width);
                if (ih >= 0 && (size_t)ih < h && iw >= 0 && (size_t)iw < w) {
                    memcpy(dst, image + ((size_t)ih * w + (size_t)iw) * c, cg);
                } else {
                    memset(dst, pad, cg);
                }
                dst += cg;
            }
        }
    }
}

/* The direct microkernels' scalar twins: the same sums in uint32 (wrapping) arithmetic. */
static void qc__conv_ukernel_scalar(size_t nr, size_t taps, size_t pairs, const int16_t *const *ptrs,
                                    size_t a_offset, const int16_t *w0, const int16_t *w1, int32_t *c,
                                    size_t c_stride, size_t rows, size_t cols) {
    uint32_t acc[QC__CONV_MR][16];
    memset(acc, 0, sizeof(acc));
    for (size_t t = 0; t < taps; t++) {
        for (size_t p = 0; p < pairs; p++) {
            const int16_t *b0 = w0 + (t * pairs + p) * 16;
            const int16_t *b1 = nr > 8 ? w1 + (t * pairs + p) * 16 : NULL;
            for (size_t i = 0; i < QC__CONV_MR; i++) {
                const int16_t *a = ptrs[t * QC__CONV_MR + i] + a_offset + 2 * p;
                int32_t a0 = a[0], a1 = a[1];
                for (size_t j = 0; j < 8; j++) {
                    acc[i][j] += (uint32_t)(a0 * b0[2 * j] + a1 * b0[2 * j + 1]);
                }
                if (b1 != NULL) {
                    for (size_t j = 0; j < 8; j++) {
                        acc[i][8 + j] += (uint32_t)(a0 * b1[2 * j] + a1 * b1[2 * j + 1]);
                    }
                }
            }
        }
    }
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < cols; j++) {
            c[i * c_stride + j] = (int32_t)acc[i][j];
        }
    }
}

void qc_s16_conv_ukernel_6x16__scalar(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
                                      const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows,
                                      size_t cols) {
    qc__conv_ukernel_scalar(16, taps, pairs, ptrs, a_offset, w0, w1, c, c_stride, rows, cols);
}

void qc_s16_conv_ukernel_6x8__scalar(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
                                     const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows,
                                     size_t cols) {
    qc__conv_ukernel_scalar(8, taps, pairs, ptrs, a_offset, w0, w1, c, c_stride, rows, cols);
}

#define QC__SCATTER(name, type)                                                                             \
    void name(const qc__conv_plan *plan, int layout, size_t row0, size_t rows, const type *chunk, type *y) {   \
        const size_t oc = plan->shape.out_channels, positions = plan->positions;                            \
        if (layout == QC_CONV_NHWC) {                                                                       \
            memcpy(y + row0 * oc, chunk, rows * oc * sizeof(type));                                         \
            return;                                                                                         \
        }                                                                                                   \
        size_t n = row0 / positions, p = row0 % positions;                                                  \
        for (size_t r = 0; r < rows; r++) {                                                                 \
            type *base = y + n * oc * positions + p;                                                        \
            const type *src = chunk + r * oc;                                                               \
            for (size_t j = 0; j < oc; j++) {                                                               \
                base[j * positions] = src[j];                                                               \
            }                                                                                               \
            if (++p == positions) {                                                                         \
                p = 0;                                                                                      \
                n++;                                                                                        \
            }                                                                                               \
        }                                                                                                   \
    }

QC__SCATTER(qc__conv_scatter_s32, int32_t)
QC__SCATTER(qc__conv_scatter_f32, float)
QC__SCATTER(qc__conv_scatter_x8, uint8_t)

void qc_s32_conv_dequant_ukernel__scalar(size_t rows, size_t n, const int32_t *acc, const float *multiplier,
                                         int per_channel, const float *bias, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * n;
        float *out = y + r * n;
        if (per_channel) {
            for (size_t j = 0; j < n; j++) {
                out[j] = (float)a[j] * multiplier[j];
            }
        } else {
            const float m = multiplier[0];
            for (size_t j = 0; j < n; j++) {
                out[j] = (float)a[j] * m;
            }
        }
        if (bias != NULL) {
            for (size_t j = 0; j < n; j++) {
                out[j] = out[j] + bias[j];
            }
        }
    }
}

void qc_s32_conv_requant_ukernel__scalar(size_t rows, size_t n, const int32_t *acc, const int32_t *bias,
                                         const float *multiplier, int per_channel, int32_t zero_point, int32_t lo,
                                         int32_t hi, uint8_t *y) {
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < n; j++) {
            uint32_t a = (uint32_t)acc[r * n + j];
            if (bias != NULL) {
                a += (uint32_t)bias[j];
            }
            int32_t q = qc__requant_float((int32_t)a, multiplier[per_channel ? j : 0], zero_point, lo, hi);
            y[r * n + j] = (uint8_t)q;
        }
    }
}

void qc_s32_conv_quantize_ukernel__scalar(size_t rows, size_t n, const int32_t *acc, const float *multiplier,
                                          int per_channel, const float *bias, float scale, int32_t zero_point,
                                          int32_t lo, int32_t hi, uint8_t *y) {
    const float qlo = (float)(lo - zero_point), qhi = (float)(hi - zero_point);
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < n; j++) {
            float f = (float)acc[r * n + j] * multiplier[per_channel ? j : 0];
            if (bias != NULL) {
                f = f + bias[j];
            }
            float q = nearbyintf(f / scale);
            q = q < qlo ? qlo : q;
            q = q > qhi ? qhi : q;
            y[r * n + j] = (uint8_t)((int32_t)q + zero_point);
        }
    }
}

/* Max pooling: NHWC takes the max of whole channel runs per tap (vectorised by the
 * compiler); NCHW walks each plane. Taps outside the input are skipped; the running max
 * starts at the type's minimum. */
#define QC__MAXPOOL(name, type, type_min)                                                                     \
    void name(const qc__conv_plan *plan, const type *x, type *y) {                                           \
        const qc_conv2d_shape *s = &plan->shape;                                                             \
        const size_t c = s->channels, h = s->height, w = s->width;                                           \
        const size_t oh_n = plan->out_height, ow_n = plan->out_width;                                        \
        for (size_t n = 0; n < s->batch; n++) {                                                              \
            for (size_t oh = 0; oh < oh_n; oh++) {                                                           \
                ptrdiff_t ih0 = (ptrdiff_t)(oh * s->stride_height) - (ptrdiff_t)s->pad_top;                   \
                for (size_t ow = 0; ow < ow_n; ow++) {                                                       \
                    ptrdiff_t iw0 = (ptrdiff_t)(ow * s->stride_width) - (ptrdiff_t)s->pad_left;               \
                    if (plan->layout == QC_CONV_NHWC) {                                                      \
                        type *out = y + ((n * oh_n + oh) * ow_n + ow) * c;                                   \
                        for (size_t ci = 0; ci < c; ci++) {                                                  \
                            out[ci] = type_min;                                                              \
                        }                                                                                    \
                        for (size_t kh = 0; kh < s->kernel_height; kh++) {                                   \
                            ptrdiff_t ih = ih0 + (ptrdiff_t)(kh * s->dilation_height);                       \
                            if (ih < 0 || (size_t)ih >= h) {                                                 \
                                continue;                                                                    \
                            }                                                                                \
                            for (size_t kw = 0; kw < s->kernel_width; kw++) {                                \
                                ptrdiff_t iw = iw0 + (ptrdiff_t)(kw * s->dilation_width);                    \
                                if (iw < 0 || (size_t)iw >= w) {                                             \
                                    continue;                                                                \
                                }                                                                            \
                                const type *in = x + ((n * h + (size_t)ih) * w + (size_t)iw) * c;            \
                                for (size_t ci = 0; ci < c; ci++) {                                          \
                                    out[ci] = in[ci] > out[ci] ? in[ci] : out[ci];                           \
                                }                                                                            \
                            }                                                                                \
                        }                                                                                    \
                    } else {                                                                                 \
                        for (size_t ci = 0; ci < c; ci++) {                                                  \
                            const type *plane = x + (n * c + ci) * h * w;                                    \
                            type best = type_min;                                                            \
                            for (size_t kh = 0; kh < s->kernel_height; kh++) {                               \
                                ptrdiff_t ih = ih0 + (ptrdiff_t)(kh * s->dilation_height);                   \
                                if (ih < 0 || (size_t)ih >= h) {                                             \
                                    continue;                                                                \
                                }                                                                            \
                                for (size_t kw = 0; kw < s->kernel_width; kw++) {                            \
                                    ptrdiff_t iw = iw0 + (ptrdiff_t)(kw * s->dilation_width);                \
                                    if (iw >= 0 && (size_t)iw < w) {                                         \
                                        type v = plane[(size_t)ih * w + (size_t)iw];                         \
                                        best = v > best ? v : best;                                          \
                                    }                                                                        \
                                }                                                                            \
                            }                                                                                \
                            y[((n * c + ci) * oh_n + oh) * ow_n + ow] = best;                                \
                        }                                                                                    \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

QC__MAXPOOL(qc_u8_maxpool_ukernel__scalar, uint8_t, 0)
QC__MAXPOOL(qc_s8_maxpool_ukernel__scalar, int8_t, -128)

/* Max of the window's bytes per channel; the row of the window's first tap initialises it. */
#define QC__POOL_IMAGE(type)                                                                                 \
    do {                                                                                                     \
        const type *src = (const type *)image;                                                               \
        for (size_t py = 0; py < plan->pooled_height; py++) {                                                \
            for (size_t px = 0; px < plan->pooled_width; px++) {                                             \
                type *best = (type *)(layout == QC_CONV_NHWC ? y + ((n * plan->pooled_height + py) *          \
                                                                    plan->pooled_width + px) * oc           \
                                                             : row);                                         \
                const type *first = src + (py * ph * ow + px * pw) * oc;                                     \
                for (size_t j = 0; j < oc; j++) {                                                            \
                    best[j] = first[j];                                                                      \
                }                                                                                            \
                for (size_t dy = 0; dy < ph; dy++) {                                                         \
                    for (size_t dx = 0; dx < pw; dx++) {                                                     \
                        const type *v = src + ((py * ph + dy) * ow + px * pw + dx) * oc;                     \
                        for (size_t j = 0; j < oc; j++) {                                                    \
                            best[j] = v[j] > best[j] ? v[j] : best[j];                                       \
                        }                                                                                    \
                    }                                                                                        \
                }                                                                                            \
                if (layout == QC_CONV_NCHW) {                                                                \
                    for (size_t j = 0; j < oc; j++) {                                                        \
                        y[((n * oc + j) * plan->pooled_height + py) * plan->pooled_width + px] =             \
                            (uint8_t)best[j];                                                                \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    } while (0)

void qc__conv_pool_x8(const qc__conv_plan *plan, int layout, int is_signed, size_t row0, size_t rows,
                      const uint8_t *chunk, uint8_t *y) {
    const size_t oc = plan->shape.out_channels, positions = plan->positions, ow = plan->out_width;
    const size_t ph = plan->pool_height, pw = plan->pool_width;
    uint8_t row[256];
    for (size_t r = 0; r < rows; r += positions) {
        const uint8_t *image = chunk + r * oc;
        size_t n = (row0 + r) / positions;
        if (layout == QC_CONV_NCHW && oc > sizeof(row)) {
            /* many channels: pool channel by channel straight into the NCHW output */
            for (size_t j = 0; j < oc; j++) {
                for (size_t py = 0; py < plan->pooled_height; py++) {
                    for (size_t px = 0; px < plan->pooled_width; px++) {
                        int32_t best = is_signed ? -128 : 0;
                        for (size_t dy = 0; dy < ph; dy++) {
                            for (size_t dx = 0; dx < pw; dx++) {
                                uint8_t b = image[((py * ph + dy) * ow + px * pw + dx) * oc + j];
                                int32_t v = is_signed ? (int32_t)(int8_t)b : (int32_t)b;
                                best = v > best ? v : best;
                            }
                        }
                        y[((n * oc + j) * plan->pooled_height + py) * plan->pooled_width + px] = (uint8_t)best;
                    }
                }
            }
            continue;
        }
        if (is_signed) {
            QC__POOL_IMAGE(int8_t);
        } else {
            QC__POOL_IMAGE(uint8_t);
        }
    }
}
#undef QC__POOL_IMAGE
