/* SPDX-License-Identifier: MIT */
/* The metrics component: GET /metrics answers the app's registry in the Prometheus text format
 * 0.0.4 — the framework's lifecycle, shutdown and work metrics, the program's own, and process_*. */
#include <stdlib.h>

#include <keel/keel.h>

#include "app-internal.h"
#include "component-internal.h"

/* One object, so cached responses (keyed by address) are found again. */
static const char TEXT[] = "text/plain; charset=utf-8";
static const char NOT_ALLOWED[] = "method not allowed: /metrics answers GET and HEAD\n";

typedef struct exporter {
    struct {
        keel_address address;
    } config;
    keel_app *app;              /* borrowed: set before the server starts, read by its polling thread */
    keel__component *component; /* borrowed: the app's */
} exporter;

static const keel_config_key config_keys[] = {
    { .key = "metrics.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = offsetof(exporter, config.address),
      .def = ":9999",
      .help = "where /metrics listens (Prometheus text format)" },
};

static int handle(keel_http_request *req, void *userdata)
{
    exporter *e = userdata;
    if (!streq(keel_http_request_path(req), "/metrics"))
        return keel_http_respond_static(req, 404, TEXT, "not found: try /metrics\n");
    int r = keel__component_refuse_client(e->component, req);
    if (r != 0)
        return r < 0 ? r : 0;
    /* A scrape reads: a POST that got the whole registry would hide a client's mistake. */
    if (!STR_IN_SET(keel_http_request_method(req), "GET", "HEAD"))
        return keel_http_respond(req, 405, TEXT, NOT_ALLOWED, sizeof NOT_ALLOWED - 1,
                                 (const char *const[]){ "Allow", "GET, HEAD", NULL });

    _cleanup_free_ char *text = NULL;
    size_t size = 0;
    r = keel_metrics_format(keel_app_metrics(e->app), &text, &size);
    if (r < 0)
        return r;
    return keel_http_respond(req, 200, KEEL_METRICS_CONTENT_TYPE, text, size, NULL);
}

static int exporter_start(keel_service *s, void *state)
{
    exporter *e = state;
    /* Set before the server starts: its polling thread reads them. */
    e->app = keel_service_app(s);
    e->component = keel__component_of(s);
    /* Observed before the server serves, so that its first scrape has it; only a process that
     * holds the state directory may remove the file once ready. */
    if (keel_app_state_dir_locked(e->app)) {
        int r = keel__shutdown_duration_load(e->app);
        if (r < 0)
            keel_log_warning_errno(r, "Failed to read the last shutdown duration in '%s', ignoring: %m",
                                   keel_app_state_dir(e->app));
    }
    keel_http_options o = {
        .service = "metrics", .label = "metrics exporter server", .address = e->config.address, .handler = handle, .userdata = e
    };
    return keel__component_start(e->component, e->app, &o);
}

/* The whole start succeeded, the exporter serving: from here on a scrape can see the last
 * shutdown's duration, so the record is consumed, not before (a failed start leaves it to the
 * restart that follows). */
static int exporter_ready(keel_service *s, void *state)
{
    keel__shutdown_duration_consume(keel_service_app(s));
    return 0;
}

static int exporter_stop(keel_service *s, void *state)
{
    return keel__component_stop(keel__component_of(s), keel_service_app(s));
}

static const keel_service_vtable exporter_vtable = {
    .name = "metrics",
    .label = "metrics exporter",
    .state_size = sizeof(exporter),
    .config = config_keys,
    .n_config = ELEMENTSOF(config_keys),
    .start = exporter_start,
    .ready = exporter_ready,
    .stop = exporter_stop,
};

int keel_app_add_metrics_exporter(keel_app *app, const keel_component_options *options)
{
    return keel__component_add(app, &exporter_vtable, options);
}
