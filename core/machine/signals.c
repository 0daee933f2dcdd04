/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include "app-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"
#include "trace-internal.h"

/* SIGQUIT stops as SIGTERM does (nginx's graceful stop; the default would dump core without a
 * drain); SIGUSR1 and SIGUSR2 mean nothing to keel and are ignored, where their default would kill
 * it (a log rotation script that sends one to every daemon). The first four are the ones that
 * count as pending for a start (keel__signals_pending()). */
static const int app_signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
#define PENDING_SIGNALS 4
#define STOP_SIGNALS    3 /* the first three stop the app: keel_app_stop_requested() */
_Static_assert(ELEMENTSOF(app_signals) == ELEMENTSOF(((keel_machine *) 0)->signals), "one event source per signal");

/* An ignored signal is logged at most once a second: 2,000 SIGHUPs during a drain made 2,000
 * lines. The next line says how many went unlogged. */
#define IGNORED_EVERY KEEL_USEC_PER_SEC

/* Go's names, which the seed logs use: "Received signal: interrupt". */
static const char *signal_description(int sig)
{
    switch (sig) {
    case SIGINT:
        return "interrupt";
    case SIGTERM:
        return "terminated";
    case SIGHUP:
        return "hangup";
    case SIGQUIT:
        return "quit";
    case SIGUSR1:
        return "user defined signal 1";
    case SIGUSR2:
        return "user defined signal 2";
    default:
        return strsignal(sig);
    }
}

static void log_ignored(keel_app *app, const char *name, const char *when)
{
    keel_machine *m = keel__app_machine(app);
    keel_usec_t now = keel_now();
    if (m->ignored_logged && now - m->ignored_logged < IGNORED_EVERY) {
        m->ignored_unlogged++;
        return;
    }
    if (m->ignored_unlogged > 0)
        keel_log_info("Received signal: %s%s, ignoring (and %u more signals ignored in the last second)", name, when,
                      m->ignored_unlogged);
    else
        keel_log_info("Received signal: %s%s, ignoring", name, when);
    m->ignored_logged = now;
    m->ignored_unlogged = 0;
}

static void on_hangup(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    if (m->state == KEEL_STATE_RUNNING || m->state == KEEL_STATE_REFRESH) {
        keel_log_info("Received signal: hangup, reloading");
        m->reload_pending = true;
    } else
        log_ignored(app, "hangup", m->state < KEEL_STATE_RUNNING ? " before ready" : " during shutdown");
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    keel_app *app = userdata;
    int sig = (int) si->ssi_signo;

    char name[16];
    (void) snprintf(name, sizeof name, "SIG%s", sigabbrev_np(sig));
    keel__trace_instant("signal", name, NULL);
    if (sig == SIGHUP) {
        on_hangup(app);
        return 0;
    }
    if (sig == SIGUSR1 || sig == SIGUSR2) {
        log_ignored(app, signal_description(sig), "");
        return 0;
    }
    keel_log_info("Received signal: %s", signal_description(sig));
    keel_machine *m = keel__app_machine(app);
    /* The signal is no longer pending: the event descriptor keeps the request visible to waits. */
    if (m->stop.event_fd >= 0)
        (void) eventfd_write(m->stop.event_fd, 1);
    (void) keel_app_cancel(app, KEEL_CAUSE_SIGNAL, "received signal: %s", signal_description(sig));
    return 0;
}

static int epoll_add(int epfd, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* One descriptor that turns readable at a stop request and stays so: a signalfd that nobody reads
 * sees a stop signal while it is pending (in start, the loop does not run), and an eventfd sees
 * it once the loop has taken it. A signalfd reports the signals pending for the thread that polls
 * it and for the process; kill(2) and systemd send to the process, so any thread sees them. */
static int stop_setup(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    if (m->stop.fd >= 0)
        return 0;
    sigset_t set;
    (void) sigemptyset(&set);
    for (size_t i = 0; i < STOP_SIGNALS; i++)
        (void) sigaddset(&set, app_signals[i]);
    _cleanup_close_ int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        return -errno;
    _cleanup_close_ int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0)
        return -errno;
    _cleanup_close_ int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -errno;
    int r = epoll_add(epfd, sfd);
    if (r >= 0)
        r = epoll_add(epfd, efd);
    if (r < 0)
        return r;
    m->stop = (keel_stop){ .fd = TAKE_FD(epfd), .signal_fd = TAKE_FD(sfd), .event_fd = TAKE_FD(efd) };
    return 0;
}

void keel__signals_done(keel_app *app)
{
    keel_machine *m = keel__app_machine(app);
    for (size_t i = 0; i < ELEMENTSOF(m->signals); i++)
        m->signals[i] = sd_event_source_disable_unref(m->signals[i]);
    m->stop.fd = safe_close(m->stop.fd);
    m->stop.signal_fd = safe_close(m->stop.signal_fd);
    m->stop.event_fd = safe_close(m->stop.event_fd);
}

int keel__signals_setup(keel_app *app)
{
    sigset_t set;
    (void) sigemptyset(&set);
    for (size_t i = 0; i < ELEMENTSOF(app_signals); i++)
        (void) sigaddset(&set, app_signals[i]);
    /* Before any thread exists, so every thread inherits the mask and the signals only ever
     * reach the main thread's signalfd. */
    int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (r != 0)
        return -r;
    /* A write past RLIMIT_FSIZE fails with EFBIG, to be reported like any failed write, instead of
     * killing the daemon half-way through it (PostgreSQL does the same). */
    (void) signal(SIGXFSZ, SIG_IGN);
    /* A write to a peer that went away fails with EPIPE instead of killing the daemon, as under
     * systemd's IgnoreSIGPIPE=yes: OpenSSL and libcurl write to sockets with write(2). */
    (void) signal(SIGPIPE, SIG_IGN);

    if ((r = stop_setup(app)) < 0)
        return r;
    keel_machine *m = keel__app_machine(app);
    for (size_t i = 0; i < ELEMENTSOF(app_signals); i++) {
        if (m->signals[i])
            continue;
        r = sd_event_add_signal(keel_app_get_event_loop(app), &m->signals[i], app_signals[i], on_signal, app);
        if (r < 0)
            return r;
        (void) sd_event_source_set_description(m->signals[i], sigabbrev_np(app_signals[i]));
    }
    return 0;
}

bool keel__signals_pending(void)
{
    sigset_t pending;
    if (sigpending(&pending) < 0)
        return false;
    for (size_t i = 0; i < PENDING_SIGNALS; i++)
        if (sigismember(&pending, app_signals[i]) == 1)
            return true;
    return false;
}

/* Whether @fd polls readable within @timeout_ms (-1: no limit). Negative errno from poll(2). */
static int readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n = poll(&p, 1, timeout_ms);
    return n < 0 ? -errno : n > 0;
}

bool keel_app_stop_requested(const keel_app *app)
{
    keel_assert_return(app, false);
    int fd = keel__app_machine_const(app)->stop.fd;
    return fd >= 0 && readable(fd, 0) > 0;
}

int keel_app_wait(keel_app *app, keel_usec_t usec)
{
    keel_assert_return(app, -EINVAL);
    int fd = keel__app_machine(app)->stop.fd;
    keel_assert_return(fd >= 0, -ENOTCONN);

    keel_usec_t now = keel_now();
    keel_usec_t deadline = usec >= KEEL_USEC_INFINITY - now ? KEEL_USEC_INFINITY : now + usec;
    for (;;) { /* one round as a rule; more only after EINTR or past INT_MAX ms */
        int ms = -1;
        if (deadline != KEEL_USEC_INFINITY) {
            now = keel_now();
            keel_usec_t left = deadline > now ? deadline - now : 0;
            /* Rounded up, so that the wait never ends before the deadline. */
            ms = (int) KEEL_MIN((left + KEEL_USEC_PER_MSEC - 1) / KEEL_USEC_PER_MSEC, (keel_usec_t) INT_MAX);
        }
        int r = readable(fd, ms);
        if (r > 0)
            return -ECANCELED;
        if (r < 0 && r != -EINTR)
            return r;
        if (r == 0 && ms >= 0 && keel_now() >= deadline)
            return 0;
    }
}

int keel_app_stop_fd(const keel_app *app)
{
    keel_assert_return(app, -EINVAL);
    int fd = keel__app_machine_const(app)->stop.fd;
    return fd >= 0 ? fd : -ENOTCONN;
}
