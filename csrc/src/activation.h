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
/* GELU: erf(u) ~= uc * P(s) / Q(s), s = uc * uc, uc = u clamped to [-A, A], P of degree 7
 * and Q monic of degree 3 in s; fitted by tools/fit_gelu.py (minimax absolute error on
 * [0, 3.919206], the point where float32(erf) becomes 1), A the smallest float32 at which
 * the float32 evaluation reaches 1 (it is exactly 1 there). */
#define QC__GELU_INV_SQRT2 0.70710677f
#define QC__GELU_ERF_A 3.7021167f
#define QC__GELU_ERF_P0 242.66454f
#define QC__GELU_ERF_P1 15.292289f
#define QC__GELU_ERF_P2 7.7902617f
#define QC__GELU_ERF_P3 (-0.23335302f)
#define QC__GELU_ERF_P4 0.023203049f
#define QC__GELU_ERF_P5 (-0.0010815004f)
#define QC__GELU_ERF_P6 2.8516211e-05f
#define QC__GELU_ERF_P7 (-3.2990764e-07f)
#define QC__GELU_ERF_Q0 215.0557f
#define QC__GELU_ERF_Q1 85.23937f
#define QC__GELU_ERF_Q2 13.805925f

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

/* gelu(x) = (0.5 * x) * (1 + uc * (P(s) / Q(s))); -0 below u = -A. A NaN x is clamped to
 * -A (g = 0) and comes out of 0.5 * x as NaN; +inf gives +inf (g = 2). */
static inline float qc__gelu_scalar(float x) {
    float u = x * QC__GELU_INV_SQRT2;
    float uc = u > -QC__GELU_ERF_A ? u : -QC__GELU_ERF_A; /* the operand order of maxps / minps */
    uc = uc < QC__GELU_ERF_A ? uc : QC__GELU_ERF_A;
    float s = uc * uc;
    float p = QC__GELU_ERF_P7;
    p = p * s + QC__GELU_ERF_P6;
    p = p * s + QC__GELU_ERF_P5;
    p = p * s + QC__GELU_ERF_P4;
    p = p * s + QC__GELU_ERF_P3;
    p = p * s + QC__GELU_ERF_P2;
    p = p * s + QC__GELU_ERF_P1;
    p = p * s + QC__GELU_ERF_P0;
    float q = s + QC__GELU_ERF_Q2;
    q = q * s + QC__GELU_ERF_Q1;
    q = q * s + QC__GELU_ERF_Q0;
    float g = 1.0f + uc * (p / q);
    float y = (0.5f * x) * g;
    /* u < -A: g = 0 already; -0 also for x = -inf (where -inf * 0 would be NaN) */
    return u < -QC__GELU_ERF_A ? -0.0f : y;
}

/* Below this, exp(x - max) of softmax is taken as 0. */
#define QC__SOFTMAX_MIN_ARG (-87.0f)

static inline float qc__softmax_lane_sum(const float l[8]) {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

void qc_f32_softmax_ukernel__scalar(const float *x, size_t rows, size_t cols, float *y);
/* The softmax of four rows of n >= 1 floats, y + r * stride, in place, given each row's
 * maximum (finite): the same bits as qc_f32_softmax_ukernel for those rows. */
void qc_f32_softmax4_ukernel__scalar(float *y, size_t stride, size_t n, const float max[4]);
/* The maximum of n >= 1 floats; returns nonzero when one is NaN (the maximum is then
 * unspecified). Equal across ISAs as floats (a zero's sign may differ). */
int qc_f32_row_max_ukernel__scalar(const float *x, size_t n, float *max_out);
#if defined(QC__BUILD_AVX2)
void qc_f32_softmax_ukernel__avx2(const float *x, size_t rows, size_t cols, float *y);
void qc_f32_softmax4_ukernel__avx2(float *y, size_t stride, size_t n, const float max[4]);
int qc_f32_row_max_ukernel__avx2(const float *x, size_t n, float *max_out);
#endif
void qc_f32_erf_ukernel__scalar(const float *x, size_t n, float *y);
void qc_f32_gelu_ukernel__scalar(const float *x, size_t n, float *y);
#if defined(QC__BUILD_AVX2)
void qc_f32_erf_ukernel__avx2(const float *x, size_t n, float *y);
void qc_f32_gelu_ukernel__avx2(const float *x, size_t n, float *y);
#endif

#endif /* QCORE_ACTIVATION_INTERNAL_H */
