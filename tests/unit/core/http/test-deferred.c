/* SPDX-License-Identifier: MIT */
/* Deferred answers (keel_http_request_defer()): a request answered from another thread while the
 * server answers others meanwhile, and a stop past its drain deadline with one never answered. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app-state-internal.h"
#include "apptest.h"
#include "helpers.h"
#include "testing.h"

static apptest t;

static void setup(void)
{
    apptest_init(&t);
}

static void teardown(void)
{
    apptest_done(&t);
}

TestSuite(deferred, .init = setup, .fini = teardown, .timeout = 60);

typedef struct record {
    keel_http_server *server;
    char base[64];
    keel_http_deferred *_Atomic held; /* answered by the test itself, late */
    keel_http_request *held_req;
    pthread_t answerer;
    bool answerer_started;
    atomic_int order; /* which request finished first */
    int slow_done_at, fast_done_at;
    int slow_r, fast_r, held_r, late_r;
    unsigned slow_status, fast_status, held_status;
    char slow_body[64], held_body[64];
} record;
static record rec;

static void *answer_later(void *userdata)
{
    keel_http_deferred *d = userdata;
    test_sleep_ms(200);
    (void) keel_http_deferred_respond(d, 201, "text/plain", "later", 5, (const char *const[]){ "X-Late", "yes", NULL });
    return NULL;
}

static int handler(keel_http_request *req, void *userdata)
{
    const char *path = keel_http_request_path(req);
    if (streq(path, "/slow")) {
        keel_http_deferred *d = keel_http_request_defer(req);
        if (!d)
            return -ENOMEM;
        rec.answerer_started = pthread_create(&rec.answerer, NULL, answer_later, d) == 0;
        return 0;
    }
    if (streq(path, "/held")) {
        rec.held_req = req;
        rec.held = keel_http_request_defer(req);
        return rec.held ? 0 : -ENOMEM;
    }
    return keel_http_respond_text(req, 200, "text/plain", "fast");
}

static int on_start(keel_app *app, void *userdata)
{
    keel_http_options o = { .service = "probe", .label = "probe server", .handler = handler };
    (void) snprintf(o.address.host, sizeof o.address.host, "127.0.0.1");
    return keel_http_server_start_new(app, &o, &rec.server);
}

typedef struct call {
    const char *path;
    int *r;
    unsigned *status;
    char *body;
    int *done_at;
} call;

static void *client(void *userdata)
{
    call *c = userdata;
    keel_fetch *f = NULL;
    char url[128];
    keel_fetch_response resp = {};
    (void) snprintf(url, sizeof url, "%s%s", rec.base, c->path);
    if ((*c->r = keel_fetch_new(NULL, &f, NULL)) < 0)
        return NULL;
    *c->r = keel_fetch_request(f, "GET", url, NULL, NULL, 0, &resp, NULL);
    if (c->done_at)
        *c->done_at = atomic_fetch_add(&rec.order, 1);
    if (*c->r >= 0) {
        *c->status = resp.status;
        if (c->body)
            (void) snprintf(c->body, 64, "%s", resp.body);
    }
    keel_fetch_response_done(&resp);
    (void) keel_fetch_free(f);
    return NULL;
}

static int on_ready(keel_app *app, void *userdata)
{
    (void) snprintf(rec.base, sizeof rec.base, "http://%s", keel_http_server_address(rec.server));
    pthread_t slow, fast;
    call cs = { "/slow", &rec.slow_r, &rec.slow_status, rec.slow_body, &rec.slow_done_at };
    call cf = { "/fast", &rec.fast_r, &rec.fast_status, NULL, &rec.fast_done_at };
    cr_assert_eq(pthread_create(&slow, NULL, client, &cs), 0);
    test_sleep_ms(50); /* the slow one is deferred first */
    cr_assert_eq(pthread_create(&fast, NULL, client, &cf), 0);
    (void) pthread_join(slow, NULL);
    (void) pthread_join(fast, NULL);
    if (rec.answerer_started)
        (void) pthread_join(rec.answerer, NULL);
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
    return 0;
}

static int on_stop(keel_app *app, void *userdata)
{
    return keel_http_server_stop_and_free(app, &rec.server);
}

Test(deferred, answered_from_another_thread_while_others_are_served)
{
    rec = (record){};
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.ready", on_ready, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "t.stop", on_stop, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));
    cr_assert(rec.answerer_started);
    cr_assert_eq(rec.slow_r, 0);
    cr_assert_eq(rec.slow_status, 201);
    cr_assert_str_eq(rec.slow_body, "later");
    cr_assert_eq(rec.fast_r, 0);
    cr_assert_eq(rec.fast_status, 200);
    cr_assert_lt(rec.fast_done_at, rec.slow_done_at, "the fast request is not held up by the deferred one");
}

/* A request deferred and never answered before the stop: the drain waits until its deadline, the
 * connection is cut with the others still open, and the late answer only frees the handle. */
static void *held_client(void *userdata)
{
    call *c = userdata;
    return client(c);
}

static pthread_t held_thread;

static int on_ready_held(keel_app *app, void *userdata)
{
    static call c;
    (void) snprintf(rec.base, sizeof rec.base, "http://%s", keel_http_server_address(rec.server));
    c = (call){ "/held", &rec.held_r, &rec.held_status, rec.held_body, NULL };
    cr_assert_eq(pthread_create(&held_thread, NULL, held_client, &c), 0);
    for (int i = 0; i < 200 && !rec.held; i++)
        test_sleep_ms(10);
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
    return 0;
}

static int on_finalize_held(keel_app *app, void *userdata)
{
    if (rec.held) { /* its server is gone, and the request still reads (a use after free under ASan) */
        cr_assert_str_eq(keel_http_request_path(rec.held_req), "/held");
        cr_assert_not_null(keel_http_request_header(rec.held_req, "Host"));
    }
    rec.late_r = rec.held ? keel_http_deferred_respond(rec.held, 200, "text/plain", "too late", 8, NULL) : 0;
    return 0;
}

Test(deferred, a_stop_past_the_deadline_cuts_it_and_a_late_answer_is_refused)
{
    rec = (record){};
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.ready", on_ready_held, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "t.stop", on_stop, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_FINALIZE, KEEL_PHASE_DURING, "t.late", on_finalize_held, NULL, NULL), 0);
    /* A bare app loads no configuration, so no --set reaches it: its stop budget is set here. */
    t.app->settings.shutdown_timeout = 300 * KEEL_USEC_PER_MSEC;
    int status = apptest_run(&t, NULL);
    cr_assert(status != 0, "the drain passed its deadline");
    cr_assert_not_null(rec.held);
    cr_assert_eq(rec.late_r, -ESHUTDOWN);
    (void) pthread_join(held_thread, NULL);
    cr_assert_lt(rec.held_r, 0, "cut: no answer");
}

/* A deferred request whose client goes away (a reset) before its answer: the answering thread may
 * still be reading it, as keel_http_request_defer() promises, until its answer, which is refused.
 * Its connection was freed under it. */
static int connect_to_server(void)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(keel_http_server_port(rec.server)) };
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *) &in, sizeof in), 0);
    return fd;
}

static int on_ready_gone(keel_app *app, void *userdata)
{
    static const char head[] = "GET /held HTTP/1.1\r\nHost: x\r\nX-Probe: kept\r\n\r\n";
    (void) snprintf(rec.base, sizeof rec.base, "http://%s", keel_http_server_address(rec.server));
    int fd = connect_to_server();
    cr_assert_eq(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t) sizeof head - 1);
    for (int i = 0; i < 500 && !rec.held; i++)
        test_sleep_ms(10);
    cr_assert_not_null(rec.held);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){ .l_onoff = 1, .l_linger = 0 }, sizeof(struct linger)), 0);
    (void) close(fd); /* a reset: the server closes the connection under the deferred request */
    for (int i = 0; i < 500 && keel_http_server_connections(rec.server) > 0; i++)
        test_sleep_ms(10);
    cr_assert_eq(keel_http_server_connections(rec.server), 0);
    /* Another request, answered in a later turn of the polling thread: the closed connection's
     * reap, at the end of its turn, is past. */
    call c = { "/fast", &rec.fast_r, &rec.fast_status, NULL, NULL };
    (void) client(&c);
    cr_assert_eq(rec.fast_status, 200);
    cr_assert_str_eq(keel_http_request_path(rec.held_req), "/held");
    cr_assert_str_eq(keel_http_request_header(rec.held_req, "X-Probe"), "kept");
    cr_assert_eq(strncmp(keel_http_request_peer(rec.held_req), "127.0.0.1:", 10), 0);
    cr_assert(keel_http_request_id(rec.held_req)[0] != '\0');
    rec.late_r = keel_http_deferred_respond(rec.held, 200, "text/plain", "too late", 8, NULL);
    return keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
}

Test(deferred, a_request_whose_client_went_away_is_readable_until_its_answer)
{
    rec = (record){};
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.ready", on_ready_gone, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "t.stop", on_stop, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));
    cr_assert_eq(rec.late_r, -ESHUTDOWN, "the client is gone: the answer is refused");
}
