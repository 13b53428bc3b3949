/*
 * Element-wise kernels: every ISA path this CPU runs is compared bit for bit with the scalar
 * path (quantize, dequantize, dynamic quantize, both requantization forms, int4 packing),
 * across lengths around the vector widths and tails, every layout shape ([outer, channels,
 * inner] with inner == 1, channels == 1 and the general case), extreme zero points, ties,
 * +-inf, huge and subnormal values; the scalar path is checked against hand-computed ONNX /
 * TFLite values; bad arguments return the documented statuses.
 *
 * Prints the available ISAs, one "checksum <name> <hex>" line per operation (FNV-1a of the
 * scalar outputs on fixed seeded inputs, so runs on other architectures can be compared
 * with x86), and a one-line summary. Exit status 0 when every check passed.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcore.h"
#include "test_check.h"
#include "test_support.h"

/* ---- deterministic inputs: splitmix64 ---- */

static uint32_t rng_u32(void) { return (uint32_t)(rng_next() >> 32); }
static float rng_unit(void) { return (float)(rng_next() >> 40) / 16777216.0f; } /* [0, 1) */

/* Random positive float32 scale spanning many binades, sometimes subnormal or huge. */
static float rng_scale(void) {
    uint32_t kind = rng_u32() % 16;
    if (kind == 0) {
        return ldexpf(1.0f, rng_range(-12, 4)); /* powers of two: exact ties */
    }
    if (kind == 1) {
        return 1e-40f * (1.0f + rng_unit()); /* subnormal */
    }
    if (kind == 2) {
        return 1e30f * (1.0f + rng_unit());
    }
    float mantissa = 1.0f + rng_unit(); /* separate statements: a fixed order of draws */
    return ldexpf(mantissa, rng_range(-20, 6));
}

/* Float input for quantization with a given scale: mostly the interesting range, with
 * exact ties, signed zeros, infinities, huge, subnormal and boundary values. */
static float rng_quant_input(float scale, int32_t span) {
    uint32_t kind = rng_u32() % 32;
    switch (kind) {
    case 0: return INFINITY;
    case 1: return -INFINITY;
    case 2: return FLT_MAX;
    case 3: return -3e38f;
    case 4: return -0.0f;
    case 5: return 1e-45f;
    case 6: return ((float)rng_range(-span, span) + 0.5f) * scale; /* a tie when scale is a power of two */
    case 7: return (float)rng_range(-span, span) * scale;
    case 8: {
        float big = (float)(int32_t)rng_u32();
        return ldexpf(big, rng_range(-60, 60));
    }
    default: break;
    }
    float whole = (float)rng_range(-span, span);
    return (whole + rng_unit()) * scale;
}

/* ---- checksums ---- */

/* ---- ISAs ---- */

static int g_isas[QC_ISA_COUNT];
static int g_num_isas = 0;

static qc_options isa_options(int isa) {
    qc_options o = {isa, 1};
    return o;
}

static void find_isas(void) {
    uint32_t mask = qc_isa_available_mask();
    printf("isas:");
    for (int i = 0; i < QC_ISA_COUNT; i++) {
        if (mask & (1u << i)) {
            g_isas[g_num_isas++] = i;
            printf(" %s", qc_isa_name(i));
        }
    }
    int def = -1;
    qc_isa_default(&def);
    printf(" (default %s)\n", qc_isa_name(def));
}

static size_t dtype_size(int dtype) {
    switch (dtype) {
    case QC_DTYPE_INT8:
    case QC_DTYPE_UINT8: return 1;
    case QC_DTYPE_INT16:
    case QC_DTYPE_UINT16: return 2;
    default: return 4;
    }
}

static void dtype_range(int dtype, int32_t *lo, int32_t *hi) {
    switch (dtype) {
    case QC_DTYPE_INT8: *lo = -128; *hi = 127; break;
    case QC_DTYPE_UINT8: *lo = 0; *hi = 255; break;
    case QC_DTYPE_INT16: *lo = -32768; *hi = 32767; break;
    case QC_DTYPE_UINT16: *lo = 0; *hi = 65535; break;
    default: *lo = INT32_MIN; *hi = INT32_MAX; break;
    }
}

static const char *dtype_name(int dtype) {
    static const char *names[] = {"int8", "uint8", "int16", "uint16", "int32", "float32"};
    return dtype >= 0 && dtype <= 5 ? names[dtype] : "?";
}

/* Layouts swept by the per-channel tests: [outer, channels, inner]. */
typedef struct {
    size_t outer, channels, inner;
} layout;

static const layout k_layouts[] = {
    {1, 1, 0},  {1, 1, 1},  {1, 1, 3},  {1, 1, 4},   {1, 1, 7},   {1, 1, 8},  {1, 1, 15}, {1, 1, 16},
    {1, 1, 17}, {1, 1, 31}, {1, 1, 32}, {1, 1, 33},  {1, 1, 63},  {1, 1, 64}, {1, 1, 65}, {1, 1, 127},
    {1, 1, 1000}, {5, 1, 13}, {1, 3, 1}, {2, 5, 1},  {3, 8, 1},   {2, 17, 1}, {1, 33, 1}, {4, 64, 1},
    {1, 100, 1}, {2, 3, 5}, {1, 4, 33},  {3, 2, 40}, {1, 7, 100}, {2, 16, 9}, {0, 4, 4},  {4, 0, 4},
};
#define NUM_LAYOUTS (sizeof(k_layouts) / sizeof(k_layouts[0]))

/* ---- quantize ---- */

static uint64_t g_sum_quantize[4];

static void check_quantize_case(const layout *l, int dtype, const float *x, const float *scales, const int32_t *zps) {
    size_t count = l->outer * l->channels * l->inner;
    size_t bytes = count * dtype_size(dtype) + 1;
    unsigned char *ref = malloc(bytes);
    unsigned char *out = malloc(bytes);
    qc_options o = isa_options(QC_ISA_SCALAR);
    qc_status s_ref = qc_quantize_f32(x, l->outer, l->channels, l->inner, scales, zps, dtype, ref, &o);
    CHECK(s_ref == QC_OK, "quantize scalar status %d", s_ref);
    g_sum_quantize[dtype] = fnv(g_sum_quantize[dtype], ref, count * dtype_size(dtype));
    for (int k = 1; k < g_num_isas; k++) {
        o = isa_options(g_isas[k]);
        memset(out, 0xAB, bytes);
        qc_status s = qc_quantize_f32(x, l->outer, l->channels, l->inner, scales, zps, dtype, out, &o);
        CHECK(s == s_ref && memcmp(ref, out, count * dtype_size(dtype)) == 0,
              "quantize %s [%zu,%zu,%zu] -> %s differs from scalar", qc_isa_name(g_isas[k]), l->outer, l->channels,
              l->inner, dtype_name(dtype));
        CHECK(out[count * dtype_size(dtype)] == 0xAB, "quantize %s wrote past the end", qc_isa_name(g_isas[k]));
    }
    free(ref);
    free(out);
}

static void test_quantize_random(void) {
    rng_state = 1;
    for (int dtype = QC_DTYPE_INT8; dtype <= QC_DTYPE_UINT16; dtype++) {
        g_sum_quantize[dtype] = FNV_INIT;
        int32_t qmin, qmax;
        dtype_range(dtype, &qmin, &qmax);
        for (size_t li = 0; li < NUM_LAYOUTS; li++) {
            for (int rep = 0; rep < 3; rep++) {
                const layout *l = &k_layouts[li];
                size_t count = l->outer * l->channels * l->inner;
                float *x = malloc((count + 1) * sizeof(float));
                float *scales = malloc((l->channels + 1) * sizeof(float));
                int32_t *zps = malloc((l->channels + 1) * sizeof(int32_t));
                for (size_t c = 0; c < l->channels; c++) {
                    scales[c] = rng_scale();
                    uint32_t zk = rng_u32() % 4;
                    zps[c] = zk == 0 ? qmin : (zk == 1 ? qmax : rng_range(qmin, qmax));
                }
                for (size_t i = 0; i < count; i++) {
                    size_t c = l->inner ? (i / l->inner) % l->channels : 0;
                    x[i] = rng_quant_input(scales[c], (qmax - qmin) / 2 + 8);
                }
                check_quantize_case(l, dtype, x, scales, rep == 2 ? NULL : zps);
                free(x);
                free(scales);
                free(zps);
            }
        }
    }
}

static void test_quantize_known_values(void) {
    /* Ties round half to even, then the zero point is added; saturation; inf. */
    const float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 0.0f, -0.0f, 1000.0f, -1000.0f, INFINITY, -INFINITY,
                       126.5f, 127.5f, -128.5f, 3e9f};
    const int8_t expect_s8[] = {0, 2, 2, 0, -2, -2, 0, 0, 127, -128, 127, -128, 126, 127, -128, 127};
    const uint8_t expect_u8_zp128[] = {128, 130, 130, 128, 126, 126, 128, 128, 255, 0, 255, 0, 254, 255, 0, 255};
    size_t n = sizeof(x) / sizeof(x[0]);
    float one = 1.0f;
    int32_t zp128 = 128;
    for (int k = 0; k < g_num_isas; k++) {
        qc_options o = isa_options(g_isas[k]);
        int8_t ys[16];
        uint8_t yu[16];
        CHECK(qc_quantize_f32(x, 1, 1, n, &one, NULL, QC_DTYPE_INT8, ys, &o) == QC_OK, "quantize known");
        CHECK(memcmp(ys, expect_s8, n) == 0, "quantize int8 known values on %s", qc_isa_name(g_isas[k]));
        CHECK(qc_quantize_f32(x, 1, 1, n, &one, &zp128, QC_DTYPE_UINT8, yu, &o) == QC_OK, "quantize known");
        CHECK(memcmp(yu, expect_u8_zp128, n) == 0, "quantize uint8 known values on %s", qc_isa_name(g_isas[k]));
    }
    /* True division, not a reciprocal multiply: 0.273939937 / 0.00214854861 rounds to 127
     * (x * (1 / scale) gives 128). */
    float xd = 0.273939937f;
    float sd = 0.00214854861f;
    uint8_t yd = 0;
    qc_options o = isa_options(QC_ISA_SCALAR);
    CHECK(qc_quantize_f32(&xd, 1, 1, 1, &sd, NULL, QC_DTYPE_UINT8, &yd, &o) == QC_OK && yd == 127,
          "division, not reciprocal: got %u", yd);
}

static void test_quantize_errors(void) {
    float x[40];
    for (int i = 0; i < 40; i++) {
        x[i] = (float)i;
    }
    uint8_t y[40];
    uint16_t y16[40];
    float scale = 0.5f;
    int32_t zp = 3;
    for (int k = 0; k < g_num_isas; k++) {
        qc_options o = isa_options(g_isas[k]);
        /* NaN anywhere, body or tail, row or channel kernel. */
        for (int pos = 0; pos < 40; pos += 13) {
            x[pos] = NAN;
            CHECK(qc_quantize_f32(x, 1, 1, 40, &scale, &zp, QC_DTYPE_UINT8, y, &o) == QC_E_NONFINITE, "nan row");
            float scales[40];
            for (int i = 0; i < 40; i++) {
                scales[i] = 0.25f;
            }
            CHECK(qc_quantize_f32(x, 1, 40, 1, scales, NULL, QC_DTYPE_INT16, y16, &o) == QC_E_NONFINITE, "nan chan");
            x[pos] = (float)pos;
        }
    }
    float bad_scales[] = {0.0f, -1.0f, INFINITY, NAN};
    for (int i = 0; i < 4; i++) {
        CHECK(qc_quantize_f32(x, 1, 1, 4, &bad_scales[i], NULL, QC_DTYPE_INT8, y, NULL) == QC_E_SCALE, "bad scale");
    }
    int32_t bad_zp = 128;
    CHECK(qc_quantize_f32(x, 1, 1, 4, &scale, &bad_zp, QC_DTYPE_INT8, y, NULL) == QC_E_ZERO_POINT, "zp range");
    bad_zp = -1;
    CHECK(qc_quantize_f32(x, 1, 1, 4, &scale, &bad_zp, QC_DTYPE_UINT16, y, NULL) == QC_E_ZERO_POINT, "zp range");
    CHECK(qc_quantize_f32(x, 1, 1, 4, &scale, NULL, QC_DTYPE_INT32, y, NULL) == QC_E_DTYPE, "int32 output");
    CHECK(qc_quantize_f32(x, 1, 1, 4, &scale, NULL, 99, y, NULL) == QC_E_DTYPE, "unknown dtype");
    CHECK(qc_quantize_f32(NULL, 1, 1, 4, &scale, NULL, QC_DTYPE_INT8, y, NULL) == QC_E_NULL_POINTER, "null x");
    CHECK(qc_quantize_f32(x, 1, 1, 4, NULL, NULL, QC_DTYPE_INT8, y, NULL) == QC_E_NULL_POINTER, "null scales");
    CHECK(qc_quantize_f32(x, SIZE_MAX, 2, 2, &scale, NULL, QC_DTYPE_INT8, y, NULL) == QC_E_OVERFLOW, "overflow");
    CHECK(qc_quantize_f32(NULL, 1, 1, 0, &scale, NULL, QC_DTYPE_INT8, NULL, NULL) == QC_OK, "empty");
    qc_options bad = {QC_ISA_COUNT, 1};
    CHECK(qc_quantize_f32(x, 1, 1, 4, &scale, NULL, QC_DTYPE_INT8, y, &bad) == QC_E_UNSUPPORTED_ISA, "bad isa");
    uint32_t mask = qc_isa_available_mask();
    for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
        if (!(mask & (1u << isa))) {
            qc_options missing = {isa, 1};
            CHECK(qc_quantize_f32(x, 1, 1, 4, &scale, NULL, QC_DTYPE_INT8, y, &missing) == QC_E_UNSUPPORTED_ISA,
                  "unavailable isa %s accepted", qc_isa_name(isa));
        }
    }
}

/* ---- dequantize ---- */

static uint64_t g_sum_dequantize[5];

static void test_dequantize_random(void) {
    rng_state = 2;
    for (int dtype = QC_DTYPE_INT8; dtype <= QC_DTYPE_INT32; dtype++) {
        g_sum_dequantize[dtype] = FNV_INIT;
        int32_t qmin, qmax;
        dtype_range(dtype, &qmin, &qmax);
        size_t esize = dtype_size(dtype);
        for (size_t li = 0; li < NUM_LAYOUTS; li++) {
            for (int rep = 0; rep < 3; rep++) {
                const layout *l = &k_layouts[li];
                size_t count = l->outer * l->channels * l->inner;
                unsigned char *x = malloc(count * esize + 1);
                float *ref = malloc((count + 1) * sizeof(float));
                float *out = malloc((count + 1) * sizeof(float));
                float *scales = malloc((l->channels + 1) * sizeof(float));
                int32_t *zps = malloc((l->channels + 1) * sizeof(int32_t));
                for (size_t c = 0; c < l->channels; c++) {
                    scales[c] = rng_scale();
                    uint32_t zk = rng_u32() % 4;
                    zps[c] = zk == 0 ? qmin : (zk == 1 ? qmax : rng_range(qmin, qmax));
                }
                for (size_t i = 0; i < count; i++) {
                    int32_t v = (rng_u32() % 8 == 0) ? ((rng_u32() & 1) ? qmin : qmax) : (int32_t)rng_u32();
                    v = dtype == QC_DTYPE_INT32 ? v : qmin + (int32_t)((uint32_t)v % (uint32_t)(qmax - qmin + 1));
                    memcpy(x + i * esize, (char *)&v, esize); /* little-endian low bytes */
                }
                const int32_t *zp_arg = rep == 2 ? NULL : zps;
                qc_options o = isa_options(QC_ISA_SCALAR);
                qc_status s_ref = qc_dequantize_f32(x, dtype, l->outer, l->channels, l->inner, scales, zp_arg, ref, &o);
                CHECK(s_ref == QC_OK, "dequantize scalar status %d", s_ref);
                g_sum_dequantize[dtype] = fnv(g_sum_dequantize[dtype], ref, count * sizeof(float));
                for (int k = 1; k < g_num_isas; k++) {
                    o = isa_options(g_isas[k]);
                    qc_status s = qc_dequantize_f32(x, dtype, l->outer, l->channels, l->inner, scales, zp_arg, out, &o);
                    CHECK(s == s_ref && memcmp(ref, out, count * sizeof(float)) == 0,
                          "dequantize %s %s [%zu,%zu,%zu] differs from scalar", qc_isa_name(g_isas[k]),
                          dtype_name(dtype), l->outer, l->channels, l->inner);
                }
                free(x);
                free(ref);
                free(out);
                free(scales);
                free(zps);
            }
        }
    }
}

static void test_dequantize_known_values(void) {
    /* int32 beyond 2^24: (x - zp) exactly, then one rounding to float32. */
    const int32_t x[] = {INT32_MAX, INT32_MIN, 16777217, -16777217, 0, 5};
    int32_t zp = -1;
    float one = 1.0f;
    const float expect[] = {2147483648.0f, -2147483648.0f, 16777218.0f, -16777216.0f, 1.0f, 6.0f};
    for (int k = 0; k < g_num_isas; k++) {
        qc_options o = isa_options(g_isas[k]);
        float y[6];
        CHECK(qc_dequantize_f32(x, QC_DTYPE_INT32, 1, 1, 6, &one, &zp, y, &o) == QC_OK, "dequantize int32");
        CHECK(memcmp(y, expect, sizeof(y)) == 0, "dequantize int32 known values on %s", qc_isa_name(g_isas[k]));
    }
    const uint8_t xu[] = {0, 255, 128};
    int32_t zpu = 128;
    float scale = 0.5f;
    float yu[3];
    CHECK(qc_dequantize_f32(xu, QC_DTYPE_UINT8, 1, 1, 3, &scale, &zpu, yu, NULL) == QC_OK && yu[0] == -64.0f &&
              yu[1] == 63.5f && yu[2] == 0.0f,
          "dequantize uint8 known values");
    CHECK(qc_dequantize_f32(xu, QC_DTYPE_FLOAT32, 1, 1, 3, &scale, NULL, yu, NULL) == QC_E_DTYPE, "float input");
    zpu = 256;
    CHECK(qc_dequantize_f32(xu, QC_DTYPE_UINT8, 1, 1, 3, &scale, &zpu, yu, NULL) == QC_E_ZERO_POINT, "zp range");
    scale = -1.0f;
    CHECK(qc_dequantize_f32(xu, QC_DTYPE_UINT8, 1, 1, 3, &scale, NULL, yu, NULL) == QC_E_SCALE, "bad scale");
}

/* ---- dynamic quantize ---- */

static uint64_t g_sum_dynamic;

static void check_dynamic(const float *x, size_t n, qc_status expect_status) {
    uint8_t *ref = malloc(n + 1);
    uint8_t *out = malloc(n + 1);
    float s_ref = 0.0f, s = 0.0f;
    uint8_t zp_ref = 0, zp = 0;
    qc_options o = isa_options(QC_ISA_SCALAR);
    qc_status st_ref = qc_dynamic_quantize_u8(x, n, ref, &s_ref, &zp_ref, &o);
    CHECK(st_ref == expect_status, "dynamic quantize status %d, expected %d (n=%zu)", st_ref, expect_status, n);
    if (st_ref == QC_OK) {
        g_sum_dynamic = fnv(g_sum_dynamic, ref, n);
        g_sum_dynamic = fnv(g_sum_dynamic, &s_ref, sizeof(s_ref));
        g_sum_dynamic = fnv(g_sum_dynamic, &zp_ref, 1);
    }
    for (int k = 1; k < g_num_isas; k++) {
        o = isa_options(g_isas[k]);
        qc_status st = qc_dynamic_quantize_u8(x, n, out, &s, &zp, &o);
        CHECK(st == st_ref, "dynamic quantize status on %s", qc_isa_name(g_isas[k]));
        if (st == QC_OK && st_ref == QC_OK) {
            CHECK(memcmp(ref, out, n) == 0 && memcmp(&s, &s_ref, sizeof(s)) == 0 && zp == zp_ref,
                  "dynamic quantize %s n=%zu differs from scalar", qc_isa_name(g_isas[k]), n);
        }
    }
    free(ref);
    free(out);
}

static void test_dynamic_quantize(void) {
    rng_state = 3;
    g_sum_dynamic = FNV_INIT;
    static const size_t lengths[] = {1, 2, 7, 8, 9, 31, 32, 33, 100, 1000};
    for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
        size_t n = lengths[li];
        float *x = malloc(n * sizeof(float));
        for (int kind = 0; kind < 6; kind++) {
            float span = ldexpf(1.0f, rng_range(-30, 30));
            for (size_t i = 0; i < n; i++) {
                float u = rng_unit();
                switch (kind) {
                case 0: x[i] = (u * 2.0f - 1.0f) * span; break; /* mixed signs */
                case 1: x[i] = u * span; break;                  /* non-negative */
                case 2: x[i] = -u * span; break;                 /* non-positive */
                case 3: x[i] = 0.0f; break;                      /* all zero */
                case 4: x[i] = (u - 0.3f) * 1e-39f; break;       /* subnormal */
                default: x[i] = (u * 2.0f - 1.0f) * 1.5e38f; break; /* range just below FLT_MAX */
                }
            }
            check_dynamic(x, n, QC_OK);
        }
        /* Extremes placed in the vector body and in the tail. */
        for (size_t i = 0; i < n; i++) {
            x[i] = (float)i - 3.0f;
        }
        x[n - 1] = 50.0f;
        x[0] = -7.0f;
        check_dynamic(x, n, QC_OK);
        x[n / 2] = NAN;
        check_dynamic(x, n, QC_E_NONFINITE);
        x[n / 2] = INFINITY;
        check_dynamic(x, n, QC_E_NONFINITE);
        x[n / 2] = -INFINITY;
        check_dynamic(x, n, QC_E_NONFINITE);
        free(x);
    }
    /* Known values: float32 arithmetic gives zero point 26 for min -2.5 with max 22.5. */
    const float x[] = {-2.5f, 22.5f, 0.0f, 1.0f};
    uint8_t y[4];
    float scale = 0.0f;
    uint8_t zp = 0;
    CHECK(qc_dynamic_quantize_u8(x, 4, y, &scale, &zp, NULL) == QC_OK, "dynamic known");
    CHECK(scale == 25.0f / 255.0f, "dynamic scale %.9g", scale);
    CHECK(zp == (uint8_t)nearbyintf(2.5f / (25.0f / 255.0f)), "dynamic zp %u", zp);
    /* All zero: scale 1.0 (onnxruntime's choice), zero point 0. */
    const float zeros[3] = {0.0f, -0.0f, 0.0f};
    CHECK(qc_dynamic_quantize_u8(zeros, 3, y, &scale, &zp, NULL) == QC_OK && scale == 1.0f && zp == 0 &&
              y[0] == 0 && y[1] == 0 && y[2] == 0,
          "dynamic all-zero");
    /* Range overflowing float32. */
    const float wide[2] = {-3e38f, 3e38f};
    CHECK(qc_dynamic_quantize_u8(wide, 2, y, &scale, &zp, NULL) == QC_E_NONFINITE, "dynamic range overflow");
    CHECK(qc_dynamic_quantize_u8(x, 0, y, &scale, &zp, NULL) == QC_E_SHAPE, "dynamic empty");
    /* The reference's golden example: [0, 2, -3, -2.5, 1.34, 0.5]. */
    const float golden[6] = {0.0f, 2.0f, -3.0f, -2.5f, 1.34f, 0.5f};
    const uint8_t golden_y[6] = {153, 255, 0, 26, 221, 179};
    uint8_t yg[6];
    for (int k = 0; k < g_num_isas; k++) {
        qc_options o = isa_options(g_isas[k]);
        CHECK(qc_dynamic_quantize_u8(golden, 6, yg, &scale, &zp, &o) == QC_OK && memcmp(yg, golden_y, 6) == 0 &&
                  zp == 153 && scale == 5.0f / 255.0f,
              "dynamic golden example on %s", qc_isa_name(g_isas[k]));
    }
    /* A subnormal range whose scale underflows. */
    const float tiny[2] = {0.0f, 1e-45f};
    CHECK(qc_dynamic_quantize_u8(tiny, 2, y, &scale, &zp, NULL) == QC_E_SCALE, "dynamic scale underflow");
}

/* ---- requantize ---- */

static uint64_t g_sum_requant[2];
static uint64_t g_sum_requant_fixed[2];

static int32_t rng_acc(void) {
    switch (rng_u32() % 8) {
    case 0: return INT32_MIN;
    case 1: return INT32_MAX;
    case 2: return rng_range(-1000, 1000);
    case 3: return rng_range(-70000, 70000);
    default: return (int32_t)rng_u32();
    }
}

static void test_requantize_random(void) {
    rng_state = 4;
    for (int fixed = 0; fixed < 2; fixed++) {
        for (int dtype = QC_DTYPE_INT8; dtype <= QC_DTYPE_UINT8; dtype++) {
            uint64_t *sum = fixed ? &g_sum_requant_fixed[dtype] : &g_sum_requant[dtype];
            *sum = FNV_INIT;
            int32_t qmin, qmax;
            dtype_range(dtype, &qmin, &qmax);
            for (size_t li = 0; li < NUM_LAYOUTS; li++) {
                for (int rep = 0; rep < 4; rep++) {
                    const layout *l = &k_layouts[li];
                    size_t count = l->outer * l->channels * l->inner;
                    size_t ch = l->channels + 1;
                    int32_t *acc = malloc((count + 1) * sizeof(int32_t));
                    int32_t *bias = malloc(ch * sizeof(int32_t));
                    int32_t *zps = malloc(ch * sizeof(int32_t));
                    int32_t *mq = malloc(ch * sizeof(int32_t));
                    int32_t *shifts = malloc(ch * sizeof(int32_t));
                    float *mf = malloc(ch * sizeof(float));
                    uint8_t *ref = malloc(count + 1);
                    uint8_t *out = malloc(count + 1);
                    for (size_t i = 0; i < count; i++) {
                        acc[i] = rng_acc();
                    }
                    for (size_t c = 0; c < l->channels; c++) {
                        bias[c] = rng_u32() % 4 == 0 ? (int32_t)rng_u32() : rng_range(-5000, 5000);
                        uint32_t zk = rng_u32() % 4;
                        zps[c] = zk == 0 ? qmin : (zk == 1 ? qmax : rng_range(qmin, qmax));
                        uint32_t mk = rng_u32() % 8;
                        float mantissa = 1.0f + rng_unit();
                        mf[c] = mk == 0 ? 1e-40f : (mk == 1 ? 1e20f : ldexpf(mantissa, rng_range(-30, 2)));
                        if (mk == 2) {
                            mf[c] = ldexpf(1.0f, rng_range(-10, 0)); /* ties after the multiply */
                        }
                        uint32_t qk = rng_u32() % 8;
                        mq[c] = qk == 0 ? INT32_MIN : (qk == 1 ? INT32_MAX : (qk == 2 ? 0 : (int32_t)rng_u32()));
                        if (qk == 3) {
                            mq[c] = (int32_t)(1u << rng_range(16, 30)); /* exact ties in SRDHM / RDBP */
                        }
                        if (qk > 4) {
                            mq[c] = (int32_t)((1u << 30) | (rng_u32() >> 2)); /* TFLite's [2^30, 2^31) */
                        }
                        shifts[c] = rng_u32() % 4 == 0 ? rng_range(-31, 31) : rng_range(-20, 3);
                    }
                    int32_t lo = qmin, hi = qmax;
                    switch (rep) {
                    case 1: lo = zps[0]; break;                                     /* ReLU */
                    case 2: lo = rng_range(qmin, qmax); hi = rng_range(lo, qmax); break; /* min-max */
                    default: break;
                    }
                    const int32_t *bias_arg = rep == 3 ? NULL : bias;
                    const int32_t *zp_arg = (rep == 3 && dtype == QC_DTYPE_INT8) ? NULL : zps;
                    if (l->channels == 0) {
                        lo = qmin;
                    }
                    qc_options o = isa_options(QC_ISA_SCALAR);
                    qc_status s_ref =
                        fixed ? qc_requantize_fixedpoint(acc, l->outer, l->channels, l->inner, bias_arg, mq, shifts,
                                                         zp_arg, lo, hi, dtype, ref, &o)
                              : qc_requantize(acc, l->outer, l->channels, l->inner, bias_arg, mf, zp_arg, lo, hi, dtype,
                                              ref, &o);
                    CHECK(s_ref == QC_OK, "requantize scalar status %d", s_ref);
                    *sum = fnv(*sum, ref, count);
                    for (int k = 1; k < g_num_isas; k++) {
                        o = isa_options(g_isas[k]);
                        memset(out, 0xCD, count + 1);
                        qc_status s =
                            fixed ? qc_requantize_fixedpoint(acc, l->outer, l->channels, l->inner, bias_arg, mq, shifts,
                                                             zp_arg, lo, hi, dtype, out, &o)
                                  : qc_requantize(acc, l->outer, l->channels, l->inner, bias_arg, mf, zp_arg, lo, hi,
                                                  dtype, out, &o);
                        CHECK(s == s_ref && memcmp(ref, out, count) == 0 && out[count] == 0xCD,
                              "requantize%s %s [%zu,%zu,%zu] -> %s differs from scalar", fixed ? "_fixedpoint" : "",
                              qc_isa_name(g_isas[k]), l->outer, l->channels, l->inner, dtype_name(dtype));
                    }
                    free(acc);
                    free(bias);
                    free(zps);
                    free(mq);
                    free(shifts);
                    free(mf);
                    free(ref);
                    free(out);
                }
            }
        }
    }
}

static void test_requantize_known_values(void) {
    /* Float form: ties to even after the multiply, zero point, clamp, wrapping bias. */
    const int32_t acc[] = {1, 3, 5, -1, -3, 1000, -1000, INT32_MAX, 0};
    const int32_t bias = 0;
    const float half = 0.5f;
    const int32_t zp = 10;
    const int8_t expect[] = {10, 12, 12, 10, 8, 127, -128, 127, 10};
    int8_t y[9];
    for (int k = 0; k < g_num_isas; k++) {
        qc_options o = isa_options(g_isas[k]);
        CHECK(qc_requantize(acc, 1, 1, 9, &bias, &half, &zp, -128, 127, QC_DTYPE_INT8, y, &o) == QC_OK, "rq");
        CHECK(memcmp(y, expect, sizeof(y)) == 0, "requantize known values on %s", qc_isa_name(g_isas[k]));
        /* ReLU6-style clamp given as integer bounds. */
        CHECK(qc_requantize(acc, 1, 1, 9, &bias, &half, &zp, 10, 13, QC_DTYPE_INT8, y, &o) == QC_OK && y[0] == 10 &&
                  y[1] == 12 && y[4] == 10 && y[5] == 13,
              "requantize clamp on %s", qc_isa_name(g_isas[k]));
        /* Wrapping bias: INT32_MAX + 1 == INT32_MIN. */
        int32_t one = 1;
        CHECK(qc_requantize(&acc[7], 1, 1, 1, &one, &half, &zp, -128, 127, QC_DTYPE_INT8, y, &o) == QC_OK &&
                  y[0] == -128,
              "requantize bias wraps on %s", qc_isa_name(g_isas[k]));
    }
    /* Fixed point: multiplier 2^30 (0.5), shift 0 -> x / 2 rounding half up in SRDHM;
     * shift -1 -> RoundingDivideByPOT rounds half away from zero. */
    const int32_t accf[] = {1, 3, -1, -3, 5, -5, INT32_MIN, INT32_MAX};
    const int32_t mult = 1 << 30;
    int32_t shift = 0;
    int8_t yf[8];
    /* SRDHM(x, 2^30) = floor((x * 2^30 + 2^30) / 2^31) = floor((x + 1) / 2) for x >= 0 and
     * trunc((x * 2^30 + 1 - 2^30) / 2^31) for x < 0. */
    const int8_t expect0[] = {1, 2, 0, -1, 3, -2, -128, 127};
    for (int k = 0; k < g_num_isas; k++) {
        qc_options o = isa_options(g_isas[k]);
        CHECK(qc_requantize_fixedpoint(accf, 1, 1, 8, NULL, &mult, &shift, NULL, -128, 127, QC_DTYPE_INT8, yf, &o) ==
                  QC_OK,
              "fixed");
        CHECK(memcmp(yf, expect0, sizeof(yf)) == 0, "fixedpoint shift 0 on %s: %d %d %d %d %d %d",
              qc_isa_name(g_isas[k]), yf[0], yf[1], yf[2], yf[3], yf[4], yf[5]);
    }
    /* shift -1: RDBP(SRDHM(x, 2^30), 1) on x = 6, 2, -2, -6 -> SRDHM = 3, 1, -1, -3 -> 2, 1, -1, -2. */
    const int32_t accg[] = {6, 2, -2, -6};
    const int8_t expect1[] = {2, 1, -1, -2};
    shift = -1;
    for (int k = 0; k < g_num_isas; k++) {
        qc_options o = isa_options(g_isas[k]);
        CHECK(qc_requantize_fixedpoint(accg, 1, 1, 4, NULL, &mult, &shift, NULL, -128, 127, QC_DTYPE_INT8, yf, &o) ==
                      QC_OK &&
                  memcmp(yf, expect1, 4) == 0,
              "fixedpoint shift -1 on %s", qc_isa_name(g_isas[k]));
    }
    /* Errors. */
    CHECK(qc_requantize(acc, 1, 1, 9, NULL, &half, NULL, -129, 127, QC_DTYPE_INT8, y, NULL) == QC_E_INVALID_ARGUMENT,
          "clamp below range");
    CHECK(qc_requantize(acc, 1, 1, 9, NULL, &half, NULL, 5, 4, QC_DTYPE_INT8, y, NULL) == QC_E_INVALID_ARGUMENT,
          "clamp inverted");
    CHECK(qc_requantize(acc, 1, 1, 9, NULL, &half, NULL, 0, 255, QC_DTYPE_INT16, y, NULL) == QC_E_DTYPE, "rq dtype");
    float bad = 0.0f;
    CHECK(qc_requantize(acc, 1, 1, 9, NULL, &bad, NULL, -128, 127, QC_DTYPE_INT8, y, NULL) == QC_E_SCALE, "rq scale");
    int32_t bad_zp = 300;
    CHECK(qc_requantize(acc, 1, 1, 9, NULL, &half, &bad_zp, 0, 255, QC_DTYPE_UINT8, y, NULL) == QC_E_ZERO_POINT,
          "rq zp");
    shift = 32;
    CHECK(qc_requantize_fixedpoint(acc, 1, 1, 9, NULL, &mult, &shift, NULL, -128, 127, QC_DTYPE_INT8, y, NULL) ==
              QC_E_INVALID_ARGUMENT,
          "rq shift");
    CHECK(qc_requantize_fixedpoint(acc, 1, 1, 9, NULL, &mult, NULL, NULL, -128, 127, QC_DTYPE_INT8, y, NULL) ==
              QC_E_NULL_POINTER,
          "rq null shifts");
}

/* ---- int4 ---- */

static uint64_t g_sum_int4;

static void test_int4(void) {
    rng_state = 5;
    g_sum_int4 = FNV_INIT;
    /* ONNX's example: [1, 2, 3, 5, -8, -6] -> 0x21 0x53 0xa8; odd count leaves the high nibble 0. */
    const int8_t v[] = {1, 2, 3, 5, -8, -6, 7};
    uint8_t p[4];
    int8_t back[7];
    for (int k = 0; k < g_num_isas; k++) {
        qc_options o = isa_options(g_isas[k]);
        CHECK(qc_pack_int4(v, 6, 1, p, &o) == QC_OK && p[0] == 0x21 && p[1] == 0x53 && p[2] == 0xa8,
              "ONNX int4 example on %s", qc_isa_name(g_isas[k]));
        CHECK(qc_pack_int4(v, 7, 1, p, &o) == QC_OK && p[3] == 0x07, "odd count on %s", qc_isa_name(g_isas[k]));
        CHECK(qc_unpack_int4(p, 7, 1, back, &o) == QC_OK && memcmp(back, v, 7) == 0, "int4 round trip");
    }
    static const size_t lengths[] = {0, 1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 66, 127, 128, 129, 1001};
    for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
        size_t n = lengths[li];
        size_t nbytes = (n + 1) / 2;
        for (int is_signed = 0; is_signed < 2; is_signed++) {
            int8_t *values = malloc(n + 1);
            int8_t *unpacked = malloc(n + 1);
            uint8_t *ref = malloc(nbytes + 1);
            uint8_t *out = malloc(nbytes + 1);
            for (size_t i = 0; i < n; i++) {
                values[i] = (int8_t)(is_signed ? rng_range(-8, 7) : rng_range(0, 15));
            }
            qc_options o = isa_options(QC_ISA_SCALAR);
            CHECK(qc_pack_int4(values, n, is_signed, ref, &o) == QC_OK, "pack scalar");
            g_sum_int4 = fnv(g_sum_int4, ref, nbytes);
            /* Random packed bytes, every nibble valid. */
            for (size_t i = 0; i < nbytes; i++) {
                out[i] = (uint8_t)rng_u32();
            }
            int8_t *unpacked_ref = malloc(n + 1);
            CHECK(qc_unpack_int4(out, n, is_signed, unpacked_ref, &o) == QC_OK, "unpack scalar");
            g_sum_int4 = fnv(g_sum_int4, unpacked_ref, n);
            uint8_t *random_bytes = malloc(nbytes + 1);
            memcpy(random_bytes, out, nbytes);
            for (int k = 0; k < g_num_isas; k++) {
                o = isa_options(g_isas[k]);
                memset(out, 0xEE, nbytes + 1);
                CHECK(qc_pack_int4(values, n, is_signed, out, &o) == QC_OK && memcmp(ref, out, nbytes) == 0 &&
                          out[nbytes] == 0xEE,
                      "pack %s n=%zu differs from scalar", qc_isa_name(g_isas[k]), n);
                memset(unpacked, 0x55, n + 1);
                CHECK(qc_unpack_int4(ref, n, is_signed, unpacked, &o) == QC_OK && memcmp(unpacked, values, n) == 0 &&
                          (uint8_t)unpacked[n] == 0x55,
                      "unpack %s n=%zu is not the inverse", qc_isa_name(g_isas[k]), n);
                CHECK(qc_unpack_int4(random_bytes, n, is_signed, unpacked, &o) == QC_OK &&
                          memcmp(unpacked, unpacked_ref, n) == 0,
                      "unpack %s n=%zu of random bytes differs from scalar", qc_isa_name(g_isas[k]), n);
                /* An out-of-range value anywhere is reported. */
                if (n > 0) {
                    /* No draws from the shared generator here: the ISA count differs by machine. */
                    size_t at = (n * 7 + (size_t)k * 13) % n;
                    int8_t saved = values[at];
                    values[at] = (int8_t)(is_signed ? ((n + k) & 1 ? 8 : -9) : ((n + k) & 1 ? 16 : -1));
                    CHECK(qc_pack_int4(values, n, is_signed, out, &o) == QC_E_INVALID_ARGUMENT,
                          "pack %s n=%zu accepted an out-of-range value at %zu", qc_isa_name(g_isas[k]), n, at);
                    values[at] = saved;
                }
            }
            free(values);
            free(unpacked);
            free(unpacked_ref);
            free(random_bytes);
            free(ref);
            free(out);
        }
    }
    CHECK(qc_pack_int4(NULL, 3, 1, p, NULL) == QC_E_NULL_POINTER, "pack null");
    CHECK(qc_unpack_int4(p, 3, 1, NULL, NULL) == QC_E_NULL_POINTER, "unpack null");
}

int main(void) {
    find_isas();
    test_quantize_known_values();
    test_quantize_random();
    test_quantize_errors();
    test_dequantize_known_values();
    test_dequantize_random();
    test_dynamic_quantize();
    test_requantize_known_values();
    test_requantize_random();
    test_int4();

    for (int d = QC_DTYPE_INT8; d <= QC_DTYPE_UINT16; d++) {
        printf("checksum quantize_%s %016" PRIx64 "\n", dtype_name(d), g_sum_quantize[d]);
    }
    for (int d = QC_DTYPE_INT8; d <= QC_DTYPE_INT32; d++) {
        printf("checksum dequantize_%s %016" PRIx64 "\n", dtype_name(d), g_sum_dequantize[d]);
    }
    printf("checksum dynamic_quantize %016" PRIx64 "\n", g_sum_dynamic);
    for (int d = QC_DTYPE_INT8; d <= QC_DTYPE_UINT8; d++) {
        printf("checksum requantize_%s %016" PRIx64 "\n", dtype_name(d), g_sum_requant[d]);
        printf("checksum requantize_fixedpoint_%s %016" PRIx64 "\n", dtype_name(d), g_sum_requant_fixed[d]);
    }
    printf("checksum int4 %016" PRIx64 "\n", g_sum_int4);
    printf("test_elementwise: %d checks, %d failures, isas:", g_checks, g_failures);
    for (int k = 0; k < g_num_isas; k++) {
        printf(" %s", qc_isa_name(g_isas[k]));
    }
    printf("\n");
    return g_failures == 0 ? 0 : 1;
}
