/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include <keel/point.h>
#include <keel/task.h>

#include "machine-internal.h"
#include "macro-internal.h"
#include "trace-internal.h"

struct keel_task {
    keel_task_group *group; /* borrowed */
    pthread_t thread;
    char name[16]; /* pthread names are 15 characters at most */
    keel_task_handler_t fn;
    void *userdata;
    uint64_t seen_wakes; /* under the group's lock: a wake between two waits is not lost */
};

struct keel_task_group {
    keel_app *app; /* borrowed */
    char *service;
    pthread_mutex_t lock;
    pthread_cond_t stop_cond; /* CLOCK_MONOTONIC, signalled once when stopping */
    bool stopping;            /* under lock */
    uint64_t wakes;           /* under lock: keel_task_group_wake() calls so far */
    keel_task **tasks;        /* owned; only the main thread adds or joins */
    size_t n_tasks, allocated_tasks;
};

keel_task_group *keel_task_group_new(keel_app *app, const char *service)
{
    keel_assert_return(app && service && *service, NULL);

    keel_task_group *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    *g = (keel_task_group){ .app = app, .lock = PTHREAD_MUTEX_INITIALIZER };
    pthread_condattr_t attr;
    if (!(g->service = strdup(service)) || pthread_condattr_init(&attr) != 0) {
        free(g->service);
        free(g);
        return NULL;
    }
    (void) pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int r = pthread_cond_init(&g->stop_cond, &attr);
    (void) pthread_condattr_destroy(&attr);
    if (r != 0) {
        free(g->service);
        free(g);
        return NULL;
    }
    return g;
}

keel_task_group *keel_task_group_free(keel_task_group *g)
{
    if (!g)
        return NULL;
    (void) keel_task_group_join(g);
    free(g->tasks);
    (void) pthread_cond_destroy(&g->stop_cond);
    (void) pthread_mutex_destroy(&g->lock);
    free(g->service);
    free(g);
    return NULL;
}

static void *task_main(void *p)
{
    keel_task *t = p;
    (void) pthread_setname_np(pthread_self(), t->name);
    /* From the thread itself, so a trace shows which threads lived and that each one ended. */
    keel__trace_thread_name(t->name);
    keel__trace_instant("task", t->name, "started");
    t->fn(t, t->userdata);
    keel__trace_instant("task", t->name, "exited");
    return NULL;
}

static bool group_stopping(keel_task_group *g)
{
    (void) pthread_mutex_lock(&g->lock);
    bool s = g->stopping;
    (void) pthread_mutex_unlock(&g->lock);
    return s;
}

static int group_add(keel_task_group *g, keel_task *t)
{
    int r = GROW(g->tasks, g->allocated_tasks, g->n_tasks + 1);
    if (r < 0)
        return r;
    g->tasks[g->n_tasks++] = t;
    return 0;
}

int keel_task_group_spawn(keel_task_group *g, const char *point, const char *role, keel_task_handler_t fn, void *userdata)
{
    keel_assert_return(g && point && role && fn, -EINVAL);
    if (!keel__app_in_start(g->app))
        return keel_log_service_errno(g->service, KEEL_LOG_DEBUG, EPERM, "Refusing to spawn %s outside a start observer", point);
    if (group_stopping(g))
        return -ESHUTDOWN;
    int r = keel_point_before(point);
    if (r < 0)
        return r;

    keel_task *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    *t = (keel_task){ .group = g, .fn = fn, .userdata = userdata };
    (void) pthread_mutex_lock(&g->lock);
    t->seen_wakes = g->wakes;
    (void) pthread_mutex_unlock(&g->lock);
    (void) snprintf(t->name, sizeof t->name, "%s-%s", g->service, role);
    if ((r = group_add(g, t)) < 0) {
        free(t);
        return r;
    }
    r = pthread_create(&t->thread, NULL, task_main, t);
    if (r != 0) {
        g->n_tasks--;
        free(t);
        return -r;
    }
    return 0;
}

void keel_task_group_stop(keel_task_group *g)
{
    if (!g)
        return;
    (void) pthread_mutex_lock(&g->lock);
    g->stopping = true;
    (void) pthread_cond_broadcast(&g->stop_cond);
    (void) pthread_mutex_unlock(&g->lock);
}

size_t keel_task_group_join(keel_task_group *g)
{
    if (!g)
        return 0;
    keel_task_group_stop(g);
    size_t n = g->n_tasks;
    for (size_t i = 0; i < n; i++) {
        (void) pthread_join(g->tasks[i]->thread, NULL);
        keel__trace_instant("task", g->tasks[i]->name, "joined");
        free(g->tasks[i]);
    }
    g->n_tasks = 0;
    return n;
}

size_t keel_task_group_count(keel_task_group *g)
{
    return g ? g->n_tasks : 0;
}

static struct timespec deadline_after(keel_usec_t usec)
{
    struct timespec ts;
    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    keel_usec_t ns = (keel_usec_t) ts.tv_nsec + (usec % KEEL_USEC_PER_SEC) * 1000;
    ts.tv_sec += (time_t) (usec / KEEL_USEC_PER_SEC + ns / 1000000000ULL);
    ts.tv_nsec = (long) (ns % 1000000000ULL);
    return ts;
}

int keel_task_wait(keel_task *t, keel_usec_t usec)
{
    keel_assert_return(t, -EINVAL);
    keel_task_group *g = t->group;
    int r = 0;

    (void) pthread_mutex_lock(&g->lock);
    if (usec == KEEL_USEC_INFINITY)
        while (!g->stopping && g->wakes == t->seen_wakes)
            (void) pthread_cond_wait(&g->stop_cond, &g->lock);
    else {
        struct timespec until = deadline_after(usec);
        while (!g->stopping && g->wakes == t->seen_wakes && r != ETIMEDOUT)
            r = pthread_cond_timedwait(&g->stop_cond, &g->lock, &until);
    }
    bool stopping = g->stopping, woken = g->wakes != t->seen_wakes;
    t->seen_wakes = g->wakes;
    (void) pthread_mutex_unlock(&g->lock);
    return stopping ? -ECANCELED : woken ? 1 : 0;
}

void keel_task_group_wake(keel_task_group *g)
{
    if (!g)
        return;
    (void) pthread_mutex_lock(&g->lock);
    g->wakes++;
    (void) pthread_cond_broadcast(&g->stop_cond);
    (void) pthread_mutex_unlock(&g->lock);
}

bool keel_task_stopping(keel_task *t)
{
    return t && group_stopping(t->group);
}

const char *keel_task_name(const keel_task *t)
{
    return t ? t->name : NULL;
}
