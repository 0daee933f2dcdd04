/* SPDX-License-Identifier: MIT */
/* Services: a vtable, a private state core allocates, and observers registered in dependency
 * order once the command is known (keel__services_resolve(), from keel_app_run()). */
#include <stdarg.h>
#include <stdio.h>

#include <keel/strbuf.h>

#include "app-state-internal.h"
#include "macro-internal.h"
#include "service-internal.h"

/* One hook: where it runs, and the words of its point and of its log lines. */
typedef struct hook {
    keel_event event;
    size_t offset;      /* of the handler in keel_service_vtable */
    const char *suffix; /* of the point: "<name>.<suffix>"; "Skipped <label> <suffix>" */
    const char *verb;   /* "Error <verb> <label>: …" */
} hook;

#define HOOK(e, field, verb)                                                                                                       \
    {                                                                                                                              \
        KEEL_EVENT_##e, offsetof(keel_service_vtable, field), #field, verb                                                         \
    }
static const hook hooks[] = {
    HOOK(CONFIGURE, configure, "configuring"), HOOK(START, start, "starting"), HOOK(READY, ready, "readying"),
    HOOK(REFRESH, refresh, "refreshing"),      HOOK(STOP, stop, "stopping"),   HOOK(FINALIZE, finalize, "finalizing"),
};
#undef HOOK

static keel_service_handler_t handler_of(const keel_service_vtable *v, const hook *h)
{
    return *(const keel_service_handler_t *) ((const char *) v + h->offset);
}

static int call_hook(keel_app *app, void *userdata)
{
    keel_service_call *call = userdata;
    keel_service *s = call->service;
    return handler_of(s->vtable, call->hook)(s, s->state);
}

static bool name_valid(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

keel_service *keel__service_free(keel_service *s)
{
    if (!s)
        return NULL;
    if (s->vtable->free)
        s->vtable->free(s, s->state);
    free(s->state);
    free(s->calls);
    free(s);
    return NULL;
}

static int service_new(keel_app *app, const keel_service_vtable *vtable, keel_service **ret)
{
    keel_service *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    *s = (keel_service){ .app = app, .vtable = vtable, .plugin = keel__app_plugin_now(app) };
    if (vtable->state_size > 0 && !(s->state = calloc(1, vtable->state_size))) {
        free(s);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

int keel_app_add_service(keel_app *app, const keel_service_vtable *vtable, keel_service **ret)
{
    keel_assert_return(app && vtable && name_valid(vtable->name), -EINVAL);
    keel_assert_return(vtable->n_config == 0 || (vtable->config && vtable->state_size > 0), -EINVAL);
    if (app->registry.services_resolved)
        return -ESTALE;
    if (keel_app_find_service(app, vtable->name))
        return -EEXIST;
    int r = GROW(app->registry.services, app->registry.allocated_services, app->registry.n_services + 1);
    if (r < 0)
        return r;

    keel_service *s = NULL;
    if ((r = service_new(app, vtable, &s)) < 0)
        return r;
    if (vtable->setup && (r = vtable->setup(s, s->state)) < 0) {
        free(s->state);
        free(s);
        return r;
    }
    if (vtable->n_config > 0 && (r = keel_app_add_config(app, vtable->config, vtable->n_config, s->state)) < 0) {
        keel__service_free(s);
        return r;
    }
    app->registry.services[app->registry.n_services++] = s;
    if (ret)
        *ret = s;
    return 0;
}

keel_service *keel_app_find_service(const keel_app *app, const char *name)
{
    for (size_t i = 0; app && name && i < app->registry.n_services; i++)
        if (streq(app->registry.services[i]->vtable->name, name))
            return app->registry.services[i];
    return NULL;
}

/* ---- resolution: validation, order, observers ------------------------------------------------- */

static int fail(char **ret_error, int r, const char *fmt, ...) KEEL_PRINTF(3, 4);
static int fail(char **ret_error, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(ret_error, fmt, ap) < 0)
        *ret_error = NULL;
    va_end(ap);
    return r;
}

static size_t index_of(const keel_app *app, const char *name)
{
    for (size_t i = 0; i < app->registry.n_services; i++)
        if (streq(app->registry.services[i]->vtable->name, name))
            return i;
    return SIZE_MAX;
}

static int check_names(const keel_app *app, const keel_service *s, char **ret_error)
{
    const keel_service_vtable *v = s->vtable;
    for (const char *const *c = v->commands; c && *c; c++)
        if (!keel__app_command_declared(app, *c))
            return fail(ret_error, -ENOENT, "Service %s runs for the command '%s', which is not declared", v->name, *c);
    for (const char *const *a = v->after; a && *a; a++) {
        if (streq(*a, v->name))
            return fail(ret_error, -ELOOP, "Service %s starts after itself", v->name);
        if (index_of(app, *a) == SIZE_MAX)
            return fail(ret_error, -ENOENT, "Service %s starts after '%s', which is not a registered service", v->name, *a);
    }
    return 0;
}

/* Whether every service @s starts after is placed already. */
static bool dependencies_placed(const keel_app *app, const keel_service *s, const bool *placed)
{
    for (const char *const *a = s->vtable->after; a && *a; a++)
        if (!placed[index_of(app, *a)])
            return false;
    return true;
}

static int cycle_error(const keel_app *app, const bool *placed, char **ret_error)
{
    char names[1024];
    keel_strbuf sb = KEEL_STRBUF_INIT(names);
    for (size_t i = 0; i < app->registry.n_services; i++)
        if (!placed[i])
            keel_strbuf_printf(&sb, "%s%s", sb.len ? ", " : "", app->registry.services[i]->vtable->name);
    return fail(ret_error, -ELOOP, "The services %s start after one another in a cycle", names);
}

/* Kahn's algorithm, taking the earliest registered of the services that can go next: the order is
 * registration order wherever `after` leaves it free. */
static int order(const keel_app *app, keel_service **ret_order, char **ret_error)
{
    _cleanup_free_ bool *placed = calloc(app->registry.n_services + 1, sizeof *placed);
    if (!placed)
        return -ENOMEM;
    for (size_t n = 0; n < app->registry.n_services; n++) {
        size_t next = SIZE_MAX;
        for (size_t i = 0; i < app->registry.n_services && next == SIZE_MAX; i++)
            if (!placed[i] && dependencies_placed(app, app->registry.services[i], placed))
                next = i;
        if (next == SIZE_MAX)
            return cycle_error(app, placed, ret_error);
        placed[next] = true;
        ret_order[n] = app->registry.services[next];
    }
    return 0;
}

static bool joins(const keel_app *app, const keel_service *s, const char *command)
{
    const keel_command_decl *c = keel__app_command(app, command);
    if (c && keel_strv_contains((const char *const *) c->uses, s->vtable->name))
        return true;
    if (!s->vtable->commands)
        return streq(command, "serve");
    return keel_strv_contains(s->vtable->commands, command);
}

/* Every service a command says it uses is registered. */
static int check_uses(const keel_app *app, char **ret_error)
{
    for (size_t i = 0; i < app->registry.n_commands; i++)
        for (char **u = app->registry.commands[i].uses; u && *u; u++)
            if (index_of(app, *u) == SIZE_MAX)
                return fail(ret_error, -ENOENT, "The command %s uses the service '%s', which is not registered",
                            app->registry.commands[i].name, *u);
    return 0;
}

/* @checking: only the hooks a serve whose start failed would run, for a KEEL_COMMAND_CHECKS_SERVE
 * command: configure, then stop and finalize (safe on a service that never started). */
static int register_hooks(keel_app *app, keel_service *s, bool checking)
{
    const char *label = s->vtable->label ? s->vtable->label : s->vtable->name;
    if (!(s->calls = calloc(ELEMENTSOF(hooks), sizeof *s->calls)))
        return -ENOMEM;
    for (size_t i = 0; i < ELEMENTSOF(hooks); i++) {
        const hook *h = &hooks[i];
        char point[256], skip[256], failing[256];
        bool runs = !checking || h->event == KEEL_EVENT_CONFIGURE || h->event == KEEL_EVENT_STOP || h->event == KEEL_EVENT_FINALIZE;
        if (!handler_of(s->vtable, h) || !runs)
            continue;
        s->calls[i] = (keel_service_call){ .service = s, .hook = h };
        (void) snprintf(point, sizeof point, "%s.%s", s->vtable->name, h->suffix);
        (void) snprintf(skip, sizeof skip, "%s %s", label, h->suffix);
        (void) snprintf(failing, sizeof failing, "%s %s", h->verb, label);
        int r = keel__app_observe_full(app, h->event, KEEL_PHASE_DURING, point, skip, failing, call_hook, &s->calls[i], NULL);
        if (r < 0)
            return r;
    }
    return 0;
}

int keel__services_resolve(keel_app *app, const char *command, char **ret_error)
{
    assert(!app->registry.services_resolved);
    app->registry.services_resolved = true;
    for (size_t i = 0; i < app->registry.n_services; i++) {
        int r = check_names(app, app->registry.services[i], ret_error);
        if (r < 0)
            return r;
    }
    int r = check_uses(app, ret_error);
    if (r < 0)
        return r;
    _cleanup_free_ keel_service **sorted = calloc(app->registry.n_services + 1, sizeof *sorted);
    if (!sorted)
        return -ENOMEM;
    r = order(app, sorted, ret_error);
    const keel_command_decl *decl = keel__app_command(app, command);
    bool checks_serve = decl && (decl->flags & KEEL_COMMAND_CHECKS_SERVE);
    for (size_t i = 0; r >= 0 && i < app->registry.n_services; i++) {
        bool joined = joins(app, sorted[i], command), checking = !joined && checks_serve && joins(app, sorted[i], "serve");
        if (!joined && !checking)
            continue;
        app->registry.plugin_now = sorted[i]->plugin; /* the observers belong to the plugin that added the service */
        app->registry.service_now = sorted[i];
        r = register_hooks(app, sorted[i], checking);
        app->registry.plugin_now = NULL;
        app->registry.service_now = NULL;
    }
    return r;
}

keel_app *keel_service_app(const keel_service *s)
{
    return s ? s->app : NULL;
}

const keel_service_vtable *keel_service_get_vtable(const keel_service *s)
{
    return s ? s->vtable : NULL;
}

const char *keel_service_name(const keel_service *s)
{
    return s ? s->vtable->name : NULL;
}

void *keel_service_state(const keel_service *s)
{
    return s ? s->state : NULL;
}
