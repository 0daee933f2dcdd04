/* SPDX-License-Identifier: MIT */
/* ACME Renewal Information (RFC 9773), its pure part in services/certificate/schedule.c: where in
 * the CA's window the renewal falls, a window already past, the Retry-After clamp, and the
 * timestamps the window is written in. */
#include <errno.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "certificate.h"

#define SEC  KEEL_USEC_PER_SEC
#define HOUR (3600 * SEC)

TestSuite(ari, .timeout = 30);

Test(ari, the_pick_is_uniform_over_the_window)
{
    keel_usec_t start = 1000 * HOUR, end = start + 48 * HOUR;
    cr_assert_eq(ari_pick(start, end, 0), start);
    cr_assert_eq(ari_pick(start, end, UINT32_MAX), end);
    keel_usec_t middle = ari_pick(start, end, UINT32_MAX / 2);
    cr_assert(middle > start + 24 * HOUR - SEC && middle <= start + 24 * HOUR, "%llu", (unsigned long long) (middle - start));
    for (uint32_t r = 1; r < UINT32_MAX / 2; r = r * 3 + 7) {
        keel_usec_t at = ari_pick(start, end, r);
        cr_assert(at >= start && at <= end);
    }
    cr_assert_eq(ari_pick(end, start, 12345), end, "an empty window: its start");
}

/* pebble gives a 40 s certificate a window from 24 h before it to 24 h after: picked from its
 * start, every other new certificate would be renewed at once. */
Test(ari, a_window_opening_before_a_third_of_the_life_is_picked_from_there)
{
    keel_usec_t nb = 1000 * HOUR, na = nb + 40 * SEC;
    cr_assert_eq(ari_window_floor(nb - 24 * HOUR, na + 24 * HOUR, nb, na), nb + 40 * SEC / 3);
    cr_assert_eq(ari_window_floor(nb + 20 * SEC, na, nb, na), nb + 20 * SEC, "a window inside the life is the CA's");
    cr_assert_eq(ari_window_floor(nb - 2 * HOUR, nb - HOUR, nb, na), nb - 2 * HOUR, "wholly early: the CA asks for it");
    for (uint32_t r = 1; r < UINT32_MAX / 2; r = r * 3 + 7)
        cr_assert_geq(ari_pick(ari_window_floor(nb - 24 * HOUR, na + 24 * HOUR, nb, na), na + 24 * HOUR, r), nb + 40 * SEC / 3);
}

Test(ari, renews_at_the_picked_point_inside_the_lifetime)
{
    keel_usec_t nb = 1000 * HOUR, na = nb + 90 * 24 * HOUR, now = nb + HOUR;
    cr_assert_eq(ari_renew_delay(now, nb, na, now + 10 * HOUR), 10 * HOUR);
}

Test(ari, a_window_already_past_renews_at_once)
{
    keel_usec_t nb = 1000 * HOUR, na = nb + 90 * 24 * HOUR, now = nb + HOUR;
    cr_assert_eq(ari_renew_delay(now, nb, na, now - 30 * 60 * SEC), 0, "revoked: pebble's window ended 30 min ago");
    cr_assert_eq(ari_renew_delay(now, nb, na, now), 0);
}

/* A window past the last tenth of the lifetime is cut to it: there /readyz would turn unhealthy. */
Test(ari, never_later_than_the_last_tenth)
{
    keel_usec_t nb = 1000 * HOUR, na = nb + 100 * HOUR, now = nb + HOUR;
    cr_assert_eq(ari_renew_delay(now, nb, na, na + 24 * HOUR), 89 * HOUR);
    cr_assert_eq(ari_renew_delay(nb + 95 * HOUR, nb, na, na + 24 * HOUR), 0, "due already");
    cr_assert_eq(ari_renew_delay(na + 1, nb, na, na + 24 * HOUR), 0, "expired");
}

Test(ari, retry_after_is_clamped_to_a_minute_and_a_day)
{
    cr_assert_eq(ari_check_interval(0), 24 * HOUR, "none: daily");
    cr_assert_eq(ari_check_interval(6 * HOUR), 6 * HOUR, "pebble's");
    cr_assert_eq(ari_check_interval(1 * SEC), 60 * SEC);
    cr_assert_eq(ari_check_interval(7 * 24 * HOUR), 24 * HOUR);
}

Test(ari, retry_after_is_seconds_or_a_date_and_capped_not_dropped)
{
    keel_usec_t now = 1796543279ULL * SEC; /* Sun, 06 Dec 2026 07:47:59 GMT */
    cr_assert_eq(cert_parse_retry_after("3600", now), HOUR);
    cr_assert_eq(cert_parse_retry_after("172800", now), 48 * HOUR, "a day or more is a wait too");
    cr_assert_eq(cert_parse_retry_after("99999999999999999999999", now), RETRY_AFTER_MAX, "capped, not dropped");
    cr_assert_eq(cert_parse_retry_after("40000000", now), RETRY_AFTER_MAX);
    cr_assert_eq(cert_parse_retry_after("Sun, 06 Dec 2026 09:47:59 GMT", now), 2 * HOUR);
    cr_assert_eq(cert_parse_retry_after("Wed, 09 Dec 2026 10:00:00 GMT", now), (3 * 24 * 3600 + 2 * 3600 + 12 * 60 + 1) * SEC);
    cr_assert_eq(cert_parse_retry_after("Sun, 06 Dec 2026 07:00:00 GMT", now), 0, "a date past: at once");
    cr_assert_eq(cert_parse_retry_after("Mon, 06 Dec 2027 07:47:59 GMT", now), RETRY_AFTER_MAX);
    const char *bad[] = { "",
                          "-5",
                          "+5",
                          "5s",
                          " 5",
                          "5.0",
                          "Sun, 06 Dex 2026 09:47:59 GMT",
                          "Sun, 06 Dec 2026 09:47:59 UTC",
                          "Sun, 6 Dec 2026 09:47:59 GMT",
                          "Sunday, 06-Dec-26 09:47:59 GMT",
                          "Sun, 06 Dec 2026 24:00:00 GMT" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(cert_parse_retry_after(bad[i], now), 0, "'%s'", bad[i]);
}

Test(ari, timestamps_are_rfc3339)
{
    keel_usec_t t = 0;
    cr_assert_eq(ari_parse_time("1970-01-01T00:00:00Z", &t), 0);
    cr_assert_eq(t, 0);
    cr_assert_eq(ari_parse_time("2026-12-06T07:47:59Z", &t), 0);
    cr_assert_eq(t, 1796543279ULL * SEC);
    cr_assert_eq(ari_parse_time("2026-12-06T07:47:59.123456789Z", &t), 0, "Go's RFC3339Nano");
    cr_assert_eq(t, 1796543279ULL * SEC + 123456);
    cr_assert_eq(ari_parse_time("2026-12-06T07:47:59.5Z", &t), 0);
    cr_assert_eq(t, 1796543279ULL * SEC + 500000);
    cr_assert_eq(ari_parse_time("2026-12-06T08:47:59+01:00", &t), 0);
    cr_assert_eq(t, 1796543279ULL * SEC);
    cr_assert_eq(ari_parse_time("2026-12-06t02:17:59-05:30", &t), 0);
    cr_assert_eq(t, 1796543279ULL * SEC);
}

Test(ari, other_timestamps_are_refused_and_leave_the_result)
{
    static const char *const bad[] = {
        "",
        "2026-12-06",
        "2026-12-06T07:47:59",
        "2026-12-06 07:47:59Z",
        "2026-13-06T07:47:59Z",
        "2026-12-06T24:00:00Z",
        "2026-12-06T07:47:59.Z",
        "2026-12-06T07:47:59Zx",
        "2026-12-06T07:47:59+0100",
        "26-12-06T07:47:59Z",
        "1776543279",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        keel_usec_t t = 42;
        cr_assert_eq(ari_parse_time(bad[i], &t), -EINVAL, "'%s'", bad[i]);
        cr_assert_eq(t, 42);
    }
    keel_usec_t t = 42;
    cr_assert_eq(ari_parse_time("1969-12-31T23:59:59Z", &t), -ERANGE);
}
