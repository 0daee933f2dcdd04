/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "app-state-internal.h"
#include "config-internal.h"
#include "fault-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"
#include "service-internal.h"
#include "trace-internal.h"
#include "work-internal.h"

/* The observers that follow from what the plugins registered: the services' hooks in dependency
 * order, and the state directory's lock, last in start.before. A failure is the program's bug
 * (a dependency that is not there, a cycle), reported once. */
static bool resolve(keel_app *app)
{
    _cleanup_free_ char *error = NULL;
    int r = keel__services_resolve(app, app->cli.command, &error);
    if (r >= 0)
        r = keel__state_dir_register(app);
    if (r < 0) {
        keel_log_error_errno(r, "Failed to set up the services: %s", error ? error : strerror(-r));
        return false;
    }
    return true;
}

static bool level_on_command_line(const keel_app *app)
{
    for (char **set = app->cli.sets; set && *set; set++)
        if (strncmp(*set, "log.level=", strlen("log.level=")) == 0)
            return true;
    return false;
}

/* Everything before the machine that may end the run at once. Returns true to go on; false with
 * the exit status in *ret_status to end (after --help, or on a failure it already reported). */
static bool prepare(keel_app *app, int argc, char **argv, const keel_run_options *o, int *ret_status)
{
    _cleanup_free_ char *error = NULL;
    /* Before the plugins register (about half a millisecond): nothing they add changes it. */
    int printed = keel__cli_version_first(app, argc, argv);
    if (printed != 0)
        return *ret_status = printed > 0 ? KEEL_EXIT_OK : KEEL_EXIT_FAILURE, false;
    /* Journald's native protocol from the first record when systemd gave us a journal stream;
     * --log-format and the configuration may change it later. */
    (void) keel_log_set_format(KEEL_LOG_FORMAT_AUTO);
    int r = keel__signals_setup(app);
    if (r < 0) {
        keel_log_error_errno(r, "Failed to set up signal handling: %m");
        return *ret_status = KEEL_EXIT_SOFTWARE, false;
    }
    if (keel__app_register_plugins(app, o) < 0)
        return *ret_status = KEEL_EXIT_SOFTWARE, false;

    r = keel__cli_parse(app, argc, argv);
    if (r != 0) {
        *ret_status = r > 0 ? KEEL_EXIT_OK : r == -ENOMEM ? KEEL_EXIT_SOFTWARE : r == -EIO ? KEEL_EXIT_FAILURE : KEEL_EXIT_USAGE;
        return false;
    }
    if ((keel_app_command_flags(app) & KEEL_COMMAND_QUIET) && !level_on_command_line(app))
        keel_log_set_level(KEEL_LOG_WARNING); /* until the configuration says otherwise */
    if (streq(app->cli.command, "plan"))
        return *ret_status = keel__plan(app), false;
    if (!resolve(app))
        return *ret_status = KEEL_EXIT_SOFTWARE, false;
    keel__config_path_base_init(); /* before --daemon leaves the directory */
    /* A usage error before detaching: said on the terminal, as --set's are. */
    r = keel__faults_from_env(&error);
    if (r < 0) {
        fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", app->name, error ? error : "KEEL_FAULT: invalid",
                app->name);
        return *ret_status = KEEL_EXIT_USAGE, false;
    }
    if (app->cli.daemonize && (r = keel__daemonize(app, ret_status)) != 0) {
        if (r < 0)
            keel_log_error_errno(r, "Failed to detach: %m");
        return r < 0 ? (*ret_status = KEEL_EXIT_FAILURE, false) : false;
    }
    keel__work_setup(); /* while this is the only thread: 3 us instead of 14 ms; in the daemon if detached */
    /* In the daemon if detached, which writes it; its failure told to the process that waits. */
    if (app->cli.trace_path && (r = keel__trace_open(app->cli.trace_path)) < 0) {
        keel_log_error_errno(r, "Failed to open trace file '%s': %m", app->cli.trace_path);
        keel__daemon_fail(app, KEEL_EXIT_CANTCREAT, "Failed to open trace file '%s': %s", app->cli.trace_path, strerror(-r));
        return *ret_status = KEEL_EXIT_CANTCREAT, false;
    }
    keel__trace_thread_name("main"); /* the machine's thread; the tasks name theirs */
    return true;
}

int keel_app_run_with(keel_app *app, int argc, char **argv, const keel_run_options *options)
{
    keel_assert_return(app && argc >= 1 && argv, -EINVAL);
    keel_assert_return(!keel__machine_started(app), -EBUSY);

    int status;
    if (!prepare(app, argc, argv, options, &status))
        return status;
    status = keel__machine_run(app);
    keel__trace_close();
    return status;
}
