/*
 * The two requantization formulas, one inline definition each, shared by the GEMM
 * epilogue and the stand-alone requantize kernels (docs/ARITHMETIC.md, "Requantization").
 * Compiled with -ffp-contract=off: the float form must not become an FMA.
 */
#ifndef QCORE_REQUANT_H
#define QCORE_REQUANT_H

#include <math.h>
#include <stdint.h>

/* ONNX real-valued form: saturate(round_half_even((float)acc * multiplier) + zero_point).
 * float32 throughout, as onnxruntime computes it; lrintf rounds half to even in the
 * default rounding mode. The clamp to [lo, hi] also applies ReLU/ReLU6/min-max fusions. */
static inline int32_t qc__requant_float(int32_t acc, float multiplier, int32_t zero_point, int32_t lo,
                                        int32_t hi) {
    float scaled = (float)acc * multiplier;
    /* Clip before converting so huge values cannot wrap. */
    if (!(scaled < 2147483520.0f)) {
        scaled = 2147483520.0f;
    } else if (scaled < -2147483648.0f) {
        scaled = -2147483648.0f;
    }
    int64_t q = (int64_t)nearbyintf(scaled) + zero_point;
    if (q < lo) {
        q = lo;
    }
    if (q > hi) {
        q = hi;
    }
    return (int32_t)q;
}

/* gemmlowp SaturatingRoundingDoublingHighMul, as TFLite defines it: with ab = a * b in
 * 64 bits, nudge = ab >= 0 ? 2^30 : 1 - 2^30, result (ab + nudge) / 2^31 truncated toward
 * zero, which rounds the high half of 2ab half up (toward +inf). INT32_MIN * INT32_MIN, the
 * one overflowing case, saturates to INT32_MAX. */
static inline int32_t qc__srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1ll << 30) : (1 - (1ll << 30));
    return (int32_t)((ab + nudge) / (1ll << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounding half away from zero. */
static inline int32_t qc__rounding_divide_by_pot(int32_t x, int exponent) {
    int32_t mask = (int32_t)((1ll << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + ((x < 0) ? 1 : 0);
    return (x >> exponent) + ((remainder > threshold) ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding): left shift for shift > 0,
 * then SRDHM, then a rounding right shift for shift < 0. */
static inline int32_t qc__multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    int64_t shifted = (int64_t)x * ((int64_t)1 << left);
    /* TFLite shifts in int32 (x * (1 << left)), undefined behaviour on overflow; qcore
     * saturates instead (docs/ARITHMETIC.md), matching qcore.reference.fixedpoint. */
    if (shifted > INT32_MAX) {
        shifted = INT32_MAX;
    } else if (shifted < INT32_MIN) {
        shifted = INT32_MIN;
    }
    return qc__rounding_divide_by_pot(qc__srdhm((int32_t)shifted, multiplier), right);
}

#endif /* QCORE_REQUANT_H */
