/*
 * Shared constants and the scalar evaluation of qcore's float32 erf / GELU (formulas in
 * qcore_activation.h). The AVX2 kernels evaluate exactly these operations in the same
 * order, lane by lane; keep both in step.
 */
#ifndef QCORE_ACTIVATION_INTERNAL_H
#define QCORE_ACTIVATION_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Maclaurin series of erf(z) / z in z^2: 2 / sqrt(pi) * (-1)^j / (j! (2j + 1)). */
#define QC__ERF_S0 1.1283791670955126f
#define QC__ERF_S1 (-0.37612638903183754f)
#define QC__ERF_S2 0.11283791670955126f
#define QC__ERF_S3 (-0.026866170645131252f)
#define QC__ERF_S4 0.005223977625442188f
#define QC__ERF_S5 (-0.0008548327023450852f)
#define QC__ERF_S6 0.00012055332981789664f
/* Below this |x| the series is used, at or above it erfc. */
#define QC__ERF_SPLIT 0.5f
/* erfc's argument is clamped here: exp's argument stays above -88 (normal 2^k). */
#define QC__ERF_ZMAX 9.0f
/* Numerical Recipes' erfcc Chebyshev coefficients, P(t) = sum P_j t^j. */
#define QC__ERFC_P0 (-1.26551223f)
#define QC__ERFC_P1 1.00002368f
#define QC__ERFC_P2 0.37409196f
#define QC__ERFC_P3 0.09678418f
#define QC__ERFC_P4 (-0.18628806f)
#define QC__ERFC_P5 0.27886807f
#define QC__ERFC_P6 (-1.13520398f)
#define QC__ERFC_P7 1.48851587f
#define QC__ERFC_P8 (-0.82215223f)
#define QC__ERFC_P9 0.17087277f
/* exp: round-to-integer constant 1.5 * 2^23, log2(e), ln(2) split so k * hi is exact. */
#define QC__EXP_ROUND 12582912.0f
#define QC__EXP_LOG2E 1.44269504088896341f
#define QC__EXP_LN2_HI 0.693145751953125f
#define QC__EXP_LN2_LO 1.428606765330187e-06f
#define QC__EXP_C2 0.5f
#define QC__EXP_C3 0.16666666666666666f
#define QC__EXP_C4 0.041666666666666664f
#define QC__EXP_C5 0.008333333333333333f
#define QC__EXP_C6 0.001388888888888889f
#define QC__EXP_C7 0.0001984126984126984f
#define QC__SQRT2 1.41421356237309505f

/* exp(a) for a in [-88, 1]. */
static inline float qc__exp_f32_scalar(float a) {
    float kf = (a * QC__EXP_LOG2E + QC__EXP_ROUND) - QC__EXP_ROUND;
    float r = (a - kf * QC__EXP_LN2_HI) - kf * QC__EXP_LN2_LO;
    float p = QC__EXP_C7;
    p = p * r + QC__EXP_C6;
    p = p * r + QC__EXP_C5;
    p = p * r + QC__EXP_C4;
    p = p * r + QC__EXP_C3;
    p = p * r + QC__EXP_C2;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* z * S(z^2), erf(z) for 0 <= z < 0.5. */
static inline float qc__erf_series_scalar(float z) {
    float z2 = z * z;
    float s = QC__ERF_S6;
    s = s * z2 + QC__ERF_S5;
    s = s * z2 + QC__ERF_S4;
    s = s * z2 + QC__ERF_S3;
    s = s * z2 + QC__ERF_S2;
    s = s * z2 + QC__ERF_S1;
    s = s * z2 + QC__ERF_S0;
    return z * s;
}

/* erfc(z) for z >= 0.5; 0 above QC__ERF_ZMAX (erfc(9) < 4.2e-37). */
static inline float qc__erfc_big_scalar(float z) {
    float zc = z < QC__ERF_ZMAX ? z : QC__ERF_ZMAX;
    float t = 1.0f / (1.0f + 0.5f * zc);
    float p = QC__ERFC_P9;
    p = p * t + QC__ERFC_P8;
    p = p * t + QC__ERFC_P7;
    p = p * t + QC__ERFC_P6;
    p = p * t + QC__ERFC_P5;
    p = p * t + QC__ERFC_P4;
    p = p * t + QC__ERFC_P3;
    p = p * t + QC__ERFC_P2;
    p = p * t + QC__ERFC_P1;
    p = p * t + QC__ERFC_P0;
    float e = t * qc__exp_f32_scalar(p - zc * zc);
    return z > QC__ERF_ZMAX ? 0.0f : e;
}

static inline float qc__erf_scalar(float x) {
    if (x != x) {
        return x;
    }
    float z = fabsf(x);
    float v = z < QC__ERF_SPLIT ? qc__erf_series_scalar(z) : 1.0f - qc__erfc_big_scalar(z);
    return copysignf(v, x);
}

static inline float qc__gelu_scalar(float x) {
    if (x != x) {
        return x;
    }
    float u = x / QC__SQRT2;
    float z = fabsf(u);
    float g;
    if (z < QC__ERF_SPLIT) {
        g = 1.0f + copysignf(qc__erf_series_scalar(z), u);
    } else if (u > 0.0f) {
        g = 2.0f - qc__erfc_big_scalar(z);
    } else {
        g = qc__erfc_big_scalar(z);
    }
    /* u < -9: g = 0, and -0 also for x = -inf (where 0.5 * x * g would be NaN) */
    return u < -QC__ERF_ZMAX ? -0.0f : (0.5f * x) * g;
}

/* Below this, exp(x - max) of softmax is taken as 0. */
#define QC__SOFTMAX_MIN_ARG (-87.0f)

static inline float qc__softmax_lane_sum(const float l[8]) {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

void qc_f32_softmax_ukernel__scalar(const float *x, size_t rows, size_t cols, float *y);
#if defined(QC__BUILD_AVX2)
void qc_f32_softmax_ukernel__avx2(const float *x, size_t rows, size_t cols, float *y);
#endif
void qc_f32_erf_ukernel__scalar(const float *x, size_t n, float *y);
void qc_f32_gelu_ukernel__scalar(const float *x, size_t n, float *y);
#if defined(QC__BUILD_AVX2)
void qc_f32_erf_ukernel__avx2(const float *x, size_t n, float *y);
void qc_f32_gelu_ukernel__avx2(const float *x, size_t n, float *y);
#endif

#endif /* QCORE_ACTIVATION_INTERNAL_H */
