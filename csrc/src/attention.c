/*
 * qc_attention_scores_f32 and qc_attention_f32 (qcore_attention.h): argument checks, K
 * packing, the scalar kernels and the dispatch; each head's rows end in the softmax kernel
 * of activation.c, and for qc_attention_f32 in the context kernel, a block of rows at a time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "activation.h"
#include "qcore.h"

void qc_f32_attention_scores_ukernel__scalar(const qc__attention_head *h) {
    for (size_t i = 0; i < h->rows; i++) {
        const float *qi = h->depth > 0 ? h->q + (int64_t)i * h->q_rs : NULL;
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

void qc_f32_attention_context_ukernel__scalar(const float *p, size_t p_rs, size_t r, size_t len, const float *v,
                                              int64_t v_rs, size_t vdepth, float *y, int64_t y_rs, int64_t y_cs) {
    for (size_t i = 0; i < r; i++) {
        const float *pi = p + i * p_rs;
        for (size_t e = 0; e < vdepth; e++) {
            float c = 0.0f;
            for (size_t j = 0; j < len; j++) {
                c = c + pi[j] * v[(int64_t)j * v_rs + (int64_t)e];
            }
            y[(int64_t)i * y_rs + (int64_t)e * y_cs] = c;
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
 * (or -inf) there, with |sum_d q[i, d] * k[d, j]| and that bound times |scale| both
 * provably below 2^100 for every row (finite q and k: no product or partial sum can
 * overflow before the scale, which may be tiny or 0): their masked score is the mask value
 * itself, bit for bit (fl(fl(a * scale) + m) = m when |a * scale| is below half an ulp of
 * m, 2^102 or more), so the product need not be formed. Returns live (cols when nothing can be skipped). */
static size_t qc__attention_live_columns(const qc__attention_head *h, const float *kh, const int64_t ks[4],
                                         size_t cols, qc__absmax_bits_fn absmax_bits) {
    if (h->mask == NULL || h->m_rs != 0) {
        return cols;
    }
    /* |x| compared as the bits of a float without its sign (a vectorisable integer max);
     * above the bits of 2^100 (NaN, infinity, absurdly large): compute everything */
    const uint32_t limit = 0x71800000u;
    /* depth 0: every score is +0 (and q, k may be NULL) */
    uint32_t qbits = h->depth > 0 ? absmax_bits(h->q, h->rows, h->q_rs, h->depth, h->q_cs) : 0u;
    if (qbits > limit) {
        return cols;
    }
    float qmax;
    memcpy(&qmax, &qbits, sizeof qmax);
    const double scale = h->scale != NULL ? fabs((double)*h->scale) : 1.0;
    size_t live = cols;
    while (live > 0) { /* the masked run at the end, then one bound for all its keys */
        const float m = h->mask[(int64_t)(live - 1) * h->m_cs];
        if (!(m == -INFINITY || m <= -0x1p127f)) {
            break;
        }
        live--;
    }
    if (live < cols) {
        uint32_t kbits = h->depth > 0 ? absmax_bits(kh + (int64_t)live * ks[3], cols - live, ks[3], h->depth, ks[2])
                                      : 0u;
        float kmax;
        memcpy(&kmax, &kbits, sizeof kmax);
        const double sum_bound = (double)h->depth * (double)qmax * (double)kmax;
        if (kbits <= limit && sum_bound < 0x1p100 && sum_bound * scale < 0x1p100) {
            return live;
        }
    }
    live = cols; /* some key's bound fails: the keys after the last failing one */
    while (live > 0) {
        const float m = h->mask[(int64_t)(live - 1) * h->m_cs];
        if (!(m == -INFINITY || m <= -0x1p127f)) {
            break;
        }
        uint32_t kbits = h->depth > 0 ? absmax_bits(kh + (int64_t)(live - 1) * ks[3], 1, 0, h->depth, ks[2]) : 0u;
        float kmax;
        memcpy(&kmax, &kbits, sizeof kmax);
        const double sum_bound = (double)h->depth * (double)qmax * (double)kmax;
        if (kbits > limit || !(sum_bound < 0x1p100 && sum_bound * scale < 0x1p100)) {
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
 * gets its padding filled with the mask values and the whole-row softmax. With fast not
 * NULL, fast[i] tells which rows took the first way, and their padding is left unwritten
 * (the caller then knows those probabilities are +0). */
static void qc__attention_padded_softmax(const qc__attention_head *h, size_t live, size_t cols,
                                         void (*softmax)(const float *, size_t, size_t, float *),
                                         void (*softmax4)(float *, size_t, size_t, const float *),
                                         int (*row_max)(const float *, size_t, float *), unsigned char *fast) {
    float dead_max = -INFINITY;
    for (size_t j = live; j < cols; j++) {
        const float m = h->mask[(int64_t)j * h->m_cs];
        dead_max = m > dead_max ? m : dead_max;
    }
    for (size_t i0 = 0; i0 < h->rows; i0 += 4) {
        const size_t r = h->rows - i0 < 4 ? h->rows - i0 : 4;
        float mx[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        unsigned char ok[4] = {0, 0, 0, 0};
        for (size_t t = 0; t < r; t++) {
            ok[t] = live > 0 && !row_max(h->y + (i0 + t) * cols, live, &mx[t]) && !isinf(mx[t]) &&
                    mx[t] >= dead_max && dead_max - mx[t] < QC__SOFTMAX_MIN_ARG;
        }
        if (r == 4 && ok[0] && ok[1] && ok[2] && ok[3]) { /* four live prefixes at once */
            softmax4(h->y + i0 * cols, cols, live, mx);
        }
        for (size_t t = 0; t < r; t++) {
            float *row = h->y + (i0 + t) * cols;
            if (ok[t]) {
                if (r < 4 || !(ok[0] && ok[1] && ok[2] && ok[3])) {
                    softmax(row, 1, live, row);
                }
                if (fast == NULL) {
                    memset(row + live, 0, (cols - live) * sizeof(float));
                }
            } else {
                for (size_t j = live; j < cols; j++) {
                    row[j] = h->mask[(int64_t)j * h->m_cs];
                }
                softmax(row, 1, cols, row);
            }
            if (fast != NULL) {
                fast[i0 + t] = ok[t];
            }
        }
    }
}

typedef struct {
    void (*scores)(const qc__attention_head *);
    void (*softmax)(const float *, size_t, size_t, float *);
    void (*softmax4)(float *, size_t, size_t, const float *);
    int (*row_max)(const float *, size_t, float *);
    qc__absmax_bits_fn absmax_bits;
    qc__attention_context_fn context;
} qc__attention_kernels;

/* The kernels of the ISA that options choose. */
static qc_status qc__attention_kernels_for(const qc_options *options, qc__attention_kernels *kn) {
    int isa = QC_ISA_SCALAR;
    int threads = 1;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    kn->scores = qc_f32_attention_scores_ukernel__scalar;
    kn->softmax = qc_f32_softmax_ukernel__scalar;
    kn->softmax4 = qc_f32_softmax4_ukernel__scalar;
    kn->row_max = qc_f32_row_max_ukernel__scalar;
    kn->absmax_bits = qc_f32_absmax_bits_ukernel__scalar;
    kn->context = qc_f32_attention_context_ukernel__scalar;
    switch (isa) {
#if defined(QC__BUILD_AVX2)
    case QC_ISA_AVX2:
        kn->scores = qc_f32_attention_scores_ukernel__avx2;
        kn->softmax = qc_f32_softmax_ukernel__avx2;
        kn->softmax4 = qc_f32_softmax4_ukernel__avx2;
        kn->row_max = qc_f32_row_max_ukernel__avx2;
        kn->absmax_bits = qc_f32_absmax_bits_ukernel__avx2;
        kn->context = qc_f32_attention_context_ukernel__avx2;
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
    return QC_OK;
}

/* K's columns [0, live) of one head packed as depth rows of kt_stride floats, the rest of
 * each row zero. */
static void qc__attention_pack_k(float *kt, const float *kh, const int64_t ks[4], size_t depth, size_t live,
                                 size_t kt_stride) {
    if (ks[3] == 1 || (ks[2] != 1 && ks[2] * ks[2] >= ks[3] * ks[3])) {
        for (size_t d = 0; d < depth; d++) { /* K rows contiguous (or neither): row by row */
            const float *kd = kh + (int64_t)d * ks[2];
            float *row = kt + d * kt_stride;
            for (size_t j = 0; j < live; j++) {
                row[j] = kd[(int64_t)j * ks[3]];
            }
        }
    } else {
        for (size_t j = 0; j < live; j++) { /* K transposed in memory (an exported key): read along d */
            const float *kj = kh + (int64_t)j * ks[3];
            for (size_t d = 0; d < depth; d++) {
                kt[d * kt_stride + j] = kj[(int64_t)d * ks[2]];
            }
        }
    }
    for (size_t d = 0; d < depth; d++) {
        for (size_t j = live; j < kt_stride; j++) {
            kt[d * kt_stride + j] = 0.0f;
        }
    }
}

/* The fields of h every head shares: sizes, strides within a head, scale, packed K and scratch. */
static void qc__attention_head_init(qc__attention_head *h, size_t rows, size_t depth, size_t cols, const int64_t qs[4],
                                    const int64_t ms[4], const float *scale, float *kt, float *scratch) {
    h->rows = rows;
    h->depth = depth;
    h->y_rs = (int64_t)cols;
    h->q_rs = qs[2];
    h->q_cs = qs[3];
    h->kt = kt;
    h->scale = scale;
    h->m_rs = ms[2];
    h->m_cs = ms[3];
    h->scratch = scratch;
}

/* Points h at head (b, hd) of q and the mask (all rows), finds the head's live keys and
 * packs K's columns [0, live) into kt; h->cols and h->kt_stride are set to them. */
static void qc__attention_head_start(qc__attention_head *h, float *kt, size_t b, size_t hd, size_t rows,
                                             size_t cols, const float *q, const int64_t qs[4], const float *k,
                                             const int64_t ks[4], const float *mask, const int64_t ms[4],
                                             qc__absmax_bits_fn absmax_bits) {
    const int64_t bh = (int64_t)b, hh = (int64_t)hd;
    const float *kh = h->depth > 0 ? k + bh * ks[0] + hh * ks[1] : NULL;
    h->rows = rows;
    h->q = h->depth > 0 ? q + bh * qs[0] + hh * qs[1] : NULL;
    h->mask = mask != NULL ? mask + bh * ms[0] + hh * ms[1] : NULL;
    /* masked padding at the end of the keys: scores equal to the mask, not computed */
    h->cols = qc__attention_live_columns(h, kh, ks, cols, absmax_bits);
    h->kt_stride = (h->cols + 7) / 8 * 8;
    qc__attention_pack_k(kt, kh, ks, h->depth, h->cols, h->kt_stride);
}

qc_status qc_attention_scores_f32(size_t batch, size_t heads, size_t rows, size_t depth, size_t cols,
                                  const float *q, const int64_t *q_strides, const float *k,
                                  const int64_t *k_strides, const float *scale, const float *mask,
                                  const int64_t *mask_strides, float *y, size_t *live_keys,
                                  const qc_options *options) {
    if (live_keys != NULL) {
        *live_keys = cols;
    }
    qc__attention_kernels kn;
    QC__TRY(qc__attention_kernels_for(options, &kn));
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
    qc__attention_head_init(&h, rows, depth, cols, qs, ms, scale, kt, kt + kt_floats);
    size_t zero_from = 0; /* max over heads of their zero tail's start; cols + 1: not shown */
    for (size_t b = 0; b < batch; b++) {
        for (size_t hd = 0; hd < heads; hd++) {
            qc__attention_head_start(&h, kt, b, hd, rows, cols, q, qs, k, ks, mask, ms, kn.absmax_bits);
            h.y = y + (b * heads + hd) * plane;
            const size_t live = h.cols;
            if (live > 0) {
                kn.scores(&h);
            }
            if (live == cols) {
                kn.softmax(h.y, rows, cols, h.y);
            } else {
                qc__attention_padded_softmax(&h, live, cols, kn.softmax, kn.softmax4, kn.row_max, NULL);
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

/* Rows [from, to) of one head's V packed as rows of vdepth contiguous floats; returns to. */
static size_t qc__attention_pack_v(float *vt, const float *vh, const int64_t vs[4], size_t vdepth, size_t from,
                                   size_t to) {
    for (size_t j = from; j < to; j++) {
        const float *vj = vh + (int64_t)j * vs[2];
        if (vs[3] == 1) {
            memcpy(vt + j * vdepth, vj, vdepth * sizeof(float));
        } else {
            for (size_t e = 0; e < vdepth; e++) {
                vt[j * vdepth + e] = vj[(int64_t)e * vs[3]];
            }
        }
    }
    return to;
}

/* Rows of probabilities held in scratch at a time: about 16 KB of them, 4 to 256 rows. */
static size_t qc__attention_chunk_rows(size_t rows, size_t cols) {
    size_t chunk = 4096 / cols;
    chunk = chunk < 4 ? 4 : chunk > 256 ? 256 : chunk / 4 * 4;
    return chunk < rows ? chunk : rows;
}

qc_status qc_attention_f32(size_t batch, size_t heads, size_t rows, size_t depth, size_t cols, size_t vdepth,
                           const float *q, const int64_t *q_strides, const float *k, const int64_t *k_strides,
                           const float *scale, const float *mask, const int64_t *mask_strides, const float *v,
                           const int64_t *v_strides, float *y, const int64_t *y_strides, const qc_options *options) {
    qc__attention_kernels kn;
    QC__TRY(qc__attention_kernels_for(options, &kn));
    if (scale != NULL && !isfinite(*scale)) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (batch == 0 || heads == 0 || rows == 0 || vdepth == 0) {
        return QC_OK;
    }
    if (y == NULL || y_strides == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (cols == 0) { /* a sum of no terms */
        for (size_t b = 0; b < batch; b++) {
            for (size_t hd = 0; hd < heads; hd++) {
                for (size_t i = 0; i < rows; i++) {
                    float *yi = y + (int64_t)b * y_strides[0] + (int64_t)hd * y_strides[1] + (int64_t)i * y_strides[2];
                    for (size_t e = 0; e < vdepth; e++) {
                        yi[(int64_t)e * y_strides[3]] = 0.0f;
                    }
                }
            }
        }
        return QC_OK;
    }
    if (v == NULL || v_strides == NULL || (depth > 0 && (q == NULL || q_strides == NULL || k == NULL || k_strides == NULL)) ||
        (mask != NULL && mask_strides == NULL)) {
        return QC_E_NULL_POINTER;
    }
    const size_t kt_stride = (cols + 7) / 8 * 8, chunk = qc__attention_chunk_rows(rows, cols);
    /* V is read row after row for every block of rows: packed contiguous unless it is (rows
     * of a wider tensor at a large stride share few L1 sets) */
    const int pack_v = !((v_strides[3] == 1 || vdepth == 1) && v_strides[2] == (int64_t)vdepth);
    size_t kt_floats = 0, probs = 0, vt_floats = 0, total = 0;
    if (qc__mul_size(depth, kt_stride, &kt_floats) || qc__mul_size(chunk, cols, &probs) ||
        qc__mul_size(pack_v ? cols : 0, vdepth, &vt_floats) || depth > SIZE_MAX / 4 - kt_stride ||
        qc__add_size(kt_floats, 4 * (depth + kt_stride), &total) || qc__add_size(total, probs, &total) ||
        qc__add_size(total, vt_floats, &total) || qc__add_size(total, chunk + 1, &total) ||
        total > SIZE_MAX / sizeof(float)) {
        return QC_E_OVERFLOW;
    }
    float *kt = malloc(total * sizeof(float));
    if (kt == NULL) {
        return QC_E_NO_MEMORY;
    }
    float *const pbuf = kt + kt_floats + 4 * (depth + kt_stride);
    float *const vt = pbuf + probs;
    unsigned char *const fast = (unsigned char *)(vt + vt_floats);
    static const int64_t none[4] = {0, 0, 0, 0};
    const int64_t *ms = mask != NULL ? mask_strides : none;
    const int64_t *qs = depth > 0 ? q_strides : none;
    const int64_t *ks = depth > 0 ? k_strides : none;
    const int64_t *vs = v_strides, *ys = y_strides;
    qc__attention_head h;
    qc__attention_head_init(&h, rows, depth, cols, qs, ms, scale, kt, kt + kt_floats);
    for (size_t b = 0; b < batch; b++) {
        for (size_t hd = 0; hd < heads; hd++) {
            qc__attention_head_start(&h, kt, b, hd, rows, cols, q, qs, k, ks, mask, ms, kn.absmax_bits);
            const float *qh = h.q, *mh = h.mask;
            const float *vh = v + (int64_t)b * vs[0] + (int64_t)hd * vs[1];
            float *yh = y + (int64_t)b * ys[0] + (int64_t)hd * ys[1];
            const size_t live = h.cols;
            /* padded keys whose probabilities come out +0 add nothing when their values are finite */
            const int skip = live < cols && kn.absmax_bits(vh + (int64_t)live * vs[2], cols - live, vs[2], vdepth,
                                                           vs[3]) <= 0x7F7FFFFFu;
            const float *vp = vh;
            int64_t v_rs = vs[2];
            size_t packed = 0; /* rows of V packed so far: the live ones first, the rest when a block needs them */
            if (pack_v) {
                packed = qc__attention_pack_v(vt, vh, vs, vdepth, 0, skip ? live : cols);
                vp = vt;
                v_rs = (int64_t)vdepth;
            }
            for (size_t i0 = 0; i0 < rows; i0 += chunk) {
                const size_t n = rows - i0 < chunk ? rows - i0 : chunk;
                h.rows = n;
                h.q = qh != NULL ? qh + (int64_t)i0 * h.q_rs : NULL;
                h.mask = mh != NULL ? mh + (int64_t)i0 * h.m_rs : NULL;
                h.y = pbuf;
                if (live > 0) {
                    kn.scores(&h);
                }
                if (live == cols) {
                    kn.softmax(pbuf, n, cols, pbuf);
                } else {
                    qc__attention_padded_softmax(&h, live, cols, kn.softmax, kn.softmax4, kn.row_max, skip ? fast : NULL);
                }
                for (size_t i = 0; i < n; i += 4) {
                    const size_t r = n - i < 4 ? n - i : 4;
                    size_t len = cols;
                    if (skip) {
                        int all = 1;
                        for (size_t t = 0; t < r; t++) {
                            all &= fast[i + t];
                        }
                        if (all) {
                            len = live;
                        } else { /* a row with live probabilities in the padding: the whole block
                                  * runs over every key, so the others' padding is written +0 */
                            for (size_t t = 0; t < r; t++) {
                                if (fast[i + t]) {
                                    memset(pbuf + (i + t) * cols + live, 0, (cols - live) * sizeof(float));
                                }
                            }
                        }
                    }
                    if (pack_v && len > packed) {
                        packed = qc__attention_pack_v(vt, vh, vs, vdepth, packed, cols);
                    }
                    kn.context(pbuf + i * cols, cols, r, len, vp, v_rs, vdepth, yh + (int64_t)(i0 + i) * ys[2],
                               ys[2], ys[3]);
                }
            }
        }
    }
    free(kt);
    return QC_OK;
}
