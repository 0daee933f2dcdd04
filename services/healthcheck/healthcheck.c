/* SPDX-License-Identifier: MIT */
/* The agent's health check: libkeel's component, last to start and first to stop, so that /readyz
 * never answers for a service that is not up and turns 503 before any other service closes. */
#include <keel/components.h>
#include <keel/plugin.h>

static int healthcheck_register(keel_app *app)
{
    keel_component_options o = { .after = (const char *const[]){ "certificate", "token", "metrics", NULL } };
    return keel_app_add_healthcheck(app, &o);
}

KEEL_PLUGIN(healthcheck, healthcheck_register);
