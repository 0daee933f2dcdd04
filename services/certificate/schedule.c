/* SPDX-License-Identifier: MIT */
/* When to renew and how to say it: the refresh task's arithmetic, pure so it can be tested. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <keel/util.h>

#include "certificate-internal.h"

bool keel__cert_due(keel_usec_t now, keel_usec_t not_before, keel_usec_t not_after)
{
    if (now >= not_after)
        return true;
    return now >= not_before && not_after - now < (not_after - not_before) / 10;
}

keel_usec_t keel__cert_renew_delay(keel_usec_t now, keel_usec_t not_before, keel_usec_t not_after, keel_usec_t interval)
{
    if (keel__cert_due(now, not_before, not_after))
        return 0;
    return KEEL_MIN(interval, (not_after - now) / 2);
}

keel_usec_t keel__cert_backoff_next(keel_usec_t previous)
{
    return previous ? KEEL_MIN(previous * 2, CERT_BACKOFF_MAX) : CERT_BACKOFF_MIN;
}

keel_usec_t keel__cert_jitter_by(keel_usec_t usec, uint32_t random)
{
    double f = 0.9 + 0.2 * ((double) random / (double) UINT32_MAX);
    return (keel_usec_t) ((double) usec * f);
}

/* A jitter only spreads replicas' renewals apart: it needs no secret randomness, and the kernel's
 * spares the start OpenSSL's random generator, whose first use (its AES ciphers fetched) was ~2 ms
 * and ~100 kB that stay, for a process that may never need it. */
keel_usec_t keel__cert_jitter(keel_usec_t usec)
{
    uint32_t x = 0;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t) sizeof x)
        return usec; /* no randomness: renewing in step beats not renewing */
    return keel__cert_jitter_by(usec, x);
}
