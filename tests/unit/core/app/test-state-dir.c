/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "app-state-internal.h"
#include "apptest.h"
#include "config-internal.h"
#include "helpers.h"

static apptest t;
static char *dir;

/* The configuration with state_dir set, as config.load would have it (the standard observers are
 * not in a hand-built app). */
static int load(keel_app *app, void *userdata)
{
    char *set[] = { userdata, NULL };
    keel_config_sources src = { .sets = set };
    return keel__config_load(app->config, &src, NULL);
}

static void setup(void)
{
    apptest_init(&t);
    cr_assert_geq(asprintf(&dir, "%s/state-XXXXXX", test_tmpdir()), 0);
    cr_assert_not_null(mkdtemp(dir));
    static char set[4096];
    (void) snprintf(set, sizeof set, "state_dir=%s/state", dir);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_BEFORE, "load", load, set, NULL), 0);
}

static void teardown(void)
{
    apptest_done(&t);
    free(dir);
}

TestSuite(state_dir, .init = setup, .fini = teardown, .timeout = 30);

/* Another process's lock, as far as flock(2) knows: a lock of another open file description. */
static int other_lock(const char *state)
{
    char path[4096];
    (void) snprintf(path, sizeof path, "%s/.lock", state);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    return fd;
}

static int check_held(keel_app *app, void *userdata)
{
    cr_assert(keel_app_state_dir_locked(app));
    cr_assert_eq(keel_app_lock_state_dir(app), 0, "held already");
    int fd = other_lock(keel_app_state_dir(app));
    cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), -1, "one writer at a time");
    close(fd);
    return 0;
}

Test(state_dir, serve_creates_and_locks_it_until_the_app_is_freed)
{
    char state[4096];
    struct stat st;
    (void) snprintf(state, sizeof state, "%s/state", dir);
    cr_assert_null(keel_app_state_dir(t.app), "unknown before the configuration is loaded");
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_DURING, "held", check_held, NULL, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));
    cr_assert_str_eq(keel_app_state_dir(t.app), state);
    cr_assert_eq(stat(state, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0700);

    int fd = other_lock(state);
    cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), -1, "still held: finalize wrote there last");
    t.app = keel_app_free(t.app);
    cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0, "gone with the app");
    close(fd);
    apptest_init(&t);
}

Test(state_dir, a_held_lock_fails_the_start_naming_the_directory)
{
    char state[4096];
    (void) snprintf(state, sizeof state, "%s/state", dir);
    cr_assert_eq(mkdir(state, 0700), 0);
    int fd = other_lock(state);
    cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_DURING, "service", ACT_OK);
    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_str_eq(t.calls, "", "no service started");
    cr_assert_not(keel_app_state_dir_locked(t.app));
    char want[4200];
    (void) snprintf(want, sizeof want, "State directory '%s' is in use by another test process; one process at a time writes it",
                    state);
    cr_assert(strstr(apptest_logs(&t), want), "%s", apptest_logs(&t));
    close(fd);
}

/* Taken last in start.before: a plugin's own check there can refuse the directory before
 * anything, not even the lock file, is written in it. */
Test(state_dir, a_start_before_observer_runs_before_the_lock_is_taken)
{
    char lock[4200];
    (void) snprintf(lock, sizeof lock, "%s/state/.lock", dir);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_BEFORE, "refuse", ACT_FAIL);
    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_eq(access(lock, F_OK), -1, "no lock file");
}

/* Only the commands declared as its writers take it. */
Test(state_dir, other_commands_leave_it_alone)
{
    char state[4096];
    (void) snprintf(state, sizeof state, "%s/state", dir);
    cr_assert_eq(keel_app_add_command(t.app, "token", "reads it", 0), 0);
    cr_assert_eq(keel_app_add_command(t.app, "both", "bad flags", 1u << 7), -EINVAL);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, "token", NULL), 0);
    cr_assert_eq(access(state, F_OK), -1, "not even created");
    cr_assert_eq(keel_app_lock_state_dir(t.app), -ENOENT, "not there to lock");
}

static char *config_text(keel_app *app)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    cr_assert_not_null(f);
    cr_assert_geq(keel__config_dump(app->config, f), 0);
    cr_assert_eq(fclose(f), 0);
    return text;
}

Test(state_dir, set_state_dir_checks_its_arguments)
{
    cr_assert_eq(keel_app_set_state_dir(NULL, "/x"), -EINVAL);
    cr_assert_eq(keel_app_set_state_dir(t.app, "relative/x"), -EINVAL);
    cr_assert_eq(keel_app_set_state_dir(t.app, "/srv/test"), 0);
    cr_assert_eq(keel_app_set_state_dir(t.app, ""), 0);
    cr_assert_eq(keel_app_set_state_dir(t.app, NULL), 0);
}

static int set_too_late(keel_app *app, void *userdata)
{
    cr_assert_eq(keel_app_set_state_dir(app, "/srv/test"), -ESTALE);
    return 0;
}

/* The program's default stands until a layer sets the key, and is what `config` shows. */
Test(state_dir, the_programs_default_is_the_keys_default)
{
    char *set[] = { NULL };
    keel_config_sources src = { .sets = set };
    cr_assert_eq(keel_app_set_state_dir(t.app, "/srv/my state: x"), 0);
    cr_assert_eq(keel__config_load(t.app->config, &src, NULL), 0);
    cr_assert_str_eq(keel_app_state_dir(t.app), "/srv/my state: x");
    cr_assert_str_eq(keel_app_config_origin(t.app, "state_dir"), "default");
    _cleanup_free_ char *text = config_text(t.app);
    cr_assert(strstr(text, "state_dir: '/srv/my state: x'"), "%s", text);
    cr_assert_eq(keel_app_set_state_dir(t.app, "/srv/other"), -ESTALE);
    cr_assert_str_eq(keel_app_state_dir(t.app), "/srv/my state: x");
}

/* A program that keeps no state: serve creates, locks and writes nothing, and finalize writes no
 * shutdown record (the configuration sets no state_dir, so it is the program's ''). */
Test(state_dir, a_program_without_state_writes_nothing)
{
    char state[4096];
    apptest_done(&t);
    apptest_init(&t);
    cr_assert_eq(keel_app_set_state_dir(t.app, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_BEFORE, "load", load, "log.level=info", NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_AFTER, "late", set_too_late, NULL, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));
    cr_assert_str_eq(keel_app_state_dir(t.app), "");
    cr_assert_not(keel_app_state_dir_locked(t.app));
    cr_assert_eq(keel_app_lock_state_dir(t.app), -ENOENT);
    (void) snprintf(state, sizeof state, "%s/state", dir);
    cr_assert_eq(access(state, F_OK), -1, "nothing made");
}

/* '' is "none" only for a program that says it can do without: the agent's certificates, for
 * one, live there. */
Test(state_dir, an_empty_state_dir_is_accepted_only_from_a_program_without_state)
{
    _cleanup_strv_free_ char **errors = NULL;
    char *set[] = { "state_dir=''", NULL };
    keel_config_sources src = { .sets = set };
    cr_assert_eq(keel__config_load(t.app->config, &src, &errors), -EINVAL);
    cr_assert(errors && errors[0] && strstr(errors[0], "expected a non-empty path"), "%s", errors && errors[0] ? errors[0] : "");

    apptest_done(&t);
    apptest_init(&t);
    cr_assert_eq(keel_app_set_state_dir(t.app, ""), 0);
    cr_assert_eq(keel__config_load(t.app->config, &src, NULL), 0);
    cr_assert_str_eq(keel_app_state_dir(t.app), "");
    cr_assert_str_eq(keel_app_config_origin(t.app, "state_dir"), "--set");

    apptest_done(&t);
    apptest_init(&t);
    char *set_dir[] = { "state_dir=/srv/test", NULL };
    src.sets = set_dir;
    cr_assert_eq(keel_app_set_state_dir(t.app, ""), 0);
    cr_assert_eq(keel__config_load(t.app->config, &src, NULL), 0);
    cr_assert_str_eq(keel_app_state_dir(t.app), "/srv/test", "an operator may still give it one");
}
