/* SPDX-License-Identifier: MIT */
/*
 * The health check component: /livez, /readyz and /healthz with Kubernetes conventions. /readyz is
 * ready only between READY=1 and STOPPING=1 ({"status":"starting"} and {"status":"shutting_down"}
 * otherwise, with 503), and then only while every registered check passes. `?verbose` lists each
 * check as "[+]name ok" / "[-]name failed: reason", like the Kubernetes API server.
 */
#include <stdatomic.h>
#include <stdio.h>

#include <keel/keel.h>

#include "app-internal.h"
#include "component-internal.h"

static const char JSON[] = "application/json";
/* One object, so cached responses (keyed by address) are found again. */
static const char TEXT[] = "text/plain; charset=utf-8";
static const char NOT_ALLOWED[] = "method not allowed: probes answer GET and HEAD\n";

typedef struct healthcheck {
    struct {
        keel_address address;
        bool verbose;
        keel_usec_t loop_timeout;
    } config;
    keel_app *app;                    /* borrowed: set before the server starts, read by its polling thread */
    keel__component *component;       /* borrowed: the app's */
    atomic_bool verbose;              /* config.verbose as the polling thread reads it: copied at start and refresh */
    _Atomic keel_usec_t loop_timeout; /* likewise */
} healthcheck;

#define C(field) offsetof(healthcheck, config.field)
static const keel_config_key config_keys[] = {
    { .key = "healthcheck.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = C(address),
      .def = ":9998",
      .help = "where /livez, /readyz and /healthz listen" },
    { .key = "healthcheck.verbose",
      .type = KEEL_CONFIG_BOOL,
      .offset = C(verbose),
      .def = "false",
      .live = true,
      .help = "answer /readyz and /healthz with the list of checks even without ?verbose" },
    { .key = "healthcheck.loop_timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = C(loop_timeout),
      .def = "30s",
      .min = KEEL_USEC_PER_SEC,
      .max = 3600 * KEEL_USEC_PER_SEC,
      .live = true,
      .help = "the probes fail (the loop check) while the main loop has been working this long without waiting" },
};
#undef C

static void report_check(const char *name, int result, const char *reason, void *userdata)
{
    keel_strbuf *sb = userdata;
    if (result < 0)
        keel_strbuf_printf(sb, "[-]%s failed: %s\n", name, reason);
    else if (*reason)
        keel_strbuf_printf(sb, "[+]%s ok: %s\n", name, reason);
    else
        keel_strbuf_printf(sb, "[+]%s ok\n", name);
}

/* How long the main loop has been working past healthcheck.loop_timeout without waiting again (a
 * SIGTERM or a SIGHUP would not be taken), or 0. Under Kubernetes nothing else sees it: the
 * polling thread answers on its own. */
static keel_usec_t loop_stuck_for(healthcheck *health)
{
    keel_usec_t busy = keel__app_loop_busy_for(health->app, keel_now());
    return busy >= atomic_load_explicit(&health->loop_timeout, memory_order_relaxed) ? busy : 0;
}

/* Runs the checks (only the loop's for /livez) and answers "ok", or the verbose list, with 200 or
 * 503. */
static int answer_checks(keel_http_request *req, healthcheck *health, const char *probe, bool with_checks)
{
    char buf[8192];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    bool verbose = atomic_load_explicit(&health->verbose, memory_order_relaxed) || keel_http_request_has_arg(req, "verbose");
    keel_usec_t stuck = loop_stuck_for(health);

    /* A probe that passes is answered "ok" without the list being written: the common case. */
    if (!verbose && !stuck && (!with_checks || keel_app_run_health_checks(health->app, NULL, NULL) == 0))
        return keel_http_respond_static(req, 200, TEXT, "ok");
    keel_strbuf_append(&sb, "[+]ping ok\n");
    if (stuck)
        keel_strbuf_printf(&sb, "[-]loop failed: the main loop has been working for %.1fs without waiting\n",
                           (double) stuck / KEEL_USEC_PER_SEC);
    else
        keel_strbuf_append(&sb, "[+]loop ok\n");
    unsigned failed = (stuck ? 1 : 0) + (with_checks ? keel_app_run_health_checks(health->app, report_check, &sb) : 0);
    keel_strbuf_printf(&sb, "%s check %s\n", probe, failed ? "failed" : "passed");
    return keel_http_respond_text(req, failed ? 503 : 200, TEXT, buf);
}

static int answer_readyz(keel_http_request *req, healthcheck *health)
{
    keel_readiness r = keel_app_readiness(health->app);
    char body[64];
    if (r == KEEL_READINESS_READY)
        return answer_checks(req, health, "readyz", true);
    (void) snprintf(body, sizeof body, "{\"status\":\"%s\"}", keel_readiness_to_string(r));
    return keel_http_respond_text(req, 503, JSON, body);
}

static int handle(keel_http_request *req, void *userdata)
{
    healthcheck *health = userdata;
    const char *path = keel_http_request_path(req);
    int r = keel__component_refuse_client(health->component, req);
    if (r != 0)
        return r < 0 ? r : 0;

    /* A probe reads: anything else is refused, as the Kubernetes API server does. */
    if (!STR_IN_SET(keel_http_request_method(req), "GET", "HEAD"))
        return keel_http_respond(req, 405, TEXT, NOT_ALLOWED, sizeof NOT_ALLOWED - 1,
                                 (const char *const[]){ "Allow", "GET, HEAD", NULL });
    if (streq(path, "/livez"))
        return answer_checks(req, health, "livez", false);
    if (streq(path, "/readyz"))
        return answer_readyz(req, health);
    if (streq(path, "/healthz"))
        return answer_checks(req, health, "healthz", true);
    return keel_http_respond_static(req, 404, TEXT, "not found: try /livez, /readyz or /healthz\n");
}

/* The configuration changes on the main thread; the polling thread reads only the atomic. */
static int healthcheck_refresh(keel_service *s, void *state)
{
    healthcheck *health = state;
    atomic_store_explicit(&health->verbose, health->config.verbose, memory_order_relaxed);
    atomic_store_explicit(&health->loop_timeout, health->config.loop_timeout, memory_order_relaxed);
    keel__component_refresh(keel__component_of(s), keel_service_app(s));
    return 0;
}

static int healthcheck_start(keel_service *s, void *state)
{
    healthcheck *health = state;
    health->app = keel_service_app(s);
    health->component = keel__component_of(s);
    atomic_store_explicit(&health->verbose, health->config.verbose, memory_order_relaxed);
    atomic_store_explicit(&health->loop_timeout, health->config.loop_timeout, memory_order_relaxed);
    keel_http_options o = { .service = "healthcheck",
                            .label = "health check server",
                            .address = health->config.address,
                            .handler = handle,
                            .userdata = health };
    return keel__component_start(health->component, health->app, &o);
}

static int healthcheck_stop(keel_service *s, void *state)
{
    return keel__component_stop(keel__component_of(s), keel_service_app(s));
}

static const keel_service_vtable healthcheck_vtable = {
    .name = "healthcheck",
    .label = "health check",
    .state_size = sizeof(healthcheck),
    .config = config_keys,
    .n_config = ELEMENTSOF(config_keys),
    .start = healthcheck_start,
    .stop = healthcheck_stop,
    .refresh = healthcheck_refresh,
};

int keel_app_add_healthcheck(keel_app *app, const keel_component_options *options)
{
    return keel__component_add(app, &healthcheck_vtable, options);
}
