/* SPDX-License-Identifier: MIT */
/*
 * What a slow client may hold, on the polling thread. A timeout that counted silence only would
 * let a client sending a byte a second keep a connection forever; here every connection waiting
 * for a request's head (from its start, or from the previous answer: an idle keep-alive connection
 * too) or finishing its TLS handshake must have it within http.request_header_timeout, and a body
 * must arrive within http.request_body_timeout of its head. And once a server is near its
 * connection limit, a new connection takes the place of the one that has waited longest without
 * sending anything, so that a probe that sends its request at once is answered however many slow
 * clients hold the rest; so does the next connection when the process is out of descriptors.
 */
#include <sys/ioctl.h>

#include "http-internal.h"

/* How long a closing connection reads what its client still sends (conn.c). */
#define LINGER_USEC (2 * KEEL_USEC_PER_SEC)

static const char *const reasons[] = {
    [CUT_HEADER_TIMEOUT] = "header_timeout", [CUT_BODY_TIMEOUT] = "body_timeout", [CUT_EVICTED] = "evicted",
    [CUT_SEND_TIMEOUT] = "send_timeout",     [CUT_CLIENT_LIMIT] = "client_limit",
};

static keel_usec_t draining_head_deadline(const keel_http_server *s, const connection_state *cs)
{
    keel_usec_t from = cs->in_len > 0 ? MAX(cs->since, s->drain_started) : cs->since;
    return MIN(cs->since + s->header_timeout, from + KEEL_USEC_PER_SEC);
}

/* When @cs must have moved on: a head within http.request_header_timeout (once draining, a
 * second at most: one that trickles bytes does not hold up the drain; for a head already under
 * way, a second from the drain's start), a body within http.request_body_timeout, and in every
 * phase no silence longer than http.connection_timeout. A request that waits for its handler
 * (delayed, deferred) is the server's doing: not timed. */
static keel_usec_t deadline_of(const keel_http_server *s, const connection_state *cs)
{
    keel_usec_t limit;
    switch (cs->phase) {
    case CONN_HANDSHAKE:
    case CONN_WAIT_HEAD:
        if (atomic_load(&s->draining))
            return MIN(draining_head_deadline(s, cs), cs->active + s->send_timeout);
        limit = s->header_timeout;
        break;
    case CONN_WAIT_BODY:
        limit = s->body_timeout;
        break;
    case CONN_LINGER:
        return cs->since + LINGER_USEC;
    default:
        return cs->out_len > 0 ? cs->active + s->send_timeout : KEEL_USEC_INFINITY;
    }
    return MIN(cs->since + limit, cs->active + s->send_timeout);
}

void keel__http_conn_wait(keel_http_server *s, connection_state *cs, conn_phase phase)
{
    cs->phase = phase;
    cs->since = s->now;
    s->deadline_at = MIN(s->deadline_at, deadline_of(s, cs));
}

/* Counted before the close, so that a client that sees its connection end and then asks /metrics
 * finds the cut already there. */
void keel__http_count_cut(keel_http_server *s, conn_cut reason)
{
    if (!s->cuts[reason])
        (void) keel_metrics_counter(keel_app_metrics(s->app), "keel_http_connections_cut_total",
                                    "Connections the server closed without a request served: a slow, idle or evicted one, "
                                    "or one past the per-client limit; by reason.",
                                    (const char *const[]){ "service", s->service, "reason", reasons[reason], NULL },
                                    &s->cuts[reason]);
    keel_counter_add(s->cuts[reason], 1);
}

static void cut(keel_http_server *s, connection_state *cs, conn_cut reason)
{
    keel__http_count_cut(s, reason);
    keel_log_service(s->service, KEEL_LOG_DEBUG, "Closing a connection: %s", reasons[reason]);
    keel__http_conn_close(cs);
}

/* Whether nothing waits in @cs's socket. */
static bool silent(const connection_state *cs)
{
    int pending = 0;
    return ioctl(cs->fd, FIONREAD, &pending) == 0 && pending == 0;
}

static conn_cut reason_of(const connection_state *cs)
{
    return cs->phase == CONN_WAIT_BODY ? CUT_BODY_TIMEOUT : cs->phase == CONN_SERVING ? CUT_SEND_TIMEOUT : CUT_HEADER_TIMEOUT;
}

void keel__http_deadlines_run(keel_http_server *s)
{
    keel_usec_t now = keel_now();
    if (now < s->deadline_at)
        return;
    s->deadline_at = KEEL_USEC_INFINITY;
    bool draining = atomic_load(&s->draining);
    for (size_t i = s->n_conns; i > 0; i--) { /* backwards: a close moves the last one into its place */
        connection_state *cs = s->conns[i - 1];
        keel_usec_t at = deadline_of(s, cs);
        if (now < at)
            s->deadline_at = MIN(s->deadline_at, at);
        else if (cs->phase == CONN_LINGER || (draining && cs->phase == CONN_WAIT_HEAD && cs->in_len == 0 && silent(cs)))
            keel__http_conn_close(cs); /* answered, or idle at a drain: its end is no cut */
        else if (draining && cs->phase == CONN_WAIT_HEAD && cs->in_len == 0)
            s->deadline_at = MIN(s->deadline_at, now + KEEL_USEC_PER_MSEC); /* its request is in its socket: read next turn */
        else
            cut(s, cs, reason_of(cs));
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

/* A connection that has sent no request yet is given this long before a newcomer may take its
 * place: the clients of a burst that connect first and write a moment later all hold requests. */
#define EVICT_AFTER (1 * KEEL_USEC_PER_SEC)

/* Whether @cs holds a place without a request: kept alive after an answer with nothing sent
 * since, or, for EVICT_AFTER at least (unless @any_age), silent or sending a head that has not
 * come whole, or a TLS handshake; and nothing more of its waits in its socket. */
static bool evictable(const connection_state *cs, keel_usec_t now, bool any_age)
{
    if (cs->phase != CONN_WAIT_HEAD && cs->phase != CONN_HANDSHAKE)
        return false;
    if (!any_age && !(cs->answers > 0 && cs->in_len == 0) && now - cs->since < EVICT_AFTER)
        return false;
    return silent(cs);
}

/* Cuts the connection other than @arrived that has waited longest and holds a place without a
 * request; false if none does. A candidate whose request turns out to have come is passed over
 * (a few at most: each costs a system call). */
static bool evict_oldest(keel_http_server *s, const connection_state *arrived, bool any_age)
{
    const connection_state *passed[8]; /* candidates whose request turned out to have come */
    size_t n_passed = 0;
    keel_usec_t now = keel_now();
    while (n_passed < ELEMENTSOF(passed)) {
        connection_state *oldest = NULL;
        for (size_t i = 0; i < s->n_conns; i++) {
            connection_state *cs = s->conns[i];
            bool waits = cs->phase == CONN_HANDSHAKE || cs->phase == CONN_WAIT_HEAD;
            bool seen = false;
            for (size_t j = 0; j < n_passed && !seen; j++)
                seen = passed[j] == cs;
            if (cs != arrived && waits && !seen && (!oldest || cs->since < oldest->since))
                oldest = cs;
        }
        if (!oldest)
            return false;
        if (evictable(oldest, now, any_age)) {
            cut(s, oldest, CUT_EVICTED);
            return true;
        }
        passed[n_passed++] = oldest;
    }
    return false;
}

bool keel__http_make_room(keel_http_server *s, connection_state *arrived)
{
    if (atomic_load(&s->connections) + reserve_of(s) <= s->connection_limit)
        return false;
    return evict_oldest(s, arrived, false);
}

bool keel__http_make_room_for_fds(keel_http_server *s)
{
    return evict_oldest(s, NULL, true); /* out of descriptors: no place is kept for a newcomer */
}
