/*
 * Portable scalar GEMM kernels: the twins every SIMD path is tested against.
 */
#include "gemm_internal.h"

void qc_s8_gemm_ukernel_4x8c4__scalar(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                      int32_t *tile) {
    enum { MR = 4, NR = QC__GEMM_NR, KG = QC__GEMM_KG };
    const int8_t *a = (const int8_t *)a_packed;
    uint32_t acc[MR][NR] = {{0}};
    for (size_t g = 0; g < kgroups; g++) {
        for (int r = 0; r < MR; r++) {
            for (int c = 0; c < NR; c++) {
                int32_t dot = 0;
                for (int j = 0; j < KG; j++) {
                    dot += (int32_t)a[r * KG + j] * (int32_t)b_panel[c * KG + j];
                }
                acc[r][c] += (uint32_t)dot;
            }
        }
        a += MR * KG;
        b_panel += NR * KG;
    }
    for (int r = 0; r < MR; r++) {
        for (int c = 0; c < NR; c++) {
            tile[r * NR + c] = (int32_t)acc[r][c];
        }
    }
}

void qc_f32_w4_gemm__scalar(const qc__w4_args *args, size_t m0, size_t m1, size_t n0, size_t n1) {
    for (size_t row = m0; row < m1; row++) {
        const float *a = args->a + row * args->a_stride;
        float *y = args->y + row * args->y_stride;
        for (size_t col = n0; col < n1; col++) {
            float acc = 0.0f;
            for (size_t kk = 0; kk < args->k; kk++) {
                acc = acc + a[kk] * qc__w4_value(args, kk, col);
            }
            if (args->bias != NULL) {
                acc = acc + args->bias[col];
            }
            y[col] = acc;
        }
    }
}

void qc_f32_w4_dequant__scalar(const qc__w4_args *args, size_t k0, size_t k1, size_t n0, size_t n1) {
    for (size_t kk = k0; kk < k1; kk++) {
        float *y = args->y + (kk - k0) * args->y_stride;
        for (size_t col = n0; col < n1; col++) {
            y[col - n0] = qc__w4_value(args, kk, col);
        }
    }
}
