/* SPDX-License-Identifier: MIT */
/* Go's time.Duration.String() for microseconds (duration.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "duration.h"

/* "." and the digits of @frac (@width digits) without trailing zeros, or "" when it is 0. */
static void fraction(uint64_t frac, int width, char *buf, size_t size)
{
    if (frac == 0) {
        (void) snprintf(buf, size, "%s", "");
        return;
    }
    (void) snprintf(buf, size, ".%0*" PRIu64, width, frac);
    for (size_t n = strlen(buf); n > 1 && buf[n - 1] == '0'; n--)
        buf[n - 1] = '\0';
}

void token_format_duration(keel_usec_t usec, char *buf, size_t size)
{
    char frac[32];
    if (usec == 0) {
        (void) snprintf(buf, size, "0s");
    } else if (usec < 1000) {
        (void) snprintf(buf, size, "%" PRIu64 "µs", usec);
    } else if (usec < KEEL_USEC_PER_SEC) {
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
}
