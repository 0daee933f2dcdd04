/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "app-state-internal.h"
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
    cr_assert(strstr(m, "keel_shutdown_duration_seconds_count 0\n"), "a life's own stop is for the next one: %s", m);
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

static void set_state_dir(keel_app *app, const char *dir)
{
    free(app->settings.state_dir);
    app->settings.state_dir = strdup(dir);
}

Test(app_metrics, the_shutdown_duration_goes_to_the_next_life)
{
    char dir[] = "/tmp/keel-test-XXXXXX", path[64], *m;
    cr_assert_not_null(mkdtemp(dir));
    (void) snprintf(path, sizeof path, "%s/last-shutdown", dir);

    keel_app *first = keel_app_new("test");
    set_state_dir(first, dir);
    keel__shutdown_duration_save(first, 1500 * KEEL_USEC_PER_MSEC);
    cr_assert_neq(access(path, F_OK), 0, "a life that never got ready records nothing");
    first->machine.was_ready = true;
    keel__shutdown_duration_save(first, 1500 * KEEL_USEC_PER_MSEC);
    cr_assert_eq(access(path, F_OK), 0);
    keel_app_free(first);

    keel_app *next = keel_app_new("test");
    set_state_dir(next, dir);
    keel__shutdown_duration_consume(next);
    cr_assert_eq(access(path, F_OK), 0, "nothing read, nothing removed");
    cr_assert_eq(keel__shutdown_duration_load(next), 1);
    cr_assert_eq(access(path, F_OK), 0, "kept until the life is ready: its start may still fail");
    keel__shutdown_duration_consume(next);
    cr_assert_neq(access(path, F_OK), 0, "consumed");
    cr_assert_eq(keel__shutdown_duration_load(next), 0, "observed once");
    cr_assert(keel_metrics_format(keel_app_metrics(next), &m, &(size_t){ 0 }) == 0);
    cr_assert(strstr(m, "keel_shutdown_duration_seconds_count 1\n"), "%s", m);
    cr_assert(strstr(m, "keel_shutdown_duration_seconds_sum 1.5\n"), "%s", m);
    free(m);

    FILE *f = fopen(path, "w");
    fputs("-3\n", f);
    fclose(f);
    cr_assert_eq(keel__shutdown_duration_load(next), -EBADMSG);
    keel__shutdown_duration_consume(next);
    cr_assert_neq(access(path, F_OK), 0, "a bad record is removed too");
    keel_app_free(next);
    cr_assert_eq(rmdir(dir), 0);
}
