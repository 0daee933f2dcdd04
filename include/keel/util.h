/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Small helpers a Keel program or plugin writes with, in the manner of systemd: scope-bound
 * cleanup and ownership hand-off, string comparison, NULL-terminated string vectors (the type of
 * KEEL_CONFIG_LIST values), and time arithmetic. Every name here carries the keel_/KEEL_ prefix;
 * the systemd-style short names (_cleanup_, TAKE_PTR, streq, ...) are defined too, unless
 * KEEL_NO_SHORT_NAMES is defined before the first include, for code that has its own.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cleanup by scope ------------------------------------------------------------------------ */

/** Runs @f(&variable) when the variable goes out of scope (a GCC/Clang attribute, fine under -std=c11). */
#define KEEL_CLEANUP(f) __attribute__((cleanup(f)))

/** Defines `static inline void func##p(type *p)`, which calls func(*p) unless *p is @empty. */
#define KEEL_DEFINE_CLEANUP_FUNC_FULL(type, func, empty)                                                                           \
    static inline void func##p(type *p)                                                                                            \
    {                                                                                                                              \
        if (*p != (empty))                                                                                                         \
            (void) func(*p);                                                                                                       \
    }
/** KEEL_DEFINE_CLEANUP_FUNC_FULL() for pointers: nothing to do for NULL. */
#define KEEL_DEFINE_CLEANUP_FUNC(type, func) KEEL_DEFINE_CLEANUP_FUNC_FULL(type, func, NULL)

/** Evaluates to the value of @var and leaves @nullvalue in it, so its cleanup does nothing. */
#define KEEL_TAKE_GENERIC(var, type, nullvalue)                                                                                    \
    ({                                                                                                                             \
        type *_keel_pvar_ = &(var);                                                                                                \
        type _keel_var_ = *_keel_pvar_;                                                                                            \
        *_keel_pvar_ = (nullvalue);                                                                                                \
        _keel_var_;                                                                                                                \
    })
/** Hands a pointer on: its value, and NULL left behind. */
#define KEEL_TAKE_PTR(p) KEEL_TAKE_GENERIC(p, __typeof__(p), NULL)
/** Hands a file descriptor on: its value, and -EBADF left behind. */
#define KEEL_TAKE_FD(fd) KEEL_TAKE_GENERIC(fd, int, -EBADF)

/** free(*p): the cleanup of a malloc'd pointer. */
static inline void keel_freep(void *p)
{
    free(*(void **) p);
}

/** Closes @fd when it is not negative, keeping errno; returns -EBADF to store back. */
static inline int keel_close(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        (void) close(fd);
        errno = saved;
    }
    return -EBADF;
}
/** keel_close(*fd): the cleanup of a file descriptor. */
static inline void keel_closep(int *fd)
{
    (void) keel_close(*fd);
}

/* ---- arrays and strings ---------------------------------------------------------------------- */

/** The number of elements of array @a (not of a pointer). */
#define KEEL_ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/** The smaller and the larger of two values (each evaluated twice). */
#define KEEL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KEEL_MAX(a, b) ((a) > (b) ? (a) : (b))

/** Whether two NUL-terminated strings are equal (neither may be NULL). */
static inline bool keel_streq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}
/** Whether @s (not NULL) equals one of the strings that follow. */
#define KEEL_STR_IN_SET(s, ...) keel_strv_contains((const char *const[]){ __VA_ARGS__, NULL }, (s))

/** A malloc'd string formatted like printf, or NULL when out of memory. */
KEEL_API char *keel_strdup_printf(const char *fmt, ...) KEEL_PRINTF(1, 2);

/* ---- string vectors: NULL-terminated arrays of malloc'd strings ------------------------------- */

/** Frees every string of @l and @l itself; accepts NULL; returns NULL. */
KEEL_API char **keel_strv_free(char **l);
/** The cleanup of a string vector. */
static inline void keel_strv_freep(char ***l)
{
    (void) keel_strv_free(*l);
}
/** The number of strings in @l; 0 for NULL. */
KEEL_API size_t keel_strv_length(char *const *l);
/** Appends @value, taking it over, to *@l (which may be NULL). -ENOMEM frees @value and leaves *@l as it was. */
KEEL_API int keel_strv_push(char ***l, char *value);
/** Appends a copy of @value to *@l. Returns 0 or -ENOMEM. */
KEEL_API int keel_strv_extend(char ***l, const char *value);
/** A deep copy of @l (an empty vector for NULL), or NULL when out of memory. */
KEEL_API char **keel_strv_copy(char *const *l);
/** Whether @l (may be NULL) holds a string equal to @s. */
KEEL_API bool keel_strv_contains(const char *const *l, const char *s);
/** Whether @a and @b hold equal strings in the same order (NULL is the empty vector). */
KEEL_API bool keel_strv_equal(char *const *a, char *const *b);

/* ---- time ------------------------------------------------------------------------------------ */

/**
 * What is left at @now of a wait of @span that began at @since (one clock, µs): 0 once it is
 * over, KEEL_USEC_INFINITY when @span is. A periodic task woken by a new period waits this much,
 * so the new period counts from its last run rather than from the wake.
 */
KEEL_API keel_usec_t keel_usec_left(keel_usec_t since, keel_usec_t now, keel_usec_t span);

/* ---- the short names ------------------------------------------------------------------------- */

#ifndef KEEL_NO_SHORT_NAMES
#define _cleanup_(f)                              KEEL_CLEANUP(f)
#define _cleanup_free_                            KEEL_CLEANUP(keel_freep)
#define _cleanup_close_                           KEEL_CLEANUP(keel_closep)
#define _cleanup_strv_free_                       KEEL_CLEANUP(keel_strv_freep)
#define DEFINE_TRIVIAL_CLEANUP_FUNC(t, f)         KEEL_DEFINE_CLEANUP_FUNC(t, f)
#define DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(t, f, e) KEEL_DEFINE_CLEANUP_FUNC_FULL(t, f, e)
#define TAKE_PTR(p)                               KEEL_TAKE_PTR(p)
#define TAKE_FD(fd)                               KEEL_TAKE_FD(fd)
#define ELEMENTSOF(a)                             KEEL_ELEMENTSOF(a)
#define STR_IN_SET(s, ...)                        KEEL_STR_IN_SET(s, __VA_ARGS__)
#define streq(a, b)                               keel_streq((a), (b))
#define strneq(a, b, n)                           (strncmp((a), (b), (n)) == 0)
#define safe_close                                keel_close
#endif

#ifdef __cplusplus
}
#endif
