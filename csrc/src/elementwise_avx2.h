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

#endif /* QCORE_ELEMENTWISE_AVX2_H */
