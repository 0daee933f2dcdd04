/* SPDX-License-Identifier: MIT */
/*
 * `keel init`: the agent's init mode (seed 000's mode=init), for a Kubernetes init container or an
 * ExecStartPre=. It runs command, init, configure and the start of the certificate and token
 * services only — the same observers as serve, so KEEL_FAULT points and the trace read the same —
 * which in this mode fetch their credentials (retried until init.timeout), write them where the
 * workload reads them (certificate.out_dir, token.targets), start no server, task or timer, and
 * then the run ends with exit 0.
 */
#include <keel/keel.h>
#include <keel/util.h>

static keel_usec_t init_timeout;

static const keel_config_key config_keys[] = {
    { .key = "init.timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = 0,
      .def = "5m",
      .min = 1000000,
      .max = 3600LL * 1000000,
      .help = "keel init: how long a credential fetch is tried again before init fails" },
};

/* The services init does not run say so, under their own names. */
static int say_disabled(keel_app *app, void *userdata)
{
    keel_log_service("metrics", KEEL_LOG_INFO, "Metrics exporter disabled in init mode");
    keel_log_service("healthcheck", KEEL_LOG_INFO, "Health check disabled in init mode");
    return 0;
}

/* After the services' start: everything is written. */
static int done(keel_app *app, void *userdata)
{
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "credentials written");
    return 0;
}

static int on_init(keel_app *app, void *userdata)
{
    int r = keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_BEFORE, "init.disabled", say_disabled, NULL, NULL);
    if (r >= 0)
        r = keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_AFTER, "init.done", done, NULL, NULL);
    return r;
}

/* One at a time and the state directory's writer, as serve: init makes the pair serve reuses. */
static int init_register(keel_app *app)
{
    int r = keel_app_add_command(app, "init", "fetch and write the credentials once, then exit (an init container)",
                                 KEEL_COMMAND_SINGLE | KEEL_COMMAND_STATE_WRITER);
    if (r >= 0)
        r = keel_app_add_config(app, config_keys, ELEMENTSOF(config_keys), &init_timeout);
    if (r >= 0)
        r = keel_app_command_uses(app, "init", "certificate");
    if (r >= 0)
        r = keel_app_command_uses(app, "init", "token");
    if (r >= 0)
        r = keel_app_observe_command(app, "init", "init.command", on_init, NULL);
    return r;
}

KEEL_PLUGIN(init, init_register);
