/*
 * AVX2 quantize / dequantize / min-max kernels, bit-identical to the __scalar twins:
 * vdivps is the IEEE float32 division, vroundps rounds half to even explicitly (no
 * dependence on MXCSR), the clamp to integer bounds happens before the float -> int32
 * conversion, and narrowing stores the low bits of in-range values. Tails (n % block) go
 * through a small zero-padded buffer so they run the same vector code.
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#include <immintrin.h>

QC__AVX2_BEGIN

#include <string.h>

#include "elementwise.h"
#include "elementwise_avx2.h"

/* round_half_even(x / scale) clamped to [lo, hi] (integers as floats), as int32 + zp. */
static inline __m256i qc__quantize8_avx2(__m256 x, __m256 scale, __m256 lo, __m256 hi, __m256i zp, __m256 *nan_acc) {
    __m256 q = _mm256_div_ps(x, scale);
    *nan_acc = _mm256_or_ps(*nan_acc, _mm256_cmp_ps(q, q, _CMP_UNORD_Q));
    q = _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
    return _mm256_add_epi32(_mm256_cvttps_epi32(q), zp);
}

/* Per-element parameters: 8 lanes of scales and zero points (zps may be NULL). */
static inline __m256i qc__quantize8_channels_avx2(const float *x, const float *scales, const int32_t *zps,
                                                  __m256i qmin, __m256i qmax, __m256 *nan_acc) {
    __m256i zp = zps ? _mm256_loadu_si256((const __m256i *)zps) : _mm256_setzero_si256();
    __m256 lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(qmin, zp));
    __m256 hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(qmax, zp));
    return qc__quantize8_avx2(_mm256_loadu_ps(x), _mm256_loadu_ps(scales), lo, hi, zp, nan_acc);
}

static inline int qc__any_nan(__m256 nan_acc) { return _mm256_movemask_ps(nan_acc) != 0; }

static void qc__quantize_q8_block(const float *x, __m256 scale, __m256 lo, __m256 hi, __m256i zp, uint8_t *y,
                                  __m256 *nan_acc) {
    __m256i a = qc__quantize8_avx2(_mm256_loadu_ps(x), scale, lo, hi, zp, nan_acc);
    __m256i b = qc__quantize8_avx2(_mm256_loadu_ps(x + 8), scale, lo, hi, zp, nan_acc);
    __m256i c = qc__quantize8_avx2(_mm256_loadu_ps(x + 16), scale, lo, hi, zp, nan_acc);
    __m256i d = qc__quantize8_avx2(_mm256_loadu_ps(x + 24), scale, lo, hi, zp, nan_acc);
    qc__store_low8x32_avx2(y, a, b, c, d);
}

int qc_f32_q8_quantize_ukernel__avx2(size_t n, const float *x, float scale, int32_t zero_point, int32_t qmin,
                                     int32_t qmax, void *y) {
    uint8_t *out = (uint8_t *)y;
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps((float)(qmin - zero_point));
    const __m256 hi = _mm256_set1_ps((float)(qmax - zero_point));
    const __m256i zp = _mm256_set1_epi32(zero_point);
    __m256 nan_acc = _mm256_setzero_ps();
    for (; n >= 32; n -= 32, x += 32, out += 32) {
        qc__quantize_q8_block(x, vscale, lo, hi, zp, out, &nan_acc);
    }
    if (n > 0) {
        float xb[32] = {0};
        uint8_t yb[32];
        memcpy(xb, x, n * sizeof(float));
        qc__quantize_q8_block(xb, vscale, lo, hi, zp, yb, &nan_acc);
        memcpy(out, yb, n);
    }
    return qc__any_nan(nan_acc);
}

static void qc__quantize_q16_block(const float *x, __m256 scale, __m256 lo, __m256 hi, __m256i zp, uint16_t *y,
                                   __m256 *nan_acc) {
    __m256i a = qc__quantize8_avx2(_mm256_loadu_ps(x), scale, lo, hi, zp, nan_acc);
    __m256i b = qc__quantize8_avx2(_mm256_loadu_ps(x + 8), scale, lo, hi, zp, nan_acc);
    qc__store_low16x16_avx2(y, a, b);
}

int qc_f32_q16_quantize_ukernel__avx2(size_t n, const float *x, float scale, int32_t zero_point, int32_t qmin,
                                      int32_t qmax, void *y) {
    uint16_t *out = (uint16_t *)y;
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps((float)(qmin - zero_point));
    const __m256 hi = _mm256_set1_ps((float)(qmax - zero_point));
    const __m256i zp = _mm256_set1_epi32(zero_point);
    __m256 nan_acc = _mm256_setzero_ps();
    for (; n >= 16; n -= 16, x += 16, out += 16) {
        qc__quantize_q16_block(x, vscale, lo, hi, zp, out, &nan_acc);
    }
    if (n > 0) {
        float xb[16] = {0};
        uint16_t yb[16];
        memcpy(xb, x, n * sizeof(float));
        qc__quantize_q16_block(xb, vscale, lo, hi, zp, yb, &nan_acc);
        memcpy(out, yb, n * sizeof(uint16_t));
    }
    return qc__any_nan(nan_acc);
}

/* Copies a tail of n < len elements into zero-padded parameter buffers (scales padded with 1). */
static void qc__pad_channel_params(size_t n, size_t len, const float *x, const float *scales, const int32_t *zps,
                                   float *xb, float *sb, int32_t *zb) {
    for (size_t i = 0; i < len; i++) {
        xb[i] = i < n ? x[i] : 0.0f;
        sb[i] = i < n ? scales[i] : 1.0f;
        zb[i] = (i < n && zps) ? zps[i] : 0;
    }
}

int qc_f32_q8_quantize_channels_ukernel__avx2(size_t n, const float *x, const float *scales,
                                              const int32_t *zero_points, int32_t qmin, int32_t qmax, void *y) {
    uint8_t *out = (uint8_t *)y;
    const __m256i vqmin = _mm256_set1_epi32(qmin);
    const __m256i vqmax = _mm256_set1_epi32(qmax);
    __m256 nan_acc = _mm256_setzero_ps();
    const int32_t *zps = zero_points;
    for (; n >= 32; n -= 32, x += 32, scales += 32, out += 32) {
        __m256i a = qc__quantize8_channels_avx2(x, scales, zps, vqmin, vqmax, &nan_acc);
        __m256i b = qc__quantize8_channels_avx2(x + 8, scales + 8, zps ? zps + 8 : NULL, vqmin, vqmax, &nan_acc);
        __m256i c = qc__quantize8_channels_avx2(x + 16, scales + 16, zps ? zps + 16 : NULL, vqmin, vqmax, &nan_acc);
        __m256i d = qc__quantize8_channels_avx2(x + 24, scales + 24, zps ? zps + 24 : NULL, vqmin, vqmax, &nan_acc);
        qc__store_low8x32_avx2(out, a, b, c, d);
        zps = zps ? zps + 32 : NULL;
    }
    if (n > 0) {
        float xb[32], sb[32];
        int32_t zb[32];
        uint8_t yb[32];
        qc__pad_channel_params(n, 32, x, scales, zps, xb, sb, zb);
        __m256i a = qc__quantize8_channels_avx2(xb, sb, zb, vqmin, vqmax, &nan_acc);
        __m256i b = qc__quantize8_channels_avx2(xb + 8, sb + 8, zb + 8, vqmin, vqmax, &nan_acc);
        __m256i c = qc__quantize8_channels_avx2(xb + 16, sb + 16, zb + 16, vqmin, vqmax, &nan_acc);
        __m256i d = qc__quantize8_channels_avx2(xb + 24, sb + 24, zb + 24, vqmin, vqmax, &nan_acc);
        qc__store_low8x32_avx2(yb, a, b, c, d);
        memcpy(out, yb, n);
    }
    return qc__any_nan(nan_acc);
}

int qc_f32_q16_quantize_channels_ukernel__avx2(size_t n, const float *x, const float *scales,
                                               const int32_t *zero_points, int32_t qmin, int32_t qmax, void *y) {
    uint16_t *out = (uint16_t *)y;
    const __m256i vqmin = _mm256_set1_epi32(qmin);
    const __m256i vqmax = _mm256_set1_epi32(qmax);
    __m256 nan_acc = _mm256_setzero_ps();
    const int32_t *zps = zero_points;
    for (; n >= 16; n -= 16, x += 16, scales += 16, out += 16) {
        __m256i a = qc__quantize8_channels_avx2(x, scales, zps, vqmin, vqmax, &nan_acc);
        __m256i b = qc__quantize8_channels_avx2(x + 8, scales + 8, zps ? zps + 8 : NULL, vqmin, vqmax, &nan_acc);
        qc__store_low16x16_avx2(out, a, b);
        zps = zps ? zps + 16 : NULL;
    }
    if (n > 0) {
        float xb[16], sb[16];
        int32_t zb[16];
        uint16_t yb[16];
        qc__pad_channel_params(n, 16, x, scales, zps, xb, sb, zb);
        __m256i a = qc__quantize8_channels_avx2(xb, sb, zb, vqmin, vqmax, &nan_acc);
        __m256i b = qc__quantize8_channels_avx2(xb + 8, sb + 8, zb + 8, vqmin, vqmax, &nan_acc);
        qc__store_low16x16_avx2(yb, a, b);
        memcpy(out, yb, n * sizeof(uint16_t));
    }
    return qc__any_nan(nan_acc);
}

/* ---- dequantize: 8 int32 lanes of (x - zp), exact, to float, times scale ---- */

static inline __m256i qc__load8_as_i32(const void *p, int dtype) {
    switch (dtype) {
    case QC_DTYPE_INT8: return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p));
    case QC_DTYPE_UINT8: return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    case QC_DTYPE_INT16: return _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)p));
    case QC_DTYPE_UINT16: return _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    default: return _mm256_loadu_si256((const __m256i *)p);
    }
}

/* (x - zp) * scale for 8 lanes. Narrow types subtract in int32 (exact, |d| < 2^17, so the
 * conversion is exact too); int32 subtracts in double (exact below 2^53) and rounds once
 * to float32, the same value as rounding the exact 64-bit difference. */
static inline __m256 qc__dequant8_avx2(__m256i x, __m256i zp, __m256 scale, int dtype) {
    __m256 d;
    if (dtype != QC_DTYPE_INT32) {
        d = _mm256_cvtepi32_ps(_mm256_sub_epi32(x, zp));
    } else {
        __m256d lo = _mm256_sub_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(x)),
                                   _mm256_cvtepi32_pd(_mm256_castsi256_si128(zp)));
        __m256d hi = _mm256_sub_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(x, 1)),
                                   _mm256_cvtepi32_pd(_mm256_extracti128_si256(zp, 1)));
        d = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    }
    return _mm256_mul_ps(d, scale);
}

static inline size_t qc__dtype_bytes(int dtype) {
    return dtype <= QC_DTYPE_UINT8 ? 1 : (dtype <= QC_DTYPE_UINT16 ? 2 : 4);
}

static inline void qc__dequantize_row_avx2(size_t n, const void *x, float scale, int32_t zero_point, float *y,
                                           int dtype) {
    const size_t elem = qc__dtype_bytes(dtype);
    const unsigned char *in = (const unsigned char *)x;
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256i zp = _mm256_set1_epi32(zero_point);
    for (; n >= 8; n -= 8, in += 8 * elem, y += 8) {
        _mm256_storeu_ps(y, qc__dequant8_avx2(qc__load8_as_i32(in, dtype), zp, vscale, dtype));
    }
    if (n > 0) {
        unsigned char xb[32] = {0};
        float yb[8];
        memcpy(xb, in, n * elem);
        _mm256_storeu_ps(yb, qc__dequant8_avx2(qc__load8_as_i32(xb, dtype), zp, vscale, dtype));
        memcpy(y, yb, n * sizeof(float));
    }
}

static inline void qc__dequantize_channels_avx2(size_t n, const void *x, const float *scales,
                                                const int32_t *zero_points, float *y, int dtype) {
    const size_t elem = qc__dtype_bytes(dtype);
    const unsigned char *in = (const unsigned char *)x;
    for (; n >= 8; n -= 8, in += 8 * elem, y += 8, scales += 8) {
        __m256i zp = _mm256_setzero_si256();
        if (zero_points) {
            zp = _mm256_loadu_si256((const __m256i *)zero_points);
            zero_points += 8;
        }
        _mm256_storeu_ps(y, qc__dequant8_avx2(qc__load8_as_i32(in, dtype), zp, _mm256_loadu_ps(scales), dtype));
    }
    if (n > 0) {
        unsigned char xb[32] = {0};
        float sb[8], yb[8];
        int32_t zb[8];
        memcpy(xb, in, n * elem);
        for (size_t i = 0; i < 8; i++) {
            sb[i] = i < n ? scales[i] : 1.0f;
            zb[i] = (i < n && zero_points) ? zero_points[i] : 0;
        }
        __m256i zp = _mm256_loadu_si256((const __m256i *)zb);
        _mm256_storeu_ps(yb, qc__dequant8_avx2(qc__load8_as_i32(xb, dtype), zp, _mm256_loadu_ps(sb), dtype));
        memcpy(y, yb, n * sizeof(float));
    }
}

#define QC__DEQUANT_AVX2(name, dtype)                                                                         \
    void qc_##name##_f32_dequantize_ukernel__avx2(size_t n, const void *x, float scale, int32_t zero_point,    \
                                                  float *y) {                                                  \
        qc__dequantize_row_avx2(n, x, scale, zero_point, y, dtype);                                            \
    }                                                                                                          \
    void qc_##name##_f32_dequantize_channels_ukernel__avx2(size_t n, const void *x, const float *scales,       \
                                                           const int32_t *zero_points, float *y) {             \
        qc__dequantize_channels_avx2(n, x, scales, zero_points, y, dtype);                                     \
    }

QC__DEQUANT_AVX2(qs8, QC_DTYPE_INT8)
QC__DEQUANT_AVX2(qu8, QC_DTYPE_UINT8)
QC__DEQUANT_AVX2(qs16, QC_DTYPE_INT16)
QC__DEQUANT_AVX2(qu16, QC_DTYPE_UINT16)
QC__DEQUANT_AVX2(qs32, QC_DTYPE_INT32)

/* ---- min / max (exact in any order; NaN reported separately) ---- */

int qc_f32_minmax_ukernel__avx2(size_t n, const float *x, float *min_out, float *max_out) {
    return qc__minmax_avx2(n, x, NULL, NULL, min_out, max_out);
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
