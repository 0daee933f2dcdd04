/* SPDX-License-Identifier: MIT */
/*
 * What the other rooms of libkeel (the machine, the observers, telemetry, work, http) may ask of
 * an app. The app itself, its registry and its state are the app room's alone
 * (app-state-internal.h): only core/app/ writes them.
 */
#pragma once

#include <stdio.h>

#include <keel/app.h>
#include <keel/config.h>
#include <keel/health.h>

#include "config-internal.h"
#include "settings-internal.h"

typedef struct keel_machine keel_machine;
typedef struct keel_telemetry keel_telemetry;

/* The command line: cli.c. */
typedef struct keel_cli {
    char *command;
    char **args; /* argv from the command name on */
    char *config_file, *profile, *trace_path;
    bool daemonize; /* --daemon */
    char **sets;    /* "key=value" from --set, --log-level, --log-format */
} keel_cli;

/* Where a program named NAME keeps its files, by convention: owned strings. */
typedef struct keel_paths {
    char *defaults_file;    /* /usr/share/NAME/defaults.yaml, or $NAME_DEFAULTS_FILE */
    char *app_file;         /* /etc/NAME/NAME.yaml, read when it exists */
    char *state_dir;        /* the default of the key state_dir as YAML: /var/lib/NAME, or keel_app_set_state_dir()'s */
    size_t state_dir_row;   /* the index of state_dir in table */
    keel_config_key *table; /* the framework's keys, with that default: keel__core_settings_table's copy */
} keel_paths;

/* The parts of the app that other rooms own and write: the machine's state (core/machine/) and
 * the framework's metrics (core/telemetry/app-metrics.c). */
keel_machine *keel__app_machine(keel_app *app);
const keel_machine *keel__app_machine_const(const keel_app *app);
keel_telemetry *keel__app_telemetry(keel_app *app);

/* Borrowed views, read-only: the loaded configuration, the program's files, the parsed command
 * line, the framework's own settings. */
keel_config *keel__app_config(keel_app *app);
const keel_paths *keel__app_paths(const keel_app *app);
const keel_cli *keel__app_cli(const keel_app *app);
const keel_core_settings *keel__app_settings(const keel_app *app);

/* Applies the log settings of the configuration. */
void keel__app_apply_log_settings(keel_app *app);
/* Removes every observer that plugin @name registered. Returns how many. */
size_t keel__app_disable_plugin(keel_app *app, const char *name);
/* Whether a plugin or a service is called @name; the names of all, ", " apart (to free(), NULL
 * out of memory): plugins.disabled's check. */
bool keel__app_plugin_known(const keel_app *app, const char *name);
char *keel__app_plugin_names(const keel_app *app);
/* Whether @name is a declared command. */
bool keel__app_command_declared(const keel_app *app, const char *name);

/* The STATUS= the machine sends once ready ("Ready: a, b"): its details, NULL-terminated. */
int keel__app_add_status_detail(keel_app *app, const char *fmt, ...) KEEL_PRINTF(2, 3);
/* Removes @detail (a server stopped before READY=1 is not listed). */
void keel__app_remove_status_detail(keel_app *app, const char *detail);
char *const *keel__app_status_details(const keel_app *app);
/* health.c */
void keel__app_set_readiness(keel_app *app, keel_readiness r);
/* telemetry/app-metrics.c, for the metrics exporter (core/components): the last served life's
 * shutdown duration, loaded when the exporter starts and consumed (the file load read removed,
 * good or bad) once it is ready, so that it outlives a failed start. Load returns 1 when a
 * duration was observed, 0 when there was none, -EBADMSG for a bad file. */
int keel__shutdown_duration_load(keel_app *app);
void keel__shutdown_duration_consume(keel_app *app);
/* The main loop waits (@busy false) or has come back to work (true); from the main thread. */
void keel__app_loop_busy(keel_app *app, bool busy);
/* How long the main loop has been working without waiting again at @now; 0 while it waits. */
keel_usec_t keel__app_loop_busy_for(const keel_app *app, keel_usec_t now);

/* --daemon (core/machine/daemon.c), in the daemon: sd-event refuses to be used from another
 * process than its creator, so the loop is made again. */
int keel__app_renew_event_loop(keel_app *app);
/* The paths of the command line made absolute, before the daemon leaves the working directory. */
int keel__cli_make_paths_absolute(keel_app *app);
/* Prints "NAME VERSION (keel KEEL_VERSION)" (see keel_app_set_version()) and a newline to @f. */
/* Prints the version line to @f: 0, or a negative errno once said why (a full disk, a closed pipe). */
int keel__cli_print_version(const keel_app *app, FILE *f);
/* Flushes what was printed to @f as @what ("the version"): 0, or a negative errno once logged. */
int keel__cli_flushed(FILE *f, const char *what);
