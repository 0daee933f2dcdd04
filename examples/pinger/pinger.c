/* SPDX-License-Identifier: MIT */
/* pinger: a daemon on Keel from the installed headers alone. `pinger serve` beats every
 * pinger.interval (live: SIGHUP applies a new one at once), counts the beats (pinger_beats_total),
 * fails its health check when a beat is late, answers GET /status on pinger.address, and serves
 * Keel's /livez, /readyz, /healthz and /metrics. `pinger once` prints a beat and exits. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include <keel/keel.h>

typedef struct pinger {
    struct {
        keel_address address;
        keel_usec_t interval;
    } config;
    keel_app *app;            /* borrowed: set in configure, before any thread exists */
    keel_http_server *server; /* owned */
    keel_task_group *tasks;   /* owned: the heartbeat */
    keel_counter *beats;      /* borrowed from the app's metrics registry */
    atomic_uint_fast64_t interval, last;
} pinger;

static const keel_config_key pinger_keys[] = {
    { .key = "pinger.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = offsetof(pinger, config.address),
      .def = "127.0.0.1:8091",
      .help = "where /status listens" },
    { .key = "pinger.interval",
      .type = KEEL_CONFIG_DURATION,
      .offset = offsetof(pinger, config.interval),
      .def = "500ms",
      .min = 1000,
      .max = 3600LL * 1000000,
      .live = true,
      .help = "time between two heartbeats" },
};

static void heartbeat(keel_task *task, void *userdata)
{
    pinger *p = userdata;
    for (int w = 0; w >= 0; w = keel_task_wait(task, atomic_load(&p->interval))) {
        atomic_store(&p->last, keel_now());
        keel_counter_add(p->beats, 1);
    }
}

/* Thread-safe and quick, as a health check must be: late by more than three intervals fails. */
static int check_heartbeat(void *userdata, char *reason, size_t size)
{
    pinger *p = userdata;
    keel_usec_t late = keel_now() - atomic_load(&p->last), limit = 3 * atomic_load(&p->interval);
    if (late <= limit)
        return 0;
    (void) snprintf(reason, size, "no heartbeat for %" PRIu64 " ms", (uint64_t) (late / 1000));
    return -ETIME;
}

static int handle(keel_http_request *req, void *userdata)
{
    pinger *p = userdata;
    char body[64];
    if (!keel_streq(keel_http_request_path(req), "/status"))
        return keel_http_respond_static(req, 404, "text/plain", "try /status\n");
    (void) snprintf(body, sizeof body, "{\"beats\":%" PRIu64 "}\n", keel_counter_get(p->beats));
    return keel_http_respond_text(req, 200, "application/json", body);
}

static int pinger_configure(keel_service *s, void *state)
{
    pinger *p = state;
    p->app = keel_service_app(s);
    atomic_store(&p->interval, p->config.interval);
    int r = keel_metrics_counter(keel_app_metrics(p->app), "pinger_beats_total", "Heartbeats.", NULL, &p->beats);
    r = r < 0 ? r : keel_app_add_health_check(p->app, "heartbeat", check_heartbeat, p);
    return r < 0 ? keel_app_fail(p->app, r, "Cannot register the heartbeat's metric and check: %s", strerror(-r)) : 0;
}

static int pinger_start(keel_service *s, void *state)
{
    pinger *p = state;
    atomic_store(&p->last, keel_now());
    keel_http_options o = {
        .service = "pinger", .label = "pinger server", .address = p->config.address, .handler = handle, .userdata = p
    };
    int r = keel_http_server_start_new(p->app, &o, &p->server);
    if (r < 0)
        return r;
    p->tasks = keel_task_group_new(p->app, "pinger");
    r = p->tasks ? keel_task_group_spawn(p->tasks, "pinger.spawn.heartbeat", "heartbeat", heartbeat, p) : -ENOMEM;
    return r < 0 ? keel_app_fail(p->app, r, "Cannot start the heartbeat: %s", strerror(-r)) : 0;
}

static int pinger_refresh(keel_service *s, void *state)
{
    pinger *p = state;
    atomic_store(&p->interval, p->config.interval);
    keel_task_group_wake(p->tasks); /* at once: a new interval was maybe set */
    return 0;
}

static int pinger_stop(keel_service *s, void *state)
{
    pinger *p = state;
    p->tasks = keel_task_group_free(p->tasks);
    return keel_http_server_stop_and_free(p->app, &p->server);
}

static const keel_service_vtable pinger_vtable = {
    .name = "pinger",
    .state_size = sizeof(pinger),
    .config = pinger_keys,
    .n_config = KEEL_ELEMENTSOF(pinger_keys),
    .configure = pinger_configure,
    .start = pinger_start,
    .refresh = pinger_refresh,
    .stop = pinger_stop,
};

/* `pinger once`: its work needs no configuration, so it is done in the command event itself. */
static int once(keel_app *app, void *userdata)
{
    printf("beat at %" PRIu64 "\n", (uint64_t) keel_now_realtime());
    return keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "beat printed");
}

static int pinger_register(keel_app *app)
{
    /* Both start after the heartbeat, the health check last, and it turns unready first. */
    keel_component_options after = { .after = (const char *const[]){ "pinger", NULL } };
    int r = keel_app_add_service(app, &pinger_vtable, NULL);
    r = r < 0 ? r : keel_app_add_metrics_exporter(app, &after);
    r = r < 0 ? r : keel_app_add_healthcheck(app, &after);
    r = r < 0 ? r : keel_app_add_command(app, "once", "print one heartbeat and exit", KEEL_COMMAND_QUIET);
    return r < 0 ? r : keel_app_observe_command(app, "once", "pinger.command.once", once, NULL);
}

KEEL_PLUGIN(pinger, pinger_register);

int main(int argc, char **argv)
{
    keel_app *app = keel_app_new("pinger");
    if (!app)
        return KEEL_EXIT_SOFTWARE;
    int r = keel_app_run(app, argc, argv);
    keel_app_free(app);
    return r < 0 ? KEEL_EXIT_SOFTWARE : r;
}
