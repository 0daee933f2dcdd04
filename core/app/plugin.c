/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include <keel/strbuf.h>

#include "app-state-internal.h"
#include "macro-internal.h"
#include "observers-internal.h"

/* Keel's own plugins, registered by keel_app_run() itself and not through a section, so that a
 * program linked with libkeel.a, whose linker drops members nothing references, keeps them. */
static const keel_plugin standard[] = {
    { .name = "commands", .order = KEEL_PLUGIN_ORDER_CORE, .register_fn = keel__observers_commands_register },
    { .name = "config", .order = KEEL_PLUGIN_ORDER_CORE, .register_fn = keel__observers_config_register },
    { .name = "pidfile", .order = KEEL_PLUGIN_ORDER_CORE, .register_fn = keel__observers_pidfile_register },
    { .name = "readiness", .order = KEEL_PLUGIN_ORDER_CORE, .register_fn = keel__observers_readiness_register },
    { .name = "systemd", .order = KEEL_PLUGIN_ORDER_CORE, .register_fn = keel__observers_systemd_register },
};

static int compare_plugins(const void *a, const void *b)
{
    const keel_plugin *x = *(const keel_plugin *const *) a, *y = *(const keel_plugin *const *) b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->name, y->name);
}

int keel__app_register_plugins(keel_app *app, const keel_run_options *o)
{
    const keel_plugin *const *start = o ? o->plugins_start : NULL, *const *stop = o ? o->plugins_stop : NULL;
    size_t n = 0, max = start && stop > start ? (size_t) (stop - start) : 0;
    const keel_plugin **sorted = calloc(max + ELEMENTSOF(standard) + 1, sizeof *sorted);
    if (!sorted)
        return keel_log_error_errno(ENOMEM, "Failed to register plugins: %m");
    free(app->registry.plugins); /* kept for plugins.disabled's names: keel__app_plugin_known() */
    app->registry.plugins = sorted;
    for (size_t i = 0; !(o && o->bare) && i < ELEMENTSOF(standard); i++)
        sorted[n++] = &standard[i];
    for (size_t i = 0; i < max; i++)
        if (start[i]) /* padding a sanitizer may leave between entries */
            sorted[n++] = start[i];
    qsort(sorted, n, sizeof *sorted, compare_plugins);
    app->registry.n_plugins = n;

    for (size_t i = 0; i < n; i++) {
        app->registry.plugin_now = sorted[i];
        int r = sorted[i]->register_fn(app);
        app->registry.plugin_now = NULL;
        if (r < 0)
            return keel_log_error_errno(r, "Failed to register plugin %s: %m", sorted[i]->name);
        keel_log_debug("Registered plugin %s", sorted[i]->name);
    }
    return 0;
}

/* Whether @o belongs to the plugin or the service named @name. */
static bool owned_by(const keel_observer *o, const char *name)
{
    return (o->plugin && streq(o->plugin->name, name)) || (o->service && streq(keel_service_name(o->service), name));
}

static size_t remove_owned(observer_list *l, const char *plugin)
{
    size_t n = 0;
    keel__observer_list_hold(l); /* compaction waits for the walk's end */
    for (size_t i = 0; i < l->n; i++)
        if (!l->items[i]->removed && owned_by(l->items[i], plugin)) {
            keel_observer_remove(l->items[i]);
            n++;
        }
    keel__observer_list_release(l);
    return n;
}

static bool is_plugin(const keel_app *app, const char *name)
{
    for (size_t i = 0; i < app->registry.n_plugins; i++)
        if (streq(app->registry.plugins[i]->name, name))
            return true;
    return false;
}

bool keel__app_plugin_known(const keel_app *app, const char *name)
{
    return is_plugin(app, name) || keel_app_find_service(app, name) != NULL;
}

char *keel__app_plugin_names(const keel_app *app)
{
    char start[256];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(start);
    for (size_t i = 0; i < app->registry.n_plugins; i++)
        keel_strbuf_printf(&sb, "%s%s", i ? ", " : "", app->registry.plugins[i]->name);
    for (size_t i = 0; i < app->registry.n_services; i++) {
        const char *name = keel_service_name(app->registry.services[i]);
        if (!is_plugin(app, name))
            keel_strbuf_printf(&sb, "%s%s", sb.len ? ", " : "", name);
    }
    char *s = sb.truncated ? NULL : strdup(sb.buf);
    keel_strbuf_done(&sb);
    return s;
}

size_t keel__app_disable_plugin(keel_app *app, const char *name)
{
    size_t n = remove_owned(&app->registry.command_list, name);
    for (int e = 0; e < _KEEL_EVENT_MAX; e++)
        for (int p = 0; p < _KEEL_PHASE_MAX; p++)
            n += remove_owned(&app->registry.lists[e][p], name);
    return n;
}
