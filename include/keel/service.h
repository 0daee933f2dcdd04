/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>
#include <keel/config.h>
#include <keel/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A service: a component of an app declared by one const vtable, sugar over observers. Keel
 * allocates its private state, registers its configuration keys, orders it after the services it
 * names in `after`, and calls its hooks as observers of the commands it joins. Opaque: the app
 * owns it, from keel_app_add_service() until keel_app_free().
 */
typedef struct keel_service keel_service;

/**
 * A service hook: the contract of an observer (0, or a negative errno with keel_app_fail() giving
 * the message), with the service and its private state. Runs on the main thread.
 */
typedef int (*keel_service_handler_t)(keel_service *s, void *state);

/**
 * What a service is. Every hook is optional (NULL). For the selected command, each hook is
 * registered as the observer "<name>.<hook>" of its event's `during` phase; configure, start,
 * ready and refresh run in dependency order (a service after every service in its @after),
 * stop and finalize in the reverse order. A skip is logged as "Skipped <label> start" and a
 * failure as "Error starting <label>: <message>".
 */
typedef struct keel_service_vtable {
    const char *name;              /* "token", [a-z0-9_-]+: the points' prefix, the log field, what plugins.disabled names */
    const char *label;             /* "token provider", for the log; NULL: the name */
    const char *const *commands;   /* NULL-terminated commands the service runs for; NULL: { "serve", NULL } */
    const char *const *after;      /* NULL-terminated services it starts after and stops before (ordering only) */
    size_t state_size;             /* bytes of private state: allocated zeroed by core, owned by the app */
    const keel_config_key *config; /* the service's configuration keys; each row's offset is into the private state */
    size_t n_config;

    keel_service_handler_t setup;     /* at registration, for every command: sentinels, locks (before the defaults are written) */
    keel_service_handler_t configure; /* configure.during: check the loaded configuration, register metrics and checks */
    keel_service_handler_t start;     /* start.during: the only place to spawn tasks */
    keel_service_handler_t ready;     /* ready.during */
    keel_service_handler_t refresh;   /* refresh.during: the live keys were just reloaded */
    keel_service_handler_t stop;      /* stop.during: safe on a service whose start never ran or failed half-way */
    keel_service_handler_t finalize;  /* finalize.during: every service has stopped */
    void (*free)(keel_service *s, void *state); /* when the app is freed, whatever ran: releases what the state owns */
} keel_service_vtable;

/**
 * Registers the service @vtable describes (borrowed: a static const) on @app: allocates and zeroes
 * its state, calls @setup, registers its configuration keys (so `config` shows them for every
 * command). Its observers are registered when the command line is parsed, for the commands it
 * joins, in dependency order. Call it before keel_app_run() parses the command line — from a
 * plugin's register function (KEEL_SERVICE()) or on a hand-built app. @ret, when not NULL,
 * receives the service (owned by the app).
 *
 * Returns -EINVAL for a vtable without a valid name, with a bad configuration row, or with
 * configuration rows but no state (state_size 0), -EEXIST for a name already registered (or a key
 * already known), -ESTALE once the command line was parsed, the error of @setup (the service is
 * then not registered and @free is not called: @setup releases what it made before failing),
 * -ENOMEM. Names in @commands and @after that are not declared commands and
 * registered services fail the run at start-up, as does a cycle of @after (exit 70, naming them).
 */
KEEL_API int keel_app_add_service(keel_app *app, const keel_service_vtable *vtable, keel_service **ret);

/** The service registered as @name, or NULL. */
KEEL_API keel_service *keel_app_find_service(const keel_app *app, const char *name);

/** The service's app (borrowed). */
KEEL_API keel_app *keel_service_app(const keel_service *s);
/** The service's vtable. */
KEEL_API const keel_service_vtable *keel_service_get_vtable(const keel_service *s);
/** The service's name. */
KEEL_API const char *keel_service_name(const keel_service *s);
/** The service's private state (vtable->state_size bytes), or NULL for a state size of 0. */
KEEL_API void *keel_service_state(const keel_service *s);

/**
 * Compiles in a service: a plugin named @id whose register function adds @vtable. For a plugin
 * that registers more (a command, observers), call keel_app_add_service() from a KEEL_PLUGIN's
 * function instead.
 */
#define KEEL_SERVICE(id, vtable)                                                                                                   \
    static int keel__service_register_##id(keel_app *app)                                                                          \
    {                                                                                                                              \
        return keel_app_add_service(app, &(vtable), NULL);                                                                         \
    }                                                                                                                              \
    KEEL_PLUGIN(id, keel__service_register_##id)

#ifdef __cplusplus
}
#endif
