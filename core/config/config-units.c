/* SPDX-License-Identifier: MIT */
/* Durations ("250ms", "1h30m") and sizes ("64KiB"): the configuration types with units. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <keel/strbuf.h>

#include "config-internal.h"
#include "macro-internal.h"

static const struct {
    const char *suffix;
    keel_usec_t usec;
} duration_units[] = {
    /* largest first: the formatter walks them in this order, from FORMAT_FIRST_UNIT */
    { "d", 24ULL * 3600 * KEEL_USEC_PER_SEC },
    { "h", 3600ULL * KEEL_USEC_PER_SEC },
    { "m", 60ULL * KEEL_USEC_PER_SEC },
    { "s", KEEL_USEC_PER_SEC },
    { "ms", KEEL_USEC_PER_MSEC },
    { "us", 1 },
};

/* Days are read but not written: "72h" stays "72h", as the tables, the docs and Go write it. */
#define FORMAT_FIRST_UNIT 1

#define DURATION_EXPECTED "expected a number with a unit (250ms, 30s, 5m, 24h)"

static void format_duration_buf(keel_strbuf *sb, keel_usec_t v)
{
    if (v == 0) { /* with its unit, as every other duration and every default in the tables */
        keel_strbuf_append(sb, "0s");
        return;
    }
    for (size_t i = FORMAT_FIRST_UNIT; i < ELEMENTSOF(duration_units); i++)
        if (v >= duration_units[i].usec) {
            keel_strbuf_printf(sb, "%" PRIu64 "%s", v / duration_units[i].usec, duration_units[i].suffix);
            v %= duration_units[i].usec;
        }
}

static keel_usec_t duration_unit(const char *unit, size_t n)
{
    for (size_t i = 0; i < ELEMENTSOF(duration_units); i++)
        if (strlen(duration_units[i].suffix) == n && strneq(duration_units[i].suffix, unit, n))
            return duration_units[i].usec;
    return 0;
}

/* "1h30m", "250ms", "0": components of a number and a unit, in any order, blanks between them
 * allowed. A number without a unit would be ambiguous, so only 0 may go bare. */
static int parse_duration_text(const keel_config_key *k, const char *t, keel_usec_t *ret, char **ret_error)
{
    const char *p = t;
    keel_usec_t total = 0;
    uint64_t n = 0;
    int r;

    if (*p == '-')
        return keel__config_fail(ret_error, -EINVAL, "invalid duration '%s' for %s: a duration cannot be negative", t, k->key);
    if (keel__config_parse_digits(&p, &n) == 0 && n == 0 && !*p) {
        *ret = 0;
        return 0;
    }
    p = t;
    do {
        r = keel__config_parse_digits(&p, &n);
        if (r == -ERANGE)
            return keel__config_fail(ret_error, -ERANGE, "invalid duration '%s' for %s: too large", t, k->key);
        if (r < 0)
            return keel__config_fail(ret_error, -EINVAL, "invalid duration '%s' for %s: " DURATION_EXPECTED, t, k->key);
        size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        if (len == 0)
            return keel__config_fail(ret_error, -EINVAL, "invalid duration '%s' for %s: " DURATION_EXPECTED, t, k->key);
        keel_usec_t unit = duration_unit(p, len);
        if (unit == 0)
            return keel__config_fail(ret_error, -EINVAL,
                                     "invalid duration '%s' for %s: unknown unit '%.*s' (expected us, ms, s, m, h or d)", t, k->key,
                                     (int) len, p);
        if (__builtin_mul_overflow(n, unit, &n) || __builtin_add_overflow(total, n, &total))
            return keel__config_fail(ret_error, -ERANGE, "invalid duration '%s' for %s: too large", t, k->key);
        p += len;
        p += strspn(p, " ");
    } while (*p);
    *ret = total;
    return 0;
}

int keel__config_parse_duration(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    keel_usec_t u = 0;
    int r = parse_duration_text(k, v->text, &u, ret_error);
    if (r < 0)
        return r;
    if (keel__config_has_bounds(k) && (u < (keel_usec_t) k->min || u > (keel_usec_t) k->max)) {
        char lo[64], hi[64];
        keel_strbuf a = KEEL_STRBUF_INIT(lo), b = KEEL_STRBUF_INIT(hi);
        format_duration_buf(&a, (keel_usec_t) k->min);
        format_duration_buf(&b, (keel_usec_t) k->max);
        return keel__config_fail(ret_error, -ERANGE, "duration '%s' for %s is out of range: expected between %s and %s", v->text,
                                 k->key, lo, hi);
    }
    ret->duration = u;
    return 0;
}

char *keel__config_format_duration(const keel_config_key *k, const keel_config_field *f)
{
    char buf[64];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    format_duration_buf(&sb, f->duration);
    return strdup(buf);
}

/* ---- Sizes --------------------------------------------------------------------------------- */

#define SIZE_EXPECTED "expected a number of bytes, optionally with K, M, G or T (512, 64K, 8MiB, 1G)"

static const char size_prefixes[] = "KMGT"; /* powers of 1024, in order */

static void format_size_buf(keel_strbuf *sb, uint64_t v)
{
    for (size_t i = sizeof(size_prefixes) - 1; i > 0; i--) {
        unsigned shift = 10 * (unsigned) i;
        if (v != 0 && v % (UINT64_C(1) << shift) == 0) {
            keel_strbuf_printf(sb, "%" PRIu64 "%ciB", v >> shift, size_prefixes[i - 1]);
            return;
        }
    }
    keel_strbuf_printf(sb, "%" PRIu64, v);
}

/* "512", "512B", "64K", "64KB", "64KiB", "1g": the prefix letter in either case. */
static int parse_size_text(const keel_config_key *k, const char *t, uint64_t *ret, char **ret_error)
{
    const char *p = t;
    uint64_t n = 0;
    unsigned shift = 0;

    int r = keel__config_parse_digits(&p, &n);
    if (r == -ERANGE)
        return keel__config_fail(ret_error, -ERANGE, "invalid size '%s' for %s: too large", t, k->key);
    if (r < 0)
        return keel__config_fail(ret_error, -EINVAL, "invalid size '%s' for %s: " SIZE_EXPECTED, t, k->key);
    const char *prefix = *p ? strchr(size_prefixes, toupper((unsigned char) *p)) : NULL;
    if (prefix) {
        shift = 10 * (unsigned) (prefix - size_prefixes + 1);
        p++;
        if (*p == 'i' && p[1] == 'B')
            p++;
    }
    if (*p == 'B')
        p++;
    if (*p)
        return keel__config_fail(ret_error, -EINVAL, "invalid size '%s' for %s: " SIZE_EXPECTED, t, k->key);
    if (shift && n > (UINT64_MAX >> shift))
        return keel__config_fail(ret_error, -ERANGE, "invalid size '%s' for %s: too large", t, k->key);
    *ret = n << shift;
    return 0;
}

int keel__config_parse_size(const keel_config_key *k, const keel_config_raw *v, keel_config_field *ret, char **ret_error)
{
    uint64_t n = 0;
    int r = parse_size_text(k, v->text, &n, ret_error);
    if (r < 0)
        return r;
    if (keel__config_has_bounds(k) && (n < (uint64_t) k->min || n > (uint64_t) k->max)) {
        char lo[64], hi[64];
        keel_strbuf a = KEEL_STRBUF_INIT(lo), b = KEEL_STRBUF_INIT(hi);
        format_size_buf(&a, (uint64_t) k->min);
        format_size_buf(&b, (uint64_t) k->max);
        return keel__config_fail(ret_error, -ERANGE, "size '%s' for %s is out of range: expected between %s and %s", v->text,
                                 k->key, lo, hi);
    }
    ret->size = n;
    return 0;
}

char *keel__config_format_size(const keel_config_key *k, const keel_config_field *f)
{
    char buf[64];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    format_size_buf(&sb, f->size);
    return strdup(buf);
}
