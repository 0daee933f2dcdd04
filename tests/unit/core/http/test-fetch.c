/* SPDX-License-Identifier: MIT */
/* keel_fetch against a keel_http_server of the same app, from a thread of its own (as a service's
 * task would), and handlers mounted on that server by keel_http_mount_add(). */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

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

TestSuite(fetch, .init = setup, .fini = teardown, .timeout = 60);

#define BIG "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int own_handler(keel_http_request *req, void *userdata)
{
    const char *path = keel_http_request_path(req);
    if (streq(path, "/big"))
        return keel_http_respond_text(req, 200, "text/plain", BIG);
    char body[256];
    const char *h = keel_http_request_header(req, "X-Test");
    (void) snprintf(body, sizeof body, "own %s %s %s", keel_http_request_method(req), path, h ? h : "-");
    return keel_http_respond(req, 404, "text/plain", body, strlen(body), (const char *const[]){ "Replay-Nonce", "n1", NULL });
}

static int mounted_handler(keel_http_request *req, void *userdata)
{
    char body[256];
    (void) snprintf(body, sizeof body, "mounted %s %s", (const char *) userdata, keel_http_request_path(req));
    return keel_http_respond_text(req, 200, "text/plain", body);
}

typedef struct record {
    keel_http_server *server;
    char base[64];
    bool serving_before, serving_in_ready, serving_after_stop;
    /* What the client thread saw. */
    int r_own, r_mounted, r_removed, r_head, r_post, r_big, r_refused, r_bad_url, r_new_half_tls;
    char own[256], mounted[256], removed[256], nonce[64], missing_header[8], error_refused[KEEL_FETCH_ERROR_MAX];
    unsigned own_status, mounted_status, head_status, post_status;
    size_t head_size;
    bool mapped_with_client, mapped_after_free;
} record;
static record rec;

static int on_start(keel_app *app, void *userdata)
{
    keel_http_options o = { .service = "probe", .label = "probe server", .handler = own_handler };
    (void) snprintf(o.address.host, sizeof o.address.host, "127.0.0.1");
    rec.serving_before = keel_http_serving(app, "probe");
    return keel_http_server_start_new(app, &o, &rec.server);
}

static int get(keel_fetch *f, const char *method, const char *path, unsigned *status, char *text, size_t size)
{
    char url[128], error[KEEL_FETCH_ERROR_MAX];
    keel_fetch_response resp = {};
    (void) snprintf(url, sizeof url, "%s%s", rec.base, path);
    int r = keel_fetch_request(f, method, url, (const char *const[]){ "X-Test: yes", NULL }, "a=1", 3, &resp, error);
    if (r >= 0) {
        *status = resp.status;
        (void) snprintf(text, size, "%s", resp.body);
        if (streq(path, "/own"))
            (void) keel_fetch_response_header(&resp, "replay-nonce", rec.nonce, sizeof rec.nonce);
        if (!keel_fetch_response_header(&resp, "X-Absent", rec.missing_header, sizeof rec.missing_header))
            (void) snprintf(rec.missing_header, sizeof rec.missing_header, "none");
        if (streq(method, "HEAD"))
            rec.head_size = resp.size;
    }
    keel_fetch_response_done(&resp);
    return r;
}

/* The requests a service's task would make, while the main thread waits in its observer. */
static void *client_thread(void *userdata)
{
    keel_app *app = userdata;
    keel_fetch *f = NULL;
    char text[256];
    if (keel_fetch_new(&(keel_fetch_options){ .body_limit = 64 }, &f, NULL) < 0)
        return NULL;
    rec.mapped_with_client = test_curl_mapped();
    rec.r_own = get(f, "GET", "/own", &rec.own_status, rec.own, sizeof rec.own);
    keel_http_mount *m = NULL;
    if (keel_http_mount_add(app, "probe", "/.well-known/acme-challenge/", mounted_handler, "m1", &m) >= 0) {
        rec.r_mounted = get(f, "GET", "/.well-known/acme-challenge/tok", &rec.mounted_status, rec.mounted, sizeof rec.mounted);
        (void) keel_http_mount_remove(m);
    }
    rec.r_removed = get(f, "GET", "/.well-known/acme-challenge/tok", &rec.own_status, rec.removed, sizeof rec.removed);
    rec.r_head = get(f, "HEAD", "/own", &rec.head_status, text, sizeof text);
    rec.r_post = get(f, "POST", "/own", &rec.post_status, text, sizeof text);
    rec.r_big = get(f, "GET", "/big", &rec.post_status, text, sizeof text);
    char error[KEEL_FETCH_ERROR_MAX];
    keel_fetch_response resp = {};
    rec.r_refused = keel_fetch_request(f, "GET", "http://127.0.0.1:1/", NULL, NULL, 0, &resp, rec.error_refused);
    rec.r_bad_url = keel_fetch_request(f, "GET", "gopher://127.0.0.1/", NULL, NULL, 0, &resp, error);
    (void) keel_fetch_free(f);
    rec.r_new_half_tls = keel_fetch_new(&(keel_fetch_options){ .cert_file = "/x/cert.pem" }, &f, error);
    return NULL;
}

static int on_ready(keel_app *app, void *userdata)
{
    pthread_t th;
    rec.serving_in_ready = keel_http_serving(app, "probe");
    (void) snprintf(rec.base, sizeof rec.base, "http://%s", keel_http_server_address(rec.server));
    cr_assert_eq(pthread_create(&th, NULL, client_thread, app), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
    return 0;
}

static int on_stop(keel_app *app, void *userdata)
{
    int r = keel_http_server_stop_and_free(app, &rec.server);
    rec.serving_after_stop = keel_http_serving(app, "probe");
    return r;
}

Test(fetch, requests_from_a_thread_and_a_mounted_handler)
{
    rec = (record){};
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.fetch", on_ready, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "t.stop", on_stop, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));

    cr_assert_not(rec.serving_before);
    cr_assert(rec.serving_in_ready);
    cr_assert_not(rec.serving_after_stop);
    cr_assert(rec.mapped_with_client);
    cr_assert_eq(rec.r_own, 0);
    cr_assert_eq(rec.own_status, 404, "any status is a result");
    cr_assert_str_eq(rec.own, "own GET /own yes");
    cr_assert_str_eq(rec.nonce, "n1");
    cr_assert_str_eq(rec.missing_header, "none");
    cr_assert_eq(rec.r_mounted, 0, "%d %s", rec.r_mounted, apptest_logs(&t));
    cr_assert_eq(rec.mounted_status, 200);
    cr_assert_str_eq(rec.mounted, "mounted m1 /.well-known/acme-challenge/tok");
    cr_assert_eq(rec.r_removed, 0);
    cr_assert_str_eq(rec.removed, "own GET /.well-known/acme-challenge/tok yes", "removed: the server's own handler again");
    cr_assert_eq(rec.r_head, 0);
    cr_assert_eq(rec.head_status, 404);
    cr_assert_eq(rec.head_size, 0);
    cr_assert_eq(rec.r_post, 0);
    cr_assert_eq(rec.post_status, 404);
    cr_assert_eq(rec.r_big, -EFBIG, "96 bytes against a limit of 64");
    cr_assert_eq(rec.r_refused, -ECONNREFUSED);
    cr_assert(rec.error_refused[0] != '\0');
    cr_assert_eq(rec.r_bad_url, -EINVAL);
    cr_assert_eq(rec.r_new_half_tls, -EINVAL);
    cr_assert_not(test_curl_mapped(), "the last client unloads libcurl");
}

Test(fetch, mount_arguments)
{
    keel_http_mount *m = NULL;
    cr_assert_eq(keel_http_mount_add(t.app, "probe", "no-slash", mounted_handler, NULL, &m), -EINVAL);
    cr_assert_eq(keel_http_mount_add(t.app, "probe", "/x", mounted_handler, NULL, &m), 0);
    cr_assert_null(keel_http_mount_remove(m));
    cr_assert_null(keel_http_mount_remove(NULL));
    cr_assert_not(keel_http_serving(t.app, "probe"));
}

/* Found by fuzz-response-header: a bare CR inside a value came out as it was. */
Test(fetch_header, control_bytes_in_a_value_become_spaces_and_are_trimmed)
{
    char headers[] = "Replay-Nonce:\rer/1\nLocation:  a\x01"
                     "b \r\nRetry-After: 30\n";
    keel_fetch_response resp = { .status = 200, .body = (char *) "", .headers = headers };
    char buf[64];
    cr_assert_str_eq(keel_fetch_response_header(&resp, "Replay-Nonce", buf, sizeof buf), "er/1");
    cr_assert_str_eq(keel_fetch_response_header(&resp, "location", buf, sizeof buf), "a b");
    cr_assert_str_eq(keel_fetch_response_header(&resp, "Retry-After", buf, sizeof buf), "30");
    cr_assert_null(keel_fetch_response_header(&resp, "Link", buf, sizeof buf));
}

/* A listener that never accepts: the kernel takes the connection, the request goes out, and no
 * answer ever comes. */
static int silent_listener(char *url, size_t size)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    cr_assert_geq(l, 0);
    cr_assert_eq(bind(l, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(l, 4), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *) &a, &len), 0);
    (void) snprintf(url, size, "http://127.0.0.1:%u/", ntohs(a.sin_port));
    return l;
}

typedef struct canceller {
    int listener, cancel_fd;
    keel_usec_t at;
} canceller;

/* Cancels once the request's connection is in the listener's queue: the request is in flight. */
static void *cancel_when_connected(void *userdata)
{
    canceller *c = userdata;
    struct pollfd p = { .fd = c->listener, .events = POLLIN };
    if (poll(&p, 1, 10000) == 1) {
        c->at = keel_now();
        (void) eventfd_write(c->cancel_fd, 1);
    }
    return NULL;
}

Test(fetch_cancel, a_cancel_descriptor_ends_an_unanswered_request_at_once)
{
    char url[64], error[KEEL_FETCH_ERROR_MAX];
    int l = silent_listener(url, sizeof url), efd = eventfd(0, EFD_CLOEXEC);
    keel_fetch *f = NULL;
    keel_fetch_response resp = {};
    cr_assert_eq(keel_fetch_new(&(keel_fetch_options){ .timeout = 20 * KEEL_USEC_PER_SEC }, &f, NULL), 0);
    cr_assert_eq(keel_fetch_set_cancel_fd(NULL, efd), -EINVAL);
    cr_assert_eq(keel_fetch_set_cancel_fd(f, efd), 0);

    /* Not readable: an ordinary request, its errors mapped as without a descriptor. */
    cr_assert_eq(keel_fetch_request(f, "GET", "http://127.0.0.1:1/", NULL, NULL, 0, &resp, error), -ECONNREFUSED);

    canceller c = { .listener = l, .cancel_fd = efd };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, cancel_when_connected, &c), 0);
    cr_assert_eq(keel_fetch_request(f, "GET", url, NULL, NULL, 0, &resp, error), -ECANCELED);
    keel_usec_t woke = keel_now();
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert(c.at != 0, "the request never connected");
    cr_assert_lt(woke - c.at, 500 * KEEL_USEC_PER_MSEC, "woke %llu us after the cancel", (unsigned long long) (woke - c.at));

    /* Readable already: cancelled before anything is sent. */
    keel_usec_t t0 = keel_now();
    cr_assert_eq(keel_fetch_request(f, "GET", url, NULL, NULL, 0, &resp, error), -ECANCELED);
    cr_assert_lt(keel_now() - t0, 500 * KEEL_USEC_PER_MSEC);

    /* Removed: the descriptor no longer counts. */
    cr_assert_eq(keel_fetch_set_cancel_fd(f, -1), 0);
    cr_assert_eq(keel_fetch_request(f, "GET", "http://127.0.0.1:1/", NULL, NULL, 0, &resp, error), -ECONNREFUSED);
    keel_fetch_free(f);
    close(efd);
    close(l);
}
