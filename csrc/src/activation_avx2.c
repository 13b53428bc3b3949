/*
 * AVX2 erf and GELU, bit-identical to the scalar twins in activation.h: the same float32
 * operations in the same order on 8 lanes (both branches evaluated, then blended), IEEE
 * vdivps, no FMA. Tails run the same vector code on a zero-padded block.
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#include <immintrin.h>

QC__AVX2_BEGIN

#include "activation.h"

#define QC__S(c) _mm256_set1_ps(c)

/* Groups of n vectors (n = 1, 4 or 8) are evaluated step by step across the group: their
 * long dependency chains (Horner) then overlap instead of waiting in the scheduler one
 * after another (written vector after vector, the out-of-order core held about two chains
 * at once). Each lane's operations and their order are unchanged. */
#define QC__EACH(t, n) for (int t = 0; t < (n); t++)
/* An empty asm that takes the n vectors in registers: the compiler must finish the step
 * for all of them before the next (GCC otherwise regroups the chains vector by vector). */
#define QC__INTERLEAVE(v, n)                                                                 \
    do {                                                                                     \
        if ((n) == 4) {                                                                      \
            __asm__("" : "+x"((v)[0]), "+x"((v)[1]), "+x"((v)[2]), "+x"((v)[3]));            \
        } else if ((n) == 8) {                                                               \
            __asm__("" : "+x"((v)[0]), "+x"((v)[1]), "+x"((v)[2]), "+x"((v)[3]),             \
                    "+x"((v)[4]), "+x"((v)[5]), "+x"((v)[6]), "+x"((v)[7]));                 \
        }                                                                                    \
    } while (0)
/* Vectors per group: eight (64 values) for erf, GELU and a softmax row's exp (measured
 * faster than four; docs/KERNELS.md). */
#define QC__GROUP_NB 8
/* p = p * x + coef[c] for c = 0 .. count - 1 (Horner), step by step across the group. */
static inline __attribute__((always_inline)) void qc__horner8n_avx2(__m256 *p, const __m256 *x, const float *coef,
                                                                    const int count, const int n) {
    for (int c = 0; c < count; c++) {
        QC__EACH(t, n) {
            p[t] = _mm256_add_ps(_mm256_mul_ps(p[t], x[t]), QC__S(coef[c]));
        }
        QC__INTERLEAVE(p, n);
    }
}

/* exp of n vectors in place. */
static inline __attribute__((always_inline)) void qc__exp8n_avx2(__m256 *v, const int n) {
    __m256 kf[8], r[8];
    QC__EACH(t, n) {
        kf[t] = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(v[t], QC__S(QC__EXP_LOG2E)), QC__S(QC__EXP_ROUND)),
                              QC__S(QC__EXP_ROUND));
    }
    QC__EACH(t, n) {
        r[t] = _mm256_sub_ps(_mm256_sub_ps(v[t], _mm256_mul_ps(kf[t], QC__S(QC__EXP_LN2_HI))),
                             _mm256_mul_ps(kf[t], QC__S(QC__EXP_LN2_LO)));
    }
    const float coef[7] = {QC__EXP_C6, QC__EXP_C5, QC__EXP_C4, QC__EXP_C3, QC__EXP_C2, 1.0f, 1.0f};
    QC__EACH(t, n) {
        v[t] = QC__S(QC__EXP_C7);
    }
    qc__horner8n_avx2(v, r, coef, 7, n);
    QC__EACH(t, n) {
        __m256i k = _mm256_cvttps_epi32(kf[t]);
        __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
        v[t] = _mm256_mul_ps(v[t], scale);
    }
}

static inline __m256 qc__exp8_avx2(__m256 a) {
    qc__exp8n_avx2(&a, 1);
    return a;
}

/* erf of n vectors in place: both branches (the series below QC__ERF_SPLIT, 1 - erfc
 * above), then blended. */
static inline __attribute__((always_inline)) void qc__erf8n_avx2(__m256 *x, const int n) {
    const __m256 sign = QC__S(-0.0f);
    __m256 z[8], z2[8], small[8], zc[8], t[8], p[8];
    QC__EACH(i, n) {
        z[i] = _mm256_andnot_ps(sign, x[i]);
        z2[i] = _mm256_mul_ps(z[i], z[i]);
        small[i] = QC__S(QC__ERF_S6);
    }
    const float series[6] = {QC__ERF_S5, QC__ERF_S4, QC__ERF_S3, QC__ERF_S2, QC__ERF_S1, QC__ERF_S0};
    qc__horner8n_avx2(small, z2, series, 6, n);
    QC__EACH(i, n) {
        small[i] = _mm256_mul_ps(z[i], small[i]);
        /* min(z, 9): z when z < 9, else 9 (also for NaN, which is blended away below) */
        zc[i] = _mm256_min_ps(z[i], QC__S(QC__ERF_ZMAX));
        t[i] = _mm256_div_ps(QC__S(1.0f), _mm256_add_ps(QC__S(1.0f), _mm256_mul_ps(QC__S(0.5f), zc[i])));
        p[i] = QC__S(QC__ERFC_P9);
    }
    const float fit[9] = {QC__ERFC_P8, QC__ERFC_P7, QC__ERFC_P6, QC__ERFC_P5, QC__ERFC_P4,
                          QC__ERFC_P3, QC__ERFC_P2, QC__ERFC_P1, QC__ERFC_P0};
    qc__horner8n_avx2(p, t, fit, 9, n);
    QC__EACH(i, n) {
        p[i] = _mm256_sub_ps(p[i], _mm256_mul_ps(zc[i], zc[i]));
    }
    qc__exp8n_avx2(p, n);
    QC__EACH(i, n) {
        __m256 e = _mm256_andnot_ps(_mm256_cmp_ps(z[i], QC__S(QC__ERF_ZMAX), _CMP_GT_OQ), _mm256_mul_ps(t[i], p[i]));
        __m256 big = _mm256_sub_ps(QC__S(1.0f), e);
        __m256 v = _mm256_blendv_ps(big, small[i], _mm256_cmp_ps(z[i], QC__S(QC__ERF_SPLIT), _CMP_LT_OQ));
        v = _mm256_or_ps(v, _mm256_and_ps(sign, x[i]));
        x[i] = _mm256_blendv_ps(v, x[i], _mm256_cmp_ps(x[i], x[i], _CMP_UNORD_Q));
    }
}

/* GELU of n vectors in place, step by step across them (as qc__exp8n_avx2). */
static inline __attribute__((always_inline)) void qc__gelu8n_avx2(__m256 *x, const int n) {
    const __m256 a = QC__S(QC__GELU_ERF_A);
    const __m256 minus_a = QC__S(-QC__GELU_ERF_A);
    __m256 u[8], uc[8], s[8], p[8], q[8];
    QC__EACH(t, n) {
        u[t] = _mm256_mul_ps(x[t], QC__S(QC__GELU_INV_SQRT2));
        /* max(u, -A) is -A for NaN (the second operand), like the scalar u > -A ? u : -A */
        uc[t] = _mm256_min_ps(_mm256_max_ps(u[t], minus_a), a);
        s[t] = _mm256_mul_ps(uc[t], uc[t]);
        p[t] = QC__S(QC__GELU_ERF_P7);
    }
    const float coef[7] = {QC__GELU_ERF_P6, QC__GELU_ERF_P5, QC__GELU_ERF_P4, QC__GELU_ERF_P3,
                           QC__GELU_ERF_P2, QC__GELU_ERF_P1, QC__GELU_ERF_P0};
    qc__horner8n_avx2(p, s, coef, 7, n);
    QC__EACH(t, n) {
        q[t] = _mm256_add_ps(s[t], QC__S(QC__GELU_ERF_Q2));
        q[t] = _mm256_add_ps(_mm256_mul_ps(q[t], s[t]), QC__S(QC__GELU_ERF_Q1));
        q[t] = _mm256_add_ps(_mm256_mul_ps(q[t], s[t]), QC__S(QC__GELU_ERF_Q0));
    }
    QC__EACH(t, n) {
        __m256 g = _mm256_add_ps(QC__S(1.0f), _mm256_mul_ps(uc[t], _mm256_div_ps(p[t], q[t])));
        __m256 y = _mm256_mul_ps(_mm256_mul_ps(QC__S(0.5f), x[t]), g);
        x[t] = _mm256_blendv_ps(y, QC__S(-0.0f), _mm256_cmp_ps(u[t], minus_a, _CMP_LT_OQ));
    }
}

/* Groups of NB vectors through fn8n, then single vectors, then the tail in a zero-padded
 * block. */
#define QC__GROUP_LOOP(fn8n, NB)                                  \
    size_t i = 0;                                                 \
    for (; i + 8 * (NB) <= n; i += 8 * (NB)) {                    \
        __m256 v[NB];                                             \
        QC__EACH(t, NB) {                                         \
            v[t] = _mm256_loadu_ps(x + i + 8 * t);                \
        }                                                         \
        fn8n(v, NB);                                              \
        QC__EACH(t, NB) {                                         \
            _mm256_storeu_ps(y + i + 8 * t, v[t]);                \
        }                                                         \
    }                                                             \
    for (; i + 8 <= n; i += 8) {                                  \
        __m256 v = _mm256_loadu_ps(x + i);                        \
        fn8n(&v, 1);                                              \
        _mm256_storeu_ps(y + i, v);                               \
    }                                                             \
    if (i < n) {                                                  \
        float buf[8] = {0};                                       \
        memcpy(buf, x + i, (n - i) * sizeof(float));              \
        __m256 v = _mm256_loadu_ps(buf);                          \
        fn8n(&v, 1);                                              \
        _mm256_storeu_ps(buf, v);                                 \
        memcpy(y + i, buf, (n - i) * sizeof(float));              \
    }

void qc_f32_erf_ukernel__avx2(const float *x, size_t n, float *y) { QC__GROUP_LOOP(qc__erf8n_avx2, QC__GROUP_NB) }

void qc_f32_gelu_ukernel__avx2(const float *x, size_t n, float *y) { QC__GROUP_LOOP(qc__gelu8n_avx2, QC__GROUP_NB) }

/* Lanes [0, n) of a vector (n in 1..7): the mask of a row's tail for maskload / maskstore. */
static inline __m256i qc__tail_mask(size_t n) {
    static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(const void *)(table + 8 - n));
}

/* Maximum of n >= 1 floats and whether one is NaN (max is exact: the lane order does not
 * matter; with a NaN the maximum is unspecified). */
static inline int qc__row_max_avx2(const float *x, size_t n, float *max_out) {
    __m256 vmax = _mm256_set1_ps(x[0]);
    __m256 vnan = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        vmax = _mm256_max_ps(vmax, v);
    }
    if (i < n) { /* the lanes past the row take x[0], which is in it */
        const __m256i mask = qc__tail_mask(n - i);
        __m256 v = _mm256_blendv_ps(_mm256_set1_ps(x[0]), _mm256_maskload_ps(x + i, mask), _mm256_castsi256_ps(mask));
        vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        vmax = _mm256_max_ps(vmax, v);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    *max_out = _mm_cvtss_f32(m4);
    return _mm256_movemask_ps(vnan) != 0;
}

int qc_f32_row_max_ukernel__avx2(const float *x, size_t n, float *max_out) { return qc__row_max_avx2(x, n, max_out); }

void qc_f32_softmax_ukernel__avx2(const float *x, size_t rows, size_t cols, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float m;
        if (qc__row_max_avx2(xr, cols, &m) || isinf(m)) {
            for (size_t c = 0; c < cols; c++) {
                yr[c] = NAN;
            }
            continue;
        }
        const __m256 vm = _mm256_set1_ps(m);
        const __m256 lo = QC__S(QC__SOFTMAX_MIN_ARG);
        __m256 acc = _mm256_setzero_ps();
        size_t i;
        /* a group of vectors' exp at once (long dependency chains); the sums keep their
         * order: acc takes e of block i, then i + 8, ... */
        for (i = 0; i + 8 * QC__GROUP_NB <= cols; i += 8 * QC__GROUP_NB) {
            __m256 v[QC__GROUP_NB], w[QC__GROUP_NB];
            __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
            QC__EACH(t, QC__GROUP_NB) {
                v[t] = _mm256_sub_ps(_mm256_loadu_ps(xr + i + 8 * t), vm);
                w[t] = _mm256_cmp_ps(v[t], lo, _CMP_LT_OQ);
                all = _mm256_and_ps(all, w[t]);
            }
            /* a block of masked-out entries (an attention mask's padding): every e is +0 anyway */
            if (_mm256_movemask_ps(all) != 0xFF) {
                QC__EACH(t, QC__GROUP_NB) {
                    v[t] = _mm256_max_ps(v[t], lo);
                }
                qc__exp8n_avx2(v, QC__GROUP_NB);
                QC__EACH(t, QC__GROUP_NB) {
                    v[t] = _mm256_andnot_ps(w[t], v[t]);
                }
            } else {
                QC__EACH(t, QC__GROUP_NB) {
                    v[t] = _mm256_setzero_ps();
                }
            }
            QC__EACH(t, QC__GROUP_NB) {
                acc = _mm256_add_ps(acc, v[t]);
                _mm256_storeu_ps(yr + i + 8 * t, v[t]);
            }
        }
        for (; i + 8 <= cols; i += 8) {
            __m256 a = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vm);
            __m256 below = _mm256_cmp_ps(a, lo, _CMP_LT_OQ);
            /* eight masked-out entries (an attention mask's padding): every e is +0 anyway */
            __m256 e = _mm256_movemask_ps(below) == 0xFF ? _mm256_setzero_ps()
                                                          : _mm256_andnot_ps(below, qc__exp8_avx2(_mm256_max_ps(a, lo)));
            acc = _mm256_add_ps(acc, e);
            _mm256_storeu_ps(yr + i, e);
        }
        const size_t tail = cols - i;
        const __m256i tail_mask = qc__tail_mask(tail ? tail : 8);
        if (tail) { /* lanes past the row: below the cut, so e = +0 (adding it changes no sum) */
            __m256 a = _mm256_blendv_ps(QC__S(QC__SOFTMAX_MIN_ARG - 1.0f),
                                        _mm256_sub_ps(_mm256_maskload_ps(xr + i, tail_mask), vm),
                                        _mm256_castsi256_ps(tail_mask));
            __m256 e = _mm256_andnot_ps(_mm256_cmp_ps(a, lo, _CMP_LT_OQ), qc__exp8_avx2(_mm256_max_ps(a, lo)));
            acc = _mm256_add_ps(acc, e);
            _mm256_maskstore_ps(yr + i, tail_mask, e);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, acc);
        const __m256 vs = _mm256_set1_ps(qc__softmax_lane_sum(lanes));
        for (i = 0; i + 8 <= cols; i += 8) {
            __m256 e = _mm256_loadu_ps(yr + i);
            if (_mm256_movemask_ps(_mm256_cmp_ps(e, _mm256_setzero_ps(), _CMP_NEQ_UQ)) != 0) { /* 0 / s = +0 */
                _mm256_storeu_ps(yr + i, _mm256_div_ps(e, vs));
            }
        }
        if (tail) { /* one IEEE division per element, as the scalar e / s */
            _mm256_maskstore_ps(yr + i, tail_mask, _mm256_div_ps(_mm256_maskload_ps(yr + i, tail_mask), vs));
        }
    }
}

/* Four rows in turn, 8 columns at a time: the one-row loop's operations per row (so its
 * bits), with four rows' exp chains in flight at once for short rows. */
void qc_f32_softmax4_ukernel__avx2(float *y, size_t stride, size_t n, const float max[4]) {
    const __m256 lo = QC__S(QC__SOFTMAX_MIN_ARG);
    __m256 vm[4], acc[4];
    for (int r = 0; r < 4; r++) {
        vm[r] = _mm256_set1_ps(max[r]);
        acc[r] = _mm256_setzero_ps();
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v[4], w[4];
        for (int r = 0; r < 4; r++) {
            v[r] = _mm256_sub_ps(_mm256_loadu_ps(y + r * stride + i), vm[r]);
            w[r] = _mm256_cmp_ps(v[r], lo, _CMP_LT_OQ);
            v[r] = _mm256_max_ps(v[r], lo);
        }
        qc__exp8n_avx2(v, 4);
        for (int r = 0; r < 4; r++) {
            const __m256 e = _mm256_andnot_ps(w[r], v[r]);
            acc[r] = _mm256_add_ps(acc[r], e);
            _mm256_storeu_ps(y + r * stride + i, e);
        }
    }
    const size_t tail = n - i;
    const __m256i tail_mask = qc__tail_mask(tail ? tail : 8);
    if (tail) { /* lanes past the row: below the cut, so e = +0 (adding it changes no sum) */
        for (int r = 0; r < 4; r++) {
            float *yr = y + r * stride + i;
            __m256 a = _mm256_blendv_ps(QC__S(QC__SOFTMAX_MIN_ARG - 1.0f),
                                        _mm256_sub_ps(_mm256_maskload_ps(yr, tail_mask), vm[r]),
                                        _mm256_castsi256_ps(tail_mask));
            __m256 e = _mm256_andnot_ps(_mm256_cmp_ps(a, lo, _CMP_LT_OQ), qc__exp8_avx2(_mm256_max_ps(a, lo)));
            acc[r] = _mm256_add_ps(acc[r], e);
            _mm256_maskstore_ps(yr, tail_mask, e);
        }
    }
    for (int r = 0; r < 4; r++) {
        float lanes[8];
        _mm256_storeu_ps(lanes, acc[r]);
        const __m256 vs = _mm256_set1_ps(qc__softmax_lane_sum(lanes));
        float *yr = y + r * stride;
        for (i = 0; i + 8 <= n; i += 8) {
            _mm256_storeu_ps(yr + i, _mm256_div_ps(_mm256_loadu_ps(yr + i), vs));
        }
        if (tail) { /* one IEEE division per element, as the scalar e / s */
            _mm256_maskstore_ps(yr + i, tail_mask, _mm256_div_ps(_mm256_maskload_ps(yr + i, tail_mask), vs));
        }
    }
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
