/* SPDX-License-Identifier: MIT */
/* A request head as any client sends it, parsed by the real libmicrohttpd with the server's own
 * callbacks (core/http/head.c): no head that reaches a handler unrefused has a part cut short by
 * a NUL byte, and a refusal always has a status and a reason. Each input is written to one end of a socket pair
 * whose other end MHD reads; only its first request counts (the answer closes the connection). */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static keel_http_server server = { .header_limit = 8192 };

static struct {
    bool closed, served; /* served: reached the handler unrefused */
} outcome;

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(connection_state));
        if (!*socket_context)
            abort();
        return;
    }
    free(*socket_context);
    *socket_context = NULL;
    outcome.closed = true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    static struct MHD_Response *answer;
    if (!*con_cls) {
        const keel__http_refusal *r = keel__http_head_refusal(&server, c, method, version);
        if (r && (r->status < 400 || !r->body || !r->body[0]))
            abort(); /* a refusal names its reason */
        outcome.served = !r;
        *con_cls = &outcome;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!answer) {
        answer = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        if (!answer || MHD_add_response_header(answer, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)
            abort();
    }
    return MHD_queue_response(c, 200, answer);
}

static struct MHD_Daemon *daemon_once(void)
{
    static struct MHD_Daemon *d;
    if (!d)
        d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_request, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                             (size_t) (server.header_limit + KEEL_HTTP_POOL_PAST_HEAD), MHD_OPTION_NOTIFY_CONNECTION, on_connection,
                             NULL, MHD_OPTION_URI_LOG_CALLBACK, keel__http_on_target, NULL, MHD_OPTION_UNESCAPE_CALLBACK,
                             keel__http_unescape, NULL, MHD_OPTION_END);
    if (!d)
        abort();
    return d;
}

/* Where the first head ends (past its last line) as libmicrohttpd 0.9.75 reads one, or NULL if
 * the input has none. A line ends at LF or CRLF. Before the request line, a line that is empty or
 * starts with a NUL is skipped; after it, such a line ends the head, and so does one that starts
 * with a colon after the first header line (MHD writes a NUL over the colon before it looks for
 * the empty line). None of what follows reaches the handler as part of the head. */
static const uint8_t *head_end(const uint8_t *p, const uint8_t *end, const uint8_t **start)
{
    size_t lines = 0; /* of the head so far */
    for (const uint8_t *lf; p < end && (lf = memchr(p, '\n', (size_t) (end - p))); p = lf + 1) {
        bool empty = lf == p || p[0] == '\0' || (lf == p + 1 && p[0] == '\r');
        if (lines > 0 && (empty || (lines > 1 && p[0] == ':')))
            return lf + 1;
        if (lines == 0 && !empty)
            *start = p;
        lines += !empty || lines > 0;
    }
    return NULL;
}

/* Whether a NUL in [@p, @end) has anything but NULs and a line end after it on its line. NULs
 * that end a line may be taken for the line end's CR: the value is the same as RFC 9110 §5.5's
 * replacing them with spaces, which end the value as trailing whitespace, would make it. */
static bool cut_by_nul(const uint8_t *p, const uint8_t *end)
{
    for (const uint8_t *nul; (nul = memchr(p, '\0', (size_t) (end - p))); p = nul + 1) {
        const uint8_t *q = nul;
        while (q < end && *q == '\0')
            q++;
        if (q < end && *q != '\n' && !(*q == '\r' && q + 1 < end && q[1] == '\n'))
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct MHD_Daemon *d = daemon_once();
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        abort();
    outcome.closed = outcome.served = false;
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (write(fds[0], data, size) != (ssize_t) size || shutdown(fds[0], SHUT_WR) < 0 ||
        MHD_add_connection(d, fds[1], (struct sockaddr *) &peer, sizeof peer) != MHD_YES)
        abort();
    for (int turns = 0; !outcome.closed && turns < 10000; turns++) /* each turn reads or writes, or closes */
        (void) MHD_run(d);
    if (!outcome.closed)
        abort(); /* MHD should have answered or given up on a head that can never complete */
    close(fds[0]);

    const uint8_t *start = NULL, *end = head_end(data, data + size, &start);
    if (outcome.served && (!end || cut_by_nul(start, end)))
        abort(); /* a value cut short by a NUL reached a handler, or something not a head did */
    return 0;
}
