/*
 * AVX2 requantization kernels, bit-identical to the __scalar twins (requant.h formulas).
 *
 * Float form: (float)(acc + bias) * multiplier, vroundps half to even, clamp to
 * [lo - zp, hi - zp] (integers; equal to clamping after adding zp), + zp.
 * Fixed-point form: the saturating left shift (sllv / srav round trip detects overflow),
 * SaturatingRoundingDoublingHighMul from two vpmuldq halves (floor((a*b + 2^30) / 2^31)
 * equals gemmlowp's nudge-and-truncate; INT32_MIN * INT32_MIN saturates), and
 * RoundingDivideByPOT with gemmlowp's remainder / threshold rule, per-lane exponents.
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#include <immintrin.h>

QC__AVX2_BEGIN

#include <string.h>

#include "elementwise.h"
#include "elementwise_avx2.h"

static inline __m256i qc__requant_float_avx2(__m256i acc, __m256i bias, __m256 multiplier, __m256i zp, __m256i lo,
                                             __m256i hi) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc, bias)), multiplier);
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 lo_f = _mm256_cvtepi32_ps(_mm256_sub_epi32(lo, zp));
    __m256 hi_f = _mm256_cvtepi32_ps(_mm256_sub_epi32(hi, zp));
    v = _mm256_min_ps(_mm256_max_ps(v, lo_f), hi_f);
    return _mm256_add_epi32(_mm256_cvttps_epi32(v), zp);
}

static inline __m256i qc__srdhm_avx2(__m256i a, __m256i b) {
    const __m256i nudge = _mm256_set1_epi64x(1ll << 30);
    const __m256i int_min = _mm256_set1_epi32(INT32_MIN);
    __m256i even = _mm256_add_epi64(_mm256_mul_epi32(a, b), nudge);
    __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32)), nudge);
    /* Bits 31..62 of each 64-bit product: the even ones to the low dword, the odd to the high. */
    __m256i r = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
    __m256i overflow = _mm256_and_si256(_mm256_cmpeq_epi32(a, int_min), _mm256_cmpeq_epi32(b, int_min));
    return _mm256_xor_si256(r, overflow); /* INT32_MIN ^ ~0 == INT32_MAX */
}

static inline __m256i qc__rounding_divide_by_pot_avx2(__m256i x, __m256i exponent) {
    const __m256i one = _mm256_set1_epi32(1);
    __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, exponent), one);
    __m256i remainder = _mm256_and_si256(x, mask);
    __m256i threshold = _mm256_sub_epi32(_mm256_srli_epi32(mask, 1), _mm256_cmpgt_epi32(_mm256_setzero_si256(), x));
    return _mm256_sub_epi32(_mm256_srav_epi32(x, exponent), _mm256_cmpgt_epi32(remainder, threshold));
}

static inline __m256i qc__saturating_shift_left_avx2(__m256i x, __m256i left) {
    __m256i shifted = _mm256_sllv_epi32(x, left);
    __m256i fits = _mm256_cmpeq_epi32(_mm256_srav_epi32(shifted, left), x);
    __m256i saturated = _mm256_xor_si256(_mm256_srai_epi32(x, 31), _mm256_set1_epi32(INT32_MAX));
    return _mm256_blendv_epi8(saturated, shifted, fits);
}

static inline __m256i qc__requant_fixed_avx2(__m256i acc, __m256i bias, __m256i multiplier, __m256i shift, __m256i zp,
                                             __m256i lo, __m256i hi) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i left = _mm256_max_epi32(shift, zero);
    __m256i right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
    __m256i x = qc__saturating_shift_left_avx2(_mm256_add_epi32(acc, bias), left);
    x = qc__rounding_divide_by_pot_avx2(qc__srdhm_avx2(x, multiplier), right);
    x = _mm256_min_epi32(_mm256_max_epi32(x, _mm256_sub_epi32(lo, zp)), _mm256_sub_epi32(hi, zp));
    return _mm256_add_epi32(x, zp);
}

static inline __m256i qc__load_or_zero(const int32_t *p) {
    return p ? _mm256_loadu_si256((const __m256i *)p) : _mm256_setzero_si256();
}

/* Parameters of 8 lanes: broadcast values (row kernels) or per-lane arrays (channel kernels). */
typedef struct {
    __m256i bias, zp, multiplier_q, shift;
    __m256 multiplier_f;
} qc__rq_params;

static inline qc__rq_params qc__rq_channel_params(size_t i, const int32_t *bias, const float *mf, const int32_t *mq,
                                                 const int32_t *shifts, const int32_t *zps) {
    qc__rq_params p;
    p.bias = qc__load_or_zero(bias ? bias + i : NULL);
    p.zp = qc__load_or_zero(zps ? zps + i : NULL);
    p.multiplier_f = mf ? _mm256_loadu_ps(mf + i) : _mm256_setzero_ps();
    p.multiplier_q = qc__load_or_zero(mq ? mq + i : NULL);
    p.shift = qc__load_or_zero(shifts ? shifts + i : NULL);
    return p;
}

/* One block of 32 outputs; fixed selects the form. */
/* always_inline: `fixed` is a constant at every call, so each form compiles to its own loop. */
static inline __attribute__((always_inline)) void qc__requant_block_avx2(const int32_t *acc, const qc__rq_params *p,
                                                                         int fixed, __m256i lo, __m256i hi,
                                                                         uint8_t *y) {
    __m256i r[4];
    for (int j = 0; j < 4; j++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(acc + 8 * j));
        r[j] = fixed ? qc__requant_fixed_avx2(a, p[j].bias, p[j].multiplier_q, p[j].shift, p[j].zp, lo, hi)
                     : qc__requant_float_avx2(a, p[j].bias, p[j].multiplier_f, p[j].zp, lo, hi);
    }
    qc__store_low8x32_avx2(y, r[0], r[1], r[2], r[3]);
}

static inline __attribute__((always_inline)) void qc__requant_row_avx2(size_t n, const int32_t *acc, int32_t bias,
                                                                       float mf, int32_t mq, int32_t shift,
                                                                       int32_t zero_point, int32_t lo, int32_t hi,
                                                                       uint8_t *y, int fixed) {
    qc__rq_params p;
    p.bias = _mm256_set1_epi32(bias);
    p.zp = _mm256_set1_epi32(zero_point);
    p.multiplier_f = _mm256_set1_ps(mf);
    p.multiplier_q = _mm256_set1_epi32(mq);
    p.shift = _mm256_set1_epi32(shift);
    const qc__rq_params ps[4] = {p, p, p, p};
    const __m256i vlo = _mm256_set1_epi32(lo);
    const __m256i vhi = _mm256_set1_epi32(hi);
    for (; n >= 32; n -= 32, acc += 32, y += 32) {
        qc__requant_block_avx2(acc, ps, fixed, vlo, vhi, y);
    }
    if (n > 0) {
        int32_t ab[32] = {0};
        uint8_t yb[32];
        memcpy(ab, acc, n * sizeof(int32_t));
        qc__requant_block_avx2(ab, ps, fixed, vlo, vhi, yb);
        memcpy(y, yb, n);
    }
}

static inline __attribute__((always_inline)) void qc__requant_channels_avx2(size_t n, const int32_t *acc,
                                                                            const int32_t *bias, const float *mf,
                                                                            const int32_t *mq, const int32_t *shifts,
                                                                            const int32_t *zps, int32_t lo, int32_t hi,
                                                                            uint8_t *y, int fixed) {
    const __m256i vlo = _mm256_set1_epi32(lo);
    const __m256i vhi = _mm256_set1_epi32(hi);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        qc__rq_params ps[4];
        for (int j = 0; j < 4; j++) {
            ps[j] = qc__rq_channel_params(i + 8 * j, bias, mf, mq, shifts, zps);
        }
        qc__requant_block_avx2(acc + i, ps, fixed, vlo, vhi, y + i);
    }
    if (i < n) {
        size_t rest = n - i;
        int32_t ab[32] = {0}, bb[32] = {0}, qb[32] = {0}, sb[32] = {0}, zb[32] = {0};
        float fb[32];
        uint8_t yb[32];
        for (size_t j = 0; j < 32; j++) {
            fb[j] = (j < rest && mf) ? mf[i + j] : 1.0f;
        }
        memcpy(ab, acc + i, rest * sizeof(int32_t));
        if (bias) memcpy(bb, bias + i, rest * sizeof(int32_t));
        if (mq) memcpy(qb, mq + i, rest * sizeof(int32_t));
        if (shifts) memcpy(sb, shifts + i, rest * sizeof(int32_t));
        if (zps) memcpy(zb, zps + i, rest * sizeof(int32_t));
        qc__rq_params ps[4];
        for (int j = 0; j < 4; j++) {
            ps[j] = qc__rq_channel_params(8 * j, bb, fb, qb, sb, zb);
        }
        qc__requant_block_avx2(ab, ps, fixed, vlo, vhi, yb);
        memcpy(y + i, yb, rest);
    }
}

void qc_qs32_q8_requantize_ukernel__avx2(size_t n, const int32_t *acc, int32_t bias, float multiplier,
                                         int32_t zero_point, int32_t lo, int32_t hi, uint8_t *y) {
    qc__requant_row_avx2(n, acc, bias, multiplier, 0, 0, zero_point, lo, hi, y, 0);
}

void qc_qs32_q8_requantize_channels_ukernel__avx2(size_t n, const int32_t *acc, const int32_t *bias,
                                                  const float *multipliers, const int32_t *zero_points, int32_t lo,
                                                  int32_t hi, uint8_t *y) {
    qc__requant_channels_avx2(n, acc, bias, multipliers, NULL, NULL, zero_points, lo, hi, y, 0);
}

void qc_qs32_q8_requantize_fixedpoint_ukernel__avx2(size_t n, const int32_t *acc, int32_t bias, int32_t multiplier,
                                                    int32_t shift, int32_t zero_point, int32_t lo, int32_t hi,
                                                    uint8_t *y) {
    qc__requant_row_avx2(n, acc, bias, 0.0f, multiplier, shift, zero_point, lo, hi, y, 1);
}

void qc_qs32_q8_requantize_fixedpoint_channels_ukernel__avx2(size_t n, const int32_t *acc, const int32_t *bias,
                                                             const int32_t *multipliers, const int32_t *shifts,
                                                             const int32_t *zero_points, int32_t lo, int32_t hi,
                                                             uint8_t *y) {
    qc__requant_channels_avx2(n, acc, bias, NULL, multipliers, shifts, zero_points, lo, hi, y, 1);
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
