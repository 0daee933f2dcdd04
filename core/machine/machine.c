/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <keel/point.h>
#include <keel/strbuf.h>

#include "app-internal.h"
#include "app-metrics-internal.h"
#include "config-internal.h"
#include "machine-internal.h"
#include "observer-internal.h"
#include "fault-internal.h"
#include "log-internal.h"
#include "macro-internal.h"
#include "trace-internal.h"

/* What a state ended with; with the state, it selects the next state. */
typedef enum outcome {
    OUTCOME_OK,
    OUTCOME_ERROR,     /* an observer failed */
    OUTCOME_CANCELLED, /* the run context was cancelled (signal, command done, earlier failure) */
    OUTCOME_RELOAD,    /* SIGHUP while running */
    _OUTCOME_MAX,
} outcome;

/* The rules of docs/architecture.md as data: init/configure errors go to finalize, start/ready errors to stop, a failed
 * refresh keeps the app running, and a cancel anywhere before stop leads to stop or finalize. */
static const keel_state transitions[_KEEL_STATE_MAX][_OUTCOME_MAX] = {
    [KEEL_STATE_COMMAND] = { KEEL_STATE_INIT, KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE },
    [KEEL_STATE_INIT] = { KEEL_STATE_CONFIGURE, KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE },
    [KEEL_STATE_CONFIGURE] = { KEEL_STATE_START, KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE },
    [KEEL_STATE_START] = { KEEL_STATE_READY, KEEL_STATE_STOP, KEEL_STATE_STOP, KEEL_STATE_STOP },
    [KEEL_STATE_READY] = { KEEL_STATE_RUNNING, KEEL_STATE_STOP, KEEL_STATE_STOP, KEEL_STATE_STOP },
    [KEEL_STATE_RUNNING] = { KEEL_STATE_STOP, KEEL_STATE_STOP, KEEL_STATE_STOP, KEEL_STATE_REFRESH },
    [KEEL_STATE_REFRESH] = { KEEL_STATE_RUNNING, KEEL_STATE_RUNNING, KEEL_STATE_STOP, KEEL_STATE_RUNNING },
    [KEEL_STATE_STOP] = { KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE, KEEL_STATE_FINALIZE },
    [KEEL_STATE_FINALIZE] = { KEEL_STATE_EXIT, KEEL_STATE_EXIT, KEEL_STATE_EXIT, KEEL_STATE_EXIT },
};

/* The cause an observer's error cancels the run context with; NONE: it does not cancel. */
static const keel_cause cause_on_error[_KEEL_STATE_MAX] = {
    [KEEL_STATE_COMMAND] = KEEL_CAUSE_USAGE,
    [KEEL_STATE_INIT] = KEEL_CAUSE_INIT_FAILED,
    [KEEL_STATE_CONFIGURE] = KEEL_CAUSE_CONFIG_INVALID,
    [KEEL_STATE_START] = KEEL_CAUSE_START_FAILED,
    [KEEL_STATE_READY] = KEEL_CAUSE_START_FAILED,
};

static const keel_event state_event[_KEEL_STATE_MAX] = {
    [KEEL_STATE_COMMAND] = KEEL_EVENT_COMMAND, [KEEL_STATE_INIT] = KEEL_EVENT_INIT,   [KEEL_STATE_CONFIGURE] = KEEL_EVENT_CONFIGURE,
    [KEEL_STATE_START] = KEEL_EVENT_START,     [KEEL_STATE_READY] = KEEL_EVENT_READY, [KEEL_STATE_RUNNING] = _KEEL_EVENT_INVALID,
    [KEEL_STATE_REFRESH] = KEEL_EVENT_REFRESH, [KEEL_STATE_STOP] = KEEL_EVENT_STOP,   [KEEL_STATE_FINALIZE] = KEEL_EVENT_FINALIZE,
    [KEEL_STATE_EXIT] = _KEEL_EVENT_INVALID,
};

static const char *const keel__state_table[_KEEL_STATE_MAX] = {
    [KEEL_STATE_COMMAND] = "command", [KEEL_STATE_INIT] = "init",   [KEEL_STATE_CONFIGURE] = "configure",
    [KEEL_STATE_START] = "start",     [KEEL_STATE_READY] = "ready", [KEEL_STATE_RUNNING] = "running",
    [KEEL_STATE_REFRESH] = "refresh", [KEEL_STATE_STOP] = "stop",   [KEEL_STATE_FINALIZE] = "finalize",
    [KEEL_STATE_EXIT] = "exit",
};

/* STATUS= shown by `systemctl status` while each event runs. */
static const char *const event_status[_KEEL_EVENT_MAX] = {
    [KEEL_EVENT_COMMAND] = "Selecting the command",
    [KEEL_EVENT_INIT] = "Initializing",
    [KEEL_EVENT_CONFIGURE] = "Configuring",
    [KEEL_EVENT_START] = "Starting services",
    [KEEL_EVENT_READY] = "Getting ready",
    [KEEL_EVENT_REFRESH] = "Reloading",
    [KEEL_EVENT_STOP] = "Stopping",
    [KEEL_EVENT_FINALIZE] = "Finalizing",
};

/* Startup events end at their first failing observer (the rest are skipped); refresh too, so a
 * half-applied reload never runs on. Stop and finalize run every observer, newest first. */
static const bool ends_at_first_error[_KEEL_EVENT_MAX] = {
    [KEEL_EVENT_COMMAND] = true, [KEEL_EVENT_INIT] = true,  [KEEL_EVENT_CONFIGURE] = true,
    [KEEL_EVENT_START] = true,   [KEEL_EVENT_READY] = true, [KEEL_EVENT_REFRESH] = true,
};
static const bool checks_signals[_KEEL_EVENT_MAX] = {
    [KEEL_EVENT_COMMAND] = true, [KEEL_EVENT_INIT] = true,  [KEEL_EVENT_CONFIGURE] = true,
    [KEEL_EVENT_START] = true,   [KEEL_EVENT_READY] = true,
};
static const bool reverse_order[_KEEL_EVENT_MAX] = { [KEEL_EVENT_STOP] = true, [KEEL_EVENT_FINALIZE] = true };

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(keel__state, keel_state, )

/* The observer running now, for the forced-exit signal handler to name (which may run on any
 * thread that does not block SIGALRM, hence atomic). */
static _Atomic(const char *) stuck_observer;

/* One run of one event's observers. */
typedef struct dispatch {
    keel_event event;
    const char *phase; /* "before", or the command's name */
    bool skip_rest;    /* an error or a cancel ended the event */
    int error;         /* the first error */
    char *message;     /* ... and its message */
} dispatch;

void keel__machine_poll(keel_app *app)
{
    if (!keel__signals_pending())
        return;
    /* Bounded: each run dispatches one source; the three signals and a few timers at most. */
    for (int i = 0; i < 16 && sd_event_run(keel_app_get_event_loop(app), 0) > 0; i++)
        ;
}

/* Only a trace needs observer timestamps; the clock is most of an observer call's cost. */
static keel_usec_t trace_now(void)
{
    return keel__trace_enabled() ? keel_now() : 0;
}

/* A skipped start or ready names a service that is not running: the operator must see it. Before
 * start nothing was running, and the failure that ended init or configure says all there is, so
 * those skips are debug lines (the trace has every skip either way). */
static void skip_observer(keel_app *app, keel_observer *o, dispatch *d)
{
    keel_log_level level = d->event == KEEL_EVENT_START || d->event == KEEL_EVENT_READY ? KEEL_LOG_INFO : KEEL_LOG_DEBUG;
    keel__log_context_set(keel_event_to_string(d->event), d->phase, o->name);
    if (o->label)
        keel_log(level, "Skipped %s", o->label);
    else
        keel_log(level, "Skipped observer %s", o->name);
    keel__trace_complete("observer", o->name, trace_now(), 0,
                         &(keel_trace_args){ .event = keel_event_to_string(d->event), .phase = d->phase, .result = "skipped" });
    keel__log_context_set(keel_event_to_string(d->event), d->phase, NULL);
}

static void report_failure(keel_app *app, keel_observer *o, dispatch *d, int r)
{
    keel_machine *m = keel__app_machine(app);
    const char *msg = m->fail_message ? m->fail_message : strerror(-r);

    if (o->failing)
        keel_log_error_errno(r, "Error %s: %s", o->failing, msg);
    else
        keel_log_error_errno(r, "Observer %s failed: %s", o->name, msg);
    keel__metrics_observer_error(app, o->name, d->event == KEEL_EVENT_STOP || d->event == KEEL_EVENT_FINALIZE);
    if (d->error == 0) {
        d->error = r;
        d->message = strdup(msg);
        if (d->event == KEEL_EVENT_REFRESH && !m->reverting)
            m->refresh_failed_at = o;
    }
}

/* Whether @r, a failure of an observer of a startup event, is the observer giving up at a stop
 * signal (keel_app_stop_requested()): then the signal is taken now, and it is the cause. */
static bool cancelled_by_signal(keel_app *app, const dispatch *d, int r)
{
    if (r != -ECANCELED || !checks_signals[d->event] || !keel_app_stop_requested(app))
        return false;
    keel__machine_poll(app);
    return keel_app_cause(app) == KEEL_CAUSE_SIGNAL;
}

/* Not an error: the signal is the cause, and the observers after it are skipped as at any signal. */
static void report_cancelled(keel_app *app, keel_observer *o)
{
    keel_machine *m = keel__app_machine(app);
    const char *msg = m->fail_message ? m->fail_message : strerror(ECANCELED);
    if (o->label)
        keel_log_info("Cancelled %s: %s", o->label, msg);
    else
        keel_log_info("Observer %s cancelled: %s", o->name, msg);
}

/* Calls one observer; @fault is the result of its `before` point (an injected error). */
static int call_observer(keel_app *app, keel_observer *o, dispatch *d, int fault)
{
    keel_machine *m = keel__app_machine(app);
    keel_usec_t t0 = trace_now();
    int r;

    m->fail_message = (free(m->fail_message), NULL);
    m->observer_now = o;
    keel__log_context_set(keel_event_to_string(d->event), d->phase, o->name);
    if (fault < 0)
        r = fault;
    else {
        r = o->handler(app, o->userdata);
        if (r >= 0)
            r = fault = keel_point_in(o->name);
    }
    if (fault < 0 && !m->fail_message)
        m->fail_message = strdup(KEEL_FAULT_MESSAGE);
    m->observer_now = NULL;
    bool cancelled = cancelled_by_signal(app, d, r);

    if (keel__trace_enabled())
        keel__trace_complete("observer", o->name, t0, keel_now() - t0,
                             &(keel_trace_args){ .event = keel_event_to_string(d->event),
                                                 .phase = d->phase,
                                                 .result = cancelled ? "cancelled"
                                                           : r < 0   ? "error"
                                                                     : "ok",
                                                 .error = r < 0 ? (m->fail_message ? m->fail_message : strerror(-r)) : NULL });
    if (cancelled)
        report_cancelled(app, o);
    else if (r < 0)
        report_failure(app, o, d, r);
    keel__log_context_set(keel_event_to_string(d->event), d->phase, NULL);
    return r;
}

static void run_list(keel_app *app, observer_list *l, dispatch *d, const char *command)
{
    size_t n = l->n; /* observers added from here on wait for the next run */
    bool reverse = reverse_order[d->event];

    keel__observer_list_hold(l);
    for (size_t k = 0; k < n; k++) {
        keel_observer *o = l->items[reverse ? n - 1 - k : k];
        if (!keel__observer_applies(o, command))
            continue;
        if (d->skip_rest) {
            skip_observer(app, o, d);
            continue;
        }
        atomic_store(&stuck_observer, o->name); /* its fault points included: an injected sleep can hang it */
        int fault = keel__point_before_observer(o->name);
        if (checks_signals[d->event]) {
            keel__machine_poll(app);
            if (keel_app_cancelled(app)) { /* "skip if runCtx cancelled" */
                atomic_store(&stuck_observer, NULL);
                d->skip_rest = true;
                skip_observer(app, o, d);
                continue;
            }
        }
        if (d->event == KEEL_EVENT_STOP || d->event == KEEL_EVENT_FINALIZE)
            keel_app_stop_progress(app, NULL);
        int r = call_observer(app, o, d, fault);
        atomic_store(&stuck_observer, NULL);
        if (r < 0 && ends_at_first_error[d->event])
            d->skip_rest = true;
    }
    keel__observer_list_release(l);
}

static void run_phases(keel_app *app, dispatch *d)
{
    keel_machine *m = keel__app_machine(app);
    if (d->event == KEEL_EVENT_COMMAND) {
        keel_usec_t t0 = keel_now();
        d->phase = keel_app_command(app);
        keel__log_context_set("command", d->phase, NULL);
        run_list(app, keel__app_command_observers(app), d, keel_app_command(app));
        keel__metrics_phase_duration(app, "command", d->phase, keel_now() - t0);
        return;
    }
    for (int p = 0; p < _KEEL_PHASE_MAX; p++) {
        keel_usec_t t0 = keel_now();
        char name[64];

        m->phase_now = (keel_phase) p;
        d->phase = keel_phase_to_string((keel_phase) p);
        keel__log_context_set(keel_event_to_string(d->event), d->phase, NULL);
        run_list(app, keel__app_observers(app, d->event, (keel_phase) p), d, NULL);
        keel_usec_t dur = keel_now() - t0;
        (void) snprintf(name, sizeof name, "%s.%s", keel_event_to_string(d->event), d->phase);
        keel__trace_complete("phase", name, t0, dur, NULL);
        keel__metrics_phase_duration(app, keel_event_to_string(d->event), d->phase, dur);
    }
}

/* Runs every observer of @event; the one place observers are called. */
static outcome run_event(keel_app *app, keel_event event)
{
    keel_machine *m = keel__app_machine(app);
    dispatch d = { .event = event };
    keel_usec_t t0 = keel_now();

    keel__notify("STATUS=%s", event_status[event]);
    m->event_now = event;
    m->phase_now = _KEEL_PHASE_INVALID;
    m->dispatching = true;
    run_phases(app, &d);
    m->dispatching = false;
    keel__log_context_set(NULL, NULL, NULL);
    keel__trace_complete("event", keel_event_to_string(event), t0, keel_now() - t0, NULL);

    if (d.error < 0) {
        keel_cause cause = cause_on_error[m->state];
        if (cause != KEEL_CAUSE_NONE)
            (void) keel__app_cancel_failed(app, cause, d.error, d.message); /* report_failure() logged it */
        free(d.message);
        return OUTCOME_ERROR;
    }
    if (checks_signals[event])
        keel__machine_poll(app);
    return keel_app_cancelled(app) ? OUTCOME_CANCELLED : OUTCOME_OK;
}

/* sd_event_run() in its three steps, so that the health check sees the loop working between its
 * waits (a refresh included, which follows the dispatch of SIGHUP): a loop stuck there fails
 * /livez, as WatchdogSec= would kill it under systemd. Each dispatch marks the start of work:
 * with an event already pending, sd_event_prepare() polls without waiting and can take a
 * signal too (right after READY=1 two idle tasks are pending). */
static int run_loop_once(keel_app *app)
{
    sd_event *e = keel_app_get_event_loop(app);
    int r = sd_event_prepare(e);
    if (r == 0) {
        keel__app_loop_busy(app, false);
        r = sd_event_wait(e, UINT64_MAX);
    }
    if (r <= 0)
        return r;
    keel__app_loop_busy(app, true);
    return sd_event_dispatch(e);
}

static outcome step_running(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    while (!keel_app_cancelled(app) && !m->reload_pending) {
        int r = run_loop_once(app);
        if (r < 0) {
            keel_log_error_errno(r, "Event loop failed: %m");
            (void) keel__app_cancel_errno(app, KEEL_CAUSE_COMMAND_FAILED, r, "event loop failed: %s", strerror(-r));
        }
    }
    if (keel_app_cancelled(app))
        return OUTCOME_CANCELLED;
    m->reload_pending = false;
    return OUTCOME_RELOAD;
}

/* READY=1 with what listens where, so `systemctl status` shows the bound addresses. @id says
 * which of the lifecycle's messages this is. */
static void become_ready(keel_app *app, const char *what, const char *id)
{
    keel_machine *m = keel__app_machine(app);
    char status[1024];
    keel_strbuf sb = KEEL_STRBUF_INIT(status);
    keel_strbuf_append(&sb, "Ready");
    char *const *details = keel__app_status_details(app);
    for (char *const *d = details; d && *d; d++)
        keel_strbuf_printf(&sb, "%s%s", d == details ? ": " : ", ", *d);
    keel__app_set_readiness(app, KEEL_READINESS_READY);
    if (!m->was_ready)
        keel__trim_when_idle(app);
    m->was_ready = true;
    keel__daemon_ready(app);
    keel__notify("READY=1\nSTATUS=%s", status);
    keel__log_message(KEEL_LOG_INFO, id, NULL, "%s%s", what, status + strlen("Ready"));
}

/* DESIGN: a failed refresh leaves the old configuration in force. The observers that ran before
 * the failing one run again, in order: config.reload, reverting, puts back the values its commit
 * replaced, and the others take them back as a refresh takes new ones. Failures here are logged
 * and counted; the pass goes on, as it has nothing better to go back to. */
static void revert_refresh(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    dispatch d = { .event = KEEL_EVENT_REFRESH };
    bool reached = false;

    m->reverting = m->dispatching = true;
    for (int p = 0; p < _KEEL_PHASE_MAX && !reached; p++) {
        observer_list *l = keel__app_observers(app, KEEL_EVENT_REFRESH, (keel_phase) p);
        size_t n = l->n;
        m->phase_now = (keel_phase) p;
        d.phase = keel_phase_to_string((keel_phase) p);
        keel__observer_list_hold(l);
        for (size_t k = 0; k < n && !(reached = l->items[k] == m->refresh_failed_at); k++)
            (void) call_observer(app, l->items[k], &d, 0);
        keel__observer_list_release(l);
    }
    m->reverting = m->dispatching = false;
    m->refresh_failed_at = NULL;
    keel__log_context_set(NULL, NULL, NULL);
    free(d.message);
}

static outcome step_refresh(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    keel__notify("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long) keel_now());
    outcome o = run_event(app, KEEL_EVENT_REFRESH);
    if (o == OUTCOME_OK)
        keel__config_reload_forget(keel__app_config(app));
    if (o == OUTCOME_ERROR) {
        revert_refresh(app);
        m->refresh_failures++;
        keel__metrics_refresh_failed(app);
        keel__log_message(KEEL_LOG_WARNING, KEEL_MESSAGE_RELOAD_FAILED, NULL,
                          "Refresh failed, keeping the previous configuration (%u failures so far)", m->refresh_failures);
    }
    if (keel_app_cancelled(app)) /* stopping: never announce ready on the way out */
        return OUTCOME_CANCELLED;
    become_ready(app, o == OUTCOME_OK ? "Reloaded" : "Still ready", o == OUTCOME_OK ? KEEL_MESSAGE_RELOADED : NULL);
    return o;
}

/* The forced exit: when stop and finalize overrun shutdown.timeout (plus a grace second for
 * observers that honour the deadline themselves), a stuck main thread cannot report anything, so
 * a one-shot timer's signal handler names the observer and exits 2. Async-signal-safe only. */
static timer_t forced_timer;
static bool forced_timer_armed;

static void write_str(const char *s)
{
    ssize_t _unused_ n = write(STDERR_FILENO, s, strlen(s));
}

static void on_forced_exit(int sig)
{
    const char *o = atomic_load(&stuck_observer);
    write_str("keel: shutdown overran shutdown.timeout");
    if (o) {
        write_str(" in observer ");
        write_str(o);
    }
    write_str("; forcing exit with status 2\n");
    keel__trace_close_from_signal();
    _exit(KEEL_EXIT_FORCED);
}

static void arm_forced_exit(keel_app *app)
{
    struct sigaction sa = { .sa_handler = on_forced_exit };
    struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
    keel_usec_t after = keel__app_settings(app)->shutdown_timeout + KEEL_USEC_PER_SEC;
    struct itimerspec its = { .it_value = { .tv_sec = (time_t) (after / KEEL_USEC_PER_SEC),
                                            .tv_nsec = (long) (after % KEEL_USEC_PER_SEC) * 1000 } };

    if (sigaction(SIGALRM, &sa, NULL) < 0 || timer_create(CLOCK_MONOTONIC, &sev, &forced_timer) < 0) {
        keel_log_warning_errno(errno, "Failed to arm the shutdown timeout, ignoring: %m");
        return;
    }
    forced_timer_armed = timer_settime(forced_timer, 0, &its, NULL) >= 0;
}

static void disarm_forced_exit(void)
{
    if (forced_timer_armed)
        (void) timer_delete(forced_timer);
    forced_timer_armed = false;
}

static outcome step_stop(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    m->stop_started = keel_now();
    m->stop_deadline = m->stop_started + keel__app_settings(app)->shutdown_timeout;
    m->last_extend = 0;
    keel__app_set_readiness(app, KEEL_READINESS_STOPPING); /* /readyz turns 503 before anything closes */
    keel__notify("STOPPING=1");
    keel_app_stop_progress(app, NULL);
    arm_forced_exit(app);
    outcome o = run_event(app, KEEL_EVENT_STOP);
    keel__machine_poll(app); /* a signal that came during the stop is logged (and changes nothing) */
    return o;
}

static outcome step_finalize(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    outcome o = run_event(app, KEEL_EVENT_FINALIZE);
    keel__machine_poll(app);
    disarm_forced_exit();
    if (m->stop_started)
        keel__shutdown_duration_save(app, keel_now() - m->stop_started);
    if (m->stop_started && keel_now() > m->stop_deadline) {
        keel__log_message(KEEL_LOG_ERROR, KEEL_MESSAGE_FORCED, NULL, "Shutdown took %.3fs, more than shutdown.timeout (%.3fs)",
                          (double) (keel_now() - m->stop_started) / 1e6, (double) keel__app_settings(app)->shutdown_timeout / 1e6);
        m->forced = true;
    }
    return o;
}

static outcome step(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    switch (m->state) {
    case KEEL_STATE_RUNNING:
        return step_running(app);
    case KEEL_STATE_REFRESH:
        return step_refresh(app);
    case KEEL_STATE_STOP:
        return step_stop(app);
    case KEEL_STATE_FINALIZE:
        return step_finalize(app);
    default: {
        if (m->state == KEEL_STATE_START)
            keel__log_message(KEEL_LOG_DEBUG, KEEL_MESSAGE_STARTING, NULL, "Starting (command %s)", keel_app_command(app));
        outcome o = run_event(app, state_event[m->state]);
        if (m->state == KEEL_STATE_READY && o == OUTCOME_OK)
            become_ready(app, "Ready", KEEL_MESSAGE_READY);
        return o;
    }
    }
}

int keel__machine_run_command(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    m->state = KEEL_STATE_COMMAND;
    return run_event(app, KEEL_EVENT_COMMAND) == OUTCOME_ERROR ? -EINVAL : 0;
}

int keel__machine_run(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    m->state = KEEL_STATE_COMMAND;
    while (m->state != KEEL_STATE_EXIT) {
        keel_state from = m->state;
        outcome o = step(app);
        m->state = transitions[from][o];
        keel_log_debug("State %s -> %s", keel__state_table[from], keel__state_table[m->state]);
    }

    int status = keel_cause_exit_status(m->cause);
    if (m->forced)
        status = KEEL_EXIT_FORCED;
    char field[32];
    (void) snprintf(field, sizeof field, "EXIT_STATUS=%d", status);
    const char *const fields[] = { field, NULL };
    if (status == 0)
        keel__log_message(KEEL_LOG_INFO, KEEL_MESSAGE_EXITED, fields, "Shutdown completed");
    else
        keel__log_struct(KEEL_LOG_ERROR, m->cause_error, KEEL_MESSAGE_EXITED, fields, __FILE__, __LINE__, __func__,
                         "Exiting with status %d: %s", status, keel__app_cause_text(app) ?: "shutdown forced");
    keel__daemon_exit(app, status);
    return status;
}
