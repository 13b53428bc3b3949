/*
 * NEON requantization kernels (aarch64 and armv7), bit-identical to the __scalar twins.
 *
 * Float form: vcvtq_f32_s32 and vmulq_f32 round to nearest even like the scalar float
 * code; a subnormal multiplier (flushed to zero by armv7 NEON) gives |acc * m| < 2^-95, which
 * rounds to 0 either way. Clamp to [lo - zp, hi - zp], round, + zp.
 * Fixed-point form: vqshlq_s32 is the saturating left shift, vqrdmulhq_s32 is exactly
 * gemmlowp's SaturatingRoundingDoublingHighMul, and RoundingDivideByPOT is vrshlq_s32 after
 * subtracting 1 from negative values (gemmlowp's NEON fix-up), which rounds half away from
 * zero.
 */
#include "internal.h"

#if defined(QC__BUILD_NEON)

#if defined(__arm__)
#pragma GCC push_options
#pragma GCC target("fpu=neon")
#endif
#include <arm_neon.h>

#include <string.h>

#include "elementwise.h"
#include "elementwise_neon.h"

static inline int32x4_t qc__requant_float_neon(int32x4_t acc, int32x4_t bias, float32x4_t multiplier, int32x4_t zp,
                                               int32x4_t lo, int32x4_t hi) {
    float32x4_t v = vmulq_f32(vcvtq_f32_s32(vaddq_s32(acc, bias)), multiplier);
    float32x4_t lo_f = vcvtq_f32_s32(vsubq_s32(lo, zp));
    float32x4_t hi_f = vcvtq_f32_s32(vsubq_s32(hi, zp));
    v = qc__round_clamped_neon(vminq_f32(vmaxq_f32(v, lo_f), hi_f));
    return vaddq_s32(vcvtq_s32_f32(v), zp);
}

static inline int32x4_t qc__requant_fixed_neon(int32x4_t acc, int32x4_t bias, int32x4_t multiplier, int32x4_t shift,
                                               int32x4_t zp, int32x4_t lo, int32x4_t hi) {
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t left = vmaxq_s32(shift, zero);
    int32x4_t neg_right = vminq_s32(shift, zero); /* -right, <= 0 */
    int32x4_t x = vqshlq_s32(vaddq_s32(acc, bias), left);
    x = vqrdmulhq_s32(x, multiplier);
    int32x4_t fixup = vshrq_n_s32(vandq_s32(x, neg_right), 31);
    x = vrshlq_s32(vqaddq_s32(x, fixup), neg_right);
    x = vminq_s32(vmaxq_s32(x, vsubq_s32(lo, zp)), vsubq_s32(hi, zp));
    return vaddq_s32(x, zp);
}

static inline int32x4_t qc__load_or_zero_neon(const int32_t *p) { return p ? vld1q_s32(p) : vdupq_n_s32(0); }

/* 16 outputs from 16 accumulators; parameters per lane (arrays) or broadcast (stride 0). */
typedef struct {
    const int32_t *bias, *zps, *mq, *shifts;
    const float *mf;
    size_t stride; /* 0: broadcast the first entry, 1: per lane */
} qc__rq_src;

static inline void qc__requant_block_neon(const int32_t *acc, const qc__rq_src *s, size_t at, int fixed, int32x4_t lo,
                                          int32x4_t hi, uint8_t *y) {
    int32x4_t r[4];
    for (int j = 0; j < 4; j++) {
        size_t i = s->stride ? at + 4 * (size_t)j : 0;
        int32x4_t a = vld1q_s32(acc + 4 * j);
        int32x4_t bias = s->stride ? qc__load_or_zero_neon(s->bias ? s->bias + i : NULL)
                                   : vdupq_n_s32(s->bias ? s->bias[0] : 0);
        int32x4_t zp = s->stride ? qc__load_or_zero_neon(s->zps ? s->zps + i : NULL)
                                 : vdupq_n_s32(s->zps ? s->zps[0] : 0);
        if (fixed) {
            int32x4_t mq = s->stride ? vld1q_s32(s->mq + i) : vdupq_n_s32(s->mq[0]);
            int32x4_t sh = s->stride ? vld1q_s32(s->shifts + i) : vdupq_n_s32(s->shifts[0]);
            r[j] = qc__requant_fixed_neon(a, bias, mq, sh, zp, lo, hi);
        } else {
            float32x4_t mf = s->stride ? vld1q_f32(s->mf + i) : vdupq_n_f32(s->mf[0]);
            r[j] = qc__requant_float_neon(a, bias, mf, zp, lo, hi);
        }
    }
    qc__store_low8x16_neon(y, r[0], r[1], r[2], r[3]);
}

static void qc__requant_neon(size_t n, const int32_t *acc, const qc__rq_src *src, int fixed, int32_t lo, int32_t hi,
                             uint8_t *y) {
    const int32x4_t vlo = vdupq_n_s32(lo);
    const int32x4_t vhi = vdupq_n_s32(hi);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        qc__requant_block_neon(acc + i, src, i, fixed, vlo, vhi, y + i);
    }
    if (i < n) {
        size_t rest = n - i;
        int32_t ab[16] = {0}, bb[16] = {0}, zb[16] = {0}, qb[16] = {0}, sb[16] = {0};
        float fb[16];
        uint8_t yb[16];
        memcpy(ab, acc + i, rest * sizeof(int32_t));
        qc__rq_src pad = *src;
        if (src->stride) {
            for (size_t j = 0; j < 16; j++) {
                fb[j] = (j < rest && src->mf) ? src->mf[i + j] : 1.0f;
            }
            if (src->bias) memcpy(bb, src->bias + i, rest * sizeof(int32_t));
            if (src->zps) memcpy(zb, src->zps + i, rest * sizeof(int32_t));
            if (src->mq) memcpy(qb, src->mq + i, rest * sizeof(int32_t));
            if (src->shifts) memcpy(sb, src->shifts + i, rest * sizeof(int32_t));
            pad.bias = bb;
            pad.zps = zb;
            pad.mq = qb;
            pad.shifts = sb;
            pad.mf = fb;
        }
        qc__requant_block_neon(ab, &pad, 0, fixed, vlo, vhi, yb);
        memcpy(y + i, yb, rest);
    }
}

void qc_qs32_q8_requantize_ukernel__neon(size_t n, const int32_t *acc, int32_t bias, float multiplier,
                                         int32_t zero_point, int32_t lo, int32_t hi, uint8_t *y) {
    qc__rq_src s = {&bias, &zero_point, NULL, NULL, &multiplier, 0};
    qc__requant_neon(n, acc, &s, 0, lo, hi, y);
}

void qc_qs32_q8_requantize_channels_ukernel__neon(size_t n, const int32_t *acc, const int32_t *bias,
                                                  const float *multipliers, const int32_t *zero_points, int32_t lo,
                                                  int32_t hi, uint8_t *y) {
    qc__rq_src s = {bias, zero_points, NULL, NULL, multipliers, 1};
    qc__requant_neon(n, acc, &s, 0, lo, hi, y);
}

void qc_qs32_q8_requantize_fixedpoint_ukernel__neon(size_t n, const int32_t *acc, int32_t bias, int32_t multiplier,
                                                    int32_t shift, int32_t zero_point, int32_t lo, int32_t hi,
                                                    uint8_t *y) {
    qc__rq_src s = {&bias, &zero_point, &multiplier, &shift, NULL, 0};
    qc__requant_neon(n, acc, &s, 1, lo, hi, y);
}

void qc_qs32_q8_requantize_fixedpoint_channels_ukernel__neon(size_t n, const int32_t *acc, const int32_t *bias,
                                                             const int32_t *multipliers, const int32_t *shifts,
                                                             const int32_t *zero_points, int32_t lo, int32_t hi,
                                                             uint8_t *y) {
    qc__rq_src s = {bias, zero_points, multipliers, shifts, NULL, 1};
    qc__requant_neon(n, acc, &s, 1, lo, hi, y);
}

#if defined(__arm__)
#pragma GCC pop_options
#endif

#endif /* QC__BUILD_NEON */
