/* SPDX-License-Identifier: MIT */
/*
 * What a slow client may hold, on the polling thread. libmicrohttpd's timeout counts silence
 * only, so a client sending a byte a second keeps a connection forever; here every connection
 * waiting for a request's head (from its start, or from the previous answer: an idle keep-alive
 * connection too) must have it within http.request_header_timeout, and a body must arrive within
 * http.request_body_timeout of its head. And once a server is near its connection limit, a new
 * connection takes the place of the one that has waited longest for a head, so that a probe that
 * sends its request at once is answered however many slow clients hold the rest; so does the
 * next connection when the process is out of descriptors, whichever server's clients hold them.
 *
 * MHD cannot close a connection on request: shutdown(2) of its socket makes its next read see
 * the end, and it closes the connection itself.
 */
#include <sys/socket.h>

#include <microhttpd.h>

#include "http-internal.h"

static const char *const reasons[] = {
    [CUT_HEADER_TIMEOUT] = "header_timeout",
    [CUT_BODY_TIMEOUT] = "body_timeout",
    [CUT_EVICTED] = "evicted",
};

/* Once draining, a head has a second at most: an idle connection closes as MHD's one-second
 * timeout would close it (drain.c), and one that trickles bytes does not hold up the drain. */
static keel_usec_t limit_of(const keel_http_server *s, conn_phase phase)
{
    if (phase == CONN_WAIT_HEAD)
        return atomic_load(&s->draining) ? MIN(s->header_timeout, KEEL_USEC_PER_SEC) : s->header_timeout;
    return phase == CONN_WAIT_BODY ? s->body_timeout : KEEL_USEC_INFINITY;
}

void keel__http_conn_wait(keel_http_server *s, connection_state *cs, conn_phase phase)
{
    cs->phase = phase;
    cs->since = keel_now();
    keel_usec_t limit = limit_of(s, phase);
    if (limit != KEEL_USEC_INFINITY)
        s->deadline_at = MIN(s->deadline_at, cs->since + limit);
}

/* Counted before the shutdown, so that a client that sees its connection end and then asks
 * /metrics finds the cut already there. */
static void cut(keel_http_server *s, connection_state *cs, conn_cut reason)
{
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(cs->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (cs->cut || !fd)
        return;
    cs->cut = true;
    if (!s->cuts[reason])
        (void) keel_metrics_counter(keel_app_metrics(s->app), "keel_http_connections_cut_total",
                                    "Connections closed for holding a place without a request: by reason.",
                                    (const char *const[]){ "service", s->service, "reason", reasons[reason], NULL },
                                    &s->cuts[reason]);
    keel_counter_add(s->cuts[reason], 1);
    keel_log_service(s->service, KEEL_LOG_DEBUG, "Closing a connection: %s", reasons[reason]);
    (void) shutdown(fd->connect_fd, SHUT_RDWR); /* fails only once the peer is gone: MHD closes it then */
}

void keel__http_deadlines_run(keel_http_server *s)
{
    keel_usec_t now = keel_now();
    if (now < s->deadline_at)
        return;
    s->deadline_at = KEEL_USEC_INFINITY;
    for (size_t i = 0; i < s->n_conns; i++) {
        connection_state *cs = s->conns[i];
        keel_usec_t limit = limit_of(s, cs->phase);
        if (cs->cut || limit == KEEL_USEC_INFINITY)
            continue;
        if (now - cs->since >= limit)
            cut(s, cs, cs->phase == CONN_WAIT_HEAD ? CUT_HEADER_TIMEOUT : CUT_BODY_TIMEOUT);
        else
            s->deadline_at = MIN(s->deadline_at, cs->since + limit);
    }
}

int keel__http_deadlines_timeout(const keel_http_server *s)
{
    if (s->deadline_at == KEEL_USEC_INFINITY)
        return -1;
    keel_usec_t now = keel_now();
    return s->deadline_at <= now ? 0 : (int) MIN((s->deadline_at - now + 999) / 1000, (keel_usec_t) INT32_MAX);
}

/* A place kept free for connections that come with their request: an eighth of the limit. */
static unsigned reserve_of(const keel_http_server *s)
{
    return MAX(s->connection_limit / 8, 1U);
}

/* Cuts the connection other than @arrived that has waited longest for a head; false if none does. */
static bool evict_oldest(keel_http_server *s, const connection_state *arrived)
{
    connection_state *oldest = NULL;
    for (size_t i = 0; i < s->n_conns; i++) {
        connection_state *cs = s->conns[i];
        if (cs != arrived && !cs->cut && cs->phase == CONN_WAIT_HEAD && (!oldest || cs->since < oldest->since))
            oldest = cs;
    }
    if (oldest)
        cut(s, oldest, CUT_EVICTED);
    return oldest;
}

void keel__http_make_room(keel_http_server *s, connection_state *arrived)
{
    if (atomic_load(&s->connections) + reserve_of(s) <= s->connection_limit)
        return;
    (void) evict_oldest(s, arrived);
}

bool keel__http_make_room_for_fds(keel_http_server *s)
{
    return evict_oldest(s, NULL);
}
