/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

#include "app-internal.h"
#include "macro.h"
#include "service-internal.h"

static const char *const cause_names[_KEEL_CAUSE_MAX] = {
    [KEEL_CAUSE_NONE] = "none",
    [KEEL_CAUSE_SIGNAL] = "signal",
    [KEEL_CAUSE_COMMAND_DONE] = "command done",
    [KEEL_CAUSE_COMMAND_FAILED] = "command failed",
    [KEEL_CAUSE_START_FAILED] = "start failed",
    [KEEL_CAUSE_INIT_FAILED] = "init failed",
    [KEEL_CAUSE_CONFIG_INVALID] = "bad configuration",
    [KEEL_CAUSE_USAGE] = "bad usage",
};

static const int cause_exit_status[_KEEL_CAUSE_MAX] = {
    [KEEL_CAUSE_NONE] = KEEL_EXIT_OK,
    [KEEL_CAUSE_SIGNAL] = KEEL_EXIT_OK,
    [KEEL_CAUSE_COMMAND_DONE] = KEEL_EXIT_OK,
    [KEEL_CAUSE_COMMAND_FAILED] = KEEL_EXIT_FAILURE,
    [KEEL_CAUSE_START_FAILED] = KEEL_EXIT_FAILURE,
    [KEEL_CAUSE_INIT_FAILED] = KEEL_EXIT_FAILURE,
    [KEEL_CAUSE_CONFIG_INVALID] = KEEL_EXIT_CONFIG,
    [KEEL_CAUSE_USAGE] = KEEL_EXIT_USAGE,
};

const char *keel_cause_to_string(keel_cause c)
{
    return c >= 0 && c < _KEEL_CAUSE_MAX ? cause_names[c] : NULL;
}

int keel_cause_exit_status(keel_cause c)
{
    return c >= 0 && c < _KEEL_CAUSE_MAX ? cause_exit_status[c] : -EINVAL;
}

static int add_standard_commands(keel_app *app)
{
    static const struct {
        const char *name, *summary;
        unsigned flags;
    } std[] = {
        { "serve", "run the services until a signal (the default)", KEEL_COMMAND_SINGLE | KEEL_COMMAND_STATE_WRITER },
        { "config", "print the effective configuration and where each value came from", 0 },
        { "version", "print the version", 0 },
    };
    for (size_t i = 0; i < ELEMENTSOF(std); i++) {
        int r = keel_app_add_command(app, std[i].name, std[i].summary, std[i].flags);
        if (r < 0)
            return r;
    }
    return 0;
}

keel_app *keel_app_new(const char *name)
{
    keel_app *app = calloc(1, sizeof *app);
    if (!app)
        return NULL;
    *app = (keel_app){
        .state = _KEEL_STATE_INVALID,
        .event_now = _KEEL_EVENT_INVALID,
        .phase_now = _KEEL_PHASE_INVALID,
        .stop_deadline = KEEL_USEC_INFINITY,
        .readiness = KEEL_READINESS_STARTING,
        .health_lock = PTHREAD_MUTEX_INITIALIZER,
        .attach_lock = PTHREAD_MUTEX_INITIALIZER,
        .daemon_fd = -EBADF,
        .state_lock = -EBADF,
    };
    if (!(app->name = strdup(name ? name : "keel")) || sd_event_new(&app->event) < 0 || !(app->config = keel__config_new()) ||
        keel__config_add_table(app->config, keel__core_settings_table, keel__core_settings_table_size, &app->settings) < 0 ||
        add_standard_commands(app) < 0 || keel__app_metrics_setup(app) < 0)
        return keel_app_free(app);
    return app;
}

void keel__observer_list_done(observer_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        keel_observer *o = l->items[i];
        free(o->name);
        free(o->label);
        free(o->failing);
        free(o->command);
        free(o);
    }
    free(l->items);
    *l = (observer_list){ 0 };
}

keel_app *keel_app_free(keel_app *app)
{
    if (!app)
        return NULL;
    for (int e = 0; e < _KEEL_EVENT_MAX; e++)
        for (int p = 0; p < _KEEL_PHASE_MAX; p++)
            keel__observer_list_done(&app->lists[e][p]);
    keel__observer_list_done(&app->command_list);
    for (size_t i = 0; i < app->n_commands; i++) {
        free(app->commands[i].name);
        free(app->commands[i].summary);
    }
    free(app->commands);
    /* The configuration first: its strings and lists live in the services' states. */
    app->config = keel__config_free(app->config);
    for (size_t i = app->n_services; i > 0; i--)
        keel__service_free(app->services[i - 1]);
    free(app->services);
    keel__app_attachments_done(app);
    for (size_t i = 0; i < ELEMENTSOF(app->signals); i++)
        app->signals[i] = sd_event_source_disable_unref(app->signals[i]);
    app->event = sd_event_unref(app->event);
    app->config = keel__config_free(app->config);
    free(app->name);
    free(app->command);
    keel_strv_free(app->args);
    free(app->config_file);
    free(app->profile);
    free(app->trace_path);
    app->daemon_fd = safe_close(app->daemon_fd);
    /* Only now: finalize (the shutdown record) was the last to write the state directory. */
    app->state_lock = safe_close(app->state_lock);
    keel_strv_free(app->sets);
    free(app->fail_message);
    free(app->cause_message);
    keel__app_health_done(app);
    keel__app_metrics_done(app);
    keel_strv_free(app->status_details);
    free(app);
    return NULL;
}

int keel_app_add_command(keel_app *app, const char *name, const char *summary, unsigned flags)
{
    keel_assert_return(app, -EINVAL);
    keel_assert_return(name && *name && name[0] != '-', -EINVAL);
    keel_assert_return((flags & ~(unsigned) (KEEL_COMMAND_SINGLE | KEEL_COMMAND_STATE_WRITER)) == 0, -EINVAL);
    if (keel__app_command_declared(app, name))
        return -EEXIST;
    int r = GROW(app->commands, app->allocated_commands, app->n_commands + 1);
    if (r < 0)
        return r;
    keel_command_decl c = { .name = strdup(name), .summary = strdup(summary ? summary : ""), .flags = flags };
    if (!c.name || !c.summary) {
        free(c.name);
        free(c.summary);
        return -ENOMEM;
    }
    app->commands[app->n_commands++] = c;
    return 0;
}

unsigned keel_app_command_flags(const keel_app *app)
{
    for (size_t i = 0; app && app->command && i < app->n_commands; i++)
        if (streq(app->commands[i].name, app->command))
            return app->commands[i].flags;
    return 0;
}

/* Whether an observer registered now for @event and @phase can still run in this app's life. */
static bool can_still_run(const keel_app *app, keel_event event, keel_phase phase)
{
    if (app->event_now < 0)
        return true;
    if (event == KEEL_EVENT_REFRESH)
        return app->event_now < KEEL_EVENT_STOP;
    keel_event now = app->event_now == KEEL_EVENT_REFRESH ? KEEL_EVENT_READY : app->event_now;
    keel_phase pnow = app->event_now == KEEL_EVENT_REFRESH ? KEEL_PHASE_AFTER : app->phase_now;
    if (now == KEEL_EVENT_COMMAND)
        return event > KEEL_EVENT_COMMAND;
    return event * _KEEL_PHASE_MAX + phase > now * _KEEL_PHASE_MAX + (int) pnow;
}

static int list_append(observer_list *l, keel_observer *o)
{
    if (l->n == l->allocated) {
        size_t na = l->allocated ? l->allocated * 2 : 8;
        keel_observer **items = realloc(l->items, na * sizeof *items);
        if (!items)
            return -ENOMEM;
        l->items = items;
        l->allocated = na;
    }
    l->items[l->n++] = o;
    o->list = l;
    return 0;
}

static keel_observer *observer_new(keel_app *app, const char *name, const char *label, const char *failing,
                                   keel_observer_handler_t handler, void *userdata)
{
    keel_observer *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    *o = (keel_observer){
        .app = app, .handler = handler, .userdata = userdata, .plugin = app->plugin_now, .service = app->service_now
    };
    o->name = strdup(name);
    o->label = label ? strdup(label) : NULL;
    o->failing = failing ? strdup(failing) : NULL;
    if (!o->name || (label && !o->label) || (failing && !o->failing)) {
        free(o->name);
        free(o->label);
        free(o->failing);
        free(o);
        return NULL;
    }
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
    if (list_append(&app->lists[event][phase], o) < 0) {
        o->list = NULL;
        free(o->name);
        free(o->label);
        free(o->failing);
        free(o);
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

bool keel__app_command_declared(const keel_app *app, const char *name)
{
    for (size_t i = 0; i < app->n_commands; i++)
        if (streq(app->commands[i].name, name))
            return true;
    return false;
}

int keel_app_observe_command(keel_app *app, const char *command, const char *name, keel_observer_handler_t handler, void *userdata)
{
    keel_assert_return(app && command && name && *name && handler, -EINVAL);
    if (!keel__app_command_declared(app, command))
        return -ENOENT;
    if (app->event_now >= 0)
        return -ESTALE;

    keel_observer *o = observer_new(app, name, NULL, NULL, handler, userdata);
    if (!o)
        return -ENOMEM;
    o->event = KEEL_EVENT_COMMAND;
    o->phase = _KEEL_PHASE_INVALID;
    if (!(o->command = strdup(command)) || list_append(&app->command_list, o) < 0) {
        free(o->command);
        free(o->name);
        free(o);
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
        free(o->name);
        free(o->label);
        free(o->failing);
        free(o->command);
        free(o);
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

void keel__observer_list_release(observer_list *l)
{
    if (l->depth == 0 && l->dirty)
        observer_list_compact(l);
}

int keel_app_fail(keel_app *app, int error, const char *fmt, ...)
{
    int r = error == 0 ? -EIO : -abs(error);
    if (!app || !fmt)
        return r;

    va_list ap;
    char *msg = NULL;
    int saved = errno;
    errno = -r; /* for %m */
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    errno = saved;
    free(app->fail_message);
    app->fail_message = msg;
    return r;
}

int keel_app_cancel(keel_app *app, keel_cause cause, const char *fmt, ...)
{
    keel_assert_return(app, -EINVAL);
    keel_assert_return(cause > KEEL_CAUSE_NONE && cause < _KEEL_CAUSE_MAX, -EINVAL);

    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
            msg = NULL;
        va_end(ap);
    }
    if (app->cause != KEEL_CAUSE_NONE) {
        keel_log_info("Already shutting down (%s), ignoring: %s", app->cause_message ? app->cause_message : cause_names[app->cause],
                      msg ? msg : cause_names[cause]);
        free(msg);
        return 0;
    }
    app->cause = cause;
    app->cause_message = msg;
    keel_log_info("Initiating shutdown, cause: %s", msg ? msg : cause_names[cause]);
    return 1;
}

keel_cause keel_app_cause(const keel_app *app)
{
    return app ? app->cause : KEEL_CAUSE_NONE;
}

bool keel_app_cancelled(const keel_app *app)
{
    return app && app->cause != KEEL_CAUSE_NONE;
}

const char *keel_app_command(const keel_app *app)
{
    return app ? app->command : NULL;
}

char **keel_app_args(const keel_app *app, int *ret_argc)
{
    if (ret_argc)
        *ret_argc = app ? (int) keel_strv_length(app->args) : 0;
    return app ? app->args : NULL;
}

keel_event keel_app_event(const keel_app *app)
{
    return app && app->dispatching ? app->event_now : _KEEL_EVENT_INVALID;
}

keel_phase keel_app_phase(const keel_app *app)
{
    return app && app->dispatching ? app->phase_now : _KEEL_PHASE_INVALID;
}

const char *keel_app_name(const keel_app *app)
{
    return app ? app->name : NULL;
}

sd_event *keel_app_get_event_loop(keel_app *app)
{
    return app ? app->event : NULL;
}

keel_usec_t keel_app_stop_deadline(const keel_app *app)
{
    return app ? app->stop_deadline : KEEL_USEC_INFINITY;
}

bool keel__app_in_start(const keel_app *app)
{
    return app && app->dispatching && app->event_now == KEEL_EVENT_START;
}

keel_config *keel__app_config(keel_app *app)
{
    return app->config;
}

const keel_core_settings *keel__app_settings(const keel_app *app)
{
    return &app->settings;
}

int keel_app_add_config(keel_app *app, const keel_config_key *keys, size_t n_keys, void *storage)
{
    keel_assert_return(app && keys && n_keys > 0 && storage, -EINVAL);
    return keel__config_add_table(app->config, keys, n_keys, storage);
}

const char *keel_app_config_origin(const keel_app *app, const char *key)
{
    keel_assert_return(app && key, NULL);
    return keel__config_origin(app->config, key);
}

void keel__app_apply_log_settings(keel_app *app)
{
    keel_log_set_level(keel__log_level_from_choice(app->settings.log_level));
    (void) keel_log_set_format((keel_log_format) app->settings.log_format);
}

int keel__app_add_status_detail(keel_app *app, const char *fmt, ...)
{
    va_list ap;
    char *detail = NULL;
    va_start(ap, fmt);
    if (vasprintf(&detail, fmt, ap) < 0)
        detail = NULL;
    va_end(ap);
    return detail ? keel_strv_push(&app->status_details, detail) : -ENOMEM;
}
