/*
 * qcore element-wise kernels: quantize / dequantize, requantization, int4 packing.
 * Included by qcore.h; see docs/ARITHMETIC.md for every formula.
 */
#ifndef QCORE_KERNELS_H
#define QCORE_KERNELS_H

/* cdef: begin */
/* cdef: end */

#endif /* QCORE_KERNELS_H */
