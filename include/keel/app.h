/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include <keel/common.h>
#include <keel/event.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An application: its state machine, its observers, its event loop. */
typedef struct keel_app keel_app;
/** One registered observer; owned by its app. */
typedef struct keel_observer keel_observer;

/**
 * An observer. Returns 0 on success or a negative errno on failure; use keel_app_fail() to give
 * the failure a message. Runs on the main thread, inside the event and phase it was registered for.
 */
typedef int (*keel_observer_handler_t)(keel_app *app, void *userdata);

/** Why the run context was cancelled. The first cause wins; each maps to one exit status. */
typedef enum keel_cause {
    KEEL_CAUSE_NONE,           /* not cancelled */
    KEEL_CAUSE_SIGNAL,         /* SIGINT, SIGTERM or SIGQUIT: exit 0 */
    KEEL_CAUSE_COMMAND_DONE,   /* a command finished its work: exit 0 */
    KEEL_CAUSE_COMMAND_FAILED, /* a command's work failed: exit 1 */
    KEEL_CAUSE_START_FAILED,   /* a start or ready observer failed: exit 1 */
    KEEL_CAUSE_INIT_FAILED,    /* an init observer failed: exit 1 */
    KEEL_CAUSE_CONFIG_INVALID, /* a configure observer failed, bad configuration: exit 78 */
    KEEL_CAUSE_USAGE,          /* bad command line, or a command observer failed: exit 64 */
    _KEEL_CAUSE_MAX,
    _KEEL_CAUSE_INVALID = -EINVAL,
} keel_cause;

/** Exit statuses (keel(1)). */
#define KEEL_EXIT_OK        0
#define KEEL_EXIT_FAILURE   1
#define KEEL_EXIT_FORCED    2  /* shutdown overran shutdown.timeout */
#define KEEL_EXIT_USAGE     64 /* EX_USAGE */
#define KEEL_EXIT_SOFTWARE  70 /* EX_SOFTWARE: Keel itself failed (out of memory, no event loop) */
#define KEEL_EXIT_CANTCREAT 73 /* EX_CANTCREAT: the --trace file cannot be created */
#define KEEL_EXIT_CONFIG    78 /* EX_CONFIG */

/** A cause's name ("signal", "start failed"), or NULL when out of range. */
KEEL_API const char *keel_cause_to_string(keel_cause c);
/** The exit status a cause leads to (see the KEEL_EXIT_* values), or -EINVAL when out of range. */
KEEL_API int keel_cause_exit_status(keel_cause c);

/**
 * Creates an app named @name (used in logs and `--help`), with its sd-event loop and the standard
 * commands `serve`, `config`, `version` and `plan`. Its state directory defaults to /var/lib/NAME
 * (keel_app_set_state_dir() changes that) and it has no version of its own until
 * keel_app_set_version(). Returns NULL when out of memory. Compiled-in plugins
 * (KEEL_PLUGIN) and the standard observers are registered by keel_app_run(), not here, so a test
 * can build an app by hand.
 */
KEEL_API keel_app *keel_app_new(const char *name);
/** Frees @app and everything it owns; accepts NULL; returns NULL. Not from inside an observer. */
KEEL_API keel_app *keel_app_free(keel_app *app);

/** What keel_app_run_with() registers before it parses the command line. */
typedef struct keel_run_options {
    /* The bounds of the program's `keel_plugins` section (its KEEL_PLUGIN()s), or NULL for none. */
    const struct keel_plugin *const *plugins_start;
    const struct keel_plugin *const *plugins_stop;
    /* Without Keel's standard observers (the commands serve/config/version/plan, configuration
     * loading, PID file, systemd, readiness): a bare machine, for tests of the machine itself. */
    bool bare;
} keel_run_options;

/**
 * Registers Keel's standard observers (unless @options->bare) and the program's plugins, parses
 * the command line, and runs the state machine to its end on the calling thread (which must be
 * the process's main thread and the only one). Returns the exit status (>= 0, one of KEEL_EXIT_*),
 * or -EINVAL for a bad argument, -EBUSY for an app that ran before. Blocks SIGINT, SIGTERM,
 * SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2 for the whole process (SIGQUIT stops as SIGTERM does, the
 * last two are ignored) and ignores SIGPIPE and SIGXFSZ. @options may be NULL (no plugins).
 */
KEEL_API int keel_app_run_with(keel_app *app, int argc, char **argv, const keel_run_options *options);

/*
 * The calling program's `keel_plugins` section. Hidden, so that a reference from the program
 * binds to the program's own section, not to one of a shared library; weak, so that a program
 * without plugins links.
 */
extern const struct keel_plugin *const __start_keel_plugins[] __attribute__((weak, visibility("hidden")));
extern const struct keel_plugin *const __stop_keel_plugins[] __attribute__((weak, visibility("hidden")));

/**
 * keel_app_run_with() with the standard observers and the plugins compiled into the calling
 * program (KEEL_PLUGIN() in any of its object files). Inline, so that it finds the caller's
 * section whether Keel is linked statically or as libkeel.so. Plugins in another shared library
 * are not found: compile them into the program (from a static archive, with --whole-archive).
 */
static inline int keel_app_run(keel_app *app, int argc, char **argv)
{
    /* Positional: a header C++ includes too, where designated initializers came only with C++20. */
    keel_run_options o = { __start_keel_plugins, __stop_keel_plugins, false };
    return keel_app_run_with(app, argc, argv, &o);
}

/** What a command holds while it runs: the standard observers act on these flags. */
typedef enum keel_command_flags {
    /* One instance at a time: holds the PID file (the key pidfile) from start.before to finalize. */
    KEEL_COMMAND_SINGLE = 1 << 0,
    /* Writes the state directory: creates it (0700) and takes its writer's lock at the end of
     * start.before (after every other start.before observer), held until the app is freed. */
    KEEL_COMMAND_STATE_WRITER = 1 << 1,
    /* Prints a result rather than serving (`version`, `config`): logs warnings and errors only,
     * unless log.level is set (the configuration, the environment, --log-level). */
    KEEL_COMMAND_QUIET = 1 << 2,
    /* Checks what `serve` would run with: the configure, stop and finalize hooks of the services
     * that run for `serve` run for it too (start never does), so their checks of the
     * configuration are its checks (`config`, `config --check`). */
    KEEL_COMMAND_CHECKS_SERVE = 1 << 3,
} keel_command_flags;

/**
 * Declares a sub-command with @flags (keel_command_flags, or 0). @summary is shown by --help.
 * `serve` is declared by keel_app_new() with KEEL_COMMAND_SINGLE | KEEL_COMMAND_STATE_WRITER.
 * Returns -EEXIST for a name already declared, -EINVAL for an empty name or unknown flags, -ENOMEM.
 */
KEEL_API int keel_app_add_command(keel_app *app, const char *name, const char *summary, unsigned flags);
/**
 * Makes the service named @service run for @command too, as if its vtable listed @command: for a
 * command that needs a service it did not declare itself for (`keel token` needs the certificate
 * service, whose vtable says nothing of `token`). Both are checked when the command line is
 * parsed: an undeclared command or an unknown service fails the run (exit 70). Returns 0,
 * -ENOENT for an undeclared @command, -ESTALE once the command line was parsed, -EINVAL, -ENOMEM.
 */
KEEL_API int keel_app_command_uses(keel_app *app, const char *command, const char *service);
/** The flags the selected command was declared with; 0 before the command line is parsed. */
KEEL_API unsigned keel_app_command_flags(const keel_app *app);

/**
 * Registers observer @name (its trace point, e.g. "token.start") for @event and @phase.
 * Observers of one event and phase run in registration order, except in stop and finalize,
 * which run them in reverse. An observer registered while its event and phase is running runs
 * from the next time that event runs. Returns -EINVAL for KEEL_EVENT_COMMAND (use
 * keel_app_observe_command()) or a bad argument, -ESTALE when that event and phase has already
 * run for the last time, -ENOMEM. @ret_observer, when not NULL, receives a handle for
 * keel_observer_remove().
 */
KEEL_API int keel_app_observe(keel_app *app, keel_event event, keel_phase phase, const char *name, keel_observer_handler_t handler,
                              void *userdata, keel_observer **ret_observer);

/**
 * Registers observer @name for the `command` event when the selected command is @command (which
 * must have been declared with keel_app_add_command()). Such an observer usually registers the
 * observers that only that command needs. Returns -ENOENT for an undeclared command, -ESTALE once
 * the command event has run, -EINVAL, -ENOMEM.
 */
KEEL_API int keel_app_observe_command(keel_app *app, const char *command, const char *name, keel_observer_handler_t handler,
                                      void *userdata);

/**
 * Unregisters an observer. Safe from inside any observer, including @o itself; an observer
 * removed while its phase runs is not called if it has not been called yet. Accepts NULL.
 */
KEEL_API void keel_observer_remove(keel_observer *o);

/**
 * Gives the running observer's failure a message and returns -abs(@error) (or -EIO for 0), so
 * an observer can write `return keel_app_fail(app, r, "Failed to bind '%s'", addr);`.
 * The message is logged once by the state machine.
 */
KEEL_API int keel_app_fail(keel_app *app, int error, const char *fmt, ...) KEEL_PRINTF(3, 4);

/**
 * Cancels the run context with @cause and a message. The first cancellation wins and returns 1;
 * later ones are logged and return 0; -EINVAL for KEEL_CAUSE_NONE or a cause out of range. Safe
 * only on the main thread.
 */
KEEL_API int keel_app_cancel(keel_app *app, keel_cause cause, const char *fmt, ...) KEEL_PRINTF(3, 4);
/** The cause the run context was cancelled with, or KEEL_CAUSE_NONE. */
KEEL_API keel_cause keel_app_cause(const keel_app *app);
/** Whether the run context was cancelled. */
KEEL_API bool keel_app_cancelled(const keel_app *app);

/**
 * Whether a stop was requested: SIGINT, SIGTERM or SIGQUIT is pending (a start observer runs with
 * the signals blocked and the loop idle) or was received. A start observer that waits long for
 * something that can be given up, a credential fetch or its retries, asks this (or waits with
 * keel_app_wait()) and then fails with -ECANCELED: the machine takes such a failure, while a stop
 * is requested, as the signal's doing, not as a start error (exit 0, the observers after it
 * skipped). A wait that must finish, such as a server's ready check, does not ask. The signal is
 * never consumed: the machine acts on it when the observer returns. SIGHUP is no stop request.
 * False before keel_app_run() set up the signals. Safe on any thread.
 */
KEEL_API bool keel_app_stop_requested(const keel_app *app);
/**
 * Sleeps up to @usec (KEEL_USEC_INFINITY: until a stop request), waking at once at a stop request
 * (keel_app_stop_requested()), without polling. Returns 0 when the time passed, -ECANCELED at a stop
 * request (at once if there was one already), -ENOTCONN before keel_app_run() set up the
 * signals, -EINVAL. Safe on any thread.
 */
KEEL_API int keel_app_wait(keel_app *app, keel_usec_t usec);
/**
 * A descriptor that polls readable (POLLIN) from a stop request on, for a wait that polls other
 * descriptors too (a socket, libcurl's multi handle). Borrowed, valid until the app is freed:
 * never read it, close it or change it. -ENOTCONN before keel_app_run() set up the signals, -EINVAL.
 */
KEEL_API int keel_app_stop_fd(const keel_app *app);

/** The selected command ("serve"), or NULL before the command line is parsed. */
KEEL_API const char *keel_app_command(const keel_app *app);
/** The arguments after the command name (argv[0] is the command), for its observers to parse. */
KEEL_API char **keel_app_args(const keel_app *app, int *ret_argc);
/** The event running now, or _KEEL_EVENT_INVALID outside the state machine. */
KEEL_API keel_event keel_app_event(const keel_app *app);
/** The phase running now, or _KEEL_PHASE_INVALID outside an event or in `command`. */
KEEL_API keel_phase keel_app_phase(const keel_app *app);
/** The app's name. */
KEEL_API const char *keel_app_name(const keel_app *app);

/**
 * Sets the program's own version (@version, e.g. "1.2.3": non-empty, printable, no spaces), which
 * `NAME version` and `NAME --version` print with Keel's: "NAME VERSION (keel KEEL_VERSION)". Without
 * one they print "NAME (keel KEEL_VERSION)": never Keel's version as the program's. Call it before
 * keel_app_run(). Returns 0, -EINVAL for a bad argument, -ENOMEM (the previous version stays).
 */
KEEL_API int keel_app_set_version(keel_app *app, const char *version);
/** The version given to keel_app_set_version() (borrowed), or NULL when none was. */
KEEL_API const char *keel_app_version(const keel_app *app);
/** The app's sd-event loop (borrowed), run by the main thread; add sources to it from observers. */
KEEL_API sd_event *keel_app_get_event_loop(keel_app *app);

/**
 * The deadline (CLOCK_MONOTONIC) by which the running stop must be done: the start of `stop` plus
 * shutdown.timeout. KEEL_USEC_INFINITY outside `stop` and `finalize`.
 */
KEEL_API keel_usec_t keel_app_stop_deadline(const keel_app *app);
/**
 * Tells the service manager a stop is still making progress: sends EXTEND_TIMEOUT_USEC= covering
 * what is left of the stop budget plus a margin (at most once a second). @what is logged at info
 * level when not NULL. Call it from long stop work; keel_work_drain() callers get it for free
 * through keel_app_drain_progress().
 */
KEEL_API void keel_app_stop_progress(keel_app *app, const char *what);

/**
 * Sets the default of the key state_dir: the directory where the program keeps what must outlive a
 * process (by default /var/lib/NAME, which only root can create). @path must be absolute; NULL or
 * "" says that the program keeps no state: then `serve` creates and locks no directory and writes
 * no file (not even `last-shutdown`), and the configuration may set state_dir to '' as well as to a
 * directory (with a default directory it may not: the program relies on one). Call it before
 * keel_app_run(). Returns 0, -EINVAL for a relative path, -ESTALE once the configuration is loaded,
 * -ENOMEM (the previous default stays).
 */
KEEL_API int keel_app_set_state_dir(keel_app *app, const char *path);
/**
 * The state directory (the key state_dir, absolute; "" when the program keeps none, see
 * keel_app_set_state_dir()), or NULL before the configuration is loaded (configure.before).
 */
KEEL_API const char *keel_app_state_dir(const keel_app *app);
/**
 * Takes the state directory's writer's lock (an exclusive flock(2) on its file `.lock`) for the
 * rest of the app's life, so that no other process of the program writes there meanwhile; the
 * standard observers take it for a KEEL_COMMAND_STATE_WRITER command. Returns 0 (also when this
 * app holds it already), -EBUSY when another process holds it, -ENOENT without a state directory,
 * or the errno of open(2)/flock(2).
 */
KEEL_API int keel_app_lock_state_dir(keel_app *app);
/** Whether this app holds the state directory's writer's lock. */
KEEL_API bool keel_app_state_dir_locked(const keel_app *app);

/** Frees an object attached to an app. */
typedef void (*keel_free_handler_t)(void *object);
/**
 * Attaches @object to @app under @name, for the plugins and services of one app to share an object
 * (an identity store, a connection pool) without knowing each other's state. The app frees it with
 * @free_fn (may be NULL) when it is freed, after finalize, newest first. Main thread only. Returns
 * 0, -EEXIST for a name in use, -EINVAL, -ENOMEM (@object is not freed then).
 */
KEEL_API int keel_app_attach(keel_app *app, const char *name, void *object, keel_free_handler_t free_fn);
/** The object attached as @name (borrowed), or NULL. Thread-safe. */
KEEL_API void *keel_app_attached(const keel_app *app, const char *name);

/** The app's metrics registry (borrowed), served on /metrics by the metrics exporter component
 * (keel_app_add_metrics_exporter(), keel/components.h) when the program adds it. */
KEEL_API struct keel_metrics *keel_app_metrics(keel_app *app);

/**
 * The work tracker of @component ("token"), created on first use and owned by the app until it is
 * freed, so that metric callbacks reading it (keel_work_in_flight{component} and the started,
 * failed and rejected totals, registered here) never outlive it. Main thread only. NULL when out
 * of memory or for a bad name.
 */
KEEL_API struct keel_work *keel_app_work(keel_app *app, const char *component);

/** Sends a STATUS= line to the service manager (and logs it at debug level). */
KEEL_API void keel_app_status(keel_app *app, const char *fmt, ...) KEEL_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif
