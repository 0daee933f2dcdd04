/* SPDX-License-Identifier: MIT */
/* The standard components' common part: a service vtable made per app from the program's options
 * (an attachment of the app, so that it outlives the service), and the program's TLS around the
 * component's one HTTP server. Written against include/keel/ (and core's argument check), as a
 * program's own service is. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <keel/keel.h>

#include "component-internal.h"
#include "macro-internal.h"

static void component_free(void *object)
{
    keel__component *c = object;
    if (!c)
        return;
    keel_strv_free(c->after);
    free(c);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(keel__component *, component_free);

keel__component *keel__component_of(const keel_service *s)
{
    const keel_service_vtable *v = keel_service_get_vtable(s);
    return (keel__component *) ((char *) v - offsetof(keel__component, vtable));
}

static int tls_configure_hook(keel_service *s, void *state)
{
    return keel__component_configure(keel__component_of(s), keel_service_app(s));
}

static int tls_refresh_hook(keel_service *s, void *state)
{
    keel__component_refresh(keel__component_of(s), keel_service_app(s));
    return 0;
}

int keel__component_add(keel_app *app, const keel_service_vtable *base, const keel_component_options *options)
{
    keel_assert_return(app && base, -EINVAL);
    keel_assert_return(!options || !options->tls || (options->tls->ops && options->tls->open), -EINVAL);
    char attachment[64];
    (void) snprintf(attachment, sizeof attachment, "keel.component.%s", base->name);
    if (keel_app_attached(app, attachment) || keel_app_find_service(app, base->name))
        return -EEXIST;

    _cleanup_(component_freep) keel__component *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (keel__component){ .vtable = *base };
    if (options && options->after && !(c->after = keel_strv_copy((char *const *) options->after)))
        return -ENOMEM;
    if (options && options->tls)
        c->tls = *options->tls;
    c->vtable.after = (const char *const *) c->after;
    if (!c->vtable.configure && c->tls.configure)
        c->vtable.configure = tls_configure_hook;
    if (!c->vtable.refresh && c->tls.refresh)
        c->vtable.refresh = tls_refresh_hook;
    /* Attached first: from here on the app frees it, after its services, whatever follows. */
    int r = keel_app_attach(app, attachment, c, component_free);
    if (r < 0)
        return r;
    return keel_app_add_service(app, &TAKE_PTR(c)->vtable, NULL);
}

int keel__component_configure(keel__component *c, keel_app *app)
{
    return c->tls.configure ? c->tls.configure(app, c->vtable.name, c->tls.userdata) : 0;
}

void keel__component_refresh(keel__component *c, keel_app *app)
{
    if (c->tls.refresh && c->tls_context)
        c->tls.refresh(app, c->vtable.name, c->tls.userdata, c->tls_context);
}

int keel__component_start(keel__component *c, keel_app *app, keel_http_options *options)
{
    if (c->tls.open) {
        int r = c->tls.open(app, c->vtable.name, c->tls.userdata, &c->tls_context);
        if (r < 0)
            return r;
    }
    if (c->tls_context) {
        options->tls = c->tls.ops;
        options->tls_userdata = c->tls_context;
    }
    return keel_http_server_start_new(app, options, &c->server);
}

int keel__component_stop(keel__component *c, keel_app *app)
{
    int r = keel_http_server_stop_and_free(app, &c->server);
    /* After the server: its sessions hold the context. */
    if (c->tls_context && c->tls.close)
        c->tls.close(c->tls.userdata, c->tls_context);
    c->tls_context = NULL;
    return r;
}

int keel__component_refuse_client(keel__component *c, keel_http_request *req)
{
    const char *reason = c->tls_context && c->tls.client_required ? c->tls.client_required(c->tls.userdata, c->tls_context) : NULL;
    if (!reason || keel_http_request_peer_identity(req))
        return 0;
    int r = keel_http_respond_static(req, 401, "text/plain; charset=utf-8", reason);
    return r < 0 ? r : 1;
}
