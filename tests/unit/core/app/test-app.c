/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <keel/plugin.h>

#include "app-state-internal.h"
#include "apptest.h"
#include "config-internal.h"

static apptest t;

static void setup(void)
{
    apptest_init(&t);
}

static void teardown(void)
{
    apptest_done(&t);
}

TestSuite(app, .init = setup, .fini = teardown, .timeout = 30);

static int nop(keel_app *app, void *userdata)
{
    return 0;
}

Test(app, observe_checks_its_arguments)
{
    cr_assert_eq(keel_app_observe(NULL, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, "x", nop, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_COMMAND, KEEL_PHASE_BEFORE, "x", nop, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_observe(t.app, _KEEL_EVENT_MAX, KEEL_PHASE_BEFORE, "x", nop, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_INIT, _KEEL_PHASE_MAX, "x", nop, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, "", nop, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, NULL, nop, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, "x", NULL, NULL, NULL), -EINVAL);
    keel_observer *o = NULL;
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, "x", nop, NULL, &o), 0);
    cr_assert_not_null(o);
    keel_observer_remove(o);
    keel_observer_remove(NULL);
}

Test(app, commands)
{
    cr_assert_eq(keel_app_add_command(t.app, "serve", "again", 0), -EEXIST);
    cr_assert_eq(keel_app_add_command(t.app, "", "empty", 0), -EINVAL);
    cr_assert_eq(keel_app_add_command(t.app, "-x", "an option", 0), -EINVAL);
    cr_assert_eq(keel_app_add_command(t.app, "token", "print a token", 0), 0);
    cr_assert_eq(keel_app_observe_command(t.app, "missing", "x", nop, NULL), -ENOENT);
    cr_assert_eq(keel_app_observe_command(t.app, "token", "x", nop, NULL), 0);
    cr_assert_null(keel_app_command(t.app));
}

static int check_args(keel_app *app, void *userdata)
{
    int argc;
    char **argv = keel_app_args(app, &argc);
    cr_assert_eq(argc, 3);
    cr_assert_str_eq(argv[0], "token");
    cr_assert_str_eq(argv[1], "--domain");
    cr_assert_str_eq(argv[2], "d");
    cr_assert_str_eq(keel_app_command(app), "token");
    cr_assert_eq(keel_app_event(app), KEEL_EVENT_COMMAND);
    /* Command observers are all registered before the command event runs. */
    cr_assert_eq(keel_app_observe_command(app, "token", "late", nop, NULL), -ESTALE);
    strcat(t.calls, "token ");
    keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "token printed");
    return 0;
}

Test(app, command_observers_run_only_for_their_command_and_see_its_arguments)
{
    cr_assert_eq(keel_app_add_command(t.app, "token", "print a token", 0), 0);
    cr_assert_eq(keel_app_observe_command(t.app, "token", "token.command", check_args, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_COMMAND, 0, "serve-only", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_INIT, KEEL_PHASE_DURING, "init", ACT_OK);
    cr_assert_eq(apptest_run(&t, "token", "--domain", "d", NULL), 0);
    cr_assert_str_eq(t.calls, "token ");
}

static unsigned registered;

static int count_registration(keel_app *app)
{
    registered++;
    return 0;
}

/* `--version` first is all the command line says: printed before any plugin registers, which is
 * most of what a run does before its first output. Anywhere else it is parsed as before. */
Test(app, version_first_is_printed_before_the_plugins_register)
{
    static const keel_plugin plugin = { .name = "counted", .order = KEEL_PLUGIN_ORDER_DEFAULT, .register_fn = count_registration };
    static const keel_plugin *const plugins[] = { &plugin };
    keel_run_options o = { .plugins_start = plugins, .plugins_stop = plugins + 1, .bare = true };
    registered = 0;
    cr_assert_eq(keel_app_run_with(t.app, 3, (char *[]){ "test", "--version", "--bogus", NULL }, &o), KEEL_EXIT_OK);
    cr_assert_eq(registered, 0);

    keel_app *other = keel_app_new("test");
    cr_assert_not_null(other);
    cr_assert_eq(keel_app_run_with(other, 3, (char *[]){ "test", "--log-level=debug", "--version", NULL }, &o), KEEL_EXIT_OK);
    cr_assert_eq(registered, 1);
    keel_app_free(other);
}

Test(app, run_twice_is_refused)
{
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), -EBUSY);
}

Test(app, cancel_and_fail)
{
    cr_assert_eq(keel_app_cancel(t.app, KEEL_CAUSE_NONE, "x"), -EINVAL);
    cr_assert_eq(keel_app_cancel(NULL, KEEL_CAUSE_SIGNAL, "x"), -EINVAL);
    cr_assert_not(keel_app_cancelled(t.app));
    cr_assert_eq(keel_app_cancel(t.app, KEEL_CAUSE_SIGNAL, "first"), 1);
    cr_assert_eq(keel_app_cancel(t.app, KEEL_CAUSE_START_FAILED, "second"), 0);
    cr_assert_eq(keel_app_cause(t.app), KEEL_CAUSE_SIGNAL);
    cr_assert_eq(keel_app_fail(t.app, EIO, "x"), -EIO);
    cr_assert_eq(keel_app_fail(t.app, -ENOENT, "x"), -ENOENT);
    cr_assert_eq(keel_app_fail(t.app, 0, "x"), -EIO);
}

Test(app, outside_the_machine_there_is_no_event)
{
    cr_assert_eq(keel_app_event(t.app), _KEEL_EVENT_INVALID);
    cr_assert_eq(keel_app_phase(t.app), _KEEL_PHASE_INVALID);
    cr_assert_eq(keel_app_stop_deadline(t.app), KEEL_USEC_INFINITY);
    cr_assert_str_eq(keel_app_name(t.app), "test");
    cr_assert_not_null(keel_app_get_event_loop(t.app));
}

Test(app, names_of_events_phases_and_causes)
{
    for (int e = 0; e < _KEEL_EVENT_MAX; e++)
        cr_assert_eq(keel_event_from_string(keel_event_to_string(e)), e);
    for (int p = 0; p < _KEEL_PHASE_MAX; p++)
        cr_assert_eq(keel_phase_from_string(keel_phase_to_string(p)), p);
    for (int c = 0; c < _KEEL_CAUSE_MAX; c++)
        cr_assert_not_null(keel_cause_to_string(c));
    cr_assert_eq(keel_event_from_string("nope"), _KEEL_EVENT_INVALID);
    cr_assert_eq(keel_phase_from_string(NULL), _KEEL_PHASE_INVALID);
    cr_assert_null(keel_event_to_string(_KEEL_EVENT_MAX));
    cr_assert_null(keel_phase_to_string(-1));
    cr_assert_null(keel_cause_to_string(_KEEL_CAUSE_MAX));
}

static int register_token_plugin(keel_app *app)
{
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "token.start", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "token.stop", ACT_OK);
    return 0;
}

static const keel_plugin token_plugin = { .name = "token", .register_fn = register_token_plugin };

static int disable_token(keel_app *app, void *userdata)
{
    cr_assert_eq(keel__app_disable_plugin(app, "token"), 2);
    return 0;
}

Test(app, disabling_a_plugin_removes_every_observer_it_registered)
{
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_BEFORE, "config.load", disable_token, NULL, NULL), 0);
    t.app->registry.plugin_now = &token_plugin;
    cr_assert_eq(token_plugin.register_fn(t.app), 0);
    t.app->registry.plugin_now = NULL;
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "other.start", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "other.start done ");
}

static int check_ok(void *userdata, char *reason, size_t size)
{
    return 0;
}

static int check_failing(void *userdata, char *reason, size_t size)
{
    snprintf(reason, size, "expires in %s", (const char *) userdata);
    return -EKEYEXPIRED;
}

static int check_silent(void *userdata, char *reason, size_t size)
{
    return -EIO;
}

static void collect(const char *name, int result, const char *reason, void *userdata)
{
    char *buf = userdata;
    sprintf(buf + strlen(buf), "%s=%d(%s) ", name, result, result < 0 ? reason : "");
}

Test(app, health_checks_run_in_order_and_report_their_reasons)
{
    char out[256] = "";
    cr_assert_eq(keel_app_add_health_check(t.app, "ping-ish", check_ok, NULL), 0);
    cr_assert_eq(keel_app_add_health_check(t.app, "certificate", check_failing, (void *) "2h"), 0);
    cr_assert_eq(keel_app_add_health_check(t.app, "token", check_silent, NULL), 0);
    cr_assert_eq(keel_app_add_health_check(t.app, "token", check_ok, NULL), -EEXIST);
    cr_assert_eq(keel_app_add_health_check(t.app, "Bad Name", check_ok, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_health_check(t.app, "x", NULL, NULL), -EINVAL);

    cr_assert_eq(keel_app_run_health_checks(t.app, collect, out), 2);
    cr_assert_str_eq(out, "ping-ish=0() certificate=-127(expires in 2h) token=-5(Input/output error) ");
    cr_assert_eq(keel_app_run_health_checks(t.app, NULL, NULL), 2);
}

Test(app, readiness_follows_ready_and_stopping)
{
    cr_assert_eq(keel_app_readiness(t.app), KEEL_READINESS_STARTING);
    cr_assert_str_eq(keel_readiness_to_string(KEEL_READINESS_STOPPING), "shutting_down");
    cr_assert_null(keel_readiness_to_string(_KEEL_READINESS_MAX));
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "start", ACT_OK);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(keel_app_readiness(t.app), KEEL_READINESS_STOPPING);
}

/* A program built on Keel is named after itself: its environment variables, files and state. */
Test(app, a_program_keeps_its_own_names)
{
    keel_app *app = keel_app_new("q-worker");
    cr_assert_not_null(app);
    cr_assert_str_eq(keel__config_env_prefix(app->config), "Q_WORKER_");
    cr_assert_str_eq(keel__app_paths(app)->app_file, "/etc/q-worker/q-worker.yaml");
    cr_assert_str_eq(keel__app_paths(app)->defaults_file, "/usr/share/q-worker/defaults.yaml");
    char *env[] = { (char *) "Q_WORKER_LOG_LEVEL=debug", (char *) "KEEL_SHUTDOWN_DELAY=5s", NULL };
    keel_config_sources src = { .environ = env };
    cr_assert_eq(keel__config_load(app->config, &src, NULL), 0);
    cr_assert_str_eq(keel_app_state_dir(app), "/var/lib/q-worker");
    cr_assert_str_eq(keel_app_config_origin(app, "log.level"), "env Q_WORKER_LOG_LEVEL");
    cr_assert_str_eq(keel_app_config_origin(app, "shutdown.delay"), "default", "another program's variables are not ours");
    keel_app_free(app);
    cr_assert_null(keel_app_new("Bad Name"), "a name that cannot prefix variables and paths");
}

static char *version_line(const keel_app *app)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    cr_assert_not_null(f);
    keel__cli_print_version(app, f);
    cr_assert_eq(fclose(f), 0);
    return text;
}

/* `version` and `--version` print the program's version, and Keel's beside it; never Keel's as
 * the program's. */
Test(app, a_program_has_its_own_version)
{
    keel_app *app = keel_app_new("pinger");
    cr_assert_not_null(app);
    cr_assert_null(keel_app_version(app));
    _cleanup_free_ char *none = version_line(app);
    cr_assert_str_eq(none, "pinger (keel " KEEL_VERSION ")\n");

    cr_assert_eq(keel_app_set_version(NULL, "1.2.3"), -EINVAL);
    cr_assert_eq(keel_app_set_version(app, NULL), -EINVAL);
    cr_assert_eq(keel_app_set_version(app, ""), -EINVAL);
    cr_assert_eq(keel_app_set_version(app, "1.2 beta"), -EINVAL, "one word, so the line reads NAME VERSION");
    cr_assert_eq(keel_app_set_version(app, "1.2\n"), -EINVAL);
    cr_assert_null(keel_app_version(app), "a refused version changes nothing");
    cr_assert_eq(keel_app_set_version(app, "0.9"), 0);
    cr_assert_eq(keel_app_set_version(app, "1.2.3-rc1+g1a2b3c"), 0);
    cr_assert_str_eq(keel_app_version(app), "1.2.3-rc1+g1a2b3c");
    _cleanup_free_ char *both = version_line(app);
    cr_assert_str_eq(both, "pinger 1.2.3-rc1+g1a2b3c (keel " KEEL_VERSION ")\n");
    keel_app_free(app);

    /* Keel's own agent says its version once. */
    app = keel_app_new("keel");
    cr_assert_not_null(app);
    cr_assert_eq(keel_app_set_version(app, KEEL_VERSION), 0);
    _cleanup_free_ char *agent = version_line(app);
    cr_assert_str_eq(agent, "keel " KEEL_VERSION "\n");
    keel_app_free(app);
}
