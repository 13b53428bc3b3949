/*
 * Kernel tester for the int8 convolution and max pooling (qcore_conv.h), standalone: main
 * returns 0 when every check passes, 1 otherwise, and prints one summary line plus
 * `checksum <name> <hex>` lines of scalar results on fixed seeded inputs (the ARM
 * emulation job compares them with the x86 ones).
 *
 * Every ISA the CPU runs is compared bit for bit with an int64 oracle written here (and so
 * with the scalar path): channels per group across the flat / per-tap switch and odd
 * counts, groups and depthwise, kernels 1x1 to 3x5, strides, dilations, asymmetric pads,
 * both input and output layouts, uint8 / int8 inputs and weights with zero points from
 * extreme to extreme, all-extreme inputs, float32 input, every output stage, the 1x1
 * direct case (a linear layer), max pooling, and bad arguments.
 *
 * Build: gcc -O2 -Icsrc/include -Icsrc/src csrc/src/\*.c csrc/tests/test_conv.c -lm -pthread
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


static int32_t lo_of(int t) { return t == QC_DTYPE_UINT8 ? 0 : -128; }
static int32_t hi_of(int t) { return t == QC_DTYPE_UINT8 ? 255 : 127; }
static int32_t load8(int t, const uint8_t *p) { return t == QC_DTYPE_UINT8 ? (int32_t)*p : (int32_t)(int8_t)*p; }

/* The oracle: acc[n][oc][oh][ow] (NCHW order) in int64, wrapped to int32. */
static void oracle(const qc_conv2d_shape *s, size_t oh_n, size_t ow_n, int x_type, int x_layout, const uint8_t *x,
                   int32_t x_zp, int w_type, const uint8_t *w, const int32_t *w_zp, size_t w_zp_count, int32_t *acc) {
    size_t cg = s->channels / s->groups, ng = s->out_channels / s->groups;
    for (size_t n = 0; n < s->batch; n++) {
        for (size_t o = 0; o < s->out_channels; o++) {
            size_t g = o / ng;
            int64_t wz = w_zp_count ? w_zp[w_zp_count == 1 ? 0 : o] : 0;
            for (size_t oh = 0; oh < oh_n; oh++) {
                for (size_t ow = 0; ow < ow_n; ow++) {
                    int64_t sum = 0;
                    for (size_t c = 0; c < cg; c++) {
                        for (size_t kh = 0; kh < s->kernel_height; kh++) {
                            for (size_t kw = 0; kw < s->kernel_width; kw++) {
                                long ih = (long)(oh * s->stride_height + kh * s->dilation_height) - (long)s->pad_top;
                                long iw = (long)(ow * s->stride_width + kw * s->dilation_width) - (long)s->pad_left;
                                int64_t xv = x_zp;
                                if (ih >= 0 && ih < (long)s->height && iw >= 0 && iw < (long)s->width) {
                                    size_t ch = g * cg + c;
                                    size_t idx = x_layout == QC_CONV_NCHW
                                                     ? ((n * s->channels + ch) * s->height + (size_t)ih) * s->width +
                                                           (size_t)iw
                                                     : ((n * s->height + (size_t)ih) * s->width + (size_t)iw) *
                                                               s->channels +
                                                           ch;
                                    xv = load8(x_type, x + idx);
                                }
                                int64_t wv = load8(w_type, w + ((o * cg + c) * s->kernel_height + kh) *
                                                                   s->kernel_width + kw);
                                sum += (xv - x_zp) * (wv - wz);
                            }
                        }
                    }
                    acc[((n * s->out_channels + o) * oh_n + oh) * ow_n + ow] = (int32_t)(uint32_t)(uint64_t)sum;
                }
            }
        }
    }
}

/* Element (n, o, oh, ow) of an output in `layout`. */
static size_t out_index(const qc_conv2d_shape *s, size_t oh_n, size_t ow_n, int layout, size_t i) {
    size_t ow = i % ow_n, oh = (i / ow_n) % oh_n, o = (i / (ow_n * oh_n)) % s->out_channels,
           n = i / (ow_n * oh_n * s->out_channels);
    return layout == QC_CONV_NCHW ? i : ((n * oh_n + oh) * ow_n + ow) * s->out_channels + o;
}

static int32_t quantize_ref(float v, float scale, int32_t zp, int32_t lo, int32_t hi) {
    float q = nearbyintf(v / scale);
    float l = (float)(lo - zp), h = (float)(hi - zp);
    q = q < l ? l : q > h ? h : q;
    return (int32_t)q + zp;
}

/* The fused output pool (out->pool_height x pool_width) equals qc_maxpool2d_x8 of the
 * unpooled output `plain` (same kind, layout and isa); both pool shapes that fit are tried. */
static uint64_t cs_conv_pool = FNV_INIT;
static void check_fused_pool(const qc_conv2d_shape *s, size_t oh, size_t ow, const qc_conv_input *in,
                             const void *packed, qc_conv_output out, const uint8_t *plain, const qc_options *opt,
                             int checksum) {
    static const size_t pools[2][2] = {{2, 2}, {3, 2}};
    for (int k = 0; k < 2; k++) {
        size_t ph = pools[k][0], pw = pools[k][1];
        if (ph > oh || pw > ow) {
            continue;
        }
        qc_conv2d_shape ps = {s->batch, s->out_channels, oh, ow, 0, 1, ph, pw, ph, pw, 1, 1, 0, 0, 0, 0};
        size_t count = s->batch * s->out_channels * (oh / ph) * (ow / pw);
        uint8_t *expect = malloc(count + 1), *got = malloc(count + 1);
        EXPECT(qc_maxpool2d_x8(&ps, out.type, out.layout, plain, expect, opt) == QC_OK, "reference pool");
        out.pool_height = ph;
        out.pool_width = pw;
        EXPECT(qc_conv2d(s, in, packed, &out, got, opt) == QC_OK, "conv + pool");
        EXPECT(memcmp(expect, got, count) == 0, "fused pool %zux%zu isa %s kind %d layout %d differs", ph, pw,
               qc_isa_name(opt->isa), out.kind, out.layout);
        if (checksum) {
            cs_conv_pool = fnv(cs_conv_pool, got, count);
        }
        free(expect);
        free(got);
    }
}

typedef struct conv_case {
    size_t n, c, h, w, oc, groups, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
} conv_case;

static void run_case(const conv_case *cc, int x_type, int w_type, int x_layout, int extreme, uint64_t *cs_s32,
                     uint64_t *cs_q) {
    qc_conv2d_shape s = {cc->n, cc->c, cc->h, cc->w, cc->oc, cc->groups, cc->kh, cc->kw, cc->sh, cc->sw,
                         cc->dh, cc->dw, cc->pt, cc->pl, cc->pb, cc->pr};
    size_t oh, ow;
    if (qc_conv2d_output_size(&s, &oh, &ow) != QC_OK) {
        return;
    }
    size_t cg = cc->c / cc->groups, in_count = cc->n * cc->c * cc->h * cc->w;
    size_t w_count = cc->oc * cg * cc->kh * cc->kw, out_count = cc->n * cc->oc * oh * ow;
    uint8_t *x = malloc(in_count + 1), *w = malloc(w_count + 1);
    int32_t *w_zp = malloc(sizeof(int32_t) * cc->oc);
    for (size_t i = 0; i < in_count; i++) {
        x[i] = (uint8_t)(extreme ? (i % 3 ? hi_of(x_type) : lo_of(x_type)) : rng_range(lo_of(x_type), hi_of(x_type)));
    }
    for (size_t i = 0; i < w_count; i++) {
        w[i] = (uint8_t)(extreme ? (i % 2 ? lo_of(w_type) : hi_of(w_type)) : rng_range(lo_of(w_type), hi_of(w_type)));
    }
    for (size_t o = 0; o < cc->oc; o++) {
        w_zp[o] = extreme ? (o % 2 ? hi_of(w_type) : lo_of(w_type)) : rng_range(lo_of(w_type), hi_of(w_type));
    }
    int32_t x_zp = extreme ? lo_of(x_type) : rng_range(lo_of(x_type), hi_of(x_type));
    size_t packed_size;
    EXPECT(qc_conv2d_packed_size(&s, &packed_size) == QC_OK, "packed size");
    void *raw = malloc(packed_size + 64);
    void *packed = (void *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    EXPECT(qc_conv2d_pack_weights(&s, w_type, w, w_zp, cc->oc, packed, packed_size, NULL) == QC_OK, "pack");
    int32_t *expect = malloc(sizeof(int32_t) * (out_count + 1));
    oracle(&s, oh, ow, x_type, x_layout, x, x_zp, w_type, w, w_zp, cc->oc, expect);

    float *mult = malloc(sizeof(float) * cc->oc), *bias = malloc(sizeof(float) * cc->oc);
    int32_t *bias32 = malloc(sizeof(int32_t) * cc->oc);
    for (size_t o = 0; o < cc->oc; o++) {
        mult[o] = (float)rng_range(1, 1000) * 1e-6f;
        bias[o] = (float)rng_range(-1000, 1000) * 0.01f;
        bias32[o] = rng_range(-100000, 100000);
    }
    int32_t *y32 = malloc(sizeof(int32_t) * (out_count + 1));
    float *yf = malloc(sizeof(float) * (out_count + 1));
    uint8_t *y8 = malloc(out_count + 1);
    uint32_t mask = qc_isa_available_mask();
    for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
        if (!(mask & (1u << isa))) {
            continue;
        }
        qc_options opt = {isa, 1};
        qc_conv_input in = {x_type, x_layout, x, x_zp, 0.0f, 0};
        for (int layout = 0; layout < 2; layout++) {
            qc_conv_output out;
            memset(&out, 0, sizeof(out));
            out.kind = QC_CONV_OUT_S32;
            out.layout = layout;
            EXPECT(qc_conv2d(&s, &in, packed, &out, y32, &opt) == QC_OK, "conv s32 isa %d", isa);
            size_t bad = 0;
            for (size_t i = 0; i < out_count; i++) {
                bad += y32[out_index(&s, oh, ow, layout, i)] != expect[i];
            }
            EXPECT(bad == 0, "s32 isa %s layout %d: %zu of %zu differ (n%zu c%zu %zux%zu oc%zu g%zu k%zux%zu)",
                   qc_isa_name(isa), layout, bad, out_count, cc->n, cc->c, cc->h, cc->w, cc->oc, cc->groups,
                   cc->kh, cc->kw);
            if (isa == QC_ISA_SCALAR && layout == QC_CONV_NCHW && cs_s32) {
                *cs_s32 = fnv(*cs_s32, y32, out_count * sizeof(int32_t));
            }
            /* requant, float, float + quantize (with a ReLU clamp) */
            int out_type = x_type;
            int32_t zp = (lo_of(out_type) + hi_of(out_type)) / 2 + 3;
            out.kind = QC_CONV_OUT_REQUANT;
            out.type = out_type;
            out.multiplier = mult;
            out.multiplier_per_channel = 1;
            out.bias_s32 = bias32;
            out.output_zero_point = zp;
            out.clamp_min = lo_of(out_type);
            out.clamp_max = hi_of(out_type);
            EXPECT(qc_conv2d(&s, &in, packed, &out, y8, &opt) == QC_OK, "conv requant");
            bad = 0;
            for (size_t i = 0; i < out_count; i++) {
                size_t o = (i / (ow * oh)) % cc->oc;
                int32_t a = (int32_t)((uint32_t)expect[i] + (uint32_t)bias32[o]);
                int32_t q = qc__requant_float(a, mult[o], zp, out.clamp_min, out.clamp_max);
                bad += load8(out_type, y8 + out_index(&s, oh, ow, layout, i)) != q;
            }
            EXPECT(bad == 0, "requant isa %s: %zu differ", qc_isa_name(isa), bad);
            check_fused_pool(&s, oh, ow, &in, packed, out, y8, &opt, isa == QC_ISA_SCALAR && cs_q != NULL);
            if (isa == QC_ISA_SCALAR && layout == QC_CONV_NHWC && cs_q) {
                *cs_q = fnv(*cs_q, y8, out_count);
            }
            out.kind = QC_CONV_OUT_F32;
            out.bias_f32 = bias;
            EXPECT(qc_conv2d(&s, &in, packed, &out, yf, &opt) == QC_OK, "conv f32");
            bad = 0;
            for (size_t i = 0; i < out_count; i++) {
                size_t o = (i / (ow * oh)) % cc->oc;
                float f = (float)expect[i] * mult[o];
                f = f + bias[o];
                float got = yf[out_index(&s, oh, ow, layout, i)];
                bad += memcmp(&got, &f, sizeof(f)) != 0;
            }
            EXPECT(bad == 0, "f32 isa %s: %zu differ", qc_isa_name(isa), bad);
            out.kind = QC_CONV_OUT_F32_QUANTIZE;
            out.output_scale = 0.37f;
            out.clamp_min = zp;
            EXPECT(qc_conv2d(&s, &in, packed, &out, y8, &opt) == QC_OK, "conv f32 quantize");
            bad = 0;
            for (size_t i = 0; i < out_count; i++) {
                size_t o = (i / (ow * oh)) % cc->oc;
                float f = (float)expect[i] * mult[o];
                f = f + bias[o];
                int32_t q = quantize_ref(f, 0.37f, zp, lo_of(out_type), hi_of(out_type));
                q = q < zp ? zp : q;
                bad += load8(out_type, y8 + out_index(&s, oh, ow, layout, i)) != q;
            }
            EXPECT(bad == 0, "f32 quantize isa %s: %zu differ", qc_isa_name(isa), bad);
            check_fused_pool(&s, oh, ow, &in, packed, out, y8, &opt, isa == QC_ISA_SCALAR && cs_q != NULL);
        }
    }
    free(x);
    free(w);
    free(w_zp);
    free(raw);
    free(expect);
    free(mult);
    free(bias);
    free(bias32);
    free(y32);
    free(yf);
    free(y8);
}

static void test_sweep(uint64_t *cs_s32, uint64_t *cs_q) {
    static const conv_case cases[] = {
        {2, 1, 8, 8, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   /* the digits CNN's first conv */
        {2, 16, 6, 5, 32, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  /* per-tap path */
        {3, 32, 4, 4, 32, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  /* groups, flat path */
        {2, 6, 7, 6, 6, 6, 3, 3, 2, 1, 1, 1, 0, 2, 1, 0},    /* depthwise, strides, asymmetric pads */
        {1, 5, 9, 7, 13, 1, 3, 5, 1, 2, 2, 1, 2, 0, 1, 3},   /* odd channels, dilation, 13 columns */
        {2, 3, 5, 5, 7, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},    /* 1x1 */
        {5, 40, 1, 1, 21, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},  /* a linear layer: 1x1 on 1x1 */
        {1, 34, 3, 4, 18, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, 1},  /* 17 channels per group */
        {0, 4, 5, 5, 4, 1, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0},    /* empty batch */
        {1, 2, 100, 80, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, /* a larger image, several chunks */
    };
    static const int types[4][2] = {{QC_DTYPE_UINT8, QC_DTYPE_INT8}, {QC_DTYPE_INT8, QC_DTYPE_INT8},
                                    {QC_DTYPE_UINT8, QC_DTYPE_UINT8}, {QC_DTYPE_INT8, QC_DTYPE_UINT8}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int t = 0; t < 4; t++) {
            for (int layout = 0; layout < 2; layout++) {
                rng_seed(i * 100 + (size_t)t * 10 + (size_t)layout);
                run_case(&cases[i], types[t][0], types[t][1], layout, 0, cs_s32, cs_q);
                run_case(&cases[i], types[t][0], types[t][1], layout, 1, NULL, NULL);
            }
        }
    }
}

static void test_float_input(void) {
    qc_conv2d_shape s = {2, 2, 5, 4, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1};
    float x[80];
    uint8_t q[80];
    for (int i = 0; i < 80; i++) {
        x[i] = (float)rng_range(-3000, 3000) * 0.001f;
    }
    x[0] = INFINITY;
    x[1] = -1e30f;
    int8_t w[54];
    for (int i = 0; i < 54; i++) {
        w[i] = (int8_t)rng_range(-127, 127);
    }
    size_t size;
    qc_conv2d_packed_size(&s, &size);
    void *raw = malloc(size + 64);
    void *packed = (void *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    EXPECT(qc_conv2d_pack_weights(&s, QC_DTYPE_INT8, w, NULL, 0, packed, size, NULL) == QC_OK, "pack");
    for (int i = 0; i < 80; i++) {
        q[i] = (uint8_t)quantize_ref(x[i], 0.02f, 100, 0, 255);
    }
    int32_t from_float[120], from_q[120];
    qc_conv_output out;
    memset(&out, 0, sizeof(out));
    qc_conv_input fin = {QC_DTYPE_FLOAT32, QC_CONV_NCHW, x, 100, 0.02f, QC_DTYPE_UINT8};
    qc_conv_input qin = {QC_DTYPE_UINT8, QC_CONV_NCHW, q, 100, 0.0f, 0};
    EXPECT(qc_conv2d(&s, &fin, packed, &out, from_float, NULL) == QC_OK, "float input");
    EXPECT(qc_conv2d(&s, &qin, packed, &out, from_q, NULL) == QC_OK, "quantized input");
    EXPECT(memcmp(from_float, from_q, sizeof(from_q)) == 0, "float input == quantized input");
    x[5] = NAN;
    EXPECT(qc_conv2d(&s, &fin, packed, &out, from_float, NULL) == QC_E_NONFINITE, "NaN input");
    fin.scale = 0.0f;
    EXPECT(qc_conv2d(&s, &fin, packed, &out, from_float, NULL) == QC_E_SCALE, "zero scale");
    free(raw);
}

static void test_maxpool(uint64_t *cs) {
    for (int type = 0; type < 2; type++) {
        for (int layout = 0; layout < 2; layout++) {
            qc_conv2d_shape s = {2, 5, 7, 6, 0, 1, 3, 2, 2, 1, 1, 2, 1, 0, 2, 1};
            size_t oh, ow;
            EXPECT(qc_conv2d_output_size(&s, &oh, &ow) == QC_OK, "pool size");
            uint8_t x[420], y[2 * 5 * 16 * 16], expect[2 * 5 * 16 * 16];
            for (int i = 0; i < 420; i++) {
                x[i] = (uint8_t)rng_range(lo_of(type), hi_of(type));
            }
            for (size_t n = 0; n < 2; n++) {
                for (size_t c = 0; c < 5; c++) {
                    for (size_t i = 0; i < oh; i++) {
                        for (size_t j = 0; j < ow; j++) {
                            int32_t best = lo_of(type);
                            for (size_t kh = 0; kh < 3; kh++) {
                                for (size_t kw = 0; kw < 2; kw++) {
                                    long ih = (long)(i * 2 + kh) - 1, iw = (long)(j + kw * 2) - 0;
                                    if (ih < 0 || ih >= 7 || iw < 0 || iw >= 6) {
                                        continue;
                                    }
                                    size_t idx = layout == QC_CONV_NCHW
                                                     ? ((n * 5 + c) * 7 + (size_t)ih) * 6 + (size_t)iw
                                                     : ((n * 7 + (size_t)ih) * 6 + (size_t)iw) * 5 + c;
                                    int32_t v = load8(type, x + idx);
                                    best = v > best ? v : best;
                                }
                            }
                            size_t o = layout == QC_CONV_NCHW ? ((n * 5 + c) * oh + i) * ow + j
                                                              : ((n * oh + i) * ow + j) * 5 + c;
                            expect[o] = (uint8_t)best;
                        }
                    }
                }
            }
            uint32_t mask = qc_isa_available_mask();
            for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
                if (!(mask & (1u << isa))) {
                    continue;
                }
                qc_options opt = {isa, 1};
                EXPECT(qc_maxpool2d_x8(&s, type, layout, x, y, &opt) == QC_OK, "maxpool");
                EXPECT(memcmp(y, expect, 2 * 5 * oh * ow) == 0, "maxpool isa %s type %d layout %d",
                       qc_isa_name(isa), type, layout);
            }
            *cs = fnv(*cs, y, 2 * 5 * oh * ow);
        }
    }
}

static void test_bad_arguments(void) {
    qc_conv2d_shape s = {1, 4, 5, 5, 6, 2, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0};
    size_t size, oh, ow;
    EXPECT(qc_conv2d_packed_size(&s, &size) == QC_OK, "size");
    void *raw = calloc(1, size + 64);
    void *packed = (void *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    int8_t w[6 * 2 * 9] = {0};
    uint8_t x[100] = {0};
    int32_t y[200];
    int32_t zp_bad = 300;
    EXPECT(qc_conv2d_pack_weights(&s, QC_DTYPE_INT8, w, &zp_bad, 1, packed, size, NULL) == QC_E_ZERO_POINT, "w zp");
    EXPECT(qc_conv2d_pack_weights(&s, QC_DTYPE_INT32, w, NULL, 0, packed, size, NULL) == QC_E_DTYPE, "w type");
    EXPECT(qc_conv2d_pack_weights(&s, QC_DTYPE_INT8, w, NULL, 0, packed, size - 1, NULL) == QC_E_INVALID_ARGUMENT,
           "small buffer");
    qc_conv_output out;
    memset(&out, 0, sizeof(out));
    qc_conv_input in = {QC_DTYPE_UINT8, QC_CONV_NCHW, x, 0, 0.0f, 0};
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_INVALID_ARGUMENT, "unpacked weights");
    EXPECT(qc_conv2d_pack_weights(&s, QC_DTYPE_INT8, w, NULL, 0, packed, size, NULL) == QC_OK, "pack");
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_OK, "ok");
    EXPECT(qc_conv2d(NULL, &in, packed, &out, y, NULL) == QC_E_NULL_POINTER, "null shape");
    EXPECT(qc_conv2d(&s, &in, packed, &out, NULL, NULL) == QC_E_NULL_POINTER, "null y");
    qc_conv2d_shape other = s;
    other.out_channels = 4;
    EXPECT(qc_conv2d(&other, &in, packed, &out, y, NULL) == QC_E_SHAPE, "weights of another shape");
    other = s;
    other.groups = 3;
    EXPECT(qc_conv2d(&other, &in, packed, &out, y, NULL) == QC_E_SHAPE, "groups");
    other = s;
    other.kernel_height = 9;
    EXPECT(qc_conv2d_output_size(&other, &oh, &ow) == QC_E_SHAPE, "kernel larger than input");
    other = s;
    other.stride_width = 0;
    EXPECT(qc_conv2d_output_size(&other, &oh, &ow) == QC_E_SHAPE, "zero stride");
    in.zero_point = 256;
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_ZERO_POINT, "x zp");
    in.zero_point = 0;
    in.type = QC_DTYPE_INT32;
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_DTYPE, "x type");
    in.type = QC_DTYPE_UINT8;
    in.layout = 7;
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_INVALID_ARGUMENT, "layout");
    in.layout = QC_CONV_NCHW;
    float m = NAN;
    out.kind = QC_CONV_OUT_F32;
    out.multiplier = &m;
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_SCALE, "NaN multiplier");
    m = 1.0f;
    out.kind = QC_CONV_OUT_F32_QUANTIZE;
    out.type = QC_DTYPE_UINT8;
    out.output_scale = 1.0f;
    out.clamp_min = 10;
    out.clamp_max = 5;
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_INVALID_ARGUMENT, "clamp order");
    out.kind = 9;
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_INVALID_ARGUMENT, "output kind");
    memset(&out, 0, sizeof(out));
    out.kind = QC_CONV_OUT_S32;
    out.pool_height = 2;
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_INVALID_ARGUMENT, "pool on int32 output");
    float one = 1.0f;
    memset(&out, 0, sizeof(out));
    out.kind = QC_CONV_OUT_REQUANT;
    out.type = QC_DTYPE_UINT8;
    out.multiplier = &one;
    out.clamp_max = 255;
    out.pool_height = 2;
    out.pool_width = 2;
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_OK, "pooled requant");
    out.pool_width = 4; /* the output is 3x3 */
    EXPECT(qc_conv2d(&s, &in, packed, &out, y, NULL) == QC_E_SHAPE, "pool wider than the output");
    EXPECT(qc_maxpool2d_x8(&s, QC_DTYPE_FLOAT32, QC_CONV_NCHW, x, y, NULL) == QC_E_DTYPE, "pool type");
    qc_options bad_isa = {99, 1};
    EXPECT(qc_maxpool2d_x8(&s, QC_DTYPE_UINT8, QC_CONV_NCHW, x, y, &bad_isa) != QC_OK, "bad isa");
    free(raw);
}

int main(void) {
    uint64_t cs_s32 = FNV_INIT, cs_q = FNV_INIT, cs_pool = FNV_INIT;
    test_sweep(&cs_s32, &cs_q);
    test_float_input();
    test_maxpool(&cs_pool);
    test_bad_arguments();
    printf("test_conv: %ld checks, %d failures\n", checks, failures);
    printf("checksum conv_s32 %016llx\n", (unsigned long long)cs_s32);
    printf("checksum conv_requant %016llx\n", (unsigned long long)cs_q);
    printf("checksum maxpool %016llx\n", (unsigned long long)cs_pool);
    printf("checksum conv_pool %016llx\n", (unsigned long long)cs_conv_pool);
    return failures != 0;
}
