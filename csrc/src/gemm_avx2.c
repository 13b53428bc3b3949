/*
 * AVX2 GEMM kernels (x86-64). Exact for every input: signed bytes are widened to int16
 * and multiplied with vpmaddwd, whose pairwise int32 sums (at most 2 * 128 * 128) never
 * saturate; vpmaddubsw, which saturates on full-range u8 x s8, is not used.
 */
#include "gemm_internal.h"

#if defined(QC__BUILD_AVX2)

#include <immintrin.h>
#include <string.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif

/* A is packed as int16, MR x 4 per k group; B is a panel of 8 columns x 4 k per group.
 * Per group: the 32 bytes of B widen to two vectors (columns 0-3 and 4-7, each as
 * c0k0 c0k1 c0k2 c0k3 c1k0 ...), each row's four A values are broadcast as 64 bits, and
 * vpmaddwd leaves two partial sums per column (k0+k1, k2+k3), summed once at the end.
 * Accumulators are named variables (an array would be spilled); `rows` is a compile-time
 * constant in every instantiation, so the unused rows vanish. */
#define QC__AVX2_ROW(r)                                                                   \
    if (rows > r) {                                                                       \
        long long pair;                                                                   \
        memcpy(&pair, a + r * 4, sizeof pair);                                            \
        const __m256i av = _mm256_set1_epi64x(pair);                                      \
        c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(av, b0));                   \
        c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(av, b1));                   \
    }
#define QC__AVX2_STORE(r)                                                                 \
    if (rows > r) {                                                                       \
        /* hadd gives c0 c1 c4 c5 | c2 c3 c6 c7; the permute restores column order. */   \
        __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(c##r##0, c##r##1), 0xD8); \
        _mm256_storeu_si256((__m256i *)(tile + r * QC__GEMM_NR), sums);                   \
    }

static inline __attribute__((always_inline)) void qc__avx2_tile(const int rows, size_t a_step, size_t kgroups,
                                                                const int16_t *a, const int8_t *b_panel,
                                                                int32_t *tile) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (size_t g = 0; g < kgroups; g++) {
        const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b_panel));
        const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b_panel + 16)));
        QC__AVX2_ROW(0)
        QC__AVX2_ROW(1)
        QC__AVX2_ROW(2)
        QC__AVX2_ROW(3)
        QC__AVX2_ROW(4)
        QC__AVX2_ROW(5)
        a += a_step;
        b_panel += 32;
    }
    QC__AVX2_STORE(0)
    QC__AVX2_STORE(1)
    QC__AVX2_STORE(2)
    QC__AVX2_STORE(3)
    QC__AVX2_STORE(4)
    QC__AVX2_STORE(5)
}

/* The full 6-row tile needs 12 accumulators, 2 B vectors, a broadcast and a product: all
 * 16 ymm registers. GCC's allocator spills four accumulators when this is written with
 * intrinsics, so the 6-row tile is written in assembly with the same instructions:
 * ymm0-11 accumulate (row r in ymm 2r, 2r+1), ymm12/13 hold B, ymm14 the broadcast A,
 * ymm15 the product. */
#define QC__AVX2_ASM_ROW(off, c0, c1)          \
    "vpbroadcastq " #off "(%[a]), %%ymm14\n\t" \
    "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n\t"   \
    "vpaddd %%ymm15, %%" c0 ", %%" c0 "\n\t"   \
    "vpmaddwd %%ymm13, %%ymm14, %%ymm15\n\t"   \
    "vpaddd %%ymm15, %%" c1 ", %%" c1 "\n\t"
#define QC__AVX2_ASM_STORE(c0, c1, off)              \
    "vphaddd %%" c1 ", %%" c0 ", %%" c0 "\n\t"       \
    "vpermq $0xD8, %%" c0 ", %%" c0 "\n\t"           \
    "vmovdqu %%" c0 ", " #off "(%[tile])\n\t"

static void qc__avx2_tile6(size_t kgroups, const int16_t *a, const int8_t *b_panel, int32_t *tile) {
    __asm__ volatile(
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
        "vpxor %%xmm8, %%xmm8, %%xmm8\n\t"
        "vpxor %%xmm9, %%xmm9, %%xmm9\n\t"
        "vpxor %%xmm10, %%xmm10, %%xmm10\n\t"
        "vpxor %%xmm11, %%xmm11, %%xmm11\n\t"
        "test %[n], %[n]\n\t"
        "jz 2f\n\t"
        ".p2align 4\n"
        "1:\n\t"
        "vpmovsxbw (%[b]), %%ymm12\n\t"
        "vpmovsxbw 16(%[b]), %%ymm13\n\t"
        QC__AVX2_ASM_ROW(0, "ymm0", "ymm1")
        QC__AVX2_ASM_ROW(8, "ymm2", "ymm3")
        QC__AVX2_ASM_ROW(16, "ymm4", "ymm5")
        QC__AVX2_ASM_ROW(24, "ymm6", "ymm7")
        QC__AVX2_ASM_ROW(32, "ymm8", "ymm9")
        QC__AVX2_ASM_ROW(40, "ymm10", "ymm11")
        "add $48, %[a]\n\t"
        "add $32, %[b]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        QC__AVX2_ASM_STORE("ymm0", "ymm1", 0)
        QC__AVX2_ASM_STORE("ymm2", "ymm3", 32)
        QC__AVX2_ASM_STORE("ymm4", "ymm5", 64)
        QC__AVX2_ASM_STORE("ymm6", "ymm7", 96)
        QC__AVX2_ASM_STORE("ymm8", "ymm9", 128)
        QC__AVX2_ASM_STORE("ymm10", "ymm11", 160)
        "vzeroupper\n\t"
        : [a] "+r"(a), [b] "+r"(b_panel), [n] "+r"(kgroups)
        : [tile] "r"(tile)
        : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

/* One function per tile height; `rows` selects the specialisation for the last block. */
void qc_s8_gemm_ukernel_4x8c4__avx2(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile) {
    const int16_t *a = (const int16_t *)a_packed;
    switch (rows) {
    case 1: qc__avx2_tile(1, 16, kgroups, a, b_panel, tile); break;
    case 2: qc__avx2_tile(2, 16, kgroups, a, b_panel, tile); break;
    case 3: qc__avx2_tile(3, 16, kgroups, a, b_panel, tile); break;
    default: qc__avx2_tile(4, 16, kgroups, a, b_panel, tile); break;
    }
}

void qc_s8_gemm_ukernel_6x8c4__avx2(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile) {
    const int16_t *a = (const int16_t *)a_packed;
    switch (rows) {
    case 1: qc__avx2_tile(1, 24, kgroups, a, b_panel, tile); break;
    case 2: qc__avx2_tile(2, 24, kgroups, a, b_panel, tile); break;
    case 3: qc__avx2_tile(3, 24, kgroups, a, b_panel, tile); break;
    case 4: qc__avx2_tile(4, 24, kgroups, a, b_panel, tile); break;
    case 5: qc__avx2_tile(5, 24, kgroups, a, b_panel, tile); break;
    default: qc__avx2_tile6(kgroups, a, b_panel, tile); break;
    }
}

/* Eight consecutive int4 elements starting at element e, as one 32-bit word (element e in
 * the low nibble). Reads past the end of w are never made. */
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

void qc_f32_w4_gemm__avx2(const qc__w4_args *args, size_t m0, size_t m1, size_t n0, size_t n1) {
    enum { MR = 4 };
    const size_t n = args->n, k = args->k;
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i low4 = _mm256_set1_epi32(0xF);
    const __m256i eight = _mm256_set1_epi32(8);
    size_t vec_end = n0 + (n1 - n0) / 8 * 8;
    for (size_t row0 = m0; row0 < m1; row0 += MR) {
        size_t rows = m1 - row0 < MR ? m1 - row0 : MR;
        for (size_t col = n0; col < vec_end; col += 8) {
            __m256 acc[MR];
            for (int r = 0; r < MR; r++) {
                acc[r] = _mm256_setzero_ps();
            }
            for (size_t kb = 0; kb < k; kb += args->block_size) {
                size_t kend = kb + args->block_size < k ? kb + args->block_size : k;
                size_t p = (kb / args->block_size) * n + col;
                const __m256 scale = _mm256_loadu_ps(args->w_scale + p);
                __m256i zp = _mm256_setzero_si256();
                if (args->w_zero_point != NULL) {
                    __m128i z8 = _mm_loadl_epi64((const __m128i *)((const uint8_t *)args->w_zero_point + p));
                    zp = args->w_signed ? _mm256_cvtepi8_epi32(z8) : _mm256_cvtepu8_epi32(z8);
                }
                for (size_t kk = kb; kk < kend; kk++) {
                    uint32_t bits = qc__w4_load8(args->w, args->w_bytes, kk * n + col);
                    __m256i q = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)bits), shifts), low4);
                    if (args->w_signed) {
                        q = _mm256_sub_epi32(_mm256_xor_si256(q, eight), eight);
                    }
                    const __m256 wv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, zp)), scale);
                    for (size_t r = 0; r < rows; r++) {
                        const __m256 av = _mm256_set1_ps(args->a[(row0 + r) * args->a_stride + kk]);
                        acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(av, wv));
                    }
                }
            }
            for (size_t r = 0; r < rows; r++) {
                __m256 out = acc[r];
                if (args->bias != NULL) {
                    out = _mm256_add_ps(out, _mm256_loadu_ps(args->bias + col));
                }
                _mm256_storeu_ps(args->y + (row0 + r) * args->y_stride + col, out);
            }
        }
    }
    if (vec_end < n1) {
        qc_f32_w4_gemm__scalar(args, m0, m1, vec_end, n1);
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif /* QC__BUILD_AVX2 */
