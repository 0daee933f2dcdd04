/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "app-internal.h"
#include "macro.h"

void keel__notify(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (!getenv("NOTIFY_SOCKET"))
        return;
    va_start(ap, fmt);
    (void) vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    int r = sd_notify(0, buf);
    if (r < 0)
        keel_log_debug_errno(r, "Failed to notify the service manager, ignoring: %m");
}

void keel_app_status(keel_app *app, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    keel_log_debug("Status: %s", buf);
    keel__notify("STATUS=%s", buf);
}

void keel_app_stop_progress(keel_app *app, const char *what)
{
    keel_usec_t now = keel_now();

    if (!app || app->stop_deadline == KEEL_USEC_INFINITY)
        return;
    if (what)
        keel_log_info("%s", what);
    if (now - app->last_extend < KEEL_USEC_PER_SEC)
        return;
    app->last_extend = now;
    /* What is left of our own budget, plus a margin for finalize: systemd must not kill a stop
     * that is still inside shutdown.timeout, whatever TimeoutStopSec= says. */
    keel_usec_t left = app->stop_deadline > now ? app->stop_deadline - now : 0;
    keel__notify("EXTEND_TIMEOUT_USEC=%llu", (unsigned long long) (left + 5 * KEEL_USEC_PER_SEC));
}
