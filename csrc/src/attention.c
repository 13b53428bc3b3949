/*
 * qc_attention_scores_f32 (qcore_attention.h): argument checks, K packing, the scalar
 * kernel and the dispatch; each head's rows end in the softmax kernel of activation.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "activation.h"
#include "qcore.h"

void qc_f32_attention_scores_ukernel__scalar(const qc__attention_head *h) {
    for (size_t i = 0; i < h->rows; i++) {
        const float *qi = h->q + (int64_t)i * h->q_rs;
        float *yi = h->y + (int64_t)i * h->y_rs;
        for (size_t j = 0; j < h->cols; j++) {
            float a = 0.0f;
            for (size_t d = 0; d < h->depth; d++) {
                a = a + qi[(int64_t)d * h->q_cs] * h->kt[d * h->kt_stride + j];
            }
            if (h->scale != NULL) {
                a = a * *h->scale;
            }
            if (h->mask != NULL) {
                a = a + h->mask[(int64_t)i * h->m_rs + (int64_t)j * h->m_cs];
            }
            yi[j] = a;
        }
    }
}

uint32_t qc_f32_absmax_bits_ukernel__scalar(const float *x, size_t rows, int64_t rs, size_t cols, int64_t cs) {
    uint32_t best = 0;
    for (size_t i = 0; i < rows; i++) {
        const float *row = x + (int64_t)i * rs;
        for (size_t j = 0; j < cols; j++) {
            uint32_t b;
            memcpy(&b, &row[(int64_t)j * cs], sizeof b);
            b &= 0x7FFFFFFFu;
            best = b > best ? b : best;
        }
    }
    return best;
}

/* Columns [live, cols) of a head whose mask is the same for every row and at most -2^127
 * (or -inf) there, with |sum_d q[i, d] * k[d, j] * scale| provably below 2^100 for every
 * row (finite q and k): their masked score is the mask value itself, bit for bit
 * (fl(fl(a * scale) + m) = m when |a * scale| is below half an ulp of m, 2^102 or more),
 * so the product need not be formed. Returns live (cols when nothing can be skipped). */
static size_t qc__attention_live_columns(const qc__attention_head *h, const float *kh, const int64_t ks[4],
                                         size_t cols, qc__absmax_bits_fn absmax_bits) {
    if (h->mask == NULL || h->m_rs != 0) {
        return cols;
    }
    /* |x| compared as the bits of a float without its sign (a vectorisable integer max);
     * above the bits of 2^100 (NaN, infinity, absurdly large): compute everything */
    const uint32_t limit = 0x71800000u;
    uint32_t qbits = absmax_bits(h->q, h->rows, h->q_rs, h->depth, h->q_cs);
    if (qbits > limit) {
        return cols;
    }
    float qmax;
    memcpy(&qmax, &qbits, sizeof qmax);
    const double scale = h->scale != NULL ? fabs((double)*h->scale) : 1.0;
    size_t live = cols;
    while (live > 0) {
        const float m = h->mask[(int64_t)(live - 1) * h->m_cs];
        if (!(m == -INFINITY || m <= -0x1p127f)) {
            break;
        }
        uint32_t kbits = absmax_bits(kh + (int64_t)(live - 1) * ks[3], 1, 0, h->depth, ks[2]);
        float kmax;
        memcpy(&kmax, &kbits, sizeof kmax);
        if (kbits > limit || !((double)h->depth * (double)qmax * (double)kmax * scale < 0x1p100)) {
            break;
        }
        live--;
    }
    return live;
}

/* The softmax of rows whose columns [live, cols) are padding (scores equal to the mask
 * values there): a row whose live maximum mx is finite, at least the largest padded mask
 * value and more than 87 above it gets the softmax of its live prefix and +0 in the padding,
 * which is what the whole row's softmax gives bit for bit (the maximum is mx, every padded
 * exp(x - mx) is cut to 0, and a 0 added to the 8-lane sums changes nothing); any other row
 * gets its padding filled with the mask values and the whole-row softmax. */
static void qc__attention_padded_softmax(const qc__attention_head *h, size_t live, size_t cols,
                                         void (*softmax)(const float *, size_t, size_t, float *),
                                         int (*row_max)(const float *, size_t, float *)) {
    float dead_max = -INFINITY;
    for (size_t j = live; j < cols; j++) {
        const float m = h->mask[(int64_t)j * h->m_cs];
        dead_max = m > dead_max ? m : dead_max;
    }
    for (size_t i = 0; i < h->rows; i++) {
        float *row = h->y + i * cols;
        float mx = 0.0f;
        if (live > 0 && !row_max(row, live, &mx) && !isinf(mx) && mx >= dead_max && dead_max - mx < QC__SOFTMAX_MIN_ARG) {
            softmax(row, 1, live, row);
            memset(row + live, 0, (cols - live) * sizeof(float));
        } else {
            for (size_t j = live; j < cols; j++) {
                row[j] = h->mask[(int64_t)j * h->m_cs];
            }
            softmax(row, 1, cols, row);
        }
    }
}

qc_status qc_attention_scores_f32(size_t batch, size_t heads, size_t rows, size_t depth, size_t cols,
                                  const float *q, const int64_t *q_strides, const float *k,
                                  const int64_t *k_strides, const float *scale, const float *mask,
                                  const int64_t *mask_strides, float *y, size_t *live_keys,
                                  const qc_options *options) {
    if (live_keys != NULL) {
        *live_keys = cols;
    }
    int isa = QC_ISA_SCALAR;
    int threads = 1;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (scale != NULL && !isfinite(*scale)) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (batch == 0 || heads == 0 || rows == 0 || cols == 0) {
        return QC_OK;
    }
    if (y == NULL || (depth > 0 && (q == NULL || q_strides == NULL || k == NULL || k_strides == NULL)) ||
        (mask != NULL && mask_strides == NULL)) {
        return QC_E_NULL_POINTER;
    }
    void (*kernel)(const qc__attention_head *) = qc_f32_attention_scores_ukernel__scalar;
    void (*softmax)(const float *, size_t, size_t, float *) = qc_f32_softmax_ukernel__scalar;
    int (*row_max)(const float *, size_t, float *) = qc_f32_row_max_ukernel__scalar;
    qc__absmax_bits_fn absmax_bits = qc_f32_absmax_bits_ukernel__scalar;
    switch (isa) {
#if defined(QC__BUILD_AVX2)
    case QC_ISA_AVX2:
        kernel = qc_f32_attention_scores_ukernel__avx2;
        softmax = qc_f32_softmax_ukernel__avx2;
        row_max = qc_f32_row_max_ukernel__avx2;
        absmax_bits = qc_f32_absmax_bits_ukernel__avx2;
        break;
#endif
    case QC_ISA_SCALAR:
    case QC_ISA_NEON:
    case QC_ISA_NEONDOT:
    case QC_ISA_I8MM:
        break;
    default:
        return QC_E_UNSUPPORTED_ISA;
    }
    size_t plane = 0, total = 0, kt_stride = (cols + 7) / 8 * 8, kt_floats = 0, scratch_floats = 0;
    if (qc__mul_size(rows, cols, &plane) || qc__mul_size(plane, heads, &total) ||
        qc__mul_size(total, batch, &total) || qc__mul_size(depth, kt_stride, &kt_floats) ||
        depth > SIZE_MAX / 4 - kt_stride || kt_floats > SIZE_MAX / sizeof(float) - 4 * (depth + kt_stride) - 1) {
        return QC_E_OVERFLOW;
    }
    scratch_floats = 4 * (depth + kt_stride);
    float *kt = malloc((kt_floats + scratch_floats + 1) * sizeof(float));
    if (kt == NULL) {
        return QC_E_NO_MEMORY;
    }
    static const int64_t none[4] = {0, 0, 0, 0};
    const int64_t *ms = mask != NULL ? mask_strides : none;
    const int64_t *qs = depth > 0 ? q_strides : none;
    const int64_t *ks = depth > 0 ? k_strides : none;
    qc__attention_head h;
    h.rows = rows;
    h.depth = depth;
    h.y_rs = (int64_t)cols;
    h.q_rs = qs[2];
    h.q_cs = qs[3];
    h.kt = kt;
    h.scale = scale;
    h.m_rs = ms[2];
    h.m_cs = ms[3];
    h.scratch = kt + kt_floats;
    size_t zero_from = 0; /* max over heads of their zero tail's start; cols + 1: not shown */
    for (size_t b = 0; b < batch; b++) {
        for (size_t hd = 0; hd < heads; hd++) {
            const int64_t bh = (int64_t)b, hh = (int64_t)hd;
            const float *kh = depth > 0 ? k + bh * ks[0] + hh * ks[1] : NULL;
            h.q = depth > 0 ? q + bh * qs[0] + hh * qs[1] : NULL;
            h.mask = mask != NULL ? mask + bh * ms[0] + hh * ms[1] : NULL;
            h.y = y + (b * heads + hd) * plane;
            /* masked padding at the end of the keys: scores equal to the mask, not computed */
            h.cols = qc__attention_live_columns(&h, kh, ks, cols, absmax_bits);
            h.kt_stride = (h.cols + 7) / 8 * 8;
            const size_t live = h.cols, kt_stride_h = h.kt_stride;
            if (ks[3] == 1 || (ks[2] != 1 && ks[2] * ks[2] >= ks[3] * ks[3])) {
                for (size_t d = 0; d < depth; d++) { /* K rows contiguous (or neither): row by row */
                    const float *kd = kh + (int64_t)d * ks[2];
                    float *row = kt + d * kt_stride_h;
                    for (size_t j = 0; j < live; j++) {
                        row[j] = kd[(int64_t)j * ks[3]];
                    }
                }
            } else {
                for (size_t j = 0; j < live; j++) { /* K transposed in memory (an exported key): read along d */
                    const float *kj = kh + (int64_t)j * ks[3];
                    for (size_t d = 0; d < depth; d++) {
                        kt[d * kt_stride_h + j] = kj[(int64_t)d * ks[2]];
                    }
                }
            }
            for (size_t d = 0; d < depth; d++) {
                for (size_t j = live; j < kt_stride_h; j++) {
                    kt[d * kt_stride_h + j] = 0.0f;
                }
            }
            if (live > 0) {
                kernel(&h);
            }
            if (live == cols) {
                softmax(h.y, rows, cols, h.y);
            } else {
                qc__attention_padded_softmax(&h, live, cols, softmax, row_max);
            }
            if (live < cols) { /* equal mask values in the padding: each row's padded
                                * probabilities are equal, so one column shows they are 0 */
                const float m = h.mask[(int64_t)live * h.m_cs];
                for (size_t j = live + 1; j < cols && zero_from <= cols; j++) {
                    if (!(h.mask[(int64_t)j * h.m_cs] == m)) {
                        zero_from = cols + 1;
                    }
                }
                for (size_t i = 0; i < rows && zero_from <= cols; i++) {
                    float p = h.y[i * cols + live];
                    uint32_t bits;
                    memcpy(&bits, &p, sizeof bits);
                    if (bits != 0u) {
                        zero_from = cols + 1;
                    }
                }
                if (zero_from <= cols && live > zero_from) {
                    zero_from = live;
                }
            } else {
                zero_from = cols + 1;
            }
        }
    }
    if (live_keys != NULL && zero_from <= cols) {
        *live_keys = zero_from;
    }
    free(kt);
    return QC_OK;
}
