/* SPDX-License-Identifier: MIT */
/* The service manager's side of the lifecycle that is not the machine's own: the loop watchdog,
 * the start delay that spreads a fleet restarted together, and the shutdown delay that gives load
 * balancers time to see readiness turn 503. */
#include <sys/random.h>

#include <keel/keel.h>

#include "app-internal.h"
#include "macro-internal.h"
#include "observer-internal.h"
#include "observers-internal.h"

static int on_watchdog(keel_app *app, void *userdata)
{
    /* sd-event reads $WATCHDOG_USEC itself and pings from the loop at half the interval. */
    int r = sd_event_set_watchdog(keel_app_get_event_loop(app), true);
    if (r < 0)
        keel_log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");
    else if (r > 0)
        keel_log_debug("Watchdog enabled");
    return 0;
}

static int on_delay_done(sd_event_source *s, uint64_t usec, void *userdata)
{
    *(bool *) userdata = true;
    return 0;
}

/* shutdown.delay is part of the stop that shutdown.timeout bounds: one not shorter would force every
 * stop (exit 2, finalize never run). Refused when loaded; one a reload brought is cut to half of
 * the budget when used, and said so. */
static keel_usec_t usable_delay(const keel_app *app)
{
    keel_usec_t delay = keel__app_settings(app)->shutdown_delay, timeout = keel__app_settings(app)->shutdown_timeout;
    return delay < timeout ? delay : timeout / 2;
}

static int check_delay(keel_app *app, bool reload)
{
    keel_usec_t delay = keel__app_settings(app)->shutdown_delay, timeout = keel__app_settings(app)->shutdown_timeout;
    char d[32], t[32], u[32];
    if (delay < timeout)
        return 0;
    keel_format_duration(delay, d, sizeof d), keel_format_duration(timeout, t, sizeof t);
    if (!reload)
        return keel_app_fail(app, -EINVAL,
                             "shutdown.delay (%s) must be shorter than shutdown.timeout (%s), the budget of the whole stop", d, t);
    keel_log_warning("shutdown.delay (%s) is not shorter than shutdown.timeout (%s), the budget of the whole stop: a stop will "
                     "delay %s",
                     d, t, keel_format_duration(usable_delay(app), u, sizeof u));
    return 0;
}

static int on_check_delay(keel_app *app, void *userdata)
{
    return check_delay(app, false);
}

static int on_reload_delay(keel_app *app, void *userdata)
{
    return check_delay(app, true);
}

static int on_shutdown_delay(keel_app *app, void *userdata)
{
    keel_usec_t delay = usable_delay(app);
    sd_event *e = keel_app_get_event_loop(app);
    sd_event_source *timer = NULL;
    bool done = false;

    if (delay == 0)
        return 0;
    keel_log_info("Delaying shutdown for %.3fs so that load balancers see readiness turn 503", (double) delay / 1e6);
    /* Accuracy 1us: sd-event's default of 250ms would stretch the delay. */
    int r = sd_event_add_time_relative(e, &timer, CLOCK_MONOTONIC, delay, 1, on_delay_done, &done);
    if (r < 0)
        return keel_app_fail(app, r, "Failed to arm the shutdown delay: %m");
    (void) sd_event_source_set_description(timer, "shutdown-delay");
    /* The loop runs meanwhile, so a second signal is logged (and changes nothing). */
    while (!done && r >= 0)
        r = sd_event_run(e, UINT64_MAX);
    sd_event_source_disable_unref(timer);
    return r < 0 ? keel_app_fail(app, r, "Event loop failed during the shutdown delay: %m") : 0;
}

/* A thousand agents restarted together (a node's reboot, a rollout) would ask their CA or issuer
 * in the same second: each waits a random time below start_delay_jitter first. A stop request
 * ends the wait, and the start is skipped as for any signal during it (exit 0). */
static int on_start_delay(keel_app *app, void *userdata)
{
    keel_usec_t jitter = keel__app_settings(app)->start_delay_jitter;
    const char *command = keel_app_command(app);
    uint64_t x = 0;
    if (jitter == 0 || !command || !(streq(command, "serve") || streq(command, "init")))
        return 0;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t) sizeof x)
        x = (uint64_t) keel_now(); /* spreading, not secrecy: any varying number does */
    keel_usec_t delay = x % jitter;
    char d[32], j[32];
    keel_log_info("Delaying the start by %s (start_delay_jitter %s)", keel_format_duration(delay, d, sizeof d),
                  keel_format_duration(jitter, j, sizeof j));
    int r = keel_app_wait(app, delay);
    return r == -ECANCELED ? r : 0;
}

int keel__observers_systemd_register(keel_app *app)
{
    keel_observer *delay = NULL;
    int r = keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_BEFORE, "start.delay", on_start_delay, NULL, &delay);
    if (r < 0)
        return r;
    keel__observer_set_command_flags(delay, KEEL_COMMAND_SINGLE); /* the daemons: serve, init */
    r = keel_app_observe(app, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, "systemd.watchdog", on_watchdog, NULL, NULL);
    if (r >= 0)
        r = keel_app_observe(app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_AFTER, "shutdown.check", on_check_delay, NULL, NULL);
    if (r >= 0)
        r = keel_app_observe(app, KEEL_EVENT_REFRESH, KEEL_PHASE_AFTER, "shutdown.check", on_reload_delay, NULL, NULL);
    if (r < 0)
        return r;
    /* Registered before any service, so in stop.before (newest first) it runs last: after every
     * service has turned its readiness to 503 and before any listener closes (stop.during). */
    return keel_app_observe(app, KEEL_EVENT_STOP, KEEL_PHASE_BEFORE, "shutdown.delay", on_shutdown_delay, NULL, NULL);
}
