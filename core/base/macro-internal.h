/* SPDX-License-Identifier: MIT */
#pragma once

/* What core's files share beyond the public helpers of <keel/util.h>: branch hints, MIN/MAX,
 * the argument checks of public functions (STYLE §5) and the enum↔string table lookups. */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keel/log.h>
#include <keel/util.h>

#define _unused_      __attribute__((unused))
#define _likely_(x)   (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define MIN(a, b) KEEL_MIN(a, b)
#define MAX(a, b) KEEL_MAX(a, b)

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

/*
 * An enum's names, in the manner of systemd's DEFINE_STRING_TABLE_LOOKUP: given
 * `static const char *const name##_table[_MAX] = { [VALUE] = "text", ... }`, defines
 * name##_to_string(type) (NULL when out of range or unnamed) and name##_from_string(const char *)
 * (the value, or (type) -EINVAL for NULL or an unknown name). @scope is empty or static.
 */
#define DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type, scope)                                                                    \
    scope const char *name##_to_string(type i)                                                                                     \
    {                                                                                                                              \
        return (int) i >= 0 && (size_t) i < ELEMENTSOF(name##_table) ? name##_table[i] : NULL;                                     \
    }
#define DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type, scope)                                                                  \
    scope type name##_from_string(const char *s)                                                                                   \
    {                                                                                                                              \
        for (size_t i = 0; s && i < ELEMENTSOF(name##_table); i++)                                                                 \
            if (name##_table[i] && streq(name##_table[i], s))                                                                      \
                return (type) i;                                                                                                   \
        return (type) -EINVAL;                                                                                                     \
    }
#define DEFINE_STRING_TABLE_LOOKUP(name, type)                                                                                     \
    DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type, )                                                                             \
    DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type, )
#define DEFINE_PRIVATE_STRING_TABLE_LOOKUP(name, type)                                                                             \
    DEFINE_STRING_TABLE_LOOKUP_TO_STRING(name, type, static)                                                                       \
    DEFINE_STRING_TABLE_LOOKUP_FROM_STRING(name, type, static)

/*
 * Makes room for @need elements in the array *@array of *@allocated elements of @size bytes,
 * doubling (at least 8): the one grow idiom of core. Returns 0 or -ENOMEM (the array unchanged).
 */
int keel__grow(void *array, size_t *allocated, size_t need, size_t size);
#define GROW(array, allocated, need) keel__grow(&(array), &(allocated), (need), sizeof(*(array)))

/* The descriptors this process has open, the one /proc/self/fd is read through aside (fileio.c):
 * into *@ret; 0 or the negative errno of opening /proc/self/fd. */
int keel__fd_count(unsigned *ret);
