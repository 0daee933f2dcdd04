/* SPDX-License-Identifier: MIT */
/*
 * --daemon: detach for use without a service manager (double fork, new session, stdio to
 * /dev/null, umask 022, cwd /). The process that was started waits on a pipe and exits only
 * when the daemon is ready (0) or has failed (its exit status, with its error on stderr), so a shell
 * script or an init script knows whether the service runs — the pipe stands in for sd_notify.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "app-internal.h"
#include "machine-internal.h"
#include "config-internal.h"
#include "log-internal.h"
#include "macro-internal.h"

/* What the daemon writes on the pipe: "R\n" once ready, or "E<status> <message>\n". */
static int wait_for_daemon(keel_app *app, int fd, pid_t first)
{
    char buf[1024];
    size_t n = 0;
    for (ssize_t k; n < sizeof buf - 1 && (k = read(fd, buf + n, sizeof buf - 1 - n)) != 0;) {
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            break;
        n += (size_t) k;
        if (memchr(buf, '\n', n))
            break;
    }
    buf[n] = 0;
    safe_close(fd);
    (void) waitpid(first, NULL, 0); /* the middle process exits as soon as it forked the daemon */
    if (buf[0] == 'R')
        return KEEL_EXIT_OK;
    buf[strcspn(buf, "\n")] = 0;
    int status;
    char *why = strchr(buf, ' ');
    if (buf[0] != 'E' || !why || sscanf(buf + 1, "%d", &status) != 1 || status <= 0 || status > 255) {
        fprintf(stderr, "%s: the daemon exited before it was ready\n", keel_app_name(app));
        return KEEL_EXIT_FAILURE;
    }
    /* The daemon's own status: 1 for a failed start, 78 for a bad configuration, ... */
    fprintf(stderr, "%s: the daemon failed to start: %s\n", keel_app_name(app), why + 1);
    return status;
}

static int detach_stdio(void)
{
    _cleanup_close_ int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return -errno;
    for (int fd = 0; fd <= 2; fd++)
        if (dup2(null, fd) < 0)
            return -errno;
    return 0;
}

/* In the daemon: sd-event refuses to be used from another process than its creator, so the
 * loop and the signal sources are made again; so is the stop descriptor, whose epoll set waits on
 * the parent's signal queue. */
static int renew_loop(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    for (size_t i = 0; i < ELEMENTSOF(m->signals); i++) /* not disabled: that would be the parent's */
        m->signals[i] = sd_event_source_unref(m->signals[i]);
    keel__signals_done(app);
    int r = keel__app_renew_event_loop(app);
    if (r < 0)
        return r;
    keel__log_detached();
    return keel__signals_setup(app);
}

/* The process that was started waits for the daemon; a signal (^C) ends the wait, as it would end
 * a start in the foreground, and leaves the daemon to go on or fail on its own. */
static void unblock_signals(void)
{
    sigset_t none;
    (void) sigemptyset(&none);
    (void) sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the first child, with @fd the pipe's writing end: returns in the daemon, or exits. */
static void become_daemon(keel_app *app, int fd)
{
    /* A new session without a controlling terminal, then a second fork so the daemon is not a
     * session leader and can never acquire one again. */
    if (setsid() < 0)
        _exit(KEEL_EXIT_FAILURE);
    pid_t pid = fork();
    if (pid != 0)
        _exit(pid < 0 ? KEEL_EXIT_FAILURE : KEEL_EXIT_OK);
    umask(022);
    int r = chdir("/") < 0 ? -errno : detach_stdio();
    if (r >= 0)
        r = renew_loop(app);
    if (r < 0) {
        dprintf(fd, "E%d Failed to detach: %s\n", KEEL_EXIT_FAILURE, strerror(-r));
        _exit(KEEL_EXIT_FAILURE);
    }
    keel__app_machine(app)->daemon_fd = fd;
}

int keel__daemonize(keel_app *app, int *ret_status)
{
    int fds[2];
    int r = keel__cli_make_paths_absolute(app);
    if (r < 0)
        return r;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        r = -errno;
        safe_close(fds[0]);
        safe_close(fds[1]);
        return r;
    }
    if (pid > 0) {
        safe_close(fds[1]);
        unblock_signals();
        *ret_status = wait_for_daemon(app, fds[0], pid);
        return 1;
    }
    safe_close(fds[0]);
    become_daemon(app, fds[1]);
    return 0;
}

void keel__daemon_ready(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    if (m->daemon_fd < 0)
        return;
    ssize_t _unused_ n = write(m->daemon_fd, "R\n", 2);
    m->daemon_fd = safe_close(m->daemon_fd);
}

void keel__daemon_fail(keel_app *app, int status, const char *format, ...)
{
    keel_machine *m = keel__app_machine(app);
    char why[1000];
    va_list ap;
    if (m->daemon_fd < 0)
        return;
    va_start(ap, format);
    (void) vsnprintf(why, sizeof why, format, ap);
    va_end(ap);
    why[strcspn(why, "\n")] = '\0'; /* one line on the pipe */
    dprintf(m->daemon_fd, "E%d %s\n", status, why);
    m->daemon_fd = safe_close(m->daemon_fd);
}

void keel__daemon_exit(keel_app *app, int status)
{
    keel_machine *m = keel__app_machine(app);
    keel__daemon_fail(app, status, "%s",
                      m->cause_message ? m->cause_message
                      : status == 0    ? "stopped before it was ready"
                                       : "failed");
}
