/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "apptest.h"
#include "helpers.h"
#include "testing.h"

static apptest t;

static void setup(void)
{
    apptest_init(&t);
}

static void teardown(void)
{
    apptest_done(&t);
}

TestSuite(task, .init = setup, .fini = teardown, .timeout = 30);

typedef struct fixture {
    keel_task_group *group;
    int n;
    atomic_int started, cancelled, timed_out;
    keel_usec_t wait;
    size_t threads_while_running;
    keel_usec_t stop_took;
    int spawn_result;
    char name[32];
} fixture;

static void sleeper(keel_task *task, void *userdata)
{
    fixture *f = userdata;
    atomic_fetch_add(&f->started, 1);
    int r = keel_task_wait(task, f->wait);
    atomic_fetch_add(r == -ECANCELED ? &f->cancelled : &f->timed_out, 1);
}

static int spawn_all(keel_app *app, void *userdata)
{
    fixture *f = userdata;
    f->group = keel_task_group_new(app, "svc");
    cr_assert_not_null(f->group);
    for (int i = 0; i < f->n; i++)
        cr_assert_eq(keel_task_group_spawn(f->group, "svc.spawn.sleeper", "sleeper", sleeper, f), 0);
    return 0;
}

static int stop_all(keel_app *app, void *userdata)
{
    fixture *f = userdata;
    while (atomic_load(&f->started) < f->n) /* bounded by the suite's timeout */
        sched_yield();
    f->threads_while_running = test_threads_named("svc-sleeper");
    keel_usec_t t0 = keel_now();
    cr_assert_eq(keel_task_group_join(f->group), (size_t) f->n);
    f->stop_took = keel_now() - t0;
    f->group = keel_task_group_free(f->group);
    return 0;
}

Test(task, sixty_four_tasks_with_long_timers_stop_and_join_at_once)
{
    fixture f = { .n = 64, .wait = 10 * KEEL_USEC_PER_SEC };
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "svc.start", spawn_all, &f, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_DURING, "done", ACT_DONE);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "svc.stop", stop_all, &f, NULL), 0);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(f.threads_while_running, 64);
    cr_assert_eq(atomic_load(&f.cancelled), 64);
    cr_assert_eq(atomic_load(&f.timed_out), 0);
    cr_assert_lt(f.stop_took, KEEL_USEC_PER_SEC / 2, "stop and join took %llu us", (unsigned long long) f.stop_took);
    cr_assert_eq(test_threads_named("svc-sleeper"), 0, "a thread outlived its group");
}

static int spawn_outside_start(keel_app *app, void *userdata)
{
    fixture *f = userdata;
    keel_task_group *g = keel_task_group_new(app, "svc");
    f->spawn_result = keel_task_group_spawn(g, "svc.spawn.x", "x", sleeper, f);
    keel_task_group_free(g);
    return 0;
}

Test(task, spawning_outside_a_start_observer_is_refused)
{
    fixture f = { 0 };
    keel_task_group *g = keel_task_group_new(t.app, "svc");
    cr_assert_eq(keel_task_group_spawn(g, "svc.spawn.x", "x", sleeper, &f), -EPERM);
    keel_task_group_free(g);

    static const keel_event elsewhere[] = { KEEL_EVENT_INIT, KEEL_EVENT_CONFIGURE, KEEL_EVENT_READY, KEEL_EVENT_STOP,
                                            KEEL_EVENT_FINALIZE };
    for (size_t i = 0; i < sizeof elsewhere / sizeof *elsewhere; i++) {
        apptest_done(&t);
        apptest_init(&t);
        f.spawn_result = 0;
        cr_assert_eq(keel_app_observe(t.app, elsewhere[i], KEEL_PHASE_DURING, "spawner", spawn_outside_start, &f, NULL), 0);
        apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
        cr_assert_eq(apptest_run(&t, NULL), 0);
        cr_assert_eq(f.spawn_result, -EPERM, "spawn in %s", keel_event_to_string(elsewhere[i]));
        cr_assert_eq(atomic_load(&f.started), 0);
    }
}

static void namer(keel_task *task, void *userdata)
{
    fixture *f = userdata;
    pthread_getname_np(pthread_self(), f->name, sizeof f->name);
    atomic_fetch_add(&f->started, 1);
}

static void short_waiter(keel_task *task, void *userdata)
{
    fixture *f = userdata;
    atomic_fetch_add(keel_task_wait(task, 1000) == 0 ? &f->timed_out : &f->cancelled, 1);
    atomic_fetch_add(&f->started, 1);
}

static int spawn_named(keel_app *app, void *userdata)
{
    fixture *f = userdata;
    f->group = keel_task_group_new(app, "certificate");
    cr_assert_eq(keel_task_group_spawn(f->group, "certificate.spawn.refresh", "refresh", namer, f), 0);
    cr_assert_eq(keel_task_group_spawn(f->group, "certificate.spawn.waiter", "waiter", short_waiter, f), 0);
    cr_assert_eq(keel_task_group_count(f->group), 2);
    return 0;
}

static int join_named(keel_app *app, void *userdata)
{
    fixture *f = userdata;
    while (atomic_load(&f->started) < 2)
        sched_yield();
    f->group = keel_task_group_free(f->group);
    return 0;
}

Test(task, threads_are_named_after_service_and_role_and_timed_waits_time_out)
{
    fixture f = { 0 };
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "certificate.start", spawn_named, &f, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_DURING, "join", join_named, &f, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(f.name, "certificate-ref"); /* cut to 15 characters */
    cr_assert_eq(atomic_load(&f.timed_out), 1);
}

static int spawn_after_stop(keel_app *app, void *userdata)
{
    fixture *f = userdata;
    keel_task_group *g = keel_task_group_new(app, "svc");
    keel_task_group_stop(g);
    f->spawn_result = keel_task_group_spawn(g, "svc.spawn.x", "x", sleeper, f);
    cr_assert_eq(keel_task_group_join(g), 0);
    keel_task_group_free(g);
    return 0;
}

Test(task, a_stopped_group_spawns_nothing)
{
    fixture f = { 0 };
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "spawner", spawn_after_stop, &f, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(f.spawn_result, -ESHUTDOWN);
}

typedef struct waker {
    keel_task_group *group;
    atomic_int results[3]; /* how many waits returned 0, 1, -ECANCELED */
    atomic_int waiting;
} waker;

static void wake_counter(keel_task *task, void *userdata)
{
    waker *w = userdata;
    for (;;) {
        atomic_fetch_add(&w->waiting, 1);
        int r = keel_task_wait(task, 3600 * KEEL_USEC_PER_SEC);
        atomic_fetch_add(&w->results[r == 0 ? 0 : r == 1 ? 1 : 2], 1);
        if (r < 0)
            return;
    }
}

static int spawn_waker(keel_app *app, void *userdata)
{
    waker *w = userdata;
    w->group = keel_task_group_new(app, "svc");
    cr_assert_eq(keel_task_group_spawn(w->group, "svc.spawn.w", "w", wake_counter, w), 0);
    return 0;
}

static void wait_for_waiting(waker *w, int n)
{
    keel_usec_t deadline = keel_now() + 10 * KEEL_USEC_PER_SEC;
    while (atomic_load(&w->waiting) < n && keel_now() < deadline)
        sched_yield();
    cr_assert_geq(atomic_load(&w->waiting), n);
}

static int wake_then_stop(keel_app *app, void *userdata)
{
    waker *w = userdata;
    wait_for_waiting(w, 1);
    keel_task_group_wake(w->group); /* wakes the hour-long wait: it returns 1 and waits again */
    wait_for_waiting(w, 2);
    cr_assert_eq(atomic_load(&w->results[1]), 1);
    cr_assert_eq(keel_task_group_join(w->group), 1);
    w->group = keel_task_group_free(w->group);
    return 0;
}

Test(task, wake_ends_a_wait_early_without_stopping)
{
    waker w = { 0 };
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "spawner", spawn_waker, &w, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_DURING, "waker", wake_then_stop, &w, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(atomic_load(&w.results[0]), 0, "an hour did not pass");
    cr_assert_eq(atomic_load(&w.results[1]), 1, "one wake, one early return");
    cr_assert_eq(atomic_load(&w.results[2]), 1, "then the stop");
}

Test(task, null_arguments)
{
    cr_assert_null(keel_task_group_new(NULL, "svc"));
    cr_assert_null(keel_task_group_new(t.app, ""));
    cr_assert_null(keel_task_group_free(NULL));
    cr_assert_eq(keel_task_group_spawn(NULL, "p", "r", sleeper, NULL), -EINVAL);
    cr_assert_eq(keel_task_wait(NULL, 0), -EINVAL);
    cr_assert_eq(keel_task_group_join(NULL), 0);
    cr_assert_eq(keel_task_group_count(NULL), 0);
    cr_assert_not(keel_task_stopping(NULL));
    keel_task_group_stop(NULL);
    keel_task_group_wake(NULL);
}
