/*
 * qcore int8 GEMM: s8 x s8, u8 x s8, u8 x u8 with zero points, exact int32 accumulation,
 * pre-packed weights, int4 weights, fused requantization. Included by qcore.h; see
 * docs/ARITHMETIC.md for every formula.
 */
#ifndef QCORE_GEMM_H
#define QCORE_GEMM_H

/* cdef: begin */
/* cdef: end */

#endif /* QCORE_GEMM_H */
