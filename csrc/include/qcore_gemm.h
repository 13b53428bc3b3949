/*
 * qcore int8 GEMM: s8 x s8, u8 x s8, s8 x u8, u8 x u8 with zero points, exact int32
 * accumulation, pre-packed weights, fused requantization, and int4-weight GEMM with
 * float32 activations. Included by qcore.h; docs/KERNELS.md describes the kernels and
 * docs/ARITHMETIC.md every formula.
 *
 * Conventions shared by every function below:
 * - C[m, n] = sum_k (A[m, k] - a_zp) * (B[k, n] - b_zp), computed exactly modulo 2^32
 *   (int32 wrap-around, as ONNX MatMulInteger allows), for every input value.
 * - Strides are in elements, not bytes, and must be at least the row length.
 * - Zero points are int32 arrays: count 0 means none (all zero), 1 means per-tensor, and M
 *   (for A: per row) or N (for B: per column) means one per row / column. Each value must
 *   lie in the range of its matrix's type (QC_E_ZERO_POINT otherwise).
 * - M, N or K may be 0 (K = 0 gives an all-zero C); pointers of empty matrices may be NULL.
 * - options (NULL for defaults) choose the ISA and the thread count; results are
 *   identical for every ISA and thread count.
 */
#ifndef QCORE_GEMM_H
#define QCORE_GEMM_H

/* cdef: begin */
/* Element types of GEMM operands. The int4 types hold two values per byte in ONNX nibble
 * order (element 2i in the low nibble of byte i). */
typedef enum qc_gemm_type {
    QC_GEMM_U8 = 0,
    QC_GEMM_S8 = 1,
    QC_GEMM_U4 = 2,
    QC_GEMM_S4 = 3
} qc_gemm_type;

/* Memory order of the B operand: K x N row-major (ONNX MatMul) or N x K row-major (a
 * Linear layer's weight, B transposed). */
typedef enum qc_gemm_b_layout {
    QC_GEMM_B_KN = 0,
    QC_GEMM_B_NK = 1
} qc_gemm_b_layout;

/* The fused requantization epilogue of qc_gemm_requant / qc_gemm_packed_requant:
 *   acc = C[m, n] + bias[n]                       (int32, wrapping)
 *   y   = clamp(round_half_even((float)acc * mult[m, n]) + output_zero_point, lo, hi)
 * with mult[m, n] = multiplier[m * multiplier_row_stride + n * multiplier_col_stride]
 * (strides 0/0 per-tensor, 0/1 per-column, 1/0 per-row, N/1 per-element), float32
 * arithmetic without FMA (qc__requant_float in requant.h). lo/hi must satisfy
 * type_min <= lo <= hi <= type_max of output_type (U8 or S8): the full range for plain
 * QLinearMatMul, [zp, max] for ReLU, [zp, zp + 6 / scale] for ReLU6. Each multiplier must be
 * finite and >= 0 (QC_E_SCALE otherwise). */
typedef struct qc_gemm_requant_params {
    const int32_t *bias;            /* N values, or NULL */
    const float *multiplier;
    size_t multiplier_row_stride;
    size_t multiplier_col_stride;
    int32_t output_zero_point;
    int output_type;                /* QC_GEMM_U8 or QC_GEMM_S8 */
    int32_t clamp_min;
    int32_t clamp_max;
} qc_gemm_requant_params;

/* Bytes a packed K x N weight matrix needs (qc_gemm_pack_b). */
qc_status qc_gemm_packed_size(size_t k, size_t n, size_t *size_out);

/* Packs B (K x N logical, U8 or S8, in b_layout order with row stride b_stride) and its
 * zero point (count 0, 1 or N) into `packed`, a caller-owned buffer of at least
 * qc_gemm_packed_size(k, n) bytes, aligned to 16 bytes. The packed form is the same for
 * every ISA; it keeps K, N, the column sums and the zero points, so it can be reused for
 * any number of products with any A. */
qc_status qc_gemm_pack_b(size_t k, size_t n, int b_type, int b_layout, const void *b, size_t b_stride,
                         const int32_t *b_zero_point, size_t b_zero_point_count, void *packed,
                         size_t packed_size, const qc_options *options);

/* K and N of a packed matrix (QC_E_INVALID_ARGUMENT when the buffer is not one). */
qc_status qc_gemm_packed_dims(const void *packed, size_t *k_out, size_t *n_out);

/* C (M x N int32, row stride c_stride) = (A - a_zp) @ (B - b_zp); A is M x K (U8 or S8,
 * row stride a_stride), B is K x N in b_layout order. Packs B into a temporary buffer. */
qc_status qc_gemm_s32(size_t m, size_t n, size_t k, int a_type, const void *a, size_t a_stride,
                      const int32_t *a_zero_point, size_t a_zero_point_count, int b_type, int b_layout,
                      const void *b, size_t b_stride, const int32_t *b_zero_point,
                      size_t b_zero_point_count, int32_t *c, size_t c_stride, const qc_options *options);

/* The same with a B packed by qc_gemm_pack_b (K and N come from the packed buffer). */
qc_status qc_gemm_packed_s32(size_t m, int a_type, const void *a, size_t a_stride,
                             const int32_t *a_zero_point, size_t a_zero_point_count, const void *packed,
                             int32_t *c, size_t c_stride, const qc_options *options);

/* GEMM with the fused requantization epilogue: Y (M x N, U8 or S8 per
 * params->output_type, row stride y_stride) from A and B as in qc_gemm_s32. */
qc_status qc_gemm_requant(size_t m, size_t n, size_t k, int a_type, const void *a, size_t a_stride,
                          const int32_t *a_zero_point, size_t a_zero_point_count, int b_type,
                          int b_layout, const void *b, size_t b_stride, const int32_t *b_zero_point,
                          size_t b_zero_point_count, const qc_gemm_requant_params *params, void *y,
                          size_t y_stride, const qc_options *options);

qc_status qc_gemm_packed_requant(size_t m, int a_type, const void *a, size_t a_stride,
                                 const int32_t *a_zero_point, size_t a_zero_point_count,
                                 const void *packed, const qc_gemm_requant_params *params, void *y,
                                 size_t y_stride, const qc_options *options);

/* Weight-only int4 linear layer, float32 in and out:
 *   W[k, n] = (float)(w[k, n] - w_zp[k / block_size, n]) * w_scale[k / block_size, n]
 *   Y[m, n] = bias[n] + sum_{k = 0..K-1, in order} A[m, k] * W[k, n]
 * which is ONNX DequantizeLinear(w, w_scale, w_zp, axis=0, block_size) followed by MatMul,
 * with the float32 sum taken in increasing k (no FMA; bias, if any, added last), so every
 * ISA gives identical bits. w is the K x N matrix (w_type QC_GEMM_S4 or QC_GEMM_U4) packed
 * row-major two per byte in ONNX nibble order, ceil(K * N / 2) bytes; w_scale and w_zero_point
 * are ceil(K / block_size) x N row-major (w_zero_point: one value per byte, int8 for S4,
 * uint8 for U4, or NULL for 0); block_size >= 1 (typically 32, 64 or 128). Scales must be
 * finite and positive (QC_E_SCALE); A values are not checked (NaN propagates). */
qc_status qc_gemm_f32_w4(size_t m, size_t n, size_t k, const float *a, size_t a_stride, int w_type,
                         const uint8_t *w, const float *w_scale, const void *w_zero_point,
                         size_t block_size, const float *bias, float *y, size_t y_stride,
                         const qc_options *options);

/* Rows [k0, k1) x columns [n0, n1) of the int4 weight above, dequantized:
 *   y[(r - k0) * y_stride + (c - n0)] = (float)(w[r, c] - w_zp[r / block_size, c]) * w_scale[r / block_size, c]
 * (ONNX DequantizeLinear with axis 0 and block_size; the W of qc_gemm_f32_w4, bit for bit;
 * a panel for a float GEMM). w, w_scale and w_zero_point as for qc_gemm_f32_w4 (w the whole
 * K x N matrix). Statuses: QC_E_DTYPE (w_type), QC_E_INVALID_ARGUMENT (block_size 0),
 * QC_E_SHAPE (a range outside K x N, y_stride < n1 - n0), QC_E_NULL_POINTER,
 * QC_E_OVERFLOW, QC_E_SCALE / QC_E_ZERO_POINT (a bad parameter in the block rows the
 * range touches). An empty range is QC_OK and reads nothing. */
qc_status qc_dequantize_w4_f32(size_t k, size_t n, int w_type, const uint8_t *w, const float *w_scale,
                               const void *w_zero_point, size_t block_size, size_t k0, size_t k1, size_t n0,
                               size_t n1, float *y, size_t y_stride, const qc_options *options);
/* cdef: end */

#endif /* QCORE_GEMM_H */
