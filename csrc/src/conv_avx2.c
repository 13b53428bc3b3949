/*
 * AVX2 direct-convolution microkernels, bit-identical to the __scalar twins in
 * conv_scalar.c. Operands are int16 (input centred by its zero point, weights by theirs,
 * both within [-255, 255]); vpmaddwd multiplies pairs of int16 and adds each pair into
 * int32, exact because a pair sum is at most 2 * 255 * 255 (its one saturating case,
 * -32768 * -32768 twice, cannot occur), and vpaddd accumulates with int32 wrap-around.
 * Per channel pair: one 32-bit broadcast of each row's two input values, one (6x8) or two
 * (6x16) weight loads, 6 or 12 vpmaddwd + vpaddd (12 accumulators, 2 weights and the
 * broadcast: 15 of the 16 ymm registers).
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#include <immintrin.h>

QC__AVX2_BEGIN

#include <string.h>

#include "conv_internal.h"

static inline __m256i qc__bcast_pair(const int16_t *a) {
    int32_t v;
    memcpy(&v, a, sizeof(v));
    return _mm256_set1_epi32(v);
}

static inline void qc__store_rows(const __m256i *acc, size_t nv, int32_t *c, size_t c_stride, size_t rows,
                                  size_t cols) {
    int32_t tmp[16];
    for (size_t i = 0; i < rows; i++) {
        if (cols == 8 * nv) {
            for (size_t v = 0; v < nv; v++) {
                _mm256_storeu_si256((__m256i *)(c + i * c_stride + 8 * v), acc[i * nv + v]);
            }
        } else {
            for (size_t v = 0; v < nv; v++) {
                _mm256_storeu_si256((__m256i *)(tmp + 8 * v), acc[i * nv + v]);
            }
            memcpy(c + i * c_stride, tmp, cols * sizeof(int32_t));
        }
    }
}

/* One row of the tile: broadcast its two input values, multiply-add both panels. */
#define QC__ROW2(i)                                                    \
    do {                                                               \
        __m256i x = qc__bcast_pair(a##i + 2 * p);                      \
        c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(x, b0)); \
        c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(x, b1)); \
    } while (0)

void qc_s16_conv_ukernel_6x16__avx2(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
                                    const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows,
                                    size_t cols) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (size_t t = 0; t < taps; t++) {
        const int16_t *const *row = ptrs + QC__CONV_MR * t;
        const int16_t *a0 = row[0] + a_offset, *a1 = row[1] + a_offset, *a2 = row[2] + a_offset;
        const int16_t *a3 = row[3] + a_offset, *a4 = row[4] + a_offset, *a5 = row[5] + a_offset;
        const int16_t *b0p = w0 + t * pairs * 16, *b1p = w1 + t * pairs * 16;
        for (size_t p = 0; p < pairs; p++) {
            __m256i b0 = _mm256_loadu_si256((const __m256i *)(b0p + 16 * p));
            __m256i b1 = _mm256_loadu_si256((const __m256i *)(b1p + 16 * p));
            QC__ROW2(0);
            QC__ROW2(1);
            QC__ROW2(2);
            QC__ROW2(3);
            QC__ROW2(4);
            QC__ROW2(5);
        }
    }
    __m256i acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    qc__store_rows(acc, 2, c, c_stride, rows, cols);
}

void qc_s16_conv_ukernel_6x8__avx2(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
                                   const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows,
                                   size_t cols) {
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (size_t t = 0; t < taps; t++) {
        const int16_t *const *row = ptrs + QC__CONV_MR * t;
        const int16_t *a0 = row[0] + a_offset, *a1 = row[1] + a_offset, *a2 = row[2] + a_offset;
        const int16_t *a3 = row[3] + a_offset, *a4 = row[4] + a_offset, *a5 = row[5] + a_offset;
        const int16_t *bp = w0 + t * pairs * 16;
        for (size_t p = 0; p < pairs; p++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(bp + 16 * p));
            c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(qc__bcast_pair(a0 + 2 * p), b));
            c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(qc__bcast_pair(a1 + 2 * p), b));
            c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(qc__bcast_pair(a2 + 2 * p), b));
            c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(qc__bcast_pair(a3 + 2 * p), b));
            c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(qc__bcast_pair(a4 + 2 * p), b));
            c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(qc__bcast_pair(a5 + 2 * p), b));
        }
    }
    __m256i acc[6] = {c0, c1, c2, c3, c4, c5};
    qc__store_rows(acc, 1, c, c_stride, rows, cols);
}

void qc_s32_conv_quantize_ukernel__avx2(size_t rows, size_t n, const int32_t *acc, const float *multiplier,
                                        int per_channel, const float *bias, float scale, int32_t zero_point,
                                        int32_t lo, int32_t hi, uint8_t *y) {
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256 qlo = _mm256_set1_ps((float)(lo - zero_point)), qhi = _mm256_set1_ps((float)(hi - zero_point));
    const __m256i vzp = _mm256_set1_epi32(zero_point);
    const size_t vec = n / 8 * 8;
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * n;
        uint8_t *out = y + r * n;
        for (size_t j = 0; j < vec; j += 8) {
            __m256 m = per_channel ? _mm256_loadu_ps(multiplier + j) : _mm256_set1_ps(multiplier[0]);
            __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(a + j))), m);
            if (bias != NULL) {
                f = _mm256_add_ps(f, _mm256_loadu_ps(bias + j));
            }
            __m256 q = _mm256_round_ps(_mm256_div_ps(f, vscale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm256_min_ps(_mm256_max_ps(q, qlo), qhi);
            __m256i v = _mm256_add_epi32(_mm256_cvttps_epi32(q), vzp);
            /* in-range int32 -> bytes: keep the low byte of each lane */
            __m128i lo4 = _mm256_castsi256_si128(v), hi4 = _mm256_extracti128_si256(v, 1);
            __m128i shuffle = _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
            uint32_t b0 = (uint32_t)_mm_cvtsi128_si32(_mm_shuffle_epi8(lo4, shuffle));
            uint32_t b1 = (uint32_t)_mm_cvtsi128_si32(_mm_shuffle_epi8(hi4, shuffle));
            memcpy(out + j, &b0, 4);
            memcpy(out + j + 4, &b1, 4);
        }
        if (vec < n) {
            qc_s32_conv_quantize_ukernel__scalar(1, n - vec, a + vec, per_channel ? multiplier + vec : multiplier,
                                                 per_channel, bias != NULL ? bias + vec : NULL, scale, zero_point,
                                                 lo, hi, out + vec);
        }
    }
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
