/*
 * qcore .qcm model-file reader (see docs/FORMAT.md). Included by qcore.h.
 */
#ifndef QCORE_FORMAT_H
#define QCORE_FORMAT_H

/* cdef: begin */
/* cdef: end */

#endif /* QCORE_FORMAT_H */
