/*
 * qcore .qcm model-file reader (docs/FORMAT.md). Included by qcore.h.
 *
 * The reader works in place over a caller-provided buffer (a read-only mmap or a block of
 * flash): it never allocates, never copies tensor data, and bounds-checks every offset,
 * size and count read from the file with overflow-safe arithmetic before using it.
 *
 *   qc_qcm_reader r;
 *   qc_status s = qc_qcm_open_memory(buf, len, &r);   header-level rules, O(directory)
 *   if (s == QC_OK) s = qc_qcm_verify(&r);            checksums and values, O(file)
 *   uint32_t i; qc_qcm_tensor info;
 *   if (s == QC_OK) s = qc_qcm_find_tensor(&r, "fc.weight", &i);
 *   if (s == QC_OK) s = qc_qcm_tensor_info(&r, i, &info);   info.data points into buf
 *
 * Every broken rule has its own status (QC_E_FORMAT_* in qcore.h, named after the rule of
 * docs/FORMAT.md); the reader struct then says which tensor or metadata entry failed and
 * the offending value. The buffer must outlive the reader and stay unmodified.
 */
#ifndef QCORE_FORMAT_H
#define QCORE_FORMAT_H

/* cdef: begin */
/* Fixed sizes and hard caps. QC_QCM_VERSION is the newest version read (and written
 * when a file uses a version-2 feature: float16 scales or omitted zero points);
 * QC_QCM_VERSION_MIN the oldest. */
enum {
    QC_QCM_VERSION = 2,
    QC_QCM_VERSION_MIN = 1,
    QC_QCM_PREAMBLE_SIZE = 64,
    QC_QCM_RECORD_SIZE = 128,
    QC_QCM_ALIGNMENT = 64,
    QC_QCM_MAX_RANK = 8,
    QC_QCM_MAX_DIRECTORY = 134217728, /* 128 MiB */
    QC_QCM_MAX_TENSORS = 262144,
    QC_QCM_MAX_METADATA = 65536,
    QC_QCM_MAX_NAME = 1024,
    QC_QCM_MAX_KEY = 256
};

/* Element types of tensor records. Sub-byte types are packed, first element in the low
 * bits of the first byte (docs/FORMAT.md, "Element types"). */
enum {
    QC_QCM_FLOAT32 = 1,
    QC_QCM_FLOAT16 = 2,
    QC_QCM_FLOAT64 = 3,
    QC_QCM_INT8 = 4,
    QC_QCM_UINT8 = 5,
    QC_QCM_INT16 = 6,
    QC_QCM_UINT16 = 7,
    QC_QCM_INT32 = 8,
    QC_QCM_UINT32 = 9,
    QC_QCM_INT64 = 10,
    QC_QCM_UINT64 = 11,
    QC_QCM_INT4 = 12,
    QC_QCM_UINT4 = 13,
    QC_QCM_INT2 = 14,
    QC_QCM_UINT2 = 15
};

enum { QC_QCM_ROLE_DATA = 0, QC_QCM_ROLE_SCALE = 1, QC_QCM_ROLE_ZERO_POINT = 2 };
enum { QC_QCM_SCHEME_NONE = 0, QC_QCM_SCHEME_PER_TENSOR = 1, QC_QCM_SCHEME_PER_AXIS = 2,
       QC_QCM_SCHEME_BLOCKED = 3 };
enum { QC_QCM_CONVENTION_NONE = 0, QC_QCM_CONVENTION_ONNX = 1, QC_QCM_CONVENTION_TFLITE = 2,
       QC_QCM_CONVENTION_PYTORCH = 3 };
enum { QC_QCM_META_STRING = 1, QC_QCM_META_INT64 = 2, QC_QCM_META_FLOAT64 = 3,
       QC_QCM_META_BOOL = 4, QC_QCM_META_ARRAY = 5 };

/* An opened file. Fields are read-only for callers; error_* describe the last failure. */
typedef struct qc_qcm_reader {
    const uint8_t *data;
    uint64_t size;
    uint64_t directory_offset;
    uint64_t directory_length;
    uint64_t names_offset;     /* absolute offset of the name pool */
    uint64_t metadata_offset;  /* absolute offset of the metadata section */
    uint64_t metadata_length;
    uint32_t tensor_count;
    uint32_t metadata_count;
    uint32_t names_length;
    uint32_t is_open;          /* 1 after a successful qc_qcm_open_memory, else 0 */
    uint32_t version;          /* format_version of the open file (1 or 2) */
    int64_t error_tensor;      /* table index of the offending tensor, or -1 */
    int64_t error_entry;       /* index of the offending metadata entry, or -1 */
    uint64_t error_value;      /* the offending value (field, offset, checksum, ...) */
    uint64_t error_expected;   /* what the rule expected, when it names one value */
} qc_qcm_reader;

/* One tensor record, decoded. Pointers point into the reader's buffer. */
typedef struct qc_qcm_tensor {
    const char *name;          /* NUL-terminated UTF-8 */
    uint32_t name_length;
    uint32_t element_type;     /* QC_QCM_FLOAT32, ... */
    uint32_t rank;
    uint64_t shape[8];         /* shape[rank..7] are 0 */
    uint64_t element_count;
    const uint8_t *data;       /* data_size bytes, 64-byte aligned within the file */
    uint64_t data_offset;
    uint64_t data_size;
    uint32_t crc32c;
    uint32_t role;             /* QC_QCM_ROLE_* */
    uint32_t scheme;           /* QC_QCM_SCHEME_* */
    uint32_t convention;       /* QC_QCM_CONVENTION_* */
    uint32_t axis;
    uint32_t block_size;
    uint32_t scale_index;      /* table index, or 0xFFFFFFFF */
    uint32_t zero_point_index; /* 0xFFFFFFFF for quantized data too when the zero points
                                  are omitted (version 2): they are all 0 */
    uint32_t owner_index;
} qc_qcm_tensor;

/* One metadata entry, decoded. Scalars are in int_value / float_value (bool as 0/1);
 * strings and arrays point into the buffer. */
typedef struct qc_qcm_metadata {
    const char *key;           /* NUL-terminated ASCII */
    uint32_t key_length;
    uint32_t type;             /* QC_QCM_META_* */
    uint32_t element_type;     /* arrays: QC_QCM_META_STRING .. QC_QCM_META_BOOL */
    uint64_t count;            /* arrays: element count; strings: byte length */
    int64_t int_value;
    double float_value;
    const char *string;        /* strings: NUL-terminated UTF-8 */
    const uint8_t *array_data; /* arrays: the encoded elements (little-endian) */
    uint64_t array_bytes;
} qc_qcm_metadata;

/* CRC-32C (Castagnoli). Start with crc = 0; feed the previous result to continue. */
uint32_t qc_crc32c(uint32_t crc, const void *data, size_t size);
uint32_t qc_crc32c_portable(uint32_t crc, const void *data, size_t size);
uint32_t qc_crc32c_hardware(uint32_t crc, const void *data, size_t size);
int qc_crc32c_hardware_available(void);

/* Validates the preamble and the whole directory (every header-level rule); O(size of the
 * directory), independent of the tensor data size. On failure the reader is left closed
 * (no tensors, no metadata; the other functions return QC_E_INVALID_ARGUMENT) with the
 * error_* fields describing the broken rule. */
qc_status qc_qcm_open_memory(const uint8_t *data, size_t size, qc_qcm_reader *out);
uint32_t qc_qcm_tensor_count(const qc_qcm_reader *reader);
qc_status qc_qcm_tensor_info(const qc_qcm_reader *reader, uint32_t index, qc_qcm_tensor *out);
/* Binary search by name (bytewise order); QC_E_FORMAT_NOT_FOUND when absent. */
qc_status qc_qcm_find_tensor(const qc_qcm_reader *reader, const char *name, uint32_t *index_out);
/* The value-level rules for one tensor (checksum, padding, scales, zero points), and for
 * every tensor in table order. */
qc_status qc_qcm_verify_tensor(qc_qcm_reader *reader, uint32_t index);
qc_status qc_qcm_verify(qc_qcm_reader *reader);
/* Metadata: iterate with *cursor = 0 until QC_E_FORMAT_NOT_FOUND, or look up one key. */
qc_status qc_qcm_metadata_next(const qc_qcm_reader *reader, uint64_t *cursor, qc_qcm_metadata *out);
qc_status qc_qcm_find_metadata(const qc_qcm_reader *reader, const char *key, qc_qcm_metadata *out);
/* Exact widening of an IEEE binary16 value (a float16 scale) to binary32. */
float qc_qcm_half_to_float(uint16_t bits);
/* Element `index` of a string array (O(index)); *string_out is NUL-terminated. */
qc_status qc_qcm_metadata_array_string(const qc_qcm_metadata *entry, uint64_t index,
                                       const char **string_out, uint64_t *length_out);
/* cdef: end */

#endif /* QCORE_FORMAT_H */
