/* SPDX-License-Identifier: MIT */
/* The service manager's side of the lifecycle that is not the machine's own: the loop watchdog,
 * and the shutdown delay that gives load balancers time to see readiness turn 503. */
#include <keel/keel.h>

#include "app-internal.h"
#include "macro.h"

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

static int on_shutdown_delay(keel_app *app, void *userdata)
{
    keel_usec_t delay = keel__app_settings(app)->shutdown_delay;
    sd_event *e = keel_app_get_event_loop(app);
    sd_event_source *timer = NULL;
    bool done = false;

    if (delay == 0)
        return 0;
    keel_log_info("Delaying shutdown for %.3fs so that load balancers see readiness turn 503", (double) delay / 1e6);
    /* Accuracy 1us: sd-event's default of 250ms would stretch the delay (DESIGN §4). */
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

int keel__observers_systemd_register(keel_app *app)
{
    int r = keel_app_observe(app, KEEL_EVENT_INIT, KEEL_PHASE_BEFORE, "systemd.watchdog", on_watchdog, NULL, NULL);
    if (r < 0)
        return r;
    /* Registered before any service, so in stop.before (newest first) it runs last: after every
     * service has turned its readiness to 503 and before any listener closes (stop.during). */
    return keel_app_observe(app, KEEL_EVENT_STOP, KEEL_PHASE_BEFORE, "shutdown.delay", on_shutdown_delay, NULL, NULL);
}
