/* SPDX-License-Identifier: MIT */
/* READY=1 only with every health check passing: the last step of `ready` runs them once, so a
 * service that started without what it serves with (a valid certificate, a signing key) fails
 * the start instead of reporting ready and failing its probes. */
#include <stdio.h>

#include <keel/health.h>
#include <keel/keel.h>

#include "macro.h"

static void first_failure(const char *name, int result, const char *reason, void *userdata)
{
    char *buf = userdata;
    if (result < 0 && !buf[0])
        (void) snprintf(buf, 256, "health check %s failed: %s", name, reason);
}

static int on_ready(keel_app *app, void *userdata)
{
    char why[256] = "";
    unsigned failed = keel_app_run_health_checks(app, first_failure, why);
    if (failed > 0)
        return keel_app_fail(app, -EIO, "Not ready: %s%s", why, failed > 1 ? " (and others)" : "");
    return 0;
}

static int readiness_register(keel_app *app)
{
    return keel_app_observe(app, KEEL_EVENT_READY, KEEL_PHASE_DURING, "health.ready", on_ready, NULL, NULL);
}

KEEL_PLUGIN_ORDERED(readiness, KEEL_PLUGIN_ORDER_CORE, readiness_register);
