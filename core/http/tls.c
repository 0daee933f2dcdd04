/* SPDX-License-Identifier: MIT */
/*
 * TLS in front of libmicrohttpd (docs/decisions/0015): on the polling thread, the server accepts
 * on its own listener, drives each connection's handshake through the keel_http_tls_ops it was
 * given, then hands libmicrohttpd one end of a socketpair (MHD_add_connection()) and moves bytes
 * between the TLS session and the other end as both sides are ready. Everything here runs on the
 * polling thread, in an epoll set of its own that sits in the server's.
 */
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http-internal.h"

#define BUFFER               (16 * 1024)
#define HANDSHAKE            (10 * KEEL_USEC_PER_SEC)
#define TRIM_AFTER_IDLE      (1 * KEEL_USEC_PER_SEC)
#define TLS_HANDSHAKE_RECORD 0x16

static const char PLAIN_ANSWER[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 36\r\n\r\nThis port speaks HTTPS (TLS) only.\r\n";

struct tls_conn {
    keel_http_server *s;
    int fd;   /* the client's socket, owned */
    int pair; /* our end of the socketpair to libmicrohttpd, owned; -EBADF until the handshake ends */
    void *session;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    keel_usec_t handshake_deadline;
    unsigned read_want, write_want;  /* what the session waits for, from its last read and write */
    uint32_t fd_events, pair_events; /* registered in the epoll set */
    bool handshaken, peeked, client_eof, mhd_eof, pair_shut;
    size_t in_len, out_len;
    char in[BUFFER];  /* from the client, decrypted, for libmicrohttpd */
    char out[BUFFER]; /* from libmicrohttpd, for the client */
};

/* The listener's entry in the epoll set: a tls_conn pointer is never this. */
static char listener_tag;

static void close_conn(tls_conn *c)
{
    keel_http_server *s = c->s;
    if (c->session)
        s->tls->session_free(c->session);
    (void) epoll_ctl(s->tls_epoll, EPOLL_CTL_DEL, c->fd, NULL);
    safe_close(c->fd);
    if (c->pair >= 0) {
        (void) epoll_ctl(s->tls_epoll, EPOLL_CTL_DEL, c->pair, NULL);
        safe_close(c->pair);
    }
    for (size_t i = 0; i < s->n_tls; i++)
        if (s->tls_conns[i] == c) {
            s->tls_conns[i] = s->tls_conns[--s->n_tls];
            break;
        }
    free(c);
    if (s->n_tls == 0) { /* give the burst's memory back once the server has been idle a moment */
        s->tls_trim_at = keel_now() + TRIM_AFTER_IDLE;
        s->tls_expire_at = MIN(s->tls_expire_at, s->tls_trim_at);
    }
    unsigned before = atomic_fetch_sub(&s->tls_open, 1);
    if (before == 1) {
        (void) pthread_mutex_lock(&s->lock);
        (void) pthread_cond_broadcast(&s->changed);
        (void) pthread_mutex_unlock(&s->lock);
    }
    keel__http_tls_listen(s, true);
}

static void watch(tls_conn *c, int fd, uint32_t *registered, uint32_t events)
{
    if (*registered == events)
        return;
    (void) epoll_ctl(c->s->tls_epoll, EPOLL_CTL_MOD, fd, &(struct epoll_event){ .events = events, .data.ptr = c });
    *registered = events;
}

/* A client that speaks plain HTTP to the TLS port gets a plain answer saying so, as nginx does. */
static int peek_plain(tls_conn *c)
{
    unsigned char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
    if (n < 0)
        return errno == EAGAIN ? 0 : -errno;
    if (n == 0)
        return -ECONNRESET;
    c->peeked = true;
    if (b == TLS_HANDSHAKE_RECORD)
        return 1;
    ssize_t _unused_ w = send(c->fd, PLAIN_ANSWER, sizeof PLAIN_ANSWER - 1, MSG_NOSIGNAL);
    keel_log_service(c->s->service, KEEL_LOG_DEBUG, "Closed a plain HTTP connection to the TLS port");
    return -EPROTO;
}

/* The handshake done: libmicrohttpd gets the plaintext end, with the client's address. */
static int attach(tls_conn *c)
{
    keel_http_server *s = c->s;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    c->pair = sv[0];
    if (epoll_ctl(s->tls_epoll, EPOLL_CTL_ADD, c->pair, &(struct epoll_event){ .events = 0, .data.ptr = c }) < 0) {
        safe_close(sv[1]);
        return -errno;
    }
    s->attaching = c; /* keel__http_on_connection() reads the identity while MHD_add_connection() runs */
    enum MHD_Result ok = MHD_add_connection(s->daemon, sv[1], (const struct sockaddr *) &c->peer, c->peer_len);
    s->attaching = NULL;
    return ok == MHD_YES ? 0 : -EIO; /* MHD closed sv[1] on failure */
}

static bool handshake_step(tls_conn *c)
{
    int r = c->peeked ? 1 : peek_plain(c);
    if (r == 0) {
        watch(c, c->fd, &c->fd_events, EPOLLIN);
        return true;
    }
    unsigned want = 0;
    if (r > 0)
        r = c->s->tls->handshake(c->session, &want);
    if (r == 0) {
        watch(c, c->fd, &c->fd_events, want);
        return true;
    }
    if (r > 0 && (r = attach(c)) >= 0) {
        c->handshaken = true;
        return true;
    }
    if (r != -EPROTO && r != -ECONNRESET)
        keel_log_service_errno(c->s->service, KEEL_LOG_DEBUG, r, "TLS handshake failed: %m");
    return false;
}

/* What one pump knows would block: each read is tried again only after something moved the other
 * way (a TLS read can need a write to go out first), so that a round trip costs no failed
 * syscalls beyond the one EAGAIN each side needs. */
typedef struct blocked {
    bool tls_read, pair_read;
} blocked;

/* Client to libmicrohttpd; returns whether anything moved, or -1 on an error that ends it. */
static int pump_in(tls_conn *c, blocked *b)
{
    int moved = 0;
    if (!c->client_eof && !b->tls_read && c->in_len < sizeof c->in) {
        ssize_t n = c->s->tls->read(c->session, c->in + c->in_len, sizeof c->in - c->in_len, &c->read_want);
        if (n > 0)
            c->in_len += (size_t) n, moved = 1;
        else if (n == 0)
            c->client_eof = true, moved = 1;
        else if (n == -EAGAIN)
            b->tls_read = true;
        else
            return -1;
    }
    if (c->in_len > 0) {
        ssize_t n = send(c->pair, c->in, c->in_len, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(c->in, c->in + n, c->in_len - (size_t) n);
            c->in_len -= (size_t) n;
            moved = 1;
        } else if (n < 0 && errno != EAGAIN)
            return -1;
    }
    if (c->client_eof && c->in_len == 0 && !c->pair_shut) {
        (void) shutdown(c->pair, SHUT_WR);
        c->pair_shut = true;
    }
    return moved;
}

/* libmicrohttpd to the client; as pump_in(). */
static int pump_out(tls_conn *c, blocked *b)
{
    int moved = 0;
    if (!c->mhd_eof && !b->pair_read && c->out_len < sizeof c->out) {
        ssize_t n = read(c->pair, c->out + c->out_len, sizeof c->out - c->out_len);
        if (n > 0)
            c->out_len += (size_t) n, moved = 1;
        else if (n == 0)
            c->mhd_eof = true, moved = 1;
        else if (errno == EAGAIN)
            b->pair_read = true;
        else
            c->mhd_eof = true; /* MHD reset it: what is buffered still goes out */
    }
    if (c->out_len > 0) {
        ssize_t n = c->s->tls->write(c->session, c->out, c->out_len, &c->write_want);
        if (n > 0) {
            memmove(c->out, c->out + n, c->out_len - (size_t) n);
            c->out_len -= (size_t) n;
            moved = 1;
            b->tls_read = false; /* a write may be what the TLS read waited for */
        } else if (n != -EAGAIN)
            return -1;
    }
    return moved;
}

/* Moves what can move, then registers what each side waits for; false when the connection ends. */
static bool pump(tls_conn *c)
{
    int in = 1, out = 1;
    blocked b = {};
    c->read_want = EPOLLIN;
    c->write_want = 0;
    while (in > 0 || out > 0) {
        if ((in = pump_in(c, &b)) < 0 || (out = pump_out(c, &b)) < 0)
            return false;
        if (in > 0)
            b.pair_read = false; /* MHD may answer what it was just given */
    }
    if (c->mhd_eof && c->out_len == 0)
        return false; /* libmicrohttpd closed it and everything is sent */
    uint32_t fd_events = (c->client_eof || c->in_len == sizeof c->in ? 0 : c->read_want) | (c->out_len > 0 ? c->write_want : 0);
    uint32_t pair_events = (c->in_len > 0 ? EPOLLOUT : 0) | (c->mhd_eof || c->out_len == sizeof c->out ? 0 : EPOLLIN);
    watch(c, c->fd, &c->fd_events, fd_events);
    watch(c, c->pair, &c->pair_events, pair_events);
    return true;
}

static void on_conn(tls_conn *c)
{
    bool was = c->handshaken;
    bool alive = was ? pump(c) : handshake_step(c);
    if (alive && !was && c->handshaken)
        alive = pump(c); /* just attached: the request may have come with the handshake's end */
    if (!alive)
        close_conn(c);
}

static void accept_one(keel_http_server *s)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = accept4(s->tls_listen, (struct sockaddr *) &peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) && s->n_tls > 0) {
        /* Stop listening until a connection closes and gives a descriptor back (close_conn()),
         * as libmicrohttpd does: the level-triggered listener would wake this thread for ever. */
        keel__http_out_of_fds(s, strerror(errno));
        keel__http_tls_listen(s, false);
    }
    if (fd < 0)
        return;
    /* libmicrohttpd answers in two writes (head, then body), each its own TLS record: with Nagle's
     * algorithm the second waited for the client's delayed ACK, 40 ms, for one answer in a hundred. */
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    tls_conn *c = calloc(1, sizeof *c);
    if (!c || GROW(s->tls_conns, s->allocated_tls, s->n_tls + 1) < 0) {
        free(c);
        safe_close(fd);
        return;
    }
    *c =
        (tls_conn){ .s = s, .fd = fd, .pair = -EBADF, .peer = peer, .peer_len = len, .handshake_deadline = keel_now() + HANDSHAKE };
    if (!(c->session = s->tls->session_new(s->tls_userdata, fd)) ||
        epoll_ctl(s->tls_epoll, EPOLL_CTL_ADD, fd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = c }) < 0) {
        if (c->session)
            s->tls->session_free(c->session);
        free(c);
        safe_close(fd);
        return;
    }
    c->fd_events = EPOLLIN;
    s->tls_conns[s->n_tls++] = c;
    s->tls_expire_at = MIN(s->tls_expire_at, c->handshake_deadline);
    atomic_fetch_add(&s->tls_open, 1);
    keel__http_tls_listen(s, true);
}

void keel__http_tls_listen(keel_http_server *s, bool on)
{
    if (s->tls_listen < 0)
        return;
    on = on && s->n_tls < s->connection_limit && !atomic_load(&s->draining);
    if (on == s->tls_listening)
        return;
    (void) epoll_ctl(s->tls_epoll, EPOLL_CTL_MOD, s->tls_listen,
                     &(struct epoll_event){ .events = on ? EPOLLIN : 0, .data.ptr = &listener_tag });
    s->tls_listening = on;
}

int keel__http_tls_setup(keel_http_server *s, int listen_fd)
{
    s->tls_epoll = epoll_create1(EPOLL_CLOEXEC);
    if (s->tls_epoll < 0)
        return -errno;
    s->tls_expire_at = s->tls_trim_at = KEEL_USEC_INFINITY;
    if (epoll_ctl(s->tls_epoll, EPOLL_CTL_ADD, listen_fd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &listener_tag }) <
        0)
        return -errno;
    s->tls_listening = true;
    return 0;
}

void keel__http_tls_run(keel_http_server *s)
{
    struct epoll_event ev[32];
    int n = epoll_wait(s->tls_epoll, ev, (int) ELEMENTSOF(ev), 0);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == &listener_tag) {
            for (int k = 0; k < 16 && s->tls_listening; k++) /* a burst, not the whole backlog at once */
                accept_one(s);
            continue;
        }
        /* A connection closed by an earlier event of this batch is not in the set any more, but
         * its event may still be here: only live ones are handled. */
        tls_conn *c = ev[i].data.ptr;
        for (size_t j = 0; j < s->n_tls; j++)
            if (s->tls_conns[j] == c) {
                on_conn(c);
                break;
            }
    }
    keel__http_tls_expire(s);
}

/* A TLS connection's buffers and OpenSSL's state of a handshake are tens of KiB from malloc(),
 * which glibc keeps in its arenas once freed: after a burst of 2,000 handshakes the process stayed
 * 9 MB larger for good. Once no connection has been open for TRIM_AFTER_IDLE, malloc_trim() gives
 * the free pages back; a server that is never idle never pays for it. */
static void trim_when_idle(keel_http_server *s, keel_usec_t now)
{
    if (s->tls_trim_at == KEEL_USEC_INFINITY || now < s->tls_trim_at)
        return;
    s->tls_trim_at = KEEL_USEC_INFINITY;
    if (s->n_tls == 0)
        (void) malloc_trim(0);
}

/* The earliest deadline of a handshake under way (or of the trim) is kept in tls_expire_at, so
 * that the check each turn of the loop makes is a comparison; the connections are walked only
 * when one is due. */
void keel__http_tls_expire(keel_http_server *s)
{
    keel_usec_t now = keel_now();
    if (now < s->tls_expire_at)
        return;
    trim_when_idle(s, now);
    keel_usec_t next = KEEL_USEC_INFINITY;
    for (size_t i = s->n_tls; i > 0; i--) {
        tls_conn *c = s->tls_conns[i - 1];
        if (c->handshaken)
            continue;
        if (now >= c->handshake_deadline)
            close_conn(c);
        else
            next = MIN(next, c->handshake_deadline);
    }
    s->tls_expire_at = MIN(next, s->tls_trim_at); /* a close_conn() above may have set the trim */
}

int keel__http_tls_timeout(keel_http_server *s)
{
    keel_usec_t next = s->tls_expire_at, now = keel_now();
    if (next == KEEL_USEC_INFINITY)
        return -1;
    return next <= now ? 0 : (int) ((next - now + 999) / 1000);
}

void keel__http_tls_drain(keel_http_server *s)
{
    if (s->tls_listen >= 0) {
        (void) epoll_ctl(s->tls_epoll, EPOLL_CTL_DEL, s->tls_listen, NULL);
        s->tls_listen = safe_close(s->tls_listen);
        s->tls_listening = false;
    }
    /* Handshakes under way never became requests: nothing is lost by closing them. */
    for (size_t i = s->n_tls; i > 0; i--)
        if (!s->tls_conns[i - 1]->handshaken)
            close_conn(s->tls_conns[i - 1]);
}

void keel__http_tls_close_all(keel_http_server *s)
{
    while (s->n_tls > 0)
        close_conn(s->tls_conns[s->n_tls - 1]);
    if (s->tls_listen >= 0)
        s->tls_listen = safe_close(s->tls_listen);
    if (s->tls_epoll >= 0)
        s->tls_epoll = safe_close(s->tls_epoll);
    free(s->tls_conns);
    s->tls_conns = NULL;
    s->allocated_tls = 0;
}

const char *keel__http_tls_attaching_identity(keel_http_server *s)
{
    return s->attaching ? s->tls->peer_identity(s->attaching->session) : NULL;
}
