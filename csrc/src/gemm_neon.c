/*
 * NEON GEMM kernels for aarch64 and armv7 without dotprod. Exact for every input: bytes
 * are widened to int16 and multiplied into int32 lanes with vmlal_s16 (one product per
 * lane, at most 128 * 128); every column keeps four partial sums, added at the end.
 */
#include "gemm_internal.h"

#if defined(QC__BUILD_NEON)

#if defined(__arm__)
#pragma GCC target("fpu=neon")
#endif
#include <arm_neon.h>
#include <string.h>

#define QC__NEON_GEMM_KERNEL(MR)                                                                   \
    void qc_s8_gemm_ukernel_##MR##x8c4__neon(size_t rows, size_t kgroups, const void *a_packed,                 \
                                              const int8_t *b_panel, int32_t *tile) {              \
        const int8_t *a = (const int8_t *)a_packed;                                                \
        int32x4_t acc[MR][8];                                                                      \
        for (int r = 0; r < MR; r++) {                                                             \
            for (int c = 0; c < 8; c++) {                                                          \
                acc[r][c] = vdupq_n_s32(0);                                                        \
            }                                                                                      \
        }                                                                                          \
        for (size_t g = 0; g < kgroups; g++) {                                                     \
            const int8x16_t bq0 = vld1q_s8(b_panel);                                               \
            const int8x16_t bq1 = vld1q_s8(b_panel + 16);                                          \
            const int16x8_t bw[4] = {vmovl_s8(vget_low_s8(bq0)), vmovl_s8(vget_high_s8(bq0)),      \
                                     vmovl_s8(vget_low_s8(bq1)), vmovl_s8(vget_high_s8(bq1))};     \
            for (int r = 0; r < MR; r++) {                                                         \
                int32_t word;                                                                      \
                memcpy(&word, a + r * 4, sizeof word);                                             \
                const int16x4_t av = vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(word)))); \
                for (int h = 0; h < 4; h++) {                                                      \
                    acc[r][2 * h] = vmlal_s16(acc[r][2 * h], vget_low_s16(bw[h]), av);             \
                    acc[r][2 * h + 1] = vmlal_s16(acc[r][2 * h + 1], vget_high_s16(bw[h]), av);    \
                }                                                                                  \
            }                                                                                      \
            a += MR * 4;                                                                           \
            b_panel += 32;                                                                         \
        }                                                                                          \
        for (int r = 0; r < MR; r++) {                                                             \
            for (int c = 0; c < 8; c += 2) {                                                       \
                int32x2_t s0 = vadd_s32(vget_low_s32(acc[r][c]), vget_high_s32(acc[r][c]));        \
                int32x2_t s1 = vadd_s32(vget_low_s32(acc[r][c + 1]), vget_high_s32(acc[r][c + 1])); \
                vst1_s32(tile + r * QC__GEMM_NR + c, vpadd_s32(s0, s1));                           \
            }                                                                                      \
        }                                                                                          \
    }

#if defined(__aarch64__)
QC__NEON_GEMM_KERNEL(2)
#else
QC__NEON_GEMM_KERNEL(1)
#endif

#if defined(__aarch64__)
/* Weight-only int4 GEMM, 8 columns at a time; the same float operations in the same order
 * as the scalar twin (multiply, then add: no fused multiply-add). Only on aarch64, whose
 * Advanced SIMD floats are IEEE (armv7 NEON flushes subnormals to zero). */
static inline uint32_t qc__w4_load8(const uint8_t *w, size_t w_bytes, size_t e) {
    size_t byte = e >> 1;
    uint64_t word = 0;
    if (byte + 8 <= w_bytes) {
        memcpy(&word, w + byte, 8);
    } else {
        memcpy(&word, w + byte, w_bytes - byte);
    }
    return (uint32_t)(word >> ((e & 1) * 4));
}

/* Rows [row0, row0 + ROWS) over columns [c0, c1) (whole groups of 8), the loop order
 * of the AVX2 kernel: k in steps of up to 8 with each group's sums in registers, the
 * weights streamed in order, y strips in L1; fields copied to locals (stores to y may
 * alias them). */
static inline __attribute__((always_inline)) void qc__w4_rows_neon(const qc__w4_args *args, const int rows,
                                                                   size_t row0, size_t c0, size_t c1) {
    const size_t n = args->n, k = args->k, bs = args->block_size, as = args->a_stride, ys = args->y_stride;
    const size_t w_bytes = args->w_bytes;
    const uint8_t *const w = args->w;
    const float *const w_scale = args->w_scale;
    const uint8_t *const w_zp = (const uint8_t *)args->w_zero_point;
    const int w_signed = args->w_signed;
    const float *const a = args->a + row0 * as;
    float *const y = args->y + row0 * ys;
    const int32_t shift_lo_v[4] = {0, -4, -8, -12}, shift_hi_v[4] = {-16, -20, -24, -28};
    const int32x4_t shift_lo = vld1q_s32(shift_lo_v), shift_hi = vld1q_s32(shift_hi_v);
    const uint32x4_t low4 = vdupq_n_u32(0xF);
    const int32x4_t eight = vdupq_n_s32(8);
    for (size_t col = c0; col < c1; col += 8) {
        for (int r = 0; r < rows; r++) {
            vst1q_f32(y + r * ys + col, vdupq_n_f32(0.0f));
            vst1q_f32(y + r * ys + col + 4, vdupq_n_f32(0.0f));
        }
    }
    for (size_t k0 = 0; k0 < k; k0 += 8) {
        const size_t k1 = k0 + 8 < k ? k0 + 8 : k;
        size_t p_row[8];
        for (size_t kk = k0; kk < k1; kk++) {
            p_row[kk - k0] = (kk / bs) * n;
        }
        for (size_t col = c0; col < c1; col += 8) {
            float32x4_t acc[4][2];
            for (int r = 0; r < rows; r++) {
                acc[r][0] = vld1q_f32(y + r * ys + col);
                acc[r][1] = vld1q_f32(y + r * ys + col + 4);
            }
            for (size_t kk = k0; kk < k1; kk++) {
                const size_t e = kk * n + col, p = p_row[kk - k0] + col;
                uint32_t word;
                if ((e & 1) == 0) {
                    memcpy(&word, w + (e >> 1), sizeof word); /* e + 8 <= K * N: in bounds */
                } else {
                    word = qc__w4_load8(w, w_bytes, e);
                }
                const uint32x4_t bits = vdupq_n_u32(word);
                int32x4_t q0 = vreinterpretq_s32_u32(vandq_u32(vshlq_u32(bits, shift_lo), low4));
                int32x4_t q1 = vreinterpretq_s32_u32(vandq_u32(vshlq_u32(bits, shift_hi), low4));
                if (w_signed) {
                    q0 = vsubq_s32(veorq_s32(q0, eight), eight);
                    q1 = vsubq_s32(veorq_s32(q1, eight), eight);
                }
                if (w_zp != NULL) {
                    int16x8_t z16 = w_signed ? vmovl_s8(vld1_s8((const int8_t *)w_zp + p))
                                             : vreinterpretq_s16_u16(vmovl_u8(vld1_u8(w_zp + p)));
                    q0 = vsubq_s32(q0, vmovl_s16(vget_low_s16(z16)));
                    q1 = vsubq_s32(q1, vmovl_s16(vget_high_s16(z16)));
                }
                const float32x4_t w0 = vmulq_f32(vcvtq_f32_s32(q0), vld1q_f32(w_scale + p));
                const float32x4_t w1 = vmulq_f32(vcvtq_f32_s32(q1), vld1q_f32(w_scale + p + 4));
                for (int r = 0; r < rows; r++) {
                    const float32x4_t av = vdupq_n_f32(a[r * as + kk]);
                    acc[r][0] = vaddq_f32(acc[r][0], vmulq_f32(av, w0));
                    acc[r][1] = vaddq_f32(acc[r][1], vmulq_f32(av, w1));
                }
            }
            for (int r = 0; r < rows; r++) {
                vst1q_f32(y + r * ys + col, acc[r][0]);
                vst1q_f32(y + r * ys + col + 4, acc[r][1]);
            }
        }
    }
    if (args->bias != NULL) {
        const float *const bias = args->bias;
        for (size_t col = c0; col < c1; col += 4) {
            const float32x4_t b = vld1q_f32(bias + col);
            for (int r = 0; r < rows; r++) {
                vst1q_f32(y + r * ys + col, vaddq_f32(vld1q_f32(y + r * ys + col), b));
            }
        }
    }
}

void qc_f32_w4_gemm__neon(const qc__w4_args *args, size_t m0, size_t m1, size_t n0, size_t n1) {
    const size_t vec_end = n0 + (n1 - n0) / 8 * 8;
    for (size_t row0 = m0; row0 < m1; row0 += 4) {
        const size_t rows = m1 - row0 < 4 ? m1 - row0 : 4;
        const size_t strip = 4096 / rows; /* the strip of y stays in L1 */
        for (size_t c0 = n0; c0 < vec_end; c0 += strip) {
            size_t c1 = c0 + strip < vec_end ? c0 + strip : vec_end;
            switch (rows) {
            case 1: qc__w4_rows_neon(args, 1, row0, c0, c1); break;
            case 2: qc__w4_rows_neon(args, 2, row0, c0, c1); break;
            case 3: qc__w4_rows_neon(args, 3, row0, c0, c1); break;
            default: qc__w4_rows_neon(args, 4, row0, c0, c1); break;
            }
        }
    }
    if (vec_end < n1) {
        qc_f32_w4_gemm__scalar(args, m0, m1, vec_end, n1);
    }
}
#endif /* __aarch64__ */

#endif /* QC__BUILD_NEON */
