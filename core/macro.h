/* SPDX-License-Identifier: MIT */
#pragma once

/* Private helpers shared by every file of core/, observers/ and services/: the systemd idioms
 * of scope-bound cleanup, ownership hand-off and argument checks. */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keel/log.h>

#define _cleanup_(f)  __attribute__((cleanup(f)))
#define _unused_      __attribute__((unused))
#define _likely_(x)   (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(a)      (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)          ((a) < (b) ? (a) : (b))
#define MAX(a, b)          ((a) > (b) ? (a) : (b))
#define STR_IN_SET(s, ...) keel__strv_contains((const char *const[]){ __VA_ARGS__, NULL }, (s))
#define streq(a, b)        (strcmp((a), (b)) == 0)
#define strneq(a, b, n)    (strncmp((a), (b), (n)) == 0)

/* Hand ownership on: returns the value and leaves the variable empty, so its cleanup does nothing. */
#define TAKE_GENERIC(var, type, nullvalue)                                                                                         \
    ({                                                                                                                             \
        type *_pvar_ = &(var);                                                                                                     \
        type _var_ = *_pvar_;                                                                                                      \
        *_pvar_ = (nullvalue);                                                                                                     \
        _var_;                                                                                                                     \
    })
#define TAKE_PTR(p) TAKE_GENERIC(p, __typeof__(p), NULL)
#define TAKE_FD(fd) TAKE_GENERIC(fd, int, -EBADF)

/* Defines name##p(type *p) that calls func(*p) when *p is not the empty value. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(type, func, empty)                                                                        \
    static inline void func##p(type *p)                                                                                            \
    {                                                                                                                              \
        if (*p != (empty))                                                                                                         \
            (void) func(*p);                                                                                                       \
    }
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(type, func, NULL)

static inline void freep(void *p)
{
    free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        (void) close(fd);
        errno = saved;
    }
    return -EBADF;
}
static inline void closep(int *fd)
{
    safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Public functions check their arguments with this: logs at debug level and returns @err. */
#define keel_assert_return(expr, err)                                                                                              \
    do {                                                                                                                           \
        if (_unlikely_(!(expr))) {                                                                                                 \
            keel_log_debug("Assertion '%s' failed in %s(), returning %s", #expr, __func__, #err);                                  \
            return (err);                                                                                                          \
        }                                                                                                                          \
    } while (0)

#define keel_assert_return_void(expr)                                                                                              \
    do {                                                                                                                           \
        if (_unlikely_(!(expr))) {                                                                                                 \
            keel_log_debug("Assertion '%s' failed in %s()", #expr, __func__);                                                      \
            return;                                                                                                                \
        }                                                                                                                          \
    } while (0)

/* Strings and NULL-terminated string vectors (strv). */
char **keel__strv_free(char **l);
static inline void keel__strv_freep(char ***l)
{
    keel__strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(keel__strv_freep)
size_t keel__strv_length(char *const *l);
int keel__strv_push(char ***l, char *value); /* takes @value; -ENOMEM (and frees it) */
int keel__strv_extend(char ***l, const char *value);
char **keel__strv_copy(char *const *l);
bool keel__strv_contains(const char *const *l, const char *s);
bool keel__strv_equal(char *const *a, char *const *b);
char *keel__strdup_printf(const char *fmt, ...) KEEL_PRINTF(1, 2);

/* What is left at @now of a wait of @span that began at @since (one clock, µs): 0 once it is
 * over, KEEL_USEC_INFINITY for an endless one. A periodic task woken by a new period waits this
 * much, counting the new period from its last run rather than from the wake. */
keel_usec_t keel__usec_left(keel_usec_t since, keel_usec_t now, keel_usec_t span);
