/* SPDX-License-Identifier: MIT */
#include <time.h>

#include <keel/common.h>

keel_usec_t keel_now(void)
{
    struct timespec ts;
    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (keel_usec_t) ts.tv_sec * KEEL_USEC_PER_SEC + (keel_usec_t) ts.tv_nsec / 1000;
}
