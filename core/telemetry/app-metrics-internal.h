/* SPDX-License-Identifier: MIT */
/*
 * The framework's own metrics (core/telemetry/app-metrics.c): the registry an app exports, the
 * work trackers it reads, and the series the machine feeds. Only app-metrics.c writes them.
 */
#pragma once

#include <keel/app.h>
#include <keel/metrics.h>
#include <keel/work.h>

typedef struct keel_telemetry {
    keel_metrics *metrics; /* owned */
    keel_work **works;     /* owned: freed after the registry whose callbacks read them */
    size_t n_works, allocated_works;
    keel_histogram *shutdown_duration; /* borrowed from metrics */
    keel_counter *refresh_failures_total;
    bool shutdown_record_read; /* state_dir's last-shutdown was read and waits for the life to be ready to go */
} keel_telemetry;

int keel__app_metrics_setup(keel_app *app);
void keel__app_metrics_done(keel_app *app);
void keel__metrics_phase_duration(keel_app *app, const char *event, const char *phase, keel_usec_t usec);
void keel__metrics_observer_error(keel_app *app, const char *observer, bool shutdown);
/* A refresh (SIGHUP) that failed: keel_refresh_failures_total. */
void keel__metrics_refresh_failed(keel_app *app);
/* The last served life's shutdown duration, kept in state_dir from one process to the next:
 * saved at the end of finalize; loaded and consumed by the exporter (app-internal.h). */
void keel__shutdown_duration_save(keel_app *app, keel_usec_t usec);
