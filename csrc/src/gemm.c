/*
 * int8 GEMM entry points: validation, B packing, A packing, the zero-point correction and
 * epilogues, ISA dispatch and threading. The arithmetic (docs/KERNELS.md):
 *
 *   A' = A - oa, B' = B - ob        (oa, ob = 128 for unsigned operands, else 0)
 *   za' = za - oa, zb' = zb - ob    (so that A - za = A' - za' and B - zb = B' - zb')
 *   C = sum_k A'B' - zb' * rowsum(A') - za' * colsum(B') + K * za' * zb'
 *
 * evaluated in uint32 arithmetic, which equals the int32 wrap-around of the exact result
 * for every input value. Kernels compute only sum_k A'B' on signed bytes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"
#include "requant.h"

/* ---------------------------------------------------------------- validation helpers */

static int qc__type_is_8bit(int type) { return type == QC_GEMM_U8 || type == QC_GEMM_S8; }

static void qc__type_range(int type, int32_t *lo, int32_t *hi) {
    if (type == QC_GEMM_U8) {
        *lo = 0;
        *hi = 255;
    } else if (type == QC_GEMM_S8) {
        *lo = -128;
        *hi = 127;
    } else if (type == QC_GEMM_U4) {
        *lo = 0;
        *hi = 15;
    } else {
        *lo = -8;
        *hi = 7;
    }
}

static qc_status qc__check_zero_points(int type, const int32_t *zp, size_t count, size_t per_count) {
    if (count == 0) {
        return QC_OK;
    }
    if (count != 1 && count != per_count) {
        return QC_E_SHAPE;
    }
    if (zp == NULL) {
        return QC_E_NULL_POINTER;
    }
    int32_t lo, hi;
    qc__type_range(type, &lo, &hi);
    for (size_t i = 0; i < count; i++) {
        if (zp[i] < lo || zp[i] > hi) {
            return QC_E_ZERO_POINT;
        }
    }
    return QC_OK;
}

static size_t qc__round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

/* ---------------------------------------------------------------------- packing of B */

qc_status qc_gemm_packed_size(size_t k, size_t n, size_t *size_out) {
    if (size_out == NULL) {
        return QC_E_NULL_POINTER;
    }
    size_t kp, np, panel_bytes, sums, total;
    if (qc__add_size(k, QC__GEMM_KG - 1, &kp) || qc__add_size(n, QC__GEMM_NR - 1, &np)) {
        return QC_E_OVERFLOW;
    }
    kp = kp / QC__GEMM_KG * QC__GEMM_KG;
    np = np / QC__GEMM_NR * QC__GEMM_NR;
    if (qc__mul_size(kp, np, &panel_bytes) || qc__mul_size(np, 2 * sizeof(int32_t), &sums) ||
        qc__add_size(sums, QC__PACKED_HEADER + 63, &total)) {
        return QC_E_OVERFLOW;
    }
    total = total / 64 * 64;
    if (qc__add_size(total, panel_bytes, &total)) {
        return QC_E_OVERFLOW;
    }
    *size_out = total;
    return QC_OK;
}

static const qc__packed_header *qc__packed_view(const void *packed) {
    if (packed == NULL || ((uintptr_t)packed & 15u) != 0) {
        return NULL;
    }
    const qc__packed_header *h = (const qc__packed_header *)packed;
    if (h->magic != QC__PACKED_MAGIC || h->version != QC__PACKED_VERSION) {
        return NULL;
    }
    return h;
}

qc_status qc_gemm_packed_dims(const void *packed, size_t *k_out, size_t *n_out) {
    if (packed == NULL || k_out == NULL || n_out == NULL) {
        return QC_E_NULL_POINTER;
    }
    const qc__packed_header *h = qc__packed_view(packed);
    if (h == NULL) {
        return QC_E_INVALID_ARGUMENT;
    }
    *k_out = (size_t)h->k;
    *n_out = (size_t)h->n;
    return QC_OK;
}

qc_status qc_gemm_pack_b(size_t k, size_t n, int b_type, int b_layout, const void *b, size_t b_stride,
                         const int32_t *b_zero_point, size_t b_zero_point_count, void *packed,
                         size_t packed_size, const qc_options *options) {
    int isa, threads;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (!qc__type_is_8bit(b_type)) {
        return QC_E_DTYPE;
    }
    if (b_layout != QC_GEMM_B_KN && b_layout != QC_GEMM_B_NK) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (packed == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (((uintptr_t)packed & 15u) != 0) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (k > 0 && n > 0) {
        if (b == NULL) {
            return QC_E_NULL_POINTER;
        }
        if (b_stride < (b_layout == QC_GEMM_B_KN ? n : k)) {
            return QC_E_SHAPE;
        }
    }
    QC__TRY(qc__check_zero_points(b_type, b_zero_point, b_zero_point_count, n));
    size_t need;
    QC__TRY(qc_gemm_packed_size(k, n, &need));
    if (packed_size < need) {
        return QC_E_SHAPE;
    }

    size_t kp = qc__round_up(k, QC__GEMM_KG), np = qc__round_up(n, QC__GEMM_NR);
    uint8_t *base = (uint8_t *)packed;
    memset(base, 0, need);
    qc__packed_header h;
    memset(&h, 0, sizeof h);
    h.magic = QC__PACKED_MAGIC;
    h.version = QC__PACKED_VERSION;
    h.k = k;
    h.n = n;
    h.kp = kp;
    h.np = np;
    h.panels_offset = (QC__PACKED_HEADER + np * 2 * sizeof(int32_t) + 63) / 64 * 64;
    h.size = need;
    memcpy(base, &h, sizeof h);

    int32_t *colsum = (int32_t *)(base + QC__PACKED_HEADER);
    int32_t *zb_eff = colsum + np;
    int8_t *panels = (int8_t *)(base + h.panels_offset);
    const uint8_t *bytes = (const uint8_t *)b;
    const uint8_t flip = b_type == QC_GEMM_U8 ? 0x80 : 0x00;
    const int32_t offset = b_type == QC_GEMM_U8 ? 128 : 0;
    const size_t panel_stride = kp * QC__GEMM_NR;
    uint32_t *sums = (uint32_t *)colsum; /* accumulated in place, wrapping */
    if (b_layout == QC_GEMM_B_KN) {
        /* 64 rows at a time, panel by panel: the block's rows stay in L2 while each panel
         * gets its 64 x 8 bytes written in order. (Row by row over the whole width wrote
         * one byte per panel per row, and panel by panel over all of K read one 8-byte
         * piece per row: with power-of-two strides both hit the same few cache sets, and
         * packing 4096 x 4096 took 140-190 ms.) */
        for (size_t k0 = 0; k0 < k; k0 += 64) {
            const size_t k1 = k0 + 64 < k ? k0 + 64 : k;
            for (size_t col0 = 0; col0 < n; col0 += QC__GEMM_NR) {
                const size_t cols = n - col0 < QC__GEMM_NR ? n - col0 : QC__GEMM_NR;
                int8_t *dst = panels + (col0 / QC__GEMM_NR) * panel_stride;
                uint32_t panel_sums[QC__GEMM_NR] = {0};
                for (size_t row = k0; row < k1; row++) {
                    const uint8_t *src = bytes + row * b_stride + col0;
                    int8_t *d = dst + (row / QC__GEMM_KG) * QC__GEMM_NR * QC__GEMM_KG + row % QC__GEMM_KG;
                    for (size_t c = 0; c < cols; c++) {
                        int8_t v = (int8_t)(src[c] ^ flip);
                        d[c * QC__GEMM_KG] = v;
                        panel_sums[c] += (uint32_t)(int32_t)v;
                    }
                }
                for (size_t c = 0; c < cols; c++) {
                    sums[col0 + c] += panel_sums[c];
                }
            }
        }
    } else {
        for (size_t col = 0; col < n; col++) {
            const uint8_t *src = bytes + col * b_stride;
            int8_t *dst = panels + (col / QC__GEMM_NR) * panel_stride + (col % QC__GEMM_NR) * QC__GEMM_KG;
            uint32_t sum = 0;
            for (size_t row = 0; row < k; row++) {
                int8_t v = (int8_t)(src[row] ^ flip);
                dst[(row / QC__GEMM_KG) * QC__GEMM_NR * QC__GEMM_KG + row % QC__GEMM_KG] = v;
                sum += (uint32_t)(int32_t)v;
            }
            sums[col] = sum;
        }
    }
    for (size_t col = 0; col < n; col++) {
        int32_t zb = b_zero_point_count == 0 ? 0 : b_zero_point[b_zero_point_count == 1 ? 0 : col];
        zb_eff[col] = zb - offset;
    }
    return QC_OK;
}

/* ------------------------------------------------------------------------ dispatch */

static qc__gemm_ukernel qc__select_ukernel(int isa) {
    qc__gemm_ukernel uk = {qc_s8_gemm_ukernel_4x8c4__scalar, 4, 1, NULL, NULL, NULL, NULL};
    switch (isa) {
#if defined(QC__BUILD_AVX2)
    case QC_ISA_AVX2:
        uk.fn = qc_s8_gemm_ukernel_6x8c4__avx2;
        uk.mr = 6;
        uk.a_elem_size = 2;
        uk.finish_s32 = qc__gemm_finish_s32__avx2;
        uk.finish_requant = qc__gemm_finish_requant__avx2;
        uk.store = qc__s8_gemm_6x8c4_store__avx2;
        uk.pack_a_centered = qc__gemm_pack_a_s16__avx2;
        break;
#endif
#if defined(QC__BUILD_NEON)
    case QC_ISA_NEON:
#if defined(__aarch64__)
        uk.fn = qc_s8_gemm_ukernel_2x8c4__neon;
        uk.mr = 2;
#else
        uk.fn = qc_s8_gemm_ukernel_1x8c4__neon;
        uk.mr = 1;
#endif
        uk.a_elem_size = 1;
        break;
#endif
#if defined(QC__BUILD_NEONDOT)
    case QC_ISA_NEONDOT:
    case QC_ISA_I8MM: /* no i8mm kernel yet: the dotprod kernel runs on every i8mm CPU */
        uk.fn = qc_s8_gemm_ukernel_4x8c4__neondot;
        uk.mr = 4;
        uk.a_elem_size = 1;
        break;
#endif
    default:
        break;
    }
    return uk;
}

/* ------------------------------------------------------------------- the GEMM driver */

typedef struct qc__gemm_job {
    size_t m, k, n, kp, np;
    qc__gemm_ukernel uk;
    const uint8_t *a_packed;   /* per kernel layout */
    const int32_t *rowsum;     /* m values: sum_k A' */
    const int32_t *a_zp;       /* NULL, one value or m values of za' */
    size_t a_zp_count;
    int32_t a_zp_single;
    const int32_t *colsum;     /* np values */
    const int32_t *zb_eff;     /* np values */
    const int8_t *panels;
    int a_centered;            /* A packed as A - za (uk.store kernels): no colsum term */
    int zb_all_zero;           /* every zb' is 0: with a_centered, C = raw */
    /* output: int32, or requantized bytes */
    int32_t *c;
    size_t c_stride;
    const qc_gemm_requant_params *rq;
    void *y;
    size_t y_stride;
} qc__gemm_job;

/* Packs rows of A into the kernel's layout (A' = A ^ flip as signed bytes, widened to the
 * kernel's element size) and records each row's sum of the packed values (wrapping). With
 * `center` (int16 layouts only), row r is packed as A' - center[r] (A - za, in [-255, 255]),
 * so the product needs no column-sum correction (docs/KERNELS.md). */
#define QC__PACK_A_ROW(T)                                                                    \
    do {                                                                                     \
        T *dst = (T *)out + blk * block_elems + r * QC__GEMM_KG;                             \
        const size_t step = mr * QC__GEMM_KG;                                                \
        if (row < m) {                                                                       \
            const uint8_t *src = a + row * a_stride;                                         \
            const int32_t zc = center != NULL ? center[row] : 0;                             \
            size_t full = k / QC__GEMM_KG, g;                                                \
            for (g = 0; g < full; g++) {                                                     \
                for (size_t j = 0; j < QC__GEMM_KG; j++) {                                   \
                    int32_t v = (int32_t)(int8_t)(src[g * QC__GEMM_KG + j] ^ flip) - zc;     \
                    dst[g * step + j] = (T)v;                                                \
                    sum += (uint32_t)v;                                                      \
                }                                                                            \
            }                                                                                \
            if (g < kp / QC__GEMM_KG) {                                                      \
                for (size_t j = 0; j < QC__GEMM_KG; j++) {                                   \
                    size_t kk = g * QC__GEMM_KG + j;                                         \
                    int32_t v = kk < k ? (int32_t)(int8_t)(src[kk] ^ flip) - zc : 0;         \
                    dst[g * step + j] = (T)v;                                                \
                    sum += (uint32_t)v;                                                      \
                }                                                                            \
            }                                                                                \
            rowsum[row] = (int32_t)sum;                                                      \
        } else {                                                                             \
            for (size_t g = 0; g < kp / QC__GEMM_KG; g++) {                                  \
                for (size_t j = 0; j < QC__GEMM_KG; j++) {                                   \
                    dst[g * step + j] = 0;                                                   \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    } while (0)

static void qc__pack_a(size_t m, size_t k, size_t kp, const uint8_t *a, size_t a_stride, uint8_t flip,
                       const int32_t *center, const qc__gemm_ukernel *uk, void *out, int32_t *rowsum) {
    size_t mr = uk->mr;
    size_t blocks = (m + mr - 1) / mr;
    size_t block_elems = mr * kp;
    for (size_t blk = 0; blk < blocks; blk++) {
        for (size_t r = 0; r < mr; r++) {
            size_t row = blk * mr + r;
            uint32_t sum = 0;
            if (uk->a_elem_size == 1) {
                QC__PACK_A_ROW(int8_t);
            } else {
                QC__PACK_A_ROW(int16_t);
            }
        }
    }
}

/* Corrects raw sums (rows [row0, row0 + rows) x columns [col0, col0 + cols), row r at
 * raw + r * raw_stride) and writes them:
 * C = raw - zb' * (rowsum - K * za') - za' * colsum, in uint32 arithmetic. */
static void qc__gemm_finish_tile(const qc__gemm_job *job, const int32_t *tile, size_t raw_stride, size_t row0,
                                 size_t rows, size_t col0, size_t cols) {
    const uint32_t kk = (uint32_t)job->k;
    const uint32_t *zb = (const uint32_t *)job->zb_eff + col0;
    const uint32_t *cs = (const uint32_t *)job->colsum + col0;
    for (size_t r = 0; r < rows; r++) {
        size_t row = row0 + r;
        uint32_t za = (uint32_t)(job->a_zp == NULL ? job->a_zp_single
                                                   : job->a_zp[job->a_zp_count == 1 ? 0 : row]);
        if (job->a_centered) {
            za = 0; /* A was packed as A - za: rowsum is already sum(A - za) */
        }
        uint32_t rs = (uint32_t)job->rowsum[row] - kk * za;
        if (job->rq == NULL && job->uk.finish_s32 != NULL) {
            job->uk.finish_s32(tile + r * raw_stride, (const int32_t *)zb, (const int32_t *)cs, rs, za,
                               job->c + row * job->c_stride + col0, cols);
            continue;
        }
        const uint32_t *raw = (const uint32_t *)tile + r * raw_stride;
        uint32_t v[QC__GEMM_NR];
        for (size_t c = 0; c < QC__GEMM_NR; c++) {
            v[c] = raw[c] - zb[c] * rs - za * cs[c];
        }
        if (job->rq == NULL) {
            int32_t *dst = job->c + row * job->c_stride + col0;
            if (cols == QC__GEMM_NR) {
                memcpy(dst, v, sizeof v);
            } else {
                memcpy(dst, v, cols * sizeof(int32_t));
            }
            continue;
        }
        const qc_gemm_requant_params *rq = job->rq;
        if (job->uk.finish_requant != NULL) {
            size_t out_size = rq->output_type == QC_GEMM_U8 ? sizeof(uint8_t) : sizeof(int8_t);
            job->uk.finish_requant(tile + r * raw_stride, (const int32_t *)zb, (const int32_t *)cs, rs, za, rq, row,
                                   col0, cols, (uint8_t *)job->y + (row * job->y_stride + col0) * out_size);
            continue;
        }
        for (size_t c = 0; c < cols; c++) {
            size_t col = col0 + c;
            uint32_t acc = v[c] + (rq->bias != NULL ? (uint32_t)rq->bias[col] : 0u);
            float mult = rq->multiplier[row * rq->multiplier_row_stride + col * rq->multiplier_col_stride];
            int32_t q = qc__requant_float((int32_t)acc, mult, rq->output_zero_point, rq->clamp_min, rq->clamp_max);
            if (rq->output_type == QC_GEMM_U8) {
                ((uint8_t *)job->y)[row * job->y_stride + col] = (uint8_t)q;
            } else {
                ((int8_t *)job->y)[row * job->y_stride + col] = (int8_t)q;
            }
        }
    }
}

/* The packed-A bytes a chunk of row blocks may take, so that it stays in L2. (Splitting K
 * into passes with int32 partial sums in memory measured no faster on Zen 3.) */
#ifndef QC__GEMM_A_CHUNK_BYTES
#define QC__GEMM_A_CHUNK_BYTES (160u * 1024u)
#endif

/* Computes row blocks [mb0, mb1) x panels [p0, p1). Rows go in chunks whose packed A stays
 * in L2 while every B panel of the range streams past it once; each panel (8 columns x K)
 * stays in L1 for the chunk's row blocks. */
static void qc__gemm_range(const qc__gemm_job *job, size_t mb0, size_t mb1, size_t p0, size_t p1) {
    int32_t tile[QC__GEMM_MR_MAX * QC__GEMM_NR];
    const size_t mr = job->uk.mr;
    const size_t kgroups = job->kp / QC__GEMM_KG;
    const size_t a_block_bytes = mr * job->kp * job->uk.a_elem_size;
    size_t chunk = a_block_bytes == 0 ? mb1 - mb0 : QC__GEMM_A_CHUNK_BYTES / a_block_bytes;
    if (chunk == 0) {
        chunk = 1;
    }
    for (size_t mc = mb0; mc < mb1; mc += chunk) {
        size_t mc_end = mc + chunk < mb1 ? mc + chunk : mb1;
        for (size_t p = p0; p < p1; p++) {
            const int8_t *panel = job->panels + p * job->kp * QC__GEMM_NR;
            size_t col0 = p * QC__GEMM_NR;
            size_t cols = job->n - col0 < QC__GEMM_NR ? job->n - col0 : QC__GEMM_NR;
            /* C = raw exactly: the kernel writes its tile straight into C. */
            const int direct = job->rq == NULL && job->a_centered && job->zb_all_zero && cols == QC__GEMM_NR;
            /* at least 4 row blocks per panel of at most 16 KB: the panel stays in L1 */
            const int b_resident = mc_end - mc >= 4 && job->kp * QC__GEMM_NR <= 16384;
            for (size_t mb = mc; mb < mc_end; mb++) {
                size_t row0 = mb * mr;
                size_t rows = job->m - row0 < mr ? job->m - row0 : mr;
                if (direct) {
                    job->uk.store(rows, kgroups, job->a_packed + mb * a_block_bytes, panel,
                                  job->c + row0 * job->c_stride + col0, job->c_stride, b_resident);
                    continue;
                }
                job->uk.fn(rows, kgroups, job->a_packed + mb * a_block_bytes, panel, tile);
                qc__gemm_finish_tile(job, tile, QC__GEMM_NR, row0, rows, col0, cols);
            }
        }
    }
}

typedef struct qc__gemm_task {
    const qc__gemm_job *job;
    size_t mb0, mb1, p0, p1;
} qc__gemm_task;

static void *qc__gemm_worker(void *arg) {
    const qc__gemm_task *t = (const qc__gemm_task *)arg;
    qc__gemm_range(t->job, t->mb0, t->mb1, t->p0, t->p1);
    return NULL;
}

/* Runs worker(task t) for t = 0..threads-1 (threads <= 256): task 0 on the calling thread,
 * the others on new threads; a thread that cannot be started has its task run by the
 * calling thread, so the result never depends on how many threads started. */
static void qc__run_tasks(void *(*worker)(void *), void *tasks, size_t task_size, int threads) {
    pthread_t ids[256];
    int started[256];
    char *base = (char *)tasks;
    for (int t = 1; t < threads; t++) {
        started[t] = pthread_create(&ids[t], NULL, worker, base + (size_t)t * task_size) == 0;
    }
    worker(base);
    for (int t = 1; t < threads; t++) {
        if (started[t]) {
            pthread_join(ids[t], NULL);
        } else {
            worker(base + (size_t)t * task_size);
        }
    }
}

/* Splits the work over `threads` (columns when there are enough panels, else rows). A
 * thread that cannot be started has its share run by the calling thread: the result does
 * not depend on how the work is split. */
static void qc__gemm_run(const qc__gemm_job *job, int threads) {
    size_t mblocks = (job->m + job->uk.mr - 1) / job->uk.mr;
    size_t panels = job->np / QC__GEMM_NR;
    /* Below about 2^21 multiply-adds, starting a thread costs more than it saves. */
    double work = (double)job->m * (double)job->n * (double)(job->k + 1);
    if (threads <= 1 || work < 2097152.0) {
        qc__gemm_range(job, 0, mblocks, 0, panels);
        return;
    }
    int split_rows = panels < (size_t)threads * 4 && mblocks > panels;
    size_t units = split_rows ? mblocks : panels;
    if ((size_t)threads > units) {
        threads = (int)units;
    }
    if (threads <= 1) {
        qc__gemm_range(job, 0, mblocks, 0, panels);
        return;
    }
    qc__gemm_task tasks[256];
    for (int t = 0; t < threads; t++) {
        size_t u0 = units * (size_t)t / (size_t)threads, u1 = units * (size_t)(t + 1) / (size_t)threads;
        tasks[t].job = job;
        tasks[t].mb0 = split_rows ? u0 : 0;
        tasks[t].mb1 = split_rows ? u1 : mblocks;
        tasks[t].p0 = split_rows ? 0 : u0;
        tasks[t].p1 = split_rows ? panels : u1;
    }
    qc__run_tasks(qc__gemm_worker, tasks, sizeof tasks[0], threads);
}

static qc_status qc__check_requant(size_t m, size_t n, const qc_gemm_requant_params *rq, const void *y,
                                   size_t y_stride) {
    if (rq == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (!qc__type_is_8bit(rq->output_type)) {
        return QC_E_DTYPE;
    }
    int32_t lo, hi;
    qc__type_range(rq->output_type, &lo, &hi);
    if (rq->output_zero_point < lo || rq->output_zero_point > hi) {
        return QC_E_ZERO_POINT;
    }
    if (rq->clamp_min < lo || rq->clamp_max > hi || rq->clamp_min > rq->clamp_max) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (m == 0 || n == 0) {
        return QC_OK;
    }
    if (y == NULL || rq->multiplier == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (y_stride < n) {
        return QC_E_SHAPE;
    }
    size_t rows = rq->multiplier_row_stride == 0 ? 1 : m;
    size_t cols = rq->multiplier_col_stride == 0 ? 1 : n;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            float v = rq->multiplier[r * rq->multiplier_row_stride + c * rq->multiplier_col_stride];
            if (!(v >= 0.0f) || v > 3.402823466e38f) {
                return QC_E_SCALE;
            }
        }
    }
    return QC_OK;
}

/* The job of m rows of A against the packed B behind h (already validated): the ISA's
 * kernel, sizes, views into the packed buffer, outputs; A and its row sums are set by the
 * caller. */
static void qc__gemm_job_init(qc__gemm_job *job, int isa, size_t m, const qc__packed_header *h, int32_t *c,
                              size_t c_stride, const qc_gemm_requant_params *rq, void *y, size_t y_stride) {
    memset(job, 0, sizeof *job);
    job->uk = qc__select_ukernel(isa);
    job->m = m;
    job->k = (size_t)h->k;
    job->n = (size_t)h->n;
    job->kp = (size_t)h->kp;
    job->np = (size_t)h->np;
    const uint8_t *base = (const uint8_t *)h;
    job->colsum = (const int32_t *)(base + QC__PACKED_HEADER);
    job->zb_eff = job->colsum + job->np;
    job->panels = (const int8_t *)(base + h->panels_offset);
    job->c = c;
    job->c_stride = c_stride;
    job->rq = rq;
    job->y = y;
    job->y_stride = y_stride;
    /* Kernels with a direct store take A centred (A - za in int16): C = raw - zb' * rowsum. */
    job->a_centered = job->uk.store != NULL;
    job->zb_all_zero = 1;
    for (size_t j = 0; j < job->n; j++) {
        if (job->zb_eff[j] != 0) {
            job->zb_all_zero = 0;
            break;
        }
    }
}

/* The common path of the four GEMM entry points; B is already packed. */
static qc_status qc__gemm_packed(size_t m, int a_type, const void *a, size_t a_stride,
                                 const int32_t *a_zero_point, size_t a_zero_point_count, const void *packed,
                                 int32_t *c, size_t c_stride, const qc_gemm_requant_params *rq, void *y,
                                 size_t y_stride, const qc_options *options) {
    int isa, threads;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (!qc__type_is_8bit(a_type)) {
        return QC_E_DTYPE;
    }
    if (packed == NULL) {
        return QC_E_NULL_POINTER;
    }
    const qc__packed_header *h = qc__packed_view(packed);
    if (h == NULL) {
        return QC_E_INVALID_ARGUMENT;
    }
    size_t k = (size_t)h->k, n = (size_t)h->n;
    if (m > 0 && k > 0) {
        if (a == NULL) {
            return QC_E_NULL_POINTER;
        }
        if (a_stride < k) {
            return QC_E_SHAPE;
        }
    }
    QC__TRY(qc__check_zero_points(a_type, a_zero_point, a_zero_point_count, m));
    if (rq == NULL) {
        if (m > 0 && n > 0) {
            if (c == NULL) {
                return QC_E_NULL_POINTER;
            }
            if (c_stride < n) {
                return QC_E_SHAPE;
            }
        }
    } else {
        QC__TRY(qc__check_requant(m, n, rq, y, y_stride));
    }
    if (m == 0 || n == 0) {
        return QC_OK;
    }

    qc__gemm_job job;
    qc__gemm_job_init(&job, isa, m, h, c, c_stride, rq, y, y_stride);
    size_t mblocks = (m + job.uk.mr - 1) / job.uk.mr;
    size_t a_bytes, rows_bytes, zp_bytes;
    if (qc__mul_size(mblocks * job.uk.mr, job.kp, &a_bytes) || qc__mul_size(a_bytes, job.uk.a_elem_size, &a_bytes) ||
        qc__mul_size(m, sizeof(int32_t), &rows_bytes) || qc__mul_size(rows_bytes, 2, &zp_bytes)) {
        return QC_E_OVERFLOW;
    }
    /* One allocation: packed A (64-byte aligned), row sums, effective A zero points. */
    uint8_t *scratch = (uint8_t *)aligned_alloc(64, (a_bytes + zp_bytes + 63) / 64 * 64 + 64);
    if (scratch == NULL) {
        return QC_E_NO_MEMORY;
    }
    int32_t *rowsum = (int32_t *)(scratch + a_bytes);
    int32_t *za_eff = rowsum + m;
    uint8_t flip = a_type == QC_GEMM_U8 ? 0x80 : 0x00;
    int32_t offset = a_type == QC_GEMM_U8 ? 128 : 0;
    for (size_t i = 0; i < m; i++) {
        za_eff[i] = (a_zero_point_count == 0 ? 0 : a_zero_point[a_zero_point_count == 1 ? 0 : i]) - offset;
    }
    job.a_zp = za_eff;
    job.a_zp_count = m;
    if (k > 0 && job.a_centered && job.uk.pack_a_centered != NULL) {
        job.uk.pack_a_centered(m, k, job.kp, (const uint8_t *)a, a_stride, flip, za_eff, job.uk.mr,
                               (int16_t *)(void *)scratch, rowsum);
    } else if (k > 0) {
        qc__pack_a(m, k, job.kp, (const uint8_t *)a, a_stride, flip, job.a_centered ? za_eff : NULL, &job.uk,
                   scratch, rowsum);
    } else {
        memset(rowsum, 0, m * sizeof(int32_t));
    }
    job.a_packed = scratch;
    job.rowsum = rowsum;
    qc__gemm_run(&job, threads);
    free(scratch);
    return QC_OK;
}

qc_status qc_gemm_packed_s32(size_t m, int a_type, const void *a, size_t a_stride,
                             const int32_t *a_zero_point, size_t a_zero_point_count, const void *packed,
                             int32_t *c, size_t c_stride, const qc_options *options) {
    return qc__gemm_packed(m, a_type, a, a_stride, a_zero_point, a_zero_point_count, packed, c, c_stride, NULL,
                           NULL, 0, options);
}

qc_status qc_gemm_packed_requant(size_t m, int a_type, const void *a, size_t a_stride,
                                 const int32_t *a_zero_point, size_t a_zero_point_count,
                                 const void *packed, const qc_gemm_requant_params *params, void *y,
                                 size_t y_stride, const qc_options *options) {
    if (params == NULL) {
        return QC_E_NULL_POINTER;
    }
    return qc__gemm_packed(m, a_type, a, a_stride, a_zero_point, a_zero_point_count, packed, NULL, 0, params,
                           y, y_stride, options);
}

/* ------------------------------------------------ A packed by the caller (centred int16) */

size_t qc__gemm_centered_s16_mr(int isa) {
    const qc__gemm_ukernel uk = qc__select_ukernel(isa);
    return uk.store != NULL && uk.a_elem_size == sizeof(int16_t) ? uk.mr : 0;
}

qc_status qc__gemm_packed_centered_s32(size_t m, const int16_t *a_packed, const int32_t *rowsum, const void *packed,
                                       int32_t *c, size_t c_stride, int isa, int threads) {
    const qc__packed_header *h = qc__packed_view(packed);
    if (h == NULL) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (qc__gemm_centered_s16_mr(isa) == 0 || !(qc__cpu_isa_mask() & (1u << isa))) {
        return QC_E_UNSUPPORTED_ISA;
    }
    if (threads < 1 || threads > 256) {
        return QC_E_INVALID_ARGUMENT;
    }
    if (m == 0 || h->n == 0) {
        return QC_OK;
    }
    if (a_packed == NULL || rowsum == NULL || c == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (c_stride < h->n) {
        return QC_E_SHAPE;
    }
    qc__gemm_job job;
    qc__gemm_job_init(&job, isa, m, h, c, c_stride, NULL, NULL, 0);
    job.a_packed = (const uint8_t *)a_packed;
    job.rowsum = rowsum; /* sum of A - za per row: with a_centered, za' plays no further part */
    qc__gemm_run(&job, threads);
    return QC_OK;
}

#if defined(QC__BUILD_AVX2)
/* A few rows of A times an unpacked K x N B, without packing B (packing costs more than
 * the product when M is this small). Uses (A - za) * (B - ob) - (zb - ob) * sum(A - za),
 * ob = 128 for unsigned B: no column sums are needed. Validates like the packed path. */
static qc_status qc__gemm_direct(size_t m, size_t n, size_t k, int a_type, const uint8_t *a, size_t a_stride,
                                 const int32_t *a_zero_point, size_t a_zero_point_count, int b_type,
                                 const uint8_t *b, size_t b_stride, const int32_t *b_zero_point,
                                 size_t b_zero_point_count, int32_t *c, size_t c_stride,
                                 const qc_gemm_requant_params *rq, void *y, size_t y_stride) {
    if (!qc__type_is_8bit(b_type)) {
        return QC_E_DTYPE;
    }
    if (a == NULL || b == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (a_stride < k || b_stride < n) {
        return QC_E_SHAPE;
    }
    QC__TRY(qc__check_zero_points(a_type, a_zero_point, a_zero_point_count, m));
    QC__TRY(qc__check_zero_points(b_type, b_zero_point, b_zero_point_count, n));
    if (rq == NULL) {
        if (c == NULL) {
            return QC_E_NULL_POINTER;
        }
        if (c_stride < n) {
            return QC_E_SHAPE;
        }
    } else {
        QC__TRY(qc__check_requant(m, n, rq, y, y_stride));
    }
    size_t a16_bytes, acc_bytes, total;
    if (qc__mul_size(m * sizeof(int16_t), k, &a16_bytes) || qc__mul_size(m * sizeof(int32_t), n, &acc_bytes) ||
        qc__add_size(a16_bytes, 63, &a16_bytes) || qc__add_size(a16_bytes / 64 * 64, acc_bytes, &total)) {
        return QC_E_OVERFLOW;
    }
    a16_bytes = a16_bytes / 64 * 64; /* rounded up: acc starts 64-byte aligned */
    uint8_t *scratch = (uint8_t *)aligned_alloc(64, (total + 63) / 64 * 64);
    if (scratch == NULL) {
        return QC_E_NO_MEMORY;
    }
    int16_t *a16 = (int16_t *)scratch;
    int32_t *acc = (int32_t *)(scratch + a16_bytes);
    const int a_signed = a_type == QC_GEMM_S8, b_signed = b_type == QC_GEMM_S8;
    const uint8_t b_flip = b_signed ? 0x00 : 0x80;
    uint32_t sums[4];
    for (size_t r = 0; r < m; r++) {
        int32_t za = a_zero_point_count == 0 ? 0 : a_zero_point[a_zero_point_count == 1 ? 0 : r];
        uint32_t sum = 0;
        for (size_t kk = 0; kk < k; kk++) {
            int32_t v = a_signed ? (int32_t)(int8_t)a[r * a_stride + kk] : (int32_t)a[r * a_stride + kk];
            a16[r * k + kk] = (int16_t)(v - za);
            sum += (uint32_t)(v - za);
        }
        sums[r] = sum;
    }
    qc__gemm_direct__avx2(m, n, k, a16, k, b, b_stride, b_flip, acc, n);
    /* the columns past the last group of 16 */
    for (size_t r = 0; r < m; r++) {
        for (size_t j = n / 16 * 16; j < n; j++) {
            uint32_t dot = 0;
            for (size_t kk = 0; kk < k; kk++) {
                int32_t bv = (int32_t)(int8_t)(b[kk * b_stride + j] ^ b_flip);
                dot += (uint32_t)((int32_t)a16[r * k + kk] * bv);
            }
            acc[r * n + j] = (int32_t)dot;
        }
    }
    const int32_t ob = b_signed ? 0 : 128;
    for (size_t r = 0; r < m; r++) {
        for (size_t j = 0; j < n; j++) {
            int32_t zb = b_zero_point_count == 0 ? 0 : b_zero_point[b_zero_point_count == 1 ? 0 : j];
            uint32_t v = (uint32_t)acc[r * n + j] - (uint32_t)(zb - ob) * sums[r];
            if (rq == NULL) {
                c[r * c_stride + j] = (int32_t)v;
                continue;
            }
            if (rq->bias != NULL) {
                v += (uint32_t)rq->bias[j];
            }
            float mult = rq->multiplier[r * rq->multiplier_row_stride + j * rq->multiplier_col_stride];
            int32_t q = qc__requant_float((int32_t)v, mult, rq->output_zero_point, rq->clamp_min, rq->clamp_max);
            if (rq->output_type == QC_GEMM_U8) {
                ((uint8_t *)y)[r * y_stride + j] = (uint8_t)q;
            } else {
                ((int8_t *)y)[r * y_stride + j] = (int8_t)q;
            }
        }
    }
    free(scratch);
    return QC_OK;
}
#endif

/* Packs B into a temporary buffer, then runs the packed path. */
static qc_status qc__gemm_unpacked(size_t m, size_t n, size_t k, int a_type, const void *a, size_t a_stride,
                                   const int32_t *a_zero_point, size_t a_zero_point_count, int b_type,
                                   int b_layout, const void *b, size_t b_stride, const int32_t *b_zero_point,
                                   size_t b_zero_point_count, int32_t *c, size_t c_stride,
                                   const qc_gemm_requant_params *rq, void *y, size_t y_stride,
                                   const qc_options *options) {
    int isa, threads;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (!qc__type_is_8bit(a_type)) {
        return QC_E_DTYPE;
    }
#if defined(QC__BUILD_AVX2)
    if (isa == QC_ISA_AVX2 && m >= 1 && m <= 4 && k > 0 && n >= 16 && b_layout == QC_GEMM_B_KN) {
        return qc__gemm_direct(m, n, k, a_type, (const uint8_t *)a, a_stride, a_zero_point, a_zero_point_count,
                               b_type, (const uint8_t *)b, b_stride, b_zero_point, b_zero_point_count, c, c_stride,
                               rq, y, y_stride);
    }
#endif
    size_t size;
    QC__TRY(qc_gemm_packed_size(k, n, &size));
    void *packed = aligned_alloc(64, (size + 63) / 64 * 64);
    if (packed == NULL) {
        return QC_E_NO_MEMORY;
    }
    qc_status s = qc_gemm_pack_b(k, n, b_type, b_layout, b, b_stride, b_zero_point, b_zero_point_count, packed,
                                 size, options);
    if (s == QC_OK) {
        s = qc__gemm_packed(m, a_type, a, a_stride, a_zero_point, a_zero_point_count, packed, c, c_stride, rq, y,
                            y_stride, options);
    }
    free(packed);
    return s;
}

qc_status qc_gemm_s32(size_t m, size_t n, size_t k, int a_type, const void *a, size_t a_stride,
                      const int32_t *a_zero_point, size_t a_zero_point_count, int b_type, int b_layout,
                      const void *b, size_t b_stride, const int32_t *b_zero_point,
                      size_t b_zero_point_count, int32_t *c, size_t c_stride, const qc_options *options) {
    return qc__gemm_unpacked(m, n, k, a_type, a, a_stride, a_zero_point, a_zero_point_count, b_type, b_layout, b,
                             b_stride, b_zero_point, b_zero_point_count, c, c_stride, NULL, NULL, 0, options);
}

qc_status qc_gemm_requant(size_t m, size_t n, size_t k, int a_type, const void *a, size_t a_stride,
                          const int32_t *a_zero_point, size_t a_zero_point_count, int b_type,
                          int b_layout, const void *b, size_t b_stride, const int32_t *b_zero_point,
                          size_t b_zero_point_count, const qc_gemm_requant_params *params, void *y,
                          size_t y_stride, const qc_options *options) {
    if (params == NULL) {
        return QC_E_NULL_POINTER;
    }
    return qc__gemm_unpacked(m, n, k, a_type, a, a_stride, a_zero_point, a_zero_point_count, b_type, b_layout, b,
                             b_stride, b_zero_point, b_zero_point_count, NULL, 0, params, y, y_stride, options);
}

/* ---------------------------------------------------------------- int4 weights */

typedef struct qc__w4_task {
    const qc__w4_args *args;
    qc__w4_fn fn;
    size_t n0, n1;
} qc__w4_task;

static void *qc__w4_worker(void *arg) {
    const qc__w4_task *t = (const qc__w4_task *)arg;
    t->fn(t->args, 0, t->args->m, t->n0, t->n1);
    return NULL;
}

/* The options' ISA and threads, and the checks both int4-weight calls start with. */
static qc_status qc__w4_start(const qc_options *options, int w_type, size_t block_size, int *isa, int *threads) {
    QC__TRY(qc_options_resolve(options, isa, threads));
    if (w_type != QC_GEMM_S4 && w_type != QC_GEMM_U4) {
        return QC_E_DTYPE;
    }
    return block_size == 0 ? QC_E_INVALID_ARGUMENT : QC_OK;
}

/* Scales [from, to) finite and > 0, zero points in the type's range. */
static qc_status qc__w4_check_params(int w_type, const float *w_scale, const void *w_zero_point, size_t from,
                                     size_t to) {
    int32_t lo, hi;
    qc__type_range(w_type, &lo, &hi);
    for (size_t i = from; i < to; i++) {
        float s = w_scale[i];
        if (!(s > 0.0f) || s > 3.402823466e38f) {
            return QC_E_SCALE;
        }
        if (w_zero_point != NULL) {
            int32_t z = w_type == QC_GEMM_S4 ? ((const int8_t *)w_zero_point)[i] : ((const uint8_t *)w_zero_point)[i];
            if (z < lo || z > hi) {
                return QC_E_ZERO_POINT;
            }
        }
    }
    return QC_OK;
}

qc_status qc_gemm_f32_w4(size_t m, size_t n, size_t k, const float *a, size_t a_stride, int w_type,
                         const uint8_t *w, const float *w_scale, const void *w_zero_point,
                         size_t block_size, const float *bias, float *y, size_t y_stride,
                         const qc_options *options) {
    int isa, threads;
    QC__TRY(qc__w4_start(options, w_type, block_size, &isa, &threads));
    if (m == 0 || n == 0) {
        return QC_OK;
    }
    if (y == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (y_stride < n) {
        return QC_E_SHAPE;
    }
    size_t elems, blocks = (k + block_size - 1) / block_size, params_count;
    if (qc__mul_size(k, n, &elems) || qc__mul_size(blocks, n, &params_count)) {
        return QC_E_OVERFLOW;
    }
    if (k > 0) {
        if (a == NULL || w == NULL || w_scale == NULL) {
            return QC_E_NULL_POINTER;
        }
        if (a_stride < k) {
            return QC_E_SHAPE;
        }
        QC__TRY(qc__w4_check_params(w_type, w_scale, w_zero_point, 0, params_count));
    }
    qc__w4_args args = {m, n, k, a, a_stride, w_type == QC_GEMM_S4, w, (elems + 1) / 2, w_scale, w_zero_point,
                        block_size, bias, y, y_stride};
    qc__w4_fn fn = qc_f32_w4_gemm__scalar;
#if defined(QC__BUILD_AVX2)
    if (isa == QC_ISA_AVX2) {
        fn = qc_f32_w4_gemm__avx2;
    }
#endif
#if defined(QC__BUILD_NEON) && defined(__aarch64__)
    if (isa == QC_ISA_NEON || isa == QC_ISA_NEONDOT || isa == QC_ISA_I8MM) {
        fn = qc_f32_w4_gemm__neon;
    }
#endif
    /* Split columns in multiples of 8 so each thread's vector loop covers whole groups. */
    size_t groups = (n + 7) / 8;
    if (threads > 1 && (double)m * (double)n * (double)k >= 2097152.0 && groups > 1) {
        if ((size_t)threads > groups) {
            threads = (int)groups;
        }
        qc__w4_task tasks[256];
        for (int t = 0; t < threads; t++) {
            size_t g0 = groups * (size_t)t / (size_t)threads, g1 = groups * (size_t)(t + 1) / (size_t)threads;
            tasks[t].args = &args;
            tasks[t].fn = fn;
            tasks[t].n0 = g0 * 8;
            tasks[t].n1 = g1 * 8 < n ? g1 * 8 : n;
        }
        qc__run_tasks(qc__w4_worker, tasks, sizeof tasks[0], threads);
    } else {
        fn(&args, 0, m, 0, n);
    }
    return QC_OK;
}

qc_status qc_dequantize_w4_f32(size_t k, size_t n, int w_type, const uint8_t *w, const float *w_scale,
                               const void *w_zero_point, size_t block_size, size_t k0, size_t k1, size_t n0,
                               size_t n1, float *y, size_t y_stride, const qc_options *options) {
    int isa, threads;
    QC__TRY(qc__w4_start(options, w_type, block_size, &isa, &threads));
    if (k0 > k1 || k1 > k || n0 > n1 || n1 > n) {
        return QC_E_SHAPE;
    }
    if (k0 == k1 || n0 == n1) {
        return QC_OK;
    }
    if (y == NULL || w == NULL || w_scale == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (y_stride < n1 - n0) {
        return QC_E_SHAPE;
    }
    size_t elems, first, last;
    const size_t b0 = k0 / block_size, b1 = (k1 - 1) / block_size + 1;
    if (qc__mul_size(k, n, &elems) || qc__mul_size(b0, n, &first) || qc__mul_size(b1, n, &last)) {
        return QC_E_OVERFLOW;
    }
    QC__TRY(qc__w4_check_params(w_type, w_scale, w_zero_point, first, last));
    qc__w4_args args = {0, n, k, NULL, 0, w_type == QC_GEMM_S4, w, (elems + 1) / 2, w_scale, w_zero_point,
                        block_size, NULL, y, y_stride};
    qc__w4_dequant_fn fn = qc_f32_w4_dequant__scalar;
#if defined(QC__BUILD_AVX2)
    if (isa == QC_ISA_AVX2) {
        fn = qc_f32_w4_dequant__avx2;
    }
#endif
    fn(&args, k0, k1, n0, n1);
    return QC_OK;
}
