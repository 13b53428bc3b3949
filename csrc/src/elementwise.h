/*
 * Private interface of the element-wise micro-kernels (quantize, dequantize, requantize,
 * int4 packing). One table of kernels per ISA, filled at compile time; the entry points in
 * quantize.c, requantize.c and int4.c validate their arguments and walk the
 * [outer, channels, inner] layout, the kernels only loop over one contiguous run.
 *
 * Two kernel shapes per operation:
 *   - row kernels: n elements sharing one set of parameters (one channel's run of `inner`);
 *   - channel kernels: element j uses parameters j (inner == 1, the channel axis is last).
 * Parameter pointers of channel kernels that may be NULL (zero points, bias) mean zeros.
 *
 * Every SIMD kernel is bit-identical to its __scalar twin for every input (the tests in
 * csrc/tests/test_elementwise.c check it on every available ISA).
 */
#ifndef QCORE_ELEMENTWISE_H
#define QCORE_ELEMENTWISE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Quantize float32 to a q8 (int8 or uint8) or q16 (int16 or uint16) type: the kernels clamp
 * to [qmin, qmax] and store the low 8 or 16 bits. Return nonzero when x held a NaN. */
typedef int (*qc__quantize_fn)(size_t n, const float *x, float scale, int32_t zero_point, int32_t qmin,
                               int32_t qmax, void *y);
typedef int (*qc__quantize_channels_fn)(size_t n, const float *x, const float *scales, const int32_t *zero_points,
                                        int32_t qmin, int32_t qmax, void *y);

typedef void (*qc__dequantize_fn)(size_t n, const void *x, float scale, int32_t zero_point, float *y);
typedef void (*qc__dequantize_channels_fn)(size_t n, const void *x, const float *scales,
                                           const int32_t *zero_points, float *y);

/* min and max of n >= 1 floats; returns nonzero when x held a NaN (min/max then unspecified). */
typedef int (*qc__minmax_fn)(size_t n, const float *x, float *min_out, float *max_out);

/* Requantize int32 to 8 bits: results clamped to [lo, hi] (inside int8 or uint8), low byte
 * stored. */
typedef void (*qc__requant_fn)(size_t n, const int32_t *acc, int32_t bias, float multiplier, int32_t zero_point,
                               int32_t lo, int32_t hi, uint8_t *y);
typedef void (*qc__requant_channels_fn)(size_t n, const int32_t *acc, const int32_t *bias, const float *multipliers,
                                        const int32_t *zero_points, int32_t lo, int32_t hi, uint8_t *y);
typedef void (*qc__requant_fixed_fn)(size_t n, const int32_t *acc, int32_t bias, int32_t multiplier, int32_t shift,
                                     int32_t zero_point, int32_t lo, int32_t hi, uint8_t *y);
typedef void (*qc__requant_fixed_channels_fn)(size_t n, const int32_t *acc, const int32_t *bias,
                                              const int32_t *multipliers, const int32_t *shifts,
                                              const int32_t *zero_points, int32_t lo, int32_t hi, uint8_t *y);

/* int4 packing; pack returns nonzero when a value is out of range. */
typedef int (*qc__pack_int4_fn)(size_t n, const int8_t *values, int is_signed, uint8_t *packed);
typedef void (*qc__unpack_int4_fn)(size_t n, const uint8_t *packed, int is_signed, int8_t *values);

/* Dequantize kernels are indexed by the input qc_dtype (INT8 .. INT32). */
#define QC__DEQUANT_TYPES 5

typedef struct qc__elementwise_kernels {
    qc__quantize_fn quantize_q8;
    qc__quantize_fn quantize_q16;
    qc__quantize_channels_fn quantize_channels_q8;
    qc__quantize_channels_fn quantize_channels_q16;
    qc__dequantize_fn dequantize[QC__DEQUANT_TYPES];
    qc__dequantize_channels_fn dequantize_channels[QC__DEQUANT_TYPES];
    qc__minmax_fn minmax;
    qc__requant_fn requant;
    qc__requant_channels_fn requant_channels;
    qc__requant_fixed_fn requant_fixed;
    qc__requant_fixed_channels_fn requant_fixed_channels;
    qc__pack_int4_fn pack_int4;
    qc__unpack_int4_fn unpack_int4;
} qc__elementwise_kernels;

/* Declares the kernels every ISA file defines (names: qc_<in>_<out>_<op>_ukernel__<isa>). */
#define QC__DECLARE_ELEMENTWISE_KERNELS(isa)                                                                   \
    int qc_f32_q8_quantize_ukernel__##isa(size_t, const float *, float, int32_t, int32_t, int32_t, void *);    \
    int qc_f32_q16_quantize_ukernel__##isa(size_t, const float *, float, int32_t, int32_t, int32_t, void *);   \
    int qc_f32_q8_quantize_channels_ukernel__##isa(size_t, const float *, const float *, const int32_t *,      \
                                                   int32_t, int32_t, void *);                                 \
    int qc_f32_q16_quantize_channels_ukernel__##isa(size_t, const float *, const float *, const int32_t *,     \
                                                    int32_t, int32_t, void *);                                \
    void qc_qs8_f32_dequantize_ukernel__##isa(size_t, const void *, float, int32_t, float *);                  \
    void qc_qu8_f32_dequantize_ukernel__##isa(size_t, const void *, float, int32_t, float *);                  \
    void qc_qs16_f32_dequantize_ukernel__##isa(size_t, const void *, float, int32_t, float *);                 \
    void qc_qu16_f32_dequantize_ukernel__##isa(size_t, const void *, float, int32_t, float *);                 \
    void qc_qs32_f32_dequantize_ukernel__##isa(size_t, const void *, float, int32_t, float *);                 \
    void qc_qs8_f32_dequantize_channels_ukernel__##isa(size_t, const void *, const float *, const int32_t *,   \
                                                       float *);                                              \
    void qc_qu8_f32_dequantize_channels_ukernel__##isa(size_t, const void *, const float *, const int32_t *,   \
                                                       float *);                                              \
    void qc_qs16_f32_dequantize_channels_ukernel__##isa(size_t, const void *, const float *, const int32_t *,  \
                                                        float *);                                             \
    void qc_qu16_f32_dequantize_channels_ukernel__##isa(size_t, const void *, const float *, const int32_t *,  \
                                                        float *);                                             \
    void qc_qs32_f32_dequantize_channels_ukernel__##isa(size_t, const void *, const float *, const int32_t *,  \
                                                        float *);                                             \
    int qc_f32_minmax_ukernel__##isa(size_t, const float *, float *, float *);                                 \
    void qc_qs32_q8_requantize_ukernel__##isa(size_t, const int32_t *, int32_t, float, int32_t, int32_t,       \
                                              int32_t, uint8_t *);                                            \
    void qc_qs32_q8_requantize_channels_ukernel__##isa(size_t, const int32_t *, const int32_t *,               \
                                                       const float *, const int32_t *, int32_t, int32_t,      \
                                                       uint8_t *);                                            \
    void qc_qs32_q8_requantize_fixedpoint_ukernel__##isa(size_t, const int32_t *, int32_t, int32_t, int32_t,   \
                                                         int32_t, int32_t, int32_t, uint8_t *);               \
    void qc_qs32_q8_requantize_fixedpoint_channels_ukernel__##isa(size_t, const int32_t *, const int32_t *,    \
                                                                  const int32_t *, const int32_t *,           \
                                                                  const int32_t *, int32_t, int32_t,          \
                                                                  uint8_t *);                                 \
    int qc_q4_pack_ukernel__##isa(size_t, const int8_t *, int, uint8_t *);                                     \
    void qc_q4_unpack_ukernel__##isa(size_t, const uint8_t *, int, int8_t *);

QC__DECLARE_ELEMENTWISE_KERNELS(scalar)
#if defined(QC__BUILD_AVX2)
QC__DECLARE_ELEMENTWISE_KERNELS(avx2)
#endif
#if defined(QC__BUILD_NEON)
QC__DECLARE_ELEMENTWISE_KERNELS(neon)
#endif

extern const qc__elementwise_kernels qc__elementwise_scalar;
#if defined(QC__BUILD_AVX2)
extern const qc__elementwise_kernels qc__elementwise_avx2;
#endif
#if defined(QC__BUILD_NEON)
extern const qc__elementwise_kernels qc__elementwise_neon;
#endif

/* The kernel table for options (resolving QC_ISA_AUTO / QCORE_ISA); NEONDOT and I8MM use the
 * NEON element-wise kernels. */
qc_status qc__elementwise_resolve(const qc_options *options, const qc__elementwise_kernels **kernels_out);

/* Range [qmin, qmax] of an integer qc_dtype; nonzero for a type that is not one. */
int qc__dtype_range(int dtype, int32_t *qmin, int32_t *qmax);

/* Size of [outer, channels, inner] with overflow check (QC_E_OVERFLOW). */
qc_status qc__layout_size(size_t outer, size_t channels, size_t inner, size_t *count_out);

/* ---- The scalar formulas every kernel reproduces (docs/ARITHMETIC.md). ---- */

/* round_half_even(x / scale) clamped to [qmin - zero_point, qmax - zero_point], plus
 * zero_point. Clamping the rounded quotient to integer bounds equals clamping after adding
 * the zero point, and keeps inf and huge values from wrapping. NaN sets *nan_seen and gives
 * qmin. */
static inline int32_t qc__quantize_value(float x, float scale, int32_t zero_point, int32_t qmin, int32_t qmax,
                                         int *nan_seen) {
    float q = x / scale;
    if (q != q) {
        *nan_seen = 1;
        return qmin;
    }
    q = nearbyintf(q);
    float lo = (float)(qmin - zero_point);
    float hi = (float)(qmax - zero_point);
    if (q < lo) {
        q = lo;
    }
    if (q > hi) {
        q = hi;
    }
    return (int32_t)q + zero_point;
}

/* DynamicQuantizeLinear's uint8 parameters from a row's min and max (docs/ARITHMETIC.md):
 * lo = min(xmin, 0), hi = max(xmax, 0), scale = (hi - lo) / 255 (1 when the range is 0),
 * zero_point = round_half_even(clip(0 - lo / scale, 0, 255)). QC_E_NONFINITE for a
 * non-finite min, max or range; QC_E_SCALE when a range below 255 * 2^-149 underflows.
 * Shared by qc_dynamic_quantize_u8 and the dynamic linear layer: one formula. */
static inline qc_status qc__dynamic_u8_params(float xmin, float xmax, float *scale_out, int32_t *zero_point_out) {
    if (!isfinite(xmin) || !isfinite(xmax)) {
        return QC_E_NONFINITE;
    }
    const float lo = xmin < 0.0f ? xmin : 0.0f;
    const float hi = xmax > 0.0f ? xmax : 0.0f;
    const float range = hi - lo;
    if (!isfinite(range)) {
        return QC_E_NONFINITE;
    }
    float scale = 1.0f; /* all-zero input: onnxruntime's choice (docs/ARITHMETIC.md) */
    if (range != 0.0f) {
        scale = range / 255.0f;
        if (!(scale > 0.0f)) {
            return QC_E_SCALE;
        }
    }
    float zp = 0.0f - lo / scale;
    if (zp < 0.0f) {
        zp = 0.0f;
    }
    if (zp > 255.0f) {
        zp = 255.0f;
    }
    *scale_out = scale;
    *zero_point_out = (int32_t)nearbyintf(zp);
    return QC_OK;
}

/* (x - zero_point) exactly in 64 bits, rounded once to float32, times scale. */
/* Minimum and maximum of v[i] = x[i], or x[i] * mul[i] (one float32 multiply, stored in
 * prod[i]) when mul is not NULL, for n >= 1 values; returns 1 when a v[i] is NaN. The
 * scalar twin of qc__minmax_avx2 (elementwise_avx2.h): min / max are exact in any order. */
static inline int qc__minmax_scalar(size_t n, const float *x, const float *mul, float *prod, float *min_out,
                                    float *max_out) {
    float lo = mul != NULL ? x[0] * mul[0] : x[0];
    float hi = lo;
    int nan_seen = 0;
    for (size_t i = 0; i < n; i++) {
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

static inline float qc__dequantize_value(int32_t x, float scale, int32_t zero_point) {
    return (float)((int64_t)x - (int64_t)zero_point) * scale;
}

#endif /* QCORE_ELEMENTWISE_H */
