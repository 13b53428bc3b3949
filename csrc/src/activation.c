/*
 * float32 erf and GELU (qcore_activation.h): argument checks, ISA dispatch and the scalar
 * kernels. ARM builds run the scalar kernels (armv7 NEON has no IEEE division).
 */
#include "internal.h"

#include "activation.h"

void qc_f32_erf_ukernel__scalar(const float *x, size_t n, float *y) {
    for (size_t i = 0; i < n; i++) {
        y[i] = qc__erf_scalar(x[i]);
    }
}

void qc_f32_gelu_ukernel__scalar(const float *x, size_t n, float *y) {
    for (size_t i = 0; i < n; i++) {
        y[i] = qc__gelu_scalar(x[i]);
    }
}

int qc_f32_row_max_ukernel__scalar(const float *x, size_t n, float *max_out) {
    float m = x[0];
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        nan |= x[i] != x[i];
        m = x[i] > m ? x[i] : m;
    }
    *max_out = m;
    return nan;
}

/* One row of softmax whose maximum m is finite. */
static void qc__softmax_row_scalar(const float *xr, size_t cols, float m, float *yr) {
    float lanes[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t i = 0; i < cols; i++) {
        float a = xr[i] - m;
        float e = a < QC__SOFTMAX_MIN_ARG ? 0.0f : qc__exp_f32_scalar(a);
        lanes[i % 8] = lanes[i % 8] + e;
        yr[i] = e;
    }
    float s = qc__softmax_lane_sum(lanes);
    for (size_t i = 0; i < cols; i++) {
        yr[i] = yr[i] / s;
    }
}

void qc_f32_softmax_ukernel__scalar(const float *x, size_t rows, size_t cols, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float m = 0.0f;
        if (qc_f32_row_max_ukernel__scalar(xr, cols, &m) || isinf(m)) {
            for (size_t i = 0; i < cols; i++) {
                yr[i] = NAN;
            }
            continue;
        }
        qc__softmax_row_scalar(xr, cols, m, yr);
    }
}

void qc_f32_softmax4_ukernel__scalar(float *y, size_t stride, size_t n, const float max[4]) {
    for (size_t r = 0; r < 4; r++) {
        qc__softmax_row_scalar(y + r * stride, n, max[r], y + r * stride);
    }
}

typedef void (*qc__activation_fn)(const float *x, size_t n, float *y);

static qc_status qc__activation_run(const float *x, size_t n, float *y, const qc_options *options,
                                    qc__activation_fn scalar, qc__activation_fn avx2) {
    int isa = QC_ISA_SCALAR;
    int threads = 1;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (n == 0) {
        return QC_OK;
    }
    if (x == NULL || y == NULL) {
        return QC_E_NULL_POINTER;
    }
    switch (isa) {
    case QC_ISA_AVX2:
        if (avx2 == NULL) {
            return QC_E_UNSUPPORTED_ISA;
        }
        avx2(x, n, y);
        return QC_OK;
    case QC_ISA_NEON:
    case QC_ISA_NEONDOT:
    case QC_ISA_I8MM:
    case QC_ISA_SCALAR:
        scalar(x, n, y);
        return QC_OK;
    default:
        return QC_E_UNSUPPORTED_ISA;
    }
}

#if defined(QC__BUILD_AVX2)
#define QC__ACT_AVX2(name) qc_f32_##name##_ukernel__avx2
#else
#define QC__ACT_AVX2(name) NULL
#endif

qc_status qc_softmax_f32(const float *x, size_t rows, size_t cols, float *y, const qc_options *options) {
    int isa = QC_ISA_SCALAR;
    int threads = 1;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    if (rows == 0 || cols == 0) {
        return QC_OK;
    }
    if (x == NULL || y == NULL) {
        return QC_E_NULL_POINTER;
    }
    size_t total = 0;
    if (qc__mul_size(rows, cols, &total)) {
        return QC_E_OVERFLOW;
    }
#if defined(QC__BUILD_AVX2)
    if (isa == QC_ISA_AVX2) {
        qc_f32_softmax_ukernel__avx2(x, rows, cols, y);
        return QC_OK;
    }
#endif
    if (isa != QC_ISA_SCALAR && isa != QC_ISA_NEON && isa != QC_ISA_NEONDOT && isa != QC_ISA_I8MM) {
        return QC_E_UNSUPPORTED_ISA;
    }
    qc_f32_softmax_ukernel__scalar(x, rows, cols, y);
    return QC_OK;
}

qc_status qc_erf_f32(const float *x, size_t n, float *y, const qc_options *options) {
    return qc__activation_run(x, n, y, options, qc_f32_erf_ukernel__scalar, QC__ACT_AVX2(erf));
}

qc_status qc_gelu_f32(const float *x, size_t n, float *y, const qc_options *options) {
    return qc__activation_run(x, n, y, options, qc_f32_gelu_ukernel__scalar, QC__ACT_AVX2(gelu));
}
