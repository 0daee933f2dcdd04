/* SPDX-License-Identifier: MIT */
/*
 * The machine's room (core/machine/): where the lifecycle is, why it stops, the signals that
 * stop it, the sd_notify messages and --daemon. Only this room writes a keel_machine; the app
 * holds it (keel__app_machine()) and reads it through the functions below.
 */
#pragma once

#include <signal.h>
#include <stdio.h>

#include <keel/app.h>

/* The states of the machine: every event, plus RUNNING (ready, waiting for a signal or SIGHUP). */
typedef enum keel_state {
    KEEL_STATE_COMMAND,
    KEEL_STATE_INIT,
    KEEL_STATE_CONFIGURE,
    KEEL_STATE_START,
    KEEL_STATE_READY,
    KEEL_STATE_RUNNING,
    KEEL_STATE_REFRESH,
    KEEL_STATE_STOP,
    KEEL_STATE_FINALIZE,
    KEEL_STATE_EXIT,
    _KEEL_STATE_MAX,
    _KEEL_STATE_INVALID = -EINVAL,
} keel_state;

const char *keel__state_to_string(keel_state s);

/* A stop request as descriptors, for waits that must end at SIGINT, SIGTERM or SIGQUIT even while
 * the loop is not running (keel_app_wait()): signals.c. Each is -EBADF until
 * keel__signals_setup(). */
typedef struct keel_stop {
    int fd;        /* epoll over the two below: readable once a stop is requested */
    int signal_fd; /* signalfd of the stop signals, never read: readable while one is pending */
    int event_fd;  /* eventfd, never read: written when the loop took one of them */
} keel_stop;

typedef struct keel_machine {
    keel_state state;
    keel_event event_now; /* running, or last run */
    keel_phase phase_now;
    bool dispatching;
    keel_observer *observer_now; /* borrowed */
    char *fail_message;          /* keel_app_fail() of the running observer */
    keel_cause cause;
    char *cause_message;
    bool cause_logged; /* cause_message's failure was logged at error level already: logs name only the cause */
    int cause_error;   /* the errno of the cause, or 0 */
    bool reload_pending;
    bool forced;    /* shutdown overran its timeout */
    bool was_ready; /* READY=1 was sent: a served life, whose shutdown duration is kept */
    keel_usec_t stop_started, stop_deadline, last_extend;
    unsigned refresh_failures;
    keel_observer *refresh_failed_at; /* borrowed: the observer that ended the last refresh */
    bool reverting;                   /* the observers before it run again (machine.c) */
    sd_event_source *signals[6];      /* owned: SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 */
    keel_usec_t ignored_logged;       /* when a signal was last logged as ignored (signals.c) */
    unsigned ignored_unlogged;        /* ignored since, not logged */
    keel_stop stop;
    int daemon_fd; /* daemon.c: the pipe to the process waiting for readiness, or -EBADF */
} keel_machine;

/* A machine that has not run. */
#define KEEL_MACHINE_INIT                                                                                                          \
    ((keel_machine){ .state = _KEEL_STATE_INVALID,                                                                                 \
                     .event_now = _KEEL_EVENT_INVALID,                                                                             \
                     .phase_now = _KEEL_PHASE_INVALID,                                                                             \
                     .stop_deadline = KEEL_USEC_INFINITY,                                                                          \
                     .stop = { .fd = -EBADF, .signal_fd = -EBADF, .event_fd = -EBADF },                                            \
                     .daemon_fd = -EBADF })
/* Frees what the machine of @app holds: its messages, signal sources and descriptors. */
void keel__machine_done(keel_app *app);

/* machine.c: runs the state machine to its end and returns the exit status. */
int keel__machine_run(keel_app *app);
/* Runs the command event alone, for `plan`: 0, or -EINVAL when a command observer failed (logged). */
int keel__machine_run_command(keel_app *app);
/* Dispatches pending signals (and anything else due) without blocking. */
void keel__machine_poll(keel_app *app);
/* Whether the machine has run (or runs) in @app: a second keel_app_run() is refused. */
bool keel__machine_started(const keel_app *app);
/* Whether READY=1 was sent. */
bool keel__machine_was_ready(const keel_app *app);
/* The event and phase under way or last run (raw, unlike keel_app_event()), and the observer
 * running now (NULL outside a call). */
keel_event keel__machine_event_now(const keel_app *app);
keel_phase keel__machine_phase_now(const keel_app *app);
keel_observer *keel__machine_observer_now(const keel_app *app);
/* Whether a failed refresh's observers run again to take the previous configuration back: the
 * configuration's own observer then puts back the values its reload replaced. */
bool keel__machine_reverting(const keel_app *app);
/* Whether the caller runs inside a start observer (the only place tasks may be spawned). */
bool keel__app_in_start(const keel_app *app);

/* cause.c: keel_app_cancel() with the errno that caused it (0 for none). */
int keel__app_cancel_errno(keel_app *app, keel_cause cause, int error, const char *fmt, ...) KEEL_PRINTF(4, 5);
/* keel_app_cancel() for an observer's failure that the machine logged already: the cause's message
 * is "CAUSE: @message" (for --daemon's waiting process), but the logs that follow say only the
 * cause ("start failed"), so that each error is one line. */
int keel__app_cancel_failed(keel_app *app, keel_cause cause, int error, const char *message);
/* What the logs say of the cause: its message, or only its name when the failure was logged. */
const char *keel__app_cause_text(const keel_app *app);

/* signals.c: blocks SIGINT, SIGTERM and SIGHUP and adds their sd-event sources. */
int keel__signals_setup(keel_app *app);
/* Whether one of the app's signals is pending, without consuming it. */
bool keel__signals_pending(void);
/* Drops the signal sources and closes what keel__signals_setup() opened. Idempotent. */
void keel__signals_done(keel_app *app);

/* daemon.c: --daemon. Returns 0 in the daemon, 1 in the process that was started once the
 * daemon is ready or failed (its exit status in *ret_status), or a negative errno. */
int keel__daemonize(keel_app *app, int *ret_status);
/* Tells the waiting process that the daemon is ready, or how it ended before it was. */
void keel__daemon_ready(keel_app *app);
void keel__daemon_exit(keel_app *app, int status);
/* In a daemon not yet ready: tells the process that waits of a failure with @status and why, as
 * keel__daemon_exit() does with the run's cause. Nothing when not detached. */
void keel__daemon_fail(keel_app *app, int status, const char *format, ...) KEEL_PRINTF(3, 4);

/* trim.c: what only the start needed goes back, once the loop is idle after the first READY=1
 * (the loader's relocation tables, freed heap pages). */
void keel__trim_when_idle(keel_app *app);
void keel__trim_memory(void);

/* notify.c: sd_notify helpers; no-ops without $NOTIFY_SOCKET. */
void keel__notify(const char *fmt, ...) KEEL_PRINTF(1, 2);
