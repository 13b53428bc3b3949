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

/* What qc_linear_dynamic_post_f32 does to Y after the layer, row block by row block while
 * the rows are in cache; bit-identical to calling the named function on the whole of Y
 * afterwards with the same options. */
typedef enum qc_linear_post_op {
    QC_LINEAR_POST_NONE = 0,       /* nothing */
    QC_LINEAR_POST_GELU = 1,       /* Y = qc_gelu_f32(Y) */
    QC_LINEAR_POST_LAYER_NORM = 2  /* Y = qc_layer_norm_f32(Y, residual, M, N, gamma, beta, epsilon) */
} qc_linear_post_op;

typedef struct qc_linear_post {
    int op;                /* a qc_linear_post_op */
    const float *residual; /* LAYER_NORM: M x N float32 added to Y first (NULL: none); must not overlap Y */
    const float *gamma;    /* LAYER_NORM: N values */
    const float *beta;     /* LAYER_NORM: N values, or NULL */
    float epsilon;         /* LAYER_NORM: finite, >= 0 */
} qc_linear_post;

/* The layer (with the smoothing product when x_mul is not NULL: qc_linear_dynamic_smoothed_u8_f32,
 * else qc_linear_dynamic_u8_f32), then `post` (NULL: none). An unknown op, a LAYER_NORM
 * epsilon that is negative or not finite: QC_E_INVALID_ARGUMENT; LAYER_NORM without gamma:
 * QC_E_NULL_POINTER; otherwise the layer's statuses. */
qc_status qc_linear_dynamic_post_f32(size_t m, const float *x, const float *x_mul, const void *packed,
                                     const float *w_scale, size_t w_scale_count, const float *bias,
                                     const qc_linear_post *post, float *y, const qc_options *options);
/* cdef: end */

#endif /* QCORE_LINEAR_H */
