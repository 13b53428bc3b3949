/*
 * AVX2 layer normalization, bit-identical to qc_f32_layernorm_ukernel__scalar: lane j of
 * the vector accumulator sums the elements i = j (mod 8) in increasing i, the tail elements
 * are added to their lanes after the vector part (still in increasing i), and the lanes are
 * combined in the scalar kernel's order. Element-wise steps are single IEEE operations
 * (vaddps, vsubps, vmulps, vdivps; no FMA).
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#include <math.h>

#include <immintrin.h>

QC__AVX2_BEGIN

#include "activation.h"
#include "layernorm.h"

void qc_f32_layernorm_ukernel__avx2(const float *a, const float *b, size_t rows, size_t cols, const float *gamma,
                                    const float *beta, float eps, float *y) {
    const float count = (float)cols;
    const size_t full = cols - cols % 8;
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a + r * cols;
        const float *br = b != NULL ? b + r * cols : NULL;
        float *yr = y + r * cols;
        float lanes[8];
        __m256 acc = _mm256_setzero_ps();
        for (size_t i = 0; i < full; i += 8) {
            __m256 v = _mm256_loadu_ps(ar + i);
            if (br != NULL) {
                v = _mm256_add_ps(v, _mm256_loadu_ps(br + i));
            }
            acc = _mm256_add_ps(acc, v);
            _mm256_storeu_ps(yr + i, v);
        }
        _mm256_storeu_ps(lanes, acc);
        for (size_t i = full; i < cols; i++) {
            float v = br != NULL ? ar[i] + br[i] : ar[i];
            lanes[i % 8] = lanes[i % 8] + v;
            yr[i] = v;
        }
        const float mean = qc__softmax_lane_sum(lanes) / count;
        const __m256 vmean = _mm256_set1_ps(mean);
        acc = _mm256_setzero_ps();
        for (size_t i = 0; i < full; i += 8) {
            __m256 c = _mm256_sub_ps(_mm256_loadu_ps(yr + i), vmean);
            acc = _mm256_add_ps(acc, _mm256_mul_ps(c, c));
        }
        _mm256_storeu_ps(lanes, acc);
        for (size_t i = full; i < cols; i++) {
            float c = yr[i] - mean;
            lanes[i % 8] = lanes[i % 8] + c * c;
        }
        const float d = sqrtf(qc__softmax_lane_sum(lanes) / count + eps);
        const __m256 vd = _mm256_set1_ps(d);
        for (size_t i = 0; i < full; i += 8) {
            __m256 v = _mm256_mul_ps(_mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(yr + i), vmean), vd),
                                     _mm256_loadu_ps(gamma + i));
            if (beta != NULL) {
                v = _mm256_add_ps(v, _mm256_loadu_ps(beta + i));
            }
            _mm256_storeu_ps(yr + i, v);
        }
        for (size_t i = full; i < cols; i++) {
            float v = ((yr[i] - mean) / d) * gamma[i];
            yr[i] = beta != NULL ? v + beta[i] : v;
        }
    }
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
