/* SPDX-License-Identifier: MIT */
#pragma once

/* `keel init` runs the certificate and token services once: what they fetch is written, nothing
 * serves, no task keeps it fresh, and a failed fetch is tried again until init.timeout
 * (services/init/init.c). The services ask these. */

#include <string.h>

#include <keel/keel.h>

static inline bool agent_init_mode(const keel_app *app)
{
    const char *command = keel_app_command(app);
    return command && strcmp(command, "init") == 0;
}

/* init.timeout: how long `keel init` keeps trying a credential; 0 outside init. */
static inline keel_usec_t agent_init_timeout(const keel_app *app)
{
    const keel_usec_t *t = agent_init_mode(app) ? keel_app_config_value(app, "init.timeout", KEEL_CONFIG_DURATION) : NULL;
    return t ? *t : 0;
}
