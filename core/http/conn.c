/* SPDX-License-Identifier: MIT */
/*
 * A connection on the polling thread: it reads into a buffer of its own, finds a request's head,
 * skips its body by its framing — or, on a path that takes one, keeps it in the buffer behind the
 * head (body.c) — has the request served (request.c), writes the answer in one
 * write, and goes on with the next request on the connection. A plain connection is edge-triggered
 * (EDGE below; a TLS one level-triggered) and is read only while epoll said it was readable and no
 * read since came back short, unless the client's end was reported (the read that says so is still
 * to come), so a kept-alive request costs one read and one write: no read is made only to hear
 * EAGAIN.
 *
 * A connection that ends while its client may still be sending (a refused head, a body not read,
 * requests pipelined after the last answered one, plain HTTP on a TLS port) shuts down its
 * writing side and reads what comes until the client closes or a moment passes: closing with
 * unread bytes would reset the connection, and the client could lose the answer itself.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http-internal.h"

/* Room past the head limit: a body's first bytes, or the next request, behind a head of the
 * largest size. */
#define IN_PAST_HEAD 1024
/* An answer's buffer larger than this is freed once sent, not kept for the next one. */
#define OUT_KEPT (16 * 1024)
/* Reads one connection makes in a turn of the loop before the others have theirs. */
#define FILLS_PER_TURN 16

/* What a plain connection waits for, once and for all: edge-triggered, so that epoll does not
 * poll again, at every wait, each connection it reported (nginx does the same). A TLS session's
 * reads end at a record's end, not the socket's, so a TLS connection stays level-triggered and
 * says what its session waits for (watch()). */
#define EDGE (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

static void watch(connection_state *cs, uint32_t events)
{
    if (!cs->tls || cs->events == events)
        return;
    (void) epoll_ctl(cs->s->epoll_fd, EPOLL_CTL_MOD, cs->fd, &(struct epoll_event){ .events = events, .data.ptr = cs });
    cs->events = events;
}

bool keel__http_conn_open(keel_http_server *s, int fd, const struct sockaddr_storage *peer)
{
    connection_state *cs = calloc(1, sizeof *cs);
    if (!cs || GROW(s->conns, s->allocated_conns, s->n_conns + 1) < 0) {
        free(cs);
        safe_close(fd);
        return false;
    }
    bool tls = s->tls != NULL;
    *cs = (connection_state){ .s = s, .fd = fd, .peer = *peer, .tls = tls, .readable = true, .active = s->now };
    cs->index = s->n_conns;
    s->conns[s->n_conns++] = cs;
    atomic_fetch_add(&s->connections, 1);
    if (tls && (!keel__http_tls_begin(cs) ||
                epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = cs }) < 0)) {
        keel__http_conn_close(cs);
        return false;
    }
    cs->events = EPOLLIN;
    keel__http_conn_wait(s, cs, tls ? CONN_HANDSHAKE : CONN_WAIT_HEAD);
    keel__http_make_room(s, cs);
    /* Its request often came with it. A plain one joins the epoll set after this first read: added
     * with its bytes still unread, it would be reported once more for nothing. */
    keel__http_conn_run(cs, EPOLLIN);
    if (!tls && cs->fd >= 0 &&
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &(struct epoll_event){ .events = EDGE, .data.ptr = cs }) < 0) {
        keel__http_conn_close(cs);
        return false;
    }
    return true;
}

void keel__http_conn_close(connection_state *cs)
{
    keel_http_server *s = cs->s;
    if (cs->fd < 0)
        return;
    if (cs->busy)
        keel__http_request_end(cs, false);
    if (cs->session)
        s->tls->session_free(cs->session);
    cs->session = NULL;
    (void) epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, cs->fd, NULL);
    cs->fd = safe_close(cs->fd);
    s->conns[cs->index] = s->conns[--s->n_conns];
    s->conns[cs->index]->index = cs->index;
    /* Freed at the end of the loop's turn: an event for it may still be in the batch. */
    cs->next_closed = s->closed;
    s->closed = cs;
    keel__http_connection_gone(s);
}

void keel__http_conn_again(connection_state *cs)
{
    keel_http_server *s = cs->s;
    if (cs->fd >= 0 && !cs->again && GROW(s->again, s->allocated_again, s->n_again + 1) >= 0) {
        cs->again = true;
        s->again[s->n_again++] = cs;
    }
}

void keel__http_conns_again(keel_http_server *s)
{
    size_t n = s->n_again;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        s->again[i]->again = false;
    for (size_t i = 0; i < n; i++)
        keel__http_conn_run(s->again[i], 0);
    memmove(s->again, s->again + n, (s->n_again - n) * sizeof *s->again);
    s->n_again -= n;
}

void keel__http_conn_free(connection_state *cs)
{
    if (!cs)
        return;
    free(cs->in);
    free(cs->out);
    free(cs->head.fields);
    free(cs->identity);
    free(cs);
}

void keel__http_conns_reap(keel_http_server *s)
{
    while (s->closed) {
        connection_state *cs = s->closed;
        s->closed = cs->next_closed;
        if (!keel__http_deferred_keep(s, cs))
            keel__http_conn_free(cs);
    }
}

ssize_t keel__http_conn_read(connection_state *cs, void *buf, size_t size)
{
    if (cs->session)
        return cs->s->tls->read(cs->session, buf, size, &cs->tls_want);
    ssize_t n = recv(cs->fd, buf, size, 0);
    return n >= 0 ? n : -errno;
}

ssize_t keel__http_conn_write(connection_state *cs, const void *buf, size_t size)
{
    if (cs->session)
        return cs->s->tls->write(cs->session, buf, size, &cs->tls_want);
    ssize_t n = send(cs->fd, buf, size, MSG_NOSIGNAL);
    return n >= 0 ? n : -errno;
}

/* Reads what the socket holds into the buffer: bytes, 0 at the client's end, -EAGAIN. */
static ssize_t fill(connection_state *cs)
{
    size_t size = cs->s->header_limit + IN_PAST_HEAD + cs->s->body_limit_max;
    if (!cs->in && !(cs->in = malloc(size)))
        return -ENOMEM;
    if (cs->in_len == size)
        return -ENOBUFS;
    cs->tls_want = EPOLLIN;
    ssize_t n = keel__http_conn_read(cs, cs->in + cs->in_len, size - cs->in_len);
    if (n > 0) {
        /* Short: the socket is empty (or, TLS, the record). Not when its end has come: an
         * edge-triggered connection would not be told of it again, and would wait for a head. */
        cs->readable = (size_t) n == size - cs->in_len || cs->peer_ending;
        cs->in_len += (size_t) n;
        cs->active = cs->s->now;
    }
    return n;
}

static void drop_input(connection_state *cs, size_t at, size_t n)
{
    memmove(cs->in + at, cs->in + at + n, cs->in_len - at - n);
    cs->in_len -= n;
}

/* Lingering: reads and drops until the client's end; closes at it, or at an error. */
static void linger_read(connection_state *cs)
{
    char sink[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(cs->fd, sink, sizeof sink);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            keel__http_conn_close(cs);
            return;
        }
    }
    keel__http_conn_again(cs); /* more than its turn's worth: the rest after the others */
}

/* The connection's end after its last answer (see the top). */
static void finish(connection_state *cs)
{
    bool unread = cs->in_len > cs->head_len + cs->body_size || (cs->readable && !cs->peer_eof);
    if (cs->session) { /* close_notify first, while the session can still say it */
        cs->s->tls->session_free(cs->session);
        cs->session = NULL;
    }
    if (!unread || shutdown(cs->fd, SHUT_WR) < 0) {
        keel__http_conn_close(cs);
        return;
    }
    keel__http_conn_wait(cs->s, cs, CONN_LINGER);
    watch(cs, EPOLLIN);
    linger_read(cs);
}

/* An empty line before a request is ignored (RFC 9112 §2.2). */
static void skip_empty_lines(connection_state *cs)
{
    size_t n = 0;
    while (n < cs->in_len && (cs->in[n] == '\r' || cs->in[n] == '\n'))
        n++;
    if (n > 0)
        drop_input(cs, 0, n);
}

static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* "Expect: 100-continue" with a body not yet sent: the client waits for a word to send it. Sent at
 * once if the socket takes it (without it, clients send after 1 s); what it does not take, or the
 * TLS record OpenSSL keeps for a retry with the same bytes, goes as soon as the socket takes more
 * (flush_continue()): the answer it would otherwise wait for needs the body it asks for. */
static void send_continue(connection_state *cs)
{
    if (cs->body == BODY_NONE || cs->in_len != cs->head_len || cs->head.close)
        return;
    ssize_t n = keel__http_conn_write(cs, CONTINUE, sizeof CONTINUE - 1);
    cs->continue_left = n == -EAGAIN ? sizeof CONTINUE - 1 : n > 0 ? (uint8_t) (sizeof CONTINUE - 1 - (size_t) n) : 0;
}

/* A head in the buffer: parsed and begun; false while it has not all come. */
static bool take_head(connection_state *cs)
{
    keel_http_server *s = cs->s;
    skip_empty_lines(cs);
    size_t end = keel__http_head_end(cs->in, cs->in_len, &cs->scanned);
    const keel__http_refusal *refusal = NULL;
    if (!end && cs->in_len < s->header_limit)
        return false;
    cs->scanned = 0;
    cs->body_size = 0;
    cs->body_kept = false;
    keel__http_conn_wait(s, cs, CONN_WAIT_BODY);
    if (!end || end > s->header_limit) {
        refusal = &keel__http_too_large;
        /* Nothing of the last request's head stays: a HEAD before it would leave out the body. */
        cs->head = (keel__http_head){ .fields = cs->head.fields, .allocated_fields = cs->head.allocated_fields, .minor = 1 };
        cs->head.close = true;
        cs->head_len = 0;
        cs->body = BODY_NONE;
    } else {
        cs->head_len = end;
        refusal = keel__http_parse_head(cs->in, end, &cs->head);
        cs->body = refusal ? BODY_NONE : cs->head.body;
        cs->body_left = cs->head.length;
        cs->chunked = (keel__http_chunked){ .state = CHUNK_SIZE };
        if (!refusal && s->n_body_routes > 0)
            refusal = keel__http_body_refusal(cs);
    }
    keel__http_request_begin(cs, refusal);
    if (cs->head.expect_continue)
        send_continue(cs);
    return true;
}

/* The body's bytes in the buffer skipped, or kept; true once it has all come (the request is run
 * then). */
static bool skip_body(connection_state *cs)
{
    size_t avail = cs->in_len - cs->head_len;
    if (cs->body_kept)
        return avail >= cs->body_size;
    if (cs->body == BODY_LENGTH) {
        size_t n = (size_t) MIN((uint64_t) avail, cs->body_left);
        drop_input(cs, cs->head_len, n);
        cs->body_left -= n;
        return cs->body_left == 0;
    }
    if (cs->body == BODY_CHUNKED) {
        ssize_t n = keel__http_chunked_skip(&cs->chunked, cs->in + cs->head_len, avail);
        if (n < 0) { /* answered as malformed; what follows cannot be framed */
            static const keel__http_refusal bad_chunk = { 400, "bad request: a malformed chunked body\n", true };
            cs->request.refusal = &bad_chunk;
            cs->head.close = true;
            return true;
        }
        drop_input(cs, cs->head_len, (size_t) n);
        return cs->chunked.state == CHUNK_DONE;
    }
    return true;
}

/* Makes what progress the buffered input allows: true when something moved. */
static bool step(connection_state *cs)
{
    if (cs->phase == CONN_WAIT_HEAD)
        return cs->in_len > 0 && take_head(cs);
    if (cs->phase != CONN_WAIT_BODY)
        return false;
    size_t before = cs->in_len;
    if (!skip_body(cs))
        return cs->in_len != before;
    keel__http_request_run(cs);
    return true;
}

/* What is left of a "100 Continue" out: 1 all sent, 0 the socket is full, negative on an error. */
static int flush_continue(connection_state *cs)
{
    while (cs->continue_left > 0) {
        ssize_t n = keel__http_conn_write(cs, CONTINUE + sizeof CONTINUE - 1 - cs->continue_left, cs->continue_left);
        if (n == -EAGAIN)
            return 0;
        if (n <= 0)
            return -EPIPE;
        cs->continue_left -= (uint8_t) n;
    }
    return 1;
}

/* The answer out, after what is left of a "100 Continue": 1 all sent, 0 the socket is full,
 * negative on an error. */
static int flush(connection_state *cs)
{
    int r = flush_continue(cs);
    if (r <= 0)
        return r;
    while (cs->out_sent < cs->out_len) {
        ssize_t n = keel__http_conn_write(cs, cs->out + cs->out_sent, cs->out_len - cs->out_sent);
        if (n == -EAGAIN)
            return 0;
        if (n <= 0)
            return -EPIPE;
        cs->out_sent += (size_t) n;
        cs->active = cs->s->now;
    }
    cs->out_len = cs->out_sent = 0;
    if (cs->out_size > OUT_KEPT) {
        free(cs->out);
        cs->out = NULL;
        cs->out_size = 0;
    }
    return 1;
}

/* The answer went out: the request ends, and the connection does or waits for the next head. */
static bool answered(connection_state *cs)
{
    keel__http_request_end(cs, true);
    cs->answers++;
    if (cs->head.close || atomic_load(&cs->s->draining)) {
        finish(cs);
        return false;
    }
    drop_input(cs, 0, cs->head_len + cs->body_size);
    cs->head_len = cs->body_size = 0;
    keel__http_conn_wait(cs->s, cs, CONN_WAIT_HEAD);
    return true;
}

/* What epoll is to wake it for next. */
static uint32_t wanted(const connection_state *cs)
{
    if (cs->out_len > 0 || cs->continue_left > 0)
        return cs->session ? cs->tls_want : EPOLLOUT;
    if (cs->waiting)
        return 0;
    return cs->session ? cs->tls_want : EPOLLIN;
}

static void advance(connection_state *cs)
{
    for (unsigned fills = 0;;) {
        if (cs->out_len > 0) {
            int r = flush(cs);
            if (r < 0) {
                keel__http_conn_close(cs);
                return;
            }
            if (r == 0)
                break;
            if (!answered(cs))
                return;
            continue;
        }
        if (cs->continue_left > 0) { /* before the body it asks for, which comes before the answer */
            int r = flush_continue(cs);
            if (r < 0) {
                keel__http_conn_close(cs);
                return;
            }
            if (r == 0)
                break;
        }
        if (cs->waiting)
            break;
        if (cs->phase == CONN_SERVING) { /* no answer could be laid out, not even a 500 (out of memory) */
            keel__http_conn_close(cs);
            return;
        }
        if (step(cs))
            continue;
        if (cs->peer_eof || !cs->readable)
            break;
        if (fills++ == FILLS_PER_TURN) { /* the others' turn: this one goes on after them */
            keel__http_conn_again(cs);
            break;
        }
        ssize_t n = fill(cs);
        if (n == 0)
            cs->peer_eof = true;
        else if (n == -EAGAIN)
            cs->readable = false;
        else if (n < 0) {
            keel__http_conn_close(cs);
            return;
        }
    }
    if (cs->peer_eof && !cs->waiting && cs->out_len == 0) {
        keel__http_conn_close(cs); /* the client ended, and no answer of its is under way */
        return;
    }
    watch(cs, wanted(cs));
}

void keel__http_conn_run(connection_state *cs, uint32_t events)
{
    if (cs->fd < 0)
        return; /* closed earlier in this turn */
    if (cs->waiting && (events & (EPOLLHUP | EPOLLERR))) {
        /* The client is gone while its answer is made; epoll reports HUP and ERR whatever it is
         * asked for, so a level-triggered TLS connection would be reported at every wait. */
        keel__http_conn_close(cs);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        cs->readable = true;
        cs->peer_ending = cs->peer_ending || (events & EPOLLRDHUP);
    }
    if (cs->phase == CONN_LINGER) {
        linger_read(cs);
        return;
    }
    if (cs->phase == CONN_HANDSHAKE) {
        if (events)
            cs->active = cs->s->now; /* a handshake that moves is not silent */
        int r = keel__http_tls_step(cs);
        if (r == -EPROTONOSUPPORT) { /* its request is still to read: closed unread, it would reset the answer */
            finish(cs);
            return;
        }
        if (r < 0) {
            keel__http_conn_close(cs);
            return;
        }
        if (r == 0) {
            watch(cs, cs->tls_want);
            return;
        }
        keel__http_conn_wait(cs->s, cs, CONN_WAIT_HEAD);
        cs->readable = true; /* the request may have come with the handshake's end */
    }
    advance(cs);
}
