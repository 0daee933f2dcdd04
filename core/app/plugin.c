/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "app-internal.h"
#include "macro.h"

/* The linker defines these around the keel_plugins section; weak so a binary without plugins links. */
extern const keel_plugin *const __start_keel_plugins[] __attribute__((weak));
extern const keel_plugin *const __stop_keel_plugins[] __attribute__((weak));

static int compare_plugins(const void *a, const void *b)
{
    const keel_plugin *x = *(const keel_plugin *const *) a, *y = *(const keel_plugin *const *) b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->name, y->name);
}

int keel__app_register_plugins(keel_app *app)
{
    size_t n = 0, max = __start_keel_plugins ? (size_t) (__stop_keel_plugins - __start_keel_plugins) : 0;
    _cleanup_free_ const keel_plugin **sorted = calloc(max + 1, sizeof *sorted);
    if (!sorted)
        return keel_log_error_errno(ENOMEM, "Failed to register plugins: %m");
    for (size_t i = 0; i < max; i++)
        if (__start_keel_plugins[i]) /* padding a sanitizer may leave between entries */
            sorted[n++] = __start_keel_plugins[i];
    qsort(sorted, n, sizeof *sorted, compare_plugins);

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
    l->depth++; /* defer compaction until the walk is done */
    for (size_t i = 0; i < l->n; i++)
        if (!l->items[i]->removed && owned_by(l->items[i], plugin)) {
            keel_observer_remove(l->items[i]);
            n++;
        }
    l->depth--;
    keel__observer_list_release(l);
    return n;
}

size_t keel__app_disable_plugin(keel_app *app, const char *name)
{
    size_t n = remove_owned(&app->registry.command_list, name);
    for (int e = 0; e < _KEEL_EVENT_MAX; e++)
        for (int p = 0; p < _KEEL_PHASE_MAX; p++)
            n += remove_owned(&app->registry.lists[e][p], name);
    return n;
}
