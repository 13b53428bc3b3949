/* Kernels of qc_layer_norm_f32 (qcore_activation.h): the scalar one and its AVX2 twin give
 * identical bits (same 8-lane sums, IEEE division and square root, no FMA). b (the residual)
 * and beta may be NULL; y may be a or b. */
#ifndef QCORE_LAYERNORM_INTERNAL_H
#define QCORE_LAYERNORM_INTERNAL_H

#include <stddef.h>

void qc_f32_layernorm_ukernel__scalar(const float *a, const float *b, size_t rows, size_t cols, const float *gamma,
                                      const float *beta, float eps, float *y);
#if defined(QC__BUILD_AVX2)
void qc_f32_layernorm_ukernel__avx2(const float *a, const float *b, size_t rows, size_t cols, const float *gamma,
                                    const float *beta, float eps, float *y);
#endif

#endif /* QCORE_LAYERNORM_INTERNAL_H */
