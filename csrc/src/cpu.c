/*
 * CPU feature detection and option resolution. The detected mask is computed once and
 * cached (the only process-wide state of the library); nothing else is global.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__aarch64__) || defined(__arm__)
#include <sys/auxv.h>
#endif

static const char *const qc__isa_names[QC_ISA_COUNT] = {"scalar", "avx2", "neon", "neondot", "i8mm"};

static uint32_t qc__detect(void) {
    uint32_t mask = 1u << QC_ISA_SCALAR;
#if defined(QC__BUILD_AVX2)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        mask |= 1u << QC_ISA_AVX2;
    }
#endif
#if defined(__aarch64__)
    unsigned long hwcap = getauxval(AT_HWCAP);
    unsigned long hwcap2 = getauxval(AT_HWCAP2);
    if (hwcap & (1ul << 1)) { /* HWCAP_ASIMD */
        mask |= 1u << QC_ISA_NEON;
    }
#if defined(QC__BUILD_NEONDOT)
    if (hwcap & (1ul << 20)) { /* HWCAP_ASIMDDP */
        mask |= 1u << QC_ISA_NEONDOT;
    }
#endif
#if defined(QC__BUILD_I8MM)
    if (hwcap2 & (1ul << 13)) { /* HWCAP2_I8MM */
        mask |= 1u << QC_ISA_I8MM;
    }
#endif
    (void)hwcap2;
#elif defined(__arm__) && defined(QC__BUILD_NEON)
    if (getauxval(AT_HWCAP) & (1ul << 12)) { /* HWCAP_ARM_NEON */
        mask |= 1u << QC_ISA_NEON;
    }
#endif
    return mask;
}

uint32_t qc__cpu_isa_mask(void) {
    /* Benign race: every thread computes the same value. */
    static volatile uint32_t cached = 0;
    uint32_t mask = cached;
    if (mask == 0) {
        mask = qc__detect();
        cached = mask;
    }
    return mask;
}

uint32_t qc_isa_available_mask(void) { return qc__cpu_isa_mask(); }

const char *qc_isa_name(int isa) {
    if (isa < 0 || isa >= QC_ISA_COUNT) {
        return "unknown";
    }
    return qc__isa_names[isa];
}

static int qc__best_isa(uint32_t mask) {
    static const int preference[] = {QC_ISA_I8MM, QC_ISA_NEONDOT, QC_ISA_NEON, QC_ISA_AVX2};
    for (size_t i = 0; i < QC__ARRAY_LEN(preference); i++) {
        if (mask & (1u << preference[i])) {
            return preference[i];
        }
    }
    return QC_ISA_SCALAR;
}

qc_status qc_isa_default(int *isa_out) {
    if (isa_out == NULL) {
        return QC_E_NULL_POINTER;
    }
    uint32_t mask = qc__cpu_isa_mask();
    const char *forced = getenv("QCORE_ISA");
    if (forced != NULL && forced[0] != '\0' && strcmp(forced, "auto") != 0) {
        for (int isa = 0; isa < QC_ISA_COUNT; isa++) {
            if (strcmp(forced, qc__isa_names[isa]) == 0) {
                if (!(mask & (1u << isa))) {
                    return QC_E_UNSUPPORTED_ISA;
                }
                *isa_out = isa;
                return QC_OK;
            }
        }
        return QC_E_UNSUPPORTED_ISA;
    }
    *isa_out = qc__best_isa(mask);
    return QC_OK;
}

static int qc__default_threads(void) {
    const char *env = getenv("QCORE_NUM_THREADS");
    if (env == NULL || env[0] == '\0') {
        return 1;
    }
    char *end = NULL;
    long n = strtol(env, &end, 10);
    if (end == env || *end != '\0' || n < 1) {
        return 1;
    }
    return n > 256 ? 256 : (int)n;
}

qc_status qc_options_resolve(const qc_options *options, int *isa_out, int *num_threads_out) {
    if (isa_out == NULL || num_threads_out == NULL) {
        return QC_E_NULL_POINTER;
    }
    int isa = options != NULL ? options->isa : QC_ISA_AUTO;
    int threads = options != NULL ? options->num_threads : 0;
    if (isa == QC_ISA_AUTO) {
        QC__TRY(qc_isa_default(&isa));
    } else if (isa < 0 || isa >= QC_ISA_COUNT || !(qc__cpu_isa_mask() & (1u << isa))) {
        return QC_E_UNSUPPORTED_ISA;
    }
    if (threads < 0 || threads > 256) {
        return QC_E_INVALID_ARGUMENT;
    }
    *isa_out = isa;
    *num_threads_out = threads == 0 ? qc__default_threads() : threads;
    return QC_OK;
}
