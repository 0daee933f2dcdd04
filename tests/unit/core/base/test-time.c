/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>

#include <keel/common.h>

#include "macro-internal.h"

#define HOUR (3600 * KEEL_USEC_PER_SEC)

TestSuite(time, .timeout = 10);

Test(time, durations_print_as_go_does)
{
    static const struct {
        keel_usec_t usec;
        const char *text;
    } cases[] = {
        { 0, "0s" },
        { 7, "7µs" },
        { 999, "999µs" },
        { 1500, "1.5ms" },
        { 250 * KEEL_USEC_PER_MSEC, "250ms" },
        { 1500 * KEEL_USEC_PER_MSEC, "1.5s" },
        { 30 * KEEL_USEC_PER_SEC, "30s" },
        { 90 * KEEL_USEC_PER_SEC, "1m30s" },
        { 30 * 60 * KEEL_USEC_PER_SEC, "30m0s" },
        { HOUR, "1h0m0s" },
        { HOUR + 2 * KEEL_USEC_PER_SEC + 250000, "1h0m2.25s" },
        { 24 * HOUR, "24h0m0s" },
        { 3661 * KEEL_USEC_PER_SEC + 1, "1h1m1.000001s" },
    };
    char buf[64];
    for (size_t i = 0; i < ELEMENTSOF(cases); i++)
        cr_assert_str_eq(keel_format_duration(cases[i].usec, buf, sizeof buf), cases[i].text);
    char small[4];
    cr_assert_str_eq(keel_format_duration(24 * HOUR, small, sizeof small), "24h", "cut to the buffer, still terminated");
}

Test(time, realtime_is_the_epoch_clock)
{
    keel_usec_t now = keel_now_realtime();
    cr_assert_gt(now, (keel_usec_t) 1700000000 * KEEL_USEC_PER_SEC, "after 2023");
    cr_assert_lt(now, (keel_usec_t) 4102444800 * KEEL_USEC_PER_SEC, "before 2100");
    cr_assert_geq(keel_now_realtime(), now);
}

Test(time, what_is_left_of_a_wait_counts_from_its_start)
{
    static const struct {
        keel_usec_t since, now, span, left;
    } cases[] = {
        { 100, 100, 60, 60 }, /* just begun */
        { 100, 130, 60, 30 }, /* half past */
        { 100, 159, 60, 1 },  /* nearly over */
        { 100, 160, 60, 0 },  /* over: at once */
        { 100, 500, 60, 0 },  /* long over, e.g. a shorter period after a reload */
        { 100, 100, 0, 0 },   /* no wait */
        { 500, 100, 60, 60 }, /* a start after now (never on one clock): nothing elapsed */
        { 100, 500, KEEL_USEC_INFINITY, KEEL_USEC_INFINITY },
        { 0, KEEL_USEC_INFINITY - 1, KEEL_USEC_INFINITY - 1, 0 },
        { HOUR, HOUR + 90 * KEEL_USEC_PER_SEC, 30 * 60 * KEEL_USEC_PER_SEC, 28 * 60 * KEEL_USEC_PER_SEC + 30 * KEEL_USEC_PER_SEC },
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++)
        cr_assert_eq(keel_usec_left(cases[i].since, cases[i].now, cases[i].span), cases[i].left, "case %zu", i);
}
