/* Version and status strings. */
#include "internal.h"

const char *qc_version(void) { return QC_VERSION; }

const char *qc_status_string(int status) {
    switch (status) {
    case QC_OK: return "ok";
    case QC_E_INVALID_ARGUMENT: return "invalid argument";
    case QC_E_NULL_POINTER: return "required pointer is NULL";
    case QC_E_SHAPE: return "sizes or strides do not fit together";
    case QC_E_DTYPE: return "unsupported element type";
    case QC_E_OVERFLOW: return "size computation overflows";
    case QC_E_NO_MEMORY: return "out of memory";
    case QC_E_UNSUPPORTED_ISA: return "instruction set not available on this CPU or build";
    case QC_E_NONFINITE: return "non-finite value where a finite one is required";
    case QC_E_THREAD: return "worker thread could not be started";
    case QC_E_SCALE: return "scale is not finite and positive";
    case QC_E_ZERO_POINT: return "zero point outside the range of its type";
    case QC_E_FORMAT_TRUNCATED: return "qcm: file shorter than its preamble or its declared size (rule truncated)";
    case QC_E_FORMAT_MAGIC: return "qcm: not a .qcm file, bad magic (rule magic)";
    case QC_E_FORMAT_BYTE_ORDER: return "qcm: byte-order mark is not little-endian (rule byte-order)";
    case QC_E_FORMAT_VERSION: return "qcm: unsupported format version (rule version)";
    case QC_E_FORMAT_FLAGS: return "qcm: unknown preamble flags (rule flags)";
    case QC_E_FORMAT_ALIGNMENT: return "qcm: alignment field is not 64 (rule alignment)";
    case QC_E_FORMAT_TRAILING_DATA: return "qcm: bytes after the declared end of file (rule trailing-data)";
    case QC_E_FORMAT_HEADER_TOO_LARGE: return "qcm: directory longer than the 128 MiB cap (rule header-size)";
    case QC_E_FORMAT_TENSOR_COUNT: return "qcm: tensor count over the cap (rule tensor-count)";
    case QC_E_FORMAT_METADATA_COUNT: return "qcm: metadata entry count over the cap (rule metadata-count)";
    case QC_E_FORMAT_DIRECTORY_BOUNDS: return "qcm: directory offset or length inconsistent (rule directory-bounds)";
    case QC_E_FORMAT_HEADER_CHECKSUM: return "qcm: header CRC-32C mismatch (rule header-checksum)";
    case QC_E_FORMAT_NAME: return "qcm: bad tensor name or name pool (rule name)";
    case QC_E_FORMAT_ELEMENT_TYPE: return "qcm: unknown element type (rule element-type)";
    case QC_E_FORMAT_RANK: return "qcm: rank over 8 (rule rank)";
    case QC_E_FORMAT_RESERVED: return "qcm: reserved field not zero (rule reserved)";
    case QC_E_FORMAT_SHAPE_OVERFLOW: return "qcm: shape product overflows (rule shape-overflow)";
    case QC_E_FORMAT_DATA_SIZE: return "qcm: data size does not match shape and type (rule data-size)";
    case QC_E_FORMAT_MISALIGNED: return "qcm: tensor data not 64-byte aligned (rule misaligned)";
    case QC_E_FORMAT_OVERLAP: return "qcm: tensor data overlaps other data or the directory (rule overlap)";
    case QC_E_FORMAT_HOLE: return "qcm: unaccounted bytes between tensors (rule hole)";
    case QC_E_FORMAT_ROLE: return "qcm: unknown tensor role (rule role)";
    case QC_E_FORMAT_SCHEME: return "qcm: unknown quantization scheme (rule scheme)";
    case QC_E_FORMAT_CONVENTION: return "qcm: unknown or misplaced convention (rule convention)";
    case QC_E_FORMAT_QUANT_TYPE: return "qcm: element type not allowed for quantized data, scale or zero point (rule quant-type)";
    case QC_E_FORMAT_AXIS: return "qcm: quantization axis out of range (rule axis)";
    case QC_E_FORMAT_BLOCK_SIZE: return "qcm: block size inconsistent with the scheme (rule block-size)";
    case QC_E_FORMAT_REFERENCE: return "qcm: bad scale / zero-point / owner reference (rule reference)";
    case QC_E_FORMAT_SCALE_COUNT: return "qcm: scale shape does not match the scheme (rule scale-count)";
    case QC_E_FORMAT_ZERO_POINT_SHAPE: return "qcm: zero-point shape differs from the scale shape (rule zero-point-shape)";
    case QC_E_FORMAT_DUPLICATE_NAME: return "qcm: two tensors share a name (rule duplicate-name)";
    case QC_E_FORMAT_NAME_INDEX: return "qcm: name index out of range or out of order (rule name-index)";
    case QC_E_FORMAT_METADATA_KEY: return "qcm: bad metadata key (rule metadata-key)";
    case QC_E_FORMAT_DUPLICATE_KEY: return "qcm: duplicate metadata key (rule duplicate-key)";
    case QC_E_FORMAT_METADATA_ORDER: return "qcm: metadata keys out of order (rule metadata-order)";
    case QC_E_FORMAT_METADATA_TYPE: return "qcm: unknown metadata value type (rule metadata-type)";
    case QC_E_FORMAT_METADATA_VALUE: return "qcm: bad metadata value (rule metadata-value)";
    case QC_E_FORMAT_METADATA_BOUNDS: return "qcm: metadata section overrun or leftover bytes (rule metadata-bounds)";
    case QC_E_FORMAT_GRAPH_SCHEMA: return "qcm: qcore.graph.* keys without a valid qcore.graph.schema_version (rule graph-schema)";
    case QC_E_FORMAT_TENSOR_CHECKSUM: return "qcm: tensor CRC-32C mismatch (rule tensor-checksum)";
    case QC_E_FORMAT_PADDING: return "qcm: padding byte or bits not zero (rule padding)";
    case QC_E_FORMAT_SCALE_VALUE: return "qcm: scale not finite and positive (rule scale-value)";
    case QC_E_FORMAT_ZERO_POINT_RANGE: return "qcm: zero point outside its type's range (rule zero-point-range)";
    case QC_E_FORMAT_NOT_FOUND: return "qcm: no tensor or metadata entry of that name";
    default: break;
    }
    if (status >= QC_E_FORMAT_FIRST && status <= QC_E_FORMAT_LAST) {
        return "invalid .qcm file";
    }
    return "unknown status";
}
