/*
 * qcore: exact int8 kernels and the .qcm model-file reader.
 *
 * The public C interface. Every fallible function returns a qc_status (QC_OK == 0) and
 * writes its results through pointers; qc_status_string() names a status. The library
 * never prints, aborts or exits, and keeps no mutable global state beyond the cached
 * CPU-feature detection.
 *
 * The regions between the "cdef: begin" and "cdef: end" markers are read verbatim by
 * csrc/ffi_build.py as cffi declarations: keep them free of preprocessor lines.
 */
#ifndef QCORE_H
#define QCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QC_VERSION "0.1.0"

/* cdef: begin */
typedef enum qc_status {
    QC_OK = 0,
    QC_E_INVALID_ARGUMENT = 1, /* a value outside its documented domain */
    QC_E_NULL_POINTER = 2,     /* a required pointer was NULL */
    QC_E_SHAPE = 3,            /* sizes or strides that do not fit together */
    QC_E_DTYPE = 4,            /* an element type the function does not take */
    QC_E_OVERFLOW = 5,         /* a size computation would overflow */
    QC_E_NO_MEMORY = 6,        /* an allocation failed */
    QC_E_UNSUPPORTED_ISA = 7,  /* the requested ISA is not compiled in or not on this CPU */
    QC_E_NONFINITE = 8,        /* a NaN or infinite value where a finite one is required */
    QC_E_THREAD = 9,           /* a worker thread could not be started */
    QC_E_SCALE = 10,           /* a scale that is not finite and positive */
    QC_E_ZERO_POINT = 11,      /* a zero point outside the range of its type */
    /* 100..199: .qcm format reader statuses, one per rule of docs/FORMAT.md, in the order
     * the rules are checked (see qcore_format.h) */
    QC_E_FORMAT_FIRST = 100,
    QC_E_FORMAT_TRUNCATED = 100,
    QC_E_FORMAT_MAGIC = 101,
    QC_E_FORMAT_BYTE_ORDER = 102,
    QC_E_FORMAT_VERSION = 103,
    QC_E_FORMAT_FLAGS = 104,
    QC_E_FORMAT_ALIGNMENT = 105,
    QC_E_FORMAT_TRAILING_DATA = 106,
    QC_E_FORMAT_HEADER_TOO_LARGE = 107,
    QC_E_FORMAT_TENSOR_COUNT = 108,
    QC_E_FORMAT_METADATA_COUNT = 109,
    QC_E_FORMAT_DIRECTORY_BOUNDS = 110,
    QC_E_FORMAT_HEADER_CHECKSUM = 111,
    QC_E_FORMAT_NAME = 112,
    QC_E_FORMAT_ELEMENT_TYPE = 113,
    QC_E_FORMAT_RANK = 114,
    QC_E_FORMAT_RESERVED = 115,
    QC_E_FORMAT_SHAPE_OVERFLOW = 116,
    QC_E_FORMAT_DATA_SIZE = 117,
    QC_E_FORMAT_MISALIGNED = 118,
    QC_E_FORMAT_OVERLAP = 119,
    QC_E_FORMAT_HOLE = 120,
    QC_E_FORMAT_ROLE = 121,
    QC_E_FORMAT_SCHEME = 122,
    QC_E_FORMAT_CONVENTION = 123,
    QC_E_FORMAT_QUANT_TYPE = 124,
    QC_E_FORMAT_AXIS = 125,
    QC_E_FORMAT_BLOCK_SIZE = 126,
    QC_E_FORMAT_REFERENCE = 127,
    QC_E_FORMAT_SCALE_COUNT = 128,
    QC_E_FORMAT_ZERO_POINT_SHAPE = 129,
    QC_E_FORMAT_DUPLICATE_NAME = 130,
    QC_E_FORMAT_NAME_INDEX = 131,
    QC_E_FORMAT_METADATA_KEY = 132,
    QC_E_FORMAT_DUPLICATE_KEY = 133,
    QC_E_FORMAT_METADATA_ORDER = 134,
    QC_E_FORMAT_METADATA_TYPE = 135,
    QC_E_FORMAT_METADATA_VALUE = 136,
    QC_E_FORMAT_METADATA_BOUNDS = 137,
    QC_E_FORMAT_GRAPH_SCHEMA = 138,
    QC_E_FORMAT_TENSOR_CHECKSUM = 139,
    QC_E_FORMAT_PADDING = 140,
    QC_E_FORMAT_SCALE_VALUE = 141,
    QC_E_FORMAT_ZERO_POINT_RANGE = 142,
    /* not a broken rule: the tensor name or metadata key asked for is absent */
    QC_E_FORMAT_NOT_FOUND = 150,
    QC_E_FORMAT_LAST = 199
} qc_status;

/* Instruction-set paths. QC_ISA_AUTO picks the best one the CPU runs, or the one named
 * by the QCORE_ISA environment variable (scalar, avx2, neon, neondot, i8mm). */
typedef enum qc_isa {
    QC_ISA_AUTO = -1,
    QC_ISA_SCALAR = 0,
    QC_ISA_AVX2 = 1,
    QC_ISA_NEON = 2,
    QC_ISA_NEONDOT = 3,
    QC_ISA_I8MM = 4,
    QC_ISA_COUNT = 5
} qc_isa;

/* Per-call options; a NULL pointer means all defaults. */
typedef struct qc_options {
    int isa;         /* a qc_isa value; QC_ISA_AUTO (-1) for the default */
    int num_threads; /* >= 1; 0 for the default (QCORE_NUM_THREADS, else 1) */
} qc_options;

const char *qc_version(void);
const char *qc_status_string(int status);

/* Bit i set when ISA i is compiled in and this CPU runs it (scalar always). */
uint32_t qc_isa_available_mask(void);
const char *qc_isa_name(int isa);
/* The ISA that QC_ISA_AUTO resolves to: QCORE_ISA if set and available, else the best. */
qc_status qc_isa_default(int *isa_out);
/* Resolves options to a concrete, available ISA and a thread count >= 1. */
qc_status qc_options_resolve(const qc_options *options, int *isa_out, int *num_threads_out);
/* cdef: end */

#include "qcore_kernels.h"
#include "qcore_gemm.h"
#include "qcore_conv.h"
#include "qcore_format.h"
#include "qcore_activation.h"
#include "qcore_linear.h"
#include "qcore_attention.h"

#ifdef __cplusplus
}
#endif

#endif /* QCORE_H */
