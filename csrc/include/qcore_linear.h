/*
 * qcore float32 linear layer on int8 weights with per-row dynamic activation quantization,
 * in one call: what qcore's runtime computes for a dynamically quantized MatMul
 * (docs/QUANTIZATION.md). Included by qcore.h.
 *
 * For each row m of X (M x K float32, contiguous):
 *   (q[m, :], s[m], z[m]) = qc_dynamic_quantize_u8(X[m, :])      (uint8, float32 scale)
 *       except that a row whose range / 255 underflows to 0 gets s = 1, z = 0, q = 0
 *       (every value of such a row rounds to 0), as the runtime does;
 *   acc[m, n] = sum_k (q[m, k] - z[m]) * (W[k, n] - zw[n])        (exact int32, the packed
 *       GEMM qc_gemm_packed_s32 on W packed by qc_gemm_pack_b);
 *   Y[m, n] = (float)acc[m, n] * (s[m] * w_scale[n]) + bias[n]    (float32, no FMA; the
 *       product s[m] * w_scale[n] rounded to float32 first; no bias term when bias is NULL).
 * Y is M x N float32, contiguous. Results are identical for every ISA and thread count.
 *
 * Statuses: NaN or infinity in X, or a row range overflowing float32: QC_E_NONFINITE;
 * w_scale_count not 1 or N: QC_E_SHAPE; a packed buffer that is not one:
 * QC_E_INVALID_ARGUMENT; scratch allocation failure: QC_E_NO_MEMORY. M == 0 is valid.
 */
#ifndef QCORE_LINEAR_H
#define QCORE_LINEAR_H

/* cdef: begin */
qc_status qc_linear_dynamic_u8_f32(size_t m, const float *x, const void *packed, const float *w_scale,
                                   size_t w_scale_count, const float *bias, float *y, const qc_options *options);
/* The same layer applied to X * diag(x_mul): row m is quantized from the float32 products
 * x[m, k] * x_mul[k] (one IEEE multiply each, exactly NumPy's `x * x_mul`), so the result
 * is bit-identical to a float32 Mul by x_mul (K values) followed by
 * qc_linear_dynamic_u8_f32. This is how a SmoothQuant smoothing Mul before a linear layer
 * runs without its own pass. x_mul NULL: QC_E_NULL_POINTER; the same statuses otherwise
 * (a product overflowing to infinity is QC_E_NONFINITE). */
qc_status qc_linear_dynamic_smoothed_u8_f32(size_t m, const float *x, const float *x_mul, const void *packed,
                                            const float *w_scale, size_t w_scale_count, const float *bias, float *y,
                                            const qc_options *options);
/* cdef: end */

#endif /* QCORE_LINEAR_H */
