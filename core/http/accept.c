/* SPDX-License-Identifier: MIT */
/*
 * New connections, on the polling thread. The listener sits in the epoll set while the server is
 * below its connection limit; at the limit it leaves it, and clients wait in the listen queue
 * until a place frees. When accept() fails for lack of descriptors, a connection that holds one
 * without a request gives it back; when none does, the reserve descriptor is given up for a moment
 * to take the client and tell it the server is full, so that the listener, readable for ever,
 * does not spin this thread, and the server says so at warning level. Another thread (another
 * server's) may take the reserve's number in that moment: the reserve is then taken again when one
 * of this server's connections gives a descriptor back.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http-internal.h"

/* Connections taken in one turn of the loop: a burst, not the whole backlog at once. */
#define ACCEPTS_PER_TURN 64
/* A client past http.connection_limit_per_client is said at most this often per server: one that
 * retries would log a line per attempt. */
#define CLIENT_LIMIT_SAID_EVERY (10 * KEEL_USEC_PER_SEC)
/* Out of descriptors with none to give back: how long the listener rests. */
#define RELISTEN_USEC (100 * KEEL_USEC_PER_MSEC)
/* At the connection limit: how often the listen queue is looked at. */
#define QUEUE_CHECK_USEC (100 * KEEL_USEC_PER_MSEC)

static const char FULL_ANSWER[] =
    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 41\r\nRetry-After: 1\r\n\r\nservice unavailable: out of descriptors\r\n";

void keel__http_listen(keel_http_server *s, bool on)
{
    if (s->listen_fd < 0)
        return;
    on = on && atomic_load(&s->connections) < s->connection_limit && !atomic_load(&s->draining) && s->now >= s->relisten_at;
    if (on == s->listening)
        return;
    if (!on)
        s->queue_check_at = s->now + QUEUE_CHECK_USEC;
    (void) epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, s->listen_fd, &(struct epoll_event){ .events = on ? EPOLLIN : 0, .data.ptr = s });
    s->listening = on;
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *) a)->sin_addr.s_addr == ((const struct sockaddr_in *) b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *) a)->sin6_addr, &((const struct sockaddr_in6 *) b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return false;
}

/* http.connection_limit_per_client: off (0) by default, where this costs nothing. */
static bool over_client_limit(const keel_http_server *s, const struct sockaddr_storage *peer)
{
    unsigned n = 0;
    if (s->connection_limit_per_client == 0)
        return false;
    for (size_t i = 0; i < s->n_conns && n < s->connection_limit_per_client; i++)
        n += same_host(&s->conns[i]->peer, peer);
    return n >= s->connection_limit_per_client;
}

/* Past the client's limit: closed at once, counted, and said. */
static void refuse_client(keel_http_server *s, int fd, const struct sockaddr_storage *peer)
{
    char from[INET6_ADDRSTRLEN + 8];
    safe_close(fd);
    keel__http_count_cut(s, CUT_CLIENT_LIMIT);
    if (s->client_limit_logged && s->now - s->client_limit_logged < CLIENT_LIMIT_SAID_EVERY)
        return;
    s->client_limit_logged = s->now;
    keel__http_format_peer((const struct sockaddr *) peer, from, sizeof from);
    keel_log_service(s->service, KEEL_LOG_WARNING,
                     "Closed a connection from %s to %s[%s]: its address holds http.connection_limit_per_client %u already "
                     "(counted in keel_http_connections_cut_total{reason=\"client_limit\"}, said at most every 10 s)",
                     from, s->label, s->bound, s->connection_limit_per_client);
}

/* With the reserve descriptor given up: the next client is told, and closed. */
static void refuse_one(keel_http_server *s)
{
    if (s->reserve_fd < 0)
        return;
    s->reserve_fd = safe_close(s->reserve_fd);
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        char sink[1024]; /* what already came of its request: unread, it would reset the answer */
        ssize_t _unused_ r = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        ssize_t _unused_ n = send(fd, FULL_ANSWER, sizeof FULL_ANSWER - 1, MSG_NOSIGNAL);
        (void) shutdown(fd, SHUT_WR);
        safe_close(fd);
    }
    keel__http_take_reserve(s);
}

void keel__http_take_reserve(keel_http_server *s)
{
    if (s->reserve_fd < 0)
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* accept() failed for @error: false when nothing more can be taken in this turn. */
static bool accept_failed(keel_http_server *s, int error)
{
    if (error == EINTR || error == ECONNABORTED || error == EPROTO)
        return true;
    if (error != EMFILE && error != ENFILE && error != ENOBUFS && error != ENOMEM)
        return false; /* EAGAIN: the queue is empty */
    keel__http_out_of_fds(s, strerror(error));
    if (keel__http_make_room_for_fds(s))
        return true; /* a descriptor came back: the next accept() takes it */
    refuse_one(s);
    s->relisten_at = keel_now() + RELISTEN_USEC;
    keel__http_listen(s, false);
    return false;
}

/* The next client of the listen queue taken: false when none more can be now. */
static bool take_one(keel_http_server *s)
{
    struct sockaddr_storage peer = {};
    socklen_t len = sizeof peer;
    int fd = accept4(s->listen_fd, (struct sockaddr *) &peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return accept_failed(s, errno);
    if (over_client_limit(s, &peer)) {
        refuse_client(s, fd, &peer);
        return true;
    }
    /* Each answer is one write, but pipelined answers are several: Nagle's algorithm would hold
     * the second for the client's delayed ACK, 40 ms. */
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    (void) keel__http_conn_open(s, fd, &peer);
    return true;
}

void keel__http_accept(keel_http_server *s)
{
    for (int i = 0; i < ACCEPTS_PER_TURN && s->listening && take_one(s); i++)
        keel__http_listen(s, true);
}

void keel__http_accept_queued(keel_http_server *s)
{
    for (int i = 0; i < SOMAXCONN && take_one(s); i++)
        ;
}

static bool at_limit(const keel_http_server *s)
{
    return !s->listening && s->listen_fd >= 0 && !atomic_load(&s->draining) && atomic_load(&s->connections) >= s->connection_limit;
}

void keel__http_check_queue(keel_http_server *s)
{
    if (!at_limit(s) || keel_now() < s->queue_check_at)
        return;
    s->queue_check_at = keel_now() + QUEUE_CHECK_USEC;
    struct pollfd p = { .fd = s->listen_fd, .events = POLLIN };
    if (poll(&p, 1, 0) == 1 && keel__http_make_room(s, NULL))
        keel__http_listen(s, true); /* the client in the queue is taken on the next turn */
}

int keel__http_queue_timeout(const keel_http_server *s)
{
    if (!at_limit(s))
        return -1;
    keel_usec_t now = keel_now();
    return s->queue_check_at <= now ? 0 : (int) ((s->queue_check_at - now + 999) / 1000);
}
