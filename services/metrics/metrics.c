/* SPDX-License-Identifier: MIT */
/* The metrics exporter: GET /metrics answers the app's registry in the Prometheus text format
 * 0.0.4 — the framework's lifecycle, shutdown and work metrics, the services' own, and process_*. */
#include <stdlib.h>

#include <keel/keel.h>

/* One object, so cached responses (keyed by address) are found again. */
static const char TEXT[] = "text/plain; charset=utf-8";

typedef struct metrics_service {
    struct {
        keel_address address;
    } config;
    keel_http_server *server; /* owned */
} metrics_service;

static const keel_config_key config_keys[] = {
    { .key = "metrics.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = offsetof(metrics_service, config.address),
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
static int metrics_configure(keel_service *s, void *state)
{
    keel_http_prepare(keel_service_app(s));
    return 0;
}

static int metrics_start(keel_service *s, void *state)
{
    metrics_service *exporter = state;
    keel_app *app = keel_service_app(s);
    keel_http_options o = { .service = "metrics",
                            .label = "metrics exporter server",
                            .address = exporter->config.address,
                            .handler = handle,
                            .userdata = app };
    return keel_http_server_start_new(app, &o, &exporter->server);
}

static int metrics_stop(keel_service *s, void *state)
{
    metrics_service *exporter = state;
    return keel_http_server_stop_and_free(keel_service_app(s), &exporter->server);
}

/* After the services whose metrics it exports, so that its first scrape sees all of them. */
static const keel_service_vtable metrics_vtable = {
    .name = "metrics",
    .label = "metrics exporter",
    .after = (const char *const[]){ "certificate", "token", NULL },
    .state_size = sizeof(metrics_service),
    .config = config_keys,
    .n_config = ELEMENTSOF(config_keys),
    .configure = metrics_configure,
    .start = metrics_start,
    .stop = metrics_stop,
};

KEEL_SERVICE(metrics, metrics_vtable);
