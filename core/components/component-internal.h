/* SPDX-License-Identifier: MIT */
#pragma once

/* What the standard components share: a service whose vtable is made per app (its `after` and
 * its hooks follow the program's options), and the program's TLS around one HTTP server. */

#include <keel/components.h>
#include <keel/service.h>

typedef struct keel__component {
    keel_service_vtable vtable; /* the service's: lives as long as the app (an attachment of it) */
    char **after;               /* owned: vtable.after */
    keel_component_tls tls;     /* the program's, or zeroed: plain HTTP */
    void *tls_context;          /* owned through tls.close(): the server's while it runs */
    keel_http_server *server;   /* owned */
} keel__component;

/**
 * Adds the service @base describes, with @options' order and TLS, on @app. @base's hooks receive
 * the component as keel__component_of(s). Without TLS hooks to call, @base's configure and
 * refresh run only when @base has them. Returns as keel_app_add_service(), or -EEXIST.
 */
int keel__component_add(keel_app *app, const keel_service_vtable *base, const keel_component_options *options);
/** The component behind a service keel__component_add() made. */
keel__component *keel__component_of(const keel_service *s);

/** The TLS hooks of configure and refresh (nothing without TLS). */
int keel__component_configure(keel__component *c, keel_app *app);
void keel__component_refresh(keel__component *c, keel_app *app);
/** Opens the TLS context, then creates and starts the server of @options (whose tls fields it sets). */
int keel__component_start(keel__component *c, keel_app *app, keel_http_options *options);
/** Stops and frees the server, then closes the TLS context. Safe on a component never started. */
int keel__component_stop(keel__component *c, keel_app *app);
/**
 * From a handler: when the TLS asks for a verified client identity and @req has none, answers
 * 401 and returns 1 (or the answer's negative errno); 0 when the handler answers.
 */
int keel__component_refuse_client(keel__component *c, keel_http_request *req);
