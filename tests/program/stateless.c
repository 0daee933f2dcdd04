/* SPDX-License-Identifier: MIT */
/* A program built on Keel with its own identity, for tests/integration/test_identity.py: version
 * 1.2.3, and no state (no state directory unless the configuration gives one). `stateless serve`
 * logs "Stateless started" and runs until a signal; `stateless once` prints "once" from start.after
 * and exits 0, a one-shot command that holds no lock. Written against include/keel/ only. */
#include <stdio.h>

#include <keel/keel.h>

static int stateless_start(keel_app *app, void *userdata)
{
    const char *dir = keel_app_state_dir(app);
    keel_log_info("Stateless started, state directory '%s'", dir ? dir : "(unknown)");
    return 0;
}

/* The one-shot work, once every service has started: the run context ends with it. */
static int once_work(keel_app *app, void *userdata)
{
    printf("once\n");
    (void) fflush(stdout);
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "once done");
    return 0;
}

static int on_once(keel_app *app, void *userdata)
{
    return keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_AFTER, "stateless.once.work", once_work, NULL, NULL);
}

static int stateless_register(keel_app *app)
{
    int r = keel_app_add_command(app, "once", "print once and exit", 0);
    if (r >= 0)
        r = keel_app_observe_command(app, "once", "stateless.once", on_once, NULL);
    if (r >= 0)
        r = keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_DURING, "stateless.start", stateless_start, NULL, NULL);
    return r;
}

KEEL_PLUGIN(stateless, stateless_register);

int main(int argc, char **argv)
{
    keel_app *app = keel_app_new("stateless");
    if (!app || keel_app_set_version(app, "1.2.3") < 0 || keel_app_set_state_dir(app, NULL) < 0)
        return keel_app_free(app), KEEL_EXIT_SOFTWARE;
    int r = keel_app_run(app, argc, argv);
    keel_app_free(app);
    return r < 0 ? KEEL_EXIT_SOFTWARE : r;
}
