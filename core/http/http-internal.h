/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTP/1.1 server under every listening service (docs/decisions/0022): one polling thread per
 * server (a task of the service, spawned at "<service>.spawn.server") owns the listener and every
 * connection, in an epoll set of its own, and is the only thread that touches them. The main
 * thread talks to it through an eventfd: "drain" (stop accepting, close idle connections) and
 * "exit". Its files: server.c (the object, the polling thread, start and stop), listen.c (binding
 * and socket activation), accept.c (new connections, the connection limits, running out of
 * descriptors), conn.c (a connection's reading, framing and writing), body.c (the bodies handlers
 * read, on the paths that take one), parse.c (the request head,
 * strictly, and chunked bodies), tls.c (a TLS connection's handshake), request.c (handlers'
 * requests), response.c (answers), deadline.c (what a slow client may hold), drain.c (the wait
 * until nothing is open), deferred.c (answers from other threads), ready.c (the end-to-end check
 * of start).
 */

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>

#include <keel/http.h>
#include <keel/metrics.h>

#include "app-internal.h"
#include "machine-internal.h"
#include "macro-internal.h"

typedef struct connection_state connection_state;
typedef struct keel_http_mounts keel_http_mounts;

/* A constant answer to a request whose head is not served (parse.c). */
typedef struct keel__http_refusal {
    unsigned status;
    const char *body; /* text/plain, but for body.c's JSON ones (keel__http_refusal_type()) */
    bool close;       /* the framing itself is in doubt: the connection closes after the answer */
} keel__http_refusal;

/* The most header fields a head may have, however short: past it, 431. */
#define KEEL_HTTP_MAX_FIELDS 512

/* A header field, both parts NUL-terminated in place in the connection's buffer. */
typedef struct keel__http_field {
    const char *name, *value;
} keel__http_field;

typedef enum body_kind {
    BODY_NONE,
    BODY_LENGTH,
    BODY_CHUNKED,
} body_kind;

/* A request head, parsed in place: every string points into the buffer it was parsed from. */
typedef struct keel__http_head {
    const char *method;
    char *path;        /* the target's path, percent-decoded; "/livez" also for "http://host/livez" */
    const char *query; /* as sent, without the '?', or NULL */
    unsigned minor;    /* HTTP/1.<minor> */
    keel__http_field *fields;
    size_t n_fields, allocated_fields;
    body_kind body;
    uint64_t length; /* BODY_LENGTH */
    bool close;      /* the connection ends after this request's answer */
    bool expect_continue, head_method;
} keel__http_head;

/* A final answer's status (a 1xx is not one: it would leave the request unanswered), with a body of
 * @size bytes only where one may be (none with 204 or 304). */
static inline bool keel__http_status_bodiless(unsigned status)
{
    return status == 204 || status == 304;
}

static inline bool keel__http_status_valid(unsigned status, size_t size)
{
    return status >= 200 && status <= 599 && !(size > 0 && keel__http_status_bodiless(status));
}

/* parse.c: the length of the head that starts @buf (its request line, fields and empty line), or
 * 0 while its end has not come; *@scanned keeps where the search stopped, so that a head sent a
 * byte at a time is not searched again from its start. */
size_t keel__http_head_end(const char *buf, size_t len, size_t *scanned);
/* Parses the @len bytes of a whole head at @buf into @h, in place; NULL, or what it is answered
 * instead of being served. @h->fields is grown as needed (freed by the caller). */
const keel__http_refusal *keel__http_parse_head(char *buf, size_t len, keel__http_head *h);
/* The refusal of a head past the header limit, of a field count past KEEL_HTTP_MAX_FIELDS, and of
 * a server out of memory. */
extern const keel__http_refusal keel__http_too_large, keel__http_unchecked;

/* The value of hex digit @c, or -1. */
int keel__http_unhex(char c);

/* A chunked body being skipped (RFC 9112 §7.1): sizes, extensions, data and trailer fields. */
typedef struct keel__http_chunked {
    enum {
        CHUNK_SIZE,
        CHUNK_SIZE_WS, /* blanks after the size or an extension's value */
        CHUNK_EXT_BEFORE_NAME,
        CHUNK_EXT_NAME,
        CHUNK_EXT_AFTER_NAME,
        CHUNK_EXT_BEFORE_VALUE,
        CHUNK_EXT_VALUE,
        CHUNK_EXT_QUOTED,
        CHUNK_EXT_QUOTED_PAIR,
        CHUNK_SIZE_LF,
        CHUNK_DATA,
        CHUNK_DATA_CR,
        CHUNK_DATA_LF,
        CHUNK_TRAILER,
        CHUNK_TRAILER_CR,
        CHUNK_TRAILER_LINE,
        CHUNK_TRAILER_LF,
        CHUNK_DONE
    } state;
    uint64_t left; /* of the chunk's data */
    unsigned digits;
} keel__http_chunked;
/* Consumes what of @buf belongs to the body: the bytes taken (the body is done when @c->state is
 * CHUNK_DONE), or -EBADMSG for a malformed one. */
ssize_t keel__http_chunked_skip(keel__http_chunked *c, const char *buf, size_t len);

struct keel_http_request {
    keel_http_server *server;          /* borrowed */
    connection_state *cs;              /* borrowed */
    const char *method, *path;         /* borrowed from the head, valid for the request */
    char peer[INET6_ADDRSTRLEN + 8];   /* formatted on first use: most requests never need it */
    char id[KEEL_HTTP_REQUEST_ID_MAX]; /* made on first use, as peer */
    keel_usec_t started, resume_at;
    unsigned status;
    int fault; /* of the request's `before` point */
    bool answered;
    bool admitted;                     /* counted in the work tracker: only then is it ended there */
    bool faulted;                      /* failed by an injected `error` fault (before or in) */
    keel_http_deferred *deferred;      /* answered later from another thread (deferred.c), or NULL */
    bool defer_abandoned;              /* deferred and given up by a stop: answered 503 */
    const keel__http_refusal *refusal; /* the head is not served, but answered this */
};

/* What a connection waits for, and so which deadline it has (deadline.c). */
typedef enum conn_phase {
    CONN_HANDSHAKE, /* a TLS handshake */
    CONN_WAIT_HEAD, /* a request's head: since it opened or since the previous answer */
    CONN_WAIT_BODY, /* the rest of a request whose head came */
    CONN_SERVING,   /* the answer: the handler's, or going out */
    CONN_LINGER,    /* answered and shut down for writing: what the client still sends is read and dropped */
} conn_phase;

typedef enum conn_cut {
    CUT_HEADER_TIMEOUT,
    CUT_BODY_TIMEOUT,
    CUT_EVICTED,
    CUT_SEND_TIMEOUT,
    CUT_CLIENT_LIMIT, /* closed at once, its address holding http.connection_limit_per_client (accept.c) */
    _CUT_MAX,
} conn_cut;

struct connection_state {
    keel_http_server *s; /* borrowed */
    int fd;              /* owned */
    size_t index;        /* in s->conns */
    void *session;       /* the TLS session (owned), or NULL */
    char *identity;      /* owned: the verified client certificate's, or NULL */
    struct sockaddr_storage peer;
    conn_phase phase;
    keel_usec_t since;             /* when the phase began */
    keel_usec_t active;            /* when a byte last came or went: silence is timed too (http.connection_timeout) */
    uint32_t events;               /* registered in the epoll set */
    unsigned answers;              /* answers sent on it */
    unsigned tls_want;             /* what the TLS session waits for on the socket */
    bool tls, peeked;              /* came to the TLS listener; its first byte was looked at */
    bool readable;                 /* the socket may hold more than was read */
    bool peer_ending;              /* epoll said the client ended its side: reads go on until they say so */
    bool peer_eof;                 /* the client ended its side, and all it sent was read */
    bool busy;                     /* a request is under way on it: its input waits */
    bool waiting;                  /* its request is delayed or deferred: nothing moves until it is answered */
    bool again;                    /* in s->again: its turn ended with input still to read */
    connection_state *next_closed; /* in s->closed */

    char *in; /* header_limit + 1 KiB, allocated on the first read */
    size_t in_len, scanned, head_len;
    body_kind body;
    uint64_t body_left;
    size_t body_size; /* the request's body kept in the buffer behind its head (a path that takes one), or 0 */
    bool body_kept;   /* the request's path takes a body (keel_http_server_accept_body()) */
    keel__http_chunked chunked;
    keel__http_head head;

    char *out; /* the answer going out */
    size_t out_len, out_sent, out_size;
    uint8_t continue_left; /* bytes of a "100 Continue" not yet sent: they go before the answer */

    keel_http_request request; /* HTTP/1.1 runs one request at a time per connection */
};

/* A constant answer's head, built once and reused (response.c): all but its Date. */
typedef struct cached_response {
    unsigned status;
    const char *content_type, *body, *connection; /* compared by address: static storage */
    char *head;                                   /* owned: status line and fields but Date, CRLF-terminated */
    size_t head_len, body_len;
} cached_response;

/* What the main thread asks of the polling thread. */
enum { COMMAND_NONE, COMMAND_DRAIN, COMMAND_EXIT };

struct keel_http_server {
    keel_app *app; /* borrowed */
    char *service, *label, *point_request, *point_spawn;
    keel_address address;
    unsigned connection_limit, connection_limit_per_client;
    keel_usec_t header_timeout, body_timeout, send_timeout; /* send_timeout: http.connection_timeout */
    size_t header_limit;
    keel_http_handler_t handler;
    void *userdata;
    /* Paths whose requests keep their body (keel_http_server_accept_body()), set before start. */
    struct keel__http_body_route {
        char *path; /* owned */
        size_t limit;
        unsigned flags; /* keel_http_body_flags */
    } body_routes[8];
    size_t n_body_routes;
    size_t body_limit_max; /* the largest limit: what each connection's buffer holds past the head's room */

    keel_work *work;              /* borrowed from the app: requests in flight */
    keel_http_mounts *mounts;     /* borrowed from the app: handlers other services mount on this one */
    const keel_http_tls_ops *tls; /* NULL: plain HTTP */
    void *tls_userdata;
    keel_counter *by_status[600]; /* keel_http_requests_total{service,code}, created on first use */
    struct {
        char path[64];
        keel_histogram *h;
    } routes[16];    /* keel_http_request_duration_seconds{service,route}, created on first use */
    size_t n_routes; /* polling thread */
    keel_histogram *other_route, *unmatched_route;
    keel_task_group *tasks; /* owned: the polling thread */
    int listen_fd;          /* owned from start until the drain */
    int wake_fd, epoll_fd;  /* owned */
    int reserve_fd;         /* owned: given up to answer a client when descriptors run out */
    char bound[INET6_ADDRSTRLEN + 8];
    uint16_t port;
    bool wildcard; /* bound to every address: the ready check goes to loopback */
    bool started, stopped, thread_running;
    bool serving; /* counted among the app's serving servers (mount.c) */

    /* Shared with the polling thread. */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* connections reached 0, or a command was carried out */
    int command;            /* under lock */
    bool quiesced;          /* under lock */
    atomic_uint connections;
    atomic_bool draining;
    keel_usec_t drain_started; /* polling thread: when draining began */

    /* The polling thread's own. */
    keel_usec_t now; /* read once per turn of the loop: what phases and silences are timed from */
    connection_state **conns;
    size_t n_conns, allocated_conns;
    connection_state *closed; /* closed in this turn, freed at its end (an event may name one) */
    connection_state **again; /* to run again before waiting (conn.c) */
    size_t n_again, allocated_again;
    keel_http_request **delayed;
    size_t n_delayed, allocated_delayed;
    bool listening;               /* the listener is in the epoll set */
    keel_usec_t deadline_at;      /* the earliest phase deadline, or infinity (deadline.c) */
    keel_counter *cuts[_CUT_MAX]; /* keel_http_connections_cut_total{service,reason}, on first use */
    cached_response cache[8];
    size_t n_cache;
    keel_usec_t out_of_fds_logged;   /* when running out of descriptors was last said (descriptors.c) */
    keel_usec_t client_limit_logged; /* when a client past its connection limit was last said (accept.c) */
    keel_usec_t relisten_at;         /* out of descriptors with none to give back: when to try again */
    keel_usec_t queue_check_at;      /* at the connection limit: when to look for a client in the queue */
    keel_usec_t trim_at;             /* when to give freed memory back if no connection opened since */
    time_t date_second;              /* of date[] */
    char date[40];                   /* "Date: Sun, 06 Dec 2026 02:39:17 GMT\r\n" */

    /* Deferred requests (deferred.c): the polling thread's list; has_answers under lock. */
    keel_http_deferred **pending;
    size_t n_pending, allocated_pending;
    bool has_answers;
};

/* listen.c, main thread: the socket systemd passed under @name, or -ENOENT (a new listener is
 * keel_address_listen()); what @fd is bound to, into @s (bound, port, wildcard). */
int keel__http_activated_socket(const char *name);
/* Also returns whether the configured address names another port or host than @fd's. */
bool keel__http_describe_bound(keel_http_server *s, int fd);
/* "127.0.0.1:8880", "[::1]:8880" of @sa into @buf. */
void keel__http_format_peer(const struct sockaddr *sa, char *buf, size_t size);
/* listen.c: keel_address_listen(), with what getaddrinfo() said of a host that does not resolve
 * in @why (NULL: not wanted), for a message that names it. */
int keel__http_address_listen(const keel_address *a, char *why, size_t why_size);

/* descriptors.c: raises the soft open file limit to the hard one, once per process, and says
 * how many connections that leaves room for (main thread); says, at most every 10 s, that @s
 * cannot accept for lack of descriptors or memory (@why: the error), below its connection limit
 * (polling thread). */
void keel__http_raise_fd_limit(void);
void keel__http_out_of_fds(keel_http_server *s, const char *why);

/* accept.c, polling thread: takes the connections waiting on the listener; the listener in the
 * epoll set, or out of it (at the connection limit, draining); at the limit, a client waiting in
 * the listen queue takes the place of a connection that holds one without a request; the ms until
 * that is looked at again, or -1; the reserve descriptor, given up to tell a client the server is out
 * of descriptors, taken if it is not held (at start, and when a connection closes: a refusal may
 * have lost it to another thread); at a drain, before the listener closes, the clients already in
 * its queue taken, past the connection limit: its close would reset them. */
void keel__http_accept(keel_http_server *s);
void keel__http_accept_queued(keel_http_server *s);
void keel__http_listen(keel_http_server *s, bool on);
void keel__http_check_queue(keel_http_server *s);
int keel__http_queue_timeout(const keel_http_server *s);
void keel__http_take_reserve(keel_http_server *s);

/* conn.c, polling thread: a connection for the accepted socket @fd (false: refused, @fd closed);
 * its turn after epoll reported @events, or after its request was answered (0); its end. */
bool keel__http_conn_open(keel_http_server *s, int fd, const struct sockaddr_storage *peer);
void keel__http_conn_run(connection_state *cs, uint32_t events);
void keel__http_conn_close(connection_state *cs);
/* @cs runs again at the end of this turn (it stopped to let the others run); those that are run;
 * the connections closed in this turn freed (but for what a deferred answer keeps); a closed
 * connection's memory freed (NULL: nothing). */
void keel__http_conn_again(connection_state *cs);
void keel__http_conns_again(keel_http_server *s);
void keel__http_conns_reap(keel_http_server *s);
void keel__http_conn_free(connection_state *cs);
/* As read(2) and write(2) on the connection, plain or TLS. */
ssize_t keel__http_conn_read(connection_state *cs, void *buf, size_t size);
ssize_t keel__http_conn_write(connection_state *cs, const void *buf, size_t size);

/* tls.c, polling thread: a TLS session for @cs (false: closed); the handshake's next step: 1
 * done, 0 not yet (cs->tls_want says for what), -EPROTONOSUPPORT when a plain HTTP client was
 * answered (@cs ends as an answered connection does), another negative errno when it failed and @cs
 * must close;
 * gives freed memory back after a burst, once the server has had no connection for a second. */
bool keel__http_tls_begin(connection_state *cs);
int keel__http_tls_step(connection_state *cs);
void keel__http_trim_when_idle(keel_http_server *s);

/* request.c: a new request id, unique in this process and unlikely to repeat across processes
 * ("3f9c0a1e2b7d4c55-42"). Thread-safe. */
void keel__http_new_request_id(char ret[static KEEL_HTTP_REQUEST_ID_MAX]);
/* request.c, polling thread: a head came to @cs (admitted, counted, its fault points asked);
 * its body too: serve it, now or when its delay ends; its answer went out (or the connection
 * ended with it); the delayed requests that are due resumed, and the ms until the next one is, or
 * -1 (a drain waits for the others until its deadline, then they are cut with their connections). */
void keel__http_request_begin(connection_state *cs, const keel__http_refusal *refusal);
void keel__http_request_run(connection_state *cs);
void keel__http_request_end(connection_state *cs, bool completed);
int keel__http_resume_due(keel_http_server *s);

/* body.c, polling thread: what is answered instead of serving a request for a path that takes a
 * body, for the body its head announced (411, 413), or NULL: then its body is kept. */
const keel__http_refusal *keel__http_body_refusal(connection_state *cs);
/* body.c: the Content-Type of @r's body; the paths given to keel_http_server_accept_body() freed. */
const char *keel__http_refusal_type(const keel__http_refusal *r);
void keel__http_body_routes_free(keel_http_server *s);

/* response.c, polling thread: the server's cached heads freed. */
void keel__http_cache_free(keel_http_server *s);

/* mount.c: the app's table of mounts (made on first use; NULL when out of memory); the mount
 * that answers @req, if any (polling thread: then true, its result in *@ret); a started server
 * counted as serving, or no longer (main thread). */
keel_http_mounts *keel__http_mounts(keel_app *app);
bool keel__http_serve_mounted(keel_http_server *s, keel_http_request *req, int *ret);
void keel__http_set_serving(keel_http_server *s, bool serving);

/* deferred.c, polling thread (main thread after the join): sends the deferred answers that came;
 * at the reap of @cs, closed, gives up the deferred answer its request still waits for and hands it
 * @cs to free once it comes (true: @cs is not to be freed now). */
void keel__http_send_answered(keel_http_server *s);
bool keel__http_deferred_keep(keel_http_server *s, connection_state *cs);

/* The User-Agent of the ready check's request (keel_http_request_from_ready_check()). */
#define KEEL__HTTP_READY_AGENT "keel-ready-check"
/* ready.c, main thread: confirms the server end to end (its own GET; libcurl for TLS). */
int keel__http_wait_ready(keel_http_server *s);

/* deadline.c, polling thread: @cs now waits for @phase; cuts the connections past their deadline;
 * the ms until the next deadline, or -1; near the connection limit, cuts the connection that has
 * waited longest for a head without sending one, to make room for @arrived; out of descriptors,
 * cuts that connection to give one back (false: none waits for a head). */
void keel__http_conn_wait(keel_http_server *s, connection_state *cs, conn_phase phase);
void keel__http_count_cut(keel_http_server *s, conn_cut reason);
void keel__http_deadlines_run(keel_http_server *s);
int keel__http_deadlines_timeout(const keel_http_server *s);
bool keel__http_make_room(keel_http_server *s, connection_state *arrived);
bool keel__http_make_room_for_fds(keel_http_server *s);

/* drain.c: the drain's step on the polling thread (idle connections close); the main thread's
 * command and its wait until nothing is open or @deadline (-ETIMEDOUT); a connection gone. */
void keel__http_drain_now(keel_http_server *s);
void keel__http_send_command(keel_http_server *s, int command);
int keel__http_drain(keel_http_server *s, keel_usec_t deadline);
void keel__http_connection_gone(keel_http_server *s);
