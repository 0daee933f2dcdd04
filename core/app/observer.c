/* SPDX-License-Identifier: MIT */
/* Observers and their lists: registration (with the rule of what can still run), removal during
 * dispatch, and the walk's deferred compaction. The machine runs them. */
#include <stdlib.h>

#include "app-state-internal.h"
#include "macro-internal.h"

/* Whether an observer registered now for @event and @phase can still run in this app's life. */
static bool can_still_run(const keel_app *app, keel_event event, keel_phase phase)
{
    keel_event event_now = keel__machine_event_now(app);
    if (event_now < 0)
        return true;
    if (event == KEEL_EVENT_REFRESH)
        return event_now < KEEL_EVENT_STOP;
    keel_event now = event_now == KEEL_EVENT_REFRESH ? KEEL_EVENT_READY : event_now;
    keel_phase pnow = event_now == KEEL_EVENT_REFRESH ? KEEL_PHASE_AFTER : keel__machine_phase_now(app);
    if (now == KEEL_EVENT_COMMAND)
        return event > KEEL_EVENT_COMMAND;
    return event * _KEEL_PHASE_MAX + phase > now * _KEEL_PHASE_MAX + (int) pnow;
}

static int list_append(observer_list *l, keel_observer *o)
{
    int r = GROW(l->items, l->allocated, l->n + 1);
    if (r < 0)
        return r;
    l->items[l->n++] = o;
    o->list = l;
    return 0;
}

static keel_observer *observer_free(keel_observer *o)
{
    if (!o)
        return NULL;
    free(o->name);
    free(o->label);
    free(o->failing);
    free(o->command);
    free(o->registered_by);
    free(o);
    return NULL;
}

static keel_observer *observer_new(keel_app *app, const char *name, const char *label, const char *failing,
                                   keel_observer_handler_t handler, void *userdata)
{
    keel_observer *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    *o = (keel_observer){ .app = app,
                          .handler = handler,
                          .userdata = userdata,
                          .plugin = keel__app_plugin_now(app),
                          .service = app->registry.service_now };
    o->name = strdup(name);
    const keel_observer *running = keel__machine_observer_now(app);
    if (running && !(o->registered_by = strdup(running->name)))
        return observer_free(o);
    o->label = label ? strdup(label) : NULL;
    o->failing = failing ? strdup(failing) : NULL;
    if (!o->name || (label && !o->label) || (failing && !o->failing))
        return observer_free(o);
    return o;
}

int keel__app_observe_full(keel_app *app, keel_event event, keel_phase phase, const char *name, const char *label,
                           const char *failing, keel_observer_handler_t handler, void *userdata, keel_observer **ret)
{
    keel_assert_return(app && name && *name && handler, -EINVAL);
    keel_assert_return(event > KEEL_EVENT_COMMAND && event < _KEEL_EVENT_MAX, -EINVAL);
    keel_assert_return(phase >= 0 && phase < _KEEL_PHASE_MAX, -EINVAL);
    if (!can_still_run(app, event, phase))
        return -ESTALE;

    keel_observer *o = observer_new(app, name, label, failing, handler, userdata);
    if (!o)
        return -ENOMEM;
    o->event = event;
    o->phase = phase;
    if (list_append(&app->registry.lists[event][phase], o) < 0) {
        observer_free(o);
        return -ENOMEM;
    }
    if (ret)
        *ret = o;
    return 0;
}

int keel_app_observe(keel_app *app, keel_event event, keel_phase phase, const char *name, keel_observer_handler_t handler,
                     void *userdata, keel_observer **ret_observer)
{
    return keel__app_observe_full(app, event, phase, name, NULL, NULL, handler, userdata, ret_observer);
}

int keel_app_observe_command(keel_app *app, const char *command, const char *name, keel_observer_handler_t handler, void *userdata)
{
    keel_assert_return(app && command && name && *name && handler, -EINVAL);
    if (!keel__app_command_declared(app, command))
        return -ENOENT;
    if (keel__machine_event_now(app) >= 0)
        return -ESTALE;

    keel_observer *o = observer_new(app, name, NULL, NULL, handler, userdata);
    if (!o)
        return -ENOMEM;
    o->event = KEEL_EVENT_COMMAND;
    o->phase = _KEEL_PHASE_INVALID;
    if (!(o->command = strdup(command)) || list_append(&app->registry.command_list, o) < 0) {
        observer_free(o);
        return -ENOMEM;
    }
    return 0;
}

static void observer_list_compact(observer_list *l)
{
    size_t j = 0;
    for (size_t i = 0; i < l->n; i++) {
        keel_observer *o = l->items[i];
        if (!o->removed) {
            l->items[j++] = o;
            continue;
        }
        observer_free(o);
    }
    l->n = j;
    l->dirty = false;
}

void keel_observer_remove(keel_observer *o)
{
    if (!o || o->removed)
        return;
    observer_list *l = o->list;
    o->removed = true;
    l->dirty = true;
    if (l->depth == 0)
        observer_list_compact(l);
}

void keel__observer_list_hold(observer_list *l)
{
    l->depth++;
}

void keel__observer_list_release(observer_list *l)
{
    l->depth--;
    if (l->depth == 0 && l->dirty)
        observer_list_compact(l);
}

const keel_plugin *keel__app_plugin_now(const keel_app *app)
{
    const keel_observer *running = keel__machine_observer_now(app);
    return app->registry.plugin_now ? app->registry.plugin_now : running ? running->plugin : NULL;
}

observer_list *keel__app_observers(keel_app *app, keel_event event, keel_phase phase)
{
    return &app->registry.lists[event][phase];
}

observer_list *keel__app_command_observers(keel_app *app)
{
    return &app->registry.command_list;
}

void keel__observer_list_done(observer_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        observer_free(l->items[i]);
    free(l->items);
    *l = (observer_list){ 0 };
}

void keel__observer_set_command_flags(keel_observer *o, unsigned flags)
{
    o->command_flags = flags;
}

bool keel__observer_applies(const keel_observer *o, const char *command)
{
    if (o->removed || (command && !streq(o->command, command)))
        return false;
    return (keel_app_command_flags(o->app) & o->command_flags) == o->command_flags;
}
