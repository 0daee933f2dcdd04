/* SPDX-License-Identifier: MIT */
/* Loads the configuration layers in configure.before, re-reads them on refresh, and applies
 * what the framework itself is configured with: logging and plugins.disabled. */
#include <stdio.h>
#include <unistd.h>

#include <keel/keel.h>

#include "app-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"
#include "observers-internal.h"

extern char **environ;

/* The files are the program's own (core/app/app.c): /usr/share/NAME/defaults.yaml and
 * /etc/NAME/NAME.yaml. */
static keel_config_sources sources(const keel_app *app)
{
    const keel_cli *cli = keel__app_cli(app);
    const keel_paths *paths = keel__app_paths(app);
    const char *app_file = cli->config_file;
    /* The well-known file is read when present; a file named with --config must exist. */
    if (!app_file && access(paths->app_file, F_OK) == 0)
        app_file = paths->app_file;
    return (keel_config_sources){
        .defaults_file = paths->defaults_file,
        .app_file = app_file,
        .profile = cli->profile,
        .profile_base = cli->config_file ?: paths->app_file,
        .environ = environ,
        .sets = cli->sets,
    };
}

/* A name that is no plugin or service is refused, as an unknown key is: a typo would otherwise
 * leave running what the operator meant to turn off. */
static int disable_plugins(keel_app *app)
{
    char **names = keel__app_settings(app)->plugins_disabled;
    for (size_t i = 0; names && names[i]; i++)
        if (!keel__app_plugin_known(app, names[i])) {
            _cleanup_free_ char *known = keel__app_plugin_names(app);
            return keel_app_fail(app, -EINVAL, "plugins.disabled[%zu]: no plugin or service is named '%s' (there are %s)", i,
                                 names[i], known ? known : "?");
        }
    for (char **p = names; p && *p; p++) {
        size_t n = keel__app_disable_plugin(app, *p);
        keel_log_info("Plugin %s disabled by configuration (%zu observers removed)", *p, n);
    }
    return 0;
}

/* Each error once: a single one is the failure itself (and so reaches the parent of a daemon);
 * several are each a line of their own, and the failure, with the shutdown and exit records
 * after it, only counts them. */
static int fail_with(keel_app *app, int r, char **errors)
{
    size_t n = keel_strv_length(errors);
    if (n == 0)
        return keel_app_fail(app, r, "%s", strerror(-r));
    if (n == 1)
        return keel_app_fail(app, r, "%s", errors[0]);
    for (char **e = errors; *e; e++)
        keel_log_error("%s", *e);
    if (n > KEEL_CONFIG_ERRORS_MAX)
        return keel_app_fail(app, r, "more than %d errors in the configuration", KEEL_CONFIG_ERRORS_MAX);
    return keel_app_fail(app, r, "%zu errors in the configuration", n);
}

static int on_load(keel_app *app, void *userdata)
{
    _cleanup_strv_free_ char **errors = NULL;
    keel_config_sources src = sources(app);

    int r = keel__config_load(keel__app_config(app), &src, &errors);
    if (r < 0)
        return fail_with(app, r, errors);
    keel__app_apply_log_settings(app);
    return disable_plugins(app);
}

/* A refresh that failed after this reload committed: the previous values come back. */
static int on_revert(keel_app *app)
{
    size_t n = keel__config_reload_undo(keel__app_config(app));
    keel__app_apply_log_settings(app);
    if (n > 0)
        keel_log_info("Put back the previous configuration (%zu %s)", n, n == 1 ? "value" : "values");
    return 0;
}

static int on_reload(keel_app *app, void *userdata)
{
    _cleanup_strv_free_ char **errors = NULL, **refused = NULL;
    keel_config_sources src = sources(app);

    if (keel__machine_reverting(app))
        return on_revert(app);

    int r = keel__config_reload(keel__app_config(app), &src, &refused, &errors);
    if (r < 0)
        return fail_with(app, r, errors);
    for (char **k = refused; k && *k; k++)
        keel_log_warning("Changing %s needs a restart; keeping the running value", *k);
    keel__app_apply_log_settings(app);
    return 0;
}

int keel__observers_config_register(keel_app *app)
{
    int r = keel_app_observe(app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_BEFORE, "config.load", on_load, NULL, NULL);
    if (r < 0)
        return r;
    return keel_app_observe(app, KEEL_EVENT_REFRESH, KEEL_PHASE_BEFORE, "config.reload", on_reload, NULL, NULL);
}
