/*
 * Inner loops of candidate AVX2 int8 GEMM kernels, timed with all data in L1 (no packing,
 * no correction, no epilogue): what each instruction mix can do on this core. Evidence
 * for docs/KERNELS.md, "Why the exact kernel stays on vpmaddwd"; not part of the library.
 *
 *   gcc -O2 bench/c/gemm_loops.c -o /tmp/gemm_loops && /tmp/gemm_loops
 *
 * Each loop runs K = 384 (96 groups of 4 k) and reports the best of 60 rounds in GOP/s
 * (2 operations per multiply-add):
 *   exact-6x8      the library's loop: B widened with vpmovsxbw, A row broadcast with
 *                  vpbroadcastq, 12 vpmaddwd + 12 vpaddd per group (exact for any input);
 *   exact-A-mem    the same with A stored pre-broadcast (32 bytes per row and group) and
 *                  read as the vpmaddwd memory operand: no broadcast instruction;
 *   exact-B16-mem  B stored widened to int16 (64 bytes per group), read as the vpmaddwd
 *                  memory operand: no vpmovsxbw in the loop;
 *   exact-B16-reg  the same int16 B loaded into two registers per group (plain loads
 *                  instead of the two vpmovsxbw);
 *   7bit-6x16      vpmaddubsw (u8 A x s8 B -> int16 pairs) + vpmaddwd with ones + vpaddd:
 *                  exact only while every pair sum fits int16, e.g. A in [0, 127] and
 *                  B in [-127, 127] (onnxruntime's sequence, which saturates on
 *                  full-range u8 A);
 *   sign-4x16      exact for u8 A centred by 128 (c in [-128, 127]) and B in [-127, 127]:
 *                  |c| as the unsigned operand, B with c's sign applied by vpsignb, then
 *                  vpmaddubsw + vpmaddwd with ones + vpaddd (|c| * |b| <= 16256, pair sums
 *                  fit int16): one more vector operation per 32 multiply-adds than 7bit.
 * Only x86-64 with AVX2; the results are discarded (the loops' timing is the output).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#if defined(__x86_64__)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define ZERO12                                                                                   \
    "vpxor %%xmm0,%%xmm0,%%xmm0\n\tvpxor %%xmm1,%%xmm1,%%xmm1\n\tvpxor %%xmm2,%%xmm2,%%xmm2\n\t"   \
    "vpxor %%xmm3,%%xmm3,%%xmm3\n\tvpxor %%xmm4,%%xmm4,%%xmm4\n\tvpxor %%xmm5,%%xmm5,%%xmm5\n\t"   \
    "vpxor %%xmm6,%%xmm6,%%xmm6\n\tvpxor %%xmm7,%%xmm7,%%xmm7\n\tvpxor %%xmm8,%%xmm8,%%xmm8\n\t"   \
    "vpxor %%xmm9,%%xmm9,%%xmm9\n\tvpxor %%xmm10,%%xmm10,%%xmm10\n\tvpxor %%xmm11,%%xmm11,%%xmm11\n\t"
#define STORE6                                                                                   \
    "vmovdqu %%ymm0,(%[o])\n\tvmovdqu %%ymm2,32(%[o])\n\tvmovdqu %%ymm4,64(%[o])\n\t"            \
    "vmovdqu %%ymm6,96(%[o])\n\tvmovdqu %%ymm8,128(%[o])\n\tvmovdqu %%ymm10,160(%[o])\n\tvzeroupper\n\t"
#define CLOBBERS                                                                                 \
    "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",  \
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#define LOOP_END(a_step, b_step)                                                                 \
    "add $" #a_step ",%[a]\n\tadd $" #b_step ",%[b]\n\tdec %[n]\n\tjnz 1b\n\t"

#define ROW_EXACT(off, c0, c1)                                                                   \
    "vpbroadcastq " #off "(%[a]),%%ymm14\n\tvpmaddwd %%ymm12,%%ymm14,%%ymm15\n\t"                 \
    "vpaddd %%ymm15,%%" c0 ",%%" c0 "\n\tvpmaddwd %%ymm13,%%ymm14,%%ymm15\n\t"                    \
    "vpaddd %%ymm15,%%" c1 ",%%" c1 "\n\t"
static void __attribute__((noinline)) exact_6x8(size_t n, const void *a, const void *b, int32_t *o) {
    __asm__ volatile(ZERO12 ".p2align 6\n1:\n\tvpmovsxbw (%[b]),%%ymm12\n\tvpmovsxbw 16(%[b]),%%ymm13\n\t"
                     ROW_EXACT(0, "ymm0", "ymm1") ROW_EXACT(8, "ymm2", "ymm3") ROW_EXACT(16, "ymm4", "ymm5")
                     ROW_EXACT(24, "ymm6", "ymm7") ROW_EXACT(32, "ymm8", "ymm9") ROW_EXACT(40, "ymm10", "ymm11")
                     LOOP_END(48, 32) STORE6
                     : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n) : [o] "r"(o) : CLOBBERS);
}

#define ROW_AMEM(off, c0, c1)                                                                    \
    "vpmaddwd " #off "(%[a]),%%ymm12,%%ymm15\n\tvpaddd %%ymm15,%%" c0 ",%%" c0 "\n\t"             \
    "vpmaddwd " #off "(%[a]),%%ymm13,%%ymm14\n\tvpaddd %%ymm14,%%" c1 ",%%" c1 "\n\t"
static void __attribute__((noinline)) exact_a_mem(size_t n, const void *a, const void *b, int32_t *o) {
    __asm__ volatile(ZERO12 ".p2align 6\n1:\n\tvpmovsxbw (%[b]),%%ymm12\n\tvpmovsxbw 16(%[b]),%%ymm13\n\t"
                     ROW_AMEM(0, "ymm0", "ymm1") ROW_AMEM(32, "ymm2", "ymm3") ROW_AMEM(64, "ymm4", "ymm5")
                     ROW_AMEM(96, "ymm6", "ymm7") ROW_AMEM(128, "ymm8", "ymm9") ROW_AMEM(160, "ymm10", "ymm11")
                     LOOP_END(192, 32) STORE6
                     : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n) : [o] "r"(o) : CLOBBERS);
}

#define ROW_BMEM(off, c0, c1)                                                                    \
    "vpbroadcastq " #off "(%[a]),%%ymm14\n\tvpmaddwd (%[b]),%%ymm14,%%ymm15\n\t"                  \
    "vpaddd %%ymm15,%%" c0 ",%%" c0 "\n\tvpmaddwd 32(%[b]),%%ymm14,%%ymm13\n\t"                   \
    "vpaddd %%ymm13,%%" c1 ",%%" c1 "\n\t"
static void __attribute__((noinline)) exact_b16_mem(size_t n, const void *a, const void *b, int32_t *o) {
    __asm__ volatile(ZERO12 ".p2align 6\n1:\n\t"
                     ROW_BMEM(0, "ymm0", "ymm1") ROW_BMEM(8, "ymm2", "ymm3") ROW_BMEM(16, "ymm4", "ymm5")
                     ROW_BMEM(24, "ymm6", "ymm7") ROW_BMEM(32, "ymm8", "ymm9") ROW_BMEM(40, "ymm10", "ymm11")
                     LOOP_END(48, 64) STORE6
                     : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n) : [o] "r"(o) : CLOBBERS);
}

static void __attribute__((noinline)) exact_b16_reg(size_t n, const void *a, const void *b, int32_t *o) {
    __asm__ volatile(ZERO12 ".p2align 6\n1:\n\tvmovdqu (%[b]),%%ymm12\n\tvmovdqu 32(%[b]),%%ymm13\n\t"
                     ROW_EXACT(0, "ymm0", "ymm1") ROW_EXACT(8, "ymm2", "ymm3") ROW_EXACT(16, "ymm4", "ymm5")
                     ROW_EXACT(24, "ymm6", "ymm7") ROW_EXACT(32, "ymm8", "ymm9") ROW_EXACT(40, "ymm10", "ymm11")
                     LOOP_END(48, 64) STORE6
                     : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n) : [o] "r"(o) : CLOBBERS);
}

static const int16_t ONES[16] __attribute__((aligned(32))) = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
#define ROW_7BIT(off, c0, c1)                                                                    \
    "vpbroadcastd " #off "(%[a]),%%ymm14\n\t"                                                     \
    "vpmaddubsw %%ymm12,%%ymm14,%%ymm15\n\tvpmaddwd (%[one]),%%ymm15,%%ymm15\n\t"                 \
    "vpaddd %%ymm15,%%" c0 ",%%" c0 "\n\t"                                                       \
    "vpmaddubsw %%ymm13,%%ymm14,%%ymm15\n\tvpmaddwd (%[one]),%%ymm15,%%ymm15\n\t"                 \
    "vpaddd %%ymm15,%%" c1 ",%%" c1 "\n\t"
static void __attribute__((noinline)) sevenbit_6x16(size_t n, const void *a, const void *b, int32_t *o) {
    __asm__ volatile(ZERO12 ".p2align 6\n1:\n\tvmovdqu (%[b]),%%ymm12\n\tvmovdqu 32(%[b]),%%ymm13\n\t"
                     ROW_7BIT(0, "ymm0", "ymm1") ROW_7BIT(4, "ymm2", "ymm3") ROW_7BIT(8, "ymm4", "ymm5")
                     ROW_7BIT(12, "ymm6", "ymm7") ROW_7BIT(16, "ymm8", "ymm9") ROW_7BIT(20, "ymm10", "ymm11")
                     LOOP_END(24, 64) STORE6
                     : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n) : [o] "r"(o), [one] "r"(ONES) : CLOBBERS);
}


#define ROW_SIGN(off, c0, c1)                                                                    \
    "vpbroadcastd " #off "(%[a]),%%ymm10\n\tvpbroadcastd 4+" #off "(%[a]),%%ymm11\n\t"         \
    "vpsignb %%ymm11,%%ymm8,%%ymm12\n\tvpmaddubsw %%ymm12,%%ymm10,%%ymm13\n\t"                  \
    "vpmaddwd (%[one]),%%ymm13,%%ymm13\n\tvpaddd %%ymm13,%%" c0 ",%%" c0 "\n\t"                \
    "vpsignb %%ymm11,%%ymm9,%%ymm14\n\tvpmaddubsw %%ymm14,%%ymm10,%%ymm15\n\t"                  \
    "vpmaddwd (%[one]),%%ymm15,%%ymm15\n\tvpaddd %%ymm15,%%" c1 ",%%" c1 "\n\t"
static void __attribute__((noinline)) sign_4x16(size_t n, const void *a, const void *b, int32_t *o) {
    __asm__ volatile(ZERO12 ".p2align 6\n1:\n\tvmovdqu (%[b]),%%ymm8\n\tvmovdqu 32(%[b]),%%ymm9\n\t"
                     ROW_SIGN(0, "ymm0", "ymm1") ROW_SIGN(8, "ymm2", "ymm3") ROW_SIGN(16, "ymm4", "ymm5")
                     ROW_SIGN(24, "ymm6", "ymm7")
                     LOOP_END(32, 64) STORE6
                     : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n) : [o] "r"(o), [one] "r"(ONES) : CLOBBERS);
}

typedef void (*loop_fn)(size_t, const void *, const void *, int32_t *);

int main(void) {
    static int16_t a[6 * 384 * 4] __attribute__((aligned(64)));
    static int16_t b[16 * 384] __attribute__((aligned(64)));
    static int32_t out[64];
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        a[i] = (int16_t)((int)(i % 255) - 127) & 0x7F; /* small non-negative: valid for every loop */
    }
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        b[i] = (int16_t)((int)(i * 7 % 255) - 127);
    }
    const struct {
        const char *name;
        loop_fn fn;
        double macs_per_group;
    } loops[] = {{"exact-6x8", exact_6x8, 192}, {"exact-A-mem", exact_a_mem, 192},
                 {"exact-B16-mem", exact_b16_mem, 192}, {"exact-B16-reg", exact_b16_reg, 192},
                 {"7bit-6x16", sevenbit_6x16, 384}, {"sign-4x16", sign_4x16, 256}};
    const size_t groups = 96;
    const int reps = 2000;
    double best[6] = {0};
    for (int round = 0; round < 60; round++) {
        for (int l = 0; l < 6; l++) {
            double t = now();
            for (int r = 0; r < reps; r++) {
                loops[l].fn(groups, a, b, out);
            }
            t = now() - t;
            double gops = 2.0 * reps * groups * loops[l].macs_per_group / t / 1e9;
            best[l] = gops > best[l] ? gops : best[l];
        }
    }
    for (int l = 0; l < 6; l++) {
        printf("%-14s %6.1f GOP/s\n", loops[l].name, best[l]);
    }
    return 0;
}

#else
int main(void) {
    printf("x86-64 only\n");
    return 0;
}
#endif
