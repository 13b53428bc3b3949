/*
 * AVX2 layer normalization, bit-identical to qc_f32_layernorm_ukernel__scalar: lane j of
 * the vector accumulator sums the elements i = j (mod 8) in increasing i, the tail elements
 * are added to their lanes after the vector part (still in increasing i), and the lanes are
 * combined in the scalar kernel's order. Element-wise steps are single IEEE operations
 * (vaddps, vsubps, vmulps, vdivps; no FMA). Four rows go at a time (their sums' chains side
 * by side).
 */
#include "internal.h"

#if defined(QC__BUILD_AVX2)

#include <math.h>

#include <immintrin.h>

QC__AVX2_BEGIN

#include "activation.h"
#include "layernorm.h"

/* NR rows at once (1..4): the two sums of each row are single dependency chains of vector
 * adds (48 of them for 384 columns), so the rows' chains run side by side; each row's
 * operations and their order are those of the one-row loop. */
static inline __attribute__((always_inline)) void qc__layernorm_rows_avx2(const float *a, const float *b, size_t cols,
                                                                          const float *gamma, const float *beta,
                                                                          float eps, float *y, const int nr) {
    const float count = (float)cols;
    const size_t full = cols - cols % 8;
    const float *ar[4];
    const float *br[4];
    float *yr[4];
    __m256 acc[4];
    float lanes[4][8], mean[4], d[4];
    for (int r = 0; r < nr; r++) {
        ar[r] = a + (size_t)r * cols;
        br[r] = b != NULL ? b + (size_t)r * cols : NULL;
        yr[r] = y + (size_t)r * cols;
        acc[r] = _mm256_setzero_ps();
    }
    for (size_t i = 0; i < full; i += 8) {
        for (int r = 0; r < nr; r++) {
            __m256 v = _mm256_loadu_ps(ar[r] + i);
            if (br[r] != NULL) {
                v = _mm256_add_ps(v, _mm256_loadu_ps(br[r] + i));
            }
            acc[r] = _mm256_add_ps(acc[r], v);
            _mm256_storeu_ps(yr[r] + i, v);
        }
    }
    for (int r = 0; r < nr; r++) {
        _mm256_storeu_ps(lanes[r], acc[r]);
        for (size_t i = full; i < cols; i++) {
            float v = br[r] != NULL ? ar[r][i] + br[r][i] : ar[r][i];
            lanes[r][i % 8] = lanes[r][i % 8] + v;
            yr[r][i] = v;
        }
        mean[r] = qc__softmax_lane_sum(lanes[r]) / count;
        acc[r] = _mm256_setzero_ps();
    }
    for (size_t i = 0; i < full; i += 8) {
        for (int r = 0; r < nr; r++) {
            __m256 c = _mm256_sub_ps(_mm256_loadu_ps(yr[r] + i), _mm256_set1_ps(mean[r]));
            acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(c, c));
        }
    }
    for (int r = 0; r < nr; r++) {
        _mm256_storeu_ps(lanes[r], acc[r]);
        for (size_t i = full; i < cols; i++) {
            float c = yr[r][i] - mean[r];
            lanes[r][i % 8] = lanes[r][i % 8] + c * c;
        }
        d[r] = sqrtf(qc__softmax_lane_sum(lanes[r]) / count + eps);
    }
    for (int r = 0; r < nr; r++) {
        const __m256 vmean = _mm256_set1_ps(mean[r]), vd = _mm256_set1_ps(d[r]);
        for (size_t i = 0; i < full; i += 8) {
            __m256 v = _mm256_mul_ps(_mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(yr[r] + i), vmean), vd),
                                     _mm256_loadu_ps(gamma + i));
            if (beta != NULL) {
                v = _mm256_add_ps(v, _mm256_loadu_ps(beta + i));
            }
            _mm256_storeu_ps(yr[r] + i, v);
        }
        for (size_t i = full; i < cols; i++) {
            float v = ((yr[r][i] - mean[r]) / d[r]) * gamma[i];
            yr[r][i] = beta != NULL ? v + beta[i] : v;
        }
    }
}

void qc_f32_layernorm_ukernel__avx2(const float *a, const float *b, size_t rows, size_t cols, const float *gamma,
                                    const float *beta, float eps, float *y) {
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        qc__layernorm_rows_avx2(a + r * cols, b != NULL ? b + r * cols : NULL, cols, gamma, beta, eps, y + r * cols,
                                4);
    }
    for (; r < rows; r++) {
        qc__layernorm_rows_avx2(a + r * cols, b != NULL ? b + r * cols : NULL, cols, gamma, beta, eps, y + r * cols,
                                1);
    }
}

QC__AVX2_END

#endif /* QC__BUILD_AVX2 */
