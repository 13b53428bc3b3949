/*
 * aarch64 NEON dotprod GEMM kernel: SDOT multiplies four signed bytes per lane and adds
 * them into int32 (exact, wrapping), the same sum as the scalar twin.
 */
#include "gemm_internal.h"

#if defined(QC__BUILD_NEONDOT)

#pragma GCC target("arch=armv8.2-a+dotprod")
#include <arm_neon.h>

/* A: 4 rows x 4 k per group (16 bytes, row r in lane r); B: 8 columns x 4 k (32 bytes). */
void qc_s8_gemm_ukernel_4x8c4__neondot(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                       int32_t *tile) {
    const int8_t *a = (const int8_t *)a_packed;
    int32x4_t c00 = vdupq_n_s32(0), c01 = vdupq_n_s32(0), c10 = vdupq_n_s32(0), c11 = vdupq_n_s32(0);
    int32x4_t c20 = vdupq_n_s32(0), c21 = vdupq_n_s32(0), c30 = vdupq_n_s32(0), c31 = vdupq_n_s32(0);
    for (size_t g = 0; g < kgroups; g++) {
        const int8x16_t av = vld1q_s8(a);
        const int8x16_t b0 = vld1q_s8(b_panel);
        const int8x16_t b1 = vld1q_s8(b_panel + 16);
        c00 = vdotq_laneq_s32(c00, b0, av, 0);
        c01 = vdotq_laneq_s32(c01, b1, av, 0);
        c10 = vdotq_laneq_s32(c10, b0, av, 1);
        c11 = vdotq_laneq_s32(c11, b1, av, 1);
        c20 = vdotq_laneq_s32(c20, b0, av, 2);
        c21 = vdotq_laneq_s32(c21, b1, av, 2);
        c30 = vdotq_laneq_s32(c30, b0, av, 3);
        c31 = vdotq_laneq_s32(c31, b1, av, 3);
        a += 16;
        b_panel += 32;
    }
    vst1q_s32(tile + 0 * QC__GEMM_NR, c00);
    vst1q_s32(tile + 0 * QC__GEMM_NR + 4, c01);
    vst1q_s32(tile + 1 * QC__GEMM_NR, c10);
    vst1q_s32(tile + 1 * QC__GEMM_NR + 4, c11);
    vst1q_s32(tile + 2 * QC__GEMM_NR, c20);
    vst1q_s32(tile + 2 * QC__GEMM_NR + 4, c21);
    vst1q_s32(tile + 3 * QC__GEMM_NR, c30);
    vst1q_s32(tile + 3 * QC__GEMM_NR + 4, c31);
}

#endif /* QC__BUILD_NEONDOT */
