/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "app-internal.h"
#include "macro.h"
#include "service-internal.h"

static int service_configure(keel_app *app, void *userdata)
{
    keel_service *s = userdata;
    return s->vtable->configure(s, s->userdata);
}

static int service_start(keel_app *app, void *userdata)
{
    keel_service *s = userdata;
    return s->vtable->start(s, s->userdata);
}

static int service_stop(keel_app *app, void *userdata)
{
    keel_service *s = userdata;
    return s->vtable->stop(s, s->userdata);
}

static int service_refresh(keel_app *app, void *userdata)
{
    keel_service *s = userdata;
    return s->vtable->refresh(s, s->userdata);
}

typedef struct hook {
    keel_event event;
    const char *suffix; /* of the point: "<name>.<suffix>" */
    const char *verb;   /* "Error <verb> <label>" */
    keel_observer_handler_t handler;
} hook;

static const hook hooks[] = {
    { KEEL_EVENT_CONFIGURE, "configure", "configuring", service_configure },
    { KEEL_EVENT_START, "start", "starting", service_start },
    { KEEL_EVENT_STOP, "stop", "stopping", service_stop },
    { KEEL_EVENT_REFRESH, "refresh", "refreshing", service_refresh },
};

static keel_service_handler_t hook_of(const keel_service_vtable *v, keel_event e)
{
    switch (e) {
    case KEEL_EVENT_CONFIGURE:
        return v->configure;
    case KEEL_EVENT_START:
        return v->start;
    case KEEL_EVENT_STOP:
        return v->stop;
    case KEEL_EVENT_REFRESH:
        return v->refresh;
    default:
        return NULL;
    }
}

static int register_hook(keel_service *s, const hook *h)
{
    const char *label = s->vtable->label ? s->vtable->label : s->vtable->name;
    char point[256], skip[256], failing[256];

    (void) snprintf(point, sizeof point, "%s.%s", s->vtable->name, h->suffix);
    (void) snprintf(skip, sizeof skip, "%s %s", label, h->suffix);
    (void) snprintf(failing, sizeof failing, "%s %s", h->verb, label);
    return keel__app_observe_full(s->app, h->event, KEEL_PHASE_DURING, point, skip, failing, h->handler, s, NULL);
}

static int services_append(keel_app *app, keel_service *s)
{
    keel_service **l = realloc(app->services, (app->n_services + 1) * sizeof *l);
    if (!l)
        return -ENOMEM;
    app->services = l;
    l[app->n_services++] = s;
    return 0;
}

int keel_app_add_service(keel_app *app, const keel_service_vtable *vtable, void *userdata, keel_service **ret)
{
    keel_assert_return(app && vtable && vtable->name && *vtable->name, -EINVAL);

    keel_service *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    *s = (keel_service){ .app = app, .vtable = vtable, .userdata = userdata };
    int r = services_append(app, s);
    if (r < 0) {
        free(s);
        return r;
    }
    for (size_t i = 0; i < ELEMENTSOF(hooks); i++) {
        if (!hook_of(vtable, hooks[i].event))
            continue;
        r = register_hook(s, &hooks[i]);
        if (r < 0)
            return r; /* the app frees the service; observers already added stay harmless */
    }
    if (ret)
        *ret = s;
    return 0;
}

keel_service *keel__service_free(keel_service *s)
{
    free(s);
    return NULL;
}

keel_app *keel_service_app(const keel_service *s)
{
    return s ? s->app : NULL;
}

const keel_service_vtable *keel_service_vtable_get(const keel_service *s)
{
    return s ? s->vtable : NULL;
}

void *keel_service_userdata(const keel_service *s)
{
    return s ? s->userdata : NULL;
}
