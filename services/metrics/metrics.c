/* SPDX-License-Identifier: MIT */
/* The metrics exporter: GET /metrics answers the app's registry in the Prometheus text format
 * 0.0.4 — the framework's lifecycle, shutdown and work metrics, the services' own, and process_*. */
#include <stdlib.h>

#include <keel/http.h>
#include <keel/keel.h>
#include <keel/util.h>

#include "app-internal.h"

/* One object, so cached responses (keyed by address) are found again. */
static const char TEXT[] = "text/plain; charset=utf-8";

typedef struct metrics_config {
    keel_address address;
} metrics_config;

/* One instance per process; static so the configuration storage outlives every error path. */
static struct {
    metrics_config config;
    keel_http_server *server; /* owned */
} mx;

static const keel_config_key config_keys[] = {
    { .key = "metrics.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = offsetof(metrics_config, address),
      .def = ":9999",
      .help = "where /metrics listens (Prometheus text format)" },
};

static int handle(keel_http_request *req, void *userdata)
{
    keel_app *app = userdata;
    if (!streq(keel_http_request_path(req), "/metrics"))
        return keel_http_respond_static(req, 404, TEXT, "not found: try /metrics\n");

    _cleanup_free_ char *text = NULL;
    size_t size = 0;
    int r = keel_metrics_format(keel_app_metrics(app), &text, &size);
    if (r < 0)
        return r;
    return keel_http_respond(req, 200, KEEL_METRICS_CONTENT_TYPE, text, size, NULL);
}

/* What the server's ready check needs loads while the services before it start. */
static int metrics_configure(keel_service *s, void *userdata)
{
    keel_http_prepare(keel_service_app(s));
    return 0;
}

static int metrics_start(keel_service *s, void *userdata)
{
    keel_app *app = keel_service_app(s);
    int r = keel__shutdown_duration_load(app);
    if (r < 0)
        keel_log_service("metrics", KEEL_LOG_WARNING, "Failed to read the last shutdown duration: %s, ignoring", strerror(-r));
    keel_http_options o = {
        .service = "metrics", .label = "metrics exporter server", .address = mx.config.address, .handler = handle, .userdata = app
    };
    return keel_http_server_start_new(app, &o, &mx.server);
}

static int metrics_stop(keel_service *s, void *userdata)
{
    return keel_http_server_stop_and_free(keel_service_app(s), &mx.server);
}

static const keel_service_vtable metrics_vtable = {
    .name = "metrics",
    .label = "metrics exporter",
    .configure = metrics_configure,
    .start = metrics_start,
    .stop = metrics_stop,
};

static int on_serve(keel_app *app, void *userdata)
{
    return keel_app_add_service(app, &metrics_vtable, NULL, NULL);
}

static int metrics_register(keel_app *app)
{
    int r = keel_app_add_config(app, config_keys, ELEMENTSOF(config_keys), &mx.config);
    if (r < 0)
        return r;
    return keel_app_observe_command(app, "serve", "metrics.command", on_serve, NULL);
}

/* Start order certificate, token, metrics, health check (DESIGN §4). */
KEEL_PLUGIN_ORDERED(metrics, 530, metrics_register);
