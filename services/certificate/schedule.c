/* SPDX-License-Identifier: MIT */
/* When to renew and how to say it: the refresh task's arithmetic, and the reading of an ACME server's
 * renewal window (RFC 9773), pure so they can be tested. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <keel/util.h>

#include "certificate.h"

bool cert_due(keel_usec_t now, keel_usec_t not_before, keel_usec_t not_after)
{
    if (now >= not_after)
        return true;
    return now >= not_before && not_after - now < (not_after - not_before) / 10;
}

keel_usec_t cert_renew_delay(keel_usec_t now, keel_usec_t not_before, keel_usec_t not_after, keel_usec_t interval)
{
    if (cert_due(now, not_before, not_after))
        return 0;
    return KEEL_MIN(interval, (not_after - now) / 2);
}

keel_usec_t cert_backoff_next(keel_usec_t previous)
{
    return previous ? KEEL_MIN(previous * 2, CERT_BACKOFF_MAX) : CERT_BACKOFF_MIN;
}

/* Halving what is left puts an attempt in every half of the remaining life down to its last
 * second or two, for about log2(left / CERT_BACKOFF_MIN) attempts more, where doubling alone steps
 * past the expiry (a 16 s step with 5 s left). */
keel_usec_t cert_retry_cap(keel_usec_t now, keel_usec_t not_after, keel_usec_t wait)
{
    if (now >= not_after)
        return wait;
    return KEEL_MIN(wait, KEEL_MAX((not_after - now) / 2, CERT_BACKOFF_MIN));
}

keel_usec_t cert_jitter_by(keel_usec_t usec, uint32_t random)
{
    double f = 0.9 + 0.2 * ((double) random / (double) UINT32_MAX);
    return (keel_usec_t) ((double) usec * f);
}

/* A jitter only spreads replicas' renewals apart: it needs no secret randomness, and the kernel's
 * spares the start OpenSSL's random generator, whose first use (its AES ciphers fetched) was ~2 ms
 * and ~100 kB that stay, for a process that may never need it. */
keel_usec_t cert_jitter(keel_usec_t usec)
{
    uint32_t x = 0;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t) sizeof x)
        return usec; /* no randomness: renewing in step beats not renewing */
    return cert_jitter_by(usec, x);
}

/* ---- ARI (RFC 9773) ------------------------------------------------------------------------------ */

keel_usec_t ari_pick(keel_usec_t start, keel_usec_t end, uint32_t random)
{
    if (end <= start)
        return start;
    return start + (keel_usec_t) ((double) (end - start) * ((double) random / (double) UINT32_MAX));
}

keel_usec_t ari_window_floor(keel_usec_t start, keel_usec_t end, keel_usec_t not_before, keel_usec_t not_after)
{
    keel_usec_t third = not_after > not_before ? not_before + (not_after - not_before) / 3 : not_before;
    return start < third && end > third ? third : start;
}

keel_usec_t ari_renew_delay(keel_usec_t now, keel_usec_t not_before, keel_usec_t not_after, keel_usec_t renew_at)
{
    if (cert_due(now, not_before, not_after) || renew_at <= now)
        return 0;
    /* A CA's window past the last tenth would let /readyz call the certificate unhealthy first. */
    keel_usec_t due_at = not_after - (not_after - not_before) / 10;
    return KEEL_MIN(renew_at, due_at) - now;
}

keel_usec_t ari_check_interval(keel_usec_t retry_after)
{
    if (retry_after == 0)
        return ARI_CHECK_MAX;
    return KEEL_MAX(ARI_CHECK_MIN, KEEL_MIN(retry_after, ARI_CHECK_MAX));
}

/* Exactly @n digits at *@p, moved past them. */
static bool digits(const char **p, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *ret = v;
    return true;
}

static bool literal(const char **p, const char *choices)
{
    if (!**p || !strchr(choices, **p))
        return false;
    (*p)++;
    return true;
}

/* A fraction of a second, to µs (finer digits dropped); none is 0, a '.' without digits -1. */
static long fraction(const char **p)
{
    if (**p != '.')
        return 0;
    const char *first = ++*p;
    long usec = 0;
    int n = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++)
        if (n < 6)
            usec = usec * 10 + (**p - '0'), n++;
    if (*p == first)
        return -1;
    for (; n < 6; n++)
        usec *= 10;
    return usec;
}

/* "Z", or an offset east of UTC in seconds after '+' or '-' HH:MM; INT_MIN when neither. */
static int utc_offset(const char **p)
{
    int h, m, sign = **p == '-' ? -1 : 1;
    if (literal(p, "Zz"))
        return 0;
    if (!literal(p, "+-") || !digits(p, 2, &h) || !literal(p, ":") || !digits(p, 2, &m) || h > 23 || m > 59)
        return INT_MIN;
    return sign * (h * 3600 + m * 60);
}

int ari_parse_time(const char *text, keel_usec_t *ret)
{
    const char *p = text;
    struct tm tm = {};
    int y, mo, d, h, mi, s;
    if (!(digits(&p, 4, &y) && literal(&p, "-") && digits(&p, 2, &mo) && literal(&p, "-") && digits(&p, 2, &d) &&
          literal(&p, "Tt") && digits(&p, 2, &h) && literal(&p, ":") && digits(&p, 2, &mi) && literal(&p, ":") &&
          digits(&p, 2, &s)))
        return -EINVAL;
    long usec = fraction(&p);
    int offset = utc_offset(&p);
    if (usec < 0 || offset == INT_MIN || *p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -EINVAL;
    tm = (struct tm){ .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };
    long long t = (long long) timegm(&tm) - offset;
    if (t < 0)
        return -ERANGE;
    *ret = (keel_usec_t) t * KEEL_USEC_PER_SEC + (keel_usec_t) usec;
    return 0;
}

/* An IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7), as CLOCK_REALTIME µs; 0 if not one. */
static keel_usec_t imf_fixdate(const char *p)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int d, y, h, mi, s;
    if (strlen(p) != 29 || p[3] != ',' || p[4] != ' ')
        return 0;
    p += 5;
    if (!digits(&p, 2, &d) || !literal(&p, " "))
        return 0;
    const char *month = strstr(months, (char[4]){ p[0], p[1], p[2], 0 });
    p += 3;
    if (!month || (month - months) % 3 || !literal(&p, " ") || !digits(&p, 4, &y) || !literal(&p, " ") || !digits(&p, 2, &h) ||
        !literal(&p, ":") || !digits(&p, 2, &mi) || !literal(&p, ":") || !digits(&p, 2, &s) || strcmp(p, " GMT") != 0 || d < 1 ||
        d > 31 || h > 23 || mi > 59 || s > 60)
        return 0;
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = (int) (month - months) / 3, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s
    };
    long long t = (long long) timegm(&tm);
    return t > 0 ? (keel_usec_t) t * KEEL_USEC_PER_SEC : 0;
}

keel_usec_t cert_parse_retry_after(const char *value, keel_usec_t now)
{
    if (value[0] >= '0' && value[0] <= '9') {
        char *end;
        errno = 0;
        unsigned long long sec = strtoull(value, &end, 10);
        if (*end)
            return 0;
        return errno == ERANGE || sec > RETRY_AFTER_MAX / KEEL_USEC_PER_SEC ? RETRY_AFTER_MAX : sec * KEEL_USEC_PER_SEC;
    }
    keel_usec_t at = imf_fixdate(value);
    return at > now ? KEEL_MIN(at - now, RETRY_AFTER_MAX) : 0;
}
