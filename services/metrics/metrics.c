/* SPDX-License-Identifier: MIT */
/* The metrics exporter: GET /metrics answers the app's registry in the Prometheus text format
 * 0.0.4 — the framework's lifecycle, shutdown and work metrics, the services' own, and process_*. */
#include <stdlib.h>

#include <keel/keel.h>

#include "identity.h"
#include "tls-server.h"

/* One object, so cached responses (keyed by address) are found again. */
static const char TEXT[] = "text/plain; charset=utf-8";

typedef struct metrics_service {
    struct {
        keel_address address;
        tls_server_config tls;
    } config;
    keel_app *app;            /* borrowed */
    identity *identity;       /* borrowed from the app: the credential of metrics.tls self */
    keel_http_server *server; /* owned */
    tls_server *tls;          /* owned: the server's TLS, or NULL */
} metrics_service;

static const keel_config_key config_keys[] = {
    { .key = "metrics.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = offsetof(metrics_service, config.address),
      .def = ":9999",
      .help = "where /metrics listens (Prometheus text format)" },
    { .key = "metrics.tls",
      .type = KEEL_CONFIG_ENUM,
      .offset = offsetof(metrics_service, config.tls.mode),
      .def = "off",
      .choices = tls_server_mode_choices,
      .help = "off, self (the certificate service's pair, rotating with it) or files (tls_cert_file, tls_key_file)" },
    { .key = "metrics.tls_cert_file",
      .type = KEEL_CONFIG_PATH,
      .offset = offsetof(metrics_service, config.tls.cert_file),
      .def = "''",
      .help = "metrics.tls files: the server certificate, then its chain (PEM); read again on SIGHUP" },
    { .key = "metrics.tls_key_file",
      .type = KEEL_CONFIG_PATH,
      .offset = offsetof(metrics_service, config.tls.key_file),
      .def = "''",
      .help = "metrics.tls files: its private key (PEM, mode 0600 or stricter)" },
    { .key = "metrics.tls_client_ca_file",
      .type = KEEL_CONFIG_PATH,
      .offset = offsetof(metrics_service, config.tls.client_ca_file),
      .def = "''",
      .help = "with TLS: the CAs scrapers' certificates are verified against; set, /metrics requires one" },
};

static int handle(keel_http_request *req, void *userdata)
{
    metrics_service *exporter = userdata;
    keel_app *app = exporter->app;
    if (!streq(keel_http_request_path(req), "/metrics"))
        return keel_http_respond_static(req, 404, TEXT, "not found: try /metrics\n");
    if (tls_server_verifies_clients(exporter->tls) && !keel_http_request_peer_identity(req))
        return keel_http_respond_static(req, 401, TEXT,
                                        "a client certificate verified by metrics.tls_client_ca_file is required\n");

    _cleanup_free_ char *text = NULL;
    size_t size = 0;
    int r = keel_metrics_format(keel_app_metrics(app), &text, &size);
    if (r < 0)
        return r;
    return keel_http_respond(req, 200, KEEL_METRICS_CONTENT_TYPE, text, size, NULL);
}

/* A TLS server's ready check needs libcurl: it loads while the services before it start. */
static int metrics_configure(keel_service *s, void *state)
{
    metrics_service *exporter = state;
    keel_app *app = exporter->app = keel_service_app(s);
    if (exporter->config.tls.mode != TLS_SERVER_OFF)
        keel_http_prepare(app);
    int r = identity_of(app, &exporter->identity);
    return r < 0 ? keel_app_fail(app, r, "Cannot set up the identity: %s", strerror(-r)) : 0;
}

static int metrics_start(keel_service *s, void *state)
{
    metrics_service *exporter = state;
    keel_app *app = keel_service_app(s);
    int r = tls_server_setup(app, exporter->identity, "metrics", &exporter->config.tls, &exporter->tls);
    if (r < 0)
        return r;
    keel_http_options o = { .service = "metrics",
                            .label = "metrics exporter server",
                            .address = exporter->config.address,
                            .handler = handle,
                            .userdata = exporter,
                            .tls = exporter->tls ? &tls_server_ops : NULL,
                            .tls_userdata = exporter->tls };
    return keel_http_server_start_new(app, &o, &exporter->server);
}

/* SIGHUP: metrics.tls files are read again. */
static int metrics_refresh(keel_service *s, void *state)
{
    metrics_service *exporter = state;
    tls_server_refresh(exporter->tls, "metrics", &exporter->config.tls);
    return 0;
}

static int metrics_stop(keel_service *s, void *state)
{
    metrics_service *exporter = state;
    int r = keel_http_server_stop_and_free(keel_service_app(s), &exporter->server);
    exporter->tls = tls_server_free(exporter->tls); /* after the server: its sessions hold the context */
    return r;
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
    .refresh = metrics_refresh,
    .stop = metrics_stop,
};

KEEL_SERVICE(metrics, metrics_vtable);
