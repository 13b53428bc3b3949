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
    default: break;
    }
    if (status >= QC_E_FORMAT_FIRST && status <= QC_E_FORMAT_LAST) {
        return "invalid .qcm file";
    }
    return "unknown status";
}
