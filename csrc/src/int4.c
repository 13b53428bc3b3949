/*
 * int4 / uint4 packing in ONNX nibble order (docs/ARITHMETIC.md, "Integer types"):
 * element 2k in the low nibble of byte k, element 2k+1 in the high nibble, an odd count
 * leaves the last high nibble 0. Entry points and the scalar kernels.
 */
#include "elementwise.h"

/* Nonzero when v is outside [-8, 7] (signed) or [0, 15] (unsigned). */
static inline int qc__int4_out_of_range(int8_t v, int is_signed) {
    uint8_t u = (uint8_t)v;
    if (is_signed) {
        u = (uint8_t)(u + 8u);
    }
    return (u & 0xF0u) != 0;
}

static inline int8_t qc__int4_extend(uint8_t nibble, int is_signed) {
    return is_signed ? (int8_t)((int)(nibble ^ 8u) - 8) : (int8_t)nibble;
}

int qc_q4_pack_ukernel__scalar(size_t n, const int8_t *values, int is_signed, uint8_t *packed) {
    int bad = 0;
    size_t pairs = n / 2;
    for (size_t k = 0; k < pairs; k++) {
        int8_t a = values[2 * k];
        int8_t b = values[2 * k + 1];
        bad |= qc__int4_out_of_range(a, is_signed) | qc__int4_out_of_range(b, is_signed);
        packed[k] = (uint8_t)(((uint8_t)a & 0x0Fu) | (((uint8_t)b & 0x0Fu) << 4));
    }
    if (n & 1) {
        int8_t a = values[n - 1];
        bad |= qc__int4_out_of_range(a, is_signed);
        packed[pairs] = (uint8_t)((uint8_t)a & 0x0Fu);
    }
    return bad;
}

void qc_q4_unpack_ukernel__scalar(size_t n, const uint8_t *packed, int is_signed, int8_t *values) {
    size_t pairs = n / 2;
    for (size_t k = 0; k < pairs; k++) {
        values[2 * k] = qc__int4_extend(packed[k] & 0x0Fu, is_signed);
        values[2 * k + 1] = qc__int4_extend(packed[k] >> 4, is_signed);
    }
    if (n & 1) {
        values[n - 1] = qc__int4_extend(packed[pairs] & 0x0Fu, is_signed);
    }
}

qc_status qc_pack_int4(const int8_t *values, size_t n, int is_signed, uint8_t *packed, const qc_options *options) {
    if (n > 0 && (values == NULL || packed == NULL)) {
        return QC_E_NULL_POINTER;
    }
    const qc__elementwise_kernels *k = NULL;
    QC__TRY(qc__elementwise_resolve(options, &k));
    if (n == 0) {
        return QC_OK;
    }
    return k->pack_int4(n, values, is_signed != 0, packed) ? QC_E_INVALID_ARGUMENT : QC_OK;
}

qc_status qc_unpack_int4(const uint8_t *packed, size_t n, int is_signed, int8_t *values, const qc_options *options) {
    if (n > 0 && (values == NULL || packed == NULL)) {
        return QC_E_NULL_POINTER;
    }
    const qc__elementwise_kernels *k = NULL;
    QC__TRY(qc__elementwise_resolve(options, &k));
    if (n > 0) {
        k->unpack_int4(n, packed, is_signed != 0, values);
    }
    return QC_OK;
}
