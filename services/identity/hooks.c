/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <keel/fileio.h>
#include <keel/util.h>

#include "hooks.h"

#define BACKOFF_MIN (1 * KEEL_USEC_PER_SEC)
#define BACKOFF_MAX (300 * KEEL_USEC_PER_SEC)
#define OUTPUT_MAX  2048 /* of a hook's output, logged; the rest is read and dropped */

extern char **environ;

struct hooks {
    keel_app *app;
    const char *service; /* borrowed: a string literal */
    char prefix[32];
    char **argv; /* owned */
    int signal;
    char *pidfile; /* owned */
    keel_usec_t timeout;
    char point[64]; /* "<service>.spawn.hooks" */
    keel_task_group *tasks;
    atomic_bool pending;
    keel_counter *ok, *failed;
};

static int parse_signal(const char *name)
{
    if (!*name)
        return 0;
    const char *bare = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
    static const struct {
        const char *name;
        int number;
    } known[] = { { "HUP", SIGHUP }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },  { "TERM", SIGTERM },
                  { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "WINCH", SIGWINCH } };
    for (size_t i = 0; i < ELEMENTSOF(known); i++)
        if (streq(bare, known[i].name))
            return known[i].number;
    return -EINVAL;
}

static int check(const char *prefix, const hook_config *c, int *ret_signal, char *error, size_t size)
{
    int sig = parse_signal(c->signal);
    if (sig < 0)
        return snprintf(error, size, "%s_signal '%s' is not one of HUP, USR1, USR2, TERM, INT, QUIT, WINCH", prefix, c->signal),
               -EINVAL;
    if (!sig != !*c->pidfile)
        return snprintf(error, size, "set both %s_signal and %s_pidfile, or neither", prefix, prefix), -EINVAL;
    if (c->exec && c->exec[0] && !*c->exec[0])
        return snprintf(error, size, "%s_exec: the program to run is empty", prefix), -EINVAL;
    *ret_signal = sig;
    return 0;
}

static int add_counters(hooks *h)
{
    keel_metrics *m = keel_app_metrics(h->app);
    const char *help = "Runs of the hooks that tell a program its credential files changed, by target and result";
    int r = keel_metrics_counter(m, "keel_hooks_total", help, (const char *const[]){ "target", h->prefix, "result", "ok", NULL },
                                 &h->ok);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_hooks_total", help, (const char *const[]){ "target", h->prefix, "result", "error", NULL },
                                 &h->failed);
    return r;
}

int hooks_new(keel_app *app, const char *service, const char *prefix, const hook_config *c, hooks **ret, char *error, size_t size)
{
    int sig = 0, r = check(prefix, c, &sig, error, size);
    *ret = NULL;
    if (r < 0 || ((!c->exec || !c->exec[0]) && sig == 0))
        return r;
    _cleanup_free_ hooks *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    *h = (hooks){ .app = app, .service = service, .signal = sig, .timeout = c->timeout };
    (void) snprintf(h->prefix, sizeof h->prefix, "%s", prefix);
    (void) snprintf(h->point, sizeof h->point, "%s.spawn.hooks", service);
    if ((c->exec && c->exec[0] && !(h->argv = keel_strv_copy(c->exec))) || !(h->pidfile = strdup(c->pidfile)) ||
        !(h->tasks = keel_task_group_new(app, service)) || add_counters(h) < 0) {
        h->argv = keel_strv_free(h->argv);
        free(h->pidfile);
        h->tasks = keel_task_group_free(h->tasks);
        return -ENOMEM;
    }
    *ret = TAKE_PTR(h);
    return 0;
}

/* ---- one run ------------------------------------------------------------------------------------ */

static void log_output(const hooks *h, const char *out, size_t n, keel_log_level level)
{
    for (const char *p = out, *end = out + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);
        if (len > 0)
            keel_log_service(h->service, level, "%s hook %s: %.*s", h->prefix, h->argv[0], (int) len, p);
        p += len + 1;
    }
}

/* The child's stdout and stderr into @pipe_w, stdin from /dev/null, signals unblocked. */
static int spawn(const hooks *h, int pipe_w, pid_t *ret)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dfl;
    (void) sigemptyset(&none);
    (void) sigfillset(&dfl);
    (void) posix_spawn_file_actions_init(&fa);
    (void) posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    (void) posix_spawn_file_actions_adddup2(&fa, pipe_w, 1);
    (void) posix_spawn_file_actions_adddup2(&fa, pipe_w, 2);
    (void) posix_spawnattr_init(&attr);
    (void) posix_spawnattr_setsigmask(&attr, &none);
    (void) posix_spawnattr_setsigdefault(&attr, &dfl);
    (void) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
    int r = -posix_spawnp(ret, h->argv[0], &fa, &attr, h->argv, environ);
    (void) posix_spawn_file_actions_destroy(&fa);
    (void) posix_spawnattr_destroy(&attr);
    return r;
}

/* Whether the child exited, without reaping it (collect()'s waitpid() does): its pidfd polled
 * readable, or, on a kernel without pidfds (before 5.3), waitid()'s WNOWAIT says so. */
static bool child_exited(int pidfd, short revents, pid_t pid)
{
    if (pidfd >= 0)
        return revents != 0;
    siginfo_t si = { 0 };
    return waitid(P_PID, (id_t) pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Reads the child's output until it exits, the timeout passes or the task is stopped: then the
 * child is killed. Returns the wait status, or a negative errno. */
static int collect(const hooks *h, keel_task *t, pid_t pid, int out_r, char *out, size_t *n)
{
    int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
    keel_usec_t deadline = keel_now() + h->timeout;
    bool exited = false, eof = false;
    int r = 0;
    while (!(exited && eof)) {
        keel_usec_t now = keel_now();
        if (now >= deadline || keel_task_stopping(t)) {
            r = now >= deadline ? -ETIMEDOUT : -ECANCELED;
            (void) kill(pid, SIGKILL);
            break;
        }
        struct pollfd p[2] = { { .fd = out_r, .events = eof ? 0 : POLLIN }, { .fd = pidfd, .events = POLLIN } };
        int slice = pidfd >= 0 ? 100 : 20; /* without a pidfd, the exit is looked for this often */
        if (poll(p, 2, (int) KEEL_MIN((deadline - now) / 1000 + 1, (keel_usec_t) slice)) < 0 && errno != EINTR)
            p[0].revents = p[1].revents = 0;
        char buf[512];
        ssize_t k = p[0].revents ? read(out_r, buf, sizeof buf) : -1;
        if (k > 0 && *n < OUTPUT_MAX) {
            size_t take = KEEL_MIN((size_t) k, OUTPUT_MAX - *n);
            memcpy(out + *n, buf, take);
            *n += take;
        }
        eof = eof || k == 0 || (k < 0 && p[0].revents & (POLLHUP | POLLERR));
        /* A grandchild may hold the pipe: once the child exited, its own output has been read. */
        exited = exited || child_exited(pidfd, p[1].revents, pid);
        eof = eof || (exited && k <= 0);
    }
    if (pidfd >= 0)
        (void) close(pidfd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return r < 0 ? r : status;
}

static int run_exec(hooks *h, keel_task *t)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid;
    int r = spawn(h, fds[1], &pid);
    (void) close(fds[1]);
    if (r < 0) {
        (void) close(fds[0]);
        keel_log_service_errno(h->service, KEEL_LOG_WARNING, r, "Failed to run the %s hook %s: %m", h->prefix, h->argv[0]);
        return r;
    }
    char out[OUTPUT_MAX];
    size_t n = 0;
    int status = collect(h, t, pid, fds[0], out, &n);
    (void) close(fds[0]);
    bool ok = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    log_output(h, out, n, ok ? KEEL_LOG_INFO : KEEL_LOG_WARNING);
    char d[32];
    if (status == -ETIMEDOUT)
        keel_log_service(h->service, KEEL_LOG_WARNING, "The %s hook %s ran past %s and was killed", h->prefix, h->argv[0],
                         keel_format_duration(h->timeout, d, sizeof d));
    else if (status >= 0 && WIFSIGNALED(status))
        keel_log_service(h->service, KEEL_LOG_WARNING, "The %s hook %s was killed by signal %d", h->prefix, h->argv[0],
                         WTERMSIG(status));
    else if (status >= 0)
        keel_log_service(h->service, ok ? KEEL_LOG_INFO : KEEL_LOG_WARNING, "Ran the %s hook %s: exit status %d", h->prefix,
                         h->argv[0], WEXITSTATUS(status));
    return ok ? 0 : status < 0 ? status : -EPROTO;
}

static int run_signal(hooks *h)
{
    char *text = NULL;
    size_t size = 0;
    int r = keel_file_read(h->pidfile, 64, &text, &size, NULL);
    long pid = r >= 0 ? strtol(text, NULL, 10) : 0;
    free(text);
    if (r >= 0 && pid <= 1)
        r = -EBADMSG;
    if (r >= 0 && kill((pid_t) pid, h->signal) < 0)
        r = -errno;
    if (r < 0)
        keel_log_service_errno(h->service, KEEL_LOG_WARNING, r, "Failed to signal the PID in '%s' (%s hook): %m", h->pidfile,
                               h->prefix);
    else
        keel_log_service(h->service, KEEL_LOG_INFO, "Sent %s to PID %ld of '%s' (%s hook)", strsignal(h->signal), pid, h->pidfile,
                         h->prefix);
    return r;
}

static int run_hooks(hooks *h, keel_task *t)
{
    int r = h->argv ? run_exec(h, t) : 0;
    int k = r >= 0 && h->signal ? run_signal(h) : 0;
    r = r < 0 ? r : k;
    keel_counter_add(r < 0 ? h->failed : h->ok, 1);
    return r;
}

/* ---- the runner --------------------------------------------------------------------------------- */

static void hooks_task(keel_task *t, void *userdata)
{
    hooks *h = userdata;
    keel_usec_t backoff = 0;
    for (int w = atomic_load(&h->pending) ? 1 : 0;; w = keel_task_wait(t, backoff ? backoff : KEEL_USEC_INFINITY)) {
        if (w < 0)
            return;
        bool changed = atomic_exchange(&h->pending, false);
        if (!changed && !(w == 0 && backoff))
            continue;
        if (run_hooks(h, t) >= 0) {
            backoff = 0;
            continue;
        }
        backoff = backoff ? KEEL_MIN(backoff * 2, BACKOFF_MAX) : BACKOFF_MIN;
        char d[32];
        keel_log_service(h->service, KEEL_LOG_WARNING, "Will run the %s hooks again in %s", h->prefix,
                         keel_format_duration(backoff, d, sizeof d));
    }
}

int hooks_start(hooks *h)
{
    return h ? keel_task_group_spawn(h->tasks, h->point, "hooks", hooks_task, h) : 0;
}

void hooks_notify(hooks *h)
{
    if (!h)
        return;
    atomic_store(&h->pending, true);
    keel_task_group_wake(h->tasks);
}

hooks *hooks_free(hooks *h)
{
    if (!h)
        return NULL;
    h->tasks = keel_task_group_free(h->tasks);
    h->argv = keel_strv_free(h->argv);
    free(h->pidfile);
    free(h);
    return NULL;
}
