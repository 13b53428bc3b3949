/*
 * float32 attention scores (qcore_attention.h): every ISA path this CPU runs is compared
 * bit for bit with the scalar path on random inputs read through transposed, broadcast
 * and strided views, with and without scale and mask, on sizes that leave tails in rows
 * and columns, and on special values (NaN, +-inf, fully masked rows, zeros); the scalar
 * path is checked against a double-precision softmax; bad arguments return the documented
 * statuses.
 *
 * Prints the available ISAs, one "checksum attention <hex>" line (FNV-1a of the scalar
 * outputs on fixed inputs, compared with runs on other architectures) and a one-line
 * summary. Exit status 0 when every check passed.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcore.h"
#include "attention.h"
#include "test_check.h"
#include "test_support.h"

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)); }

/* One case: q and k stored as an encoder's linear outputs (batch, seq, heads * depth) and
 * read as (b, h, seq, depth) and (b, h, depth, seq) views; the mask (batch, seq) broadcast
 * over heads and rows. Returns the hash of the scalar result folded into h. */
static uint64_t run_case(uint64_t h, size_t batch, size_t heads, size_t seq, size_t depth, int use_scale,
                         int use_mask, int special) {
    size_t width = heads * depth, n_in = batch * seq * width + 1, n_out = batch * heads * seq * seq;
    float *q = malloc(n_in * sizeof(float)), *k = malloc(n_in * sizeof(float));
    float *mask = malloc((batch * seq + 1) * sizeof(float));
    float *ref = malloc((n_out + 1) * sizeof(float)), *out = malloc((n_out + 1) * sizeof(float));
    for (size_t i = 0; i < n_in; i++) {
        q[i] = rng_sym(3.0f);
        k[i] = rng_sym(3.0f);
    }
    for (size_t i = 0; i < batch * seq; i++) {
        mask[i] = (rng_next() % 4 == 0) ? -3.4028235e38f : 0.0f;
    }
    if (special && seq > 3 && depth > 1) {
        q[0] = NAN;                        /* row 0 of head 0: NaN */
        q[width] = INFINITY;               /* row 1 of head 0: inf * k -> inf or NaN */
        for (size_t d = 0; d < depth; d++) {
            q[2 * width + d] = 0.0f;       /* row 2: all-zero scores */
        }
        for (size_t j = 0; j < seq; j++) {
            mask[j] = -INFINITY;           /* batch 0: every column masked -> NaN rows */
        }
        k[3] = 1e-45f;
    }
    const int64_t qs[4] = {(int64_t)(seq * width), (int64_t)depth, (int64_t)width, 1};
    const int64_t ks[4] = {(int64_t)(seq * width), (int64_t)depth, 1, (int64_t)width};
    const int64_t ms[4] = {(int64_t)seq, 0, 0, 1};
    const float scale = 0.17677669f;
    const float *sp = use_scale ? &scale : NULL;
    const float *mp = use_mask ? mask : NULL;
    qc_options scalar = {QC_ISA_SCALAR, 1};
    size_t live_ref = 0;
    CHECK(qc_attention_scores_f32(batch, heads, seq, depth, seq, q, qs, k, ks, sp, mp, ms, ref, &live_ref, &scalar) ==
              QC_OK,
          "scalar run");
    CHECK(live_ref <= seq && (use_mask || live_ref == seq), "live keys %zu of %zu", live_ref, seq);
    for (size_t i = 0; i < n_out; i++) { /* the reported tail is exactly +0 */
        uint32_t bits;
        memcpy(&bits, &ref[i], sizeof bits);
        CHECK(i % seq < live_ref || bits == 0u, "probability %zu past live keys %zu is %a", i, live_ref, ref[i]);
    }
    /* the scalar path against double precision (rows without NaN / masked columns only) */
    for (size_t b = 0; b < batch && !special && seq <= 64; b++) {
        for (size_t hd = 0; hd < heads; hd++) {
            for (size_t i = 0; i < seq; i++) {
                double v[64], m = -INFINITY, s = 0.0;
                for (size_t j = 0; j < seq; j++) {
                    double a = 0.0;
                    for (size_t d = 0; d < depth; d++) {
                        a += (double)q[b * qs[0] + hd * qs[1] + i * qs[2] + d] *
                             (double)k[b * ks[0] + hd * ks[1] + d + j * ks[3]];
                    }
                    a *= use_scale ? (double)scale : 1.0;
                    a += use_mask ? (double)mask[b * seq + j] : 0.0;
                    v[j] = a;
                    m = a > m ? a : m;
                }
                for (size_t j = 0; j < seq; j++) {
                    v[j] = exp(v[j] - m);
                    s += v[j];
                }
                for (size_t j = 0; j < seq; j++) {
                    double want = v[j] / s;
                    float got = ref[((b * heads + hd) * seq + i) * seq + j];
                    CHECK(fabs((double)got - want) <= 2e-5 * want + 1e-6, "accuracy %zu %zu %zu %zu: %g vs %g", b, hd,
                          i, j, (double)got, want);
                }
            }
        }
    }
    for (size_t i = 0; i < n_out; i++) {
        uint32_t bits;
        memcpy(&bits, &ref[i], sizeof bits);
        if (isnan(ref[i])) {
            bits = 0x7FC00000u; /* NaN payloads are not portable */
        }
        h = fnv(h, &bits, sizeof bits);
    }
    uint32_t mask_isas = qc_isa_available_mask();
    for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
        if (!(mask_isas & (1u << isa))) {
            continue;
        }
        qc_options o = {isa, 1};
        out[n_out] = 12345.0f; /* guard: nothing is written past the end */
        size_t live = 0;
        CHECK(qc_attention_scores_f32(batch, heads, seq, depth, seq, q, qs, k, ks, sp, mp, ms, out, &live, &o) == QC_OK,
              "%s run", qc_isa_name(isa));
        CHECK(live == live_ref, "%s live keys %zu vs scalar %zu", qc_isa_name(isa), live, live_ref);
        CHECK(out[n_out] == 12345.0f, "%s wrote past the end", qc_isa_name(isa));
        for (size_t i = 0; i < n_out; i++) {
            CHECK(same_bits(out[i], ref[i]), "%s b%zu h%zu s%zu d%zu [%zu]: %a vs scalar %a", qc_isa_name(isa), batch,
                  heads, seq, depth, i, out[i], ref[i]);
        }
    }
    free(q);
    free(k);
    free(mask);
    free(ref);
    free(out);
    return h;
}

/* Padding at the end of every sequence: the live count is the longest sequence. */
static void test_live_keys(void) {
    enum { B = 2, H = 3, S = 24, D = 8 };
    static float q[B * S * H * D], k[B * S * H * D], mask[B * S], y[B * H * S * S];
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        q[i] = rng_sym(2.0f);
        k[i] = rng_sym(2.0f);
    }
    const size_t lengths[B] = {9, 13};
    for (size_t b = 0; b < B; b++) {
        for (size_t j = 0; j < S; j++) {
            mask[b * S + j] = j < lengths[b] ? 0.0f : -3.4028235e38f;
        }
    }
    const int64_t qs[4] = {S * H * D, D, H * D, 1}, ks[4] = {S * H * D, D, 1, H * D}, ms[4] = {S, 0, 0, 1};
    const float scale = 0.35f;
    size_t live = 0;
    CHECK(qc_attention_scores_f32(B, H, S, D, S, q, qs, k, ks, &scale, mask, ms, y, &live, NULL) == QC_OK, "padded");
    CHECK(live == 13, "live keys %zu, expected 13", live);
    mask[S - 1] = -INFINITY; /* unequal padding values: not shown */
    CHECK(qc_attention_scores_f32(B, H, S, D, S, q, qs, k, ks, &scale, mask, ms, y, &live, NULL) == QC_OK, "mixed");
    CHECK(live == S, "mixed padding: live keys %zu, expected %d", live, S);
    mask[S - 1] = -3.4028235e38f;
    q[5] = NAN; /* a NaN query: nothing is skipped, nothing shown */
    CHECK(qc_attention_scores_f32(B, H, S, D, S, q, qs, k, ks, &scale, mask, ms, y, &live, NULL) == QC_OK, "NaN");
    CHECK(live == S, "NaN: live keys %zu", live);
    CHECK(qc_attention_scores_f32(B, H, S, D, S, q, qs, k, ks, &scale, NULL, NULL, y, &live, NULL) == QC_OK, "no mask");
    CHECK(live == S, "no mask: live keys %zu", live);
}

static void test_errors(void) {
    float q[4] = {1, 2, 3, 4}, k[4] = {1, 2, 3, 4}, y[4];
    const int64_t s[4] = {0, 0, 2, 1};
    float inf = INFINITY, nan = NAN;
    qc_options bad = {QC_ISA_COUNT, 1};
    CHECK(qc_attention_scores_f32(1, 1, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, y, NULL, NULL) == QC_OK, "plain");
    CHECK(qc_attention_scores_f32(1, 1, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, y, NULL, &bad) == QC_E_UNSUPPORTED_ISA,
          "bad isa");
    CHECK(qc_attention_scores_f32(1, 1, 2, 2, 2, NULL, s, k, s, NULL, NULL, NULL, y, NULL, NULL) == QC_E_NULL_POINTER,
          "null q");
    CHECK(qc_attention_scores_f32(1, 1, 2, 2, 2, q, NULL, k, s, NULL, NULL, NULL, y, NULL, NULL) == QC_E_NULL_POINTER,
          "null strides");
    CHECK(qc_attention_scores_f32(1, 1, 2, 2, 2, q, s, k, s, NULL, q, NULL, y, NULL, NULL) == QC_E_NULL_POINTER,
          "mask without strides");
    CHECK(qc_attention_scores_f32(1, 1, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, NULL, NULL, NULL) == QC_E_NULL_POINTER,
          "null y");
    CHECK(qc_attention_scores_f32(1, 1, 2, 2, 2, q, s, k, s, &inf, NULL, NULL, y, NULL, NULL) == QC_E_INVALID_ARGUMENT,
          "inf scale");
    CHECK(qc_attention_scores_f32(1, 1, 2, 2, 2, q, s, k, s, &nan, NULL, NULL, y, NULL, NULL) == QC_E_INVALID_ARGUMENT,
          "NaN scale");
    CHECK(qc_attention_scores_f32(0, 1, 2, 2, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) == QC_OK,
          "empty batch");
    CHECK(qc_attention_scores_f32(1, 1, 2, 0, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, y, NULL, NULL) == QC_OK,
          "depth 0");
    CHECK(y[0] == 0.5f && y[3] == 0.5f, "depth 0 is uniform");
    CHECK(qc_attention_scores_f32(SIZE_MAX / 2, 4, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, y, NULL, NULL) ==
              QC_E_OVERFLOW, "overflow");
}

/* The AVX2 max of |x| bits equals the scalar one on every layout and value kind. */
static void test_absmax_bits(void) {
#if defined(QC__BUILD_AVX2)
    if (!(qc_isa_available_mask() & (1u << QC_ISA_AVX2))) {
        return;
    }
    float x[24 * 41];
    static const float specials[] = {0.0f, -0.0f, 1e-45f, -3.4e38f, INFINITY, -INFINITY, NAN, 0x1p100f};
    for (int trial = 0; trial < 400; trial++) {
        for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
            x[i] = rng_sym(trial % 3 ? 5.0f : 1e30f);
        }
        if (trial % 2) {
            x[(size_t)rng_range(0, (int32_t)(sizeof x / sizeof x[0]) - 1)] = specials[trial / 2 % 8];
        }
        size_t rows = (size_t)rng_range(0, 24), cols = (size_t)rng_range(0, 20);
        int64_t cs = trial % 5 == 0 ? 2 : 1, rs = (int64_t)cols * cs + (trial % 7);
        if ((size_t)rs * (rows > 0 ? rows - 1 : 0) + (size_t)cs * cols > sizeof x / sizeof x[0]) {
            continue;
        }
        CHECK(qc_f32_absmax_bits_ukernel__avx2(x, rows, rs, cols, cs) ==
                  qc_f32_absmax_bits_ukernel__scalar(x, rows, rs, cols, cs),
              "absmax bits rows %zu cols %zu rs %lld cs %lld", rows, cols, (long long)rs, (long long)cs);
    }
#endif
}

int main(void) {
    printf("isas:");
    for (int i = 0; i < QC_ISA_COUNT; i++) {
        if (qc_isa_available_mask() & (1u << i)) {
            printf(" %s", qc_isa_name(i));
        }
    }
    printf("\n");
    rng_seed(20261126);
    static const size_t shapes[][4] = {{1, 12, 128, 32}, {2, 3, 7, 5}, {1, 2, 17, 8}, {3, 1, 1, 1},
                                       {1, 4, 33, 16},  {2, 2, 9, 40}, {1, 1, 64, 3}};
    uint64_t h = FNV_INIT;
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        for (int variant = 0; variant < 4; variant++) {
            h = run_case(h, shapes[c][0], shapes[c][1], shapes[c][2], shapes[c][3], variant & 1, variant & 2 ? 1 : 0,
                         0);
        }
        h = run_case(h, shapes[c][0], shapes[c][1], shapes[c][2], shapes[c][3], 1, 1, 1);
    }
    printf("checksum attention %016" PRIx64 "\n", h);
    test_live_keys();
    test_errors();
    test_absmax_bits();
    printf("test_attention: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
