/* check.h — a tiny test harness: CHECK records a failure with file and line
 * and keeps going; TEST_MAIN prints "N passed, N failed" and sets the exit. */
#ifndef VCLIP_CHECK_H
#define VCLIP_CHECK_H
#include <stdio.h>

static int checks_failed, checks_passed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) checks_passed++;                                              \
        else {                                                                  \
            checks_failed++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

#define TEST_SUMMARY()                                                          \
    (printf("%d passed, %d failed\n", checks_passed, checks_failed), checks_failed ? 1 : 0)
#endif
