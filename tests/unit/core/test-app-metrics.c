/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "apptest.h"

static apptest t;

static void setup(void)
{
    apptest_init(&t);
}

static void teardown(void)
{
    apptest_done(&t);
}

TestSuite(app_metrics, .init = setup, .fini = teardown, .timeout = 30);

static char *scrape(void)
{
    char *text = NULL;
    size_t size;
    cr_assert_eq(keel_metrics_format(keel_app_metrics(t.app), &text, &size), 0);
    return text;
}

Test(app_metrics, observer_and_shutdown_errors_are_counted)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "svc.start", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "svc.stop", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_FINALIZE, KEEL_PHASE_DURING, "other.finalize", ACT_FAIL);
    cr_assert_eq(apptest_run(&t, NULL), 1);

    char *m = scrape();
    cr_assert(strstr(m, "keel_observer_errors_total{observer=\"svc.start\"} 1\n"), "%s", m);
    cr_assert(strstr(m, "keel_observer_errors_total{observer=\"svc.stop\"} 1\n"), "%s", m);
    cr_assert(strstr(m, "keel_shutdown_errors_total{component=\"svc\"} 1\n"), "%s", m);
    cr_assert(strstr(m, "keel_shutdown_errors_total{component=\"other\"} 1\n"), "%s", m);
    cr_assert_null(strstr(m, "keel_shutdown_errors_total{component=\"svc.start\"}"));
    cr_assert(strstr(m, "keel_shutdown_duration_seconds_count 1\n"), "one stop observed: %s", m);
    cr_assert(strstr(m, "keel_lifecycle_event_duration_seconds{event=\"finalize\",phase=\"after\"}"), "%s", m);
    cr_assert(strstr(m, "keel_build_info{version=\"" KEEL_VERSION "\"} 1\n"), "%s", m);
    free(m);
}

Test(app_metrics, work_trackers_belong_to_the_app_and_are_exported)
{
    keel_work *w = keel_app_work(t.app, "token");
    cr_assert_not_null(w);
    cr_assert_eq(keel_app_work(t.app, "token"), w, "one tracker per component");
    cr_assert_null(keel_app_work(t.app, ""));
    cr_assert_eq(keel_work_begin(w), 0);
    cr_assert_eq(keel_work_begin(w), 0);
    keel_work_end(w, false);

    char *m = scrape();
    cr_assert(strstr(m, "keel_work_in_flight{component=\"token\"} 1\n"), "%s", m);
    cr_assert(strstr(m, "keel_work_started_total{component=\"token\"} 2\n"), "%s", m);
    cr_assert(strstr(m, "keel_work_failed_total{component=\"token\"} 1\n"), "%s", m);
    cr_assert(strstr(m, "keel_work_rejected_total{component=\"token\"} 0\n"), "%s", m);
    free(m);
    keel_work_end(w, true);
}
