/* SPDX-License-Identifier: MIT */
/* When to renew and how to say it: the refresh task's arithmetic, pure so it can be tested. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "certificate-internal.h"
#include "macro.h"

keel_usec_t keel__cert_renew_delay(keel_usec_t now, keel_usec_t not_after, keel_usec_t interval)
{
    return MIN(interval, not_after > now ? (not_after - now) / 2 : 0);
}

keel_usec_t keel__cert_backoff_next(keel_usec_t previous)
{
    return previous ? MIN(previous * 2, CERT_BACKOFF_MAX) : CERT_BACKOFF_MIN;
}

keel_usec_t keel__cert_jitter_by(keel_usec_t usec, uint32_t random)
{
    double f = 0.9 + 0.2 * ((double) random / (double) UINT32_MAX);
    return (keel_usec_t) ((double) usec * f);
}

keel_usec_t keel__cert_jitter(keel_usec_t usec)
{
    uint32_t x = 0;
    if (RAND_bytes((unsigned char *) &x, sizeof x) != 1)
        return usec; /* no randomness: renewing in step beats not renewing */
    return keel__cert_jitter_by(usec, x);
}

/* Go's time.Duration.String(): "24h0m0s", "1m30s", "1.5s", "250ms", "0s". */
void keel__cert_format_duration(keel_usec_t u, char *buf, size_t size)
{
    char frac[16] = "";
    if (u == 0) {
        (void) snprintf(buf, size, "0s");
        return;
    }
    if (u < KEEL_USEC_PER_MSEC) {
        (void) snprintf(buf, size, "%" PRIu64 "µs", u);
        return;
    }
    if (u < KEEL_USEC_PER_SEC) {
        (void) snprintf(buf, size, "%gms", (double) u / 1000.0);
        return;
    }
    uint64_t h = u / (3600 * KEEL_USEC_PER_SEC), m = u / (60 * KEEL_USEC_PER_SEC) % 60, s = u / KEEL_USEC_PER_SEC % 60;
    uint64_t us = u % KEEL_USEC_PER_SEC;
    if (us) {
        (void) snprintf(frac, sizeof frac, ".%06" PRIu64, us);
        for (size_t n = strlen(frac); frac[n - 1] == '0'; n--)
            frac[n - 1] = '\0';
    }
    if (h)
        (void) snprintf(buf, size, "%" PRIu64 "h%" PRIu64 "m%" PRIu64 "%ss", h, m, s, frac);
    else if (m)
        (void) snprintf(buf, size, "%" PRIu64 "m%" PRIu64 "%ss", m, s, frac);
    else
        (void) snprintf(buf, size, "%" PRIu64 "%ss", s, frac);
}
