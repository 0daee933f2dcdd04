/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>

/** A service: sugar over observers. Body in core/service.c. */
typedef struct keel_service keel_service;

/** A service hook: the same contract as an observer, with the service's private state. */
typedef int (*keel_service_handler_t)(keel_service *s, void *userdata);

/**
 * What a service does in each event. Every hook is optional (NULL). Registering a service
 * registers observers named "<name>.configure" (configure.during), "<name>.start"
 * (start.during), "<name>.stop" (stop.during, so services stop in reverse order of start) and
 * "<name>.refresh" (refresh.during). @stop must be safe on a service whose start never ran or
 * failed half-way.
 */
typedef struct keel_service_vtable {
    const char *name;  /* "token": the points' prefix and the log field */
    const char *label; /* "token provider": for logs such as "Skipped token provider start" */
    keel_service_handler_t configure;
    keel_service_handler_t start;
    keel_service_handler_t stop;
    keel_service_handler_t refresh;
} keel_service_vtable;

/**
 * Registers @vtable's observers on @app with @userdata as the private state. The app owns the
 * returned service, frees it with itself. @ret may be NULL. Returns -EINVAL for a vtable
 * without a name, the errors of keel_app_observe(), -ENOMEM.
 */
KEEL_API int keel_app_add_service(keel_app *app, const keel_service_vtable *vtable, void *userdata, keel_service **ret);

/** The service's app (borrowed). */
KEEL_API keel_app *keel_service_app(const keel_service *s);
/** The service's vtable. */
KEEL_API const keel_service_vtable *keel_service_vtable_get(const keel_service *s);
/** The private state given at registration. */
KEEL_API void *keel_service_userdata(const keel_service *s);
