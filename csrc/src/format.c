/*
 * The .qcm reader (docs/FORMAT.md). Works in place over the caller's buffer: no
 * allocation, no copy, every value read from the file bounds-checked before use. The
 * rules are checked in exactly the order docs/FORMAT.md lists them, so this reader and
 * the Python one (qcore/format/reader.py) report the same first broken rule.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

#define QC__NONE 0xFFFFFFFFu
#define QC__INT64_MAX_U ((uint64_t)INT64_MAX)

static const uint8_t qc__magic[8] = {0x89, 'Q', 'C', 'M', '\r', '\n', 0x1A, '\n'};

/* ---- little-endian loads (any host byte order, any alignment) ----------------------- */

static inline uint16_t qc__rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t qc__rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t qc__rd64(const uint8_t *p) {
    return (uint64_t)qc__rd32(p) | ((uint64_t)qc__rd32(p + 4) << 32);
}

/* ---- element types ------------------------------------------------------------------ */

typedef struct qc__etype {
    uint8_t bits;       /* 0: unknown code */
    uint8_t quantizable;
    uint8_t zp_type;    /* element type of the zero point tensor (the container) */
    int64_t qmin, qmax; /* range of quantized values */
} qc__etype;

static const qc__etype qc__etypes[16] = {
    [QC_QCM_FLOAT32] = {32, 0, 0, 0, 0},
    [QC_QCM_FLOAT16] = {16, 0, 0, 0, 0},
    [QC_QCM_FLOAT64] = {64, 0, 0, 0, 0},
    [QC_QCM_INT8] = {8, 1, QC_QCM_INT8, -128, 127},
    [QC_QCM_UINT8] = {8, 1, QC_QCM_UINT8, 0, 255},
    [QC_QCM_INT16] = {16, 1, QC_QCM_INT16, -32768, 32767},
    [QC_QCM_UINT16] = {16, 1, QC_QCM_UINT16, 0, 65535},
    [QC_QCM_INT32] = {32, 1, QC_QCM_INT32, INT32_MIN, INT32_MAX},
    [QC_QCM_UINT32] = {32, 0, 0, 0, 0},
    [QC_QCM_INT64] = {64, 0, 0, 0, 0},
    [QC_QCM_UINT64] = {64, 0, 0, 0, 0},
    [QC_QCM_INT4] = {4, 1, QC_QCM_INT8, -8, 7},
    [QC_QCM_UINT4] = {4, 1, QC_QCM_UINT8, 0, 15},
    [QC_QCM_INT2] = {2, 1, QC_QCM_INT8, -2, 1},
    [QC_QCM_UINT2] = {2, 1, QC_QCM_UINT8, 0, 3},
};

static const qc__etype *qc__etype_of(uint32_t code) {
    if (code >= QC__ARRAY_LEN(qc__etypes) || qc__etypes[code].bits == 0) {
        return NULL;
    }
    return &qc__etypes[code];
}

/* ---- record fields ------------------------------------------------------------------ */

enum {
    QC__R_DATA_OFFSET = 0,
    QC__R_DATA_SIZE = 8,
    QC__R_NAME_OFFSET = 16,
    QC__R_NAME_LENGTH = 20,
    QC__R_ELEMENT_TYPE = 24,
    QC__R_RANK = 26,
    QC__R_ROLE = 27,
    QC__R_SCHEME = 28,
    QC__R_CONVENTION = 29,
    QC__R_RESERVED0 = 30,
    QC__R_AXIS = 32,
    QC__R_BLOCK_SIZE = 36,
    QC__R_SCALE_INDEX = 40,
    QC__R_ZERO_POINT_INDEX = 44,
    QC__R_OWNER_INDEX = 48,
    QC__R_CRC = 52,
    QC__R_RESERVED1 = 56,
    QC__R_DIMS = 64
};

static inline const uint8_t *qc__record(const qc_qcm_reader *r, uint32_t i) {
    return r->data + r->directory_offset + (uint64_t)i * QC_QCM_RECORD_SIZE;
}

static inline qc_status qc__fail(qc_qcm_reader *r, qc_status status, int64_t tensor, uint64_t value,
                                 uint64_t expected) {
    r->error_tensor = tensor;
    r->error_value = value;
    r->error_expected = expected;
    return status;
}

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
static int qc__valid_utf8(const uint8_t *s, uint64_t n) {
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        uint64_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < need) {
            return 0;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return 0;
        }
        for (uint64_t k = 2; k <= need; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) {
                return 0;
            }
        }
        i += need + 1;
    }
    return 1;
}

/* Bytewise comparison, a proper prefix first (the order of the name index and keys). */
static int qc__compare(const uint8_t *a, uint64_t alen, const uint8_t *b, uint64_t blen) {
    int c = memcmp(a, b, (size_t)(alen < blen ? alen : blen));
    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

/* Element count and byte size of a shape: 0 on success, 1 when either exceeds 2^63 - 1. */
static int qc__shape_size(const uint8_t *rec, uint32_t rank, uint32_t bits, uint64_t *count_out,
                          uint64_t *bytes_out) {
    uint64_t count = 1;
    for (uint32_t d = 0; d < rank; d++) {
        uint64_t dim = qc__rd64(rec + QC__R_DIMS + 8 * d);
        if (__builtin_mul_overflow(count, dim, &count) || count > QC__INT64_MAX_U) {
            return 1;
        }
    }
    uint64_t bytes;
    if (bits >= 8) {
        if (__builtin_mul_overflow(count, (uint64_t)(bits / 8), &bytes) || bytes > QC__INT64_MAX_U) {
            return 1;
        }
    } else {
        uint64_t per_byte = 8u / bits;
        bytes = count / per_byte + (count % per_byte != 0);
    }
    *count_out = count;
    *bytes_out = bytes;
    return 0;
}

static inline const uint8_t *qc__name(const qc_qcm_reader *r, uint32_t i, uint32_t *len) {
    const uint8_t *rec = qc__record(r, i);
    *len = qc__rd32(rec + QC__R_NAME_LENGTH);
    return r->data + r->names_offset + qc__rd32(rec + QC__R_NAME_OFFSET);
}

/* ---- tensor records ----------------------------------------------------------------- */

/* Rules name .. block-size for each record in table order, then the closing name and hole
 * checks (docs/FORMAT.md, "Tensor table"). */
static qc_status qc__check_records(qc_qcm_reader *r) {
    uint64_t cursor = QC_QCM_PREAMBLE_SIZE;
    uint64_t pool_cursor = 0;
    const uint8_t *pool = r->data + r->names_offset;
    for (uint32_t i = 0; i < r->tensor_count; i++) {
        const uint8_t *rec = qc__record(r, i);
        int64_t t = (int64_t)i;

        uint32_t name_offset = qc__rd32(rec + QC__R_NAME_OFFSET);
        uint32_t name_length = qc__rd32(rec + QC__R_NAME_LENGTH);
        if (name_length == 0 || name_length > QC_QCM_MAX_NAME) {
            return qc__fail(r, QC_E_FORMAT_NAME, t, name_length, QC_QCM_MAX_NAME);
        }
        if (name_offset != pool_cursor) {
            return qc__fail(r, QC_E_FORMAT_NAME, t, name_offset, pool_cursor);
        }
        if ((uint64_t)name_length + 1 > r->names_length - pool_cursor) {
            return qc__fail(r, QC_E_FORMAT_NAME, t, name_length, r->names_length - pool_cursor);
        }
        const uint8_t *name = pool + name_offset;
        if (memchr(name, 0, name_length) != NULL || name[name_length] != 0 ||
            !qc__valid_utf8(name, name_length)) {
            return qc__fail(r, QC_E_FORMAT_NAME, t, name_offset, 0);
        }
        pool_cursor += (uint64_t)name_length + 1;

        uint32_t element_type = qc__rd16(rec + QC__R_ELEMENT_TYPE);
        const qc__etype *et = qc__etype_of(element_type);
        if (et == NULL) {
            return qc__fail(r, QC_E_FORMAT_ELEMENT_TYPE, t, element_type, 0);
        }
        uint32_t rank = rec[QC__R_RANK];
        if (rank > QC_QCM_MAX_RANK) {
            return qc__fail(r, QC_E_FORMAT_RANK, t, rank, QC_QCM_MAX_RANK);
        }
        if (qc__rd16(rec + QC__R_RESERVED0) != 0) {
            return qc__fail(r, QC_E_FORMAT_RESERVED, t, QC__R_RESERVED0, 0);
        }
        if (qc__rd64(rec + QC__R_RESERVED1) != 0) {
            return qc__fail(r, QC_E_FORMAT_RESERVED, t, QC__R_RESERVED1, 0);
        }
        for (uint32_t d = rank; d < QC_QCM_MAX_RANK; d++) {
            if (qc__rd64(rec + QC__R_DIMS + 8 * d) != 0) {
                return qc__fail(r, QC_E_FORMAT_RESERVED, t, QC__R_DIMS + 8 * d, 0);
            }
        }
        uint64_t count, bytes;
        if (qc__shape_size(rec, rank, et->bits, &count, &bytes)) {
            return qc__fail(r, QC_E_FORMAT_SHAPE_OVERFLOW, t, 0, QC__INT64_MAX_U);
        }
        uint64_t data_size = qc__rd64(rec + QC__R_DATA_SIZE);
        if (data_size != bytes) {
            return qc__fail(r, QC_E_FORMAT_DATA_SIZE, t, data_size, bytes);
        }
        uint64_t data_offset = qc__rd64(rec + QC__R_DATA_OFFSET);
        if (data_offset % QC_QCM_ALIGNMENT != 0) {
            return qc__fail(r, QC_E_FORMAT_MISALIGNED, t, data_offset, QC_QCM_ALIGNMENT);
        }
        if (data_offset < cursor) {
            return qc__fail(r, QC_E_FORMAT_OVERLAP, t, data_offset, cursor);
        }
        if (data_offset > cursor) {
            return qc__fail(r, QC_E_FORMAT_HOLE, t, data_offset, cursor);
        }
        /* data_offset == cursor <= directory_offset, data_size <= 2^63 - 1: no overflow. */
        uint64_t end = data_offset + data_size;
        if (end > r->directory_offset) {
            return qc__fail(r, QC_E_FORMAT_OVERLAP, t, end, r->directory_offset);
        }
        cursor = (end + QC_QCM_ALIGNMENT - 1) / QC_QCM_ALIGNMENT * QC_QCM_ALIGNMENT;

        uint32_t role = rec[QC__R_ROLE];
        if (role > QC_QCM_ROLE_ZERO_POINT) {
            return qc__fail(r, QC_E_FORMAT_ROLE, t, role, 0);
        }
        uint32_t scheme = rec[QC__R_SCHEME];
        if (scheme > QC_QCM_SCHEME_BLOCKED) {
            return qc__fail(r, QC_E_FORMAT_SCHEME, t, scheme, 0);
        }
        uint32_t convention = rec[QC__R_CONVENTION];
        if (scheme == QC_QCM_SCHEME_NONE ? convention != QC_QCM_CONVENTION_NONE
                                         : (convention < QC_QCM_CONVENTION_ONNX ||
                                            convention > QC_QCM_CONVENTION_PYTORCH)) {
            return qc__fail(r, QC_E_FORMAT_CONVENTION, t, convention, 0);
        }
        if (scheme != QC_QCM_SCHEME_NONE && !et->quantizable) {
            return qc__fail(r, QC_E_FORMAT_QUANT_TYPE, t, element_type, 0);
        }
        uint32_t axis = qc__rd32(rec + QC__R_AXIS);
        if (scheme == QC_QCM_SCHEME_PER_AXIS || scheme == QC_QCM_SCHEME_BLOCKED ? axis >= rank : axis != 0) {
            return qc__fail(r, QC_E_FORMAT_AXIS, t, axis, rank);
        }
        uint32_t block_size = qc__rd32(rec + QC__R_BLOCK_SIZE);
        if (scheme == QC_QCM_SCHEME_BLOCKED ? block_size == 0 : block_size != 0) {
            return qc__fail(r, QC_E_FORMAT_BLOCK_SIZE, t, block_size, 0);
        }
    }
    if (pool_cursor != r->names_length) {
        return qc__fail(r, QC_E_FORMAT_NAME, -1, pool_cursor, r->names_length);
    }
    if (cursor != r->directory_offset) {
        return qc__fail(r, QC_E_FORMAT_HOLE, -1, r->directory_offset, cursor);
    }
    return QC_OK;
}

static int qc__same_shape(const uint8_t *a, const uint8_t *b) {
    if (a[QC__R_RANK] != b[QC__R_RANK]) {
        return 0;
    }
    for (uint32_t d = 0; d < a[QC__R_RANK]; d++) {
        if (qc__rd64(a + QC__R_DIMS + 8 * d) != qc__rd64(b + QC__R_DIMS + 8 * d)) {
            return 0;
        }
    }
    return 1;
}

/* Does the scale record's shape match the scheme of the data record? */
static int qc__scale_shape_ok(const uint8_t *rec, const uint8_t *scale) {
    uint32_t scheme = rec[QC__R_SCHEME];
    uint32_t rank = rec[QC__R_RANK];
    uint32_t axis = qc__rd32(rec + QC__R_AXIS);
    uint32_t scale_rank = scale[QC__R_RANK];
    if (scheme == QC_QCM_SCHEME_PER_TENSOR) {
        for (uint32_t d = 0; d < scale_rank; d++) {
            if (qc__rd64(scale + QC__R_DIMS + 8 * d) != 1) {
                return 0;
            }
        }
        return 1;
    }
    if (scheme == QC_QCM_SCHEME_PER_AXIS) {
        return scale_rank == 1 && qc__rd64(scale + QC__R_DIMS) == qc__rd64(rec + QC__R_DIMS + 8 * axis);
    }
    /* blocked */
    if (scale_rank != rank) {
        return 0;
    }
    uint64_t block = qc__rd32(rec + QC__R_BLOCK_SIZE);
    for (uint32_t d = 0; d < rank; d++) {
        uint64_t dim = qc__rd64(rec + QC__R_DIMS + 8 * d);
        uint64_t want = d == axis ? dim / block + (dim % block != 0) : dim;
        if (qc__rd64(scale + QC__R_DIMS + 8 * d) != want) {
            return 0;
        }
    }
    return 1;
}

/* Rules reference, quant-type (of scales and zero points), scale-count, zero-point-shape. */
static qc_status qc__check_references(qc_qcm_reader *r) {
    uint32_t n = r->tensor_count;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *rec = qc__record(r, i);
        int64_t t = (int64_t)i;
        uint32_t role = rec[QC__R_ROLE];
        uint32_t scheme = rec[QC__R_SCHEME];
        uint32_t scale_index = qc__rd32(rec + QC__R_SCALE_INDEX);
        uint32_t zp_index = qc__rd32(rec + QC__R_ZERO_POINT_INDEX);
        uint32_t owner = qc__rd32(rec + QC__R_OWNER_INDEX);
        if (role == QC_QCM_ROLE_DATA) {
            if (owner != QC__NONE) {
                return qc__fail(r, QC_E_FORMAT_REFERENCE, t, owner, QC__NONE);
            }
            if (scheme == QC_QCM_SCHEME_NONE) {
                if (scale_index != QC__NONE) {
                    return qc__fail(r, QC_E_FORMAT_REFERENCE, t, scale_index, QC__NONE);
                }
                if (zp_index != QC__NONE) {
                    return qc__fail(r, QC_E_FORMAT_REFERENCE, t, zp_index, QC__NONE);
                }
                continue;
            }
            if (scale_index >= n) {
                return qc__fail(r, QC_E_FORMAT_REFERENCE, t, scale_index, n);
            }
            const uint8_t *scale = qc__record(r, scale_index);
            if (scale[QC__R_ROLE] != QC_QCM_ROLE_SCALE || qc__rd32(scale + QC__R_OWNER_INDEX) != i) {
                return qc__fail(r, QC_E_FORMAT_REFERENCE, t, scale_index, 0);
            }
            /* Version 2: no zero-point record (NONE) means every zero point is 0. */
            const uint8_t *zp = NULL;
            if (zp_index != QC__NONE || r->version < 2) {
                if (zp_index >= n) {
                    return qc__fail(r, QC_E_FORMAT_REFERENCE, t, zp_index, n);
                }
                zp = qc__record(r, zp_index);
                if (zp[QC__R_ROLE] != QC_QCM_ROLE_ZERO_POINT || qc__rd32(zp + QC__R_OWNER_INDEX) != i) {
                    return qc__fail(r, QC_E_FORMAT_REFERENCE, t, zp_index, 0);
                }
            }
            uint32_t element_type = qc__rd16(rec + QC__R_ELEMENT_TYPE);
            uint32_t scale_type = qc__rd16(scale + QC__R_ELEMENT_TYPE);
            if (scale_type != QC_QCM_FLOAT32 && !(scale_type == QC_QCM_FLOAT16 && r->version >= 2)) {
                return qc__fail(r, QC_E_FORMAT_QUANT_TYPE, t, scale_type, QC_QCM_FLOAT32);
            }
            if (zp != NULL) {
                uint32_t zp_type = qc__rd16(zp + QC__R_ELEMENT_TYPE);
                uint32_t want_zp_type = qc__etypes[element_type].zp_type;
                if (zp_type != want_zp_type) {
                    return qc__fail(r, QC_E_FORMAT_QUANT_TYPE, t, zp_type, want_zp_type);
                }
            }
            if (!qc__scale_shape_ok(rec, scale)) {
                return qc__fail(r, QC_E_FORMAT_SCALE_COUNT, t, scale_index, 0);
            }
            if (zp != NULL && !qc__same_shape(scale, zp)) {
                return qc__fail(r, QC_E_FORMAT_ZERO_POINT_SHAPE, t, zp_index, scale_index);
            }
        } else {
            if (scheme != QC_QCM_SCHEME_NONE) {
                return qc__fail(r, QC_E_FORMAT_REFERENCE, t, scheme, QC_QCM_SCHEME_NONE);
            }
            if (scale_index != QC__NONE) {
                return qc__fail(r, QC_E_FORMAT_REFERENCE, t, scale_index, QC__NONE);
            }
            if (zp_index != QC__NONE) {
                return qc__fail(r, QC_E_FORMAT_REFERENCE, t, zp_index, QC__NONE);
            }
            if (owner >= n) {
                return qc__fail(r, QC_E_FORMAT_REFERENCE, t, owner, n);
            }
            const uint8_t *o = qc__record(r, owner);
            uint32_t back = qc__rd32(o + (role == QC_QCM_ROLE_SCALE ? QC__R_SCALE_INDEX : QC__R_ZERO_POINT_INDEX));
            if (o[QC__R_ROLE] != QC_QCM_ROLE_DATA || back != i) {
                return qc__fail(r, QC_E_FORMAT_REFERENCE, t, owner, 0);
            }
        }
    }
    return QC_OK;
}

/* Rules name-index and duplicate-name. */
static qc_status qc__check_name_index(qc_qcm_reader *r) {
    const uint8_t *index = r->data + r->directory_offset + (uint64_t)r->tensor_count * QC_QCM_RECORD_SIZE;
    uint32_t prev = QC__NONE;
    for (uint32_t k = 0; k < r->tensor_count; k++) {
        uint32_t i = qc__rd32(index + 4 * (uint64_t)k);
        if (i >= r->tensor_count) {
            return qc__fail(r, QC_E_FORMAT_NAME_INDEX, -1, i, r->tensor_count);
        }
        if (k > 0) {
            uint32_t alen, blen;
            const uint8_t *a = qc__name(r, prev, &alen);
            const uint8_t *b = qc__name(r, i, &blen);
            int c = qc__compare(a, alen, b, blen);
            if (c == 0) {
                return qc__fail(r, QC_E_FORMAT_DUPLICATE_NAME, (int64_t)i, prev, i);
            }
            if (c > 0) {
                return qc__fail(r, QC_E_FORMAT_NAME_INDEX, (int64_t)i, k, 0);
            }
        }
        prev = i;
    }
    return QC_OK;
}

/* ---- metadata ----------------------------------------------------------------------- */

static int qc__key_char(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static const char qc__graph_prefix[] = "qcore.graph.";
static const char qc__graph_version_key[] = "qcore.graph.schema_version";

/* Parses one entry at *pos (absolute offset) within [.., end) into *out and advances *pos.
 * Checks every per-entry metadata rule (key, type, value, bounds); ordering and the graph
 * schema are checked by the caller. On failure *bad_value is the offending value. */
static qc_status qc__parse_entry(const qc_qcm_reader *r, uint64_t *pos, uint64_t end, qc_qcm_metadata *out,
                                 uint64_t *bad_value) {
    const uint8_t *d = r->data;
    uint64_t p = *pos;
    memset(out, 0, sizeof *out);
    *bad_value = p;
    if (end - p < 2) {
        return QC_E_FORMAT_METADATA_BOUNDS;
    }
    uint32_t key_length = qc__rd16(d + p);
    if (key_length == 0 || key_length > QC_QCM_MAX_KEY) {
        *bad_value = key_length;
        return QC_E_FORMAT_METADATA_KEY;
    }
    p += 2;
    if (end - p < (uint64_t)key_length + 2) {
        return QC_E_FORMAT_METADATA_BOUNDS;
    }
    for (uint32_t k = 0; k < key_length; k++) {
        if (!qc__key_char(d[p + k])) {
            *bad_value = d[p + k];
            return QC_E_FORMAT_METADATA_KEY;
        }
    }
    if (d[p + key_length] != 0) {
        *bad_value = d[p + key_length];
        return QC_E_FORMAT_METADATA_KEY;
    }
    out->key = (const char *)(d + p);
    out->key_length = key_length;
    p += (uint64_t)key_length + 1;
    uint32_t type = d[p++];
    out->type = type;
    uint32_t element_type = type;
    uint64_t count = 1;
    if (type == QC_QCM_META_ARRAY) {
        if (end - p < 9) {
            return QC_E_FORMAT_METADATA_BOUNDS;
        }
        element_type = d[p];
        if (element_type < QC_QCM_META_STRING || element_type > QC_QCM_META_BOOL) {
            *bad_value = element_type;
            return QC_E_FORMAT_METADATA_TYPE;
        }
        count = qc__rd64(d + p + 1);
        p += 9;
        out->element_type = element_type;
        out->count = count;
        out->array_data = d + p;
    } else if (type < QC_QCM_META_STRING || type > QC_QCM_META_BOOL) {
        *bad_value = type;
        return QC_E_FORMAT_METADATA_TYPE;
    }
    uint64_t remaining = end - p;
    switch (element_type) {
    case QC_QCM_META_INT64:
    case QC_QCM_META_FLOAT64:
        if (count > remaining / 8) {
            return QC_E_FORMAT_METADATA_BOUNDS;
        }
        if (type != QC_QCM_META_ARRAY) {
            uint64_t bits = qc__rd64(d + p);
            out->int_value = (int64_t)bits;
            memcpy(&out->float_value, &bits, 8);
            if (type == QC_QCM_META_FLOAT64) {
                out->int_value = 0;
            } else {
                out->float_value = 0.0;
            }
        }
        p += count * 8;
        break;
    case QC_QCM_META_BOOL:
        if (count > remaining) {
            return QC_E_FORMAT_METADATA_BOUNDS;
        }
        for (uint64_t k = 0; k < count; k++) {
            if (d[p + k] > 1) {
                *bad_value = d[p + k];
                return QC_E_FORMAT_METADATA_VALUE;
            }
        }
        if (type != QC_QCM_META_ARRAY) {
            out->int_value = d[p];
        }
        p += count;
        break;
    default: /* strings: u32 length, bytes, NUL; at least 5 bytes each */
        if (count > remaining / 5) {
            return QC_E_FORMAT_METADATA_BOUNDS;
        }
        for (uint64_t k = 0; k < count; k++) {
            if (end - p < 4) {
                return QC_E_FORMAT_METADATA_BOUNDS;
            }
            uint64_t length = qc__rd32(d + p);
            p += 4;
            if (end - p < length + 1) {
                return QC_E_FORMAT_METADATA_BOUNDS;
            }
            if (memchr(d + p, 0, (size_t)length) != NULL || d[p + length] != 0 ||
                !qc__valid_utf8(d + p, length)) {
                *bad_value = p;
                return QC_E_FORMAT_METADATA_VALUE;
            }
            if (type != QC_QCM_META_ARRAY) {
                out->string = (const char *)(d + p);
                out->count = length;
            }
            p += length + 1;
        }
        break;
    }
    if (type == QC_QCM_META_ARRAY) {
        out->array_bytes = p - (uint64_t)(out->array_data - d);
    }
    *pos = p;
    return QC_OK;
}

static qc_status qc__check_metadata(qc_qcm_reader *r) {
    uint64_t pos = r->metadata_offset;
    uint64_t end = r->metadata_offset + r->metadata_length;
    int graph_keys = 0, graph_version_ok = 0;
    const char *prev_key = NULL;
    uint32_t prev_length = 0;
    for (uint32_t e = 0; e < r->metadata_count; e++) {
        qc_qcm_metadata m;
        uint64_t bad;
        qc_status s = qc__parse_entry(r, &pos, end, &m, &bad);
        r->error_entry = (int64_t)e;
        if (s != QC_OK) {
            return qc__fail(r, s, -1, bad, 0);
        }
        if (prev_key != NULL) {
            int c = qc__compare((const uint8_t *)prev_key, prev_length, (const uint8_t *)m.key, m.key_length);
            if (c == 0) {
                return qc__fail(r, QC_E_FORMAT_DUPLICATE_KEY, -1, e, 0);
            }
            if (c > 0) {
                return qc__fail(r, QC_E_FORMAT_METADATA_ORDER, -1, e, 0);
            }
        }
        prev_key = m.key;
        prev_length = m.key_length;
        if (m.key_length >= sizeof qc__graph_prefix - 1 &&
            memcmp(m.key, qc__graph_prefix, sizeof qc__graph_prefix - 1) == 0) {
            graph_keys = 1;
            if (m.key_length == sizeof qc__graph_version_key - 1 &&
                memcmp(m.key, qc__graph_version_key, m.key_length) == 0) {
                graph_version_ok = m.type == QC_QCM_META_INT64 && m.int_value >= 1;
            }
        }
    }
    r->error_entry = -1;
    if (pos != end) {
        return qc__fail(r, QC_E_FORMAT_METADATA_BOUNDS, -1, pos, end);
    }
    if (graph_keys && !graph_version_ok) {
        return qc__fail(r, QC_E_FORMAT_GRAPH_SCHEMA, -1, 0, 1);
    }
    return QC_OK;
}

/* ---- open --------------------------------------------------------------------------- */

qc_status qc_qcm_open_memory(const uint8_t *data, size_t size, qc_qcm_reader *out) {
    if (out == NULL || data == NULL) {
        return QC_E_NULL_POINTER;
    }
    memset(out, 0, sizeof *out);
    out->data = data;
    out->size = size;
    out->error_tensor = -1;
    out->error_entry = -1;
    qc_qcm_reader *r = out;

    if (size < QC_QCM_PREAMBLE_SIZE) {
        return qc__fail(r, QC_E_FORMAT_TRUNCATED, -1, size, QC_QCM_PREAMBLE_SIZE);
    }
    if (memcmp(data, qc__magic, sizeof qc__magic) != 0) {
        return qc__fail(r, QC_E_FORMAT_MAGIC, -1, qc__rd64(data), qc__rd64(qc__magic));
    }
    uint32_t mark = qc__rd32(data + 8);
    if (mark != 0x01020304u) {
        return qc__fail(r, QC_E_FORMAT_BYTE_ORDER, -1, mark, 0x01020304u);
    }
    uint32_t version = qc__rd32(data + 12);
    if (version < QC_QCM_VERSION_MIN || version > QC_QCM_VERSION) {
        return qc__fail(r, QC_E_FORMAT_VERSION, -1, version, QC_QCM_VERSION);
    }
    r->version = version;
    uint32_t flags = qc__rd32(data + 16);
    if (flags != 0) {
        return qc__fail(r, QC_E_FORMAT_FLAGS, -1, flags, 0);
    }
    uint32_t alignment = qc__rd32(data + 20);
    if (alignment != QC_QCM_ALIGNMENT) {
        return qc__fail(r, QC_E_FORMAT_ALIGNMENT, -1, alignment, QC_QCM_ALIGNMENT);
    }
    uint64_t file_size = qc__rd64(data + 24);
    if ((uint64_t)size < file_size) {
        return qc__fail(r, QC_E_FORMAT_TRUNCATED, -1, size, file_size);
    }
    if ((uint64_t)size > file_size) {
        return qc__fail(r, QC_E_FORMAT_TRAILING_DATA, -1, size, file_size);
    }
    uint64_t dir_offset = qc__rd64(data + 32);
    uint64_t dir_length = qc__rd64(data + 40);
    if (dir_length > QC_QCM_MAX_DIRECTORY) {
        return qc__fail(r, QC_E_FORMAT_HEADER_TOO_LARGE, -1, dir_length, QC_QCM_MAX_DIRECTORY);
    }
    uint32_t tensor_count = qc__rd32(data + 48);
    if (tensor_count > QC_QCM_MAX_TENSORS) {
        return qc__fail(r, QC_E_FORMAT_TENSOR_COUNT, -1, tensor_count, QC_QCM_MAX_TENSORS);
    }
    uint32_t metadata_count = qc__rd32(data + 52);
    if (metadata_count > QC_QCM_MAX_METADATA) {
        return qc__fail(r, QC_E_FORMAT_METADATA_COUNT, -1, metadata_count, QC_QCM_MAX_METADATA);
    }
    uint32_t names_length = qc__rd32(data + 56);
    uint64_t fixed = (uint64_t)tensor_count * (QC_QCM_RECORD_SIZE + 4) + names_length;
    if (dir_offset < QC_QCM_PREAMBLE_SIZE || dir_offset % QC_QCM_ALIGNMENT != 0 || dir_offset > file_size ||
        file_size - dir_offset != dir_length) {
        return qc__fail(r, QC_E_FORMAT_DIRECTORY_BOUNDS, -1, dir_offset, file_size - dir_length);
    }
    if (fixed > dir_length) {
        return qc__fail(r, QC_E_FORMAT_DIRECTORY_BOUNDS, -1, fixed, dir_length);
    }
    uint32_t stored_crc = qc__rd32(data + 60);
    uint32_t crc = qc_crc32c(0, data, 60);
    crc = qc_crc32c(crc, data + dir_offset, (size_t)dir_length);
    if (crc != stored_crc) {
        return qc__fail(r, QC_E_FORMAT_HEADER_CHECKSUM, -1, crc, stored_crc);
    }
    r->directory_offset = dir_offset;
    r->directory_length = dir_length;
    r->tensor_count = tensor_count;
    r->metadata_count = metadata_count;
    r->names_length = names_length;
    r->names_offset = dir_offset + (uint64_t)tensor_count * (QC_QCM_RECORD_SIZE + 4);
    r->metadata_offset = r->names_offset + names_length;
    r->metadata_length = dir_length - fixed;

    qc_status status = qc__check_records(r);
    if (status == QC_OK) status = qc__check_references(r);
    if (status == QC_OK) status = qc__check_name_index(r);
    if (status == QC_OK) status = qc__check_metadata(r);
    if (status != QC_OK) {
        /* Leave nothing a caller could read through without checking the status. */
        r->tensor_count = 0;
        r->metadata_count = 0;
        r->metadata_length = 0;
        return status;
    }
    r->is_open = 1;
    return QC_OK;
}

/* ---- accessors ---------------------------------------------------------------------- */

uint32_t qc_qcm_tensor_count(const qc_qcm_reader *reader) {
    return reader != NULL && reader->is_open ? reader->tensor_count : 0;
}

qc_status qc_qcm_tensor_info(const qc_qcm_reader *reader, uint32_t index, qc_qcm_tensor *out) {
    if (reader == NULL || out == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (!reader->is_open || index >= reader->tensor_count) {
        return QC_E_INVALID_ARGUMENT;
    }
    const uint8_t *rec = qc__record(reader, index);
    memset(out, 0, sizeof *out);
    out->name = (const char *)qc__name(reader, index, &out->name_length);
    out->element_type = qc__rd16(rec + QC__R_ELEMENT_TYPE);
    out->rank = rec[QC__R_RANK];
    out->element_count = 1;
    for (uint32_t d = 0; d < out->rank; d++) {
        out->shape[d] = qc__rd64(rec + QC__R_DIMS + 8 * d);
        out->element_count *= out->shape[d];
    }
    out->data_offset = qc__rd64(rec + QC__R_DATA_OFFSET);
    out->data_size = qc__rd64(rec + QC__R_DATA_SIZE);
    out->data = reader->data + out->data_offset;
    out->crc32c = qc__rd32(rec + QC__R_CRC);
    out->role = rec[QC__R_ROLE];
    out->scheme = rec[QC__R_SCHEME];
    out->convention = rec[QC__R_CONVENTION];
    out->axis = qc__rd32(rec + QC__R_AXIS);
    out->block_size = qc__rd32(rec + QC__R_BLOCK_SIZE);
    out->scale_index = qc__rd32(rec + QC__R_SCALE_INDEX);
    out->zero_point_index = qc__rd32(rec + QC__R_ZERO_POINT_INDEX);
    out->owner_index = qc__rd32(rec + QC__R_OWNER_INDEX);
    return QC_OK;
}

qc_status qc_qcm_find_tensor(const qc_qcm_reader *reader, const char *name, uint32_t *index_out) {
    if (reader == NULL || name == NULL || index_out == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (!reader->is_open) {
        return QC_E_INVALID_ARGUMENT;
    }
    const uint8_t *index = reader->data + reader->directory_offset +
                           (uint64_t)reader->tensor_count * QC_QCM_RECORD_SIZE;
    size_t length = strlen(name);
    uint32_t lo = 0, hi = reader->tensor_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t i = qc__rd32(index + 4 * (uint64_t)mid);
        uint32_t cand_length;
        const uint8_t *cand = qc__name(reader, i, &cand_length);
        int c = qc__compare(cand, cand_length, (const uint8_t *)name, length);
        if (c == 0) {
            *index_out = i;
            return QC_OK;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return QC_E_FORMAT_NOT_FOUND;
}

/* ---- value-level rules -------------------------------------------------------------- */

/* Rules tensor-checksum and padding for one record. */
static qc_status qc__verify_bytes(qc_qcm_reader *r, uint32_t i) {
    const uint8_t *rec = qc__record(r, i);
    uint64_t offset = qc__rd64(rec + QC__R_DATA_OFFSET);
    uint64_t size = qc__rd64(rec + QC__R_DATA_SIZE);
    const uint8_t *p = r->data + offset;
    uint32_t stored = qc__rd32(rec + QC__R_CRC);
    uint32_t crc = qc_crc32c(0, p, (size_t)size);
    if (crc != stored) {
        return qc__fail(r, QC_E_FORMAT_TENSOR_CHECKSUM, (int64_t)i, crc, stored);
    }
    uint32_t bits = qc__etypes[qc__rd16(rec + QC__R_ELEMENT_TYPE)].bits;
    if (bits < 8 && size > 0) {
        uint64_t count = 1;
        for (uint32_t d = 0; d < rec[QC__R_RANK]; d++) {
            count *= qc__rd64(rec + QC__R_DIMS + 8 * d);
        }
        uint32_t used = (uint32_t)((count * bits) % 8); /* bits used in the last byte */
        if (used != 0 && (p[size - 1] >> used) != 0) {
            return qc__fail(r, QC_E_FORMAT_PADDING, (int64_t)i, offset + size - 1, 0);
        }
    }
    uint64_t end = offset + size;
    uint64_t padded = (end + QC_QCM_ALIGNMENT - 1) / QC_QCM_ALIGNMENT * QC_QCM_ALIGNMENT;
    for (uint64_t k = end; k < padded; k++) {
        if (r->data[k] != 0) {
            return qc__fail(r, QC_E_FORMAT_PADDING, (int64_t)i, k, 0);
        }
    }
    return QC_OK;
}

/* Rules scale-value and zero-point-range for a quantized data record. */
static qc_status qc__verify_params(qc_qcm_reader *r, uint32_t i) {
    const uint8_t *rec = qc__record(r, i);
    if (rec[QC__R_ROLE] != QC_QCM_ROLE_DATA || rec[QC__R_SCHEME] == QC_QCM_SCHEME_NONE) {
        return QC_OK;
    }
    const uint8_t *scale = qc__record(r, qc__rd32(rec + QC__R_SCALE_INDEX));
    const uint8_t *sp = r->data + qc__rd64(scale + QC__R_DATA_OFFSET);
    if (qc__rd16(scale + QC__R_ELEMENT_TYPE) == QC_QCM_FLOAT16) {
        uint64_t scale_count = qc__rd64(scale + QC__R_DATA_SIZE) / 2;
        for (uint64_t k = 0; k < scale_count; k++) {
            uint32_t bits = qc__rd16(sp + 2 * k);
            /* finite (exponent not all ones), positive (sign clear) and not zero */
            if ((bits & 0x7C00u) == 0x7C00u || (bits & 0x8000u) != 0 || bits == 0) {
                return qc__fail(r, QC_E_FORMAT_SCALE_VALUE, (int64_t)i, bits, k);
            }
        }
    } else {
        uint64_t scale_count = qc__rd64(scale + QC__R_DATA_SIZE) / 4;
        for (uint64_t k = 0; k < scale_count; k++) {
            uint32_t bits = qc__rd32(sp + 4 * k);
            float value;
            memcpy(&value, &bits, 4);
            if (!(isfinite(value) && value > 0.0f)) {
                return qc__fail(r, QC_E_FORMAT_SCALE_VALUE, (int64_t)i, bits, k);
            }
        }
    }
    if (qc__rd32(rec + QC__R_ZERO_POINT_INDEX) == QC__NONE) {
        return QC_OK; /* omitted zero points are all 0 */
    }
    const qc__etype *et = &qc__etypes[qc__rd16(rec + QC__R_ELEMENT_TYPE)];
    const uint8_t *zp = qc__record(r, qc__rd32(rec + QC__R_ZERO_POINT_INDEX));
    const uint8_t *zpp = r->data + qc__rd64(zp + QC__R_DATA_OFFSET);
    uint32_t width = qc__etypes[et->zp_type].bits / 8;
    uint64_t zp_count = qc__rd64(zp + QC__R_DATA_SIZE) / width;
    for (uint64_t k = 0; k < zp_count; k++) {
        int64_t value;
        const uint8_t *q = zpp + (uint64_t)width * k;
        switch (et->zp_type) {
        case QC_QCM_INT8: value = (int8_t)q[0]; break;
        case QC_QCM_UINT8: value = q[0]; break;
        case QC_QCM_INT16: value = (int16_t)qc__rd16(q); break;
        case QC_QCM_UINT16: value = qc__rd16(q); break;
        default: value = (int32_t)qc__rd32(q); break;
        }
        if (value < et->qmin || value > et->qmax) {
            return qc__fail(r, QC_E_FORMAT_ZERO_POINT_RANGE, (int64_t)i, (uint64_t)value, k);
        }
    }
    return QC_OK;
}

qc_status qc_qcm_verify_tensor(qc_qcm_reader *reader, uint32_t index) {
    if (reader == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (!reader->is_open || index >= reader->tensor_count) {
        return QC_E_INVALID_ARGUMENT;
    }
    QC__TRY(qc__verify_bytes(reader, index));
    const uint8_t *rec = qc__record(reader, index);
    if (rec[QC__R_ROLE] == QC_QCM_ROLE_DATA && rec[QC__R_SCHEME] != QC_QCM_SCHEME_NONE) {
        QC__TRY(qc__verify_bytes(reader, qc__rd32(rec + QC__R_SCALE_INDEX)));
        uint32_t zp_index = qc__rd32(rec + QC__R_ZERO_POINT_INDEX);
        if (zp_index != QC__NONE) {
            QC__TRY(qc__verify_bytes(reader, zp_index));
        }
    }
    return qc__verify_params(reader, index);
}

qc_status qc_qcm_verify(qc_qcm_reader *reader) {
    if (reader == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (!reader->is_open) {
        return QC_E_INVALID_ARGUMENT;
    }
    for (uint32_t i = 0; i < reader->tensor_count; i++) {
        QC__TRY(qc__verify_bytes(reader, i));
    }
    for (uint32_t i = 0; i < reader->tensor_count; i++) {
        QC__TRY(qc__verify_params(reader, i));
    }
    return QC_OK;
}

/* ---- metadata accessors ------------------------------------------------------------- */

qc_status qc_qcm_metadata_next(const qc_qcm_reader *reader, uint64_t *cursor, qc_qcm_metadata *out) {
    if (reader == NULL || cursor == NULL || out == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (!reader->is_open) {
        return QC_E_INVALID_ARGUMENT;
    }
    uint64_t end = reader->metadata_offset + reader->metadata_length;
    uint64_t pos = *cursor == 0 ? reader->metadata_offset : *cursor;
    if (pos < reader->metadata_offset || pos >= end) {
        return QC_E_FORMAT_NOT_FOUND;
    }
    uint64_t bad;
    /* Already validated at open; a failure here means the cursor was not one we gave out. */
    if (qc__parse_entry(reader, &pos, end, out, &bad) != QC_OK) {
        return QC_E_INVALID_ARGUMENT;
    }
    *cursor = pos;
    return QC_OK;
}

qc_status qc_qcm_find_metadata(const qc_qcm_reader *reader, const char *key, qc_qcm_metadata *out) {
    if (reader == NULL || key == NULL || out == NULL) {
        return QC_E_NULL_POINTER;
    }
    size_t length = strlen(key);
    uint64_t cursor = 0;
    qc_qcm_metadata m;
    while (qc_qcm_metadata_next(reader, &cursor, &m) == QC_OK) {
        if (m.key_length == length && memcmp(m.key, key, length) == 0) {
            *out = m;
            return QC_OK;
        }
    }
    return QC_E_FORMAT_NOT_FOUND;
}

qc_status qc_qcm_metadata_array_string(const qc_qcm_metadata *entry, uint64_t index, const char **string_out,
                                       uint64_t *length_out) {
    if (entry == NULL || string_out == NULL || length_out == NULL) {
        return QC_E_NULL_POINTER;
    }
    if (entry->type != QC_QCM_META_ARRAY || entry->element_type != QC_QCM_META_STRING || index >= entry->count) {
        return QC_E_INVALID_ARGUMENT;
    }
    const uint8_t *p = entry->array_data;
    for (uint64_t k = 0; k < index; k++) {
        p += 4 + (uint64_t)qc__rd32(p) + 1;
    }
    *length_out = qc__rd32(p);
    *string_out = (const char *)(p + 4);
    return QC_OK;
}

float qc_qcm_half_to_float(uint16_t bits) {
    uint32_t sign = (uint32_t)(bits & 0x8000u) << 16;
    uint32_t exponent = (bits >> 10) & 0x1Fu;
    uint32_t mantissa = bits & 0x3FFu;
    uint32_t out;
    if (exponent == 0x1Fu) {
        out = sign | 0x7F800000u | (mantissa << 13); /* infinity, NaN (payload kept) */
    } else if (exponent != 0) {
        out = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        out = sign; /* signed zero */
    } else {
        /* subnormal: value = mantissa * 2^-24, normalise into binary32 */
        uint32_t shift = 0;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            shift++;
        }
        out = sign | ((113u - shift) << 23) | ((mantissa & 0x3FFu) << 13);
    }
    float value;
    memcpy(&value, &out, 4);
    return value;
}
