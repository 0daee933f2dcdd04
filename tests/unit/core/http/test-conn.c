/* SPDX-License-Identifier: MIT */
/* A connection's reading and writing (core/http/conn.c) where the socket decides: a "100 Continue"
 * the socket did not take at once. */
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
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

TestSuite(conn, .init = setup, .fini = teardown, .timeout = 60);

static struct {
    keel_http_server *server;
    char answer[1024];
} rec;

static int handler(keel_http_request *req, void *userdata)
{
    return keel_http_respond_static(req, 200, "text/plain", "served");
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

/* A connection whose receive buffer is small and stays so (the kernel grows one it sizes itself):
 * what the server sends fills it soon. */
static int connect_to_server(void)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(keel_http_server_port(rec.server)) };
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ 4096 }, sizeof(int)), 0);
    cr_assert_eq(connect(fd, (struct sockaddr *) &in, sizeof in), 0);
    return fd;
}

static bool same_address(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_family == b->sin_family && a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
}

/* The server's end of the client's connection @fd, found among this process's descriptors by its
 * addresses once the server has accepted it: the test writes into it as if the server had. */
static int server_end_of(int fd)
{
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    cr_assert_eq(getsockname(fd, (struct sockaddr *) &mine, &len), 0);
    for (int tries = 0; tries < 200; tries++, test_sleep_ms(10)) {
        DIR *d = opendir("/proc/self/fd");
        cr_assert_not_null(d);
        int found = -1;
        for (struct dirent *e; found < 0 && (e = readdir(d));) {
            int other = atoi(e->d_name);
            struct sockaddr_in peer;
            len = sizeof peer;
            if (other != fd && other > 2 && getpeername(other, (struct sockaddr *) &peer, &len) == 0 && same_address(&peer, &mine))
                found = other;
        }
        closedir(d);
        if (found >= 0)
            return found;
    }
    cr_assert_fail("the server never accepted the connection");
    return -1;
}

/* Reads exactly @size bytes from @fd into @buf (NULL: dropped) within 2 s; false if they did not come. */
static bool read_exactly(int fd, char *buf, size_t size)
{
    char sink[4096];
    for (size_t got = 0; got < size;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 2000) != 1)
            return false;
        size_t want = buf ? size - got : MIN(size - got, sizeof sink);
        ssize_t n = read(fd, buf ? buf + got : sink, want);
        if (n <= 0)
            return false;
        got += (size_t) n;
    }
    return true;
}

static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* The server's socket is full when the head asking for a "100 Continue" comes: the word waits for
 * room, and goes once the client has read what filled it. It waited for the answer, which waited
 * for the body the client holds back until the word: a stall (over TLS, a busy loop). */
static int on_ready_full(keel_app *app, void *userdata)
{
    static const char head[] = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n";
    int fd = connect_to_server(), server = server_end_of(fd);
    char junk[4096] = { 0 }, got[sizeof CONTINUE];
    size_t filled = 0;
    cr_assert_eq(setsockopt(server, SOL_SOCKET, SO_SNDBUF, &(int){ 4096 }, sizeof(int)), 0);
    /* In smaller and smaller pieces: a socket that refuses a large write may still append a small
     * one to the segment it queues last. Again until a round adds nothing: an acknowledgement of
     * what was in flight makes room. */
    for (size_t before = SIZE_MAX; filled != before; test_sleep_ms(50)) {
        before = filled;
        for (size_t piece = sizeof junk; piece > 0; piece /= 4)
            for (ssize_t n; (n = send(server, junk, piece, MSG_DONTWAIT | MSG_NOSIGNAL)) > 0;)
                filled += (size_t) n;
    }
    cr_assert_gt(filled, 0);
    cr_assert_eq(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t) sizeof head - 1);
    keel_work_stats st = {};
    for (int i = 0; i < 200 && st.in_flight == 0; i++, test_sleep_ms(10))
        keel_work_get_stats(keel_http_server_work(rec.server), &st);
    cr_assert_eq(st.in_flight, 1, "the server took the head");
    test_sleep_ms(50); /* and tried to send its word, right after */
    cr_assert(read_exactly(fd, NULL, filled), "what filled the socket");
    cr_assert(read_exactly(fd, got, sizeof CONTINUE - 1), "no 100 Continue once the socket had room");
    cr_assert_eq(memcmp(got, CONTINUE, sizeof CONTINUE - 1), 0);
    cr_assert_eq(send(fd, "body", 4, MSG_NOSIGNAL), 4);
    ssize_t n = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 2000) == 1)
        n = read(fd, rec.answer, sizeof rec.answer - 1);
    rec.answer[MAX(n, 0)] = '\0';
    close(fd);
    return keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
}

Test(conn, a_100_continue_the_socket_did_not_take_goes_once_it_has_room)
{
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.ready", on_ready_full, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_STOP, KEEL_PHASE_DURING, "t.stop", on_stop, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0, "%s", apptest_logs(&t));
    cr_assert_eq(strncmp(rec.answer, "HTTP/1.1 200 OK\r\n", 17), 0, "%s", rec.answer);
}
