/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>
#include <keel/http.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Keel's standard components: services a program adds with one call, each an HTTP server with
 * its own configuration section, drained, limited and confirmed as every Keel server is
 * (keel/http.h, the http.* keys).
 */

/**
 * TLS for a component's server, brought by the program (libkeel links no TLS library): @ops runs
 * the connections, and the hooks make, refresh and free the object @ops is given as its userdata
 * (the "context"). @ops and @open are required. Every hook but client_required runs on the main
 * thread with @component, the component's name ("metrics"), for the log and for the names of the
 * program's own keys.
 */
typedef struct keel_component_tls {
    const keel_http_tls_ops *ops;
    void *userdata;
    /* configure.during (the point "<component>.configure"); may be NULL. The contract of an observer. */
    int (*configure)(keel_app *app, const char *component, void *userdata);
    /* start.during, before the server starts: the context into *@ret_context, or NULL there to
     * serve plain HTTP. A negative errno fails the start (give the message to keel_app_fail()). */
    int (*open)(keel_app *app, const char *component, void *userdata, void **ret_context);
    /* refresh.during, while a context is open: the live keys were reloaded; a failure keeps the
     * context as it was (log it). May be NULL. */
    void (*refresh)(keel_app *app, const char *component, void *userdata, void *context);
    /* Whether the server refuses a request that carries no verified client identity
     * (keel_http_request_peer_identity()): the body of the 401 it answers, one line with static
     * storage duration, or NULL to serve it. Called from the polling thread. May be NULL: never. */
    const char *(*client_required)(void *userdata, void *context);
    /* stop.during, for a context open() made, once the server is stopped and freed (its sessions
     * held the context). May be NULL. */
    void (*close)(void *userdata, void *context);
} keel_component_tls;

/** How a component joins the program. Zeroed: ordered by registration only, plain HTTP. */
typedef struct keel_component_options {
    /* NULL-terminated names of the services it starts after and stops before (copied), or NULL. */
    const char *const *after;
    /* TLS on its server (copied; the hooks' userdata is borrowed until the app is freed), or NULL. */
    const keel_component_tls *tls;
} keel_component_options;

/**
 * Adds the health check component to @app: the service "healthcheck" (label "health check"),
 * serving `GET`/`HEAD` /livez (200 "ok" while the process answers), /readyz (200 "ok" only between
 * READY=1 and STOPPING=1 and while every check of keel_app_add_health_check() passes; otherwise
 * 503, with {"status":"starting"} or {"status":"shutting_down"} outside that window) and /healthz
 * (the checks, whatever the readiness), with Kubernetes' verbose form ("[+]name ok",
 * "[-]name failed: reason") for `?verbose`. Other methods get 405, other paths 404. Its keys:
 * `healthcheck.address` (":9998") and `healthcheck.verbose` (live: answer verbosely always). Its
 * points are those of a service named "healthcheck" ("healthcheck.start",
 * "healthcheck.spawn.server", "healthcheck.request"). Call it as keel_app_add_service(), before
 * the command line is parsed; list in @options->after every service whose failure /readyz should
 * not hide: the component then starts after them and stops (turns unready) first. @options may be
 * NULL. Returns 0, -EEXIST when added before, -ESTALE once the command line was parsed, -EINVAL,
 * -ENOMEM.
 */
KEEL_API int keel_app_add_healthcheck(keel_app *app, const keel_component_options *options);

/**
 * Adds the metrics component to @app: the service "metrics" (label "metrics exporter"), serving
 * GET /metrics with keel_app_metrics() in the Prometheus text format 0.0.4
 * (KEEL_METRICS_CONTENT_TYPE): the framework's own series (build, lifecycle, shutdown, work
 * trackers), the process_* series, and every series the program registered there. Other paths
 * get 404. Its key: `metrics.address` (":9999"). Its points are those of a service named
 * "metrics" ("metrics.start", "metrics.spawn.server", "metrics.request"). Call it as
 * keel_app_add_service(), before the command line is parsed; list in @options->after the services
 * whose series its first scrape should see. @options may be NULL. Returns 0, -EEXIST when added
 * before, -ESTALE once the command line was parsed, -EINVAL, -ENOMEM.
 */
KEEL_API int keel_app_add_metrics_exporter(keel_app *app, const keel_component_options *options);

#ifdef __cplusplus
}
#endif
