/*
 * Portable scalar requantization kernels: the shared formulas of requant.h applied after
 * the wrapping int32 bias addition. The twins every SIMD requantize kernel is tested
 * against.
 */
#include "elementwise.h"
#include "requant.h"

/* acc + bias in int32 with two's-complement wrap-around (as an int32 accumulator does). */
static inline int32_t qc__add_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }

static inline int32_t qc__clamp_fixed(int32_t scaled, int32_t zero_point, int32_t lo, int32_t hi) {
    int64_t q = (int64_t)scaled + zero_point;
    return (int32_t)(q < lo ? lo : (q > hi ? hi : q));
}

void qc_qs32_q8_requantize_ukernel__scalar(size_t n, const int32_t *acc, int32_t bias, float multiplier,
                                           int32_t zero_point, int32_t lo, int32_t hi, uint8_t *y) {
    for (size_t i = 0; i < n; i++) {
        y[i] = (uint8_t)qc__requant_float(qc__add_wrap(acc[i], bias), multiplier, zero_point, lo, hi);
    }
}

void qc_qs32_q8_requantize_channels_ukernel__scalar(size_t n, const int32_t *acc, const int32_t *bias,
                                                    const float *multipliers, const int32_t *zero_points, int32_t lo,
                                                    int32_t hi, uint8_t *y) {
    for (size_t i = 0; i < n; i++) {
        int32_t a = qc__add_wrap(acc[i], bias ? bias[i] : 0);
        y[i] = (uint8_t)qc__requant_float(a, multipliers[i], zero_points ? zero_points[i] : 0, lo, hi);
    }
}

void qc_qs32_q8_requantize_fixedpoint_ukernel__scalar(size_t n, const int32_t *acc, int32_t bias, int32_t multiplier,
                                                      int32_t shift, int32_t zero_point, int32_t lo, int32_t hi,
                                                      uint8_t *y) {
    for (size_t i = 0; i < n; i++) {
        int32_t scaled = qc__multiply_by_quantized_multiplier(qc__add_wrap(acc[i], bias), multiplier, shift);
        y[i] = (uint8_t)qc__clamp_fixed(scaled, zero_point, lo, hi);
    }
}

void qc_qs32_q8_requantize_fixedpoint_channels_ukernel__scalar(size_t n, const int32_t *acc, const int32_t *bias,
                                                               const int32_t *multipliers, const int32_t *shifts,
                                                               const int32_t *zero_points, int32_t lo, int32_t hi,
                                                               uint8_t *y) {
    for (size_t i = 0; i < n; i++) {
        int32_t a = qc__add_wrap(acc[i], bias ? bias[i] : 0);
        int32_t scaled = qc__multiply_by_quantized_multiplier(a, multipliers[i], shifts[i]);
        y[i] = (uint8_t)qc__clamp_fixed(scaled, zero_points ? zero_points[i] : 0, lo, hi);
    }
}
