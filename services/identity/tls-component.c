/* SPDX-License-Identifier: MIT */
#include <string.h>

#include <keel/keel.h>

#include "tls-component.h"

/* A TLS server's ready check needs libcurl: it loads while the services before it start. */
static int configure(keel_app *app, const char *component, void *userdata)
{
    tls_component *t = userdata;
    if (t->config.mode != TLS_SERVER_OFF)
        keel_http_prepare(app);
    int r = identity_of(app, &t->identity);
    return r < 0 ? keel_app_fail(app, r, "Cannot set up the identity: %s", strerror(-r)) : 0;
}

static int open_context(keel_app *app, const char *component, void *userdata, void **ret_context)
{
    tls_component *t = userdata;
    tls_server *server = NULL;
    int r = tls_server_setup(app, t->identity, component, &t->config, &server);
    if (r < 0)
        return r;
    *ret_context = server;
    return 0;
}

/* SIGHUP: SERVICE.tls files are read again. */
static void refresh(keel_app *app, const char *component, void *userdata, void *context)
{
    tls_component *t = userdata;
    tls_server_refresh(context, component, &t->config);
}

static const char *client_required(void *userdata, void *context)
{
    tls_component *t = userdata;
    return tls_server_verifies_clients(context) ? t->client_required : NULL;
}

static void close_context(void *userdata, void *context)
{
    (void) tls_server_free(context);
}

keel_component_tls tls_component_hooks(tls_component *t)
{
    return (keel_component_tls){ .ops = &tls_server_ops,
                                 .userdata = t,
                                 .configure = configure,
                                 .open = open_context,
                                 .refresh = refresh,
                                 .client_required = client_required,
                                 .close = close_context };
}
