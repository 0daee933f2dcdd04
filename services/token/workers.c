/* SPDX-License-Identifier: MIT */
/* A queue of jobs and the tasks that run them (workers.h): FIFO, under one lock; a push wakes the
 * group, a worker with nothing to do sleeps in keel_task_wait(), so a stop reaches it at once. */
#include <pthread.h>
#include <stdlib.h>

#include <keel/task.h>

#include "workers.h"

typedef struct job {
    struct job *next;
    void *data;
} job;

struct token_workers {
    keel_task_group *tasks;
    token_job_fn run, cancel;
    void *userdata;
    pthread_mutex_t lock;
    job *head, *tail;
};

static void *pop(token_workers *w)
{
    (void) pthread_mutex_lock(&w->lock);
    job *j = w->head;
    if (j && !(w->head = j->next))
        w->tail = NULL;
    (void) pthread_mutex_unlock(&w->lock);
    void *data = j ? j->data : NULL;
    free(j);
    return data;
}

static void worker(keel_task *t, void *userdata)
{
    token_workers *w = userdata;
    for (;;) {
        void *data = pop(w);
        if (data) {
            w->run(data, w->userdata);
            continue;
        }
        if (keel_task_wait(t, KEEL_USEC_INFINITY) < 0)
            return;
    }
}

int token_workers_start(keel_app *app, unsigned n, token_job_fn run, token_job_fn cancel, void *userdata, token_workers **ret)
{
    token_workers *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    *w = (token_workers){ .run = run, .cancel = cancel, .userdata = userdata };
    (void) pthread_mutex_init(&w->lock, NULL);
    *ret = w;
    if (!(w->tasks = keel_task_group_new(app, "token")))
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        int r = keel_task_group_spawn(w->tasks, "token.spawn.issuer", "issuer", worker, w);
        if (r < 0)
            return r;
    }
    return 0;
}

int token_workers_push(token_workers *w, void *data)
{
    job *j = malloc(sizeof *j);
    if (!j)
        return -ENOMEM;
    *j = (job){ .data = data };
    (void) pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    (void) pthread_mutex_unlock(&w->lock);
    keel_task_group_wake(w->tasks);
    return 0;
}

token_workers *token_workers_free(token_workers *w)
{
    if (!w)
        return NULL;
    w->tasks = keel_task_group_free(w->tasks); /* stops and joins them */
    for (void *data; (data = pop(w));)
        w->cancel(data, w->userdata);
    (void) pthread_mutex_destroy(&w->lock);
    free(w);
    return NULL;
}
