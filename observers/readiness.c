/* SPDX-License-Identifier: MIT */
/* At the end of `ready`, the health checks run once and each failing one is logged: READY=1 still
 * goes out (the process serves: a certificate near its expiry is still valid, and a process that
 * exits would only restart into the same state), but the operator learns at once why /readyz
 * answers 503, instead of from the first probe. */
#include <keel/health.h>
#include <keel/keel.h>

#include "app-internal.h"
#include "macro-internal.h"
#include "observers-internal.h"

static void warn_failure(const char *name, int result, const char *reason, void *userdata)
{
    if (result < 0)
        keel_log_warning("Health check %s fails: %s; /readyz answers 503 until it passes", name, reason);
}

static int on_ready(keel_app *app, void *userdata)
{
    (void) keel_app_run_health_checks(app, warn_failure, NULL);
    return 0;
}

int keel__observers_readiness_register(keel_app *app)
{
    return keel_app_observe(app, KEEL_EVENT_READY, KEEL_PHASE_DURING, "health.ready", on_ready, NULL, NULL);
}
