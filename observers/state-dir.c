/* SPDX-License-Identifier: MIT */
/*
 * The state directory for the commands that use it, before any service starts: `keel serve`
 * creates it (0700, systemd's StateDirectory= would), refuses it while it is in layout 1, holds
 * its writer's lock for the rest of the process and records its layout; `keel token` only reads
 * it, so it only refuses layout 1. `keel migrate` locks it itself (observers/migrate.c). Here and
 * not in the certificate service: every served life writes there (the shutdown record), whichever
 * plugins are disabled.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <keel/fileio.h>
#include <keel/keel.h>

#include "app-internal.h"
#include "macro.h"
#include "state-dir.h"

static int on_start(keel_app *app, void *userdata)
{
    const char *dir = keel__app_settings(app)->state_dir, *command = keel_app_command(app);
    char error[PATH_MAX + 256];
    int r;

    if (!dir || !*dir || !command || !STR_IN_SET(command, "serve", "token"))
        return 0;
    if (streq(command, "token"))
        r = keel__layout_check(dir, error, sizeof error);
    else if ((r = keel_dir_make(dir, 0700)) < 0)
        return keel_app_fail(app, r, "Cannot create the state directory '%s': %s", dir, strerror(-r));
    else
        r = keel__state_dir_acquire(app, dir, error, sizeof error);
    return r < 0 ? keel_app_fail(app, r, "%s", error) : 0;
}

static int state_dir_register(keel_app *app)
{
    /* After the PID file (its "already running" is the clearer message), before any service. */
    return keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_BEFORE, "state-dir.acquire", on_start, NULL, NULL);
}

KEEL_PLUGIN_ORDERED(state_dir, KEEL_PLUGIN_ORDER_CORE, state_dir_register);
