/*
 * float32 attention scores (qcore_attention.h): every ISA path this CPU runs is compared
 * bit for bit with the scalar path on random inputs read through transposed, broadcast
 * and strided views, with and without scale and mask, on sizes that leave tails in rows
 * and columns, and on special values (NaN, +-inf, fully masked rows, zeros); the scalar
 * path is checked against a double-precision softmax; bad arguments return the documented
 * statuses.
 *
 * qc_attention_f32 (scores times V in one call) the same way: q, k and v read as views of
 * one fused projection, y written through strides (the transposed (b, i, h, e) layout the
 * heads are joined in, with gaps that must stay untouched), padded and unpadded, rows
 * over several scratch chunks, vdepth with AVX2 tails, special values; the scalar path is
 * checked bit for bit against qc_attention_scores_f32's probabilities times V summed in
 * the documented order, and against double precision.
 *
 * Prints the available ISAs, the "checksum attention <hex>" and "checksum
 * attention_context <hex>" lines (FNV-1a of the scalar outputs on fixed inputs, compared
 * with runs on other architectures) and a one-line summary. Exit status 0 when every
 * check passed.
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

/* A float into the checksum, every NaN as one quiet NaN (payloads are not portable). */
static uint64_t fnv_float(uint64_t h, float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if (isnan(x)) {
        bits = 0x7FC00000u;
    }
    return fnv(h, &bits, sizeof bits);
}

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
        h = fnv_float(h, ref[i]);
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

/* ---------------------------------------------------------------------------------------
 * qc_attention_f32: softmax(scale * (Q K) + mask) V
 * ------------------------------------------------------------------------------------- */

enum { CTX_MASK_NONE = 0, CTX_MASK_PADDING = 1, CTX_MASK_ROWS = 2 };
enum { CTX_Y_JOINED = 0, CTX_Y_TRANSPOSED = 1 };
enum { CTX_PLAIN = 0, CTX_SPECIAL = 1, CTX_MIXED = 2 };

static const float CTX_SENTINEL = 12345.0f;

/* One case of qc_attention_f32. q, k and v are views of one fused projection x (batch,
 * max(rows, cols), 2 * heads * depth + heads * vdepth), the way an exported encoder holds
 * them: q (b, h, i, d), k (b, h, d, j) and v (b, h, j, e); with v_own, v is instead read
 * from its own (b, h, e, j) storage (last-axis stride cols: packed by the C code). y is
 * written through strides: y_layout CTX_Y_JOINED is (b, i, h, e) storage with one gap
 * float after each head's vdepth values, CTX_Y_TRANSPOSED is (b, h, e, i) storage (a
 * last-axis stride of rows). The mask is none, padding (the same for every row: the last
 * keys of batch b at -FLT_MAX, broadcast over heads and rows) or one per row. special:
 * CTX_SPECIAL puts NaN / inf / huge values in q and in padded and live values;
 * CTX_MIXED makes one row per block's live scores -inf (live keys with a huge k) so that
 * its padding is not +0 while the other rows of the block take the padded fast path.
 * Returns h with the scalar result folded in (NaN canonical). */
static uint64_t run_context_case(uint64_t h, size_t batch, size_t heads, size_t rows, size_t cols, size_t depth,
                                 size_t vdepth, int use_scale, int mask_kind, int y_layout, int v_own, int special) {
    const size_t seq = rows > cols ? rows : cols, hd = heads * depth, width = 2 * hd + heads * vdepth;
    const size_t n_x = batch * seq * width + 1;
    float *x = malloc(n_x * sizeof(float));
    float *vown = malloc((batch * heads * vdepth * cols + 1) * sizeof(float));
    float *mask = malloc((batch * rows * cols + 1) * sizeof(float));
    const size_t n_y = y_layout == CTX_Y_JOINED ? batch * rows * heads * (vdepth + 1) : batch * heads * vdepth * rows;
    float *ref = malloc((n_y + 1) * sizeof(float)), *out = malloc((n_y + 1) * sizeof(float));
    float *p = malloc((batch * heads * rows * cols + 1) * sizeof(float));
    size_t *length = malloc(batch * sizeof(size_t));
    for (size_t i = 0; i < n_x; i++) {
        x[i] = rng_sym(3.0f);
    }
    const int64_t qs[4] = {(int64_t)(seq * width), (int64_t)depth, (int64_t)width, 1};
    const int64_t ks[4] = {(int64_t)(seq * width), (int64_t)depth, 1, (int64_t)width};
    const float *q = x, *k = x + hd;
    const float *v = x + 2 * hd;
    int64_t vs[4] = {(int64_t)(seq * width), (int64_t)vdepth, (int64_t)width, 1};
    if (v_own) {
        vs[0] = (int64_t)(heads * vdepth * cols);
        vs[1] = (int64_t)(vdepth * cols);
        vs[2] = 1;
        vs[3] = (int64_t)cols;
        v = vown;
    }
#define CTX_Q(b, hh, i, d) x[(b) * qs[0] + (hh) * qs[1] + (i) * qs[2] + (d)]
#define CTX_K(b, hh, d, j) x[hd + (b) * ks[0] + (hh) * ks[1] + (d) + (j) * ks[3]]
#define CTX_V(b, hh, j, e) (v_own ? vown : x + 2 * hd)[(b) * vs[0] + (hh) * vs[1] + (j) * vs[2] + (e) * vs[3]]
    for (size_t i = 0; i < batch * heads * vdepth * cols + 1; i++) {
        vown[i] = rng_sym(2.0f);
    }
    for (size_t b = 0; b < batch; b++) {
        length[b] = cols > 1 + 3 * b ? cols - 1 - 3 * b : 0; /* batch 0: one padded key */
    }
    int64_t ms[4] = {(int64_t)cols, 0, 0, 1};
    if (mask_kind == CTX_MASK_PADDING) {
        for (size_t b = 0; b < batch; b++) {
            for (size_t j = 0; j < cols; j++) {
                mask[b * cols + j] = j < length[b] ? 0.0f : -3.4028235e38f;
            }
        }
    } else if (mask_kind == CTX_MASK_ROWS) {
        ms[0] = (int64_t)(rows * cols);
        ms[2] = (int64_t)cols;
        for (size_t i = 0; i < batch * rows * cols; i++) {
            mask[i] = rng_next() % 3 == 0 ? -3.4028235e38f : rng_sym(4.0f);
        }
    }
    if (special == CTX_SPECIAL && rows > 2 && cols > 3 && depth > 1) {
        CTX_Q(0, 0, 0, 1) = NAN;                       /* a NaN query row */
        CTX_Q(0, 0, 1, 0) = 3e38f;                     /* products overflow */
        CTX_V(0, heads - 1, cols - 1, vdepth - 1) = NAN; /* a padded NaN value: never skipped */
        CTX_V(batch - 1, 0, cols - 1, 0) = INFINITY;   /* a padded inf value */
        CTX_V(0, 0, 1, 0) = -INFINITY;                 /* a live inf value */
        CTX_V(batch - 1, heads - 1, 0, 0) = 3e38f;     /* huge values: sums overflow */
        CTX_V(batch - 1, heads - 1, 1, 0) = 3e38f;
        CTX_V(0, heads - 1, cols - 2, 0) = 3e38f;      /* a huge padded value: skipped */
        CTX_K(0, 0, 0, 2) = 1e-45f;                    /* a denormal */
    }
    if (special == CTX_MIXED && depth > 0) {
        for (size_t b = 0; b < batch; b++) {
            for (size_t hh = 0; hh < heads; hh++) {
                for (size_t i = 0; i < rows; i++) { /* q[., 0] = 0 except one row in each block of 4 */
                    CTX_Q(b, hh, i, 0) = i % 4 == (b + hh) % 4 ? 1e25f : 0.0f;
                }
                for (size_t j = 0; j < length[b]; j++) { /* live keys only: 1e25 * -1e20 = -inf */
                    CTX_K(b, hh, 0, j) = -1e20f;
                }
            }
        }
    }
    int64_t ys[4];
    if (y_layout == CTX_Y_JOINED) {
        const int64_t e1 = (int64_t)vdepth + 1;
        ys[0] = (int64_t)rows * (int64_t)heads * e1;
        ys[1] = e1;
        ys[2] = (int64_t)heads * e1;
        ys[3] = 1;
    } else {
        ys[0] = (int64_t)(heads * vdepth * rows);
        ys[1] = (int64_t)(vdepth * rows);
        ys[2] = 1;
        ys[3] = (int64_t)rows;
    }
    const float scale = 0.17677669f;
    const float *sp = use_scale ? &scale : NULL;
    const float *mp = mask_kind != CTX_MASK_NONE ? mask : NULL;
    const int64_t *msp = mask_kind != CTX_MASK_NONE ? ms : NULL;
    qc_options scalar = {QC_ISA_SCALAR, 1};
    for (size_t i = 0; i <= n_y; i++) {
        ref[i] = CTX_SENTINEL;
    }
    CHECK(qc_attention_f32(batch, heads, rows, depth, cols, vdepth, q, qs, k, ks, sp, mp, msp, v, vs, ref, ys,
                           &scalar) == QC_OK,
          "context scalar run");
    /* the contract: the probabilities (qc_attention_scores_f32), then c = +0; c = c + p * v
     * in increasing j, every operation rounded to float32. A padding mask is given to it as
     * one row per query row (not the same for every row: nothing skipped, whole-row softmax),
     * so the padded keys' shortcuts are checked against the plain computation. */
    float *mask_rows = malloc((batch * rows * cols + 1) * sizeof(float));
    const int64_t mrs[4] = {(int64_t)(rows * cols), 0, (int64_t)cols, 1};
    const float *mp_plain = mp;
    const int64_t *msp_plain = msp;
    if (mask_kind == CTX_MASK_PADDING) {
        for (size_t b = 0; b < batch; b++) {
            for (size_t i = 0; i < rows; i++) {
                memcpy(mask_rows + (b * rows + i) * cols, mask + b * cols, cols * sizeof(float));
            }
        }
        mp_plain = mask_rows;
        msp_plain = mrs;
    }
    CHECK(qc_attention_scores_f32(batch, heads, rows, depth, cols, q, qs, k, ks, sp, mp_plain, msp_plain, p, NULL,
                                  &scalar) == QC_OK,
          "context probabilities");
    size_t written = 0;
    double *pd = malloc((cols + 1) * sizeof(double));
    for (size_t b = 0; b < batch; b++) {
        for (size_t hh = 0; hh < heads; hh++) {
            for (size_t i = 0; i < rows; i++) {
                const float *pi = p + ((b * heads + hh) * rows + i) * cols;
                const int check64 = special == CTX_PLAIN; /* double precision: softmax, then the product */
                if (check64) {
                    double m = -INFINITY, sum = 0.0;
                    for (size_t j = 0; j < cols; j++) {
                        double a = 0.0;
                        for (size_t d = 0; d < depth; d++) {
                            a += (double)CTX_Q(b, hh, i, d) * (double)CTX_K(b, hh, d, j);
                        }
                        a *= use_scale ? (double)scale : 1.0;
                        if (mp != NULL) { /* float32 absorbs the score into a mask of -FLT_MAX */
                            const float mv = mask[b * ms[0] + i * ms[2] + j];
                            a = mv <= -1e38f ? (double)mv : a + (double)mv;
                        }
                        pd[j] = a;
                        m = a > m ? a : m;
                    }
                    for (size_t j = 0; j < cols; j++) {
                        pd[j] = exp(pd[j] - m);
                        sum += pd[j];
                    }
                    for (size_t j = 0; j < cols; j++) {
                        pd[j] /= sum;
                    }
                }
                for (size_t e = 0; e < vdepth; e++) {
                    float c = 0.0f;
                    for (size_t j = 0; j < cols; j++) {
                        const float term = pi[j] * CTX_V(b, hh, j, e);
                        c = c + term;
                    }
                    const float got = ref[(int64_t)b * ys[0] + (int64_t)hh * ys[1] + (int64_t)i * ys[2] +
                                          (int64_t)e * ys[3]];
                    written++;
                    CHECK(same_bits(got, c), "context b%zu h%zu i%zu e%zu (%zux%zu, d%zu, e%zu): %a, p * v gives %a", b,
                          hh, i, e, rows, cols, depth, vdepth, got, c);
                    if (check64) {
                        double want = 0.0, mag = 0.0;
                        for (size_t j = 0; j < cols; j++) {
                            want += pd[j] * (double)CTX_V(b, hh, j, e);
                            mag += pd[j] * fabs((double)CTX_V(b, hh, j, e));
                        }
                        CHECK(fabs((double)got - want) <= 3e-5 * mag + 1e-6,
                              "context accuracy b%zu h%zu i%zu e%zu: %g vs %g", b, hh, i, e, (double)got, want);
                    }
                }
            }
        }
    }
    free(pd);
    size_t untouched = 0;
    for (size_t i = 0; i <= n_y; i++) {
        untouched += ref[i] == CTX_SENTINEL;
    }
    CHECK(untouched == n_y + 1 - written, "context wrote %zu floats outside its %zu outputs",
          n_y + 1 - written - untouched, written);
    CHECK(ref[n_y] == CTX_SENTINEL, "context wrote past the end");
    if (special == CTX_MIXED && mask_kind == CTX_MASK_PADDING && depth > 0 && length[0] < cols) {
        /* the -inf row is uniform over the padding of batch 0: the mean of its padded values */
        for (size_t e = 0; e < vdepth; e++) {
            double mean = 0.0;
            for (size_t j = length[0]; j < cols; j++) {
                mean += (double)CTX_V(0, 0, j, e) / (double)(cols - length[0]);
            }
            const float got = ref[(int64_t)e * ys[3]]; /* b 0, h 0, row 0 (the special row) */
            CHECK(fabs((double)got - mean) <= 1e-5, "mixed block: padded row e%zu %g, mean %g", e, (double)got, mean);
        }
    }
    for (size_t b = 0; b < batch; b++) { /* the outputs in (b, h, i, e) order into the checksum */
        for (size_t hh = 0; hh < heads; hh++) {
            for (size_t i = 0; i < rows; i++) {
                for (size_t e = 0; e < vdepth; e++) {
                    h = fnv_float(h, ref[(int64_t)b * ys[0] + (int64_t)hh * ys[1] + (int64_t)i * ys[2] +
                                         (int64_t)e * ys[3]]);
                }
            }
        }
    }
    uint32_t mask_isas = qc_isa_available_mask();
    for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
        if (!(mask_isas & (1u << isa))) {
            continue;
        }
        qc_options o = {isa, 1};
        for (size_t i = 0; i <= n_y; i++) {
            out[i] = CTX_SENTINEL;
        }
        CHECK(qc_attention_f32(batch, heads, rows, depth, cols, vdepth, q, qs, k, ks, sp, mp, msp, v, vs, out, ys,
                               &o) == QC_OK,
              "context %s run", qc_isa_name(isa));
        for (size_t i = 0; i <= n_y; i++) {
            CHECK(same_bits(out[i], ref[i]),
                  "context %s b%zu h%zu %zux%zu d%zu e%zu mask %d y %d v %d special %d [%zu]: %a vs scalar %a",
                  qc_isa_name(isa), batch, heads, rows, cols, depth, vdepth, mask_kind, y_layout, v_own, special, i,
                  out[i], ref[i]);
        }
    }
#undef CTX_Q
#undef CTX_K
#undef CTX_V
    free(x);
    free(vown);
    free(mask);
    free(ref);
    free(out);
    free(p);
    free(length);
    free(mask_rows);
    return h;
}

static void ctx_fill(float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        y[i] = CTX_SENTINEL;
    }
}

static int ctx_untouched(const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!(y[i] == CTX_SENTINEL)) {
            return 0;
        }
    }
    return 1;
}

static void test_context_errors(void) {
    float q[4] = {1, 2, 3, 4}, k[4] = {1, 2, 3, 4}, v[4] = {1, 2, 3, 4}, m[2] = {0, -3.4028235e38f}, y[5];
    const int64_t s[4] = {0, 0, 2, 1}, ms[4] = {0, 0, 0, 1};
    float inf = INFINITY, nan = NAN, one = 1.0f;
    qc_options bad = {QC_ISA_COUNT, 1};
    const uint32_t positive_zero = 0u;
    ctx_fill(y, 5);
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, v, s, y, s, NULL) == QC_OK, "context plain");
    CHECK(y[4] == CTX_SENTINEL && isfinite(y[0]) && isfinite(y[3]), "context plain writes its 4 outputs only");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, v, s, y, s, &bad) == QC_E_UNSUPPORTED_ISA,
          "context bad isa");
    ctx_fill(y, 5);
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, v, s, NULL, s, NULL) == QC_E_NULL_POINTER,
          "context null y");
    CHECK(qc_attention_f32(1, 1, 2, 2, 0, 2, q, s, k, s, NULL, NULL, NULL, v, s, NULL, s, NULL) == QC_E_NULL_POINTER,
          "context null y, cols 0");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, v, s, y, NULL, NULL) == QC_E_NULL_POINTER,
          "context null y strides");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, NULL, s, y, s, NULL) == QC_E_NULL_POINTER,
          "context null v");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, NULL, NULL, NULL, v, NULL, y, s, NULL) == QC_E_NULL_POINTER,
          "context null v strides");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, NULL, s, k, s, NULL, NULL, NULL, v, s, y, s, NULL) == QC_E_NULL_POINTER,
          "context null q");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, NULL, s, NULL, NULL, NULL, v, s, y, s, NULL) == QC_E_NULL_POINTER,
          "context null k");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, NULL, m, NULL, v, s, y, s, NULL) == QC_E_NULL_POINTER,
          "context mask without strides");
    CHECK(ctx_untouched(y, 5), "context: a failing call wrote y");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, &inf, NULL, NULL, v, s, y, s, NULL) == QC_E_INVALID_ARGUMENT,
          "context inf scale");
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, &nan, NULL, NULL, v, s, y, s, NULL) == QC_E_INVALID_ARGUMENT,
          "context NaN scale");
    float minus_inf = -INFINITY;
    CHECK(qc_attention_f32(1, 1, 2, 2, 2, 2, q, s, k, s, &minus_inf, NULL, NULL, v, s, y, s, NULL) ==
              QC_E_INVALID_ARGUMENT,
          "context -inf scale");
    CHECK(ctx_untouched(y, 5), "context: a rejected scale wrote y");
    /* a dimension 0 (not depth, not cols): nothing to do, nothing written, NULL pointers fine */
    static const size_t zero_dims[4][4] = {{0, 1, 2, 2}, {1, 0, 2, 2}, {1, 1, 0, 2}, {1, 1, 2, 0}};
    for (size_t c = 0; c < 4; c++) {
        ctx_fill(y, 5);
        CHECK(qc_attention_f32(zero_dims[c][0], zero_dims[c][1], zero_dims[c][2], 2, 2, zero_dims[c][3], q, s, k, s,
                               &one, m, ms, v, s, y, s, NULL) == QC_OK,
              "context zero dimension %zu", c);
        CHECK(ctx_untouched(y, 5), "context zero dimension %zu wrote y", c);
        CHECK(qc_attention_f32(zero_dims[c][0], zero_dims[c][1], zero_dims[c][2], 2, 2, zero_dims[c][3], NULL, NULL,
                               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) == QC_OK,
              "context zero dimension %zu, NULL pointers", c);
    }
    /* cols 0: a sum of no terms, +0 in every output (through y's strides), q, k, v unread */
    const int64_t ys[4] = {0, 0, 1, 3}; /* y[i, e] = y[i + 3 * e]: rows 2, vdepth 2, y[2] a gap */
    ctx_fill(y, 5);
    y[0] = y[1] = y[3] = y[4] = -0.0f;
    CHECK(qc_attention_f32(1, 1, 2, 2, 0, 2, NULL, NULL, NULL, NULL, &one, NULL, NULL, NULL, NULL, y, ys, NULL) ==
              QC_OK,
          "context cols 0");
    CHECK(memcmp(&y[0], &positive_zero, 4) == 0 && memcmp(&y[1], &positive_zero, 4) == 0 &&
              memcmp(&y[3], &positive_zero, 4) == 0 && memcmp(&y[4], &positive_zero, 4) == 0,
          "context cols 0: %a %a %a %a, not +0", y[0], y[1], y[3], y[4]);
    CHECK(y[2] == CTX_SENTINEL, "context cols 0 wrote a gap");
    /* depth 0: every score 0 (uniform probabilities), q and k unread */
    ctx_fill(y, 5);
    CHECK(qc_attention_f32(1, 1, 2, 0, 2, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, v, s, y, s, NULL) == QC_OK,
          "context depth 0");
    CHECK(y[0] == 0.5f * v[0] + 0.5f * v[2] && y[1] == 0.5f * v[1] + 0.5f * v[3] && y[2] == y[0] && y[3] == y[1],
          "context depth 0 is the mean of v: %g %g %g %g", (double)y[0], (double)y[1], (double)y[2], (double)y[3]);
    /* depth 0 with the second key padded: the first key's values */
    CHECK(qc_attention_f32(1, 1, 2, 0, 2, 2, NULL, NULL, NULL, NULL, NULL, m, ms, v, s, y, s, NULL) == QC_OK,
          "context depth 0 padded");
    CHECK(y[0] == v[0] && y[1] == v[1] && y[2] == v[0] && y[3] == v[1], "context depth 0 padded: %g %g %g %g",
          (double)y[0], (double)y[1], (double)y[2], (double)y[3]);
    CHECK(qc_attention_f32(1, 1, 2, SIZE_MAX / 4, 16, 2, q, s, k, s, NULL, NULL, NULL, v, s, y, s, NULL) ==
              QC_E_OVERFLOW,
          "context overflow");
}

/* Padded keys are skipped only when their scores are the mask value: q * k = 1e20 * 1e20
 * overflows to inf before a tiny (or zero) scale multiplies it, so the padded score is
 * inf (or NaN) and the row NaN, in qc_attention_scores_f32 and qc_attention_f32 alike. */
static void test_padding_overflow_before_scale(void) {
    const float q[2] = {1e20f, 1.0f}, k[3] = {1.0f, 1.0f, 1e20f}, mask[3] = {0.0f, 0.0f, -3.4028235e38f};
    const float v[6] = {1, 2, 3, 4, 5, 6};
    const int64_t qs[4] = {0, 0, 1, 1}, ks[4] = {0, 0, 3, 1}, ms[4] = {0, 0, 0, 1}, vs[4] = {0, 0, 2, 1};
    const float scales[2] = {1e-30f, 0.0f};
    uint32_t mask_isas = qc_isa_available_mask();
    for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
        if (!(mask_isas & (1u << isa))) {
            continue;
        }
        qc_options o = {isa, 1};
        for (int c = 0; c < 2; c++) {
            float p[6], y[4];
            CHECK(qc_attention_scores_f32(1, 1, 2, 1, 3, q, qs, k, ks, &scales[c], mask, ms, p, NULL, &o) == QC_OK,
                  "overflow scores");
            CHECK(isnan(p[0]) && isnan(p[1]) && isnan(p[2]), "%s scale %g: row 0 probabilities %g %g %g, not NaN",
                  qc_isa_name(isa), (double)scales[c], (double)p[0], (double)p[1], (double)p[2]);
            CHECK(qc_attention_f32(1, 1, 2, 1, 3, 2, q, qs, k, ks, &scales[c], mask, ms, v, vs, y, vs, &o) == QC_OK,
                  "overflow context");
            CHECK(isnan(y[0]) && isnan(y[1]), "%s scale %g: row 0 context %g %g, not NaN", qc_isa_name(isa),
                  (double)scales[c], (double)y[0], (double)y[1]);
            CHECK(y[2] == 0.5f * v[0] + 0.5f * v[2] && y[3] == 0.5f * v[1] + 0.5f * v[3],
                  "%s scale %g: row 1 context %g %g", qc_isa_name(isa), (double)scales[c], (double)y[2], (double)y[3]);
        }
    }
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
    /* qc_attention_f32: {batch, heads, rows, cols, depth, vdepth} */
    static const size_t ctx_shapes[][6] = {{1, 12, 128, 128, 32, 32}, {2, 3, 7, 7, 5, 13}, {2, 2, 9, 9, 8, 1},
                                           {1, 2, 17, 17, 8, 16},     {2, 1, 6, 6, 4, 19},  {1, 2, 11, 11, 6, 40},
                                           {3, 1, 1, 1, 1, 1},        {1, 2, 300, 40, 8, 13}, {2, 1, 10, 2500, 4, 7},
                                           {1, 1, 5, 1, 3, 9},        {2, 2, 13, 5, 0, 11}};
    uint64_t hc = FNV_INIT;
    for (size_t c = 0; c < sizeof ctx_shapes / sizeof ctx_shapes[0]; c++) {
        const size_t *sh = ctx_shapes[c];
        for (int variant = 0; variant < 6; variant++) {
            /* scale and mask kinds; y joined (transposed heads) or last-axis strided, v fused or own */
            hc = run_context_case(hc, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], variant & 1, variant / 2,
                                  (int)(c + (size_t)variant) % 2 ? CTX_Y_TRANSPOSED : CTX_Y_JOINED, (int)(c % 3 == 2),
                                  CTX_PLAIN);
        }
        hc = run_context_case(hc, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], 1, CTX_MASK_PADDING, CTX_Y_JOINED, 0,
                              CTX_SPECIAL);
        hc = run_context_case(hc, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], 1, CTX_MASK_PADDING, CTX_Y_JOINED,
                              (int)(c % 2), CTX_MIXED);
    }
    printf("checksum attention_context %016" PRIx64 "\n", hc);
    test_live_keys();
    test_errors();
    test_context_errors();
    test_padding_overflow_before_scale();
    test_absmax_bits();
    printf("test_attention: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
