/* SPDX-License-Identifier: MIT */
/* The standard commands: `serve` runs until a signal, `config` prints the effective configuration
 * (with --keys, every key; with --check, nothing: it only loads it), `version` prints the version.
 * Each selects its observers in the
 * `command` event, and does its work in those: a command observer only reads its arguments, so
 * that `plan` can run it. */
#include <stdio.h>
#include <string.h>

#include <keel/keel.h>

#include "app-internal.h"
#include "macro-internal.h"
#include "observers-internal.h"

static int no_arguments(keel_app *app)
{
    int argc;
    char **argv = keel_app_args(app, &argc);
    if (argc > 1)
        return keel_app_fail(app, -EINVAL, "'%s' takes no arguments, got '%s'", argv[0], argv[1]);
    return 0;
}

static int on_serve(keel_app *app, void *userdata)
{
    return no_arguments(app);
}

static int print_config(keel_app *app, void *userdata)
{
    /* Not keel_app_fail(): here, in configure, that would say the configuration was bad (78). */
    int r = keel__config_dump(keel__app_config(app), stdout);
    if (r >= 0)
        r = keel__cli_flushed(stdout, "the configuration");
    if (r < 0)
        return keel_app_cancel(app, KEEL_CAUSE_COMMAND_FAILED, "Failed to print the configuration: %s", strerror(-r));
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "configuration printed");
    return 0;
}

static int print_keys(keel_app *app, void *userdata)
{
    int r = keel__config_describe(keel__app_config(app), stdout);
    if (r < 0 || fflush(stdout) != 0)
        return keel_app_fail(app, r < 0 ? r : -EIO, "Failed to print the configuration keys: %m");
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "keys printed");
    return 0;
}

/* Reached only when every layer loaded and every service's configure accepted it: the errors,
 * each once, were logged by whichever failed. Silent on success, as `sshd -t`. */
static int check_config(keel_app *app, void *userdata)
{
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "configuration checked");
    return 0;
}

/* `config`: the effective configuration; `config --keys`: every key the program knows, without
 * loading anything; `config --check` (-t): only whether it loads, for ExecReload= and scripts. */
static int on_config(keel_app *app, void *userdata)
{
    int argc;
    char **argv = keel_app_args(app, &argc);
    if (argc == 2 && streq(argv[1], "--keys"))
        return keel_app_observe(app, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, "commands.config.keys", print_keys, NULL, NULL);
    if (argc == 2 && KEEL_STR_IN_SET(argv[1], "--check", "-t"))
        return keel_app_observe(app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_AFTER, "commands.config.check", check_config, NULL, NULL);
    if (argc > 1) {
        /* Name the argument that is wrong: after a known flag, the one that follows it. */
        bool flag = KEEL_STR_IN_SET(argv[1], "--keys", "--check", "-t");
        return keel_app_fail(app, -EINVAL, "'config' takes no arguments but --keys or --check (-t), got '%s'", argv[flag ? 2 : 1]);
    }
    /* After the layers are loaded (configure.before) and checked by every service's configure. */
    return keel_app_observe(app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_AFTER, "commands.config.print", print_config, NULL, NULL);
}

static int print_version(keel_app *app, void *userdata)
{
    if (keel__cli_print_version(app, stdout) < 0)
        return keel_app_cancel(app, KEEL_CAUSE_COMMAND_FAILED, "Failed to print the version");
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "version printed");
    return 0;
}

/* Command observers only read their arguments and register what the command does, so that
 * `plan version` prints the plan and not the version. */
static int on_version(keel_app *app, void *userdata)
{
    int r = no_arguments(app);
    if (r < 0)
        return r;
    return keel_app_observe(app, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, "commands.version.print", print_version, NULL, NULL);
}

int keel__observers_commands_register(keel_app *app)
{
    int r = keel_app_observe_command(app, "serve", "commands.serve", on_serve, NULL);
    if (r >= 0)
        r = keel_app_observe_command(app, "config", "commands.config", on_config, NULL);
    if (r >= 0)
        r = keel_app_observe_command(app, "version", "commands.version", on_version, NULL);
    return r;
}
