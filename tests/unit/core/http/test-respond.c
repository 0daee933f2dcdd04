/* SPDX-License-Identifier: MIT */
/* What keel_http_respond() lets a handler answer: a final status only (a 1xx would leave the
 * request unanswered and the next bytes read as its answer), and 204 and 304 without a body or a
 * Content-Length (RFC 9110 8.6), which would otherwise be taken for the next answer's start. */
#include <stdio.h>

#include <criterion/criterion.h>

#include "apptest.h"

static apptest t;

static void setup(void)
{
    apptest_init(&t);
}

static void teardown(void)
{
    apptest_done(&t);
}

TestSuite(respond, .init = setup, .fini = teardown, .timeout = 60);

static struct {
    keel_http_server *server;
    int informational, bodied_204, bodied_304, deferred_101;
    unsigned status[2];
    bool length_on_204;
    char body[2][64];
} rec;

static int handler(keel_http_request *req, void *userdata)
{
    const char *path = keel_http_request_path(req);
    if (streq(path, "/refused")) {
        rec.informational = keel_http_respond(req, 101, NULL, NULL, 0, NULL);
        rec.bodied_204 = keel_http_respond(req, 204, "text/plain", "x", 1, NULL);
        rec.bodied_304 = keel_http_respond_static(req, 304, "text/plain", "x");
        keel_http_deferred *d = keel_http_request_defer(req);
        if (!d)
            return -ENOMEM;
        /* Refused, and still answered (500): the handle is spent, the request is not left waiting. */
        rec.deferred_101 = keel_http_deferred_respond(d, 100, NULL, NULL, 0, NULL);
        return 0;
    }
    return keel_http_respond(req, 204, NULL, NULL, 0, NULL);
}

static int on_start(keel_app *app, void *userdata)
{
    keel_http_options o = { .service = "probe", .label = "probe server", .handler = handler };
    (void) snprintf(o.address.host, sizeof o.address.host, "127.0.0.1");
    return keel_http_server_start_new(app, &o, &rec.server);
}

static void get(keel_fetch *f, const char *path, int i)
{
    char url[128], value[32];
    keel_fetch_response resp = {};
    (void) snprintf(url, sizeof url, "http://%s%s", keel_http_server_address(rec.server), path);
    cr_assert_eq(keel_fetch_request(f, "GET", url, NULL, NULL, 0, &resp, NULL), 0);
    rec.status[i] = resp.status;
    (void) snprintf(rec.body[i], sizeof rec.body[i], "%.*s", (int) resp.size, resp.body);
    if (i == 0)
        rec.length_on_204 = keel_fetch_response_header(&resp, "Content-Length", value, sizeof value) != NULL;
    keel_fetch_response_done(&resp);
}

static int on_ready(keel_app *app, void *userdata)
{
    keel_fetch *f = NULL;
    cr_assert_eq(keel_fetch_new(NULL, &f, NULL), 0);
    get(f, "/empty", 0);
    get(f, "/refused", 1); /* on the same connection: the 204 ended where its head did */
    (void) keel_fetch_free(f);
    return keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
}

static int on_stop(keel_app *app, void *userdata)
{
    return keel_http_server_stop_and_free(app, &rec.server);
}

Test(respond, only_final_statuses_and_no_body_with_204_or_304)
{
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.ready", on_ready, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "t.stop", on_stop, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));
    cr_assert_eq(rec.status[0], 204);
    cr_assert_not(rec.length_on_204, "no Content-Length on a 204");
    cr_assert_str_eq(rec.body[0], "");
    cr_assert_eq(rec.informational, -EINVAL);
    cr_assert_eq(rec.bodied_204, -EINVAL);
    cr_assert_eq(rec.bodied_304, -EINVAL);
    cr_assert_eq(rec.deferred_101, -EINVAL);
    cr_assert_eq(rec.status[1], 500);
    cr_assert_str_eq(rec.body[1], "internal server error\n");
}
