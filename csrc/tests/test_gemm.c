/*
 * Kernel tester for the int8 GEMM (qcore_gemm.h), standalone: main returns 0 when every
 * check passes, 1 otherwise, and prints one summary line plus `checksum <name> <hex>` lines
 * of scalar results on fixed seeded inputs (the ARM emulation job compares them with the
 * x86 ones).
 *
 * Every ISA the CPU runs is compared bit for bit with an int64 oracle written here (and so
 * with the scalar twin): M and N swept across the tile edges, K over primes and multiples
 * of the k group, every type pair, per-tensor / per-row / per-column zero points from
 * extreme to extreme, both B layouts, strided operands with guard values, all-extreme
 * inputs, K large enough to wrap int32, the requantization epilogue, int4 weights, two
 * threads, and bad arguments.
 *
 * Build: gcc -O2 -Icsrc/include -Icsrc/src csrc/src/\*.c csrc/tests/test_gemm.c -lm -pthread
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcore.h"
#include "requant.h"

#include "test_support.h"

static int failures = 0;
static long checks = 0;

#define EXPECT(cond, ...)                                   \
    do {                                                    \
        checks++;                                           \
        if (!(cond)) {                                      \
            if (failures < 20) {                            \
                printf("FAIL %s:%d: ", __FILE__, __LINE__); \
                printf(__VA_ARGS__);                        \
                printf("\n");                               \
            }                                               \
            failures++;                                     \
        }                                                   \
    } while (0)


/* ------------------------------------------------------------------------ the oracle */

static int32_t type_lo(int t) { return t == QC_GEMM_U8 ? 0 : -128; }
static int32_t type_hi(int t) { return t == QC_GEMM_U8 ? 255 : 127; }
static int32_t load8(int t, const uint8_t *p) { return t == QC_GEMM_U8 ? (int32_t)*p : (int32_t)(int8_t)*p; }

typedef struct gemm_case {
    size_t m, n, k;
    int a_type, b_type, b_layout;
    size_t a_stride, b_stride, c_stride;
    uint8_t *a, *b;
    int32_t *a_zp, *b_zp;
    size_t a_zp_count, b_zp_count;
} gemm_case;

static void oracle(const gemm_case *g, int32_t *c) {
    for (size_t i = 0; i < g->m; i++) {
        int64_t za = g->a_zp_count ? g->a_zp[g->a_zp_count == 1 ? 0 : i] : 0;
        for (size_t j = 0; j < g->n; j++) {
            int64_t zb = g->b_zp_count ? g->b_zp[g->b_zp_count == 1 ? 0 : j] : 0;
            int64_t sum = 0;
            for (size_t kk = 0; kk < g->k; kk++) {
                int64_t av = load8(g->a_type, g->a + i * g->a_stride + kk);
                const uint8_t *bp = g->b_layout == QC_GEMM_B_KN ? g->b + kk * g->b_stride + j : g->b + j * g->b_stride + kk;
                sum += (av - za) * (load8(g->b_type, bp) - zb);
            }
            c[i * g->c_stride + j] = (int32_t)(uint32_t)(uint64_t)sum;
        }
    }
}

/* Fills a case's operands: mode 0 random, 1 all minimum, 2 all maximum. */
static void fill_case(gemm_case *g, int a_mode, int b_mode) {
    size_t a_size = g->m * g->a_stride + 1, b_rows = g->b_layout == QC_GEMM_B_KN ? g->k : g->n;
    size_t b_size = b_rows * g->b_stride + 1;
    g->a = (uint8_t *)malloc(a_size);
    g->b = (uint8_t *)malloc(b_size);
    for (size_t i = 0; i < a_size; i++) {
        int32_t v = a_mode == 0 ? rng_range(type_lo(g->a_type), type_hi(g->a_type))
                                : (a_mode == 1 ? type_lo(g->a_type) : type_hi(g->a_type));
        g->a[i] = (uint8_t)v;
    }
    for (size_t i = 0; i < b_size; i++) {
        int32_t v = b_mode == 0 ? rng_range(type_lo(g->b_type), type_hi(g->b_type))
                                : (b_mode == 1 ? type_lo(g->b_type) : type_hi(g->b_type));
        g->b[i] = (uint8_t)v;
    }
}

static void free_case(gemm_case *g) {
    free(g->a);
    free(g->b);
    free(g->a_zp);
    free(g->b_zp);
    memset(g, 0, sizeof *g);
}

/* Zero points: mode 0 random per tensor, 1 random per row / column, 2 none, 3 minimum, 4 maximum. */
static void set_zero_points(gemm_case *g, int mode) {
    g->a_zp = (int32_t *)malloc((g->m + 1) * sizeof(int32_t));
    g->b_zp = (int32_t *)malloc((g->n + 1) * sizeof(int32_t));
    g->a_zp_count = mode == 2 ? 0 : (mode == 1 ? g->m : 1);
    g->b_zp_count = mode == 2 ? 0 : (mode == 1 ? g->n : 1);
    for (size_t i = 0; i <= g->m; i++) {
        g->a_zp[i] = mode == 3 ? type_lo(g->a_type)
                               : mode == 4 ? type_hi(g->a_type) : rng_range(type_lo(g->a_type), type_hi(g->a_type));
    }
    for (size_t j = 0; j <= g->n; j++) {
        g->b_zp[j] = mode == 3 ? type_lo(g->b_type)
                               : mode == 4 ? type_hi(g->b_type) : rng_range(type_lo(g->b_type), type_hi(g->b_type));
    }
}

static const int32_t GUARD = 0x5A5A5A5A;

/* Runs a case on one ISA (unpacked and packed), compares with the oracle, checks guards. */
static void run_case(const gemm_case *g, int isa, int threads, const int32_t *expect, const char *what) {
    qc_options opt = {isa, threads};
    size_t c_size = g->m * g->c_stride + 1;
    int32_t *c = (int32_t *)malloc(c_size * sizeof(int32_t));
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < c_size; i++) {
            c[i] = GUARD;
        }
        qc_status s;
        if (pass == 0) {
            s = qc_gemm_s32(g->m, g->n, g->k, g->a_type, g->a, g->a_stride, g->a_zp, g->a_zp_count, g->b_type,
                            g->b_layout, g->b, g->b_stride, g->b_zp, g->b_zp_count, c, g->c_stride, &opt);
        } else {
            size_t size = 0;
            qc_gemm_packed_size(g->k, g->n, &size);
            void *packed = aligned_alloc(64, (size + 63) / 64 * 64);
            s = qc_gemm_pack_b(g->k, g->n, g->b_type, g->b_layout, g->b, g->b_stride, g->b_zp, g->b_zp_count, packed,
                               size, &opt);
            if (s == QC_OK) {
                s = qc_gemm_packed_s32(g->m, g->a_type, g->a, g->a_stride, g->a_zp, g->a_zp_count, packed, c,
                                       g->c_stride, &opt);
            }
            free(packed);
        }
        EXPECT(s == QC_OK, "%s isa=%s status %d", what, qc_isa_name(isa), (int)s);
        int bad = 0;
        for (size_t i = 0; i < g->m && !bad; i++) {
            for (size_t j = 0; j < g->c_stride; j++) {
                int32_t got = c[i * g->c_stride + j];
                int32_t want = j < g->n ? expect[i * g->c_stride + j] : GUARD;
                if (got != want) {
                    EXPECT(0, "%s isa=%s %s threads=%d M=%zu N=%zu K=%zu types a%d b%d layout %d zp %zu/%zu: "
                              "C[%zu,%zu] = %d, expected %d",
                           what, qc_isa_name(isa), pass ? "packed" : "unpacked", threads, g->m, g->n, g->k,
                           g->a_type, g->b_type, g->b_layout, g->a_zp_count, g->b_zp_count, i, j, got, want);
                    bad = 1;
                    break;
                }
            }
        }
        EXPECT(c[c_size - 1] == GUARD, "%s: wrote past the last row", what);
    }
    free(c);
}

static uint32_t isa_mask;

static void run_all_isas(const gemm_case *g, const char *what, uint64_t *checksum) {
    int32_t *expect = (int32_t *)malloc((g->m * g->c_stride + 1) * sizeof(int32_t));
    for (size_t i = 0; i < g->m * g->c_stride + 1; i++) {
        expect[i] = GUARD;
    }
    oracle(g, expect);
    for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
        if (isa_mask & (1u << isa)) {
            run_case(g, isa, 1, expect, what);
        }
    }
    if (checksum != NULL) {
        /* The scalar path equals the oracle (checked above), so these are its results. */
        for (size_t i = 0; i < g->m; i++) {
            *checksum = fnv(*checksum, expect + i * g->c_stride, g->n * sizeof(int32_t));
        }
    }
    free(expect);
}

/* ---------------------------------------------------------------------------- tests */

static void test_sweep(uint64_t *checksum) {
    static const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13};
    static const size_t ns[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 25};
    static const size_t ks[] = {1, 2, 3, 4, 5, 7, 8, 12, 13, 16, 31, 32, 61};
    rng_seed(1);
    int variant = 0;
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                gemm_case g = {0};
                g.m = ms[mi];
                g.n = ns[ni];
                g.k = ks[ki];
                g.a_type = variant & 1 ? QC_GEMM_S8 : QC_GEMM_U8;
                g.b_type = variant & 2 ? QC_GEMM_U8 : QC_GEMM_S8;
                g.b_layout = (variant / 4) & 1 ? QC_GEMM_B_NK : QC_GEMM_B_KN;
                int strided = (variant / 8) % 3 == 2;
                g.a_stride = g.k + (strided ? 3 : 0);
                g.b_stride = (g.b_layout == QC_GEMM_B_KN ? g.n : g.k) + (strided ? 5 : 0);
                g.c_stride = g.n + (strided ? 2 : 0);
                fill_case(&g, 0, 0);
                set_zero_points(&g, variant % 5);
                run_all_isas(&g, "sweep", checksum);
                free_case(&g);
                variant++;
            }
        }
    }
}

static void test_extremes(void) {
    /* all-extreme inputs x every type pair x zero points at both ends, K across tiles */
    static const size_t ks[] = {1, 4, 64, 1023};
    for (int at = 0; at < 2; at++) {
        for (int bt = 0; bt < 2; bt++) {
            for (int am = 1; am <= 2; am++) {
                for (int bm = 1; bm <= 2; bm++) {
                    for (int zm = 2; zm <= 4; zm++) {
                        for (size_t ki = 0; ki < 2 * (sizeof ks / sizeof ks[0]); ki++) {
                            gemm_case g = {0};
                            /* 7 x 9 goes through packed B; 3 x 19 through the small-M
                             * path that reads B unpacked */
                            g.m = ki % 2 ? 3 : 7;
                            g.n = ki % 2 ? 19 : 9;
                            g.k = ks[ki / 2];
                            g.a_type = at ? QC_GEMM_S8 : QC_GEMM_U8;
                            g.b_type = bt ? QC_GEMM_S8 : QC_GEMM_U8;
                            g.b_layout = QC_GEMM_B_KN;
                            g.a_stride = g.k;
                            g.b_stride = g.n;
                            g.c_stride = g.n;
                            fill_case(&g, am, bm);
                            set_zero_points(&g, zm);
                            run_all_isas(&g, "extreme", NULL);
                            free_case(&g);
                        }
                    }
                }
            }
        }
    }
    /* The headline case: A = 255 (u8), B = 127 (s8), K = 64 gives 2,072,640 everywhere. */
    gemm_case g = {0};
    g.m = 3;
    g.n = 5;
    g.k = 64;
    g.a_type = QC_GEMM_U8;
    g.b_type = QC_GEMM_S8;
    g.a_stride = g.k;
    g.b_stride = g.n;
    g.c_stride = g.n;
    fill_case(&g, 2, 2);
    set_zero_points(&g, 2);
    int32_t c[15];
    for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
        if (isa_mask & (1u << isa)) {
            qc_options opt = {isa, 1};
            qc_status s = qc_gemm_s32(3, 5, 64, g.a_type, g.a, 64, NULL, 0, g.b_type, QC_GEMM_B_KN, g.b, 5, NULL, 0, c,
                                      5, &opt);
            EXPECT(s == QC_OK && c[0] == 2072640 && c[14] == 2072640, "255 x 127 x 64 on %s gives %d",
                   qc_isa_name(isa), c[0]);
        }
    }
    free_case(&g);
}

static void test_wraparound(void) {
    /* (255 - 0) * (0 - 255) summed over K = 40000 is -2.6e9: wraps int32 */
    gemm_case g = {0};
    g.m = 2;
    g.n = 17;
    g.k = 40000;
    g.a_type = QC_GEMM_U8;
    g.b_type = QC_GEMM_U8;
    g.a_stride = g.k;
    g.b_stride = g.n;
    g.c_stride = g.n;
    fill_case(&g, 2, 1);
    set_zero_points(&g, 2);
    g.b_zp_count = 1;
    g.b_zp[0] = 255;
    int32_t c[34];
    oracle(&g, c);
    EXPECT(c[0] == (int32_t)(uint32_t)(uint64_t)(int64_t)(-65025ll * 40000), "oracle wrap");
    run_all_isas(&g, "wraparound", NULL);
    free_case(&g);
    /* and random data at the same K, s8 x s8 */
    g.m = 3;
    g.n = 10;
    g.k = 40000;
    g.a_type = QC_GEMM_S8;
    g.b_type = QC_GEMM_S8;
    g.a_stride = g.k;
    g.b_stride = g.n;
    g.c_stride = g.n;
    rng_seed(7);
    fill_case(&g, 0, 0);
    set_zero_points(&g, 1);
    run_all_isas(&g, "wraparound-random", NULL);
    free_case(&g);
    /* enough rows and K for the driver to split rows into L2-sized chunks */
    g.m = 50;
    g.n = 10;
    g.k = 4001;
    g.a_type = QC_GEMM_U8;
    g.b_type = QC_GEMM_S8;
    g.a_stride = g.k;
    g.b_stride = g.n;
    g.c_stride = g.n;
    fill_case(&g, 0, 0);
    set_zero_points(&g, 0);
    run_all_isas(&g, "row-chunks", NULL);
    free_case(&g);
}

/* The path where the AVX2 kernel stores straight into C (A centred by its zero points,
 * every zb' = 0: s8 B with zero point 0, or u8 B with 128), the MiniLM configuration:
 * u8 A with per-row zero points, from extreme to extreme, full and partial 8-column
 * panels, 6-row blocks plus a remainder, strided C, and all-extreme operands. */
static void test_direct_store(void) {
    static const size_t ms[] = {6, 13, 128};
    static const size_t ns[] = {8, 20, 24};
    static const size_t ks[] = {1, 5, 384};
    rng_seed(13);
    int variant = 0;
    for (size_t mi = 0; mi < 3; mi++) {
        for (size_t ni = 0; ni < 3; ni++) {
            for (size_t ki = 0; ki < 3; ki++) {
                for (int fill = 0; fill < 3; fill++) {
                    gemm_case g = {0};
                    g.m = ms[mi];
                    g.n = ns[ni];
                    g.k = ks[ki];
                    g.a_type = variant % 4 == 3 ? QC_GEMM_S8 : QC_GEMM_U8;
                    g.b_type = variant % 3 == 2 ? QC_GEMM_U8 : QC_GEMM_S8;
                    g.b_layout = variant % 2 ? QC_GEMM_B_NK : QC_GEMM_B_KN;
                    g.a_stride = g.k + variant % 3;
                    g.b_stride = (g.b_layout == QC_GEMM_B_KN ? g.n : g.k) + variant % 2;
                    g.c_stride = g.n + (variant % 5 == 4 ? 3 : 0);
                    /* fill 0: random; 1: A at its maximum, B at its minimum; 2: the reverse */
                    fill_case(&g, fill == 0 ? 0 : (fill == 1 ? 2 : 1), fill == 0 ? 0 : (fill == 1 ? 1 : 2));
                    set_zero_points(&g, 1);
                    for (size_t i = 0; i < g.m; i++) {
                        int32_t pick = (int32_t)(i % 3);
                        g.a_zp[i] = pick == 0 ? type_lo(g.a_type) : (pick == 1 ? type_hi(g.a_type) : g.a_zp[i]);
                    }
                    int32_t zb = g.b_type == QC_GEMM_U8 ? 128 : 0;
                    for (size_t j = 0; j < g.n; j++) {
                        g.b_zp[j] = zb;
                    }
                    if (variant % 2) {
                        g.b_zp_count = 0; /* no B zero point: the same for s8; u8 then has zb' = -128 */
                    }
                    run_all_isas(&g, "direct-store", NULL);
                    free_case(&g);
                    variant++;
                }
            }
        }
    }
}

static void test_threads(void) {
    gemm_case g = {0};
    rng_seed(11);
    for (int layout = 0; layout < 2; layout++) {
        /* wide (split by columns) and tall (split by rows) */
        size_t dims[2][3] = {{24, 203, 450}, {600, 9, 400}}; /* >= 2^21 multiply-adds: threaded */
        g.m = dims[layout][0];
        g.n = dims[layout][1];
        g.k = dims[layout][2];
        g.a_type = QC_GEMM_U8;
        g.b_type = QC_GEMM_S8;
        g.b_layout = layout;
        g.a_stride = g.k + 1;
        g.b_stride = (layout == QC_GEMM_B_KN ? g.n : g.k) + 2;
        g.c_stride = g.n + 3;
        fill_case(&g, 0, 0);
        set_zero_points(&g, 1);
        int32_t *expect = (int32_t *)malloc((g.m * g.c_stride + 1) * sizeof(int32_t));
        for (size_t i = 0; i < g.m * g.c_stride + 1; i++) {
            expect[i] = GUARD;
        }
        oracle(&g, expect);
        for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
            if (isa_mask & (1u << isa)) {
                run_case(&g, isa, layout == 0 ? 2 : 3, expect, "threads");
            }
        }
        free(expect);
        free_case(&g);
    }
}

/* Requantization epilogue against the oracle plus qc__requant_float. */
static void test_requant(uint64_t *checksum) {
    rng_seed(3);
    static const size_t shapes[][3] = {{1, 1, 1}, {5, 9, 13}, {7, 17, 64}, {13, 8, 31}, {2, 33, 100}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (int variant = 0; variant < 8; variant++) {
            gemm_case g = {0};
            g.m = shapes[si][0];
            g.n = shapes[si][1];
            g.k = shapes[si][2];
            g.a_type = variant & 1 ? QC_GEMM_S8 : QC_GEMM_U8;
            g.b_type = variant & 2 ? QC_GEMM_U8 : QC_GEMM_S8;
            g.a_stride = g.k;
            g.b_stride = g.n;
            g.c_stride = g.n;
            fill_case(&g, 0, 0);
            set_zero_points(&g, variant % 3);
            int out_type = variant & 4 ? QC_GEMM_S8 : QC_GEMM_U8;
            int mult_mode = (int)((variant + si) % 4); /* tensor, column, row, element */
            float *mult = (float *)malloc(g.m * g.n * sizeof(float));
            for (size_t i = 0; i < g.m * g.n; i++) {
                mult[i] = (float)(rng_next() % 100000 + 1) * 1e-8f * (float)(1 + rng_next() % 50);
            }
            int32_t *bias = (int32_t *)malloc(g.n * sizeof(int32_t));
            for (size_t j = 0; j < g.n; j++) {
                bias[j] = rng_range(-100000, 100000);
            }
            qc_gemm_requant_params rq;
            memset(&rq, 0, sizeof rq);
            rq.bias = (variant & 1) ? bias : NULL;
            rq.multiplier = mult;
            rq.multiplier_row_stride = (mult_mode == 2) ? 1 : (mult_mode == 3 ? g.n : 0);
            rq.multiplier_col_stride = (mult_mode == 1 || mult_mode == 3) ? 1 : 0;
            rq.output_type = out_type;
            rq.output_zero_point = rng_range(type_lo(out_type), type_hi(out_type));
            rq.clamp_min = type_lo(out_type);
            rq.clamp_max = type_hi(out_type);
            if (variant == 5) { /* ReLU-like clamp */
                rq.clamp_min = rq.output_zero_point;
            }
            int32_t *acc = (int32_t *)malloc(g.m * g.n * sizeof(int32_t));
            oracle(&g, acc);
            uint8_t *expect = (uint8_t *)malloc(g.m * g.n);
            for (size_t i = 0; i < g.m; i++) {
                for (size_t j = 0; j < g.n; j++) {
                    int32_t v = (int32_t)((uint32_t)acc[i * g.n + j] + (uint32_t)(rq.bias ? bias[j] : 0));
                    float mm = mult[i * rq.multiplier_row_stride + j * rq.multiplier_col_stride];
                    expect[i * g.n + j] = (uint8_t)qc__requant_float(v, mm, rq.output_zero_point, rq.clamp_min,
                                                                     rq.clamp_max);
                }
            }
            if (checksum != NULL) {
                *checksum = fnv(*checksum, expect, g.m * g.n);
            }
            uint8_t *y = (uint8_t *)malloc(g.m * (g.n + 1));
            for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
                if (!(isa_mask & (1u << isa))) {
                    continue;
                }
                qc_options opt = {isa, 1};
                memset(y, 0xEE, g.m * (g.n + 1));
                qc_status s = qc_gemm_requant(g.m, g.n, g.k, g.a_type, g.a, g.a_stride, g.a_zp, g.a_zp_count, g.b_type,
                                              QC_GEMM_B_KN, g.b, g.b_stride, g.b_zp, g.b_zp_count, &rq, y, g.n + 1,
                                              &opt);
                EXPECT(s == QC_OK, "requant status %d", (int)s);
                for (size_t i = 0; i < g.m; i++) {
                    EXPECT(memcmp(y + i * (g.n + 1), expect + i * g.n, g.n) == 0 && y[i * (g.n + 1) + g.n] == 0xEE,
                           "requant isa=%s M=%zu N=%zu K=%zu variant %d row %zu", qc_isa_name(isa), g.m, g.n, g.k,
                           variant, i);
                }
            }
            free(y);
            free(expect);
            free(acc);
            free(bias);
            free(mult);
            free_case(&g);
        }
    }
}

/* int4 weights: the sequential float32 sum written out here, every ISA bit for bit. */
static void test_int4(uint64_t *checksum) {
    static const size_t shapes[][4] = {{1, 8, 32, 32},  {3, 17, 70, 32}, {5, 9, 64, 64},
                                       {4, 16, 130, 128}, {6, 7, 5, 2},   {2, 33, 96, 32},
                                       {8, 40, 6600, 64} /* big enough to be threaded */};
    rng_seed(5);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (int variant = 0; variant < 4; variant++) {
            size_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2], bs = shapes[si][3];
            int sgn = variant & 1;
            int with_zp = variant & 2;
            size_t blocks = (k + bs - 1) / bs;
            size_t bytes = (k * n + 1) / 2;
            uint8_t *w = (uint8_t *)calloc(bytes, 1);
            int32_t *wv = (int32_t *)malloc(k * n * sizeof(int32_t));
            for (size_t e = 0; e < k * n; e++) {
                int32_t v = sgn ? rng_range(-8, 7) : rng_range(0, 15);
                wv[e] = v;
                w[e / 2] |= (uint8_t)((v & 0xF) << ((e & 1) * 4));
            }
            float *scale = (float *)malloc(blocks * n * sizeof(float));
            int8_t *zp = (int8_t *)malloc(blocks * n);
            for (size_t i = 0; i < blocks * n; i++) {
                scale[i] = (float)(rng_next() % 1000 + 1) * 1e-3f;
                zp[i] = (int8_t)(sgn ? rng_range(-8, 7) : rng_range(0, 15));
            }
            size_t a_stride = k + 1;
            float *a = (float *)malloc(m * a_stride * sizeof(float));
            for (size_t i = 0; i < m * a_stride; i++) {
                a[i] = (float)((int64_t)(rng_next() % 2001) - 1000) * 1e-3f;
            }
            float *bias = (float *)malloc(n * sizeof(float));
            for (size_t j = 0; j < n; j++) {
                bias[j] = (float)((int64_t)(rng_next() % 2001) - 1000) * 1e-2f;
            }
            const float *bias_used = variant == 1 ? bias : NULL;
            float *expect = (float *)malloc(m * n * sizeof(float));
            for (size_t i = 0; i < m; i++) {
                for (size_t j = 0; j < n; j++) {
                    float acc = 0.0f;
                    for (size_t kk = 0; kk < k; kk++) {
                        size_t p = (kk / bs) * n + j;
                        float wd = (float)(wv[kk * n + j] - (with_zp ? zp[p] : 0)) * scale[p];
                        acc = acc + a[i * a_stride + kk] * wd;
                    }
                    expect[i * n + j] = bias_used ? acc + bias_used[j] : acc;
                }
            }
            if (checksum != NULL) {
                *checksum = fnv(*checksum, expect, m * n * sizeof(float));
            }
            float *y = (float *)malloc(m * n * sizeof(float));
            for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
                if (!(isa_mask & (1u << isa))) {
                    continue;
                }
                for (int threads = 1; threads <= 2; threads++) {
                    qc_options opt = {isa, threads};
                    memset(y, 0, m * n * sizeof(float));
                    qc_status s = qc_gemm_f32_w4(m, n, k, a, a_stride, sgn ? QC_GEMM_S4 : QC_GEMM_U4, w, scale,
                                                 with_zp ? zp : NULL, bs, bias_used, y, n, &opt);
                    EXPECT(s == QC_OK, "int4 status %d", (int)s);
                    EXPECT(memcmp(y, expect, m * n * sizeof(float)) == 0,
                           "int4 isa=%s threads=%d M=%zu N=%zu K=%zu block %zu variant %d", qc_isa_name(isa), threads,
                           m, n, k, bs, variant);
                }
            }
            free(y);
            /* the dequantized weight, whole and in bands with odd row and column offsets */
            const size_t ranges[4][4] = {{0, k, 0, n}, {k / 3, k - k / 5, n / 3, n}, {1, k, 1, n - n / 4},
                                         {k - 1, k, 0, n}};
            float *deq = (float *)malloc(k * (n + 3) * sizeof(float));
            for (int t = 0; t < 4; t++) {
                const size_t k0 = ranges[t][0], k1 = ranges[t][1], n0 = ranges[t][2], n1 = ranges[t][3];
                const size_t cols = n1 - n0, ys = cols + (size_t)(t % 2) * 3; /* odd t: gaps between rows */
                for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
                    if (!(isa_mask & (1u << isa))) {
                        continue;
                    }
                    qc_options opt = {isa, 1};
                    memset(deq, 0xFF, k * (n + 3) * sizeof(float));
                    qc_status s = qc_dequantize_w4_f32(k, n, sgn ? QC_GEMM_S4 : QC_GEMM_U4, w, scale,
                                                       with_zp ? zp : NULL, bs, k0, k1, n0, n1, deq, ys, &opt);
                    EXPECT(s == QC_OK, "int4 dequantize status %d", (int)s);
                    int same = 1;
                    for (size_t r = k0; r < k1 && same; r++) {
                        for (size_t c = n0; c < ys + n0 && c < n0 + (n + 3); c++) {
                            uint32_t got;
                            memcpy(&got, &deq[(r - k0) * ys + (c - n0)], sizeof got);
                            if (c >= n1) { /* the gap after a row: untouched */
                                if (got != 0xFFFFFFFFu) {
                                    same = 0;
                                    break;
                                }
                                continue;
                            }
                            size_t p = (r / bs) * n + c;
                            float wd = (float)(wv[r * n + c] - (with_zp ? zp[p] : 0)) * scale[p];
                            if (memcmp(&got, &wd, sizeof wd) != 0) {
                                same = 0;
                                break;
                            }
                        }
                    }
                    /* past the band's last row: untouched */
                    for (size_t e = (k1 - k0) * ys; e < k * (n + 3) && same; e++) {
                        uint32_t got;
                        memcpy(&got, &deq[e], sizeof got);
                        same = got == 0xFFFFFFFFu;
                    }
                    EXPECT(same, "int4 dequantize isa=%s K=%zu N=%zu block %zu rows [%zu, %zu) cols [%zu, %zu)",
                           qc_isa_name(isa), k, n, bs, k0, k1, n0, n1);
                    if (checksum != NULL && isa == QC_ISA_SCALAR && k1 > k0 && cols > 0) {
                        for (size_t r = k0; r < k1; r++) {
                            *checksum = fnv(*checksum, deq + (r - k0) * ys, cols * sizeof(float));
                        }
                    }
                }
            }
            free(deq);
            free(expect);
            free(bias);
            free(a);
            free(zp);
            free(scale);
            free(wv);
            free(w);
        }
    }
}

static void test_bad_arguments(void) {
    uint8_t a[16] = {0}, b[16] = {0};
    int32_t c[16];
    int32_t zp_bad = 300, zp_ok = 3;
    qc_options opt = {QC_ISA_SCALAR, 1};
    EXPECT(qc_gemm_s32(2, 2, 2, 7, a, 2, NULL, 0, QC_GEMM_S8, 0, b, 2, NULL, 0, c, 2, &opt) == QC_E_DTYPE, "a type");
    EXPECT(qc_gemm_s32(2, 2, 2, QC_GEMM_U8, a, 2, NULL, 0, QC_GEMM_S4, 0, b, 2, NULL, 0, c, 2, &opt) == QC_E_DTYPE,
           "b type");
    EXPECT(qc_gemm_s32(2, 2, 2, QC_GEMM_U8, a, 1, NULL, 0, QC_GEMM_S8, 0, b, 2, NULL, 0, c, 2, &opt) == QC_E_SHAPE,
           "a stride");
    EXPECT(qc_gemm_s32(2, 2, 2, QC_GEMM_U8, a, 2, NULL, 0, QC_GEMM_S8, 0, b, 2, NULL, 0, c, 1, &opt) == QC_E_SHAPE,
           "c stride");
    EXPECT(qc_gemm_s32(2, 2, 2, QC_GEMM_U8, NULL, 2, NULL, 0, QC_GEMM_S8, 0, b, 2, NULL, 0, c, 2, &opt) ==
               QC_E_NULL_POINTER,
           "null a");
    EXPECT(qc_gemm_s32(2, 2, 2, QC_GEMM_U8, a, 2, &zp_bad, 1, QC_GEMM_S8, 0, b, 2, NULL, 0, c, 2, &opt) ==
               QC_E_ZERO_POINT,
           "a zero point");
    EXPECT(qc_gemm_s32(2, 2, 2, QC_GEMM_U8, a, 2, &zp_ok, 1, QC_GEMM_S8, 0, b, 2, &zp_ok, 3, c, 2, &opt) == QC_E_SHAPE,
           "zero point count");
    EXPECT(qc_gemm_s32(2, 2, 2, QC_GEMM_U8, a, 2, NULL, 0, QC_GEMM_S8, 5, b, 2, NULL, 0, c, 2, &opt) ==
               QC_E_INVALID_ARGUMENT,
           "layout");
    qc_options bad_isa = {99, 1};
    EXPECT(qc_gemm_s32(2, 2, 2, QC_GEMM_U8, a, 2, NULL, 0, QC_GEMM_S8, 0, b, 2, NULL, 0, c, 2, &bad_isa) ==
               QC_E_UNSUPPORTED_ISA,
           "isa");
    EXPECT(qc_gemm_s32(0, 0, 0, QC_GEMM_U8, NULL, 0, NULL, 0, QC_GEMM_S8, 0, NULL, 0, NULL, 0, NULL, 0, &opt) == QC_OK,
           "empty");
    /* K = 0 gives zeros */
    for (int i = 0; i < 4; i++) {
        c[i] = 7;
    }
    EXPECT(qc_gemm_s32(2, 2, 0, QC_GEMM_U8, NULL, 0, &zp_ok, 1, QC_GEMM_S8, 0, NULL, 2, &zp_ok, 1, c, 2, &opt) ==
                   QC_OK &&
               c[0] == 0 && c[3] == 0,
           "K = 0");
    /* packed buffers */
    _Alignas(64) uint64_t storage[64];
    size_t size = 0;
    EXPECT(qc_gemm_packed_size(4, 4, &size) == QC_OK && size <= sizeof storage, "packed size %zu", size);
    EXPECT(qc_gemm_pack_b(4, 4, QC_GEMM_S8, 0, b, 4, NULL, 0, storage, size - 1, &opt) == QC_E_SHAPE, "small buffer");
    EXPECT(qc_gemm_pack_b(4, 4, QC_GEMM_S8, 0, b, 4, NULL, 0, (uint8_t *)storage + 4, size, &opt) ==
               QC_E_INVALID_ARGUMENT,
           "misaligned buffer");
    memset(storage, 0, sizeof storage);
    EXPECT(qc_gemm_packed_s32(1, QC_GEMM_U8, a, 4, NULL, 0, storage, c, 4, &opt) == QC_E_INVALID_ARGUMENT,
           "not a packed buffer");
    size_t kk = 0, nn = 0;
    EXPECT(qc_gemm_pack_b(4, 3, QC_GEMM_S8, 0, b, 3, NULL, 0, storage, size, &opt) == QC_OK &&
               qc_gemm_packed_dims(storage, &kk, &nn) == QC_OK && kk == 4 && nn == 3,
           "packed dims");
    /* requant parameters */
    float mult = 0.5f, nan_mult = NAN;
    qc_gemm_requant_params rq = {NULL, &mult, 0, 0, 0, QC_GEMM_S8, -128, 127};
    int8_t y[16];
    EXPECT(qc_gemm_packed_requant(1, QC_GEMM_U8, a, 4, NULL, 0, storage, &rq, y, 3, &opt) == QC_OK, "requant ok");
    rq.multiplier = &nan_mult;
    EXPECT(qc_gemm_packed_requant(1, QC_GEMM_U8, a, 4, NULL, 0, storage, &rq, y, 3, &opt) == QC_E_SCALE,
           "requant NaN multiplier");
    rq.multiplier = &mult;
    rq.clamp_min = 5;
    rq.clamp_max = 4;
    EXPECT(qc_gemm_packed_requant(1, QC_GEMM_U8, a, 4, NULL, 0, storage, &rq, y, 3, &opt) == QC_E_INVALID_ARGUMENT,
           "requant clamp");
    rq.clamp_min = -128;
    rq.clamp_max = 127;
    rq.output_zero_point = 200;
    EXPECT(qc_gemm_packed_requant(1, QC_GEMM_U8, a, 4, NULL, 0, storage, &rq, y, 3, &opt) == QC_E_ZERO_POINT,
           "requant zero point");
    /* int4 parameters */
    float scale_bad = -1.0f, scale_ok = 1.0f, out[4];
    float af[4] = {1, 2, 3, 4};
    uint8_t w4[2] = {0x21, 0x43};
    EXPECT(qc_gemm_f32_w4(1, 1, 4, af, 4, QC_GEMM_S4, w4, &scale_bad, NULL, 4, NULL, out, 1, &opt) == QC_E_SCALE,
           "int4 scale");
    EXPECT(qc_gemm_f32_w4(1, 1, 4, af, 4, QC_GEMM_S8, w4, &scale_ok, NULL, 4, NULL, out, 1, &opt) == QC_E_DTYPE,
           "int4 type");
    EXPECT(qc_gemm_f32_w4(1, 1, 4, af, 4, QC_GEMM_S4, w4, &scale_ok, NULL, 0, NULL, out, 1, &opt) ==
               QC_E_INVALID_ARGUMENT,
           "int4 block size");
    int8_t zp4 = 9;
    EXPECT(qc_gemm_f32_w4(1, 1, 4, af, 4, QC_GEMM_S4, w4, &scale_ok, &zp4, 4, NULL, out, 1, &opt) == QC_E_ZERO_POINT,
           "int4 zero point");
    float deq[4];
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, w4, &scale_bad, NULL, 4, 0, 4, 0, 1, deq, 1, &opt) == QC_E_SCALE,
           "int4 dequantize bad scale");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S8, w4, &scale_ok, NULL, 4, 0, 4, 0, 1, deq, 1, &opt) == QC_E_DTYPE,
           "int4 dequantize type");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, w4, &scale_ok, NULL, 0, 0, 4, 0, 1, deq, 1, &opt) ==
               QC_E_INVALID_ARGUMENT,
           "int4 dequantize block 0");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, w4, &scale_ok, NULL, 4, 0, 5, 0, 1, deq, 1, &opt) == QC_E_SHAPE,
           "int4 dequantize rows past K");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, w4, &scale_ok, NULL, 4, 3, 2, 0, 1, deq, 1, &opt) == QC_E_SHAPE,
           "int4 dequantize decreasing rows");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, w4, &scale_ok, NULL, 4, 0, 4, 0, 2, deq, 2, &opt) == QC_E_SHAPE,
           "int4 dequantize columns past N");
    EXPECT(qc_dequantize_w4_f32(4, 2, QC_GEMM_S4, w4, &scale_ok, NULL, 4, 0, 1, 0, 2, deq, 1, &opt) == QC_E_SHAPE,
           "int4 dequantize y stride");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, w4, &scale_ok, &zp4, 4, 0, 4, 0, 1, deq, 1, &opt) ==
               QC_E_ZERO_POINT,
           "int4 dequantize zero point");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, NULL, &scale_ok, NULL, 4, 0, 4, 0, 1, deq, 1, &opt) ==
               QC_E_NULL_POINTER,
           "int4 dequantize null w");
    /* K = 8 in two blocks of 4, the second block's scale bad: checked only when the band
     * touches its rows */
    const float scales2[2] = {1.0f, -1.0f};
    uint8_t w8[4] = {0x21, 0x43, 0x65, 0x07};
    EXPECT(qc_dequantize_w4_f32(8, 1, QC_GEMM_S4, w8, scales2, NULL, 4, 0, 4, 0, 1, deq, 1, &opt) == QC_OK,
           "int4 dequantize: a bad block outside the band is not read");
    EXPECT(qc_dequantize_w4_f32(8, 1, QC_GEMM_S4, w8, scales2, NULL, 4, 3, 5, 0, 1, deq, 1, &opt) == QC_E_SCALE,
           "int4 dequantize: a bad block the band reaches");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, NULL, NULL, NULL, 4, 2, 2, 0, 1, NULL, 1, &opt) == QC_OK,
           "int4 dequantize empty range");
    EXPECT(qc_dequantize_w4_f32(4, 1, QC_GEMM_S4, w4, &scale_ok, NULL, 4, 0, 4, 0, 1, deq, 1, &opt) == QC_OK &&
               deq[0] == 1.0f * scale_ok && deq[3] == 4.0f * scale_ok,
           "int4 dequantize values");
    EXPECT(qc_gemm_f32_w4(1, 1, 4, af, 4, QC_GEMM_S4, w4, &scale_ok, NULL, 4, NULL, out, 1, &opt) == QC_OK &&
               out[0] == 1.0f * 1 + 2.0f * 2 + 3.0f * 3 + 4.0f * 4,
           "int4 tiny value %g", (double)out[0]);
}

int main(void) {
    isa_mask = qc_isa_available_mask();
    /* The checksums hash the expected values, which every ISA (scalar included) was just
     * checked to reproduce bit for bit. */
    uint64_t sum_s32 = FNV_INIT, sum_requant = FNV_INIT, sum_w4 = FNV_INIT;
    test_sweep(&sum_s32);
    test_extremes();
    test_wraparound();
    test_direct_store();
    test_threads();
    test_requant(&sum_requant);
    test_int4(&sum_w4);
    test_bad_arguments();
    printf("checksum gemm_s32 %016llx\n", (unsigned long long)sum_s32);
    printf("checksum gemm_requant %016llx\n", (unsigned long long)sum_requant);
    printf("checksum gemm_f32_w4 %016llx\n", (unsigned long long)sum_w4);
    printf("test_gemm: %s, %ld checks, %d failures, ISAs:", failures ? "FAILED" : "ok", checks, failures);
    for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
        if (isa_mask & (1u << isa)) {
            printf(" %s", qc_isa_name(isa));
        }
    }
    printf("\n");
    return failures ? 1 : 0;
}
