/* Private pieces of the convolution (conv.c) and its loops (conv_scalar.c, conv_avx2.c). */
#ifndef QCORE_CONV_INTERNAL_H
#define QCORE_CONV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qcore.h"

#define QC__CONV_MAGIC 0x56434351u /* "QCCV" */
#define QC__CONV_VERSION 1u
#define QC__CONV_HEADER_BYTES 128u

/* Header of a packed weight buffer (qc_conv2d_pack_weights), followed by
 * - direct panels at direct_offset: for each group g, 8-column block j, tap t = kh * KW + kw
 *   and channel pair p, 16 int16: element 2c + e is w[g * ng + 8j + c, 2p + e, kh, kw] -
 *   w_zp[that oc] (0 past ng or cg): one ymm of vpmaddwd operands per channel pair;
 * - flat panels at flat_offset: the same with the taps and channels as one index
 *   k = t * cg + c (padded to even, flat_pairs pairs), for convolutions with few channels per
 *   group, whose input rows are gathered into a small int16 buffer first;
 * - GEMM buffers at gemm_offset, one per group every gemm_stride bytes: qc_gemm_pack_b of
 *   the K x ng matrix with k = (kh * KW + kw) * cg + c (the NHWC im2col order). */
typedef struct qc__conv_weights_header {
    uint32_t magic;
    uint32_t version;
    uint64_t out_channels, cg, kernel_height, kernel_width, groups;
    uint64_t cg2;     /* cg rounded up to even */
    uint64_t blocks;  /* 8-column blocks per group */
    uint64_t direct_offset, gemm_offset, gemm_stride;
    uint64_t flat_offset, flat_pairs; /* flat panels: k = t * cg + c as one run of pairs */
} qc__conv_weights_header;

/* A validated convolution or pooling: shapes resolved once. */
typedef struct qc__conv_plan {
    qc_conv2d_shape shape;
    int layout;            /* of the input (and, for pooling, the output) */
    size_t out_height, out_width;
    size_t positions;      /* out_height * out_width */
    size_t rows;           /* batch * positions */
    size_t cg, ng;         /* input / output channels per group */
    size_t k;              /* cg * kernel_height * kernel_width */
    uint8_t pad_value;     /* the input zero point's byte */
    const uint8_t *x;      /* int8 / uint8 NHWC input bytes (GEMM path) */
    size_t pool_height, pool_width;     /* fused output max pool (1 x 1: none) */
    size_t pooled_height, pooled_width; /* out_height / pool_height, out_width / pool_width */
    size_t padded_height, padded_width; /* height + pad_top + pad_bottom, width + left + right */
} qc__conv_plan;

/* Output rows per microkernel call. */
#define QC__CONV_MR 6

/* Input row pointers of one block of QC__CONV_MR output rows: ptrs[t * QC__CONV_MR + i]
 * for tap t, row i. */
typedef void (*qc__conv_ukernel_fn)(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
    const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows, size_t cols);

/* 6 rows x 16 columns (two 8-column panels w0, w1; cols <= 16) or 6 x 8 (w1 unused,
 * cols <= 8) of C[i, j] = sum_t sum_p a_i,t[2p..2p+1] . w[t, p, j, 0..1] (int32, wrapping)
 * with a_i,t = ptrs[t * QC__CONV_MR + i] + a_offset; rows <= 6 are stored. */
void qc_s16_conv_ukernel_6x16__scalar(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
    const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows, size_t cols);
void qc_s16_conv_ukernel_6x8__scalar(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
    const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows, size_t cols);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
void qc_s16_conv_ukernel_6x16__avx2(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
    const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows, size_t cols);
void qc_s16_conv_ukernel_6x8__avx2(size_t taps, size_t pairs, const int16_t *const *ptrs, size_t a_offset,
    const int16_t *w0, const int16_t *w1, int32_t *c, size_t c_stride, size_t rows, size_t cols);
#endif

/* Unfold rows [row0, row0 + rows) of group g of an NHWC input into cols (row length k). */
void qc__conv_im2col(const qc__conv_plan *plan, size_t row0, size_t rows, size_t g, uint8_t *cols);

/* Write a chunk (rows x out_channels, row-major: NHWC order) to y in layout. */
void qc__conv_scatter_s32(const qc__conv_plan *plan, int layout, size_t row0, size_t rows, const int32_t *chunk,
                          int32_t *y);
void qc__conv_scatter_f32(const qc__conv_plan *plan, int layout, size_t row0, size_t rows, const float *chunk,
                          float *y);
void qc__conv_scatter_x8(const qc__conv_plan *plan, int layout, size_t row0, size_t rows, const uint8_t *chunk,
                         uint8_t *y);

/* y[r, j] = (float)acc[r, j] * m[j or 0] (+ bias[j]): float32, multiply then add. */
void qc_s32_conv_dequant_ukernel__scalar(size_t rows, size_t n, const int32_t *acc, const float *multiplier,
                                         int per_channel, const float *bias, float *y);
/* y[r, j] = qc__requant_float(acc[r, j] + bias[j], m[j or 0], zp, lo, hi), as bytes. */
void qc_s32_conv_requant_ukernel__scalar(size_t rows, size_t n, const int32_t *acc, const int32_t *bias,
                                         const float *multiplier, int per_channel, int32_t zero_point, int32_t lo,
                                         int32_t hi, uint8_t *y);
/* The F32_QUANTIZE output stage in one pass: f = (float)acc[r, j] * m[j or 0] (+ bias[j]),
 * y = clamp(round_half_even(f / scale) + zp, lo, hi) as bytes (lo/hi within the type and
 * around zp; the clamp happens in float before the conversion, as qc_quantize_f32 does). */
void qc_s32_conv_quantize_ukernel__scalar(size_t rows, size_t n, const int32_t *acc, const float *multiplier,
                                          int per_channel, const float *bias, float scale, int32_t zero_point,
                                          int32_t lo, int32_t hi, uint8_t *y);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
void qc_s32_conv_quantize_ukernel__avx2(size_t rows, size_t n, const int32_t *acc, const float *multiplier,
                                        int per_channel, const float *bias, float scale, int32_t zero_point,
                                        int32_t lo, int32_t hi, uint8_t *y);
#endif
/* The fused max pool of whole images: rows = images * positions of the output stage's
 * bytes (row-major, out_channels per row), pooled into y in layout. */
void qc__conv_pool_x8(const qc__conv_plan *plan, int layout, int is_signed, size_t row0, size_t rows,
                      const uint8_t *chunk, uint8_t *y);
void qc_u8_maxpool_ukernel__scalar(const qc__conv_plan *plan, const uint8_t *x, uint8_t *y);
void qc_s8_maxpool_ukernel__scalar(const qc__conv_plan *plan, const int8_t *x, int8_t *y);

#endif /* QCORE_CONV_INTERNAL_H */
