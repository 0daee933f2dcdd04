/* SPDX-License-Identifier: MIT */
#pragma once

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include <keel/app.h>
#include <keel/config.h>
#include <keel/health.h>
#include <keel/log.h>
#include <keel/metrics.h>
#include <keel/plugin.h>
#include <keel/service.h>
#include <keel/work.h>

#include "config.h"

/* The app's own settings: the rows of core/settings.c. */
typedef struct keel_core_settings {
    char *state_dir;
    char *pidfile;
    int log_level;  /* index into keel__log_level_choices */
    int log_format; /* keel_log_format */
    keel_usec_t shutdown_timeout;
    keel_usec_t shutdown_delay;
    keel_usec_t start_delay_jitter;
    char **plugins_disabled;
    int64_t http_connection_limit;
    keel_usec_t http_connection_timeout, http_request_header_timeout, http_request_body_timeout;
    int64_t http_connection_limit_per_client;
    uint64_t http_header_limit;
} keel_core_settings;

extern const keel_config_key keel__core_settings_table[];
extern const size_t keel__core_settings_table_size;
extern const char *const keel__log_level_choices[];
/* keel__log_level_choices index -> keel_log_level */
keel_log_level keel__log_level_from_choice(int choice);

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

/* Observers of one event and phase. Dispatch walks a snapshot of the count, so observers added
 * during dispatch wait for the next run; removal during dispatch only marks, and the list is
 * compacted when no dispatch is under way. */
typedef struct observer_list {
    keel_observer **items;
    size_t n, allocated;
    unsigned depth; /* dispatches under way */
    bool dirty;     /* has removed entries to compact */
} observer_list;

struct keel_observer {
    keel_app *app;       /* borrowed */
    observer_list *list; /* borrowed: the list that holds it */
    char *name;          /* the point */
    char *label;         /* "token provider start" for "Skipped …", or NULL */
    char *failing;       /* "starting token provider" for "Error …: msg", or NULL */
    char *command;       /* for command observers */
    keel_event event;
    keel_phase phase;
    keel_observer_handler_t handler;
    void *userdata;
    const keel_plugin *plugin;          /* borrowed: the plugin that registered it, or NULL */
    const struct keel_service *service; /* borrowed: the service whose hook it is, or NULL */
    char *registered_by;                /* the observer that registered it during a dispatch, or NULL */
    unsigned command_flags;             /* runs only for a command declared with all of these (keel_command_flags) */
    bool removed;
};

typedef struct keel_health_entry {
    char *name;
    keel_health_check_t check;
    void *userdata;
} keel_health_entry;

typedef struct keel_command_decl {
    char *name;
    char *summary;
    unsigned flags; /* keel_command_flags */
    char **uses;    /* services that run for it besides those whose vtables name it */
} keel_command_decl;

/* An object attached with keel_app_attach(). */
typedef struct keel_attachment {
    char *name;
    void *object;
    keel_free_handler_t free_fn;
} keel_attachment;

/* What plugins and services registered: core/app/app.c, plugin.c, service.c, attach.c. */
typedef struct keel_registry {
    observer_list lists[_KEEL_EVENT_MAX][_KEEL_PHASE_MAX];
    observer_list command_list;
    keel_command_decl *commands;
    size_t n_commands, allocated_commands;
    keel_service **services; /* owned, in registration order */
    size_t n_services, allocated_services;
    bool services_resolved;                 /* their observers are registered: no more services */
    const keel_plugin *plugin_now;          /* borrowed: owner of the observers registered now */
    const struct keel_service *service_now; /* borrowed: the service whose hooks are registered now */
    pthread_mutex_t attach_lock;            /* guards attachments */
    keel_attachment *attachments;
    size_t n_attachments, allocated_attachments;
} keel_registry;

/* The command line: core/app/cli.c. */
typedef struct keel_cli {
    char *command;
    char **args; /* argv from the command name on */
    char *config_file, *profile, *trace_path;
    bool daemonize; /* --daemon */
    char **sets;    /* "key=value" from --set, --log-level, --log-format */
} keel_cli;

/* Where the machine is: core/machine/machine.c. */
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
} keel_machine;

/* Readiness and health checks, read by HTTP polling threads: core/app/health.c. */
typedef struct keel_health {
    atomic_int readiness; /* keel_readiness */
    pthread_mutex_t lock; /* guards checks */
    keel_health_entry *checks;
    size_t n_checks, allocated_checks;
    char **status_details; /* "health check server[127.0.0.1:9998]", for STATUS= */
} keel_health;

/* The framework's own metrics: core/telemetry/app-metrics.c. */
typedef struct keel_telemetry {
    keel_metrics *metrics; /* owned */
    keel_work **works;     /* owned: freed after the registry whose callbacks read them */
    size_t n_works, allocated_works;
    keel_histogram *shutdown_duration; /* borrowed from metrics */
    keel_counter *refresh_failures_total;
} keel_telemetry;

/* What the process holds beyond the machine. */
typedef struct keel_process {
    int daemon_fd;              /* core/machine/daemon.c: the pipe to the process waiting for readiness, or -EBADF */
    int state_lock;             /* core/app/state-dir.c: the writer's lock on state_dir, held to the end, or -EBADF */
    bool curl_unload_scheduled; /* core/http/curl.c: libcurl goes away when start ends */
} keel_process;

/* A stop request as descriptors, for waits that must end at SIGINT, SIGTERM or SIGQUIT even while
 * the loop is not running (keel_app_wait()): core/machine/signals.c. Each is -EBADF until
 * keel__signals_setup(). */
typedef struct keel_stop {
    int fd;        /* epoll over the two below: readable once a stop is requested */
    int signal_fd; /* signalfd of the stop signals, never read: readable while one is pending */
    int event_fd;  /* eventfd, never read: written when the loop took one of them */
} keel_stop;

/* Where a program named NAME keeps its files, by convention: owned strings. */
typedef struct keel_paths {
    char *defaults_file;    /* /usr/share/NAME/defaults.yaml, or $NAME_DEFAULTS_FILE */
    char *app_file;         /* /etc/NAME/NAME.yaml, read when it exists */
    char *state_dir;        /* the default of the key state_dir as YAML: /var/lib/NAME, or keel_app_set_state_dir()'s */
    size_t state_dir_row;   /* the index of state_dir in table */
    keel_config_key *table; /* the framework's keys, with that default: keel__core_settings_table's copy */
} keel_paths;

struct keel_app {
    char *name;
    char *version; /* the program's, from keel_app_set_version(), or NULL */
    keel_paths paths;
    sd_event *event;             /* owned */
    sd_event_source *signals[6]; /* owned: SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 */
    keel_usec_t ignored_logged;  /* when a signal was last logged as ignored (signals.c) */
    unsigned ignored_unlogged;   /* ignored since, not logged */
    keel_registry registry;
    keel_cli cli;
    keel_machine machine;
    keel_config *config; /* owned */
    keel_core_settings settings;
    keel_health health;
    keel_telemetry telemetry;
    keel_process process;
    keel_stop stop;
};

/* core/app-metrics.c: the framework's own metrics. */
int keel__app_metrics_setup(keel_app *app);
void keel__app_metrics_done(keel_app *app);
void keel__metrics_phase_duration(keel_app *app, const char *event, const char *phase, keel_usec_t usec);
void keel__metrics_observer_error(keel_app *app, const char *observer, bool shutdown);
/* The last served life's shutdown duration, kept in state_dir from one process to the next:
 * save at the end of finalize, load (and remove) when the metrics exporter starts. Load
 * returns 1 when a duration was observed, 0 when there was none, -EBADMSG for a bad file. */
void keel__shutdown_duration_save(keel_app *app, keel_usec_t usec);
int keel__shutdown_duration_load(keel_app *app);

/* core/app/state-dir.c: registers state-dir.acquire (after the plugins: last in start.before). */
int keel__state_dir_register(keel_app *app);

/* core/daemon.c: --daemon. Returns 0 in the daemon, 1 in the process that was started once the
 * daemon is ready or failed (its exit status in *ret_status), or a negative errno. */
int keel__daemonize(keel_app *app, int *ret_status);
/* Tells the waiting process that the daemon is ready, or how it ended before it was. */
void keel__daemon_ready(keel_app *app);
void keel__daemon_exit(keel_app *app, int status);

/* core/health.c */
void keel__app_set_readiness(keel_app *app, keel_readiness r);
void keel__app_health_done(keel_app *app);

/* Adds a detail to the STATUS= the machine sends once ready ("Ready: a, b"). */
/* keel_app_cancel() with the errno that caused it (0 for none). */
int keel__app_cancel_errno(keel_app *app, keel_cause cause, int error, const char *fmt, ...) KEEL_PRINTF(4, 5);
/* keel_app_cancel() for an observer's failure that the machine logged already: the cause's message
 * is "CAUSE: @message" (for --daemon's waiting process), but the logs that follow say only the
 * cause ("start failed"), so that each error is one line. */
int keel__app_cancel_failed(keel_app *app, keel_cause cause, int error, const char *message);
/* What the logs say of the cause: its message, or only its name when the failure was logged. */
const char *keel__app_cause_text(const keel_app *app);

int keel__app_add_status_detail(keel_app *app, const char *fmt, ...) KEEL_PRINTF(2, 3);
/* Removes @detail (a server stopped before READY=1 is not listed). */
void keel__app_remove_status_detail(keel_app *app, const char *detail);

/* core/machine.c: runs the state machine to its end and returns the exit status. */
int keel__machine_run(keel_app *app);
/* Runs the command event alone, for `plan`: 0, or -EINVAL when a command observer failed (logged). */
int keel__machine_run_command(keel_app *app);
/* core/app/plan.c: `plan [--format text|dot] [COMMAND [ARGS...]]`; returns the exit status. */
int keel__plan(keel_app *app);
/* Dispatches pending signals (and anything else due) without blocking. */
void keel__machine_poll(keel_app *app);

/* core/signals.c: blocks SIGINT, SIGTERM and SIGHUP and adds their sd-event sources. */
int keel__signals_setup(keel_app *app);
/* Whether one of the app's signals is pending, without consuming it. */
bool keel__signals_pending(void);
/* Closes what keel__signals_setup() opened besides the event sources. Idempotent. */
void keel__signals_done(keel_app *app);

/* core/machine/trim.c: what only the start needed goes back, once the loop is idle after the
 * first READY=1 (the loader's relocation tables, freed heap pages). */
void keel__trim_when_idle(keel_app *app);
void keel__trim_memory(void);

/* core/notify.c: sd_notify helpers; no-ops without $NOTIFY_SOCKET. */
void keel__notify(const char *fmt, ...) KEEL_PRINTF(1, 2);

/* core/cli.c: parses the command line into @app. Returns 0 to run, 1 after --help (exit 0),
 * or -EINVAL for bad usage (already reported on stderr with a hint). */
int keel__cli_parse(keel_app *app, int argc, char **argv);
/* Prints the version when it is the first argument, all the parse would do then; 1 when printed. */
int keel__cli_version_first(const keel_app *app, int argc, char **argv);
void keel__cli_usage(const keel_app *app, FILE *f);
/* Prints "NAME VERSION (keel KEEL_VERSION)" (see keel_app_set_version()) and a newline to @f. */
void keel__cli_print_version(const keel_app *app, FILE *f);

/* Registers an observer with the texts the machine logs for a skip and for a failure. */
int keel__app_observe_full(keel_app *app, keel_event event, keel_phase phase, const char *name, const char *label,
                           const char *failing, keel_observer_handler_t handler, void *userdata, keel_observer **ret);
/* Makes @o run only for a command declared with every flag of @flags, so that neither the machine
 * nor `plan` shows it for another (the PID file for `serve`, not for a one-shot command). */
void keel__observer_set_command_flags(keel_observer *o, unsigned flags);
/* Whether @o runs for the selected command: its command, and the flags it needs. */
bool keel__observer_applies(const keel_observer *o, const char *command);
/* The declared command @name, or NULL. */
keel_command_decl *keel__app_command(const keel_app *app, const char *name);
/* Whether @name is a declared command. */
bool keel__app_command_declared(const keel_app *app, const char *name);
/* Frees every attached object, newest first. */
void keel__app_attachments_done(keel_app *app);
/* Registers the standard observers (unless @o says bare) and the program's plugins of @o. */
int keel__app_register_plugins(keel_app *app, const keel_run_options *o);
/* observers/: the standard observers' register functions. */
int keel__observers_commands_register(keel_app *app);
int keel__observers_config_register(keel_app *app);
int keel__observers_pidfile_register(keel_app *app);
int keel__observers_readiness_register(keel_app *app);
int keel__observers_systemd_register(keel_app *app);
/* Removes every observer that plugin @name registered. Returns how many. */
size_t keel__app_disable_plugin(keel_app *app, const char *name);
/* Whether the caller runs inside a start observer (the only place tasks may be spawned). */
bool keel__app_in_start(const keel_app *app);
/* The loaded configuration (borrowed). */
keel_config *keel__app_config(keel_app *app);
/* The program's files (borrowed). */
const keel_paths *keel__app_paths(const keel_app *app);
/* The parsed command line (borrowed). */
const keel_cli *keel__app_cli(const keel_app *app);
/* The app's own settings (borrowed). */
const keel_core_settings *keel__app_settings(const keel_app *app);
/* Applies the log settings of the configuration. */
void keel__app_apply_log_settings(keel_app *app);
void keel__observer_list_done(observer_list *l);
/* Ends a walk of @l: frees the observers removed during it once no walk is under way. */
void keel__observer_list_release(observer_list *l);
