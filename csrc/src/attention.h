/*
 * One (batch, head) of qc_attention_scores_f32 (qcore_attention.h), before its softmax:
 * y[i * cols + j] = mask(scale(sum_d q[i, d] * kt[d * kt_stride + j])) in float32, the sum
 * from +0 in increasing d. K is packed (kt: depth rows of kt_stride >= cols floats, the
 * padding zero); q and the mask are read through their strides.
 */
#ifndef QC_ATTENTION_INTERNAL_H
#define QC_ATTENTION_INTERNAL_H

#include "internal.h"

typedef struct {
    size_t rows, depth, cols;
    const float *q;          /* q[i, d] = q[i * q_rs + d * q_cs] */
    int64_t q_rs, q_cs;
    const float *kt;         /* kt[d, j] = kt[d * kt_stride + j], j < kt_stride */
    size_t kt_stride;
    const float *scale;      /* NULL: no scaling */
    const float *mask;       /* NULL: no mask; else mask[i, j] = mask[i * m_rs + j * m_cs] */
    int64_t m_rs, m_cs;
    float *y;                /* y[i, j] = y[i * y_rs + j] */
    int64_t y_rs;
    float *scratch;          /* 4 * (depth + kt_stride) floats */
} qc__attention_head;

void qc_f32_attention_scores_ukernel__scalar(const qc__attention_head *h);
#if defined(QC__BUILD_AVX2)
void qc_f32_attention_scores_ukernel__avx2(const qc__attention_head *h);
#endif

/* The context of r rows: y[i * y_rs + e * y_cs] = sum_j p[i * p_rs + j] * v[j * v_rs + e] for
 * i < r, e < vdepth, the sum from +0 in increasing j < len, every product and sum rounded
 * to float32 (no FMA). v's rows are vdepth contiguous floats. */
typedef void (*qc__attention_context_fn)(const float *p, size_t p_rs, size_t r, size_t len, const float *v,
                                         int64_t v_rs, size_t vdepth, float *y, int64_t y_rs, int64_t y_cs);
void qc_f32_attention_context_ukernel__scalar(const float *p, size_t p_rs, size_t r, size_t len, const float *v,
                                              int64_t v_rs, size_t vdepth, float *y, int64_t y_rs, int64_t y_cs);
#if defined(QC__BUILD_AVX2)
void qc_f32_attention_context_ukernel__avx2(const float *p, size_t p_rs, size_t r, size_t len, const float *v,
                                            int64_t v_rs, size_t vdepth, float *y, int64_t y_rs, int64_t y_cs);
#endif

/* The largest |x| of rows x cols floats x[i * rs + j * cs], as the bits of a float without
 * its sign (an integer max: NaN and infinity come out above every finite value). */
typedef uint32_t (*qc__absmax_bits_fn)(const float *x, size_t rows, int64_t rs, size_t cols, int64_t cs);
uint32_t qc_f32_absmax_bits_ukernel__scalar(const float *x, size_t rows, int64_t rs, size_t cols, int64_t cs);
#if defined(QC__BUILD_AVX2)
uint32_t qc_f32_absmax_bits_ukernel__avx2(const float *x, size_t rows, int64_t rs, size_t cols, int64_t cs);
#endif

#endif /* QC_ATTENTION_INTERNAL_H */
