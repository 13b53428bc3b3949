/*
 * float32 layer normalization over the last axis, optionally of a residual sum
 * (qcore_activation.h): argument checks, ISA dispatch and the scalar kernel. The AVX2 twin
 * (layernorm_avx2.c) sums in the same 8 lanes and rounds every operation the same way.
 */
#include <math.h>

#include "internal.h"

#include "activation.h"
#include "layernorm.h"

void qc_f32_layernorm_ukernel__scalar(const float *a, const float *b, size_t rows, size_t cols, const float *gamma,
                                      const float *beta, float eps, float *y) {
    const float count = (float)cols;
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a + r * cols;
        const float *br = b != NULL ? b + r * cols : NULL;
        float *yr = y + r * cols;
        float lanes[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (size_t i = 0; i < cols; i++) {
            float v = br != NULL ? ar[i] + br[i] : ar[i];
            lanes[i % 8] = lanes[i % 8] + v;
            yr[i] = v;
        }
        const float mean = qc__softmax_lane_sum(lanes) / count;
        for (int j = 0; j < 8; j++) {
            lanes[j] = 0.0f;
        }
        for (size_t i = 0; i < cols; i++) {
            float c = yr[i] - mean;
            lanes[i % 8] = lanes[i % 8] + c * c;
        }
        const float d = sqrtf(qc__softmax_lane_sum(lanes) / count + eps);
        for (size_t i = 0; i < cols; i++) {
            float v = ((yr[i] - mean) / d) * gamma[i];
            yr[i] = beta != NULL ? v + beta[i] : v;
        }
    }
}

qc_status qc_layer_norm_f32(const float *x, const float *residual, size_t rows, size_t cols, const float *gamma,
                            const float *beta, float epsilon, float *y, const qc_options *options) {
    int isa = QC_ISA_SCALAR;
    int threads = 1;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (!(epsilon >= 0.0f) || isinf(epsilon)) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (rows == 0 || cols == 0) {
        return QC_OK;
    }
    if (x == NULL || y == NULL || gamma == NULL) {
        return QC_E_NULL_POINTER;
    }
    size_t total = 0;
    if (qc__mul_size(rows, cols, &total)) {
        return QC_E_OVERFLOW;
    }
#if defined(QC__BUILD_AVX2)
    if (isa == QC_ISA_AVX2) {
        qc_f32_layernorm_ukernel__avx2(x, residual, rows, cols, gamma, beta, epsilon, y);
        return QC_OK;
    }
#endif
    if (isa != QC_ISA_SCALAR && isa != QC_ISA_NEON && isa != QC_ISA_NEONDOT && isa != QC_ISA_I8MM) {
        return QC_E_UNSUPPORTED_ISA;
    }
    qc_f32_layernorm_ukernel__scalar(x, residual, rows, cols, gamma, beta, epsilon, y);
    return QC_OK;
}
