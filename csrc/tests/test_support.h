/*
 * Helpers shared by the C test programs: a seedable deterministic PRNG (splitmix64) and
 * FNV-1a hashing for the `checksum` lines that .ci/jobs/arm.sh compares across
 * architectures. Header-only; each test program includes it once. A program may also set `rng_state`
 * directly to fix its sequence.
 */
#ifndef QCORE_TEST_SUPPORT_H
#define QCORE_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

static uint64_t rng_state = 1;

static inline void rng_seed(uint64_t seed) { rng_state = seed * 0x9E3779B97F4A7C15ull + 1; }

/* splitmix64 */
static inline uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A value in [lo, hi] (any int32 range: the width is computed in 64 bits). */
static inline int32_t rng_range(int32_t lo, int32_t hi) {
    return (int32_t)((int64_t)lo + (int64_t)(rng_next() % (uint64_t)((int64_t)hi - lo + 1)));
}

/* Uniform in [-r, r) (24 random bits). */
static inline float rng_sym(float r) { return ((float)(rng_next() >> 40) / 16777216.0f * 2.0f - 1.0f) * r; }

/* FNV-1a over bytes, starting from FNV_INIT. */
#define FNV_INIT 0xCBF29CE484222325ull
static inline uint64_t fnv(uint64_t h, const void *data, size_t size) {
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < size; i++) {
        h = (h ^ p[i]) * 0x100000001B3ull;
    }
    return h;
}

#endif /* QCORE_TEST_SUPPORT_H */
