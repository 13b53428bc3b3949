/*
 * The element-wise kernel tables (one per ISA, constant) and the helpers the element-wise
 * entry points share: ISA resolution, integer type ranges, layout sizes.
 */
#include "elementwise.h"

#define QC__ELEMENTWISE_TABLE(isa)                                                                            \
    {                                                                                                         \
        .quantize_q8 = qc_f32_q8_quantize_ukernel__##isa,                                                     \
        .quantize_q16 = qc_f32_q16_quantize_ukernel__##isa,                                                   \
        .quantize_channels_q8 = qc_f32_q8_quantize_channels_ukernel__##isa,                                   \
        .quantize_channels_q16 = qc_f32_q16_quantize_channels_ukernel__##isa,                                 \
        .dequantize = {qc_qs8_f32_dequantize_ukernel__##isa, qc_qu8_f32_dequantize_ukernel__##isa,            \
                       qc_qs16_f32_dequantize_ukernel__##isa, qc_qu16_f32_dequantize_ukernel__##isa,          \
                       qc_qs32_f32_dequantize_ukernel__##isa},                                                \
        .dequantize_channels = {qc_qs8_f32_dequantize_channels_ukernel__##isa,                                \
                                qc_qu8_f32_dequantize_channels_ukernel__##isa,                                \
                                qc_qs16_f32_dequantize_channels_ukernel__##isa,                               \
                                qc_qu16_f32_dequantize_channels_ukernel__##isa,                               \
                                qc_qs32_f32_dequantize_channels_ukernel__##isa},                              \
        .minmax = qc_f32_minmax_ukernel__##isa,                                                               \
        .requant = qc_qs32_q8_requantize_ukernel__##isa,                                                      \
        .requant_channels = qc_qs32_q8_requantize_channels_ukernel__##isa,                                    \
        .requant_fixed = qc_qs32_q8_requantize_fixedpoint_ukernel__##isa,                                     \
        .requant_fixed_channels = qc_qs32_q8_requantize_fixedpoint_channels_ukernel__##isa,                   \
        .pack_int4 = qc_q4_pack_ukernel__##isa,                                                               \
        .unpack_int4 = qc_q4_unpack_ukernel__##isa,                                                           \
    }

const qc__elementwise_kernels qc__elementwise_scalar = QC__ELEMENTWISE_TABLE(scalar);
#if defined(QC__BUILD_AVX2)
const qc__elementwise_kernels qc__elementwise_avx2 = QC__ELEMENTWISE_TABLE(avx2);
#endif
#if defined(QC__BUILD_NEON)
const qc__elementwise_kernels qc__elementwise_neon = QC__ELEMENTWISE_TABLE(neon);
#endif

qc_status qc__elementwise_resolve(const qc_options *options, const qc__elementwise_kernels **kernels_out) {
    int isa = QC_ISA_SCALAR;
    int threads = 1;
    QC__TRY(qc_options_resolve(options, &isa, &threads));
    switch (isa) {
#if defined(QC__BUILD_AVX2)
    case QC_ISA_AVX2:
        *kernels_out = &qc__elementwise_avx2;
        return QC_OK;
#endif
#if defined(QC__BUILD_NEON)
    case QC_ISA_NEON:
    case QC_ISA_NEONDOT:
    case QC_ISA_I8MM:
        *kernels_out = &qc__elementwise_neon;
        return QC_OK;
#endif
    case QC_ISA_SCALAR:
        *kernels_out = &qc__elementwise_scalar;
        return QC_OK;
    default:
        return QC_E_UNSUPPORTED_ISA;
    }
}

int qc__dtype_range(int dtype, int32_t *qmin, int32_t *qmax) {
    switch (dtype) {
    case QC_DTYPE_INT8: *qmin = INT8_MIN; *qmax = INT8_MAX; return 0;
    case QC_DTYPE_UINT8: *qmin = 0; *qmax = UINT8_MAX; return 0;
    case QC_DTYPE_INT16: *qmin = INT16_MIN; *qmax = INT16_MAX; return 0;
    case QC_DTYPE_UINT16: *qmin = 0; *qmax = UINT16_MAX; return 0;
    case QC_DTYPE_INT32: *qmin = INT32_MIN; *qmax = INT32_MAX; return 0;
    default: return 1;
    }
}

qc_status qc__layout_size(size_t outer, size_t channels, size_t inner, size_t *count_out) {
    size_t rows = 0;
    if (qc__mul_size(outer, channels, &rows) || qc__mul_size(rows, inner, count_out)) {
        return QC_E_OVERFLOW;
    }
    return QC_OK;
}
