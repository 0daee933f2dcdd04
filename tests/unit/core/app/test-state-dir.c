/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "app-internal.h"
#include "apptest.h"
#include "config.h"
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
