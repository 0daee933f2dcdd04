/* SPDX-License-Identifier: MIT */
/* Request bodies a handler reads (core/http/body.c, keel_http_server_accept_body()): kept in place
 * on the paths that take one, skipped by their framing everywhere else, refused with 411 when
 * chunked and 413 past the path's limit; and the requests pipelined behind them still served. */
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app-internal.h"
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

TestSuite(body, .init = setup, .fini = teardown, .timeout = 60);

/* What each test sends, and what came back. */
typedef struct exchange {
    const char *parts[3]; /* written in turn, 50 ms apart */
    char answer[4096];
} exchange;

typedef struct record {
    keel_http_server *server;
    exchange *x;
    size_t n_x;
    int accept_late; /* keel_http_server_accept_body() once started */
} record;
static record rec;

/* "/echo" and "/json" answer "<size>:<body>"; any other path whether it has a body to read. */
static int handler(keel_http_request *req, void *userdata)
{
    const void *body = NULL;
    size_t size = 0;
    int r = keel_http_request_body(req, &body, &size);
    if (r == -ENODATA)
        return keel_http_respond_text(req, 200, "text/plain", "nodata");
    if (r < 0)
        return r;
    char text[256];
    int n = snprintf(text, sizeof text, "%zu:%.*s", size, (int) size, (const char *) body);
    return keel_http_respond(req, 200, "text/plain", text, (size_t) n, NULL);
}

static int on_start(keel_app *app, void *userdata)
{
    keel_http_options o = { .service = "probe", .label = "probe server", .handler = handler };
    (void) snprintf(o.address.host, sizeof o.address.host, "127.0.0.1");
    rec.server = keel_http_server_new(app, &o);
    cr_assert_not_null(rec.server);
    cr_assert_eq(keel_http_server_accept_body(rec.server, "/echo", 16, 0), 0);
    cr_assert_eq(keel_http_server_accept_body(rec.server, "/json", 16, KEEL_HTTP_BODY_JSON_REFUSALS), 0);
    int r = keel_http_server_start(rec.server);
    rec.accept_late = keel_http_server_accept_body(rec.server, "/late", 16, 0);
    return r;
}

/* Writes each part, then reads until the server closes. */
static void run_exchange(uint16_t port, exchange *x)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
    for (size_t i = 0; i < ELEMENTSOF(x->parts) && x->parts[i]; i++) {
        if (i > 0)
            test_sleep_ms(50);
        size_t len = strlen(x->parts[i]);
        cr_assert_eq(write(fd, x->parts[i], len), (ssize_t) len);
    }
    size_t got = 0;
    for (ssize_t n; got < sizeof x->answer - 1 && (n = read(fd, x->answer + got, sizeof x->answer - 1 - got)) > 0;)
        got += (size_t) n;
    x->answer[got] = '\0';
    close(fd);
}

static int on_ready(keel_app *app, void *userdata)
{
    for (size_t i = 0; i < rec.n_x; i++)
        run_exchange(keel_http_server_port(rec.server), &rec.x[i]);
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
    return 0;
}

static int on_stop(keel_app *app, void *userdata)
{
    return keel_http_server_stop_and_free(app, &rec.server);
}

static void run(exchange *x, size_t n)
{
    rec = (record){ .x = x, .n_x = n };
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.ready", on_ready, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "t.stop", on_stop, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));
}

/* The body of each answer in @answer, in order, joined by '|'. */
static void bodies(const char *answer, char *ret, size_t size)
{
    ret[0] = '\0';
    for (const char *p = answer; (p = strstr(p, "\r\n\r\n"));) {
        const char *head = p;
        while (head > answer && strncmp(head, "HTTP/1.1 ", 9) != 0)
            head--;
        const char *cl = strstr(head, "Content-Length: ");
        size_t n = cl && cl < p ? strtoul(cl + 16, NULL, 10) : 0;
        p += 4;
        (void) snprintf(ret + strlen(ret), size - strlen(ret), "%s%.*s", ret[0] ? "|" : "", (int) n, p);
        p += n;
    }
}

Test(body, kept_on_its_path_and_skipped_elsewhere_with_the_pipeline_intact)
{
    exchange x[] = { { .parts = { "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                                  "POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                                  "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
                                  "POST /echo?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\nConnection: close\r\n\r\n"
                                  "0123456789abcdef" } } };
    run(x, 1);
    char got[512];
    bodies(x[0].answer, got, sizeof got);
    cr_assert_str_eq(got, "5:hello|nodata|0:|16:0123456789abcdef", "%s", x[0].answer);
    cr_assert_eq(rec.accept_late, -EBUSY);
}

Test(body, a_body_that_comes_in_pieces_is_served_whole)
{
    exchange x[] = { { .parts = { "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\n", "abc",
                                  "defghi" } },
                     { .parts = { "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
                                  "okGET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" } } };
    run(x, ELEMENTSOF(x));
    char got[512];
    bodies(x[0].answer, got, sizeof got);
    cr_assert_str_eq(got, "9:abcdefghi", "%s", x[0].answer);
    cr_assert(strncmp(x[1].answer, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ", 38) == 0, "%s", x[1].answer);
    cr_assert_not_null(strstr(x[1].answer, "\r\n\r\n2:ok"), "%s", x[1].answer);
}

Test(body, chunked_is_411_and_past_the_limit_413_and_the_connection_closes)
{
    exchange x[] = {
        { .parts = { "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                     "GET /other HTTP/1.1\r\nHost: x\r\n\r\n" } },
        { .parts = { "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n" } }, /* the body never comes */
        { .parts = { "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n" } },
        { .parts = { "POST /json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" } },
        { .parts = { "POST /other HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     "5\r\nhello\r\n0\r\n\r\n" } },
    };
    run(x, ELEMENTSOF(x));
    cr_assert(strncmp(x[0].answer, "HTTP/1.1 411 ", 13) == 0, "%s", x[0].answer);
    cr_assert_null(strstr(x[0].answer + 13, "HTTP/1.1"), "one answer, then the close: %s", x[0].answer);
    cr_assert_not_null(strstr(x[0].answer, "Content-Type: text/plain"), "%s", x[0].answer);
    cr_assert(strncmp(x[1].answer, "HTTP/1.1 413 ", 13) == 0, "%s", x[1].answer);
    cr_assert(strncmp(x[2].answer, "HTTP/1.1 413 ", 13) == 0, "%s", x[2].answer);
    cr_assert_not_null(strstr(x[2].answer, "Content-Type: application/json"), "%s", x[2].answer);
    cr_assert_not_null(strstr(x[2].answer, "{\"error\":\"content_too_large\""), "%s", x[2].answer);
    cr_assert(strncmp(x[3].answer, "HTTP/1.1 411 ", 13) == 0, "%s", x[3].answer);
    cr_assert_not_null(strstr(x[3].answer, "{\"error\":\"length_required\""), "%s", x[3].answer);
    char got[64];
    bodies(x[4].answer, got, sizeof got);
    cr_assert_str_eq(got, "nodata", "a path that takes no body skips a chunked one as before: %s", x[4].answer);
}

Test(body, accept_body_checks_its_arguments)
{
    keel_http_options o = { .service = "probe", .label = "probe server", .handler = handler };
    keel_http_server *s = keel_http_server_new(t.app, &o);
    cr_assert_not_null(s);
    cr_assert_eq(keel_http_server_accept_body(NULL, "/a", 1, 0), -EINVAL);
    cr_assert_eq(keel_http_server_accept_body(s, "a", 1, 0), -EINVAL);
    cr_assert_eq(keel_http_server_accept_body(s, "/a", 0, 0), -EINVAL);
    cr_assert_eq(keel_http_server_accept_body(s, "/a", KEEL_HTTP_BODY_MAX + 1, 0), -EINVAL);
    cr_assert_eq(keel_http_server_accept_body(s, "/a", 1, 1u << 7), -EINVAL);
    char path[8];
    for (int i = 0; i < 8; i++) {
        (void) snprintf(path, sizeof path, "/p%d", i);
        cr_assert_eq(keel_http_server_accept_body(s, path, 10, 0), 0);
    }
    cr_assert_eq(keel_http_server_accept_body(s, "/p3", 20, 0), 0, "a path given again takes the new limit");
    cr_assert_eq(keel_http_server_accept_body(s, "/p8", 10, 0), -E2BIG);
    cr_assert_null(keel_http_server_free(s));
}
