/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/service.h>

typedef struct hook hook;

/* What one of a service's observers calls: the service and which of its hooks. */
typedef struct keel_service_call {
    struct keel_service *service; /* borrowed */
    const hook *hook;
} keel_service_call;

struct keel_service {
    keel_app *app; /* borrowed: the app owns the service */
    const keel_service_vtable *vtable;
    void *state;               /* owned: vtable->state_size bytes */
    const keel_plugin *plugin; /* borrowed: the plugin that added it, or NULL */
    keel_service_call *calls;  /* owned: the userdata of its observers, one per hook */
};

/* Frees a service (its free hook first); only the app calls it, with itself. */
keel_service *keel__service_free(keel_service *s);

/*
 * Once the command line is parsed: checks every service's commands and dependencies (each named
 * command declared, each service in `after` registered, no cycle) and registers the hooks of the
 * services that join @command as observers, in dependency order. Later keel_app_add_service()
 * calls return -ESTALE. On failure *@ret_error says what was wrong (malloc'd; NULL when out of
 * memory): -ENOENT, -ELOOP, -ENOMEM.
 */
int keel__services_resolve(keel_app *app, const char *command, char **ret_error);
