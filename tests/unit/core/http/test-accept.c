/* SPDX-License-Identifier: MIT */
/* New connections (core/http/accept.c) when descriptors run out: the reserve descriptor, given up
 * to tell the next client "503 out of descriptors", even after a refusal lost it to another
 * thread. */
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apptest.h"
#include "http-internal.h"
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

TestSuite(accept, .init = setup, .fini = teardown, .timeout = 60);

static struct {
    keel_http_server *server;
    char answer[512];
} rec;

/* "/lose-reserve" leaves the server as a refusal does when another thread takes the reserve's
 * number between its close and its reopening: without one. On the polling thread, its owner. */
static int handler(keel_http_request *req, void *userdata)
{
    keel_http_server *s = req->server;
    if (streq(keel_http_request_path(req), "/lose-reserve")) {
        cr_assert_geq(s->reserve_fd, 0);
        (void) close(s->reserve_fd);
        s->reserve_fd = -EBADF;
    }
    return keel_http_respond_static(req, 200, "text/plain", "ok");
}

static int on_start(keel_app *app, void *userdata)
{
    keel_http_options o = { .service = "probe", .label = "probe server", .handler = handler };
    (void) snprintf(o.address.host, sizeof o.address.host, "127.0.0.1");
    return keel_http_server_start_new(app, &o, &rec.server);
}

static int on_stop(keel_app *app, void *userdata)
{
    return keel_http_server_stop_and_free(app, &rec.server);
}

static int connect_to_server(void)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(keel_http_server_port(rec.server)) };
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *) &in, sizeof in), 0);
    return fd;
}

/* What the server sends on @fd within 2 s, until it closes, into @buf. */
static void read_answer(int fd, char *buf, size_t size)
{
    size_t got = 0;
    for (struct pollfd p = { .fd = fd, .events = POLLIN }; got < size - 1 && poll(&p, 1, 2000) == 1;) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    buf[got] = '\0';
}

static void get(const char *path, char *buf, size_t size)
{
    char request[128];
    int fd = connect_to_server();
    int n = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    cr_assert_eq(send(fd, request, (size_t) n, MSG_NOSIGNAL), n);
    read_answer(fd, buf, size);
    (void) close(fd);
}

static int on_ready(keel_app *app, void *userdata)
{
    char answer[512];
    get("/lose-reserve", answer, sizeof answer);
    cr_assert_eq(strncmp(answer, "HTTP/1.1 200 ", 13), 0, "%s", answer);
    for (int i = 0; i < 200 && keel_http_server_connections(rec.server) > 0; i++)
        test_sleep_ms(10);
    cr_assert_eq(keel_http_server_connections(rec.server), 0);

    /* Every descriptor taken but the one the client connects with: the server's accept() fails. */
    struct rlimit before, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &before), 0);
    low = (struct rlimit){ .rlim_cur = 256, .rlim_max = before.rlim_max };
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int taken[256], n_taken = 0;
    for (int fd; n_taken < 256 && (fd = dup(STDERR_FILENO)) >= 0;)
        taken[n_taken++] = fd;
    cr_assert_gt(n_taken, 0);
    (void) close(taken[--n_taken]);
    int client = connect_to_server();
    read_answer(client, rec.answer, sizeof rec.answer);
    (void) close(client);
    while (n_taken > 0)
        (void) close(taken[--n_taken]);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &before), 0);
    return keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
}

Test(accept, a_client_is_told_the_server_is_out_of_descriptors_after_the_reserve_was_lost_once)
{
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.ready", on_ready, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "t.stop", on_stop, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));
    cr_assert_eq(strncmp(rec.answer, "HTTP/1.1 503 ", 13), 0, "%s", rec.answer);
    cr_assert_not_null(strstr(rec.answer, "out of descriptors"), "%s", rec.answer);
}
