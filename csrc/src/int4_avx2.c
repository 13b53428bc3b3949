/*
 * AVX2 int4 / uint4 pack and unpack (ONNX nibble order), bit-identical to the scalar
 * kernels in int4.c. Pack: vpmaddubsw of the masked nibbles with (1, 16) pairs gives
 * low | high << 4 per byte pair; unpack splits the nibbles and interleaves them back.
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#include <immintrin.h>

QC__AVX2_BEGIN

#include <string.h>

#include "elementwise.h"

/* Packs 64 values into 32 bytes; ORs out-of-range bits into *bad. */
static inline void qc__pack64_avx2(const int8_t *values, int is_signed, uint8_t *packed, __m256i *bad) {
    const __m256i low_nibble = _mm256_set1_epi8(0x0F);
    const __m256i high_nibble = _mm256_set1_epi8((char)0xF0);
    const __m256i bias = _mm256_set1_epi8(is_signed ? 8 : 0);
    const __m256i weights = _mm256_set1_epi16(0x1001); /* bytes (1, 16): low + 16 * high */
    __m256i v0 = _mm256_loadu_si256((const __m256i *)values);
    __m256i v1 = _mm256_loadu_si256((const __m256i *)(values + 32));
    *bad = _mm256_or_si256(*bad, _mm256_and_si256(_mm256_add_epi8(v0, bias), high_nibble));
    *bad = _mm256_or_si256(*bad, _mm256_and_si256(_mm256_add_epi8(v1, bias), high_nibble));
    __m256i p0 = _mm256_maddubs_epi16(_mm256_and_si256(v0, low_nibble), weights);
    __m256i p1 = _mm256_maddubs_epi16(_mm256_and_si256(v1, low_nibble), weights);
    __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(p0, p1), 0xD8);
    _mm256_storeu_si256((__m256i *)packed, bytes);
}

int qc_q4_pack_ukernel__avx2(size_t n, const int8_t *values, int is_signed, uint8_t *packed) {
    __m256i bad = _mm256_setzero_si256();
    for (; n >= 64; n -= 64, values += 64, packed += 32) {
        qc__pack64_avx2(values, is_signed, packed, &bad);
    }
    if (n > 0) {
        int8_t vb[64] = {0};
        uint8_t pb[32];
        memcpy(vb, values, n);
        qc__pack64_avx2(vb, is_signed, pb, &bad);
        memcpy(packed, pb, (n + 1) / 2);
    }
    return !_mm256_testz_si256(bad, bad);
}

static inline void qc__unpack64_avx2(const uint8_t *packed, int is_signed, int8_t *values) {
    const __m256i low_nibble = _mm256_set1_epi8(0x0F);
    const __m256i sign = _mm256_set1_epi8(is_signed ? 8 : 0);
    __m256i b = _mm256_loadu_si256((const __m256i *)packed);
    __m256i lo = _mm256_and_si256(b, low_nibble);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), low_nibble);
    /* Sign extension of int4: (v ^ 8) - 8; a no-op for uint4 (sign == 0). */
    lo = _mm256_sub_epi8(_mm256_xor_si256(lo, sign), sign);
    hi = _mm256_sub_epi8(_mm256_xor_si256(hi, sign), sign);
    __m256i a = _mm256_unpacklo_epi8(lo, hi);
    __m256i c = _mm256_unpackhi_epi8(lo, hi);
    _mm256_storeu_si256((__m256i *)values, _mm256_permute2x128_si256(a, c, 0x20));
    _mm256_storeu_si256((__m256i *)(values + 32), _mm256_permute2x128_si256(a, c, 0x31));
}

void qc_q4_unpack_ukernel__avx2(size_t n, const uint8_t *packed, int is_signed, int8_t *values) {
    for (; n >= 64; n -= 64, packed += 32, values += 64) {
        qc__unpack64_avx2(packed, is_signed, values);
    }
    if (n > 0) {
        uint8_t pb[32] = {0};
        int8_t vb[64];
        memcpy(pb, packed, (n + 1) / 2);
        qc__unpack64_avx2(pb, is_signed, vb);
        memcpy(values, vb, n);
    }
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
