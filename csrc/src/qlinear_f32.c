/*
 * qc_linear_dynamic_u8_f32 and qc_linear_dynamic_smoothed_u8_f32 (qcore_linear.h).
 *
 * The options are resolved once per call, and every step below gets the explicit ISA and
 * thread count (the environment is read once per call, not once per row). Each row's
 * min/max (of its products with the smoothing vector, stored to a K-float row buffer in
 * the same pass, for the smoothed form) gives DynamicQuantizeLinear's parameters
 * (qc__dynamic_u8_params, shared with qc_dynamic_quantize_u8); then:
 *   - ISAs whose GEMM kernel takes A centred in int16 (AVX2): the row is quantized
 *     straight into the kernel's packed A layout as q - zp, with its row sum, and the GEMM
 *     runs on that A (no uint8 rows, no separate packing pass);
 *   - the others: the row is quantized to uint8 with the ISA's element-wise kernel, and
 *     the packed GEMM packs it;
 * the GEMM writes int32 into the output buffer, and the float32 epilogue turns it in place
 * into float32 in one pass (applying it tile by tile or strip by strip inside the GEMM
 * measured slower: docs/KERNELS.md).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "activation.h"
#include "elementwise.h"
#include "gemm_internal.h"
#include "layernorm.h"
#include "qcore.h"
#include "qlinear_f32.h"

typedef struct linear_kernels {
    qc__minmax_fn minmax;
    qc__mul_minmax_fn mul_minmax;
    qc__quantize_fn quantize_q8;          /* uint8 rows for the GEMM's own packing */
    qc__quantize_pack_fn quantize_pack;   /* NULL: the ISA's GEMM takes uint8 rows */
    qc__dequant_rows_fn epilogue;
    size_t mr;                            /* block height of the centred int16 A, or 0 */
    void (*gelu)(const float *, size_t, float *);  /* the kernels qc_gelu_f32 and */
    void (*layer_norm)(const float *, const float *, size_t, size_t, const float *, const float *, float,
                       float *);                   /* qc_layer_norm_f32 run on this ISA */
} linear_kernels;

static qc_status select_kernels(int isa, linear_kernels *out) {
    const qc_options resolved = {isa, 1};
    const qc__elementwise_kernels *table = NULL;
    QC__TRY(qc__elementwise_resolve(&resolved, &table));
    out->minmax = table->minmax;
    out->mul_minmax = qc_f32_mul_minmax_ukernel__scalar;
    out->quantize_q8 = table->quantize_q8;
    out->quantize_pack = NULL;
    out->epilogue = qc_s32_f32_dequant_bias_ukernel__scalar;
    out->mr = 0;
    out->gelu = qc_f32_gelu_ukernel__scalar;
    out->layer_norm = qc_f32_layernorm_ukernel__scalar;
#if defined(QC__BUILD_AVX2)
    if (isa == QC_ISA_AVX2) {
        out->mul_minmax = qc_f32_mul_minmax_ukernel__avx2;
        out->epilogue = qc_s32_f32_dequant_bias_ukernel__avx2;
        out->gelu = qc_f32_gelu_ukernel__avx2;
        out->layer_norm = qc_f32_layernorm_ukernel__avx2;
        out->mr = qc__gemm_centered_s16_mr(isa);
        out->quantize_pack = out->mr > 0 ? qc_f32_qu8_quantize_centered_pack_ukernel__avx2 : NULL;
    }
#endif
    return QC_OK;
}

/* Row `row` (k >= 1 floats) times x_mul when given (the products go to prod): its
 * quantization parameters and the values to quantize. QC_E_SCALE: the range / 255
 * underflows (every value rounds to 0; the caller stores q = 0 with s = 1, z = 0). */
static qc_status row_params(const linear_kernels *kern, size_t k, const float *row, const float *x_mul, float *prod,
                            const float **values, float *scale, int32_t *zero_point) {
    float xmin = 0.0f;
    float xmax = 0.0f;
    int nan_seen;
    if (x_mul != NULL) { /* the smoothing Mul: one float32 product per element, as NumPy's */
        nan_seen = kern->mul_minmax(k, row, x_mul, prod, &xmin, &xmax);
        row = prod;
    } else {
        nan_seen = kern->minmax(k, row, &xmin, &xmax);
    }
    if (nan_seen) {
        return QC_E_NONFINITE;
    }
    *values = row;
    return qc__dynamic_u8_params(xmin, xmax, scale, zero_point);
}

/* Quantizes the m rows straight into the GEMM's centred int16 A (blocks of mr rows). */
static qc_status rows_to_packed_a(const linear_kernels *kern, size_t m, size_t k, size_t kp, const float *x,
                                  const float *x_mul, float *prod, int16_t *a, int32_t *rowsum, float *scales) {
    const size_t mr = kern->mr, step = mr * QC__GEMM_KG, blocks = (m + mr - 1) / mr;
    for (size_t i = 0; i < blocks * mr; i++) {
        int16_t *dst = a + (i / mr) * mr * kp + (i % mr) * QC__GEMM_KG;
        const float *values = NULL;
        float scale = 1.0f;
        int32_t zero_point = 0;
        qc_status status = i < m && k > 0 ? row_params(kern, k, x + i * k, x_mul, prod, &values, &scale, &zero_point)
                                          : QC_E_SCALE;
        if (status == QC_OK) {
            if (kern->quantize_pack(k, kp, values, scale, zero_point, mr, dst, &rowsum[i])) {
                return QC_E_NONFINITE;
            }
        } else if (status == QC_E_SCALE) { /* also k == 0, and the rows past m: zeros */
            for (size_t g = 0; g < kp / QC__GEMM_KG; g++) {
                memset(dst + g * step, 0, QC__GEMM_KG * sizeof(int16_t));
            }
            if (i < m) {
                rowsum[i] = 0;
            }
        } else {
            return status;
        }
        if (i < m) {
            scales[i] = scale;
        }
    }
    return QC_OK;
}

/* Quantizes the m rows to uint8 (row i at q + i * k) with their zero points. */
static qc_status rows_to_u8(const linear_kernels *kern, size_t m, size_t k, const float *x, const float *x_mul,
                            float *prod, uint8_t *q, int32_t *zps, float *scales) {
    for (size_t i = 0; i < m; i++) {
        scales[i] = 1.0f;
        zps[i] = 0;
        if (k == 0) {
            continue;
        }
        const float *values = NULL;
        float scale = 1.0f;
        int32_t zero_point = 0;
        qc_status status = row_params(kern, k, x + i * k, x_mul, prod, &values, &scale, &zero_point);
        if (status == QC_E_SCALE) {
            memset(q + i * k, 0, k);
            continue;
        }
        QC__TRY(status);
        if (kern->quantize_q8(k, values, scale, zero_point, 0, 255, q + i * k)) {
            return QC_E_NONFINITE;
        }
        scales[i] = scale;
        zps[i] = zero_point;
    }
    return QC_OK;
}

/* The epilogue, then the post-op, a block of rows at a time (about 16 KB of Y: the
 * block stays in L1 between the two). */
static void finish_rows(const linear_kernels *kern, size_t m, size_t n, float *y, const float *scales,
                        const float *w_scale, int per_column, const float *bias, const qc_linear_post *post) {
    if (post == NULL || post->op == QC_LINEAR_POST_NONE) {
        kern->epilogue(m, n, y, n, scales, w_scale, per_column, bias);
        return;
    }
    const size_t block = n >= 4096 ? 1 : 4096 / n;
    for (size_t r0 = 0; r0 < m; r0 += block) {
        const size_t rows = m - r0 < block ? m - r0 : block;
        float *yb = y + r0 * n;
        kern->epilogue(rows, n, yb, n, scales + r0, w_scale, per_column, bias);
        if (post->op == QC_LINEAR_POST_GELU) {
            kern->gelu(yb, rows * n, yb);
        } else {
            kern->layer_norm(yb, post->residual != NULL ? post->residual + r0 * n : NULL, rows, n, post->gamma,
                             post->beta, post->epsilon, yb);
        }
    }
}

static qc_status linear_dynamic(size_t m, const float *x, const float *x_mul, const void *packed,
                                const float *w_scale, size_t w_scale_count, const float *bias,
                                const qc_linear_post *post, float *y, const qc_options *options) {
    int isa = QC_ISA_SCALAR;
    int threads = 1;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (packed == NULL || w_scale == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (post != NULL) {
        if (post->op != QC_LINEAR_POST_NONE && post->op != QC_LINEAR_POST_GELU &&
            post->op != QC_LINEAR_POST_LAYER_NORM) {
            return QC_E_INVALID_ARGUMENT;
        }
        if (post->op == QC_LINEAR_POST_LAYER_NORM) {
            if (!(post->epsilon >= 0.0f) || isinf(post->epsilon)) {
                return QC_E_INVALID_ARGUMENT;
            }
            if (post->gamma == NULL) {
                return QC_E_NULL_POINTER;
            }
        }
    }
    size_t k = 0;
    size_t n = 0;
    QC__TRY(qc_gemm_packed_dims(packed, &k, &n));
    if (w_scale_count != 1 && w_scale_count != n) {
        return QC_E_SHAPE;
    }
    if (m == 0 || n == 0) {
        return QC_OK;
    }
    if (y == NULL || (x == NULL && k > 0)) {
        return QC_E_NULL_POINTER;
    }
    linear_kernels kern;
    QC__TRY(select_kernels(isa, &kern));

    /* One scratch allocation: A (packed int16, or uint8 rows), then row sums or zero
     * points (m int32), row scales (m float), the smoothed row (k float). */
    const size_t kp = (k + QC__GEMM_KG - 1) / QC__GEMM_KG * QC__GEMM_KG;
    size_t a_bytes = 0;
    size_t row_bytes = 0;
    size_t prod_bytes = 0;
    size_t total = 0;
    if (kern.quantize_pack != NULL) {
        const size_t rows = (m + kern.mr - 1) / kern.mr * kern.mr;
        if (qc__mul_size(rows, kp, &a_bytes) || qc__mul_size(a_bytes, sizeof(int16_t), &a_bytes)) {
            return QC_E_OVERFLOW;
        }
    } else if (qc__mul_size(m, k, &a_bytes)) {
        return QC_E_OVERFLOW;
    }
    if (qc__add_size(a_bytes, 63, &a_bytes) || qc__mul_size(m, 2 * sizeof(int32_t), &row_bytes) ||
        qc__mul_size(x_mul != NULL ? k : 0, sizeof(float), &prod_bytes) ||
        qc__add_size(a_bytes / 64 * 64, row_bytes, &total) || qc__add_size(total, prod_bytes + 63, &total)) {
        return QC_E_OVERFLOW;
    }
    a_bytes = a_bytes / 64 * 64;
    unsigned char *scratch = aligned_alloc(64, total / 64 * 64);
    if (scratch == NULL) {
        return QC_E_NO_MEMORY;
    }
    int32_t *row_ints = (int32_t *)(void *)(scratch + a_bytes);
    float *scales = (float *)(void *)(row_ints + m);
    float *prod = x_mul != NULL ? scales + m : NULL;

    qc_status status;
    if (kern.quantize_pack != NULL) {
        status = rows_to_packed_a(&kern, m, k, kp, x, x_mul, prod, (int16_t *)(void *)scratch, row_ints, scales);
        if (status == QC_OK) {
            status = qc__gemm_packed_centered_s32(m, (const int16_t *)(void *)scratch, row_ints, packed,
                                                  (int32_t *)(void *)y, n, isa, threads);
        }
    } else {
        status = rows_to_u8(&kern, m, k, x, x_mul, prod, scratch, row_ints, scales);
        if (status == QC_OK) {
            const qc_options resolved = {isa, threads};
            status = qc_gemm_packed_s32(m, QC_GEMM_U8, scratch, k, row_ints, m, packed, (int32_t *)(void *)y, n,
                                        &resolved);
        }
    }
    if (status == QC_OK) {
        finish_rows(&kern, m, n, y, scales, w_scale, w_scale_count != 1, bias, post);
    }
    free(scratch);
    return status;
}

qc_status qc_linear_dynamic_u8_f32(size_t m, const float *x, const void *packed, const float *w_scale,
                                   size_t w_scale_count, const float *bias, float *y, const qc_options *options) {
    return linear_dynamic(m, x, NULL, packed, w_scale, w_scale_count, bias, NULL, y, options);
}

qc_status qc_linear_dynamic_smoothed_u8_f32(size_t m, const float *x, const float *x_mul, const void *packed,
                                            const float *w_scale, size_t w_scale_count, const float *bias, float *y,
                                            const qc_options *options) {
    if (x_mul == NULL) {
        return QC_E_NULL_POINTER;
    }
    return linear_dynamic(m, x, x_mul, packed, w_scale, w_scale_count, bias, NULL, y, options);
}

qc_status qc_linear_dynamic_post_f32(size_t m, const float *x, const float *x_mul, const void *packed,
                                     const float *w_scale, size_t w_scale_count, const float *bias,
                                     const qc_linear_post *post, float *y, const qc_options *options) {
    return linear_dynamic(m, x, x_mul, packed, w_scale, w_scale_count, bias, post, y, options);
}
