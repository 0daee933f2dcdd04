/* SPDX-License-Identifier: MIT */
/*
 * The end-to-end check of a start: a GET to the server's own socket, answered by its
 * polling thread, retried with a millisecond backoff until it answers or KEEL_HTTP_READY_TIMEOUT_USEC
 * passes. A plain server is asked by Keel itself: a request and the status line of its answer are
 * all a check needs, and loading libcurl for it was a third of the time to READY=1
 * (docs/decisions/0026). A TLS server is asked through libcurl, since libkeel links no TLS library.
 */
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "curl-internal.h"
#include "http-internal.h"

/* ---- a plain server: Keel's own GET ------------------------------------------------------------- */

/* Where to ask: the address the socket is bound to (it may be systemd's); bound to every address,
 * loopback of the family that reaches it (IPv4 for a dual-stack [::]). */
static socklen_t target(const keel_http_server *s, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof *ss;
    if (getsockname(s->listen_fd, (struct sockaddr *) ss, &len) < 0)
        return 0;
    if (!s->wildcard)
        return len;
    int v6only = 0;
    socklen_t n = sizeof v6only;
    if (ss->ss_family == AF_INET6 && getsockopt(s->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &n) == 0 && v6only) {
        ((struct sockaddr_in6 *) ss)->sin6_addr = in6addr_loopback;
        return len;
    }
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(s->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    memcpy(ss, &in, sizeof in);
    return sizeof in;
}

/* Waits until @fd is ready for @events or @deadline passes: 0, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, keel_usec_t deadline)
{
    for (;;) {
        keel_usec_t now = keel_now();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, (int) MIN((deadline - now + 999) / 1000, (keel_usec_t) INT32_MAX));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int connect_to(int fd, const struct sockaddr *sa, socklen_t len, keel_usec_t deadline)
{
    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -errno;
    int r = wait_fd(fd, POLLOUT, deadline), error = 0;
    socklen_t n = sizeof error;
    if (r >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &n) < 0)
        return -errno;
    return r < 0 ? r : -error;
}

/* Reads until the status line's "HTTP/1.x NNN": 0 when it came, -EPROTO for anything else. */
static int read_status(int fd, keel_usec_t deadline)
{
    char b[16];
    size_t have = 0;
    while (have < 12) {
        ssize_t n = recv(fd, b + have, 12 - have, 0);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        int r = n < 0 ? wait_fd(fd, POLLIN, deadline) : 0;
        if (r < 0)
            return r;
        have += n > 0 ? (size_t) n : 0;
    }
    bool status = memcmp(b, "HTTP/1.", 7) == 0 && b[8] == ' ' && b[9] >= '1' && b[9] <= '5' && b[10] >= '0' && b[10] <= '9' &&
                  b[11] >= '0' && b[11] <= '9';
    return status ? 0 : -EPROTO;
}

/* One attempt: 0 once an HTTP answer came back (a 404 is an answer too), else a negative errno,
 * with the step that failed in *@step. */
static int ask_once(const struct sockaddr *sa, socklen_t len, const char *request, size_t size, keel_usec_t deadline,
                    const char **step)
{
    _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    *step = "socket";
    if (fd < 0)
        return -errno;
    *step = "connect";
    int r = connect_to(fd, sa, len, deadline);
    if (r < 0)
        return r;
    /* A request this small fits any socket buffer of a connection just made. */
    *step = "send";
    if (send(fd, request, size, MSG_NOSIGNAL) != (ssize_t) size)
        return errno ? -errno : -EIO;
    *step = "the answer's status line";
    return read_status(fd, deadline);
}

static void pause_for(keel_usec_t usec)
{
    struct timespec ts = { .tv_sec = (time_t) (usec / KEEL_USEC_PER_SEC), .tv_nsec = (long) (usec % KEEL_USEC_PER_SEC) * 1000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Success, or retry with a short backoff until a bounded error; never cut short by a signal, which
 * takes effect when the start observer returns. */
static int wait_ready_plain(keel_http_server *s)
{
    struct sockaddr_storage ss;
    socklen_t len = target(s, &ss);
    if (len == 0)
        return keel_app_fail(s->app, -errno, "Cannot confirm %s ready: its socket has no address: %m", s->label);
    char request[sizeof s->bound + 128];
    int size =
        snprintf(request, sizeof request,
                 "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: " KEEL__HTTP_READY_AGENT "\r\nConnection: close\r\n\r\n", s->bound);
    keel_usec_t deadline = keel_now() + KEEL_HTTP_READY_TIMEOUT_USEC, backoff = KEEL_USEC_PER_MSEC;
    const char *step = "";
    int r;
    while ((r = ask_once((struct sockaddr *) &ss, len, request, (size_t) size, deadline, &step)) < 0 && keel_now() < deadline) {
        keel_log_service(s->service, KEEL_LOG_DEBUG, "Unable to confirm the server ready: %s: %s; retrying in %llums", step,
                         strerror(-r), (unsigned long long) (backoff / 1000));
        pause_for(backoff);
        backoff = MIN(backoff * 2, 64 * KEEL_USEC_PER_MSEC);
    }
    if (r < 0)
        return keel_app_fail(s->app, -ETIMEDOUT, "%s[%s] did not answer within %llus: %s: %s", s->label, s->bound,
                             (unsigned long long) (KEEL_HTTP_READY_TIMEOUT_USEC / KEEL_USEC_PER_SEC), step, strerror(-r));
    return 0;
}

/* ---- a TLS server: libcurl ---------------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *userdata)
{
    return size * n;
}

static CURL *ready_check_new(const keel_curl *c, const char *url)
{
    CURL *curl = c->easy_init();
    if (!curl)
        return NULL;
    (void) c->easy_setopt(curl, CURLOPT_URL, url);
    (void) c->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    (void) c->easy_setopt(curl, CURLOPT_NOPROXY, "*");
    (void) c->easy_setopt(curl, CURLOPT_USERAGENT, KEEL__HTTP_READY_AGENT);
    (void) c->easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    /* The server answering over TLS is what is checked, not who it says it is. Nothing is
     * verified: loading the system's trust store (hundreds of certificates) would be most of the
     * check's time. */
    (void) c->easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    (void) c->easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    (void) c->easy_setopt(curl, CURLOPT_CAINFO, NULL);
    (void) c->easy_setopt(curl, CURLOPT_CAPATH, NULL);
    return curl;
}

static int wait_ready_tls(keel_http_server *s)
{
    const keel_curl *c;
    struct sockaddr_storage ss;
    char where[sizeof s->bound], url[sizeof s->bound + 16];

    keel__curl_schedule_unload(s->app);
    if (keel__curl_load(&c) < 0)
        return keel_app_fail(s->app, -ENOENT,
                             "Cannot confirm %s ready: libcurl (libcurl-gnutls.so.4 or libcurl.so.4) cannot be loaded", s->label);
    if (target(s, &ss) == 0)
        return keel_app_fail(s->app, -errno, "Cannot confirm %s ready: its socket has no address: %m", s->label);
    keel__http_format_peer((struct sockaddr *) &ss, where, sizeof where); /* "[::1]:8443" for an IPv6-only "[::]" */
    (void) snprintf(url, sizeof url, "https://%s/", where);
    CURL *curl = ready_check_new(c, url);
    if (!curl)
        return keel_app_fail(s->app, -ENOMEM, "Cannot confirm %s ready: out of memory", s->label);

    keel_usec_t deadline = keel_now() + KEEL_HTTP_READY_TIMEOUT_USEC, backoff = KEEL_USEC_PER_MSEC;
    CURLcode code;
    /* Each attempt may take what is left of the budget: an injected request delay is a slow
     * answer, not an absent server. */
    for (;;) {
        keel_usec_t now = keel_now();
        (void) c->easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) ((deadline > now ? deadline - now : 1000) / 1000 + 1));
        code = c->easy_perform(curl);
        if (code == CURLE_OK || keel_now() >= deadline)
            break;
        keel_log_service(s->service, KEEL_LOG_DEBUG, "Unable to confirm the server ready: %s; retrying in %llums",
                         c->easy_strerror(code), (unsigned long long) (backoff / 1000));
        pause_for(backoff);
        backoff = MIN(backoff * 2, 64 * KEEL_USEC_PER_MSEC);
    }
    c->easy_cleanup(curl);
    if (code != CURLE_OK)
        return keel_app_fail(s->app, -ETIMEDOUT, "%s[%s] did not answer within %llus: %s", s->label, s->bound,
                             (unsigned long long) (KEEL_HTTP_READY_TIMEOUT_USEC / KEEL_USEC_PER_SEC), c->easy_strerror(code));
    return 0;
}

int keel__http_wait_ready(keel_http_server *s)
{
    return s->tls ? wait_ready_tls(s) : wait_ready_plain(s);
}
