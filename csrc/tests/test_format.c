/*
 * The .qcm reader from C alone: builds a small file byte by byte from docs/FORMAT.md,
 * opens it in place, reads tensors and metadata, and checks that single corruptions give
 * their rule's status. Also holds the hardware CRC-32C path to the portable one (run under
 * qemu-aarch64 by .ci/jobs/arm.sh, this covers the ARMv8 CRC instructions).
 * Exit status 0 on success; prints one line per failed check.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qcore.h"

static int failures = 0;
#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                   \
        }                                                                 \
    } while (0)

static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k)); }
static void wr64(uint8_t *p, uint64_t v) { for (int k = 0; k < 8; k++) p[k] = (uint8_t)(v >> (8 * k)); }

enum { DIR = 320, NAMES = DIR + 4 * 128 + 4 * 4, NAMES_LEN = 27, META = NAMES + NAMES_LEN, META_LEN = 25,
       FILE_SIZE = META + META_LEN };

static void record(uint8_t *file, int i, uint64_t offset, uint64_t size, uint32_t name_offset, uint32_t name_length,
                   uint16_t etype, uint8_t rank, const uint64_t *dims, uint8_t role, uint8_t scheme,
                   uint8_t convention, uint32_t scale, uint32_t zp, uint32_t owner) {
    uint8_t *r = file + DIR + 128 * i;
    wr64(r + 0, offset);
    wr64(r + 8, size);
    wr32(r + 16, name_offset);
    wr32(r + 20, name_length);
    wr16(r + 24, etype);
    r[26] = rank;
    r[27] = role;
    r[28] = scheme;
    r[29] = convention;
    wr32(r + 40, scale);
    wr32(r + 44, zp);
    wr32(r + 48, owner);
    wr32(r + 52, qc_crc32c(0, file + offset, size));
    for (int d = 0; d < rank; d++) wr64(r + 64 + 8 * d, dims[d]);
}

static void fix_header_crc(uint8_t *file) {
    wr32(file + 60, qc_crc32c(qc_crc32c(0, file, 60), file + DIR, FILE_SIZE - DIR));
}

/* "b": float32 [3]; "w": int4 [2, 3] per-axis (axis 0, onnx) with "w::scale" float32 [2]
 * and "w::zero_point" int8 [2]; metadata n = 7 (int64), s = "hi" (string). */
static void build(uint8_t *file) {
    memset(file, 0, FILE_SIZE);
    static const uint8_t magic[8] = {0x89, 'Q', 'C', 'M', '\r', '\n', 0x1A, '\n'};
    memcpy(file, magic, 8);
    wr32(file + 8, 0x01020304u);
    wr32(file + 12, 1);
    wr32(file + 20, 64);
    wr64(file + 24, FILE_SIZE);
    wr64(file + 32, DIR);
    wr64(file + 40, FILE_SIZE - DIR);
    wr32(file + 48, 4);
    wr32(file + 52, 2);
    wr32(file + 56, NAMES_LEN);

    const float b[3] = {1.5f, -2.0f, 0.25f};
    for (int k = 0; k < 3; k++) { uint32_t bits; memcpy(&bits, &b[k], 4); wr32(file + 64 + 4 * k, bits); }
    /* int4 values 1, -1, 7, -8, 0, 3: low nibble first. */
    file[128] = 0x1 | (0xF << 4);
    file[129] = 0x7 | (0x8 << 4);
    file[130] = 0x0 | (0x3 << 4);
    const float scale[2] = {0.5f, 0.125f};
    for (int k = 0; k < 2; k++) { uint32_t bits; memcpy(&bits, &scale[k], 4); wr32(file + 192 + 4 * k, bits); }
    file[256] = 0;
    file[257] = (uint8_t)-3;

    const uint64_t d3[1] = {3}, d23[2] = {2, 3}, d2[1] = {2};
    const uint32_t none = 0xFFFFFFFFu;
    record(file, 0, 64, 12, 0, 1, QC_QCM_FLOAT32, 1, d3, QC_QCM_ROLE_DATA, 0, 0, none, none, none);
    record(file, 1, 128, 3, 2, 1, QC_QCM_INT4, 2, d23, QC_QCM_ROLE_DATA, QC_QCM_SCHEME_PER_AXIS,
           QC_QCM_CONVENTION_ONNX, 2, 3, none);
    record(file, 2, 192, 8, 4, 8, QC_QCM_FLOAT32, 1, d2, QC_QCM_ROLE_SCALE, 0, 0, none, none, 1);
    record(file, 3, 256, 2, 13, 13, QC_QCM_INT8, 1, d2, QC_QCM_ROLE_ZERO_POINT, 0, 0, none, none, 1);
    for (uint32_t k = 0; k < 4; k++) wr32(file + DIR + 512 + 4 * k, k);
    memcpy(file + NAMES, "b\0w\0w::scale\0w::zero_point\0", NAMES_LEN);
    uint8_t *m = file + META;
    wr16(m, 1); m[2] = 'n'; m[3] = 0; m[4] = QC_QCM_META_INT64; wr64(m + 5, 7);
    m += 13;
    wr16(m, 1); m[2] = 's'; m[3] = 0; m[4] = QC_QCM_META_STRING; wr32(m + 5, 2); memcpy(m + 9, "hi", 3);
    fix_header_crc(file);
}

static qc_status open_and_verify(const uint8_t *file, size_t size, qc_qcm_reader *r) {
    qc_status s = qc_qcm_open_memory(file, size, r);
    return s != QC_OK ? s : qc_qcm_verify(r);
}

static void test_reads_a_valid_file(void) {
    static uint8_t file[FILE_SIZE];
    build(file);
    qc_qcm_reader r;
    CHECK(qc_qcm_open_memory(file, FILE_SIZE, &r) == QC_OK);
    CHECK(qc_qcm_verify(&r) == QC_OK);
    CHECK(qc_qcm_tensor_count(&r) == 4);
    uint32_t index = 99;
    CHECK(qc_qcm_find_tensor(&r, "w", &index) == QC_OK && index == 1);
    CHECK(qc_qcm_find_tensor(&r, "w::zero_point", &index) == QC_OK && index == 3);
    CHECK(qc_qcm_find_tensor(&r, "v", &index) == QC_E_FORMAT_NOT_FOUND);
    qc_qcm_tensor t;
    CHECK(qc_qcm_tensor_info(&r, 1, &t) == QC_OK);
    CHECK(strcmp(t.name, "w") == 0 && t.rank == 2 && t.shape[0] == 2 && t.shape[1] == 3);
    CHECK(t.element_count == 6 && t.data_size == 3 && t.data == file + 128);
    CHECK(t.scheme == QC_QCM_SCHEME_PER_AXIS && t.axis == 0 && t.scale_index == 2 && t.zero_point_index == 3);
    CHECK(qc_qcm_tensor_info(&r, 0, &t) == QC_OK && t.element_type == QC_QCM_FLOAT32);
    float b0;
    memcpy(&b0, t.data, 4);
    CHECK(b0 == 1.5f);
    CHECK(qc_qcm_tensor_info(&r, 4, &t) == QC_E_INVALID_ARGUMENT);

    qc_qcm_metadata m;
    CHECK(qc_qcm_find_metadata(&r, "s", &m) == QC_OK && m.type == QC_QCM_META_STRING && strcmp(m.string, "hi") == 0);
    CHECK(qc_qcm_find_metadata(&r, "n", &m) == QC_OK && m.type == QC_QCM_META_INT64 && m.int_value == 7);
    CHECK(qc_qcm_find_metadata(&r, "x", &m) == QC_E_FORMAT_NOT_FOUND);
    uint64_t cursor = 0;
    int entries = 0;
    while (qc_qcm_metadata_next(&r, &cursor, &m) == QC_OK) entries++;
    CHECK(entries == 2);
}

/* Version 2: "w::scale" rewritten as float16 [2] (0.5 = 0x3800, 0.125 = 0x3000). */
static void to_half_scales(uint8_t *file, uint32_t version) {
    memset(file + 192, 0, 8);
    wr16(file + 192, 0x3800);
    wr16(file + 194, 0x3000);
    const uint64_t d2[1] = {2};
    record(file, 2, 192, 4, 4, 8, QC_QCM_FLOAT16, 1, d2, QC_QCM_ROLE_SCALE, 0, 0, 0xFFFFFFFFu, 0xFFFFFFFFu, 1);
    wr32(file + 12, version);
    fix_header_crc(file);
}

static void test_reads_half_scales(void) {
    static uint8_t file[FILE_SIZE];
    build(file);
    to_half_scales(file, 2);
    qc_qcm_reader r;
    CHECK(open_and_verify(file, FILE_SIZE, &r) == QC_OK && r.version == 2);
    qc_qcm_tensor t;
    CHECK(qc_qcm_tensor_info(&r, 2, &t) == QC_OK && t.element_type == QC_QCM_FLOAT16 && t.data_size == 4);
    CHECK(qc_qcm_half_to_float((uint16_t)(t.data[0] | t.data[1] << 8)) == 0.5f);
    CHECK(qc_qcm_half_to_float((uint16_t)(t.data[2] | t.data[3] << 8)) == 0.125f);
    CHECK(qc_qcm_half_to_float(0x0001) == 0x1p-24f && qc_qcm_half_to_float(0x7BFF) == 65504.0f);
    CHECK(qc_qcm_half_to_float(0x8000) == 0.0f && qc_qcm_half_to_float(0x03FF) == 0x3FFp-24f);
    /* A float16 scale in a file stamped version 1 breaks rule quant-type. */
    build(file);
    to_half_scales(file, 1);
    CHECK(qc_qcm_open_memory(file, FILE_SIZE, &r) == QC_E_FORMAT_QUANT_TYPE && r.error_tensor == 1);
    /* Rule scale-value on float16 bits: infinity. */
    build(file);
    to_half_scales(file, 2);
    wr16(file + 194, 0x7C00);
    record(file, 2, 192, 4, 4, 8, QC_QCM_FLOAT16, 1, (const uint64_t[1]){2}, QC_QCM_ROLE_SCALE, 0, 0, 0xFFFFFFFFu,
           0xFFFFFFFFu, 1);
    fix_header_crc(file);
    CHECK(open_and_verify(file, FILE_SIZE, &r) == QC_E_FORMAT_SCALE_VALUE && r.error_value == 0x7C00);
}

typedef void (*corrupt_fn)(uint8_t *file);
static void c_magic(uint8_t *f) { f[1] = 'X'; }
static void c_big_endian(uint8_t *f) { f[8] = 1; f[9] = 2; f[10] = 3; f[11] = 4; fix_header_crc(f); }
static void c_version(uint8_t *f) { wr32(f + 12, 3); fix_header_crc(f); }
static void c_header_crc(uint8_t *f) { f[META + 6] ^= 1; }
static void c_misaligned(uint8_t *f) { wr64(f + DIR + 128, 130); fix_header_crc(f); }
static void c_overlap(uint8_t *f) { wr64(f + DIR + 128, 64); fix_header_crc(f); }
static void c_shape_overflow(uint8_t *f) { wr64(f + DIR + 64, UINT64_C(1) << 62); fix_header_crc(f); }
static void c_duplicate(uint8_t *f) { f[NAMES + 2] = 'b'; fix_header_crc(f); }
static void c_scale_count(uint8_t *f) { wr32(f + DIR + 128 + 32, 1); fix_header_crc(f); }
static void c_tensor_crc(uint8_t *f) { f[65] ^= 0x40; }
static void c_scale(uint8_t *f) {
    wr32(f + 192, 0xBF800000u); /* -1.0f */
    wr32(f + DIR + 256 + 52, qc_crc32c(0, f + 192, 8));
    fix_header_crc(f);
}
static void c_zero_point(uint8_t *f) {
    f[257] = 8; /* int4 zero point out of [-8, 7] */
    wr32(f + DIR + 384 + 52, qc_crc32c(0, f + 256, 2));
    fix_header_crc(f);
}
static void c_padding(uint8_t *f) { f[131] = 1; }

static void test_rejects_corruptions(void) {
    struct { const char *name; corrupt_fn fn; qc_status want; } cases[] = {
        {"magic", c_magic, QC_E_FORMAT_MAGIC},
        {"byte-order", c_big_endian, QC_E_FORMAT_BYTE_ORDER},
        {"version", c_version, QC_E_FORMAT_VERSION},
        {"header-checksum", c_header_crc, QC_E_FORMAT_HEADER_CHECKSUM},
        {"misaligned", c_misaligned, QC_E_FORMAT_MISALIGNED},
        {"overlap", c_overlap, QC_E_FORMAT_OVERLAP},
        {"shape-overflow", c_shape_overflow, QC_E_FORMAT_SHAPE_OVERFLOW},
        {"duplicate-name", c_duplicate, QC_E_FORMAT_DUPLICATE_NAME},
        {"scale-count", c_scale_count, QC_E_FORMAT_SCALE_COUNT},
        {"tensor-checksum", c_tensor_crc, QC_E_FORMAT_TENSOR_CHECKSUM},
        {"scale-value", c_scale, QC_E_FORMAT_SCALE_VALUE},
        {"zero-point-range", c_zero_point, QC_E_FORMAT_ZERO_POINT_RANGE},
        {"padding", c_padding, QC_E_FORMAT_PADDING},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        static uint8_t file[FILE_SIZE];
        build(file);
        cases[k].fn(file);
        qc_qcm_reader r;
        qc_status s = open_and_verify(file, FILE_SIZE, &r);
        if (s != cases[k].want) {
            printf("corruption %s: got status %d (%s), want %d\n", cases[k].name, (int)s, qc_status_string(s),
                   (int)cases[k].want);
            failures++;
        }
    }
    /* Every truncation is rejected as truncated. */
    static uint8_t file[FILE_SIZE];
    build(file);
    for (size_t size = 0; size < FILE_SIZE; size++) {
        qc_qcm_reader r;
        CHECK(qc_qcm_open_memory(file, size, &r) == QC_E_FORMAT_TRUNCATED);
    }
    qc_qcm_reader r;
    CHECK(qc_qcm_open_memory(NULL, 0, &r) == QC_E_NULL_POINTER);
    /* A reader whose open failed exposes nothing. */
    file[META + 6] ^= 1;
    CHECK(qc_qcm_open_memory(file, FILE_SIZE, &r) == QC_E_FORMAT_HEADER_CHECKSUM);
    CHECK(qc_qcm_tensor_count(&r) == 0 && r.is_open == 0);
    CHECK(qc_qcm_verify(&r) == QC_E_INVALID_ARGUMENT);
    qc_qcm_tensor t;
    CHECK(qc_qcm_tensor_info(&r, 0, &t) == QC_E_INVALID_ARGUMENT);
    build(file);
    c_scale_count(file);
    CHECK(qc_qcm_open_memory(file, FILE_SIZE, &r) == QC_E_FORMAT_SCALE_COUNT);
    CHECK(r.error_tensor == 1 && qc_qcm_tensor_count(&r) == 0);
    uint32_t index;
    CHECK(qc_qcm_find_tensor(&r, "w", &index) == QC_E_INVALID_ARGUMENT);
}

static void test_crc_paths_agree(void) {
    static uint8_t buf[4096 + 16];
    uint32_t x = 12345;
    for (size_t k = 0; k < sizeof buf; k++) {
        x = x * 1103515245u + 12345u;
        buf[k] = (uint8_t)(x >> 16);
    }
    CHECK(qc_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(qc_crc32c_portable(0, "123456789", 9) == 0xE3069283u);
    for (size_t start = 0; start < 16; start++) {
        for (size_t size = 0; size <= 4096; size += (size < 80 ? 1 : 397)) {
            uint32_t hw = qc_crc32c_hardware(0, buf + start, size);
            uint32_t sw = qc_crc32c_portable(0, buf + start, size);
            if (hw != sw) {
                printf("crc mismatch at start %zu size %zu: %08x != %08x\n", start, size, hw, sw);
                failures++;
            }
        }
    }
    printf("crc32c hardware path available: %d\n", qc_crc32c_hardware_available());
}

int main(void) {
    test_reads_a_valid_file();
    test_reads_half_scales();
    test_rejects_corruptions();
    test_crc_paths_agree();
    if (failures) {
        printf("test_format: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_format: ok\n");
    return 0;
}
