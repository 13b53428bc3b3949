/*
 * libFuzzer target for the .qcm reader (csrc/src/format.c).
 *
 * Every input is opened twice: as given, and with its header CRC-32C (and the tensor
 * CRCs the records point at) recomputed, so mutations reach the structural rules behind
 * the checksum. When a file opens, every accessor is exercised over it. The reader must
 * return a status for anything: ASan / UBSan / a crash / a timeout fail the job.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc/include -Icsrc/src \
 *       csrc/fuzz/fuzz_qcm.c csrc/src/format.c csrc/src/crc32c.c csrc/src/status.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qcore.h"

static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | p[k];
    return v;
}
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd64(p) & 0xFFFFFFFFu; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

static void check_status(qc_status s) {
    if (!(s == QC_OK || (s >= QC_E_FORMAT_FIRST && s <= QC_E_FORMAT_LAST) || s == QC_E_INVALID_ARGUMENT)) {
        abort(); /* a status outside the format range for file content is a bug */
    }
    if (qc_status_string(s) == NULL) abort();
}

static void exercise(const uint8_t *data, size_t size) {
    qc_qcm_reader r;
    qc_status s = qc_qcm_open_memory(data, size, &r);
    check_status(s);
    if (s != QC_OK) return;
    volatile uint64_t sink = 0;
    uint32_t n = qc_qcm_tensor_count(&r);
    for (uint32_t i = 0; i < n; i++) {
        qc_qcm_tensor t;
        if (qc_qcm_tensor_info(&r, i, &t) != QC_OK) abort();
        /* Every byte the record claims must be inside the buffer. */
        if (t.data_size) sink += t.data[0] + t.data[t.data_size - 1];
        sink += (unsigned char)t.name[t.name_length];
        uint32_t found;
        if (qc_qcm_find_tensor(&r, t.name, &found) != QC_OK || found != i) abort();
        check_status(qc_qcm_verify_tensor(&r, i));
    }
    uint64_t cursor = 0;
    qc_qcm_metadata m;
    while (qc_qcm_metadata_next(&r, &cursor, &m) == QC_OK) {
        sink += (unsigned char)m.key[m.key_length];
        if (m.type == QC_QCM_META_STRING) sink += (unsigned char)m.string[m.count];
        if (m.type == QC_QCM_META_ARRAY && m.array_bytes) sink += m.array_data[m.array_bytes - 1];
        if (m.type == QC_QCM_META_ARRAY && m.element_type == QC_QCM_META_STRING) {
            for (uint64_t k = 0; k < m.count && k < 64; k++) {
                const char *text;
                uint64_t length;
                if (qc_qcm_metadata_array_string(&m, k, &text, &length) != QC_OK) abort();
                sink += (unsigned char)text[length];
            }
        }
        qc_qcm_metadata again;
        if (qc_qcm_find_metadata(&r, m.key, &again) != QC_OK) abort();
    }
    check_status(qc_qcm_verify(&r));
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    exercise(data, size);
    if (size < QC_QCM_PREAMBLE_SIZE) return 0;
    uint8_t *copy = malloc(size);
    if (copy == NULL) return 0;
    memcpy(copy, data, size);
    uint64_t d0 = rd64(copy + 32), dl = rd64(copy + 40);
    uint32_t n = rd32(copy + 48);
    if (d0 <= size && dl <= size - d0) {
        for (uint64_t i = 0; i < n && (i + 1) * QC_QCM_RECORD_SIZE <= dl; i++) {
            uint8_t *rec = copy + d0 + i * QC_QCM_RECORD_SIZE;
            uint64_t offset = rd64(rec), length = rd64(rec + 8);
            if (offset <= size && length <= size - offset) wr32(rec + 52, qc_crc32c(0, copy + offset, length));
        }
        uint32_t crc = qc_crc32c(0, copy, 60);
        wr32(copy + 60, qc_crc32c(crc, copy + d0, dl));
        exercise(copy, size);
    }
    free(copy);
    return 0;
}
