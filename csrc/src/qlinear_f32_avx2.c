/*
 * AVX2 row kernels of the dynamic linear layer (qlinear_f32.h), bit-identical to the scalar
 * twins in qlinear_f32_scalar.c:
 *   - the epilogue: vcvtdq2ps rounds to nearest even (the default MXCSR mode, as the scalar
 *     conversion), then one float32 multiply by the float32 product x_scale * w_scale[j]
 *     and one add, no FMA;
 *   - the smoothing product and min/max: one vmulps per 8 products (IEEE, as the scalar
 *     multiply), min/max exact in any order (NaN reported separately);
 *   - quantization into packed A: the operations of qc_f32_q8_quantize_ukernel__avx2
 *     (vdivps, vroundps half to even, clamp to [-zp, 255 - zp] as floats, truncating
 *     conversion of the integral value) without adding the zero point back: the result is
 *     already q - zp, which vpackssdw narrows to int16 exactly ([-255, 255]).
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#include <immintrin.h>

QC__AVX2_BEGIN

#include <string.h>

#include "elementwise.h"
#include "elementwise_avx2.h"
#include "gemm_internal.h"
#include "qlinear_f32.h"

void qc_s32_f32_dequant_bias_ukernel__avx2(size_t rows, size_t n, void *buf, size_t stride, const float *x_scale,
                                           const float *w_scale, int per_column, const float *bias) {
    const size_t n8 = n / 8 * 8;
    const __m256 ws0 = _mm256_set1_ps(w_scale[0]);
    for (size_t r = 0; r < rows; r++) { /* row by row: C is read once, in order */
        unsigned char *p = (unsigned char *)buf + r * stride * 4;
        const __m256 xs = _mm256_set1_ps(x_scale[r]);
        for (size_t j = 0; j < n8; j += 8) {
            const __m256 acc = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(void *)(p + 4 * j)));
            __m256 v = _mm256_mul_ps(acc, _mm256_mul_ps(xs, per_column ? _mm256_loadu_ps(w_scale + j) : ws0));
            if (bias != NULL) {
                v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
            }
            _mm256_storeu_ps((float *)(void *)(p + 4 * j), v);
        }
        if (n8 < n) {
            qc_s32_f32_dequant_bias_ukernel__scalar(1, n - n8, p + 4 * n8, stride, x_scale + r,
                                                    per_column ? w_scale + n8 : w_scale, per_column,
                                                    bias != NULL ? bias + n8 : NULL);
        }
    }
}

int qc_f32_mul_minmax_ukernel__avx2(size_t n, const float *x, const float *mul, float *prod, float *min_out,
                                    float *max_out) {
    return qc__minmax_avx2(n, x, mul, prod, min_out, max_out);
}

/* clamp(round_half_even(x / scale), lo, hi) as int32 (lo = -zp, hi = 255 - zp). A NaN
 * quotient is flagged in nan_acc (vmaxps then returns lo, as the scalar twin does). */
static inline __m256i qc__centered_q8(__m256 x, __m256 scale, __m256 lo, __m256 hi, __m256 *nan_acc) {
    __m256 q = _mm256_div_ps(x, scale);
    *nan_acc = _mm256_or_ps(*nan_acc, _mm256_cmp_ps(q, q, _CMP_UNORD_Q));
    q = _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
    return _mm256_cvttps_epi32(q);
}

/* Stores 4 int16 values (the low or high 64 bits of v) as one k group. */
static inline void qc__store_group_lo(int16_t *d, __m128i v) { _mm_storel_epi64((__m128i *)(void *)d, v); }
static inline void qc__store_group_hi(int16_t *d, __m128i v) {
    _mm_storeh_pd((double *)(void *)d, _mm_castsi128_pd(v));
}

int qc_f32_qu8_quantize_centered_pack_ukernel__avx2(size_t k, size_t kp, const float *x, float scale,
                                                    int32_t zero_point, size_t mr, int16_t *dst, int32_t *rowsum) {
    const size_t step = mr * QC__GEMM_KG; /* int16 values from one k group of a row to the next */
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps((float)(0 - zero_point));
    const __m256 hi = _mm256_set1_ps((float)(255 - zero_point));
    __m256 nan_acc = _mm256_setzero_ps();
    __m256i sums = _mm256_setzero_si256();
    size_t kk = 0;
    /* 16 values: vpackssdw of (0-7, 8-15) gives k 0-3, 8-11 | 4-7, 12-15 (per 128-bit lane),
     * that is groups g, g + 2 | g + 1, g + 3. */
    for (; kk + 16 <= k; kk += 16) {
        const __m256i a = qc__centered_q8(_mm256_loadu_ps(x + kk), vscale, lo, hi, &nan_acc);
        const __m256i b = qc__centered_q8(_mm256_loadu_ps(x + kk + 8), vscale, lo, hi, &nan_acc);
        sums = _mm256_add_epi32(sums, _mm256_add_epi32(a, b));
        const __m256i p = _mm256_packs_epi32(a, b);
        const __m128i p_lo = _mm256_castsi256_si128(p), p_hi = _mm256_extracti128_si256(p, 1);
        int16_t *d = dst + (kk / QC__GEMM_KG) * step;
        qc__store_group_lo(d, p_lo);
        qc__store_group_lo(d + step, p_hi);
        qc__store_group_hi(d + 2 * step, p_lo);
        qc__store_group_hi(d + 3 * step, p_hi);
    }
    /* 8 values, then the last 1-7 zero-padded to 8 (a padding 0 quantizes to the centred
     * value 0, which the layout wants past k), each as two groups. */
    while (kk < k) {
        __m256 v;
        if (kk + 8 <= k) {
            v = _mm256_loadu_ps(x + kk);
        } else {
            float tail[8] = {0};
            memcpy(tail, x + kk, (k - kk) * sizeof(float));
            v = _mm256_loadu_ps(tail);
        }
        const __m256i a = qc__centered_q8(v, vscale, lo, hi, &nan_acc);
        sums = _mm256_add_epi32(sums, a);
        const __m256i p = _mm256_packs_epi32(a, a);
        int16_t *d = dst + (kk / QC__GEMM_KG) * step;
        qc__store_group_lo(d, _mm256_castsi256_si128(p));
        if (kk + 4 < kp) {
            qc__store_group_lo(d + step, _mm256_extracti128_si256(p, 1));
        }
        kk += 8;
    }
    /* groups past the last value (none when kp is k rounded up to 4) */
    for (size_t g = (k + QC__GEMM_KG - 1) / QC__GEMM_KG; g < kp / QC__GEMM_KG; g++) {
        memset(dst + g * step, 0, QC__GEMM_KG * sizeof(int16_t));
    }
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    *rowsum = _mm_cvtsi128_si32(s4);
    return _mm256_movemask_ps(nan_acc) != 0;
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
