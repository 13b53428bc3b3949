/*
 * NEON quantize / dequantize / min-max kernels (aarch64 and armv7), bit-identical to the
 * __scalar twins; see elementwise_neon.h for the armv7 differences. Tails run the vector
 * code on a zero-padded copy.
 */
#include "internal.h"

#if defined(QC__BUILD_NEON)

#if defined(__arm__)
#pragma GCC push_options
#pragma GCC target("fpu=neon")
#endif
#include <arm_neon.h>

#include <float.h>
#include <string.h>

#include "elementwise.h"
#include "elementwise_neon.h"

/* round_half_even(x / scale) within [lo, hi] (integers as floats), as int32 + zp. Clamping
 * before rounding gives the same integer because the bounds are integers. */
static inline int32x4_t qc__quantize4_neon(float32x4_t x, float32x4_t scale, float32x4_t lo, float32x4_t hi,
                                           int32x4_t zp, uint32x4_t *nan_acc) {
    float32x4_t q = qc__div_neon(x, scale);
    *nan_acc = vorrq_u32(*nan_acc, vmvnq_u32(vceqq_f32(q, q)));
    q = qc__round_clamped_neon(vminq_f32(vmaxq_f32(q, lo), hi));
    return vaddq_s32(vcvtq_s32_f32(q), zp);
}

static inline int32x4_t qc__quantize4_channels_neon(const float *x, const float *scales, const int32_t *zps,
                                                    int32x4_t qmin, int32x4_t qmax, uint32x4_t *nan_acc) {
    int32x4_t zp = zps ? vld1q_s32(zps) : vdupq_n_s32(0);
    float32x4_t lo = vcvtq_f32_s32(vsubq_s32(qmin, zp));
    float32x4_t hi = vcvtq_f32_s32(vsubq_s32(qmax, zp));
    return qc__quantize4_neon(vld1q_f32(x), vld1q_f32(scales), lo, hi, zp, nan_acc);
}

static void qc__quantize_q8_block_neon(const float *x, float32x4_t scale, float32x4_t lo, float32x4_t hi,
                                       int32x4_t zp, uint8_t *y, uint32x4_t *nan_acc) {
    int32x4_t a = qc__quantize4_neon(vld1q_f32(x), scale, lo, hi, zp, nan_acc);
    int32x4_t b = qc__quantize4_neon(vld1q_f32(x + 4), scale, lo, hi, zp, nan_acc);
    int32x4_t c = qc__quantize4_neon(vld1q_f32(x + 8), scale, lo, hi, zp, nan_acc);
    int32x4_t d = qc__quantize4_neon(vld1q_f32(x + 12), scale, lo, hi, zp, nan_acc);
    qc__store_low8x16_neon(y, a, b, c, d);
}

int qc_f32_q8_quantize_ukernel__neon(size_t n, const float *x, float scale, int32_t zero_point, int32_t qmin,
                                     int32_t qmax, void *y) {
    uint8_t *out = (uint8_t *)y;
    const float32x4_t vscale = vdupq_n_f32(scale);
    const float32x4_t lo = vdupq_n_f32((float)(qmin - zero_point));
    const float32x4_t hi = vdupq_n_f32((float)(qmax - zero_point));
    const int32x4_t zp = vdupq_n_s32(zero_point);
    uint32x4_t nan_acc = vdupq_n_u32(0);
    for (; n >= 16; n -= 16, x += 16, out += 16) {
        qc__quantize_q8_block_neon(x, vscale, lo, hi, zp, out, &nan_acc);
    }
    if (n > 0) {
        float xb[16] = {0};
        uint8_t yb[16];
        memcpy(xb, x, n * sizeof(float));
        qc__quantize_q8_block_neon(xb, vscale, lo, hi, zp, yb, &nan_acc);
        memcpy(out, yb, n);
    }
    return qc__any_u32_neon(nan_acc);
}

static void qc__quantize_q16_block_neon(const float *x, float32x4_t scale, float32x4_t lo, float32x4_t hi,
                                        int32x4_t zp, uint16_t *y, uint32x4_t *nan_acc) {
    int32x4_t a = qc__quantize4_neon(vld1q_f32(x), scale, lo, hi, zp, nan_acc);
    int32x4_t b = qc__quantize4_neon(vld1q_f32(x + 4), scale, lo, hi, zp, nan_acc);
    vst1q_u16(y, vreinterpretq_u16_s16(vcombine_s16(vmovn_s32(a), vmovn_s32(b))));
}

int qc_f32_q16_quantize_ukernel__neon(size_t n, const float *x, float scale, int32_t zero_point, int32_t qmin,
                                      int32_t qmax, void *y) {
    uint16_t *out = (uint16_t *)y;
    const float32x4_t vscale = vdupq_n_f32(scale);
    const float32x4_t lo = vdupq_n_f32((float)(qmin - zero_point));
    const float32x4_t hi = vdupq_n_f32((float)(qmax - zero_point));
    const int32x4_t zp = vdupq_n_s32(zero_point);
    uint32x4_t nan_acc = vdupq_n_u32(0);
    for (; n >= 8; n -= 8, x += 8, out += 8) {
        qc__quantize_q16_block_neon(x, vscale, lo, hi, zp, out, &nan_acc);
    }
    if (n > 0) {
        float xb[8] = {0};
        uint16_t yb[8];
        memcpy(xb, x, n * sizeof(float));
        qc__quantize_q16_block_neon(xb, vscale, lo, hi, zp, yb, &nan_acc);
        memcpy(out, yb, n * sizeof(uint16_t));
    }
    return qc__any_u32_neon(nan_acc);
}

static void qc__pad_channel_params_neon(size_t n, size_t len, const float *x, const float *scales, const int32_t *zps,
                                        float *xb, float *sb, int32_t *zb) {
    for (size_t i = 0; i < len; i++) {
        xb[i] = i < n ? x[i] : 0.0f;
        sb[i] = i < n ? scales[i] : 1.0f;
        zb[i] = (i < n && zps) ? zps[i] : 0;
    }
}

int qc_f32_q8_quantize_channels_ukernel__neon(size_t n, const float *x, const float *scales,
                                              const int32_t *zero_points, int32_t qmin, int32_t qmax, void *y) {
    uint8_t *out = (uint8_t *)y;
    const int32x4_t vqmin = vdupq_n_s32(qmin);
    const int32x4_t vqmax = vdupq_n_s32(qmax);
    uint32x4_t nan_acc = vdupq_n_u32(0);
    float xb[16], sb[16];
    int32_t zb[16];
    uint8_t yb[16];
    for (size_t i = 0; i < n; i += 16) {
        size_t rest = n - i;
        const float *xs = x + i;
        const float *ss = scales + i;
        const int32_t *zs = zero_points ? zero_points + i : NULL;
        uint8_t *ys = out + i;
        if (rest < 16) {
            qc__pad_channel_params_neon(rest, 16, xs, ss, zs, xb, sb, zb);
            xs = xb;
            ss = sb;
            zs = zb;
            ys = yb;
        }
        int32x4_t a = qc__quantize4_channels_neon(xs, ss, zs, vqmin, vqmax, &nan_acc);
        int32x4_t b = qc__quantize4_channels_neon(xs + 4, ss + 4, zs ? zs + 4 : NULL, vqmin, vqmax, &nan_acc);
        int32x4_t c = qc__quantize4_channels_neon(xs + 8, ss + 8, zs ? zs + 8 : NULL, vqmin, vqmax, &nan_acc);
        int32x4_t d = qc__quantize4_channels_neon(xs + 12, ss + 12, zs ? zs + 12 : NULL, vqmin, vqmax, &nan_acc);
        qc__store_low8x16_neon(ys, a, b, c, d);
        if (rest < 16) {
            memcpy(out + i, yb, rest);
        }
    }
    return qc__any_u32_neon(nan_acc);
}

int qc_f32_q16_quantize_channels_ukernel__neon(size_t n, const float *x, const float *scales,
                                               const int32_t *zero_points, int32_t qmin, int32_t qmax, void *y) {
    uint16_t *out = (uint16_t *)y;
    const int32x4_t vqmin = vdupq_n_s32(qmin);
    const int32x4_t vqmax = vdupq_n_s32(qmax);
    uint32x4_t nan_acc = vdupq_n_u32(0);
    float xb[8], sb[8];
    int32_t zb[8];
    uint16_t yb[8];
    for (size_t i = 0; i < n; i += 8) {
        size_t rest = n - i;
        const float *xs = x + i;
        const float *ss = scales + i;
        const int32_t *zs = zero_points ? zero_points + i : NULL;
        uint16_t *ys = out + i;
        if (rest < 8) {
            qc__pad_channel_params_neon(rest, 8, xs, ss, zs, xb, sb, zb);
            xs = xb;
            ss = sb;
            zs = zb;
            ys = yb;
        }
        int32x4_t a = qc__quantize4_channels_neon(xs, ss, zs, vqmin, vqmax, &nan_acc);
        int32x4_t b = qc__quantize4_channels_neon(xs + 4, ss + 4, zs ? zs + 4 : NULL, vqmin, vqmax, &nan_acc);
        vst1q_u16(ys, vreinterpretq_u16_s16(vcombine_s16(vmovn_s32(a), vmovn_s32(b))));
        if (rest < 8) {
            memcpy(out + i, yb, rest * sizeof(uint16_t));
        }
    }
    return qc__any_u32_neon(nan_acc);
}

/* ---- dequantize ---- */

/* 16 elements of an integer type widened to four int32x4 vectors, in order. */
typedef struct {
    int32x4_t v[4];
} qc__i32x16;

static inline qc__i32x16 qc__load16_as_i32_neon(const void *p, int dtype) {
    qc__i32x16 r;
    switch (dtype) {
    case QC_DTYPE_INT8: {
        int8x16_t b = vld1q_s8((const int8_t *)p);
        int16x8_t lo = vmovl_s8(vget_low_s8(b));
        int16x8_t hi = vmovl_s8(vget_high_s8(b));
        r.v[0] = vmovl_s16(vget_low_s16(lo));
        r.v[1] = vmovl_s16(vget_high_s16(lo));
        r.v[2] = vmovl_s16(vget_low_s16(hi));
        r.v[3] = vmovl_s16(vget_high_s16(hi));
        return r;
    }
    case QC_DTYPE_UINT8: {
        uint8x16_t b = vld1q_u8((const uint8_t *)p);
        uint16x8_t lo = vmovl_u8(vget_low_u8(b));
        uint16x8_t hi = vmovl_u8(vget_high_u8(b));
        r.v[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo)));
        r.v[1] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(lo)));
        r.v[2] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi)));
        r.v[3] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(hi)));
        return r;
    }
    case QC_DTYPE_INT16: {
        const int16_t *h = (const int16_t *)p;
        for (int j = 0; j < 4; j++) {
            r.v[j] = vmovl_s16(vld1_s16(h + 4 * j));
        }
        return r;
    }
    case QC_DTYPE_UINT16: {
        const uint16_t *h = (const uint16_t *)p;
        for (int j = 0; j < 4; j++) {
            r.v[j] = vreinterpretq_s32_u32(vmovl_u16(vld1_u16(h + 4 * j)));
        }
        return r;
    }
    default: {
        const int32_t *w = (const int32_t *)p;
        for (int j = 0; j < 4; j++) {
            r.v[j] = vld1q_s32(w + 4 * j);
        }
        return r;
    }
    }
}

/* (x - zp) * scale for 4 lanes (see the AVX2 twin for why each step is exact). */
static inline float32x4_t qc__dequant4_neon(int32x4_t x, int32x4_t zp, float32x4_t scale, int dtype) {
    float32x4_t d;
#if defined(__aarch64__)
    if (dtype == QC_DTYPE_INT32) {
        float64x2_t lo = vcvtq_f64_s64(vsubl_s32(vget_low_s32(x), vget_low_s32(zp)));
        float64x2_t hi = vcvtq_f64_s64(vsubl_s32(vget_high_s32(x), vget_high_s32(zp)));
        d = vcvt_high_f32_f64(vcvt_f32_f64(lo), hi);
    } else
#endif
    {
        d = vcvtq_f32_s32(vsubq_s32(x, zp));
    }
    return vmulq_f32(d, scale);
}

static inline size_t qc__dtype_bytes_neon(int dtype) {
    return dtype <= QC_DTYPE_UINT8 ? 1 : (dtype <= QC_DTYPE_UINT16 ? 2 : 4);
}

/* armv7: NEON flushes subnormals, so a subnormal scale (products below FLT_MIN) and int32
 * input (exact only through 64-bit arithmetic) take the scalar kernel. */
static inline int qc__dequant_needs_scalar(const float *scales, size_t n, int dtype) {
#if defined(__aarch64__)
    (void)scales;
    (void)n;
    (void)dtype;
    return 0;
#else
    if (dtype == QC_DTYPE_INT32) {
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (scales[i] < FLT_MIN) {
            return 1;
        }
    }
    return 0;
#endif
}

/* 16 outputs; scales / zero points per lane (channel form) or broadcast (row form). */
static inline void qc__dequant16_neon(const void *x, const float *scales, const int32_t *zps, float scale,
                                      int32_t zero_point, float *y, int dtype) {
    qc__i32x16 v = qc__load16_as_i32_neon(x, dtype);
    for (int j = 0; j < 4; j++) {
        float32x4_t s = scales ? vld1q_f32(scales + 4 * j) : vdupq_n_f32(scale);
        int32x4_t zp = scales ? (zps ? vld1q_s32(zps + 4 * j) : vdupq_n_s32(0)) : vdupq_n_s32(zero_point);
        vst1q_f32(y + 4 * j, qc__dequant4_neon(v.v[j], zp, s, dtype));
    }
}

/* scales == NULL: the row form with one scale / zero point. */
static inline void qc__dequantize_neon(size_t n, const void *x, const float *scales, const int32_t *zps, float scale,
                                       int32_t zero_point, float *y, int dtype) {
    const size_t elem = qc__dtype_bytes_neon(dtype);
    const unsigned char *in = (const unsigned char *)x;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        qc__dequant16_neon(in + i * elem, scales ? scales + i : NULL, zps ? zps + i : NULL, scale, zero_point, y + i,
                           dtype);
    }
    if (i < n) {
        size_t rest = n - i;
        unsigned char xb[64] = {0};
        float sb[16], yb[16];
        int32_t zb[16];
        memcpy(xb, in + i * elem, rest * elem);
        if (scales) {
            for (size_t j = 0; j < 16; j++) {
                sb[j] = j < rest ? scales[i + j] : 1.0f;
                zb[j] = (j < rest && zps) ? zps[i + j] : 0;
            }
        }
        qc__dequant16_neon(xb, scales ? sb : NULL, zb, scale, zero_point, yb, dtype);
        memcpy(y + i, yb, rest * sizeof(float));
    }
}

static inline void qc__dequantize_row_neon(size_t n, const void *x, float scale, int32_t zero_point, float *y,
                                           int dtype, qc__dequantize_fn scalar) {
    if (qc__dequant_needs_scalar(&scale, 1, dtype)) {
        scalar(n, x, scale, zero_point, y);
        return;
    }
    qc__dequantize_neon(n, x, NULL, NULL, scale, zero_point, y, dtype);
}

static inline void qc__dequantize_channels_neon(size_t n, const void *x, const float *scales,
                                                const int32_t *zero_points, float *y, int dtype,
                                                qc__dequantize_channels_fn scalar) {
    if (qc__dequant_needs_scalar(scales, n, dtype)) {
        scalar(n, x, scales, zero_points, y);
        return;
    }
    qc__dequantize_neon(n, x, scales, zero_points, 0.0f, 0, y, dtype);
}

#define QC__DEQUANT_NEON(name, dtype)                                                                         \
    void qc_##name##_f32_dequantize_ukernel__neon(size_t n, const void *x, float scale, int32_t zero_point,    \
                                                  float *y) {                                                  \
        qc__dequantize_row_neon(n, x, scale, zero_point, y, dtype, qc_##name##_f32_dequantize_ukernel__scalar); \
    }                                                                                                          \
    void qc_##name##_f32_dequantize_channels_ukernel__neon(size_t n, const void *x, const float *scales,       \
                                                           const int32_t *zero_points, float *y) {             \
        qc__dequantize_channels_neon(n, x, scales, zero_points, y, dtype,                                      \
                                     qc_##name##_f32_dequantize_channels_ukernel__scalar);                     \
    }

QC__DEQUANT_NEON(qs8, QC_DTYPE_INT8)
QC__DEQUANT_NEON(qu8, QC_DTYPE_UINT8)
QC__DEQUANT_NEON(qs16, QC_DTYPE_INT16)
QC__DEQUANT_NEON(qu16, QC_DTYPE_UINT16)
QC__DEQUANT_NEON(qs32, QC_DTYPE_INT32)

/* ---- min / max ---- */

int qc_f32_minmax_ukernel__neon(size_t n, const float *x, float *min_out, float *max_out) {
#if defined(__aarch64__)
    float32x4_t vmin = vdupq_n_f32(x[0]);
    float32x4_t vmax = vmin;
    uint32x4_t nan_acc = vdupq_n_u32(0);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        nan_acc = vorrq_u32(nan_acc, vmvnq_u32(vceqq_f32(v, v)));
        vmin = vminq_f32(vmin, v);
        vmax = vmaxq_f32(vmax, v);
    }
    int nan_seen = qc__any_u32_neon(nan_acc);
    float lo = vminvq_f32(vmin);
    float hi = vmaxvq_f32(vmax);
    for (; i < n; i++) {
        float v = x[i];
        nan_seen |= v != v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *min_out = lo;
    *max_out = hi;
    return nan_seen;
#else
    /* armv7 NEON would flush subnormal extremes to zero: use the scalar kernel. */
    return qc_f32_minmax_ukernel__scalar(n, x, min_out, max_out);
#endif
}

#if defined(__arm__)
#pragma GCC pop_options
#endif

#endif /* QC__BUILD_NEON */
