/* Private helpers shared by the qcore C sources (prefix qc__). */
#ifndef QCORE_INTERNAL_H
#define QCORE_INTERNAL_H

#include "qcore.h"

#define QC__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Returns the status from the enclosing function when `expr` is not QC_OK. */
#define QC__TRY(expr)                 \
    do {                              \
        qc_status qc__s = (expr);     \
        if (qc__s != QC_OK) {         \
            return qc__s;             \
        }                             \
    } while (0)

/* Overflow-safe size arithmetic: 0 on success, 1 on overflow. */
static inline int qc__mul_size(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline int qc__add_size(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}

/* Which SIMD paths this build compiles (each SIMD source guards itself with these). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QC__BUILD_AVX2 1
#endif

/* A region of a file built for the baseline x86-64 ISA whose functions are compiled for
 * AVX2 (the *_avx2.c kernels, chosen at run time): QC__AVX2_BEGIN after the includes
 * (immintrin.h among them), QC__AVX2_END at the end. */
#if defined(__clang__)
#define QC__AVX2_BEGIN _Pragma("clang attribute push(__attribute__((target(\"avx2\"))), apply_to = function)")
#define QC__AVX2_END _Pragma("clang attribute pop")
#else
#define QC__AVX2_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2\")")
#define QC__AVX2_END _Pragma("GCC pop_options")
#endif
#if defined(__aarch64__)
#define QC__BUILD_NEON 1
#if defined(__GNUC__) && !defined(__clang__)
#define QC__BUILD_NEONDOT 1
#define QC__BUILD_I8MM 1
#endif
#elif defined(__arm__) && defined(__GNUC__) && !defined(__clang__)
#define QC__BUILD_NEON 1
#endif

/* Feature bits of the running CPU (bit i = qc_isa i), computed once. */
uint32_t qc__cpu_isa_mask(void);

#endif /* QCORE_INTERNAL_H */
