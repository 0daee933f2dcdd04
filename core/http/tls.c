/* SPDX-License-Identifier: MIT */
/*
 * A TLS connection's start, on the polling thread (docs/decisions/0022): a session from the
 * keel_http_tls_ops the server was given, a look at the first byte (plain HTTP gets a plain answer
 * saying this port speaks TLS, as nginx does), the handshake, and the client certificate's
 * identity. From there conn.c reads and writes through the session, on the client's socket.
 */
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "http-internal.h"

#define TLS_HANDSHAKE_RECORD 0x16

static const char PLAIN_ANSWER[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 36\r\n\r\nThis port speaks HTTPS (TLS) only.\r\n";

bool keel__http_tls_begin(connection_state *cs)
{
    cs->session = cs->s->tls->session_new(cs->s->tls_userdata, cs->fd);
    return cs->session != NULL;
}

/* 1: a TLS handshake record; 0: nothing yet; -EPROTONOSUPPORT: a plain client, answered; another
 * negative errno: an error. */
static int peek_plain(connection_state *cs)
{
    unsigned char b;
    ssize_t n = recv(cs->fd, &b, 1, MSG_PEEK);
    if (n < 0)
        return errno == EAGAIN ? 0 : -errno;
    if (n == 0)
        return -ECONNRESET;
    cs->peeked = true;
    if (b == TLS_HANDSHAKE_RECORD)
        return 1;
    ssize_t _unused_ w = send(cs->fd, PLAIN_ANSWER, sizeof PLAIN_ANSWER - 1, MSG_NOSIGNAL);
    keel_log_service(cs->s->service, KEEL_LOG_DEBUG, "Answered a plain HTTP connection to the TLS port");
    return -EPROTONOSUPPORT;
}

int keel__http_tls_step(connection_state *cs)
{
    const keel_http_tls_ops *ops = cs->s->tls;
    int r = cs->peeked ? 1 : peek_plain(cs);
    cs->tls_want = EPOLLIN;
    if (r <= 0)
        return r;
    r = ops->handshake(cs->session, &cs->tls_want);
    if (r < 0 && r != -EPROTO && r != -ECONNRESET)
        keel_log_service_errno(cs->s->service, KEEL_LOG_DEBUG, r, "TLS handshake failed: %m");
    if (r <= 0)
        return r;
    const char *identity = ops->peer_identity(cs->session);
    if (identity && !(cs->identity = strdup(identity)))
        return -ENOMEM;
    return 1;
}

/* A TLS connection's buffers and OpenSSL's state of a handshake are tens of KiB from malloc(),
 * which glibc keeps in its arenas once freed: after a burst of 2,000 handshakes the process stayed
 * 9 MB larger for good. Once no connection has been open for a second, malloc_trim() gives the
 * free pages back; a server that is never idle never pays for it. */
void keel__http_trim_when_idle(keel_http_server *s)
{
    if (s->trim_at == KEEL_USEC_INFINITY || keel_now() < s->trim_at)
        return;
    s->trim_at = KEEL_USEC_INFINITY;
    if (s->n_conns == 0)
        (void) malloc_trim(0);
}
