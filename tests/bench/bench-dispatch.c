/* SPDX-License-Identifier: MIT */
/* Observer dispatch rate: a million trivial observers in start.during (which checks for pending
 * signals between observers) and a million in stop.during (which does not), timed from the first
 * call to the last inside one run of the real machine. Target: at least 10 million calls/s. */
#include <stdio.h>
#include <stdlib.h>

#include <keel/keel.h>

#define N_OBSERVERS 1000000

typedef struct span {
    keel_usec_t first, last;
    size_t calls;
} span;

/* Reads the clock only at the first and the last call, so the rate is the machine's own. */
static int tick(keel_app *app, void *userdata)
{
    span *s = userdata;
    if (s->calls++ == 0)
        s->first = keel_now();
    else if (s->calls == N_OBSERVERS)
        s->last = keel_now();
    return 0;
}

static int done(keel_app *app, void *userdata)
{
    keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "benchmark done");
    return 0;
}

static double rate(const span *s)
{
    return (double) (s->calls - 1) / ((double) (s->last - s->first) / 1e6);
}

int main(void)
{
    span start = { 0 }, stop = { 0 };
    keel_app *app = keel_app_new("bench");
    if (!app)
        return 1;
    keel_log_set_level(KEEL_LOG_WARNING);
    for (int i = 0; i < N_OBSERVERS; i++)
        if (keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_DURING, "bench.start", tick, &start, NULL) < 0 ||
            keel_app_observe(app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "bench.stop", tick, &stop, NULL) < 0)
            return 1;
    if (keel_app_observe(app, KEEL_EVENT_READY, KEEL_PHASE_DURING, "bench.done", done, NULL, NULL) < 0)
        return 1;
    int status = keel_app_run_with(app, 1, (char *[]){ (char *) "bench", NULL }, &(keel_run_options){ .bare = true });
    keel_app_free(app);
    if (status != 0 || start.calls != N_OBSERVERS || stop.calls != N_OBSERVERS)
        return 1;
    printf("bench-dispatch: start_calls_per_sec=%.0f stop_calls_per_sec=%.0f start_ns_per_call=%.1f stop_ns_per_call=%.1f\n",
           rate(&start), rate(&stop), 1e9 / rate(&start), 1e9 / rate(&stop));
    return 0;
}
