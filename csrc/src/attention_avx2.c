/*
 * AVX2 attention scores and context (attention.h): the scalar twins' operations lane for
 * lane. Four rows at a time, 16 columns (two vectors) per block then 8 (then a masked tail
 * for the context): eight or four independent sums, each a float32 multiply then add per
 * term (no FMA), from +0 in increasing d (scores) or j (context).
 */
#include "attention.h"

#if defined(QC__BUILD_AVX2)

#include <string.h>

#include <immintrin.h>

QC__AVX2_BEGIN

/* Contiguous rows (cs == 1) eight values at a time, vpmaxud on the sign-cleared bits; other
 * layouts by the scalar loop. */
uint32_t qc_f32_absmax_bits_ukernel__avx2(const float *x, size_t rows, int64_t rs, size_t cols, int64_t cs) {
    if (cs != 1) {
        return qc_f32_absmax_bits_ukernel__scalar(x, rows, rs, cols, cs);
    }
    const __m256i clear = _mm256_set1_epi32(0x7FFFFFFF);
    __m256i best = _mm256_setzero_si256();
    uint32_t tail = 0;
    for (size_t i = 0; i < rows; i++) {
        const float *row = x + (int64_t)i * rs;
        size_t j = 0;
        for (; j + 8 <= cols; j += 8) {
            const __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(row + j)), clear);
            best = _mm256_max_epu32(best, v);
        }
        if (j < cols) {
            const uint32_t rest = qc_f32_absmax_bits_ukernel__scalar(row + j, 1, 0, cols - j, 1);
            tail = rest > tail ? rest : tail;
        }
    }
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)(void *)lanes, best);
    for (int k = 0; k < 8; k++) {
        tail = lanes[k] > tail ? lanes[k] : tail;
    }
    return tail;
}

/* Lanes [0, n) of a vector (n in 1..8). */
static inline __m256i qc__attention_lanes(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* v * scale, + mask, stored to yrow[j .. min(j + 8, cols)) (a partial last vector by masked
 * loads and stores; the mask row is contiguous). */
static inline void qc__attention_store(__m256 v, const qc__attention_head *h, const float *mrow, size_t j,
                                       float *yrow) {
    if (h->scale != NULL) {
        v = _mm256_mul_ps(v, _mm256_set1_ps(*h->scale));
    }
    if (j + 8 <= h->cols) {
        if (mrow != NULL) {
            v = _mm256_add_ps(v, _mm256_loadu_ps(mrow + j));
        }
        _mm256_storeu_ps(yrow + j, v);
    } else {
        const __m256i lanes = qc__attention_lanes(h->cols - j);
        if (mrow != NULL) {
            v = _mm256_add_ps(v, _mm256_maskload_ps(mrow + j, lanes));
        }
        _mm256_maskstore_ps(yrow + j, lanes, v);
    }
}

/* The mask row i as contiguous floats: in place when it already is, else packed. */
static const float *qc__attention_mask_row(const qc__attention_head *h, size_t i, float *buf) {
    if (h->mask == NULL) {
        return NULL;
    }
    const float *m = h->mask + (int64_t)i * h->m_rs;
    if (h->m_cs == 1) {
        return m;
    }
    for (size_t j = 0; j < h->cols; j++) {
        buf[j] = m[(int64_t)j * h->m_cs];
    }
    return buf;
}

/* Rows i .. i + r - 1 (r <= 4) against columns j .. j + 8 * NV - 1 of the packed K, stored
 * for the r rows. Rows beyond r repeat row 0 (computed, not stored). */
#define QC__ATT_ACC(NV, x, p, a)                                                          \
    do {                                                                                  \
        a##0 = _mm256_add_ps(a##0, _mm256_mul_ps(x, k0));                                 \
        if (NV > 1) {                                                                     \
            a##1 = _mm256_add_ps(a##1, _mm256_mul_ps(x, k1));                             \
        }                                                                                 \
    } while (0)

static inline __attribute__((always_inline)) void qc__attention_block(const qc__attention_head *h, const int nv,
                                                                     const float *const qr[4], const float *kt,
                                                                     const float *const mr[4], float *const yr[4],
                                                                     int r, size_t j) {
    const size_t ks = h->kt_stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, e0 = a0, e1 = a0;
    const float *kd = kt + j;
    /* unrolled: fewer loop instructions per multiply-add (1.05x on the call at full length) */
#pragma GCC unroll 4
    for (size_t d = 0; d < h->depth; d++, kd += ks) {
        const __m256 k0 = _mm256_loadu_ps(kd);
        const __m256 k1 = nv > 1 ? _mm256_loadu_ps(kd + 8) : k0;
        __m256 x = _mm256_broadcast_ss(qr[0] + d);
        QC__ATT_ACC(nv, x, 0, a);
        x = _mm256_broadcast_ss(qr[1] + d);
        QC__ATT_ACC(nv, x, 1, b);
        x = _mm256_broadcast_ss(qr[2] + d);
        QC__ATT_ACC(nv, x, 2, c);
        x = _mm256_broadcast_ss(qr[3] + d);
        QC__ATT_ACC(nv, x, 3, e);
    }
    qc__attention_store(a0, h, mr[0], j, yr[0]);
    if (nv > 1) {
        qc__attention_store(a1, h, mr[0], j + 8, yr[0]);
    }
    if (r > 1) {
        qc__attention_store(b0, h, mr[1], j, yr[1]);
        if (nv > 1) {
            qc__attention_store(b1, h, mr[1], j + 8, yr[1]);
        }
    }
    if (r > 2) {
        qc__attention_store(c0, h, mr[2], j, yr[2]);
        if (nv > 1) {
            qc__attention_store(c1, h, mr[2], j + 8, yr[2]);
        }
    }
    if (r > 3) {
        qc__attention_store(e0, h, mr[3], j, yr[3]);
        if (nv > 1) {
            qc__attention_store(e1, h, mr[3], j + 8, yr[3]);
        }
    }
}

void qc_f32_attention_scores_ukernel__avx2(const qc__attention_head *h) {
    const size_t depth = h->depth, ks = h->kt_stride;
    for (size_t i = 0; i < h->rows; i += 4) {
        const int r = h->rows - i < 4 ? (int)(h->rows - i) : 4;
        const float *qr[4];
        const float *mr[4];
        float *yr[4];
        for (int t = 0; t < 4; t++) {
            const size_t row = i + (size_t)(t < r ? t : 0);
            const float *src = depth > 0 ? h->q + (int64_t)row * h->q_rs : NULL;
            if (h->q_cs == 1 || depth <= 1) {
                qr[t] = src;
            } else {
                float *qbuf = h->scratch + (size_t)t * depth;
                for (size_t d = 0; d < depth; d++) {
                    qbuf[d] = src[(int64_t)d * h->q_cs];
                }
                qr[t] = qbuf;
            }
            mr[t] = qc__attention_mask_row(h, row, h->scratch + 4 * depth + (size_t)t * ks);
            yr[t] = h->y + (int64_t)row * h->y_rs;
        }
        size_t j = 0;
        for (; j + 16 <= ks; j += 16) {
            qc__attention_block(h, 2, qr, h->kt, mr, yr, r, j);
        }
        if (j < ks) {
            qc__attention_block(h, 1, qr, h->kt, mr, yr, r, j);
        }
    }
}

/* Rows pr[0..3] (rows beyond r repeat row 0: computed, not stored) of the context for the
 * output columns e .. e + 8 * NV - 1 (NV = 1 with tail: the first n of 8, masked). */
static inline __attribute__((always_inline)) void qc__attention_context_block(const float *const pr[4], size_t len,
                                                                             const float *v, int64_t v_rs, size_t e,
                                                                             const int nv, const int masked,
                                                                             __m256i tail, float *const yr[4],
                                                                             int r) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, e0 = a0, e1 = a0;
    const float *vj = v + e;
#pragma GCC unroll 4 /* as the scores loop */
    for (size_t j = 0; j < len; j++, vj += v_rs) {
        const __m256 k0 = masked ? _mm256_maskload_ps(vj, tail) : _mm256_loadu_ps(vj);
        const __m256 k1 = nv > 1 ? _mm256_loadu_ps(vj + 8) : k0;
        __m256 x = _mm256_broadcast_ss(pr[0] + j);
        QC__ATT_ACC(nv, x, 0, a);
        x = _mm256_broadcast_ss(pr[1] + j);
        QC__ATT_ACC(nv, x, 1, b);
        x = _mm256_broadcast_ss(pr[2] + j);
        QC__ATT_ACC(nv, x, 2, c);
        x = _mm256_broadcast_ss(pr[3] + j);
        QC__ATT_ACC(nv, x, 3, e);
    }
    const __m256 acc[4][2] = {{a0, a1}, {b0, b1}, {c0, c1}, {e0, e1}};
    for (int t = 0; t < r; t++) {
        if (masked) {
            _mm256_maskstore_ps(yr[t] + e, tail, acc[t][0]);
        } else {
            _mm256_storeu_ps(yr[t] + e, acc[t][0]);
            if (nv > 1) {
                _mm256_storeu_ps(yr[t] + e + 8, acc[t][1]);
            }
        }
    }
}

void qc_f32_attention_context_ukernel__avx2(const float *p, size_t p_rs, size_t r, size_t len, const float *v,
                                            int64_t v_rs, size_t vdepth, float *y, int64_t y_rs, int64_t y_cs) {
    if (y_cs != 1 && vdepth > 1) {
        qc_f32_attention_context_ukernel__scalar(p, p_rs, r, len, v, v_rs, vdepth, y, y_rs, y_cs);
        return;
    }
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t i = 0; i < r; i += 4) {
        const int n = r - i < 4 ? (int)(r - i) : 4;
        const float *pr[4];
        float *yr[4];
        for (int t = 0; t < 4; t++) {
            const size_t row = i + (size_t)(t < n ? t : 0);
            pr[t] = p + row * p_rs;
            yr[t] = y + (int64_t)row * y_rs;
        }
        size_t e = 0;
        for (; e + 16 <= vdepth; e += 16) {
            qc__attention_context_block(pr, len, v, v_rs, e, 2, 0, lanes, yr, n);
        }
        if (e + 8 <= vdepth) {
            qc__attention_context_block(pr, len, v, v_rs, e, 1, 0, lanes, yr, n);
            e += 8;
        }
        if (e < vdepth) {
            const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(vdepth - e)), lanes);
            qc__attention_context_block(pr, len, v, v_rs, e, 1, 1, tail, yr, n);
        }
    }
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
