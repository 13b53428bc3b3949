/*
 * qcore float32 activation kernels: the error function, GELU and softmax; and layer
 * normalization (optionally of a residual sum). Included by qcore.h.
 *
 * Every ISA path evaluates the same float32 operations in the same order (no FMA, no
 * reassociation; division is IEEE division), so results are bit-identical on every ISA
 * and equal to the NumPy definition in qcore/reference/activation.py. The formulas
 * (all float32, z = |x|):
 *
 *   z < 0.5:  erf(x) = sign(x) * z * S(z * z), S the Maclaurin series of erf(z) / z to z^12
 *             (7 terms, Horner);
 *   z >= 0.5: erfc(z) = t * exp(-(z * z) + P(t)), t = 1 / (1 + 0.5 * z), P the degree-9
 *             Chebyshev fit of Numerical Recipes' erfcc (Horner), z clamped to 9 inside
 *             and erfc(z) = 0 for z > 9 (erfc(9) < 4.2e-37);
 *             erf(x) = sign(x) * (1 - erfc(z)).
 *   exp(a), a in [-88, 0]: k = round_half_even(a * log2(e)) (by adding and subtracting
 *             1.5 * 2^23), r = (a - k * ln2_hi) - k * ln2_lo, exp(a) = p(r) * 2^k with p the
 *             degree-7 Taylor polynomial (Horner) and 2^k built from its exponent bits.
 *   gelu(x) = (0.5 * x) * g with its own, cheaper erf (one rational, no exp, one division):
 *             u = x * 0.70710677f, uc = min(max(u, -A), A) with A = 3.7021167f,
 *             s = uc * uc, g = 1 + uc * (P(s) / Q(s)),
 *             P of degree 7 and Q monic of degree 3 (Horner; constants and fit in
 *             csrc/src/activation.h and tools/fit_gelu.py); y = -0 when u < -A (also for
 *             x = -inf). uc * P / Q stays within [-1, 1] and is exactly +-1 at +-A: y = x
 *             for u >= A, 0 <= y <= x for x >= 0, x / 2 <= y <= 0 for x < 0.
 *
 * Absolute error of erf below 3e-7 everywhere; erf(+-inf) = +-1, erf(+-0) = +-0, NaN in
 * gives NaN out. GELU's rational erf is within 3.71e-7 of erf for every float32 u; its error
 * is absolute (1 + erf cancels for negative x): |y - gelu(x)| < 2.5e-7 * max(1, |x|);
 * gelu(+inf) = +inf, gelu(-inf) = -0, gelu(+-0) = +-0, NaN in gives NaN out (the clamp
 * takes a NaN u to -A and the NaN passes through 0.5 * x). x and y may be the same buffer
 * (in place); otherwise they must not overlap. n == 0 is valid (pointers may then be NULL).
 */
#ifndef QCORE_ACTIVATION_H
#define QCORE_ACTIVATION_H

/* cdef: begin */
/* y[i] = erf(x[i]) for i < n (formula above). */
qc_status qc_erf_f32(const float *x, size_t n, float *y, const qc_options *options);

/* y[i] = gelu(x[i]) ~= x[i] / 2 * (1 + erf(x[i] / sqrt(2))) (ONNX Gelu, approximate="none";
 * formula above). */
qc_status qc_gelu_f32(const float *x, size_t n, float *y, const qc_options *options);
/* Softmax over each of `rows` contiguous rows of `cols` values (the last axis):
 *   m = max_i x[i]; e[i] = exp(x[i] - m) (the exp above; 0 when x[i] - m < -87);
 *   s = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), lane lj = the float32 sum, in
 *       increasing i, of e[i] over i = j (mod 8);
 *   y[i] = e[i] / s.
 * A row holding NaN, or whose maximum is +-inf, comes out all NaN (as exp(x - max) / sum
 * evaluated naively). x and y may be the same buffer. rows or cols 0: nothing to do. */
qc_status qc_softmax_f32(const float *x, size_t rows, size_t cols, float *y, const qc_options *options);
/* Layer normalization over each of `rows` contiguous rows of `cols` values (ONNX
 * LayerNormalization, axis -1), of x or, when residual is not NULL, of the sum
 * v[i] = x[i] + residual[i] (the residual Add before a transformer's layer norm):
 *   mean = S(v) / cols;  c[i] = v[i] - mean;  var = S(c * c) / cols;
 *   d = sqrt(var + epsilon);  y[i] = (c[i] / d) * gamma[i] + beta[i]  (no beta term when
 *   beta is NULL);
 * S the 8-lane float32 sum of qc_softmax_f32 (lane j sums i = j (mod 8) in increasing i;
 * ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))); every step rounded to float32, no FMA,
 * identical bits on every ISA. NaN or infinity in a row makes that row NaN. gamma and beta
 * hold `cols` values. y may be x or residual (in place). epsilon negative, NaN or infinite:
 * QC_E_INVALID_ARGUMENT; rows or cols 0: nothing to do. */
qc_status qc_layer_norm_f32(const float *x, const float *residual, size_t rows, size_t cols, const float *gamma,
                            const float *beta, float epsilon, float *y, const qc_options *options);
/* cdef: end */

#endif /* QCORE_ACTIVATION_H */
