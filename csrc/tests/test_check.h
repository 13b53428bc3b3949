/*
 * The check macro of the C test programs that count their checks: CHECK(cond, fmt, ...)
 * counts the check in g_checks and, when cond is false, the failure in g_failures, and
 * prints the first 30 failures (file, line, message) to stderr. Header-only; a program
 * includes it once and reports g_checks / g_failures in its summary line.
 */
#ifndef QCORE_TEST_CHECK_H
#define QCORE_TEST_CHECK_H

#include <stdio.h>

static int g_checks = 0;
static int g_failures = 0;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        g_checks++;                                                   \
        if (!(cond)) {                                                \
            g_failures++;                                             \
            if (g_failures <= 30) {                                   \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
                fprintf(stderr, __VA_ARGS__);                         \
                fprintf(stderr, "\n");                                \
            }                                                         \
        }                                                             \
    } while (0)

#endif /* QCORE_TEST_CHECK_H */
