/*
 * Inline NEON helpers shared by the NEON element-wise kernels (aarch64 and armv7). Include
 * only from a source that has enabled NEON and included arm_neon.h.
 *
 * armv7 differences (docs/C-API.md, "ISA paths"): no vector division (the quotient is
 * computed per lane with the IEEE scalar VFP division), no vrndnq (rounding adds and
 * subtracts 1.5 * 2^23 after the clamp, exact round-half-even for |v| < 2^22 since NEON
 * always rounds to nearest), and NEON arithmetic flushes subnormals to zero, which the
 * kernels avoid or show to be harmless case by case.
 */
#ifndef QCORE_ELEMENTWISE_NEON_H
#define QCORE_ELEMENTWISE_NEON_H

static inline int qc__any_u32_neon(uint32x4_t v) {
#if defined(__aarch64__)
    return vmaxvq_u32(v) != 0;
#else
    uint32x2_t h = vorr_u32(vget_low_u32(v), vget_high_u32(v));
    return (vget_lane_u32(h, 0) | vget_lane_u32(h, 1)) != 0;
#endif
}

/* Round half to even of values already clamped to integer bounds of magnitude < 2^22. */
static inline float32x4_t qc__round_clamped_neon(float32x4_t v) {
#if defined(__aarch64__)
    return vrndnq_f32(v);
#else
    const float32x4_t magic = vdupq_n_f32(12582912.0f); /* 1.5 * 2^23 */
    return vsubq_f32(vaddq_f32(v, magic), magic);
#endif
}

/* x / scale per lane, IEEE float32. */
static inline float32x4_t qc__div_neon(float32x4_t x, float32x4_t scale) {
#if defined(__aarch64__)
    return vdivq_f32(x, scale);
#else
    float xs[4], ss[4];
    vst1q_f32(xs, x);
    vst1q_f32(ss, scale);
    for (int i = 0; i < 4; i++) {
        xs[i] = xs[i] / ss[i];
    }
    return vld1q_f32(xs);
#endif
}

/* Low bytes of 16 int32 values, in order. */
static inline void qc__store_low8x16_neon(uint8_t *y, int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    int16x8_t ab = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    int16x8_t cd = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
    vst1q_u8(y, vreinterpretq_u8_s8(vcombine_s8(vmovn_s16(ab), vmovn_s16(cd))));
}

#endif /* QCORE_ELEMENTWISE_NEON_H */
