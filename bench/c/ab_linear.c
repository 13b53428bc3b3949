/*
 * Interleaved A/B of two builds of libqcore.so at the MiniLM linear shapes (M = 128;
 * K x N = 384 x 384, 384 x 1536, 1536 x 384), one thread: qc_linear_dynamic_u8_f32
 * (float32 rows in, per-row u8 quantization, int8 weights, float32 out) and
 * qc_linear_dynamic_smoothed_u8_f32 (the same on x times a smoothing vector, what the
 * MiniLM recipe runs) and qc_gemm_packed_s32 (u8 A with per-row zero points x packed s8 B),
 * each build called in turn for `seconds` per shape, best time each, and a check that both
 * builds return the same bits. Used for the before/after figures in bench/results/gemm.md:
 *
 *   git worktree add /tmp/qcore-before <commit>   # or git archive <commit> | tar -x
 *   make -C /tmp/qcore-before/csrc BUILD=/tmp/before lib
 *   make -C csrc BUILD=/tmp/after lib
 *   gcc -O2 -Icsrc/include bench/c/ab_linear.c -ldl -o /tmp/ab_linear
 *   /tmp/ab_linear /tmp/before/libqcore.so /tmp/after/libqcore.so 10
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qcore.h"

typedef qc_status (*linear_fn)(size_t, const float *, const void *, const float *, size_t, const float *, float *,
                               const qc_options *);
typedef qc_status (*smoothed_fn)(size_t, const float *, const float *, const void *, const float *, size_t,
                                 const float *, float *, const qc_options *);
typedef qc_status (*gemm_fn)(size_t, int, const void *, size_t, const int32_t *, size_t, const void *, int32_t *,
                             size_t, const qc_options *);
typedef qc_status (*pack_fn)(size_t, size_t, int, int, const void *, size_t, const int32_t *, size_t, void *, size_t,
                             const qc_options *);
typedef qc_status (*size_fn)(size_t, size_t, size_t *);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t state = 88172645463325252ull;
static uint32_t rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)state;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        printf("usage: %s before/libqcore.so after/libqcore.so [seconds per shape]\n", argv[0]);
        return 2;
    }
    void *lib[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    if (lib[0] == NULL || lib[1] == NULL) {
        printf("dlopen: %s\n", dlerror());
        return 1;
    }
    const double seconds = argc > 3 ? atof(argv[3]) : 5.0;
    const size_t shapes[3][3] = {{128, 384, 384}, {128, 384, 1536}, {128, 1536, 384}};
    const qc_options opt = {QC_ISA_AUTO, 1};
    for (int si = 0; si < 3; si++) {
        const size_t m = shapes[si][0], k = shapes[si][1], n = shapes[si][2];
        int8_t *w = malloc(n * k);
        float *x = malloc(sizeof(float) * m * k), *x_mul = malloc(sizeof(float) * k), *ws = malloc(sizeof(float) * n), *bias = malloc(sizeof(float) * n);
        uint8_t *q = malloc(m * k);
        int32_t *zp = malloc(sizeof(int32_t) * m);
        for (size_t i = 0; i < n * k; i++) {
            w[i] = (int8_t)((int)(rnd() % 255) - 127);
        }
        for (size_t i = 0; i < m * k; i++) {
            x[i] = (float)((int)(rnd() % 2001) - 1000) / 300.0f;
            q[i] = (uint8_t)rnd();
        }
        for (size_t i = 0; i < k; i++) {
            x_mul[i] = 0.25f + (float)(rnd() % 1000) * 2e-3f;
        }
        for (size_t i = 0; i < n; i++) {
            ws[i] = 0.001f + (float)(rnd() % 1000) * 1e-5f;
            bias[i] = (float)(rnd() % 100) / 50.0f;
        }
        for (size_t i = 0; i < m; i++) {
            zp[i] = (int32_t)(rnd() & 255);
        }
        void *packed[2];
        float *y[2], *ys[2];
        int32_t *c[2];
        linear_fn linear[2];
        smoothed_fn smoothed[2];
        gemm_fn gemm[2];
        for (int v = 0; v < 2; v++) {
            size_t size = 0;
            if (((size_fn)dlsym(lib[v], "qc_gemm_packed_size"))(k, n, &size) != QC_OK) {
                return 1;
            }
            packed[v] = aligned_alloc(64, (size + 63) / 64 * 64);
            if (((pack_fn)dlsym(lib[v], "qc_gemm_pack_b"))(k, n, QC_GEMM_S8, QC_GEMM_B_NK, w, k, NULL, 0, packed[v],
                                                          size, &opt) != QC_OK) {
                return 1;
            }
            linear[v] = (linear_fn)dlsym(lib[v], "qc_linear_dynamic_u8_f32");
            smoothed[v] = (smoothed_fn)dlsym(lib[v], "qc_linear_dynamic_smoothed_u8_f32");
            gemm[v] = (gemm_fn)dlsym(lib[v], "qc_gemm_packed_s32");
            y[v] = malloc(sizeof(float) * m * n);
            ys[v] = malloc(sizeof(float) * m * n);
            c[v] = malloc(sizeof(int32_t) * m * n);
        }
        double best_linear[2] = {1e9, 1e9}, best_smoothed[2] = {1e9, 1e9}, best_gemm[2] = {1e9, 1e9};
        const double end = now() + seconds;
        while (now() < end) {
            for (int v = 0; v < 2; v++) {
                double t = now();
                if (linear[v](m, x, packed[v], ws, n, bias, y[v], &opt) != QC_OK) {
                    return 1;
                }
                t = now() - t;
                best_linear[v] = t < best_linear[v] ? t : best_linear[v];
                t = now();
                if (smoothed[v](m, x, x_mul, packed[v], ws, n, bias, ys[v], &opt) != QC_OK) {
                    return 1;
                }
                t = now() - t;
                best_smoothed[v] = t < best_smoothed[v] ? t : best_smoothed[v];
                t = now();
                if (gemm[v](m, QC_GEMM_U8, q, k, zp, m, packed[v], c[v], n, &opt) != QC_OK) {
                    return 1;
                }
                t = now() - t;
                best_gemm[v] = t < best_gemm[v] ? t : best_gemm[v];
            }
        }
        const double ops = 2.0 * (double)m * (double)k * (double)n;
        printf("%zux%zux%zu  linear_dynamic GOP/s: A %.1f B %.1f (B/A %.3f)  smoothed GOP/s: A %.1f B %.1f "
               "(B/A %.3f)  gemm_packed_s32 GOP/s: A %.1f B %.1f (B/A %.3f)  identical: %s\n",
               m, k, n, ops / best_linear[0] / 1e9, ops / best_linear[1] / 1e9, best_linear[0] / best_linear[1],
               ops / best_smoothed[0] / 1e9, ops / best_smoothed[1] / 1e9, best_smoothed[0] / best_smoothed[1],
               ops / best_gemm[0] / 1e9, ops / best_gemm[1] / 1e9, best_gemm[0] / best_gemm[1],
               memcmp(y[0], y[1], sizeof(float) * m * n) == 0 && memcmp(ys[0], ys[1], sizeof(float) * m * n) == 0 &&
                       memcmp(c[0], c[1], sizeof(int32_t) * m * n) == 0
                   ? "yes" : "NO");
        for (int v = 0; v < 2; v++) {
            free(packed[v]);
            free(y[v]);
            free(ys[v]);
            free(c[v]);
        }
        free(w);
        free(x);
        free(x_mul);
        free(ws);
        free(bias);
        free(q);
        free(zp);
    }
    return 0;
}
