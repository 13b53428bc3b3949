/*
 * AVX2 epilogue of qc_linear_dynamic_u8_f32, bit-identical to the scalar twin: vcvtdq2ps
 * rounds to nearest even (the default MXCSR mode, as the scalar conversion), then one
 * float32 multiply by the float32 product x_scale * w_scale[j] and one add, no FMA.
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#if defined(__clang__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#include <immintrin.h>
#endif

#include "qlinear_f32.h"

void qc_s32_f32_dequant_bias_ukernel__avx2(size_t n, void *buf, float x_scale, const float *w_scale,
                                           int per_column, const float *bias) {
    unsigned char *p = (unsigned char *)buf;
    const __m256 xs = _mm256_set1_ps(x_scale);
    const __m256 ws0 = _mm256_set1_ps(w_scale[0]);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 acc = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(p + 4 * j)));
        __m256 mult = _mm256_mul_ps(xs, per_column ? _mm256_loadu_ps(w_scale + j) : ws0);
        __m256 v = _mm256_mul_ps(acc, mult);
        if (bias != NULL) {
            v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
        }
        _mm256_storeu_ps((float *)(void *)(p + 4 * j), v);
    }
    if (j < n) {
        qc_s32_f32_dequant_bias_ukernel__scalar(n - j, p + 4 * j, x_scale, per_column ? w_scale + j : w_scale,
                                                per_column, bias != NULL ? bias + j : NULL);
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif /* QC__BUILD_AVX2 */
