/*
 * Private pieces of the int8 GEMM: the packed-B layout, the microkernel signature and the
 * per-ISA kernels (docs/KERNELS.md describes the layouts).
 *
 * Every kernel computes one full MR x NR tile of raw products sum_k A'[m, k] * B'[k, n]
 * of signed bytes (A' and B' are the inputs with 128 subtracted when unsigned), wrapping
 * modulo 2^32; gemm.c applies the zero-point correction and the epilogue.
 */
#ifndef QCORE_GEMM_INTERNAL_H
#define QCORE_GEMM_INTERNAL_H

#include "internal.h"

/* Columns per packed B panel and k values per group (the "c4" of the kernel names). */
#define QC__GEMM_NR 8
#define QC__GEMM_KG 4
#define QC__GEMM_MR_MAX 8

/* Packed B: this header, then column sums (np int32), effective zero points (np int32),
 * then np / NR panels, each kp / KG groups of NR x KG signed bytes:
 * group g of panel p holds B'[4g + j, 8p + c] at byte c * 4 + j. */
#define QC__PACKED_MAGIC 0x42504351u /* "QCPB" */
#define QC__PACKED_VERSION 1u
#define QC__PACKED_HEADER 64u

typedef struct qc__packed_header {
    uint32_t magic;
    uint32_t version;
    uint64_t k;
    uint64_t n;
    uint64_t kp; /* k rounded up to a multiple of QC__GEMM_KG */
    uint64_t np; /* n rounded up to a multiple of QC__GEMM_NR */
    uint64_t panels_offset;
    uint64_t size;
} qc__packed_header;

/* A packed for one kernel: for each block of MR rows, kp / KG groups of MR x KG values
 * (group g of block b holds A'[b * MR + r, 4g + j] at element r * 4 + j), as int8 or int16
 * per the kernel's a_elem_size. Rows past M and k past K are zero. A kernel computes at
 * least the first `rows` (1..MR) rows of the tile; the others may be left unwritten. */
typedef void (*qc__gemm_ukernel_fn)(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile);

/* The zero-point correction of one tile row for int32 output (docs/KERNELS.md):
 * c[j] = raw[j] - zb[j] * rs - za * colsum[j] for j < cols (uint32 arithmetic), with
 * rs = rowsum - K * za already folded. NULL in a ukernel means the generic C loop. */
typedef void (*qc__gemm_finish_fn)(const int32_t *raw, const int32_t *zb, const int32_t *colsum, uint32_t rs,
                                   uint32_t za, int32_t *c, size_t cols);

/* The same row with the requantization epilogue (qc_gemm_requant_params): writes `cols`
 * bytes of output row `row` starting at column col0 to y. */
typedef void (*qc__gemm_finish_requant_fn)(const int32_t *raw, const int32_t *zb, const int32_t *colsum,
                                           uint32_t rs, uint32_t za, const qc_gemm_requant_params *rq,
                                           size_t row, size_t col0, size_t cols, void *y);

/* A kernel that writes its `rows` x NR tile of raw sums straight into C (row stride
 * c_stride int32 values), for when no correction is left to apply. b_resident: the panel
 * is reused by several row blocks and stays in L1 (no software prefetch needed). */
typedef void (*qc__gemm_store_fn)(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                  int32_t *c, size_t c_stride, int b_resident);

/* Packs A for an int16 kernel, centred: rows [0, m) of A' - center[row] into blocks of mr
 * rows (layout above, rows past m zero), with each row's sum of the packed values. */
typedef void (*qc__gemm_pack_a_fn)(size_t m, size_t k, size_t kp, const uint8_t *a, size_t a_stride, uint8_t flip,
                                   const int32_t *center, size_t mr, int16_t *out, int32_t *rowsum);

typedef struct qc__gemm_ukernel {
    qc__gemm_ukernel_fn fn;
    unsigned mr;
    unsigned a_elem_size;
    qc__gemm_finish_fn finish_s32;
    qc__gemm_finish_requant_fn finish_requant;
    /* Non-NULL: the kernel takes A centred (A' - za' = A - za, int16 in [-255, 255]) and
     * may store directly; gemm.c then drops the column-sum term of the correction. */
    qc__gemm_store_fn store;
    qc__gemm_pack_a_fn pack_a_centered; /* NULL: the generic C loop */
} qc__gemm_ukernel;

/* A packed by its caller, for callers that produce A themselves (the dynamic linear layer
 * quantizes float rows straight into it): qc__gemm_centered_s16_mr(isa) is the block
 * height MR of the ISA's centred int16 layout (the layout above with int16 elements,
 * holding A - za: rows past M and k past K zero, kp = K rounded up to KG), or 0 when the
 * ISA's kernel does not take A that way. qc__gemm_packed_centered_s32 then computes
 * C = (A - za) (B - zb) in int32 (wrapping) from that A (ceil(M / MR) blocks of MR x kp
 * values) and its row sums sum_k (A - za) (m values, wrapping), on `threads` threads
 * (1..256) with the ISA's kernel: the same bits as qc_gemm_packed_s32 on the uint8 rows
 * with per-row zero points. */
size_t qc__gemm_centered_s16_mr(int isa);
qc_status qc__gemm_packed_centered_s32(size_t m, const int16_t *a_packed, const int32_t *rowsum, const void *packed,
                                       int32_t *c, size_t c_stride, int isa, int threads);

void qc_s8_gemm_ukernel_4x8c4__scalar(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                      int32_t *tile);
#if defined(QC__BUILD_AVX2)
void qc_s8_gemm_ukernel_4x8c4__avx2(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile);
void qc_s8_gemm_ukernel_6x8c4__avx2(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile);
void qc__s8_gemm_6x8c4_store__avx2(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                   int32_t *c, size_t c_stride, int b_resident);
void qc__gemm_pack_a_s16__avx2(size_t m, size_t k, size_t kp, const uint8_t *a, size_t a_stride, uint8_t flip,
                               const int32_t *center, size_t mr, int16_t *out, int32_t *rowsum);
void qc__gemm_finish_s32__avx2(const int32_t *raw, const int32_t *zb, const int32_t *colsum, uint32_t rs,
                               uint32_t za, int32_t *c, size_t cols);
/* Small-M product on an unpacked K x N B (no packing): acc[r][j] = sum_k a16[r][k] * B'[k][j]
 * for r < m (<= 4) and j < n / 16 * 16, with B' = B ^ b_flip as signed bytes and a16 the
 * zero-point-shifted A rows as int16 (|value| <= 255, so vpmaddwd pairs cannot saturate). */
void qc__gemm_direct__avx2(size_t m, size_t n, size_t k, const int16_t *a16, size_t a16_stride, const uint8_t *b,
                           size_t b_stride, uint8_t b_flip, int32_t *acc, size_t acc_stride);
void qc__gemm_finish_requant__avx2(const int32_t *raw, const int32_t *zb, const int32_t *colsum, uint32_t rs,
                                   uint32_t za, const qc_gemm_requant_params *rq, size_t row, size_t col0,
                                   size_t cols, void *y);
#endif
#if defined(QC__BUILD_NEON)
#if defined(__aarch64__)
void qc_s8_gemm_ukernel_2x8c4__neon(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile);
#else
void qc_s8_gemm_ukernel_1x8c4__neon(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                    int32_t *tile);
#endif
#endif
#if defined(QC__BUILD_NEONDOT)
void qc_s8_gemm_ukernel_4x8c4__neondot(size_t rows, size_t kgroups, const void *a_packed, const int8_t *b_panel,
                                       int32_t *tile);
#endif

/* Weight-only int4 GEMM: one call computes rows [m0, m1) x columns [n0, n1) of Y. */
typedef struct qc__w4_args {
    size_t m, n, k;
    const float *a;
    size_t a_stride;
    int w_signed;
    const uint8_t *w;
    size_t w_bytes;
    const float *w_scale;
    const void *w_zero_point;
    size_t block_size;
    const float *bias;
    float *y;
    size_t y_stride;
} qc__w4_args;

typedef void (*qc__w4_fn)(const qc__w4_args *args, size_t m0, size_t m1, size_t n0, size_t n1);

/* Element e of the packed int4 matrix, sign-extended (signed) or not. */
static inline int32_t qc__w4_get(const uint8_t *w, size_t e, int w_signed) {
    int32_t v = (w[e >> 1] >> ((e & 1) * 4)) & 0xF;
    return w_signed ? ((v ^ 8) - 8) : v;
}

static inline int32_t qc__w4_zero_point(const qc__w4_args *args, size_t index) {
    if (args->w_zero_point == NULL) {
        return 0;
    }
    return args->w_signed ? (int32_t)((const int8_t *)args->w_zero_point)[index]
                          : (int32_t)((const uint8_t *)args->w_zero_point)[index];
}

/* W[k, col] dequantized: float32(w - zp) * scale, its block's parameters. */
static inline float qc__w4_value(const qc__w4_args *args, size_t k, size_t col) {
    const size_t p = (k / args->block_size) * args->n + col;
    return (float)(qc__w4_get(args->w, k * args->n + col, args->w_signed) - qc__w4_zero_point(args, p)) *
           args->w_scale[p];
}

void qc_f32_w4_gemm__scalar(const qc__w4_args *args, size_t m0, size_t m1, size_t n0, size_t n1);
#if defined(QC__BUILD_AVX2)
void qc_f32_w4_gemm__avx2(const qc__w4_args *args, size_t m0, size_t m1, size_t n0, size_t n1);
#endif

/* Dequantization of W's rows [k0, k1) x columns [n0, n1) into args->y (row r = k - k0 at
 * args->y + r * args->y_stride, column c - n0): float32(w - zp) * scale (m, a, a_stride
 * and bias are not used). */
typedef void (*qc__w4_dequant_fn)(const qc__w4_args *args, size_t k0, size_t k1, size_t n0, size_t n1);
void qc_f32_w4_dequant__scalar(const qc__w4_args *args, size_t k0, size_t k1, size_t n0, size_t n1);
#if defined(QC__BUILD_AVX2)
void qc_f32_w4_dequant__avx2(const qc__w4_args *args, size_t k0, size_t k1, size_t n0, size_t n1);
#endif
#if defined(QC__BUILD_NEON) && defined(__aarch64__)
void qc_f32_w4_gemm__neon(const qc__w4_args *args, size_t m0, size_t m1, size_t n0, size_t n1);
#endif

#endif /* QCORE_GEMM_INTERNAL_H */
