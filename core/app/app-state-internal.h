/* SPDX-License-Identifier: MIT */
/*
 * The app as its own room (core/app/) holds it: what plugins and services registered, the command
 * line, the configuration, health checks. The machine's and telemetry's parts are embedded here
 * but written only by their rooms, through their own headers.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include <keel/health.h>
#include <keel/log.h>
#include <keel/plugin.h>
#include <keel/service.h>

#include "app-internal.h"
#include "app-metrics-internal.h"
#include "machine-internal.h"
#include "observer-internal.h"

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

/* What plugins and services registered: app.c, plugin.c, service.c, attach.c. */
typedef struct keel_registry {
    observer_list lists[_KEEL_EVENT_MAX][_KEEL_PHASE_MAX];
    observer_list command_list;
    keel_command_decl *commands;
    size_t n_commands, allocated_commands;
    keel_service **services; /* owned, in registration order */
    size_t n_services, allocated_services;
    bool services_resolved;      /* their observers are registered: no more services */
    const keel_plugin **plugins; /* owned array of borrowed entries: every plugin registered, in order */
    size_t n_plugins;
    const keel_plugin *plugin_now;          /* borrowed: owner of the observers registered now, outside a dispatch */
    const struct keel_service *service_now; /* borrowed: the service whose hooks are registered now */
    pthread_mutex_t attach_lock;            /* guards attachments */
    keel_attachment *attachments;
    size_t n_attachments, allocated_attachments;
} keel_registry;

/* Readiness and health checks, read by HTTP polling threads: health.c. */
typedef struct keel_health {
    atomic_int readiness; /* keel_readiness */
    /* When the main loop last came back from waiting and has not waited since; 0 while it waits
     * (or before it first did): a loop that never comes back fails /livez (health.c). */
    _Atomic keel_usec_t loop_busy_since;
    pthread_mutex_t lock; /* guards checks */
    keel_health_entry *checks;
    size_t n_checks, allocated_checks;
    char **status_details; /* "health check server[127.0.0.1:9998]", for STATUS= */
} keel_health;

struct keel_app {
    char *name;
    char *version; /* the program's, from keel_app_set_version(), or NULL */
    keel_paths paths;
    sd_event *event; /* owned */
    keel_registry registry;
    keel_cli cli;
    keel_machine machine; /* the machine's room writes it */
    keel_config *config;  /* owned */
    keel_core_settings settings;
    keel_health health;
    keel_telemetry telemetry; /* app-metrics.c writes it */
    int state_lock;           /* state-dir.c: the writer's lock on state_dir, held to the end, or -EBADF */
};

/* The plugin that owns what is registered now: the one registering, or the running observer's. */
const keel_plugin *keel__app_plugin_now(const keel_app *app);
/* The declared command @name, or NULL. */
keel_command_decl *keel__app_command(const keel_app *app, const char *name);
/* Frees every attached object, newest first. */
void keel__app_attachments_done(keel_app *app);
/* Registers the standard observers (unless @o says bare) and the program's plugins of @o. */
int keel__app_register_plugins(keel_app *app, const keel_run_options *o);
void keel__app_health_done(keel_app *app);
/* state-dir.c: registers state-dir.acquire (after the plugins: last in start.before). */
int keel__state_dir_register(keel_app *app);

/* cli.c: parses the command line into @app. Returns 0 to run, 1 after --help (exit 0),
 * or -EINVAL for bad usage (already reported on stderr with a hint). */
int keel__cli_parse(keel_app *app, int argc, char **argv);
/* Prints the version when it is the first argument, all the parse would do then; 1 when printed. */
int keel__cli_version_first(const keel_app *app, int argc, char **argv);
void keel__cli_usage(const keel_app *app, FILE *f);
/* plan.c: `plan [--format text|dot] [COMMAND [ARGS...]]`; returns the exit status. */
int keel__plan(keel_app *app);
