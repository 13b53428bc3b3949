/*
 * A small C program using libqcore without Python: quantize a float vector to int8 with a
 * per-tensor scale, dequantize it back, quantize a [2, 3] matrix per row (per-channel,
 * axis 0), requantize int32 accumulators to uint8 with a fused bias and ReLU, and pack
 * int4 weights, and run a small int8 linear layer on pre-packed weights. Build and run
 * with `make -C csrc example`.
 */
#include <stdio.h>

#include "qcore.h"

static int fail(const char *what, qc_status status) {
    fprintf(stderr, "%s failed: %s\n", what, qc_status_string(status));
    return 1;
}

int main(void) {
    int isa = QC_ISA_SCALAR;
    qc_status status = qc_isa_default(&isa);
    if (status != QC_OK) {
        return fail("qc_isa_default", status);
    }
    printf("qcore %s, ISA %s\n", qc_version(), qc_isa_name(isa));

    /* Per-tensor int8: y = saturate(round_half_even(x / scale) + zero_point). */
    const float x[8] = {-1.0f, -0.5f, 0.0f, 0.25f, 0.5f, 1.0f, 2.5f, 100.0f};
    const float scale = 0.0078125f; /* 1 / 128 */
    const int32_t zero_point = -1;
    int8_t q[8];
    float back[8];
    status = qc_quantize_f32(x, 1, 1, 8, &scale, &zero_point, QC_DTYPE_INT8, q, NULL);
    if (status != QC_OK) {
        return fail("qc_quantize_f32", status);
    }
    status = qc_dequantize_f32(q, QC_DTYPE_INT8, 1, 1, 8, &scale, &zero_point, back, NULL);
    if (status != QC_OK) {
        return fail("qc_dequantize_f32", status);
    }
    printf("quantize int8 (scale 1/128, zero point -1):\n");
    for (int i = 0; i < 8; i++) {
        printf("  %8.4f -> %4d -> %8.4f\n", x[i], q[i], back[i]);
    }

    /* Per-channel along axis 0 of a [2, 3] matrix: outer 1, channels 2, inner 3. */
    const float w[6] = {0.1f, -0.2f, 0.3f, 4.0f, -8.0f, 12.0f};
    const float row_scales[2] = {0.3f / 127.0f, 12.0f / 127.0f};
    int8_t wq[6];
    status = qc_quantize_f32(w, 1, 2, 3, row_scales, NULL, QC_DTYPE_INT8, wq, NULL);
    if (status != QC_OK) {
        return fail("qc_quantize_f32 per-channel", status);
    }
    printf("per-channel int8 weights: [%d %d %d] [%d %d %d]\n", wq[0], wq[1], wq[2], wq[3], wq[4], wq[5]);

    /* Requantize int32 accumulators of a [2, 2] output, per output channel (the last axis),
     * with an int32 bias and ReLU (clamp below at the output zero point). */
    const int32_t acc[4] = {-5000, 1200, 30000, -70};
    const int32_t bias[2] = {100, -20};
    const float multipliers[2] = {0.01f, 0.004f};
    const int32_t out_zp[2] = {3, 3};
    uint8_t y[4];
    status = qc_requantize(acc, 2, 2, 1, bias, multipliers, out_zp, 3, 255, QC_DTYPE_UINT8, y, NULL);
    if (status != QC_OK) {
        return fail("qc_requantize", status);
    }
    printf("requantize with bias and ReLU: [%u %u] [%u %u]\n", y[0], y[1], y[2], y[3]);

    /* The TFLite fixed-point form: multiplier 0.75 * 2^31, shift -4 (x * 0.75 / 16). */
    const int32_t mult = 1610612736;
    const int32_t shift = -4;
    int8_t yf[4];
    status = qc_requantize_fixedpoint(acc, 1, 1, 4, NULL, &mult, &shift, NULL, -128, 127, QC_DTYPE_INT8, yf, NULL);
    if (status != QC_OK) {
        return fail("qc_requantize_fixedpoint", status);
    }
    printf("fixed-point requantize x * 0.75 / 16: [%d %d %d %d]\n", yf[0], yf[1], yf[2], yf[3]);

    /* int4 packing in ONNX order. */
    const int8_t nibbles[5] = {1, 2, 3, 5, -8};
    uint8_t packed[3];
    status = qc_pack_int4(nibbles, 5, 1, packed, NULL);
    if (status != QC_OK) {
        return fail("qc_pack_int4", status);
    }
    printf("int4 pack [1 2 3 5 -8] -> %02x %02x %02x\n", packed[0], packed[1], packed[2]);

    /* An int8 linear layer: uint8 activations (zero point 128) times int8 weights packed
     * once, with the fused bias + requantization + ReLU epilogue producing uint8. */
    enum { M = 2, K = 4, N = 3 };
    const uint8_t act[M * K] = {128, 255, 0, 130, 200, 128, 64, 255};
    const int8_t weights[K * N] = {1, -2, 127, -128, 3, 0, 5, 5, -5, 127, -128, 1};
    const int32_t act_zp = 128;
    size_t packed_size = 0;
    status = qc_gemm_packed_size(K, N, &packed_size);
    if (status != QC_OK) {
        return fail("qc_gemm_packed_size", status);
    }
    /* 16-byte aligned storage for the packed weights (a real program allocates it once). */
    _Alignas(16) uint8_t packed_weights[4096];
    if (packed_size > sizeof(packed_weights)) {
        return fail("packed weights buffer", QC_E_OVERFLOW);
    }
    status = qc_gemm_pack_b(K, N, QC_GEMM_S8, QC_GEMM_B_KN, weights, N, NULL, 0, packed_weights, packed_size,
                            NULL);
    if (status != QC_OK) {
        return fail("qc_gemm_pack_b", status);
    }
    const int32_t layer_bias[N] = {0, 100, -100};
    const float layer_multiplier[N] = {0.01f, 0.02f, 0.005f};
    qc_gemm_requant_params params = {layer_bias, layer_multiplier, 0, 1, 10, QC_GEMM_U8, 10, 255};
    uint8_t out[M * N];
    status = qc_gemm_packed_requant(M, QC_GEMM_U8, act, K, &act_zp, 1, packed_weights, &params, out, N, NULL);
    if (status != QC_OK) {
        return fail("qc_gemm_packed_requant", status);
    }
    printf("int8 linear + ReLU (uint8 out, zero point 10): [%u %u %u] [%u %u %u]\n", out[0], out[1], out[2],
           out[3], out[4], out[5]);

    /* Errors come back as statuses, never as crashes or prints from the library. */
    const float nan_input = 0.0f / 0.0f;
    status = qc_quantize_f32(&nan_input, 1, 1, 1, &scale, NULL, QC_DTYPE_INT8, q, NULL);
    printf("quantize NaN -> %s\n", qc_status_string(status));
    return status == QC_E_NONFINITE ? 0 : 1;
}
