/*
 * Inline AVX2 helpers shared by the AVX2 element-wise kernels. Include only from a source
 * that has already enabled AVX2 (#pragma GCC target / clang attribute) and immintrin.h.
 */
#ifndef QCORE_ELEMENTWISE_AVX2_H
#define QCORE_ELEMENTWISE_AVX2_H

/* Low bytes of 32 int32 values in [-128, 255], in order. */
static inline void qc__store_low8x32_avx2(uint8_t *y, __m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i byte = _mm256_set1_epi32(0xFF);
    __m256i ab = _mm256_packs_epi32(_mm256_and_si256(a, byte), _mm256_and_si256(b, byte));
    __m256i cd = _mm256_packs_epi32(_mm256_and_si256(c, byte), _mm256_and_si256(d, byte));
    __m256i abcd = _mm256_packus_epi16(ab, cd);
    abcd = _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)y, abcd);
}

/* Low 16 bits of 16 int32 values in [-32768, 65535], in order. */
static inline void qc__store_low16x16_avx2(uint16_t *y, __m256i a, __m256i b) {
    const __m256i half = _mm256_set1_epi32(0xFFFF);
    __m256i ab = _mm256_packus_epi32(_mm256_and_si256(a, half), _mm256_and_si256(b, half));
    _mm256_storeu_si256((__m256i *)y, _mm256_permute4x64_epi64(ab, 0xD8));
}

/* qc__minmax_scalar (elementwise.h) on 8 lanes: the minimum and maximum of x[i], or of
 * x[i] * mul[i] stored in prod[i] when mul is not NULL; returns 1 when a value is NaN. */
static inline __attribute__((always_inline)) int qc__minmax_avx2(size_t n, const float *x, const float *mul,
                                                                 float *prod, float *min_out, float *max_out) {
    __m256 vmin = _mm256_set1_ps(mul != NULL ? x[0] * mul[0] : x[0]);
    __m256 vmax = vmin;
    __m256 nan_acc = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        if (mul != NULL) {
            v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + i));
            _mm256_storeu_ps(prod + i, v);
        }
        nan_acc = _mm256_or_ps(nan_acc, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        vmin = _mm256_min_ps(vmin, v);
        vmax = _mm256_max_ps(vmax, v);
    }
    float lo_lanes[8], hi_lanes[8];
    _mm256_storeu_ps(lo_lanes, vmin);
    _mm256_storeu_ps(hi_lanes, vmax);
    float lo = lo_lanes[0];
    float hi = hi_lanes[0];
    for (int l = 1; l < 8; l++) {
        lo = lo_lanes[l] < lo ? lo_lanes[l] : lo;
        hi = hi_lanes[l] > hi ? hi_lanes[l] : hi;
    }
    int nan_seen = _mm256_movemask_ps(nan_acc) != 0;
    for (; i < n; i++) {
        float v = x[i];
        if (mul != NULL) {
            v = v * mul[i];
            prod[i] = v;
        }
        nan_seen |= v != v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *min_out = lo;
    *max_out = hi;
    return nan_seen;
}

#endif /* QCORE_ELEMENTWISE_AVX2_H */
