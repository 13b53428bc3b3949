/*
 * qc_linear_dynamic_u8_f32: every ISA path this CPU runs, with 1 and 2 threads, is compared
 * bit for bit with a plain C definition (per-row dynamic quantization written out here,
 * naive int32 product, float32 epilogue) on random shapes, all-zero rows, rows whose range
 * underflows, per-tensor and per-column scales, with and without bias; bad arguments
 * return the documented statuses.
 *
 * Prints the available ISAs, one "checksum linear_dynamic <hex>" line (FNV-1a of the
 * scalar outputs on fixed inputs, compared across architectures), and a summary line.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcore.h"
#include "test_support.h"

static int g_checks = 0;
static int g_failures = 0;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        g_checks++;                                                   \
        if (!(cond)) {                                                \
            g_failures++;                                             \
            if (g_failures <= 30) {                                   \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
                fprintf(stderr, __VA_ARGS__);                         \
                fprintf(stderr, "\n");                                \
            }                                                         \
        }                                                             \
    } while (0)

static float rng_sym(float r) { return ((float)(rng_next() >> 40) / 16777216.0f * 2.0f - 1.0f) * r; }

static uint64_t g_sum = FNV_INIT;
static void hash(const void *data, size_t n) { g_sum = fnv(g_sum, data, n); }

static int g_isas[QC_ISA_COUNT];
static int g_num_isas = 0;

/* The definition, written out: per-row dynamic quantization, naive product, epilogue. */
static void definition(size_t m, size_t k, size_t n, const float *x, const int8_t *w, const int32_t *zw,
                       const float *ws, size_t ws_count, const float *bias, float *y) {
    uint8_t *q = malloc(k > 0 ? k : 1);
    for (size_t i = 0; i < m; i++) {
        float lo = 0.0f, hi = 0.0f;
        for (size_t c = 0; c < k; c++) {
            float v = x[i * k + c];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        float s = (hi - lo) / 255.0f;
        if (s == 0.0f) {
            s = 1.0f;
        }
        float zf = nearbyintf(-lo / s);
        int32_t z = (int32_t)(zf < 0.0f ? 0.0f : zf > 255.0f ? 255.0f : zf);
        for (size_t c = 0; c < k; c++) {
            float v = nearbyintf(x[i * k + c] / s) + (float)z;
            q[c] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
        for (size_t j = 0; j < n; j++) {
            int32_t acc = 0;
            for (size_t c = 0; c < k; c++) {
                acc += ((int32_t)q[c] - z) * ((int32_t)w[c * n + j] - zw[j]);
            }
            float mult = s * ws[ws_count == 1 ? 0 : j];
            float v = (float)acc * mult;
            y[i * n + j] = bias != NULL ? v + bias[j] : v;
        }
    }
    free(q);
}

static void run_case(size_t m, size_t k, size_t n, int per_column, int with_bias, int checksum) {
    float *x = malloc((m * k + 1) * sizeof(float));
    int8_t *w = malloc(k * n + 1);
    int32_t *zw = malloc(n * sizeof(int32_t));
    float *ws = malloc(n * sizeof(float));
    float *bias = malloc(n * sizeof(float));
    float *want = malloc((m * n + 1) * sizeof(float));
    float *got = malloc((m * n + 1) * sizeof(float));
    for (size_t i = 0; i < m; i++) {
        float r = (i % 4 == 0) ? 0.01f : (i % 4 == 1) ? 1.0f : 30.0f;
        for (size_t c = 0; c < k; c++) {
            x[i * k + c] = rng_sym(r);
        }
    }
    if (m > 2) {
        memset(x + k, 0, k * sizeof(float));  /* all-zero row */
        for (size_t c = 0; c < k; c++) {
            x[2 * k + c] = 1e-44f;             /* range / 255 underflows */
        }
    }
    for (size_t i = 0; i < k * n; i++) {
        w[i] = (int8_t)rng_range(-128, 127);
    }
    int32_t zw_tensor = rng_range(-128, 127);
    for (size_t j = 0; j < n; j++) {
        zw[j] = per_column ? rng_range(-128, 127) : zw_tensor;
        ws[j] = 0.0001f + 0.01f * (float)(rng_next() >> 40) / 16777216.0f;
        bias[j] = rng_sym(2.0f);
    }
    size_t size = 0;
    CHECK(qc_gemm_packed_size(k, n, &size) == QC_OK, "packed size");
    void *packed = aligned_alloc(64, (size + 63) / 64 * 64);
    CHECK(qc_gemm_pack_b(k, n, QC_GEMM_S8, QC_GEMM_B_KN, w, n, zw, per_column ? n : 1, packed, size, NULL) == QC_OK,
          "pack");
    size_t ws_count = per_column ? n : 1;
    const float *b = with_bias ? bias : NULL;
    /* the underflowing row: s = 1, z = 0, q = 0 */
    definition(m, k, n, x, w, zw, ws, ws_count, b, want);
    for (int t = 0; t < g_num_isas; t++) {
        for (int threads = 1; threads <= 2; threads++) {
            qc_options o = {g_isas[t], threads};
            CHECK(qc_linear_dynamic_u8_f32(m, x, packed, ws, ws_count, b, got, &o) == QC_OK, "run");
            for (size_t i = 0; i < m * n; i++) {
                CHECK(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s/%d m%zu k%zu n%zu [%zu]: %a vs %a",
                      qc_isa_name(g_isas[t]), threads, m, k, n, i, got[i], want[i]);
            }
        }
    }
    /* the smoothed form: the same as multiplying x by the smoothing vector first */
    float *smooth = malloc((k + 1) * sizeof(float));
    float *xs = malloc((m * k + 1) * sizeof(float));
    float *want_s = malloc((m * n + 1) * sizeof(float));
    for (size_t c = 0; c < k; c++) {
        smooth[c] = c == 0 ? 0.0f : 0.05f + 4.0f * (float)(rng_next() >> 40) / 16777216.0f;
    }
    for (size_t i = 0; i < m; i++) {
        for (size_t c = 0; c < k; c++) {
            xs[i * k + c] = x[i * k + c] * smooth[c];
        }
    }
    definition(m, k, n, xs, w, zw, ws, ws_count, b, want_s);
    for (int t = 0; t < g_num_isas; t++) {
        qc_options o = {g_isas[t], 1 + t % 2};
        CHECK(qc_linear_dynamic_smoothed_u8_f32(m, x, smooth, packed, ws, ws_count, b, got, &o) == QC_OK, "smoothed");
        for (size_t i = 0; i < m * n; i++) {
            CHECK(memcmp(&got[i], &want_s[i], sizeof(float)) == 0, "smoothed %s m%zu k%zu n%zu [%zu]: %a vs %a",
                  qc_isa_name(g_isas[t]), m, k, n, i, got[i], want_s[i]);
        }
    }
    CHECK(qc_linear_dynamic_smoothed_u8_f32(m, x, NULL, packed, ws, ws_count, b, got, NULL) == QC_E_NULL_POINTER,
          "smoothed, null vector");
    if (m > 0 && k > 0) {
        float keep = smooth[k - 1];
        float big = x[k - 1];
        x[k - 1] = 3e38f;
        smooth[k - 1] = 10.0f; /* the product overflows to infinity */
        CHECK(qc_linear_dynamic_smoothed_u8_f32(m, x, smooth, packed, ws, ws_count, b, got, NULL) == QC_E_NONFINITE,
              "smoothed overflow");
        x[k - 1] = big;
        smooth[k - 1] = keep;
    }
    free(smooth);
    free(xs);
    free(want_s);
    {
    }
    if (checksum) {
        qc_options o = {QC_ISA_SCALAR, 1};
        CHECK(qc_linear_dynamic_u8_f32(m, x, packed, ws, ws_count, b, got, &o) == QC_OK, "checksum run");
        hash(got, m * n * sizeof(float));
    }
    /* errors */
    qc_options o = {QC_ISA_SCALAR, 1};
    if (m > 0 && k > 0) {
        float keep = x[k - 1];
        x[k - 1] = NAN;
        CHECK(qc_linear_dynamic_u8_f32(m, x, packed, ws, ws_count, b, got, &o) == QC_E_NONFINITE, "NaN");
        x[k - 1] = INFINITY;
        CHECK(qc_linear_dynamic_u8_f32(m, x, packed, ws, ws_count, b, got, &o) == QC_E_NONFINITE, "inf");
        x[k - 1] = keep;
    }
    if (n > 1) {
        CHECK(qc_linear_dynamic_u8_f32(m, x, packed, ws, 2 == n ? 3 : 2, b, got, &o) == QC_E_SHAPE, "scale count");
    }
    CHECK(qc_linear_dynamic_u8_f32(m, x, NULL, ws, ws_count, b, got, &o) == QC_E_NULL_POINTER, "null packed");
    free(packed);
    free(x);
    free(w);
    free(zw);
    free(ws);
    free(bias);
    free(want);
    free(got);
}

int main(void) {
    rng_state = 0x11EA5ull;
    uint32_t mask = qc_isa_available_mask();
    printf("isas:");
    for (int i = 0; i < QC_ISA_COUNT; i++) {
        if (mask & (1u << i)) {
            g_isas[g_num_isas++] = i;
            printf(" %s", qc_isa_name(i));
        }
    }
    printf("\n");
    static const size_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {8, 16, 8}, {13, 37, 29}, {32, 384, 40}, {7, 200, 1}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (int pc = 0; pc <= 1; pc++) {
            for (int wb = 0; wb <= 1; wb++) {
                run_case(shapes[s][0], shapes[s][1], shapes[s][2], pc, wb, 1);
            }
        }
    }
    for (int r = 0; r < 20; r++) {
        run_case((size_t)rng_range(0, 12), (size_t)rng_range(1, 70), (size_t)rng_range(1, 30), r % 2, r % 3 != 0, 0);
    }
    printf("checksum linear_dynamic %016" PRIx64 "\n", g_sum);
    printf("test_linear: %d checks, %d failures, isas:", g_checks, g_failures);
    for (int k = 0; k < g_num_isas; k++) {
        printf(" %s", qc_isa_name(g_isas[k]));
    }
    printf("\n");
    return g_failures == 0 ? 0 : 1;
}
