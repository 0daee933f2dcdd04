/* SPDX-License-Identifier: MIT */
/* The agent's module: its one export hands keel (src/main.c) the KEEL_PLUGIN()s of every service
 * and observer under services/, for keel_app_run_with() to register. */
#include <keel/app.h>

__attribute__((visibility("default"))) const keel_run_options *keel_agent_run_options(void);

const keel_run_options *keel_agent_run_options(void)
{
    /* The module's own section: the bounds are hidden, so they are this object's (keel/app.h). */
    static const keel_run_options options = { __start_keel_plugins, __stop_keel_plugins, false };
    return &options;
}
