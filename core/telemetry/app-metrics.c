/* SPDX-License-Identifier: MIT */
/* The framework's own metrics: build info, lifecycle durations, observer and shutdown errors,
 * work trackers, and the process collector. Series are created when first needed: the
 * registry's lock is taken then, never on a hot path. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <keel/fileio.h>

#include "app-internal.h"
#include "app-metrics-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"
#include "work-internal.h"

/* Seconds: a stop takes milliseconds when idle and up to shutdown.timeout when draining. */
static const double shutdown_bounds[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60 };

int keel__app_metrics_setup(keel_app *app)
{
    keel_telemetry *t = keel__app_telemetry(app);
    keel_gauge *info = NULL;
    if (!(t->metrics = keel_metrics_new()))
        return -ENOMEM;
    int r = keel_metrics_gauge(t->metrics, "keel_build_info", "Keel's version; always 1.",
                               (const char *const[]){ "version", KEEL_VERSION, NULL }, &info);
    if (r >= 0)
        keel_gauge_set(info, 1);
    if (r >= 0)
        r = keel_metrics_histogram(t->metrics, "keel_shutdown_duration_seconds",
                                   "Time from STOPPING=1 to the end of finalize of the previous served life, kept in state_dir.",
                                   NULL, shutdown_bounds, ELEMENTSOF(shutdown_bounds), &t->shutdown_duration);
    if (r >= 0)
        r = keel_metrics_counter(t->metrics, "keel_refresh_failures_total", "Refreshes that failed and kept the old configuration.",
                                 NULL, &t->refresh_failures_total);
    if (r < 0)
        return r;
    /* Without /proc (a container that does not mount it) the process_* series are all a daemon
     * loses: it still serves. */
    int k = keel_metrics_add_process_collector(t->metrics);
    if (k == -ENOMEM)
        return k;
    if (k < 0)
        keel_log_warning_errno(k, "Failed to read /proc/self, process metrics are not exported: %m, ignoring");
    return 0;
}

void keel__app_metrics_done(keel_app *app)
{
    keel_telemetry *t = keel__app_telemetry(app);
    /* The registry first: its callbacks read the trackers. */
    t->metrics = keel_metrics_free(t->metrics);
    for (size_t i = 0; i < t->n_works; i++)
        keel_work_free(t->works[i]);
    t->works = (free(t->works), NULL);
    t->n_works = 0;
}

void keel__metrics_phase_duration(keel_app *app, const char *event, const char *phase, keel_usec_t usec)
{
    keel_telemetry *t = keel__app_telemetry(app);
    keel_gauge *g = NULL;
    if (keel_metrics_gauge(t->metrics, "keel_lifecycle_event_duration_seconds",
                           "Duration of the last run of each lifecycle event and phase.",
                           (const char *const[]){ "event", event, "phase", phase, NULL }, &g) >= 0)
        keel_gauge_set(g, (double) usec / 1e6);
}

/* "token.stop" -> "token": the component a shutdown error belongs to. */
static void component_of(const char *observer, char *buf, size_t size)
{
    (void) snprintf(buf, size, "%.*s", (int) strcspn(observer, "."), observer);
}

void keel__metrics_observer_error(keel_app *app, const char *observer, bool shutdown)
{
    keel_telemetry *t = keel__app_telemetry(app);
    keel_counter *c = NULL;
    if (keel_metrics_counter(t->metrics, "keel_observer_errors_total", "Observers that returned an error.",
                             (const char *const[]){ "observer", observer, NULL }, &c) >= 0)
        keel_counter_add(c, 1);
    if (!shutdown)
        return;
    char component[128];
    component_of(observer, component, sizeof component);
    if (keel_metrics_counter(t->metrics, "keel_shutdown_errors_total", "Stop and finalize observers that returned an error.",
                             (const char *const[]){ "component", component, NULL }, &c) >= 0)
        keel_counter_add(c, 1);
}

/* One reader per exported field of a tracker's stats: the registry calls them at scrape time. */
#define WORK_STAT_READER(field)                                                                                                    \
    static double work_##field(void *w)                                                                                            \
    {                                                                                                                              \
        keel_work_stats st;                                                                                                        \
        keel_work_get_stats(w, &st);                                                                                               \
        return (double) st.field;                                                                                                  \
    }
WORK_STAT_READER(in_flight)
WORK_STAT_READER(failed)
WORK_STAT_READER(rejected)
#undef WORK_STAT_READER

/* A counter must not go back: the stats' started can, by a begin being refused (see work.h). */
static double work_started(void *w)
{
    return (double) keel__work_started_total(w);
}

static int register_work_metrics(keel_app *app, keel_work *w, const char *component)
{
    keel_telemetry *t = keel__app_telemetry(app);
    const char *const labels[] = { "component", component, NULL };
    int r = keel_metrics_gauge_fn(t->metrics, "keel_work_in_flight", "Work in flight.", labels, work_in_flight, w);
    if (r >= 0)
        r = keel_metrics_counter_fn(t->metrics, "keel_work_started_total", "Work admitted.", labels, work_started, w);
    if (r >= 0)
        r = keel_metrics_counter_fn(t->metrics, "keel_work_failed_total", "Work that ended in failure.", labels, work_failed, w);
    if (r >= 0)
        r = keel_metrics_counter_fn(t->metrics, "keel_work_rejected_total", "Work refused while draining.", labels, work_rejected,
                                    w);
    return r;
}

keel_work *keel_app_work(keel_app *app, const char *component)
{
    keel_assert_return(app && component && *component, NULL);
    keel_telemetry *t = keel__app_telemetry(app);
    for (size_t i = 0; i < t->n_works; i++)
        if (streq(keel_work_name(t->works[i]), component))
            return t->works[i];

    if (GROW(t->works, t->allocated_works, t->n_works + 1) < 0)
        return NULL;
    keel_work *w = keel_work_new(component);
    if (!w)
        return NULL;
    t->works[t->n_works++] = w; /* owned from here on, whatever registration does */
    if (register_work_metrics(app, w, component) < 0)
        keel_log_debug("Failed to register the work metrics of %s, ignoring", component);
    return w;
}

keel_metrics *keel_app_metrics(keel_app *app)
{
    return app ? keel__app_telemetry(app)->metrics : NULL;
}

/* A process cannot be scraped once its shutdown is over, so the duration of a served life's
 * shutdown is kept in the state directory and observed by the next `serve` (see
 * keel__shutdown_duration_load()). Best effort: no state directory, no record. */
void keel__shutdown_duration_save(keel_app *app, keel_usec_t usec)
{
    const char *dir = keel__app_settings(app)->state_dir;
    char buf[32];
    if (!keel__machine_was_ready(app) || !dir || !*dir)
        return;
    _cleanup_free_ char *path = keel_strdup_printf("%s/last-shutdown", dir);
    int n = snprintf(buf, sizeof buf, "%.6f\n", (double) usec / 1e6);
    int r = path ? keel_file_write_replace(path, buf, (size_t) n, 0644) : -ENOMEM;
    if (r < 0)
        keel_log_debug_errno(r, "Failed to record the shutdown duration in %s: %m", dir);
}

static char *shutdown_record_path(keel_app *app)
{
    const char *dir = keel__app_settings(app)->state_dir;
    return dir && *dir ? keel_strdup_printf("%s/last-shutdown", dir) : NULL;
}

int keel__shutdown_duration_load(keel_app *app)
{
    keel_telemetry *t = keel__app_telemetry(app);
    const char *dir = keel__app_settings(app)->state_dir;
    if (!dir || !*dir)
        return 0;
    _cleanup_free_ char *path = shutdown_record_path(app);
    if (!path)
        return -ENOMEM;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    double seconds = -1;
    int fields = fscanf(f, "%lf", &seconds);
    (void) fclose(f);
    /* Removed only once this life is ready (keel__shutdown_duration_consume()): a start that
     * fails first, and a restart that follows it, must not lose the record before any scrape. */
    t->shutdown_record_read = true;
    if (fields != 1 || !(seconds >= 0 && seconds < 1e7))
        return -EBADMSG;
    keel_histogram_observe(t->shutdown_duration, seconds);
    return 1;
}

void keel__shutdown_duration_consume(keel_app *app)
{
    keel_telemetry *t = keel__app_telemetry(app);
    if (!t->shutdown_record_read)
        return;
    t->shutdown_record_read = false;
    _cleanup_free_ char *path = shutdown_record_path(app);
    /* Consumed once: a later crash must not make the next life count it again. */
    if (path && unlink(path) < 0 && errno != ENOENT)
        keel_log_debug_errno(errno, "Failed to remove %s: %m", path);
}

void keel__metrics_refresh_failed(keel_app *app)
{
    keel_counter_add(keel__app_telemetry(app)->refresh_failures_total, 1);
}
