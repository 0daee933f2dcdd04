/* SPDX-License-Identifier: MIT */
/* The rules of docs/architecture.md ("Rules"), one test each, on an app driven in-process. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "app-internal.h"
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

TestSuite(machine, .init = setup, .fini = teardown, .timeout = 30);

/* Registers one observer named "<event>.<phase>" for every phase of @events. */
static void observe_all(const keel_event *events, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < _KEEL_PHASE_MAX; p++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", keel_event_to_string(events[i]), keel_phase_to_string(p));
            apptest_observe(&t, events[i], p, name, ACT_OK);
        }
}

static const keel_event all_but_refresh[] = { KEEL_EVENT_INIT,  KEEL_EVENT_CONFIGURE, KEEL_EVENT_START,
                                              KEEL_EVENT_READY, KEEL_EVENT_STOP,      KEEL_EVENT_FINALIZE };

Test(machine, events_and_phases_run_in_order)
{
    apptest_observe(&t, KEEL_EVENT_COMMAND, 0, "command", ACT_OK);
    observe_all(all_but_refresh, 6);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "command init.before init.during init.after configure.before configure.during configure.after "
                              "start.before start.during start.after ready.before ready.during ready.after done "
                              "stop.before stop.during stop.after finalize.before finalize.during finalize.after ");
}

Test(machine, stop_and_finalize_run_in_reverse_order_of_registration)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "start-a", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "start-b", ACT_DONE);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-a", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-b", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_FINALIZE, KEEL_PHASE_DURING, "fin-a", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_FINALIZE, KEEL_PHASE_DURING, "fin-b", ACT_OK);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "start-a start-b stop-b stop-a fin-b fin-a ");
}

Test(machine, first_start_error_skips_the_rest_and_logs_each_skip)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "a", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "b", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "c", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_AFTER, "d", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "ready", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_FINALIZE, KEEL_PHASE_DURING, "finalize", ACT_OK);

    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_str_eq(t.calls, "a b stop finalize ");
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Observer b failed: failed on purpose"), "%s", logs);
    cr_assert(strstr(logs, "Skipped observer c"), "%s", logs);
    cr_assert(strstr(logs, "Skipped observer d"), "%s", logs);
    cr_assert(strstr(logs, "Initiating shutdown, cause: start failed\n"), "%s", logs);
    cr_assert(strstr(logs, "Exiting with status 1: start failed\n"), "%s", logs);
    const char *first = strstr(logs, "failed on purpose");
    cr_assert(first && !strstr(first + 1, "failed on purpose"), "one line per error:\n%s", logs);
}

Test(machine, init_error_goes_to_finalize_only)
{
    observe_all(all_but_refresh, 6);
    apptest_observe(&t, KEEL_EVENT_INIT, KEEL_PHASE_DURING, "init-fails", ACT_FAIL);

    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_str_eq(t.calls, "init.before init.during init-fails finalize.before finalize.during finalize.after ");
}

Test(machine, configure_error_goes_to_finalize_only_with_status_78)
{
    observe_all(all_but_refresh, 6);
    apptest_observe(&t, KEEL_EVENT_CONFIGURE, KEEL_PHASE_BEFORE, "configure-fails", ACT_FAIL);

    cr_assert_eq(apptest_run(&t, NULL), 78);
    cr_assert_str_eq(t.calls, "init.before init.during init.after configure.before configure-fails "
                              "finalize.before finalize.during finalize.after ");
}

Test(machine, ready_error_goes_to_stop_then_finalize)
{
    observe_all(all_but_refresh, 6);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_BEFORE, "ready-fails", ACT_FAIL);

    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert(strstr(t.calls, "ready.before ready-fails stop.before stop.during stop.after finalize.before"), "%s", t.calls);
    cr_assert_null(strstr(t.calls, "ready.during"));
}

Test(machine, stop_and_finalize_run_every_observer_despite_errors)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "start", ACT_DONE);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-a", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-b", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-c", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_AFTER, "stop-after", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_FINALIZE, KEEL_PHASE_DURING, "fin-a", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_FINALIZE, KEEL_PHASE_DURING, "fin-b", ACT_FAIL);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "start stop-c stop-b stop-a stop-after fin-b fin-a ");
}

static int register_more(keel_app *app, void *userdata)
{
    apptest *at = userdata;
    strcat(at->calls, "register ");
    /* Same event and phase: it has begun, so it would never run again. */
    cr_assert_eq(keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_DURING, "late", register_more, at, NULL), -ESTALE);
    cr_assert_eq(keel_app_observe(app, KEEL_EVENT_INIT, KEEL_PHASE_AFTER, "past", register_more, at, NULL), -ESTALE);
    apptest_observe(at, KEEL_EVENT_START, KEEL_PHASE_AFTER, "start-after-added", ACT_OK);
    apptest_observe(at, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-added", ACT_OK);
    return 0;
}

Test(machine, observers_registered_during_an_event_run_later)
{
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "register", register_more, &t, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "ready", ACT_DONE);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "register start-after-added ready stop-added ");
}

Test(machine, first_cancel_cause_wins)
{
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "done", ACT_DONE);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "fails-later", ACT_COMMAND_FAILED);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(keel_app_cause(t.app), KEEL_CAUSE_COMMAND_DONE);
    cr_assert(strstr(apptest_logs(&t), "Already shutting down (done), ignoring: command failed"), "%s", apptest_logs(&t));
}

Test(machine, exit_status_of_each_cause)
{
    static const int expected[_KEEL_CAUSE_MAX] = {
        [KEEL_CAUSE_NONE] = 0,
        [KEEL_CAUSE_SIGNAL] = 0,
        [KEEL_CAUSE_COMMAND_DONE] = 0,
        [KEEL_CAUSE_COMMAND_FAILED] = 1,
        [KEEL_CAUSE_START_FAILED] = 1,
        [KEEL_CAUSE_INIT_FAILED] = 1,
        [KEEL_CAUSE_CONFIG_INVALID] = 78,
        [KEEL_CAUSE_USAGE] = 64,
    };
    for (int c = 0; c < _KEEL_CAUSE_MAX; c++)
        cr_assert_eq(keel_cause_exit_status(c), expected[c], "cause %s", keel_cause_to_string(c));
    cr_assert_eq(keel_cause_exit_status(_KEEL_CAUSE_MAX), -EINVAL);
    cr_assert_eq(keel_cause_exit_status(-1), -EINVAL);
}

Test(machine, command_failed_exits_1)
{
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "work", ACT_COMMAND_FAILED);
    cr_assert_eq(apptest_run(&t, NULL), 1);
}

Test(machine, command_observer_error_is_bad_usage)
{
    apptest_observe(&t, KEEL_EVENT_COMMAND, 0, "parse-args", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_INIT, KEEL_PHASE_DURING, "init", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_FINALIZE, KEEL_PHASE_DURING, "finalize", ACT_OK);
    cr_assert_eq(apptest_run(&t, NULL), 64);
    cr_assert_str_eq(t.calls, "parse-args finalize ");
}

Test(machine, signal_during_start_is_seen_between_observers)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "a", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "b-raises", ACT_SIGINT);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "c", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "ready", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop", ACT_OK);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "a b-raises stop ");
    cr_assert_eq(keel_app_cause(t.app), KEEL_CAUSE_SIGNAL);
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Received signal: interrupt"), "%s", logs);
    cr_assert(strstr(logs, "Skipped observer c"), "%s", logs);
}

Test(machine, signal_raised_by_the_last_start_observer_skips_ready)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "last-raises", ACT_SIGTERM);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "ready", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop", ACT_OK);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "last-raises stop ");
    cr_assert(strstr(apptest_logs(&t), "Received signal: terminated"));
}

Test(machine, a_start_observer_that_gives_up_at_a_signal_is_the_signal_case)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "a", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "waits", ACT_SIGTERM_WAIT);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "c", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "ready", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop", ACT_OK);

    keel_usec_t t0 = keel_now();
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_lt(keel_now() - t0, 5 * KEEL_USEC_PER_SEC, "the 60 s wait ended at the signal");
    cr_assert_str_eq(t.calls, "a waits stop ");
    cr_assert_eq(keel_app_cause(t.app), KEEL_CAUSE_SIGNAL);
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Received signal: terminated"), "%s", logs);
    cr_assert(strstr(logs, "Observer waits cancelled: gave up waiting"), "%s", logs);
    cr_assert(strstr(logs, "Skipped observer c"), "%s", logs);
    cr_assert_null(strstr(logs, "failed"), "%s", logs);
    cr_assert_null(strstr(logs, "ignoring"), "%s", logs);
}

Test(machine, ecanceled_without_a_signal_is_a_start_error)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "gives-up", ACT_CANCELLED);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "c", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop", ACT_OK);

    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_str_eq(t.calls, "gives-up stop ");
    cr_assert_eq(keel_app_cause(t.app), KEEL_CAUSE_START_FAILED);
    cr_assert(strstr(apptest_logs(&t), "Observer gives-up failed: cancelled on purpose"), "%s", apptest_logs(&t));
}

Test(machine, error_then_signal_during_shutdown_keeps_the_error)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "fails", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-raises", ACT_SIGINT);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-polls", ACT_OK);

    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_str_eq(t.calls, "fails stop-polls stop-raises ");
    cr_assert_eq(keel_app_cause(t.app), KEEL_CAUSE_START_FAILED);
}

static int poll_loop(keel_app *app, void *userdata)
{
    strcat(((apptest *) userdata)->calls, "poll ");
    while (sd_event_run(keel_app_get_event_loop(app), 0) > 0)
        ;
    return 0;
}

Test(machine, second_signal_during_shutdown_is_logged_and_changes_nothing)
{
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "first", ACT_SIGINT);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_AFTER, "poll", poll_loop, &t, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "second", ACT_SIGTERM);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "first second poll ");
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Received signal: terminated"), "%s", logs);
    cr_assert(strstr(logs, "Already shutting down (received signal: interrupt), ignoring: received signal: terminated"), "%s",
              logs);
}

Test(machine, sighup_before_ready_is_ignored_and_logged)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "hup", ACT_SIGHUP);
    apptest_observe(&t, KEEL_EVENT_REFRESH, KEEL_PHASE_DURING, "refresh", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "hup done ");
    cr_assert(strstr(apptest_logs(&t), "Received signal: hangup before ready, ignoring"));
}

/* While running, a timer raises SIGHUP @hups times; refresh observers record. */
typedef struct hup_driver {
    apptest *t;
    int hups;
    sd_event_source *timer;
} hup_driver;

static int on_hup_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
    hup_driver *h = userdata;
    if (h->hups-- > 0) {
        kill(getpid(), SIGHUP);
        return sd_event_source_set_time_relative(s, 1000) < 0 ? -1 : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    }
    keel_app_cancel(h->t->app, KEEL_CAUSE_COMMAND_DONE, "refreshed");
    return 0;
}

static int arm_hups(keel_app *app, void *userdata)
{
    hup_driver *h = userdata;
    return sd_event_add_time_relative(keel_app_get_event_loop(app), &h->timer, CLOCK_MONOTONIC, 1000, 1, on_hup_timer, h);
}

Test(machine, sighup_while_ready_runs_refresh_and_a_failed_refresh_keeps_running)
{
    hup_driver h = { .t = &t, .hups = 2 };
    apptest_notify_socket(&t);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "arm", arm_hups, &h, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_REFRESH, KEEL_PHASE_BEFORE, "refresh-fails", ACT_FAIL);
    apptest_observe(&t, KEEL_EVENT_REFRESH, KEEL_PHASE_DURING, "refresh-skipped", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop", ACT_OK);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    sd_event_source_unref(h.timer);
    cr_assert_str_eq(t.calls, "refresh-fails refresh-fails stop ");
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Refresh failed, keeping the previous configuration (2 failures so far)"), "%s", logs);
    const char *n = apptest_notifications(&t);
    cr_assert(strstr(n, "|RELOADING=1\nMONOTONIC_USEC="), "%s", n);
    cr_assert(strstr(n, "|READY=1\nSTATUS=Ready|"), "%s", n);
}

static keel_observer *victim;

static int remove_self_and_next(keel_app *app, void *userdata)
{
    apptest *at = userdata;
    strcat(at->calls, "remover ");
    keel_observer_remove(victim);
    return 0;
}

static keel_observer *self;

static int remove_self(keel_app *app, void *userdata)
{
    strcat(((apptest *) userdata)->calls, "self ");
    keel_observer_remove(self);
    return 0;
}

static int victim_fn(keel_app *app, void *userdata)
{
    strcat(((apptest *) userdata)->calls, "victim ");
    return 0;
}

Test(machine, observer_may_remove_itself_and_others_during_dispatch)
{
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "self", remove_self, &t, &self), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "remover", remove_self_and_next, &t, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "victim", victim_fn, &t, &victim), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "done", ACT_DONE);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "self remover done ");
}

Test(machine, notifies_the_service_manager_in_order)
{
    hup_driver h = { .t = &t, .hups = 0 }; /* no SIGHUP: the timer just ends the run once ready */
    apptest_notify_socket(&t);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "arm", arm_hups, &h, NULL), 0);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    sd_event_source_unref(h.timer);
    const char *n = apptest_notifications(&t);
    const char *expected[] = { "STATUS=Selecting the command|",
                               "STATUS=Initializing|",
                               "STATUS=Configuring|",
                               "STATUS=Starting services|",
                               "STATUS=Getting ready|",
                               "READY=1\nSTATUS=Ready|",
                               "STOPPING=1|",
                               "EXTEND_TIMEOUT_USEC=",
                               "STATUS=Stopping|",
                               "STATUS=Finalizing|" };
    const char *at = n;
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) {
        const char *found = strstr(at, expected[i]);
        cr_assert(found, "'%s' missing or out of order in: %s", expected[i], n);
        at = found + strlen(expected[i]);
    }
}

Test(machine, no_ready_when_the_command_finishes_before_ready)
{
    apptest_notify_socket(&t);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_null(strstr(apptest_notifications(&t), "READY=1"));
}

static int drain_stuck_work(keel_app *app, void *userdata)
{
    keel_work *w = keel_work_new("test-work");
    cr_assert_eq(keel_work_begin(w), 0);
    /* Progress comes every 500 ms and the stop timeout is extended at most once a second: the
     * extension at the 1 s tick has 800 ms to happen before this deadline, however loaded the
     * machine. */
    keel_usec_t deadline = keel_now() + 1800 * KEEL_USEC_PER_MSEC;
    cr_assert_lt(deadline, keel_app_stop_deadline(app));
    cr_assert_eq(keel_work_drain(w, deadline, keel_app_drain_progress, app), -ETIMEDOUT);
    keel_work_end(w, true);
    keel_work_free(w);
    return 0;
}

Test(machine, a_long_drain_logs_progress_and_extends_the_stop_timeout)
{
    apptest_notify_socket(&t);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "drain", drain_stuck_work, NULL, NULL), 0);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    const char *logs = apptest_logs(&t);
    const char *progress = strstr(logs, "Waiting for test-work: 1 in flight, ");
    cr_assert(progress, "%s", logs);
    double left = strtod(progress + strlen("Waiting for test-work: 1 in flight, "), NULL);
    cr_assert(left > 0.0 && left <= 1.3, "the first report comes 500 ms in or later: %s", logs);
    const char *n = apptest_notifications(&t), *first = strstr(n, "EXTEND_TIMEOUT_USEC=");
    cr_assert(first && strstr(first + 1, "EXTEND_TIMEOUT_USEC="), "one extension at stop, another a second later: %s", n);
}

Test(machine, a_signal_during_stop_is_logged_even_without_a_loop_running)
{
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "done", ACT_DONE);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "stop-raises", ACT_SIGTERM);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert(strstr(apptest_logs(&t), "Already shutting down (done), ignoring: received signal: terminated"), "%s",
              apptest_logs(&t));
}

Test(machine, a_refresh_that_cancels_does_not_announce_ready_again)
{
    hup_driver h = { .t = &t, .hups = 1 };
    apptest_notify_socket(&t);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "arm", arm_hups, &h, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_REFRESH, KEEL_PHASE_DURING, "refresh-cancels", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    sd_event_source_unref(h.timer);
    const char *n = apptest_notifications(&t), *reloading = strstr(n, "RELOADING=1");
    cr_assert(reloading, "%s", n);
    cr_assert_null(strstr(reloading, "READY=1"), "READY=1 after a refresh that cancelled: %s", n);
    cr_assert(strstr(reloading, "STOPPING=1"), "%s", n);
}

/* The loop check (healthcheck.loop_timeout) counts from the end of the loop's last wait, also when
 * the signal came in while another event was pending: sd_event_prepare() then polls without
 * waiting. Right after READY=1 two idle tasks are pending (libcurl's unload, the memory trim); a
 * SIGHUP taken between them left a held refresh looking idle to /livez (CI, under TSan). */
static int raise_sighup(sd_event_source *s, void *userdata)
{
    return kill(getpid(), SIGHUP);
}

static int nothing(sd_event_source *s, void *userdata)
{
    return 0;
}

static void add_idle_task(keel_app *app, sd_event_handler_t fn, int64_t priority)
{
    sd_event_source *s = NULL;
    cr_assert_geq(sd_event_add_defer(keel_app_get_event_loop(app), &s, fn, NULL), 0);
    cr_assert_geq(sd_event_source_set_priority(s, priority), 0);
    cr_assert_geq(sd_event_source_set_floating(s, true), 0);
    sd_event_source_unref(s);
}

static int two_idle_tasks(keel_app *app, void *userdata)
{
    add_idle_task(app, raise_sighup, SD_EVENT_PRIORITY_IDLE);
    add_idle_task(app, nothing, SD_EVENT_PRIORITY_IDLE + 1);
    return 0;
}

static keel_usec_t busy_in_refresh;

static int measure_busy(keel_app *app, void *userdata)
{
    (void) usleep(2000);
    busy_in_refresh = keel__app_loop_busy_for(app, keel_now());
    return keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "measured");
}

Test(machine, a_refresh_counts_as_the_loop_working_when_its_signal_came_with_other_work_pending)
{
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "idle-tasks", two_idle_tasks, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_REFRESH, KEEL_PHASE_DURING, "measure", measure_busy, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_geq(busy_in_refresh, 2000, "the loop seen working for %llu us", (unsigned long long) busy_in_refresh);
}
