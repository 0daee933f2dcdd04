/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "app-state-internal.h"
#include "log-internal.h"
#include "macro-internal.h"
#include "service-internal.h"

static int add_standard_commands(keel_app *app)
{
    static const struct {
        const char *name, *summary;
        unsigned flags;
    } std[] = {
        { "serve", "run the services until a signal (the default)", KEEL_COMMAND_SINGLE | KEEL_COMMAND_STATE_WRITER },
        { "config",
          "print the effective configuration and where each value came from ([--keys]: every key; [--check|-t]: only check it)",
          KEEL_COMMAND_QUIET | KEEL_COMMAND_CHECKS_SERVE },
        { "version", "print the version", KEEL_COMMAND_QUIET },
        { "plan", "print every observer COMMAND would run, in order, without running it: [--format text|dot] [COMMAND [ARGS]]",
          KEEL_COMMAND_QUIET },
    };
    for (size_t i = 0; i < ELEMENTSOF(std); i++) {
        int r = keel_app_add_command(app, std[i].name, std[i].summary, std[i].flags);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The files of a program named after the app, and the framework's keys with its state_dir. */
static int paths_init(keel_app *app)
{
    keel_paths *p = &app->paths;
    _cleanup_free_ char *env = keel_strdup_printf("%sDEFAULTS_FILE", keel__config_env_prefix(app->config));
    const char *defaults = env ? getenv(env) : NULL;
    p->defaults_file = defaults ? strdup(defaults) : keel_strdup_printf("/usr/share/%s/defaults.yaml", app->name);
    p->app_file = keel_strdup_printf("/etc/%s/%s.yaml", app->name, app->name);
    _cleanup_free_ char *state_dir = keel_strdup_printf("/var/lib/%s", app->name);
    p->state_dir = state_dir ? keel__config_yaml_quote(state_dir, false) : NULL;
    p->table = malloc(keel__core_settings_table_size * sizeof *p->table);
    if (!env || !p->defaults_file || !p->app_file || !p->state_dir || !p->table)
        return -ENOMEM;
    memcpy(p->table, keel__core_settings_table, keel__core_settings_table_size * sizeof *p->table);
    for (size_t i = 0; i < keel__core_settings_table_size; i++)
        if (streq(p->table[i].key, "state_dir")) {
            p->table[i].def = p->state_dir;
            p->state_dir_row = i;
        }
    return 0;
}

int keel_app_set_state_dir(keel_app *app, const char *path)
{
    keel_assert_return(app, -EINVAL);
    keel_assert_return(!path || !*path || path[0] == '/', -EINVAL);
    if (keel__config_loaded(app->config))
        return -ESTALE;
    /* YAML, as every default is; '' is "none", which the path parser then accepts from any layer. */
    char *def = path && *path ? keel__config_yaml_quote(path, false) : strdup("''");
    if (!def)
        return -ENOMEM;
    /* The configuration reads the row's default again when it loads, so the new one takes effect
     * then; until then keel_app_state_dir() says nothing. */
    app->paths.table[app->paths.state_dir_row].def = def;
    free(app->paths.state_dir);
    app->paths.state_dir = def;
    return 0;
}

int keel_app_set_version(keel_app *app, const char *version)
{
    keel_assert_return(app && version && *version, -EINVAL);
    for (const unsigned char *c = (const unsigned char *) version; *c; c++)
        keel_assert_return(*c > ' ' && *c != 0x7f, -EINVAL);
    char *v = strdup(version);
    if (!v)
        return -ENOMEM;
    free(app->version);
    app->version = v;
    return 0;
}

const char *keel_app_version(const keel_app *app)
{
    return app ? app->version : NULL;
}

keel_app *keel_app_new(const char *name)
{
    keel_app *app = calloc(1, sizeof *app);
    if (!app)
        return NULL;
    *app = (keel_app){
        .registry = { .attach_lock = PTHREAD_MUTEX_INITIALIZER },
        .machine = KEEL_MACHINE_INIT,
        .health = { .readiness = KEEL_READINESS_STARTING, .lock = PTHREAD_MUTEX_INITIALIZER },
        .state_lock = -EBADF,
    };
    app->name = strdup(name ? name : "keel");
    int r = app->name ? sd_event_new(&app->event) : -ENOMEM;
    if (r >= 0)
        r = (app->config = keel__config_new(app->name)) ? 0 : -ENOMEM;
    if (r >= 0)
        r = paths_init(app);
    if (r >= 0)
        r = keel__config_add_table(app->config, app->paths.table, keel__core_settings_table_size, &app->settings);
    if (r >= 0)
        r = add_standard_commands(app);
    if (r >= 0)
        r = keel__app_metrics_setup(app);
    if (r < 0) { /* said here, or the program exits 70 without a word */
        keel_log_error_errno(r, "Failed to set up %s: %m", name ? name : "keel");
        return keel_app_free(app);
    }
    return app;
}

keel_app *keel_app_free(keel_app *app)
{
    if (!app)
        return NULL;
    for (int e = 0; e < _KEEL_EVENT_MAX; e++)
        for (int p = 0; p < _KEEL_PHASE_MAX; p++)
            keel__observer_list_done(&app->registry.lists[e][p]);
    keel__observer_list_done(&app->registry.command_list);
    for (size_t i = 0; i < app->registry.n_commands; i++) {
        free(app->registry.commands[i].name);
        free(app->registry.commands[i].summary);
        keel_strv_free(app->registry.commands[i].uses);
    }
    free(app->registry.commands);
    /* The configuration first: its strings and lists live in the services' states. */
    app->config = keel__config_free(app->config);
    for (size_t i = app->registry.n_services; i > 0; i--)
        keel__service_free(app->registry.services[i - 1]);
    free(app->registry.services);
    free(app->registry.plugins);
    keel__app_attachments_done(app);
    keel__machine_done(app);
    app->event = sd_event_unref(app->event);
    free(app->name);
    free(app->version);
    free(app->paths.defaults_file);
    free(app->paths.app_file);
    free(app->paths.state_dir);
    free(app->paths.table);
    free(app->cli.command);
    keel_strv_free(app->cli.args);
    free(app->cli.config_file);
    free(app->cli.profile);
    free(app->cli.trace_path);
    /* Only now: finalize (the shutdown record) was the last to write the state directory. */
    app->state_lock = safe_close(app->state_lock);
    keel_strv_free(app->cli.sets);
    keel__app_health_done(app);
    keel__app_metrics_done(app);
    keel_strv_free(app->health.status_details);
    free(app);
    return NULL;
}

int keel_app_add_command(keel_app *app, const char *name, const char *summary, unsigned flags)
{
    keel_assert_return(app, -EINVAL);
    keel_assert_return(name && *name && name[0] != '-', -EINVAL);
    keel_assert_return((flags & ~(unsigned) (KEEL_COMMAND_SINGLE | KEEL_COMMAND_STATE_WRITER | KEEL_COMMAND_QUIET |
                                             KEEL_COMMAND_CHECKS_SERVE)) == 0,
                       -EINVAL);
    if (keel__app_command_declared(app, name))
        return -EEXIST;
    int r = GROW(app->registry.commands, app->registry.allocated_commands, app->registry.n_commands + 1);
    if (r < 0)
        return r;
    keel_command_decl c = { .name = strdup(name), .summary = strdup(summary ? summary : ""), .flags = flags };
    if (!c.name || !c.summary) {
        free(c.name);
        free(c.summary);
        return -ENOMEM;
    }
    app->registry.commands[app->registry.n_commands++] = c;
    return 0;
}

keel_command_decl *keel__app_command(const keel_app *app, const char *name)
{
    for (size_t i = 0; name && i < app->registry.n_commands; i++)
        if (streq(app->registry.commands[i].name, name))
            return &app->registry.commands[i];
    return NULL;
}

bool keel__app_command_declared(const keel_app *app, const char *name)
{
    return keel__app_command(app, name) != NULL;
}

int keel_app_command_uses(keel_app *app, const char *command, const char *service)
{
    keel_assert_return(app && command && service && *service, -EINVAL);
    keel_command_decl *c = keel__app_command(app, command);
    if (!c)
        return -ENOENT;
    if (app->registry.services_resolved)
        return -ESTALE;
    return keel_strv_contains((const char *const *) c->uses, service) ? 0 : keel_strv_extend(&c->uses, service);
}

unsigned keel_app_command_flags(const keel_app *app)
{
    const keel_command_decl *c = app ? keel__app_command(app, app->cli.command) : NULL;
    return c ? c->flags : 0;
}

const char *keel_app_command(const keel_app *app)
{
    return app ? app->cli.command : NULL;
}

char **keel_app_args(const keel_app *app, int *ret_argc)
{
    if (ret_argc)
        *ret_argc = app ? (int) keel_strv_length(app->cli.args) : 0;
    return app ? app->cli.args : NULL;
}

const char *keel_app_name(const keel_app *app)
{
    return app ? app->name : NULL;
}

sd_event *keel_app_get_event_loop(keel_app *app)
{
    return app ? app->event : NULL;
}

keel_machine *keel__app_machine(keel_app *app)
{
    return &app->machine;
}

const keel_machine *keel__app_machine_const(const keel_app *app)
{
    return &app->machine;
}

keel_telemetry *keel__app_telemetry(keel_app *app)
{
    return &app->telemetry;
}

int keel__app_renew_event_loop(keel_app *app)
{
    app->event = sd_event_unref(app->event);
    return sd_event_new(&app->event);
}

keel_config *keel__app_config(keel_app *app)
{
    return app->config;
}

const keel_paths *keel__app_paths(const keel_app *app)
{
    return &app->paths;
}

const keel_cli *keel__app_cli(const keel_app *app)
{
    return &app->cli;
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

const void *keel_app_config_value(const keel_app *app, const char *key, keel_config_type type)
{
    keel_assert_return(app && key, NULL);
    return keel__config_value(app->config, key, type);
}

/* A quiet command keeps to warnings unless the level was asked for. */
void keel__app_apply_log_settings(keel_app *app)
{
    const char *origin = keel__config_origin(app->config, "log.level");
    bool quiet = (keel_app_command_flags(app) & KEEL_COMMAND_QUIET) && origin && streq(origin, "default");
    keel_log_set_level(quiet ? KEEL_LOG_WARNING : keel__log_level_from_choice(app->settings.log_level));
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
    return detail ? keel_strv_push(&app->health.status_details, detail) : -ENOMEM;
}

void keel__app_remove_status_detail(keel_app *app, const char *detail)
{
    for (char **d = app->health.status_details; d && *d; d++)
        if (streq(*d, detail)) {
            free(*d);
            memmove(d, d + 1, (keel_strv_length(d + 1) + 1) * sizeof *d);
            return;
        }
}

char *const *keel__app_status_details(const keel_app *app)
{
    return app->health.status_details;
}
