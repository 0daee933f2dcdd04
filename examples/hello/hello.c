/* SPDX-License-Identifier: MIT */
/* The plugin of the README, compiled: the smallest program built on Keel. `hello serve` logs its
 * line in start, reports READY=1 and runs until a signal; `hello --help` lists the standard
 * commands and options every Keel program has. */
#include <keel/keel.h>

static int hello_start(keel_app *app, void *userdata)
{
    keel_log_info("Hello from start");
    return 0;
}

static int hello_register(keel_app *app)
{
    return keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_DURING, "hello.start", hello_start, NULL, NULL);
}

KEEL_PLUGIN(hello, hello_register);

int main(int argc, char **argv)
{
    keel_app *app = keel_app_new("hello");
    if (!app)
        return KEEL_EXIT_SOFTWARE;
    int r = keel_app_run(app, argc, argv);
    keel_app_free(app);
    return r < 0 ? KEEL_EXIT_SOFTWARE : r;
}
