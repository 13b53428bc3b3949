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

static inline __m256 qc__exp8_avx2(__m256 a) {
    __m256 kf = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(a, QC__S(QC__EXP_LOG2E)), QC__S(QC__EXP_ROUND)),
                              QC__S(QC__EXP_ROUND));
    __m256 r = _mm256_sub_ps(_mm256_sub_ps(a, _mm256_mul_ps(kf, QC__S(QC__EXP_LN2_HI))),
                             _mm256_mul_ps(kf, QC__S(QC__EXP_LN2_LO)));
    __m256 p = QC__S(QC__EXP_C7);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), QC__S(QC__EXP_C6));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), QC__S(QC__EXP_C5));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), QC__S(QC__EXP_C4));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), QC__S(QC__EXP_C3));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), QC__S(QC__EXP_C2));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), QC__S(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), QC__S(1.0f));
    __m256i k = _mm256_cvttps_epi32(kf);
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(p, scale);
}

static inline __m256 qc__erf_series8_avx2(__m256 z) {
    __m256 z2 = _mm256_mul_ps(z, z);
    __m256 s = QC__S(QC__ERF_S6);
    s = _mm256_add_ps(_mm256_mul_ps(s, z2), QC__S(QC__ERF_S5));
    s = _mm256_add_ps(_mm256_mul_ps(s, z2), QC__S(QC__ERF_S4));
    s = _mm256_add_ps(_mm256_mul_ps(s, z2), QC__S(QC__ERF_S3));
    s = _mm256_add_ps(_mm256_mul_ps(s, z2), QC__S(QC__ERF_S2));
    s = _mm256_add_ps(_mm256_mul_ps(s, z2), QC__S(QC__ERF_S1));
    s = _mm256_add_ps(_mm256_mul_ps(s, z2), QC__S(QC__ERF_S0));
    return _mm256_mul_ps(z, s);
}

static inline __m256 qc__erfc_big8_avx2(__m256 z) {
    /* min(z, 9): z when z < 9, else 9 (also for NaN, which the caller blends away). */
    __m256 zc = _mm256_min_ps(z, QC__S(QC__ERF_ZMAX));
    __m256 t = _mm256_div_ps(QC__S(1.0f), _mm256_add_ps(QC__S(1.0f), _mm256_mul_ps(QC__S(0.5f), zc)));
    __m256 p = QC__S(QC__ERFC_P9);
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P8));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P7));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P6));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P5));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P4));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P3));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P2));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P1));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), QC__S(QC__ERFC_P0));
    __m256 e = _mm256_mul_ps(t, qc__exp8_avx2(_mm256_sub_ps(p, _mm256_mul_ps(zc, zc))));
    return _mm256_andnot_ps(_mm256_cmp_ps(z, QC__S(QC__ERF_ZMAX), _CMP_GT_OQ), e);
}

static inline __m256 qc__erf8_avx2(__m256 x) {
    const __m256 sign = QC__S(-0.0f);
    __m256 z = _mm256_andnot_ps(sign, x);
    __m256 small = qc__erf_series8_avx2(z);
    __m256 big = _mm256_sub_ps(QC__S(1.0f), qc__erfc_big8_avx2(z));
    __m256 v = _mm256_blendv_ps(big, small, _mm256_cmp_ps(z, QC__S(QC__ERF_SPLIT), _CMP_LT_OQ));
    v = _mm256_or_ps(v, _mm256_and_ps(sign, x));
    return _mm256_blendv_ps(v, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

static inline __m256 qc__gelu8_avx2(__m256 x) {
    const __m256 a = QC__S(QC__GELU_ERF_A);
    const __m256 minus_a = QC__S(-QC__GELU_ERF_A);
    __m256 u = _mm256_mul_ps(x, QC__S(QC__GELU_INV_SQRT2));
    /* max(u, -A) is -A for NaN (the second operand), like the scalar u > -A ? u : -A */
    __m256 uc = _mm256_min_ps(_mm256_max_ps(u, minus_a), a);
    __m256 s = _mm256_mul_ps(uc, uc);
    __m256 p = QC__S(QC__GELU_ERF_P7);
    p = _mm256_add_ps(_mm256_mul_ps(p, s), QC__S(QC__GELU_ERF_P6));
    p = _mm256_add_ps(_mm256_mul_ps(p, s), QC__S(QC__GELU_ERF_P5));
    p = _mm256_add_ps(_mm256_mul_ps(p, s), QC__S(QC__GELU_ERF_P4));
    p = _mm256_add_ps(_mm256_mul_ps(p, s), QC__S(QC__GELU_ERF_P3));
    p = _mm256_add_ps(_mm256_mul_ps(p, s), QC__S(QC__GELU_ERF_P2));
    p = _mm256_add_ps(_mm256_mul_ps(p, s), QC__S(QC__GELU_ERF_P1));
    p = _mm256_add_ps(_mm256_mul_ps(p, s), QC__S(QC__GELU_ERF_P0));
    __m256 q = _mm256_add_ps(s, QC__S(QC__GELU_ERF_Q2));
    q = _mm256_add_ps(_mm256_mul_ps(q, s), QC__S(QC__GELU_ERF_Q1));
    q = _mm256_add_ps(_mm256_mul_ps(q, s), QC__S(QC__GELU_ERF_Q0));
    __m256 g = _mm256_add_ps(QC__S(1.0f), _mm256_mul_ps(uc, _mm256_div_ps(p, q)));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(QC__S(0.5f), x), g);
    return _mm256_blendv_ps(y, QC__S(-0.0f), _mm256_cmp_ps(u, minus_a, _CMP_LT_OQ));
}

/* Four independent vectors per iteration: their long dependency chains (Horner, exp,
 * divisions) overlap in the out-of-order core; each lane's operations are unchanged. */
#define QC__ACTIVATION_LOOP(fn8)                         \
    size_t i = 0;                                        \
    for (; i + 32 <= n; i += 32) {                       \
        __m256 a0 = fn8(_mm256_loadu_ps(x + i));         \
        __m256 a1 = fn8(_mm256_loadu_ps(x + i + 8));     \
        __m256 a2 = fn8(_mm256_loadu_ps(x + i + 16));    \
        __m256 a3 = fn8(_mm256_loadu_ps(x + i + 24));    \
        _mm256_storeu_ps(y + i, a0);                     \
        _mm256_storeu_ps(y + i + 8, a1);                 \
        _mm256_storeu_ps(y + i + 16, a2);                \
        _mm256_storeu_ps(y + i + 24, a3);                \
    }                                                    \
    for (; i + 8 <= n; i += 8) {                         \
        _mm256_storeu_ps(y + i, fn8(_mm256_loadu_ps(x + i))); \
    }                                                    \
    if (i < n) {                                         \
        float buf[8] = {0};                              \
        memcpy(buf, x + i, (n - i) * sizeof(float));     \
        _mm256_storeu_ps(buf, fn8(_mm256_loadu_ps(buf))); \
        memcpy(y + i, buf, (n - i) * sizeof(float));     \
    }

void qc_f32_erf_ukernel__avx2(const float *x, size_t n, float *y) { QC__ACTIVATION_LOOP(qc__erf8_avx2) }

void qc_f32_gelu_ukernel__avx2(const float *x, size_t n, float *y) { QC__ACTIVATION_LOOP(qc__gelu8_avx2) }

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
        /* four vectors' exp in flight at once (long dependency chains); the sums keep
         * their order: acc takes e of block i, then i + 8, ... */
        for (i = 0; i + 32 <= cols; i += 32) {
            __m256 a0 = _mm256_sub_ps(_mm256_loadu_ps(xr + i), vm);
            __m256 a1 = _mm256_sub_ps(_mm256_loadu_ps(xr + i + 8), vm);
            __m256 a2 = _mm256_sub_ps(_mm256_loadu_ps(xr + i + 16), vm);
            __m256 a3 = _mm256_sub_ps(_mm256_loadu_ps(xr + i + 24), vm);
            const __m256 w0 = _mm256_cmp_ps(a0, lo, _CMP_LT_OQ), w1 = _mm256_cmp_ps(a1, lo, _CMP_LT_OQ);
            const __m256 w2 = _mm256_cmp_ps(a2, lo, _CMP_LT_OQ), w3 = _mm256_cmp_ps(a3, lo, _CMP_LT_OQ);
            __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0;
            /* 32 masked-out entries (an attention mask's padding): every e is +0 anyway */
            if (_mm256_movemask_ps(_mm256_and_ps(_mm256_and_ps(w0, w1), _mm256_and_ps(w2, w3))) != 0xFF) {
                e0 = _mm256_andnot_ps(w0, qc__exp8_avx2(_mm256_max_ps(a0, lo)));
                e1 = _mm256_andnot_ps(w1, qc__exp8_avx2(_mm256_max_ps(a1, lo)));
                e2 = _mm256_andnot_ps(w2, qc__exp8_avx2(_mm256_max_ps(a2, lo)));
                e3 = _mm256_andnot_ps(w3, qc__exp8_avx2(_mm256_max_ps(a3, lo)));
            }
            acc = _mm256_add_ps(acc, e0);
            acc = _mm256_add_ps(acc, e1);
            acc = _mm256_add_ps(acc, e2);
            acc = _mm256_add_ps(acc, e3);
            _mm256_storeu_ps(yr + i, e0);
            _mm256_storeu_ps(yr + i + 8, e1);
            _mm256_storeu_ps(yr + i + 16, e2);
            _mm256_storeu_ps(yr + i + 24, e3);
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
        for (int r = 0; r < 4; r++) {
            float *yr = y + r * stride + i;
            __m256 a = _mm256_sub_ps(_mm256_loadu_ps(yr), vm[r]);
            __m256 e = _mm256_andnot_ps(_mm256_cmp_ps(a, lo, _CMP_LT_OQ), qc__exp8_avx2(_mm256_max_ps(a, lo)));
            acc[r] = _mm256_add_ps(acc[r], e);
            _mm256_storeu_ps(yr, e);
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
