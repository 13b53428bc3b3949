/* Private pieces of the convolution (conv.c) and its loops (conv_scalar.c). */
#ifndef QCORE_CONV_INTERNAL_H
#define QCORE_CONV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qcore.h"

/* A validated convolution or pooling: shapes resolved once. */
typedef struct qc__conv_plan {
    qc_conv2d_shape shape;
    int layout;            /* of the input (and, for pooling, the output) */
    size_t out_height, out_width;
    size_t positions;      /* out_height * out_width */
    size_t rows;           /* batch * positions: rows of the im2col matrix */
    size_t cg, ng;         /* input / output channels per group */
    size_t k;              /* cg * kernel_height * kernel_width */
    uint8_t pad_value;     /* the input zero point's byte */
    const uint8_t *x;      /* int8 / uint8 input bytes */
} qc__conv_plan;

/* Unfold rows [row0, row0 + rows) of group g into cols (row length plan->k). */
void qc__conv_im2col(const qc__conv_plan *plan, size_t row0, size_t rows, size_t g, uint8_t *cols);

/* Write a chunk (rows x plan->ng, row-major) to output channels [oc0, oc0 + ng) of y. */
void qc__conv_scatter_s32(const qc__conv_plan *plan, int layout, size_t row0, size_t rows, size_t oc0,
                          const int32_t *chunk, int32_t *y);
void qc__conv_scatter_f32(const qc__conv_plan *plan, int layout, size_t row0, size_t rows, size_t oc0,
                          const float *chunk, float *y);
void qc__conv_scatter_x8(const qc__conv_plan *plan, int layout, size_t row0, size_t rows, size_t oc0,
                         const uint8_t *chunk, uint8_t *y);

/* y[r, j] = (float)acc[r, j] * m[j or 0] (+ bias[j]): float32, multiply then add. */
void qc_s32_conv_dequant_ukernel__scalar(size_t rows, size_t n, const int32_t *acc, const float *multiplier,
                                         int per_channel, const float *bias, float *y);
/* y[r, j] = qc__requant_float(acc[r, j] + bias[j], m[j or 0], zp, lo, hi), as bytes. */
void qc_s32_conv_requant_ukernel__scalar(size_t rows, size_t n, const int32_t *acc, const int32_t *bias,
                                         const float *multiplier, int per_channel, int32_t zero_point, int32_t lo,
                                         int32_t hi, uint8_t *y);
/* Clamp n int8 (is_signed) or uint8 values to [lo, hi] in place. */
void qc_x8_clamp_ukernel__scalar(size_t n, int is_signed, int32_t lo, int32_t hi, uint8_t *y);

void qc_u8_maxpool_ukernel__scalar(const qc__conv_plan *plan, const uint8_t *x, uint8_t *y);
void qc_s8_maxpool_ukernel__scalar(const qc__conv_plan *plan, const int8_t *x, int8_t *y);

#endif /* QCORE_CONV_INTERNAL_H */
