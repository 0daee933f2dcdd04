/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "apptest.h"
#include "helpers.h"
#include "log-internal.h"

typedef struct recorder {
    apptest *t;
    apptest_action action;
    char name[64];
} recorder;

static recorder recorders[256];
static size_t n_recorders;

void apptest_init(apptest *t)
{
    *t = (apptest){ .notify_fd = -1 };
    t->app = keel_app_new("test");
    if (!t->app)
        abort();
    t->log_fd = memfd_create("logs", MFD_CLOEXEC);
    keel__log_set_fd(t->log_fd);
    keel_log_set_level(KEEL_LOG_DEBUG);
    n_recorders = 0;
}

static int record(keel_app *app, void *userdata)
{
    recorder *r = userdata;
    strncat(r->t->calls, r->name, sizeof r->t->calls - strlen(r->t->calls) - 2);
    strcat(r->t->calls, " ");
    switch (r->action) {
    case ACT_FAIL:
        return keel_app_fail(app, -EIO, "failed on purpose");
    case ACT_SIGINT:
        kill(getpid(), SIGINT);
        return 0;
    case ACT_SIGTERM:
        kill(getpid(), SIGTERM);
        return 0;
    case ACT_SIGHUP:
        kill(getpid(), SIGHUP);
        return 0;
    case ACT_DONE:
        keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
        return 0;
    case ACT_COMMAND_FAILED:
        keel_app_cancel(app, KEEL_CAUSE_COMMAND_FAILED, "command failed");
        return 0;
    case ACT_SIGTERM_WAIT: {
        kill(getpid(), SIGTERM);
        int w = keel_app_wait(app, 60 * KEEL_USEC_PER_SEC);
        return w < 0 ? keel_app_fail(app, w, "gave up waiting") : 0;
    }
    case ACT_CANCELLED:
        return keel_app_fail(app, -ECANCELED, "cancelled on purpose");
    default:
        return 0;
    }
}

void apptest_observe(apptest *t, keel_event event, keel_phase phase, const char *name, apptest_action action)
{
    recorder *r = &recorders[n_recorders++];
    *r = (recorder){ .t = t, .action = action };
    snprintf(r->name, sizeof r->name, "%s", name);
    int ret = event == KEEL_EVENT_COMMAND ? keel_app_observe_command(t->app, "serve", name, record, r)
                                          : keel_app_observe(t->app, event, phase, name, record, r, NULL);
    if (ret < 0)
        abort();
}

static void *read_notifications(void *p)
{
    apptest *t = p;
    for (;;) {
        char d[1024];
        ssize_t n = recv(t->notify_fd, d, sizeof d - 1, 0);
        if (n <= 0) /* shutdown() in apptest_done() ends the loop */
            return NULL;
        d[n] = 0;
        pthread_mutex_lock(&t->notify_lock);
        size_t len = strlen(t->notified);
        snprintf(t->notified + len, sizeof t->notified - len, "%s|", d);
        pthread_mutex_unlock(&t->notify_lock);
    }
}

void apptest_notify_socket(apptest *t)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(t->notify_path, sizeof t->notify_path, "%s/notify-%d", test_tmpdir(), getpid());
    unlink(t->notify_path);
    strcpy(sa.sun_path, t->notify_path);
    t->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (t->notify_fd < 0 || bind(t->notify_fd, (struct sockaddr *) &sa, sizeof sa) < 0)
        abort();
    pthread_mutex_init(&t->notify_lock, NULL);
    /* The reader must not take the app's signals: created with every signal blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&t->notify_reader, NULL, read_notifications, t) != 0)
        abort();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    setenv("NOTIFY_SOCKET", t->notify_path, 1);
}

int apptest_run(apptest *t, ...)
{
    char *argv[32] = { (char *) "test" };
    int argc = 1;
    va_list ap;
    va_start(ap, t);
    for (char *a; argc < 31 && (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    return keel_app_run_with(t->app, argc, argv, &(keel_run_options){ .bare = true });
}

const char *apptest_logs(apptest *t)
{
    static char buf[1 << 16];
    ssize_t n = pread(t->log_fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

const char *apptest_notifications(apptest *t)
{
    static char buf[sizeof t->notified];
    /* sd_notify() returns once the datagram is queued; give the reader a moment to take it. */
    for (int i = 0; i < 50; i++) {
        int pending = 0;
        if (ioctl(t->notify_fd, FIONREAD, &pending) == 0 && pending == 0)
            break;
        usleep(1000);
    }
    usleep(2000);
    pthread_mutex_lock(&t->notify_lock);
    memcpy(buf, t->notified, sizeof buf);
    pthread_mutex_unlock(&t->notify_lock);
    return buf;
}

void apptest_done(apptest *t)
{
    t->app = keel_app_free(t->app);
    keel__log_set_fd(-1);
    close(t->log_fd);
    if (t->notify_fd >= 0) {
        shutdown(t->notify_fd, SHUT_RDWR);
        pthread_join(t->notify_reader, NULL);
        pthread_mutex_destroy(&t->notify_lock);
        close(t->notify_fd);
        unlink(t->notify_path);
        unsetenv("NOTIFY_SOCKET");
    }
}
