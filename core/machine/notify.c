/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include <keel/work.h>

#include "app-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"

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

/* The coarse clock (a few ms of resolution, no TSC read) is enough for a once-a-second limit and
 * keeps the check cheap between stop observers. */
static keel_usec_t coarse_now(void)
{
    struct timespec ts;
    (void) clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (keel_usec_t) ts.tv_sec * KEEL_USEC_PER_SEC + (keel_usec_t) ts.tv_nsec / 1000;
}

void keel_app_stop_progress(keel_app *app, const char *what)
{
    keel_machine *m = app ? keel__app_machine(app) : NULL;
    if (!m || m->stop_deadline == KEEL_USEC_INFINITY)
        return;
    if (what)
        keel_log_info("%s", what);
    if (m->last_extend != 0 && coarse_now() - m->last_extend < KEEL_USEC_PER_SEC)
        return;
    keel_usec_t now = keel_now();
    m->last_extend = coarse_now();
    /* What is left of our own budget, plus a margin for finalize: systemd must not kill a stop
     * that is still inside shutdown.timeout, whatever TimeoutStopSec= says. */
    keel_usec_t left = m->stop_deadline > now ? m->stop_deadline - now : 0;
    keel__notify("EXTEND_TIMEOUT_USEC=%llu", (unsigned long long) (left + 5 * KEEL_USEC_PER_SEC));
}

void keel_app_drain_progress(keel_work *w, const keel_work_stats *stats, keel_usec_t left, void *userdata)
{
    char what[256];
    (void) snprintf(what, sizeof what, "Waiting for %s: %llu in flight, %.1fs left", keel_work_name(w),
                    (unsigned long long) stats->in_flight, left == KEEL_USEC_INFINITY ? -1.0 : (double) left / 1e6);
    keel_app_stop_progress(userdata, what);
}
