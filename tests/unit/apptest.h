/* SPDX-License-Identifier: MIT */
#pragma once

/* Drives a keel_app in-process for the machine tests: observers that record their calls into one
 * string, logs captured into a memfd, and a fake NOTIFY_SOCKET. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <keel/keel.h>

typedef struct apptest {
    keel_app *app;
    char calls[8192]; /* "name name name " in call order */
    int log_fd;       /* memfd the logs go to */
    int notify_fd;    /* the fake service manager's socket, or -1 */
    char notify_path[108];
    /* Like systemd, the fake manager reads all the time: a datagram socket queues only 10
     * messages, and sd_notify() blocks when the queue is full. */
    pthread_t notify_reader;
    pthread_mutex_t notify_lock;
    char notified[1 << 14]; /* every datagram received, each followed by '|' */
} apptest;

/* What a recording observer does besides recording its name. */
typedef enum apptest_action {
    ACT_OK,
    ACT_FAIL,   /* fails with keel_app_fail(-EIO, "failed on purpose") */
    ACT_SIGINT, /* sends SIGINT to the process, then succeeds */
    ACT_SIGTERM,
    ACT_SIGHUP,
    ACT_DONE,           /* cancels the run context with COMMAND_DONE */
    ACT_COMMAND_FAILED, /* cancels with COMMAND_FAILED */
    ACT_SIGTERM_WAIT,   /* sends SIGTERM, then fails with what keel_app_wait() of 60 s returns */
    ACT_CANCELLED,      /* fails with -ECANCELED, no signal */
} apptest_action;

/* A fresh app named "test", logs captured. */
void apptest_init(apptest *t);
/* Adds a recording observer named @name for @event/@phase. */
void apptest_observe(apptest *t, keel_event event, keel_phase phase, const char *name, apptest_action action);
/* Binds a fake service manager socket and exports NOTIFY_SOCKET. */
void apptest_notify_socket(apptest *t);
/* Runs `test ARGS...` (NULL-terminated) without compiled-in plugins and returns the exit status. */
int apptest_run(apptest *t, ...);
/* Everything logged so far (static buffer). */
const char *apptest_logs(apptest *t);
/* Every datagram the fake service manager received, each followed by '|' (static buffer). */
const char *apptest_notifications(apptest *t);
void apptest_done(apptest *t);
