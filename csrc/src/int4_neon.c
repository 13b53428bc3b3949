/*
 * NEON int4 / uint4 pack and unpack (ONNX nibble order), bit-identical to the scalar
 * kernels in int4.c: vld2q / vst2q de-interleave and re-interleave even and odd elements.
 */
#include "internal.h"

#if defined(QC__BUILD_NEON)

#if defined(__arm__)
#pragma GCC push_options
#pragma GCC target("fpu=neon")
#endif
#include <arm_neon.h>

#include <string.h>

#include "elementwise.h"
#include "elementwise_neon.h"

/* Packs 32 values into 16 bytes; ORs out-of-range bits into *bad. */
static inline void qc__pack32_neon(const int8_t *values, int is_signed, uint8_t *packed, uint8x16_t *bad) {
    const uint8x16_t bias = vdupq_n_u8(is_signed ? 8 : 0);
    const uint8x16_t high_nibble = vdupq_n_u8(0xF0);
    uint8x16x2_t v = vld2q_u8((const uint8_t *)values);
    *bad = vorrq_u8(*bad, vandq_u8(vaddq_u8(v.val[0], bias), high_nibble));
    *bad = vorrq_u8(*bad, vandq_u8(vaddq_u8(v.val[1], bias), high_nibble));
    uint8x16_t bytes = vorrq_u8(vandq_u8(v.val[0], vdupq_n_u8(0x0F)), vshlq_n_u8(v.val[1], 4));
    vst1q_u8(packed, bytes);
}

int qc_q4_pack_ukernel__neon(size_t n, const int8_t *values, int is_signed, uint8_t *packed) {
    uint8x16_t bad = vdupq_n_u8(0);
    for (; n >= 32; n -= 32, values += 32, packed += 16) {
        qc__pack32_neon(values, is_signed, packed, &bad);
    }
    if (n > 0) {
        int8_t vb[32] = {0};
        uint8_t pb[16];
        memcpy(vb, values, n);
        qc__pack32_neon(vb, is_signed, pb, &bad);
        memcpy(packed, pb, (n + 1) / 2);
    }
    return qc__any_u32_neon(vreinterpretq_u32_u8(bad));
}

static inline void qc__unpack32_neon(const uint8_t *packed, int is_signed, int8_t *values) {
    uint8x16_t b = vld1q_u8(packed);
    int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0F)));
    int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(b, 4));
    if (is_signed) {
        lo = vshrq_n_s8(vshlq_n_s8(lo, 4), 4);
        hi = vshrq_n_s8(vshlq_n_s8(hi, 4), 4);
    }
    int8x16x2_t out = {{lo, hi}};
    vst2q_s8(values, out);
}

void qc_q4_unpack_ukernel__neon(size_t n, const uint8_t *packed, int is_signed, int8_t *values) {
    for (; n >= 32; n -= 32, packed += 16, values += 32) {
        qc__unpack32_neon(packed, is_signed, values);
    }
    if (n > 0) {
        uint8_t pb[16] = {0};
        int8_t vb[32];
        memcpy(pb, packed, (n + 1) / 2);
        qc__unpack32_neon(pb, is_signed, vb);
        memcpy(values, vb, n);
    }
}

#if defined(__arm__)
#pragma GCC pop_options
#endif

#endif /* QC__BUILD_NEON */
