/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "app-internal.h"
#include "macro.h"
#include "trace.h"

/* SIGQUIT stops as SIGTERM does (nginx's graceful stop; the default would dump core without a
 * drain); SIGUSR1 and SIGUSR2 mean nothing to keel and are ignored, where their default would kill
 * it (a log rotation script that sends one to every daemon). The first four are the ones that
 * count as pending for a start (keel__signals_pending()). */
static const int app_signals[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
#define PENDING_SIGNALS 4
_Static_assert(ELEMENTSOF(app_signals) == ELEMENTSOF(((keel_app *) 0)->signals), "one event source per signal");

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
    keel_usec_t now = keel_now();
    if (app->ignored_logged && now - app->ignored_logged < IGNORED_EVERY) {
        app->ignored_unlogged++;
        return;
    }
    if (app->ignored_unlogged > 0)
        keel_log_info("Received signal: %s%s, ignoring (and %u more signals ignored in the last second)", name, when,
                      app->ignored_unlogged);
    else
        keel_log_info("Received signal: %s%s, ignoring", name, when);
    app->ignored_logged = now;
    app->ignored_unlogged = 0;
}

static void on_hangup(keel_app *app)
{
    if (app->machine.state == KEEL_STATE_RUNNING || app->machine.state == KEEL_STATE_REFRESH) {
        keel_log_info("Received signal: hangup, reloading");
        app->machine.reload_pending = true;
    } else
        log_ignored(app, "hangup", app->machine.state < KEEL_STATE_RUNNING ? " before ready" : " during shutdown");
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
    (void) keel_app_cancel(app, KEEL_CAUSE_SIGNAL, "received signal: %s", signal_description(sig));
    return 0;
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

    for (size_t i = 0; i < ELEMENTSOF(app_signals); i++) {
        if (app->signals[i])
            continue;
        r = sd_event_add_signal(app->event, &app->signals[i], app_signals[i], on_signal, app);
        if (r < 0)
            return r;
        (void) sd_event_source_set_description(app->signals[i], sigabbrev_np(app_signals[i]));
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
