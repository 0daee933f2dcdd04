/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <keel/common.h>

#include "macro-internal.h"

static keel_usec_t now_of(clockid_t clock)
{
    struct timespec ts;
    (void) clock_gettime(clock, &ts);
    return (keel_usec_t) ts.tv_sec * KEEL_USEC_PER_SEC + (keel_usec_t) ts.tv_nsec / 1000;
}

keel_usec_t keel_now(void)
{
    return now_of(CLOCK_MONOTONIC);
}

keel_usec_t keel_now_realtime(void)
{
    return now_of(CLOCK_REALTIME);
}

keel_usec_t keel_usec_left(keel_usec_t since, keel_usec_t now, keel_usec_t span)
{
    if (span == KEEL_USEC_INFINITY)
        return KEEL_USEC_INFINITY;
    keel_usec_t elapsed = now > since ? now - since : 0;
    return elapsed < span ? span - elapsed : 0;
}

/* "." and the @width digits of @frac without trailing zeros, or "" when it is 0. */
static void fraction(uint64_t frac, int width, char *buf, size_t size)
{
    buf[0] = '\0';
    if (frac == 0)
        return;
    (void) snprintf(buf, size, ".%0*" PRIu64, width, frac);
    for (size_t n = strlen(buf); n > 1 && buf[n - 1] == '0'; n--)
        buf[n - 1] = '\0';
}

char *keel_format_duration(keel_usec_t usec, char *buf, size_t size)
{
    char frac[32];
    if (usec == 0)
        (void) snprintf(buf, size, "0s");
    else if (usec < KEEL_USEC_PER_MSEC)
        (void) snprintf(buf, size, "%" PRIu64 "µs", usec);
    else if (usec < KEEL_USEC_PER_SEC) {
        fraction(usec % 1000, 3, frac, sizeof frac);
        (void) snprintf(buf, size, "%" PRIu64 "%sms", usec / 1000, frac);
    } else {
        uint64_t s = usec / KEEL_USEC_PER_SEC, h = s / 3600, m = s / 60 % 60;
        fraction(usec % KEEL_USEC_PER_SEC, 6, frac, sizeof frac);
        if (h > 0)
            (void) snprintf(buf, size, "%" PRIu64 "h%" PRIu64 "m%" PRIu64 "%ss", h, m, s % 60, frac);
        else if (m > 0)
            (void) snprintf(buf, size, "%" PRIu64 "m%" PRIu64 "%ss", m, s % 60, frac);
        else
            (void) snprintf(buf, size, "%" PRIu64 "%ss", s, frac);
    }
    return buf;
}
