/*
 * qc_linear_dynamic_u8_f32: every ISA path this CPU runs, with 1 and 2 threads, is compared
 * bit for bit with a plain C definition (per-row dynamic quantization written out here,
 * naive int32 product, float32 epilogue) on random shapes, all-zero rows, rows whose range
 * underflows, per-tensor and per-column scales, with and without bias; bad arguments
 * return the documented statuses.
 *
 * The row kernels (src/qlinear_f32.h) are tested on their own as well: the scalar
 * quantize-into-packed-A twin against the public qc_dynamic_quantize_u8, and every AVX2
 * kernel against its scalar twin, bit for bit, over k = 1..70 and the MiniLM widths, block
 * heights 1, 4 and 6, and extreme rows (NaN, infinities, huge and subnormal values,
 * all-equal rows, zero points 0 and 255).
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
#include "qlinear_f32.h"
#include "test_check.h"
#include "test_support.h"

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
    float *xs = calloc(m * k + 1, sizeof(float));
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
    /* the post-ops: the same bits as the layer followed by qc_gelu_f32 / qc_layer_norm_f32 */
    float *resid = malloc((m * n + 1) * sizeof(float));
    float *gamma = malloc((n + 1) * sizeof(float));
    float *beta = malloc((n + 1) * sizeof(float));
    float *layer = malloc((m * n + 1) * sizeof(float));
    for (size_t i = 0; i < m * n; i++) {
        resid[i] = rng_sym(3.0f);
    }
    for (size_t j = 0; j < n; j++) {
        gamma[j] = rng_sym(2.0f);
        beta[j] = rng_sym(1.0f);
    }
    for (int t = 0; t < g_num_isas; t++) {
        for (int variant = 0; variant < 4; variant++) {
            qc_options o = {g_isas[t], 1 + variant % 2};
            const float *xm = variant % 2 ? smooth : NULL;
            CHECK((xm != NULL ? qc_linear_dynamic_smoothed_u8_f32(m, x, xm, packed, ws, ws_count, b, layer, &o)
                              : qc_linear_dynamic_u8_f32(m, x, packed, ws, ws_count, b, layer, &o)) == QC_OK,
                  "post: the layer alone");
            qc_linear_post post = {QC_LINEAR_POST_NONE, NULL, NULL, NULL, 0.0f};
            if (variant == 1) {
                post.op = QC_LINEAR_POST_GELU;
                CHECK(qc_gelu_f32(layer, m * n, want, &o) == QC_OK, "post: gelu");
            } else if (variant >= 2) {
                post.op = QC_LINEAR_POST_LAYER_NORM;
                post.residual = variant == 2 ? resid : NULL;
                post.gamma = gamma;
                post.beta = variant == 2 ? beta : NULL;
                post.epsilon = variant == 2 ? 1e-5f : 0.0f;
                CHECK(qc_layer_norm_f32(layer, post.residual, m, n, gamma, post.beta, post.epsilon, want, &o) == QC_OK,
                      "post: layer norm");
            } else {
                memcpy(want, layer, m * n * sizeof(float));
            }
            CHECK(qc_linear_dynamic_post_f32(m, x, xm, packed, ws, ws_count, b, &post, got, &o) == QC_OK, "post run");
            for (size_t i = 0; i < m * n; i++) {
                CHECK(memcmp(&got[i], &want[i], sizeof(float)) == 0 || (isnan(got[i]) && isnan(want[i])),
                      "post %d %s m%zu k%zu n%zu [%zu]: %a vs %a", variant, qc_isa_name(g_isas[t]), m, k, n, i,
                      got[i], want[i]);
            }
            if (checksum && g_isas[t] == QC_ISA_SCALAR && variant >= 1) {
                for (size_t i = 0; i < m * n; i++) { /* a NaN's bits differ between x86 and ARM */
                    uint32_t bits;
                    memcpy(&bits, &got[i], sizeof bits);
                    bits = isnan(got[i]) ? 0x7FC00000u : bits;
                    hash(&bits, sizeof bits);
                }
            }
        }
    }
    {
        qc_linear_post post = {7, NULL, gamma, NULL, 0.0f};
        CHECK(qc_linear_dynamic_post_f32(m, x, NULL, packed, ws, ws_count, b, &post, got, NULL) ==
                  QC_E_INVALID_ARGUMENT, "post: unknown op");
        post.op = QC_LINEAR_POST_LAYER_NORM;
        post.epsilon = -1.0f;
        CHECK(qc_linear_dynamic_post_f32(m, x, NULL, packed, ws, ws_count, b, &post, got, NULL) ==
                  QC_E_INVALID_ARGUMENT, "post: negative epsilon");
        post.epsilon = INFINITY;
        CHECK(qc_linear_dynamic_post_f32(m, x, NULL, packed, ws, ws_count, b, &post, got, NULL) ==
                  QC_E_INVALID_ARGUMENT, "post: infinite epsilon");
        post.epsilon = NAN;
        CHECK(qc_linear_dynamic_post_f32(m, x, NULL, packed, ws, ws_count, b, &post, got, NULL) ==
                  QC_E_INVALID_ARGUMENT, "post: NaN epsilon");
        post.epsilon = 1e-5f;
        post.gamma = NULL;
        CHECK(qc_linear_dynamic_post_f32(m, x, NULL, packed, ws, ws_count, b, &post, got, NULL) ==
                  QC_E_NULL_POINTER, "post: no gamma");
        CHECK(qc_linear_dynamic_post_f32(m, x, NULL, packed, ws, ws_count, b, NULL, got, NULL) == QC_OK,
              "post: NULL is none");
    }
    free(resid);
    free(gamma);
    free(beta);
    free(layer);
    free(smooth);
    free(xs);
    free(want_s);
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

/* ------------------------------------------------------------- the row kernels alone */

/* A row of k floats of the given kind: 0 random, 1 all equal, 2 huge (near +-3e38),
 * 3 subnormal, 4 random with a NaN, 5 random with +-infinity, 6 all negative, 7 zeros. */
static void fill_row(float *x, size_t k, int kind) {
    float r = kind == 2 ? 3e38f : kind == 3 ? 1e-40f : (rng_next() & 1) ? 50.0f : 0.01f;
    float same = rng_sym(10.0f);
    for (size_t c = 0; c < k; c++) {
        x[c] = kind == 1 ? same : kind == 7 ? 0.0f : kind == 6 ? -fabsf(rng_sym(r)) - 1e-3f : rng_sym(r);
    }
    if (kind == 4) {
        x[rng_next() % k] = NAN;
    }
    if (kind == 5) {
        x[rng_next() % k] = (rng_next() & 1) ? INFINITY : -INFINITY;
    }
}

/* The scalar quantize-into-packed-A twin stores q - zp of qc_dynamic_quantize_u8's q, in the
 * layout, zeros past k, its row sum, and nothing in the other rows' slots. */
static void test_pack_scalar_against_public(size_t k, size_t mr, size_t row) {
    const size_t kp = (k + 3) / 4 * 4 + (rng_next() & 1) * 4; /* sometimes one zero group more */
    float *x = malloc(k * sizeof(float));
    uint8_t *q = malloc(k);
    int16_t *packed = malloc(mr * kp * sizeof(int16_t));
    fill_row(x, k, (int)(rng_next() % 8) == 4 ? 0 : (int)(rng_next() % 4));
    float scale = 0.0f;
    uint8_t zp = 0;
    qc_options o = {QC_ISA_SCALAR, 1};
    qc_status st = qc_dynamic_quantize_u8(x, k, q, &scale, &zp, &o);
    if (st == QC_OK) {
        for (size_t i = 0; i < mr * kp; i++) {
            packed[i] = 0x5A5A;
        }
        int32_t rowsum = 0;
        int nan_seen = qc_f32_qu8_quantize_centered_pack_ukernel__scalar(k, kp, x, scale, zp, mr, packed + row * 4,
                                                                         &rowsum);
        CHECK(!nan_seen, "pack scalar k%zu: NaN reported", k);
        int32_t sum = 0;
        for (size_t i = 0; i < mr * kp; i++) {
            size_t g = i / (mr * 4), r = i / 4 % mr, kk = g * 4 + i % 4;
            int32_t want = r != row ? 0x5A5A : kk < k ? (int32_t)q[kk] - zp : 0;
            CHECK(packed[i] == want, "pack scalar k%zu kp%zu mr%zu row%zu [%zu]: %d vs %d", k, kp, mr, row, i,
                  packed[i], want);
            sum += r == row ? packed[i] : 0;
        }
        CHECK(rowsum == sum, "pack scalar k%zu: row sum %d vs %d", k, rowsum, sum);
    }
    free(x);
    free(q);
    free(packed);
}

#if defined(__x86_64__)
static int has_avx2(void) { return (qc_isa_available_mask() >> QC_ISA_AVX2) & 1u; }

static void test_pack_avx2_against_scalar(size_t k, size_t mr, int kind) {
    const size_t kp = (k + 3) / 4 * 4 + (rng_next() % 3 == 0) * 4;
    const size_t row = (size_t)rng_next() % mr;
    float *x = malloc(k * sizeof(float));
    int16_t *want = malloc(mr * kp * sizeof(int16_t));
    int16_t *got = malloc(mr * kp * sizeof(int16_t));
    fill_row(x, k, kind);
    /* the parameters: as the layer derives them, or arbitrary (a tiny scale makes x / scale
     * overflow to infinity; zero points at both ends) */
    float scale = 0.5f + (float)(rng_next() % 1000) * 0.01f;
    int32_t zp = rng_range(0, 255);
    switch (rng_next() % 4) {
    case 0: scale = 1e-30f; break;
    case 1: zp = (rng_next() & 1) ? 0 : 255; break;
    case 2: {
        float lo = 0.0f, hi = 0.0f;
        for (size_t c = 0; c < k; c++) {
            lo = x[c] < lo ? x[c] : lo;
            hi = x[c] > hi ? x[c] : hi;
        }
        float range = hi - lo;
        if (isfinite(range) && range / 255.0f > 0.0f) {
            scale = range / 255.0f;
            float z = nearbyintf(0.0f - lo / scale);
            zp = (int32_t)(z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z);
        }
        break;
    }
    default: break;
    }
    for (size_t i = 0; i < mr * kp; i++) {
        want[i] = got[i] = (int16_t)(0x1111 * (i % 7));
    }
    int32_t sum_want = 0, sum_got = 1;
    int nan_want = qc_f32_qu8_quantize_centered_pack_ukernel__scalar(k, kp, x, scale, zp, mr, want + row * 4,
                                                                     &sum_want);
    int nan_got = qc_f32_qu8_quantize_centered_pack_ukernel__avx2(k, kp, x, scale, zp, mr, got + row * 4, &sum_got);
    CHECK(nan_want == nan_got && nan_want == (kind == 4), "pack avx2 k%zu kind%d: NaN flag %d vs %d", k, kind,
          nan_got, nan_want);
    CHECK(sum_want == sum_got, "pack avx2 k%zu kind%d: row sum %d vs %d", k, kind, sum_got, sum_want);
    CHECK(memcmp(want, got, mr * kp * sizeof(int16_t)) == 0, "pack avx2 k%zu kp%zu mr%zu kind%d s%a zp%d differs",
          k, kp, mr, kind, scale, zp);
    free(x);
    free(want);
    free(got);
}

static void test_mul_minmax_avx2_against_scalar(size_t n, int kind) {
    float *x = malloc(n * sizeof(float));
    float *mul = malloc(n * sizeof(float));
    float *p_want = malloc(n * sizeof(float));
    float *p_got = malloc(n * sizeof(float));
    fill_row(x, n, kind);
    for (size_t c = 0; c < n; c++) {
        mul[c] = (rng_next() % 8 == 0) ? 0.0f : (rng_next() % 16 == 0) ? 30.0f : 0.05f + rng_sym(4.0f) + 4.0f;
    }
    float lo_want = 0.0f, hi_want = 0.0f, lo_got = 1.0f, hi_got = 1.0f;
    int nan_want = qc_f32_mul_minmax_ukernel__scalar(n, x, mul, p_want, &lo_want, &hi_want);
    int nan_got = qc_f32_mul_minmax_ukernel__avx2(n, x, mul, p_got, &lo_got, &hi_got);
    CHECK(memcmp(p_want, p_got, n * sizeof(float)) == 0, "mul_minmax n%zu kind%d: products differ", n, kind);
    CHECK(nan_want == nan_got, "mul_minmax n%zu kind%d: NaN flag %d vs %d", n, kind, nan_got, nan_want);
    int any_nan = 0;
    for (size_t c = 0; c < n; c++) {
        float v = x[c] * mul[c];
        any_nan |= v != v;
        CHECK(memcmp(&v, &p_want[c], sizeof v) == 0, "mul_minmax n%zu: product %zu is not x * mul", n, c);
    }
    CHECK(nan_want == any_nan, "mul_minmax n%zu kind%d: NaN flag %d, products say %d", n, kind, nan_want, any_nan);
    if (!nan_want) { /* equal as floats: a zero's sign may differ (docs in qlinear_f32.h) */
        CHECK(lo_want == lo_got && hi_want == hi_got, "mul_minmax n%zu kind%d: min/max %a %a vs %a %a", n, kind,
              lo_got, hi_got, lo_want, hi_want);
    }
    free(x);
    free(mul);
    free(p_want);
    free(p_got);
}

static void test_epilogue_avx2_against_scalar(size_t rows, size_t n, int per_column, int with_bias) {
    const size_t stride = n + (size_t)(rng_next() % 3);
    int32_t *acc = malloc(rows * stride * sizeof(int32_t) + 4);
    float *want = malloc(rows * stride * sizeof(float) + 4);
    float *got = malloc(rows * stride * sizeof(float) + 4);
    float *xs = malloc(rows * sizeof(float));
    float *ws = malloc(n * sizeof(float));
    float *bias = malloc(n * sizeof(float));
    for (size_t i = 0; i < rows * stride; i++) {
        acc[i] = (rng_next() % 9 == 0) ? ((rng_next() & 1) ? INT32_MAX : INT32_MIN) : (int32_t)rng_next();
    }
    for (size_t r = 0; r < rows; r++) {
        xs[r] = (rng_next() % 5 == 0) ? 1.0f : 1e-4f + (float)(rng_next() % 100000) * 1e-6f;
    }
    for (size_t j = 0; j < n; j++) {
        ws[j] = (rng_next() % 7 == 0) ? 3e30f : 1e-5f + (float)(rng_next() % 1000) * 1e-5f; /* some overflow */
        bias[j] = rng_sym(3.0f);
    }
    memcpy(want, acc, rows * stride * sizeof(int32_t));
    memcpy(got, acc, rows * stride * sizeof(int32_t));
    qc_s32_f32_dequant_bias_ukernel__scalar(rows, n, want, stride, xs, ws, per_column, with_bias ? bias : NULL);
    qc_s32_f32_dequant_bias_ukernel__avx2(rows, n, got, stride, xs, ws, per_column, with_bias ? bias : NULL);
    CHECK(memcmp(want, got, rows * stride * sizeof(float)) == 0, "epilogue rows%zu n%zu stride%zu pc%d b%d differs",
          rows, n, stride, per_column, with_bias);
    for (size_t r = 0; r < rows; r++) { /* the scalar twin against the formula; gaps untouched */
        for (size_t j = 0; j < stride; j++) {
            int32_t raw = acc[r * stride + j];
            if (j >= n) {
                CHECK(memcmp(&raw, &want[r * stride + j], sizeof raw) == 0, "epilogue wrote the gap [%zu, %zu]", r, j);
                continue;
            }
            float v = (float)raw * (xs[r] * ws[per_column ? j : 0]);
            v = with_bias ? v + bias[j] : v;
            CHECK(memcmp(&v, &want[r * stride + j], sizeof v) == 0, "epilogue scalar rows%zu n%zu [%zu, %zu]", rows,
                  n, r, j);
        }
    }
    free(acc);
    free(want);
    free(got);
    free(xs);
    free(ws);
    free(bias);
}
#endif

static void test_row_kernels(void) {
    static const size_t widths[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40, 47, 48, 63, 64, 65,
                                    70, 383, 384, 385, 1536};
    static const size_t heights[] = {1, 4, 6};
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
        for (size_t h = 0; h < sizeof(heights) / sizeof(heights[0]); h++) {
            test_pack_scalar_against_public(widths[w], heights[h], (size_t)rng_next() % heights[h]);
        }
    }
#if defined(__x86_64__)
    if (!has_avx2()) {
        return;
    }
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
        for (int kind = 0; kind < 8; kind++) {
            test_pack_avx2_against_scalar(widths[w], heights[(size_t)kind % 3], kind);
            test_mul_minmax_avx2_against_scalar(widths[w], kind);
        }
    }
    for (int i = 0; i < 300; i++) {
        test_pack_avx2_against_scalar((size_t)rng_range(1, 100), heights[i % 3], (int)(rng_next() % 8));
        test_mul_minmax_avx2_against_scalar((size_t)rng_range(1, 100), (int)(rng_next() % 8));
    }
    for (size_t rows = 1; rows <= 7; rows++) {
        for (size_t n = 1; n <= 40; n += 1 + (n > 17) * 5) {
            test_epilogue_avx2_against_scalar(rows, n, (int)(n % 2), (int)(rows % 3 != 0));
            test_epilogue_avx2_against_scalar(rows, n, (int)(n % 2 == 0), (int)(rows % 3 == 0));
        }
    }
#endif
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
    test_row_kernels(); /* after every hashed run: the checksum's inputs do not move */
    printf("checksum linear_dynamic %016" PRIx64 "\n", g_sum);
    printf("test_linear: %d checks, %d failures, isas:", g_checks, g_failures);
    for (int k = 0; k < g_num_isas; k++) {
        printf(" %s", qc_isa_name(g_isas[k]));
    }
    printf("\n");
    return g_failures == 0 ? 0 : 1;
}
