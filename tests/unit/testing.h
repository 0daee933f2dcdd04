/* SPDX-License-Identifier: MIT */
#pragma once

/* Criterion, or under ThreadSanitizer a small stand-in with the same test macros: the tests that
 * also run under TSan (make test-tsan) include this instead of <criterion/criterion.h>. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define STANDALONE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STANDALONE 1
#endif
#endif

#ifndef STANDALONE
#include <criterion/criterion.h>
#else
/*
 * Criterion 2.4.1 cannot start under ThreadSanitizer: BoxFort maps its shared arena at a random
 * address in the range TSan reserves ("Could not initialize inheritable arena"), or crashes in
 * bxf_arena_alloc() when it gets one. So under TSan this file runs its own tests, each in a forked
 * child as Criterion does, with the assertions it uses turned into checks that print and exit.
 * Arguments (--jobs, --timeout) are accepted and ignored.
 */
typedef struct standalone_test {
    const char *name;
    void (*fn)(void);
} standalone_test;
static standalone_test standalone_tests[128];
static size_t standalone_n;

static void check(bool ok, const char *expr, const char *file, int line)
{
    if (ok)
        return;
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    exit(1);
}

typedef struct standalone_suite {
    void (*init)(void);
    void (*fini)(void);
    unsigned timeout;
} standalone_suite;
static standalone_suite standalone_config;

#define TestSuite(suite, ...)                                                                                                      \
    __attribute__((constructor)) static void standalone_suite_##suite(void)                                                        \
    {                                                                                                                              \
        standalone_config = (standalone_suite){ __VA_ARGS__ };                                                                     \
    }
#define Test(suite, name, ...)                                                                                                     \
    static void suite##_##name(void);                                                                                              \
    __attribute__((constructor)) static void register_##name(void)                                                                 \
    {                                                                                                                              \
        standalone_tests[standalone_n++] = (standalone_test){ #suite "::" #name, suite##_##name };                                 \
    }                                                                                                                              \
    static void suite##_##name(void)
#define CHECK(ok, expr)             check((ok), (expr), __FILE__, __LINE__)
#define cr_assert(e, ...)           CHECK(!!(e), #e)
#define cr_assert_not(e, ...)       CHECK(!(e), "!(" #e ")")
#define cr_assert_null(e, ...)      CHECK((e) == NULL, #e " == NULL")
#define cr_assert_not_null(e, ...)  CHECK((e) != NULL, #e " != NULL")
#define cr_assert_eq(a, b, ...)     CHECK((a) == (b), #a " == " #b)
#define cr_assert_lt(a, b, ...)     CHECK((a) < (b), #a " < " #b)
#define cr_assert_leq(a, b, ...)    CHECK((a) <= (b), #a " <= " #b)
#define cr_assert_geq(a, b, ...)    CHECK((a) >= (b), #a " >= " #b)
#define cr_assert_str_eq(a, b, ...) CHECK(strcmp((a), (b)) == 0, #a " == " #b)
#endif

#ifdef STANDALONE
int main(int argc, char **argv);
int main(int argc, char **argv)
{
    unsigned failed = 0;

    for (size_t i = 0; i < standalone_n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            alarm(standalone_config.timeout ? standalone_config.timeout : 60);
            if (standalone_config.init)
                standalone_config.init();
            standalone_tests[i].fn();
            if (standalone_config.fini)
                standalone_config.fini();
            exit(0);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        fprintf(stderr, "[%s] %s\n", ok ? "PASS" : "FAIL", standalone_tests[i].name);
        failed += !ok;
    }
    fprintf(stderr, "Tested: %zu | Passing: %zu | Failing: %u\n", standalone_n, standalone_n - failed, failed);
    return failed ? 1 : 0;
}
#endif
