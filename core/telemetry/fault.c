/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault-internal.h"
#include "macro-internal.h"

_Atomic size_t keel__faults_n;
static keel_fault faults[KEEL_FAULTS_MAX];

static const char *const keel__fault_action_table[_KEEL_FAULT_ACTION_MAX] = {
    [KEEL_FAULT_ERROR] = "error",   [KEEL_FAULT_SIGINT] = "sigint", [KEEL_FAULT_SIGTERM] = "sigterm",
    [KEEL_FAULT_SIGHUP] = "sighup", [KEEL_FAULT_SLEEP] = "sleep",
};
static const char *const keel__fault_when_table[_KEEL_FAULT_WHEN_MAX] = {
    [KEEL_FAULT_BEFORE] = "before",
    [KEEL_FAULT_IN] = "in",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(keel__fault_action, keel_fault_action, )
DEFINE_STRING_TABLE_LOOKUP_TO_STRING(keel__fault_when, keel_fault_when, )

const keel_fault *keel__faults_get(size_t *ret_n)
{
    assert(ret_n);
    *ret_n = atomic_load_explicit(&keel__faults_n, memory_order_acquire);
    return faults;
}

/* The count goes to 0 first and is published last, so a reader never sees a half-copied fault
 * counted (the set is meant to be replaced before any thread exists, but cheaply safe anyway). */
static void faults_set(const keel_fault *f, size_t n)
{
    atomic_store_explicit(&keel__faults_n, 0, memory_order_release);
    if (n > 0)
        memcpy(faults, f, n * sizeof *f);
    atomic_store_explicit(&keel__faults_n, n, memory_order_release);
}

void keel__faults_clear(void)
{
    faults_set(NULL, 0);
}

/* A piece of the spec: not NUL-terminated. */
typedef struct slice {
    const char *p;
    size_t n;
} slice;

static bool slice_eq(slice s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static slice trim(slice s)
{
    while (s.n > 0 && is_blank(s.p[0]))
        s.p++, s.n--;
    while (s.n > 0 && is_blank(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* Stores the message in *ret_error and returns -EINVAL (-ENOMEM if it cannot be allocated). */
static int fail(char **ret_error, const char *fmt, ...) KEEL_PRINTF(2, 3);
static int fail(char **ret_error, const char *fmt, ...)
{
    va_list ap;
    char *m;

    if (!ret_error)
        return -EINVAL;
    va_start(ap, fmt);
    int r = vasprintf(&m, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -ENOMEM;
    *ret_error = m;
    return -EINVAL;
}

/* Digits only: no sign, no blanks, no leading '+', no overflow past the bound. */
static int parse_msec(slice s, unsigned *ret)
{
    unsigned long long v = 0;

    if (s.n == 0)
        return -EINVAL;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned) (s.p[i] - '0');
        if (v > KEEL_FAULT_SLEEP_MSEC_MAX)
            return -ERANGE;
    }
    if (v == 0)
        return -ERANGE;
    *ret = (unsigned) v;
    return 0;
}

static int parse_action(slice a, slice elem, keel_fault *f, char **ret_error)
{
    static const slice sleep_prefix = { "sleep=", 6 };

    for (keel_fault_action i = 0; i < _KEEL_FAULT_ACTION_MAX; i++)
        if (i != KEEL_FAULT_SLEEP && slice_eq(a, keel__fault_action_table[i])) {
            f->action = i;
            return 0;
        }
    if (a.n >= sleep_prefix.n && memcmp(a.p, sleep_prefix.p, sleep_prefix.n) == 0) {
        slice v = { a.p + sleep_prefix.n, a.n - sleep_prefix.n };
        if (parse_msec(v, &f->sleep_msec) < 0)
            return fail(ret_error, "KEEL_FAULT: bad sleep value '%.*s' in '%.*s' (expected milliseconds from 1 to %u)", (int) v.n,
                        v.p, (int) elem.n, elem.p, KEEL_FAULT_SLEEP_MSEC_MAX);
        f->action = KEEL_FAULT_SLEEP;
        return 0;
    }
    return fail(ret_error, "KEEL_FAULT: bad action '%.*s' in '%.*s' (expected error, sigint, sigterm, sighup or sleep=MS)",
                (int) a.n, a.p, (int) elem.n, elem.p);
}

static int parse_when(slice w, slice elem, keel_fault *f, char **ret_error)
{
    for (keel_fault_when i = 0; i < _KEEL_FAULT_WHEN_MAX; i++)
        if (slice_eq(w, keel__fault_when_table[i])) {
            f->when = i;
            return 0;
        }
    return fail(ret_error, "KEEL_FAULT: bad when '%.*s' in '%.*s' (expected before or in)", (int) w.n, w.p, (int) elem.n, elem.p);
}

static bool point_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int parse_point(slice pt, slice elem, keel_fault *f, char **ret_error)
{
    if (pt.n == 0)
        return fail(ret_error, "KEEL_FAULT: empty point in '%.*s'", (int) elem.n, elem.p);
    if (pt.n >= KEEL_FAULT_POINT_MAX)
        return fail(ret_error, "KEEL_FAULT: point '%.*s' in '%.*s' is too long (at most %d characters)", (int) pt.n, pt.p,
                    (int) elem.n, elem.p, KEEL_FAULT_POINT_MAX - 1);
    for (size_t i = 0; i < pt.n; i++)
        if (!point_char_ok(pt.p[i]))
            return fail(ret_error, "KEEL_FAULT: bad point '%.*s' in '%.*s' (expected a-z, 0-9, '_', '.' and '-')", (int) pt.n, pt.p,
                        (int) elem.n, elem.p);
    memcpy(f->point, pt.p, pt.n);
    f->point[pt.n] = 0;
    return 0;
}

/* One ACTION@WHEN:POINT, already trimmed and not empty. */
static int parse_one(slice elem, keel_fault *ret, char **ret_error)
{
    keel_fault f = { 0 };
    int r;

    const char *at = memchr(elem.p, '@', elem.n);
    if (!at)
        return fail(ret_error, "KEEL_FAULT: missing '@' in '%.*s' (expected ACTION@WHEN:POINT)", (int) elem.n, elem.p);
    slice rest = { at + 1, (size_t) (elem.p + elem.n - (at + 1)) };
    const char *colon = memchr(rest.p, ':', rest.n);
    if (!colon)
        return fail(ret_error, "KEEL_FAULT: missing ':' in '%.*s' (expected ACTION@WHEN:POINT)", (int) elem.n, elem.p);

    r = parse_action((slice){ elem.p, (size_t) (at - elem.p) }, elem, &f, ret_error);
    if (r < 0)
        return r;
    r = parse_when((slice){ rest.p, (size_t) (colon - rest.p) }, elem, &f, ret_error);
    if (r < 0)
        return r;
    r = parse_point((slice){ colon + 1, (size_t) (rest.p + rest.n - (colon + 1)) }, elem, &f, ret_error);
    if (r < 0)
        return r;
    *ret = f;
    return 0;
}

int keel__faults_parse(const char *spec, char **ret_error)
{
    keel_fault parsed[KEEL_FAULTS_MAX];
    size_t n = 0;

    keel_assert_return(spec, -EINVAL);

    slice all = trim((slice){ spec, strlen(spec) });
    if (all.n == 0) {
        keel__faults_clear();
        return 0;
    }
    for (const char *p = spec;; n++) {
        const char *end = strchrnul(p, ',');
        slice elem = trim((slice){ p, (size_t) (end - p) });

        if (elem.n == 0)
            return fail(ret_error, "KEEL_FAULT: empty element %zu in '%s' (expected ACTION@WHEN:POINT between commas)", n + 1,
                        spec);
        if (n == KEEL_FAULTS_MAX)
            return fail(ret_error, "KEEL_FAULT: too many faults in '%s' (at most %d)", spec, KEEL_FAULTS_MAX);
        int r = parse_one(elem, &parsed[n], ret_error);
        if (r < 0)
            return r;
        if (!*end) {
            n++;
            break;
        }
        p = end + 1;
    }
    faults_set(parsed, n);
    return 0;
}

int keel__faults_from_env(char **ret_error)
{
    const char *e = getenv("KEEL_FAULT");

    if (!e) {
        keel__faults_clear();
        return 0;
    }
    return keel__faults_parse(e, ret_error);
}
