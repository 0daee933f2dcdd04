/* SPDX-License-Identifier: MIT */
/*
 * The agent's state directory must not be in the seed agent's layout 1 when `serve`, `init` or
 * `token` use it: serve would replace the seed's cert.pem beside its private.pem, and `keel migrate`
 * could no longer run. Checked in start.before, before core takes the directory's writer's lock
 * (last in start.before), so a refused directory is not written at all, not even a lock file;
 * recorded as layout 2 under the lock, before the certificate service starts. Here and not in
 * the certificate service: every served life writes there (the shutdown record), whichever
 * services run.
 */
#include <limits.h>
#include <stdio.h>

#include <keel/keel.h>

#include "layout.h"

/* The commands of the agent that use the state directory: every one that writes it (`serve`,
 * `init`) and `token`, which reads its key. */
static bool uses_state_dir(keel_app *app)
{
    const char *command = keel_app_command(app);
    return command && ((keel_app_command_flags(app) & KEEL_COMMAND_STATE_WRITER) || streq(command, "token"));
}

static int on_check(keel_app *app, void *userdata)
{
    const char *dir = keel_app_state_dir(app);
    char error[PATH_MAX + 256];
    if (!dir || !*dir || !uses_state_dir(app))
        return 0;
    int r = layout_check(dir, error, sizeof error);
    if (r < 0)
        return keel_app_fail(app, r, "%s", error);
    *(bool *) userdata = r > 0;
    return 0;
}

/* Under the writer's lock: nothing of layout 1 was there, and no migration can be writing now. */
static int on_record(keel_app *app, void *userdata)
{
    const char *dir = keel_app_state_dir(app);
    if (*(bool *) userdata || !keel_app_state_dir_locked(app))
        return 0;
    int r = layout_record(dir);
    if (r < 0)
        return keel_app_fail(app, r, "Cannot record layout %d in '%s/%s': %s", KEEL_LAYOUT_CURRENT, dir, KEEL_LAYOUT_FILE,
                             strerror(-r));
    return 0;
}

static int layout_register(keel_app *app)
{
    static bool recorded; /* the check found the layout recorded already */
    int r = keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_BEFORE, "layout.check", on_check, &recorded, NULL);
    if (r >= 0)
        r = keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_DURING, "layout.record", on_record, &recorded, NULL);
    return r;
}

KEEL_PLUGIN(layout, layout_register);
