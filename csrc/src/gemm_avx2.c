/*
 * AVX2 GEMM kernels (x86-64). Exact for every input: signed bytes are widened to int16
 * and multiplied with vpmaddwd, whose pairwise int32 sums (at most 2 * 128 * 128) never
 * saturate; vpmaddubsw, which saturates on full-range u8 x s8, is not used.
 */
#include "gemm_internal.h"
#include "requant.h"

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
        _mm256_storeu_si256((__m256i *)(tile + r * tile_stride), sums);                   \
    }

static inline __attribute__((always_inline)) void qc__avx2_tile(const int rows, size_t a_step, size_t kgroups,
                                                                const int16_t *a, const int8_t *b_panel,
                                                                int32_t *tile, size_t tile_stride) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (size_t g = 0; g < kgroups; g++) {
        if (rows <= 2) {
            /* Few rows: memory-bound on B, so fetch ahead of the hardware prefetcher. */
            _mm_prefetch((const char *)(b_panel + 4096), _MM_HINT_T0);
        }
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
#define QC__AVX2_ASM_STORE(c0, c1)                   \
    "vphaddd %%" c1 ", %%" c0 ", %%" c0 "\n\t"       \
    "vpermq $0xD8, %%" c0 ", %%" c0 "\n\t"           \
    "vmovdqu %%" c0 ", (%[tile])\n\t"                \
    "add %[stride], %[tile]\n\t"

/* The first n rows' accumulators zeroed, multiply-adds, stores (n = 1 .. 6). */
#define QC__AVX2_ASM_ZERO1 "vpxor %%xmm0, %%xmm0, %%xmm0\n\t" "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
#define QC__AVX2_ASM_ZERO2 QC__AVX2_ASM_ZERO1 "vpxor %%xmm2, %%xmm2, %%xmm2\n\t" "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
#define QC__AVX2_ASM_ZERO3 QC__AVX2_ASM_ZERO2 "vpxor %%xmm4, %%xmm4, %%xmm4\n\t" "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
#define QC__AVX2_ASM_ZERO4 QC__AVX2_ASM_ZERO3 "vpxor %%xmm6, %%xmm6, %%xmm6\n\t" "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
#define QC__AVX2_ASM_ZERO5 QC__AVX2_ASM_ZERO4 "vpxor %%xmm8, %%xmm8, %%xmm8\n\t" "vpxor %%xmm9, %%xmm9, %%xmm9\n\t"
#define QC__AVX2_ASM_ZERO6 QC__AVX2_ASM_ZERO5 "vpxor %%xmm10, %%xmm10, %%xmm10\n\t" "vpxor %%xmm11, %%xmm11, %%xmm11\n\t"
#define QC__AVX2_ASM_ROWS1 QC__AVX2_ASM_ROW(0, "ymm0", "ymm1")
#define QC__AVX2_ASM_ROWS2 QC__AVX2_ASM_ROWS1 QC__AVX2_ASM_ROW(8, "ymm2", "ymm3")
#define QC__AVX2_ASM_ROWS3 QC__AVX2_ASM_ROWS2 QC__AVX2_ASM_ROW(16, "ymm4", "ymm5")
#define QC__AVX2_ASM_ROWS4 QC__AVX2_ASM_ROWS3 QC__AVX2_ASM_ROW(24, "ymm6", "ymm7")
#define QC__AVX2_ASM_ROWS5 QC__AVX2_ASM_ROWS4 QC__AVX2_ASM_ROW(32, "ymm8", "ymm9")
#define QC__AVX2_ASM_ROWS6 QC__AVX2_ASM_ROWS5 QC__AVX2_ASM_ROW(40, "ymm10", "ymm11")
#define QC__AVX2_ASM_STORES1 QC__AVX2_ASM_STORE("ymm0", "ymm1")
#define QC__AVX2_ASM_STORES2 QC__AVX2_ASM_STORES1 QC__AVX2_ASM_STORE("ymm2", "ymm3")
#define QC__AVX2_ASM_STORES3 QC__AVX2_ASM_STORES2 QC__AVX2_ASM_STORE("ymm4", "ymm5")
#define QC__AVX2_ASM_STORES4 QC__AVX2_ASM_STORES3 QC__AVX2_ASM_STORE("ymm6", "ymm7")
#define QC__AVX2_ASM_STORES5 QC__AVX2_ASM_STORES4 QC__AVX2_ASM_STORE("ymm8", "ymm9")
#define QC__AVX2_ASM_STORES6 QC__AVX2_ASM_STORES5 QC__AVX2_ASM_STORE("ymm10", "ymm11")

/* The loop over k groups for the first n rows of a 6-row packed block (A advances 48
 * bytes per group whatever n is), with or without a software prefetch of B 4 KB ahead
 * (`PREFETCH` is the instruction or nothing). Blocks of fewer than 6 rows (the last one,
 * or all of a short input) run the same instructions on fewer registers: GCC's code for
 * the intrinsics above kept copying accumulators between registers and spilled one at
 * 4 rows, at about half this loop's speed. */
#define QC__AVX2_TILE_ASM(NROWS, PREFETCH)                                                              \
    __asm__ volatile(                                                                               \
        QC__AVX2_ASM_ZERO##NROWS                                                                    \
        "test %[n], %[n]\n\t"                                                                      \
        "jz 2f\n\t"                                                                                \
        /* the loop starts 16 bytes past a 64-byte boundary (two multi-byte NOPs, run once) */  \
        ".p2align 6\n\t"                                                                           \
        ".byte 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00\n\t"                           \
        ".byte 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00\n"                                          \
        "1:\n\t"                                                                                   \
        PREFETCH                                                                                  \
        "vpmovsxbw (%[b]), %%ymm12\n\t"                                                            \
        "vpmovsxbw 16(%[b]), %%ymm13\n\t"                                                          \
        QC__AVX2_ASM_ROWS##NROWS                                                                    \
        "add $48, %[a]\n\t"                                                                        \
        "add $32, %[b]\n\t"                                                                        \
        "dec %[n]\n\t"                                                                             \
        "jnz 1b\n"                                                                                  \
        "2:\n\t"                                                                                   \
        QC__AVX2_ASM_STORES##NROWS                                                                  \
        "vzeroupper\n\t"                                                                           \
        : [a] "+r"(a), [b] "+r"(b_panel), [n] "+r"(kgroups), [tile] "+r"(tile)                      \
        : [stride] "r"(stride_bytes)                                                                \
        : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",    \
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")

/* qc__avx2_tile<n>: B streamed from memory, fetched 4 KB ahead of the hardware prefetcher;
 * qc__avx2_tile<n>_l1: B resident in L1 (reused by several row blocks), where the prefetch
 * would only cost a load slot (measured 1-5 % at M = 128, K = 384-1536). One- and two-row
 * tiles always prefetch: they are bound by B's bytes whatever the reuse. */
#define QC__AVX2_TILE_STREAMED(NROWS)                                                               \
    static void qc__avx2_tile##NROWS(size_t kgroups, const int16_t *a, const int8_t *b_panel, int32_t *tile,  \
                                     size_t tile_stride) {                                             \
        size_t stride_bytes = tile_stride * sizeof(int32_t);                                          \
        QC__AVX2_TILE_ASM(NROWS, "prefetcht0 4096(%[b])\n\t");                                        \
    }
#define QC__AVX2_TILE_RESIDENT(NROWS)                                                               \
    static void qc__avx2_tile##NROWS##_l1(size_t kgroups, const int16_t *a, const int8_t *b_panel,     \
                                          int32_t *tile, size_t tile_stride) {                         \
        size_t stride_bytes = tile_stride * sizeof(int32_t);                                          \
        QC__AVX2_TILE_ASM(NROWS, "");                                                                 \
    }
QC__AVX2_TILE_STREAMED(1)
QC__AVX2_TILE_STREAMED(2)
QC__AVX2_TILE_STREAMED(3)
QC__AVX2_TILE_STREAMED(4)
QC__AVX2_TILE_STREAMED(5)
QC__AVX2_TILE_STREAMED(6)
QC__AVX2_TILE_RESIDENT(3)
QC__AVX2_TILE_RESIDENT(4)
QC__AVX2_TILE_RESIDENT(5)
QC__AVX2_TILE_RESIDENT(6)

/* One function per tile height; `rows` selects the specialisation for the last block. */
void qc_s8_gemm_ukernel_4x8c4__avx2(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile) {
    const int16_t *a = (const int16_t *)a_packed;
    switch (rows) {
    case 1: qc__avx2_tile(1, 16, kgroups, a, b_panel, tile, QC__GEMM_NR); break;
    case 2: qc__avx2_tile(2, 16, kgroups, a, b_panel, tile, QC__GEMM_NR); break;
    case 3: qc__avx2_tile(3, 16, kgroups, a, b_panel, tile, QC__GEMM_NR); break;
    default: qc__avx2_tile(4, 16, kgroups, a, b_panel, tile, QC__GEMM_NR); break;
    }
}

/* The 6x8 tile written to c with a row stride (only the first `rows` rows); b_resident: the
 * panel stays in L1 across row blocks (no software prefetch for 3 rows or more). */
void qc__s8_gemm_6x8c4_store__avx2(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                   int32_t *c, size_t c_stride, int b_resident) {
    typedef void (*tile_fn)(size_t, const int16_t *, const int8_t *, int32_t *, size_t);
    static const tile_fn streamed[6] = {qc__avx2_tile1, qc__avx2_tile2, qc__avx2_tile3,
                                        qc__avx2_tile4, qc__avx2_tile5, qc__avx2_tile6};
    static const tile_fn resident[6] = {qc__avx2_tile1, qc__avx2_tile2, qc__avx2_tile3_l1,
                                        qc__avx2_tile4_l1, qc__avx2_tile5_l1, qc__avx2_tile6_l1};
    const size_t n = rows < 1 ? 1 : rows > 6 ? 6 : rows;
    const tile_fn *fns = b_resident ? resident : streamed;
    fns[n - 1](kgroups, (const int16_t *)a_packed, b_panel, c, c_stride);
}

void qc_s8_gemm_ukernel_6x8c4__avx2(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile) {
    qc__s8_gemm_6x8c4_store__avx2(rows, kgroups, a_packed, b_panel, tile, QC__GEMM_NR, 0);
}

/* A packed for the 6x8 kernel, centred: 16 values of a row at a time are flipped to signed
 * bytes, widened, reduced by the row's za' (A - za, in [-255, 255]: no int16 overflow) and
 * stored as four groups of 4 (48 bytes apart in a 6-row block); vpmaddwd with ones adds
 * them into the row sum (int32 lanes, wrapping like the scalar uint32 sum). */
void qc__gemm_pack_a_s16__avx2(size_t m, size_t k, size_t kp, const uint8_t *a, size_t a_stride, uint8_t flip,
                               const int32_t *center, size_t mr, int16_t *out, int32_t *rowsum) {
    const size_t blocks = (m + mr - 1) / mr, step = mr * QC__GEMM_KG, k16 = k / 16 * 16;
    const __m128i flip8 = _mm_set1_epi8((char)flip);
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t blk = 0; blk < blocks; blk++) {
        for (size_t r = 0; r < mr; r++) {
            const size_t row = blk * mr + r;
            int16_t *dst = out + blk * mr * kp + r * QC__GEMM_KG;
            if (row >= m) {
                for (size_t g = 0; g < kp / QC__GEMM_KG; g++) {
                    memset(dst + g * step, 0, QC__GEMM_KG * sizeof(int16_t));
                }
                continue;
            }
            const uint8_t *src = a + row * a_stride;
            const int32_t zc = center[row];
            const __m256i zc16 = _mm256_set1_epi16((short)zc);
            __m256i sums = _mm256_setzero_si256();
            size_t kk = 0;
            for (; kk < k16; kk += 16) {
                const __m128i bytes = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + kk)), flip8);
                const __m256i v = _mm256_sub_epi16(_mm256_cvtepi8_epi16(bytes), zc16);
                sums = _mm256_add_epi32(sums, _mm256_madd_epi16(v, ones));
                const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
                int16_t *d = dst + (kk / QC__GEMM_KG) * step;
                _mm_storel_epi64((__m128i *)d, lo);
                _mm_storeh_pd((double *)(void *)(d + step), _mm_castsi128_pd(lo));
                _mm_storel_epi64((__m128i *)(d + 2 * step), hi);
                _mm_storeh_pd((double *)(void *)(d + 3 * step), _mm_castsi128_pd(hi));
            }
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
            uint32_t sum = (uint32_t)_mm_cvtsi128_si32(s4);
            for (; kk < kp; kk++) {
                int32_t v = kk < k ? (int32_t)(int8_t)(src[kk] ^ flip) - zc : 0;
                dst[(kk / QC__GEMM_KG) * step + kk % QC__GEMM_KG] = (int16_t)v;
                sum += (uint32_t)v;
            }
            rowsum[row] = (int32_t)sum;
        }
    }
}

void qc__gemm_finish_s32__avx2(const int32_t *raw, const int32_t *zb, const int32_t *colsum, uint32_t rs,
                               uint32_t za, int32_t *c, size_t cols) {
    const __m256i v = _mm256_sub_epi32(
        _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)raw),
                         _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)zb), _mm256_set1_epi32((int)rs))),
        _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)colsum), _mm256_set1_epi32((int)za)));
    if (cols == QC__GEMM_NR) {
        _mm256_storeu_si256((__m256i *)c, v);
    } else {
        int32_t tmp[QC__GEMM_NR];
        _mm256_storeu_si256((__m256i *)tmp, v);
        memcpy(c, tmp, cols * sizeof(int32_t));
    }
}

/* The requantization epilogue on 8 columns, bit-identical to qc__requant_float
 * (requant.h): float32 convert and multiply, the same clip to [-2^31, 2147483520],
 * cvtps2dq rounds half to even (the default MXCSR mode, as nearbyintf), and the clamp
 * to [lo, hi] is applied before adding the zero point (equivalent, and it cannot
 * overflow int32). Column multiplier strides other than 0 or 1 use the scalar formula. */
void qc__gemm_finish_requant__avx2(const int32_t *raw, const int32_t *zb, const int32_t *colsum, uint32_t rs,
                                   uint32_t za, const qc_gemm_requant_params *rq, size_t row, size_t col0,
                                   size_t cols, void *y) {
    __m256i acc = _mm256_sub_epi32(
        _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)raw),
                         _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)zb), _mm256_set1_epi32((int)rs))),
        _mm256_mullo_epi32(_mm256_loadu_si256((const __m256i *)colsum), _mm256_set1_epi32((int)za)));
    int32_t q[QC__GEMM_NR];
    const float *mult = rq->multiplier + row * rq->multiplier_row_stride + col0 * rq->multiplier_col_stride;
    if (rq->multiplier_col_stride > 1 || (cols < QC__GEMM_NR && (rq->bias != NULL || rq->multiplier_col_stride))) {
        int32_t v[QC__GEMM_NR];
        _mm256_storeu_si256((__m256i *)v, acc);
        for (size_t c = 0; c < cols; c++) {
            uint32_t a = (uint32_t)v[c] + (rq->bias != NULL ? (uint32_t)rq->bias[col0 + c] : 0u);
            q[c] = qc__requant_float((int32_t)a, mult[c * rq->multiplier_col_stride], rq->output_zero_point,
                                     rq->clamp_min, rq->clamp_max);
        }
    } else {
        if (rq->bias != NULL) {
            acc = _mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i *)(rq->bias + col0)));
        }
        const __m256 m = rq->multiplier_col_stride ? _mm256_loadu_ps(mult) : _mm256_set1_ps(mult[0]);
        __m256 scaled = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), m);
        scaled = _mm256_min_ps(scaled, _mm256_set1_ps(2147483520.0f));
        scaled = _mm256_max_ps(scaled, _mm256_set1_ps(-2147483648.0f));
        __m256i r = _mm256_cvtps_epi32(scaled);
        const int32_t zp = rq->output_zero_point;
        r = _mm256_max_epi32(r, _mm256_set1_epi32(rq->clamp_min - zp));
        r = _mm256_min_epi32(r, _mm256_set1_epi32(rq->clamp_max - zp));
        _mm256_storeu_si256((__m256i *)q, _mm256_add_epi32(r, _mm256_set1_epi32(zp)));
    }
    if (rq->output_type == QC_GEMM_U8) {
        for (size_t c = 0; c < cols; c++) {
            ((uint8_t *)y)[c] = (uint8_t)q[c];
        }
    } else {
        for (size_t c = 0; c < cols; c++) {
            ((int8_t *)y)[c] = (int8_t)q[c];
        }
    }
}

void qc__gemm_direct__avx2(size_t m, size_t n, size_t k, const int16_t *a16, size_t a16_stride, const uint8_t *b,
                           size_t b_stride, uint8_t b_flip, int32_t *acc, size_t acc_stride) {
    const size_t n16 = n / 16 * 16;
    const __m128i flip = _mm_set1_epi8((char)b_flip);
    for (size_t r = 0; r < m; r++) {
        memset(acc + r * acc_stride, 0, n16 * sizeof(int32_t));
    }
    /* Two rows of B at a time: interleaving their bytes gives (B[k][j], B[k+1][j]) pairs,
     * widened to int16 and multiplied with the broadcast pair (a[k], a[k+1]). */
    for (size_t kk = 0; kk < k; kk += 2) {
        const uint8_t *b0 = b + kk * b_stride;
        const uint8_t *b1 = kk + 1 < k ? b0 + b_stride : NULL;
        __m256i pair[4];
        for (size_t r = 0; r < m; r++) {
            const int16_t *ar = a16 + r * a16_stride;
            uint32_t lo = (uint16_t)ar[kk], hi = kk + 1 < k ? (uint16_t)ar[kk + 1] : 0u;
            pair[r] = _mm256_set1_epi32((int)(lo | (hi << 16)));
        }
        for (size_t j = 0; j < n16; j += 16) {
            const __m128i r0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(b0 + j)), flip);
            const __m128i r1 = b1 != NULL ? _mm_xor_si128(_mm_loadu_si128((const __m128i *)(b1 + j)), flip)
                                          : _mm_setzero_si128();
            const __m256i wlo = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(r0, r1));
            const __m256i whi = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(r0, r1));
            for (size_t r = 0; r < m; r++) {
                int32_t *dst = acc + r * acc_stride + j;
                _mm256_storeu_si256((__m256i *)dst, _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)dst),
                                                                     _mm256_madd_epi16(wlo, pair[r])));
                _mm256_storeu_si256((__m256i *)(dst + 8),
                                    _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(dst + 8)),
                                                     _mm256_madd_epi16(whi, pair[r])));
            }
        }
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

/* W[k, c .. c + 7] for element e = k * N + c and parameter index p = (k / bs) * N + c:
 * eight nibbles unpacked in registers (shifted by 4 * lane, masked, sign-extended for int4),
 * minus the zero points, converted and times the scales: float32(w - zp) * scale. */
static inline __attribute__((always_inline)) __m256 qc__w4_dequant8_avx2(const uint8_t *w, size_t w_bytes, size_t e,
                                                                         int w_signed, const uint8_t *w_zp,
                                                                         const float *w_scale, size_t p) {
    uint32_t bits;
    if ((e & 1) == 0) { /* callers cover whole groups: e + 8 <= K * N, in bounds */
        memcpy(&bits, w + (e >> 1), sizeof bits);
    } else {
        bits = qc__w4_load8(w, w_bytes, e);
    }
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    __m256i q = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)bits), shifts), _mm256_set1_epi32(0xF));
    if (w_signed) {
        const __m256i eight = _mm256_set1_epi32(8);
        q = _mm256_sub_epi32(_mm256_xor_si256(q, eight), eight);
    }
    if (w_zp != NULL) {
        __m128i z8 = _mm_loadl_epi64((const __m128i *)(const void *)(w_zp + p));
        q = _mm256_sub_epi32(q, w_signed ? _mm256_cvtepi8_epi32(z8) : _mm256_cvtepu8_epi32(z8));
    }
    return _mm256_mul_ps(_mm256_cvtepi32_ps(q), _mm256_loadu_ps(w_scale + p));
}

/* Rows [row0, row0 + ROWS) over columns [c0, c1) (whole groups of 8): for each k in
 * increasing order, y[r, :] = y[r, :] + a[r, k] * W[k, :], with W's eight values per
 * group unpacked and dequantized in registers, (w - zp) * scale. The weights stream
 * through memory in order and the strip of y stays in L1. Every field of args is copied
 * to a local first: the vector stores to y may alias anything, and reloading the fields
 * after each store cost a factor of three. */
static inline __attribute__((always_inline)) void qc__w4_rows_avx2(const qc__w4_args *args, const int rows,
                                                                   size_t row0, size_t c0, size_t c1) {
    const size_t n = args->n, k = args->k, bs = args->block_size, as = args->a_stride, ys = args->y_stride;
    const size_t w_bytes = args->w_bytes;
    const uint8_t *const w = args->w;
    const float *const w_scale = args->w_scale;
    const uint8_t *const w_zp = (const uint8_t *)args->w_zero_point;
    const int w_signed = args->w_signed;
    const float *const a = args->a + row0 * as;
    float *const y = args->y + row0 * ys;
    for (size_t col = c0; col < c1; col += 8) {
        for (int r = 0; r < rows; r++) {
            _mm256_storeu_ps(y + r * ys + col, _mm256_setzero_ps());
        }
    }
    /* k goes in steps of up to 8: each group's partial sums stay in registers for the
     * step (y is loaded and stored once per step), still adding in increasing k. */
    for (size_t k0 = 0; k0 < k; k0 += 8) {
        const size_t k1 = k0 + 8 < k ? k0 + 8 : k;
        size_t p_row[8]; /* (k / block_size) * n, divided once per step, not per group */
        for (size_t kk = k0; kk < k1; kk++) {
            p_row[kk - k0] = (kk / bs) * n;
        }
        for (size_t col = c0; col < c1; col += 8) {
            float *yc = y + col;
            __m256 acc0 = _mm256_loadu_ps(yc);
            __m256 acc1 = rows > 1 ? _mm256_loadu_ps(yc + ys) : acc0;
            __m256 acc2 = rows > 2 ? _mm256_loadu_ps(yc + 2 * ys) : acc0;
            __m256 acc3 = rows > 3 ? _mm256_loadu_ps(yc + 3 * ys) : acc0;
            for (size_t kk = k0; kk < k1; kk++) {
                const __m256 wv = qc__w4_dequant8_avx2(w, w_bytes, kk * n + col, w_signed, w_zp,
                                                       w_scale, p_row[kk - k0] + col);
                acc0 = _mm256_add_ps(acc0, _mm256_mul_ps(_mm256_broadcast_ss(a + kk), wv));
                if (rows > 1) {
                    acc1 = _mm256_add_ps(acc1, _mm256_mul_ps(_mm256_broadcast_ss(a + as + kk), wv));
                }
                if (rows > 2) {
                    acc2 = _mm256_add_ps(acc2, _mm256_mul_ps(_mm256_broadcast_ss(a + 2 * as + kk), wv));
                }
                if (rows > 3) {
                    acc3 = _mm256_add_ps(acc3, _mm256_mul_ps(_mm256_broadcast_ss(a + 3 * as + kk), wv));
                }
            }
            _mm256_storeu_ps(yc, acc0);
            if (rows > 1) {
                _mm256_storeu_ps(yc + ys, acc1);
            }
            if (rows > 2) {
                _mm256_storeu_ps(yc + 2 * ys, acc2);
            }
            if (rows > 3) {
                _mm256_storeu_ps(yc + 3 * ys, acc3);
            }
        }
    }
    if (args->bias != NULL) {
        const float *const bias = args->bias;
        for (size_t col = c0; col < c1; col += 8) {
            const __m256 b = _mm256_loadu_ps(bias + col);
            for (int r = 0; r < rows; r++) {
                _mm256_storeu_ps(y + r * ys + col, _mm256_add_ps(_mm256_loadu_ps(y + r * ys + col), b));
            }
        }
    }
}

void qc_f32_w4_gemm__avx2(const qc__w4_args *args, size_t m0, size_t m1, size_t n0, size_t n1) {
    const size_t vec_end = n0 + (n1 - n0) / 8 * 8;
    for (size_t row0 = m0; row0 < m1; row0 += 4) {
        const size_t rows = m1 - row0 < 4 ? m1 - row0 : 4;
        /* Column strips whose rows of y take at most 16 KB (they stay in L1). */
        const size_t strip = 4096 / rows;
        for (size_t c0 = n0; c0 < vec_end; c0 += strip) {
            size_t c1 = c0 + strip < vec_end ? c0 + strip : vec_end;
            switch (rows) {
            case 1: qc__w4_rows_avx2(args, 1, row0, c0, c1); break;
            case 2: qc__w4_rows_avx2(args, 2, row0, c0, c1); break;
            case 3: qc__w4_rows_avx2(args, 3, row0, c0, c1); break;
            default: qc__w4_rows_avx2(args, 4, row0, c0, c1); break;
            }
        }
    }
    if (vec_end < n1) {
        qc_f32_w4_gemm__scalar(args, m0, m1, vec_end, n1);
    }
}

void qc_f32_w4_dequant__avx2(const qc__w4_args *args, size_t k0, size_t k1, size_t n0, size_t n1) {
    const size_t n = args->n, bs = args->block_size, ys = args->y_stride, w_bytes = args->w_bytes;
    const uint8_t *const w = args->w;
    const float *const w_scale = args->w_scale;
    const uint8_t *const w_zp = (const uint8_t *)args->w_zero_point;
    const int w_signed = args->w_signed;
    const size_t vec_end = n0 + (n1 - n0) / 8 * 8;
    for (size_t kk = k0; kk < k1; kk++) {
        float *const y = args->y + (kk - k0) * ys;
        const size_t p_row = (kk / bs) * n;
        for (size_t col = n0; col < vec_end; col += 8) {
            _mm256_storeu_ps(y + col - n0, qc__w4_dequant8_avx2(w, w_bytes, kk * n + col, w_signed, w_zp, w_scale,
                                                                p_row + col));
        }
    }
    if (vec_end < n1) {
        qc__w4_args tail = *args;
        tail.y = args->y + (vec_end - n0);
        qc_f32_w4_dequant__scalar(&tail, k0, k1, vec_end, n1);
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif /* QC__BUILD_AVX2 */
