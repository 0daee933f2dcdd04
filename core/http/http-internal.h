/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The HTTP server under every listening service: libmicrohttpd in external-polling mode, so that
 * its polling thread is ours (a task of the service, spawned at "<service>.spawn.server") and
 * every MHD call happens on that one thread. The main thread talks to it through an eventfd:
 * "drain" (stop accepting, close idle connections) and "exit". DESIGN §3 and §4. Its files:
 * server.c (the object, the polling thread, start and stop), listen.c (binding and socket
 * activation), ready.c (the end-to-end check of start), request.c (handlers' requests and
 * answers) and drain.c (connections, and the wait until none is open).
 */

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>

#include <microhttpd.h>

#include <keel/http.h>

#include "app-internal.h"
#include "macro.h"

typedef struct connection_state connection_state;
typedef struct keel_http_mounts keel_http_mounts;
typedef struct tls_conn tls_conn;

/* A constant answer to a request whose head is not served (head.c). */
typedef struct keel__http_refusal {
    unsigned status;
    const char *body; /* text/plain */
} keel__http_refusal;

struct keel_http_request {
    keel_http_server *server;          /* borrowed */
    struct MHD_Connection *connection; /* borrowed */
    connection_state *cs;              /* borrowed */
    const char *method, *path;         /* borrowed from MHD, valid for the request */
    char peer[INET6_ADDRSTRLEN + 8];   /* formatted on first use: most requests never need it */
    char id[KEEL_HTTP_REQUEST_ID_MAX]; /* made on first use, as peer */
    keel_usec_t started, resume_at;
    unsigned status;
    int fault; /* of the request's `before` point */
    bool delayed, answered;
    bool allocated;                    /* on the heap, not in its connection's state */
    bool admitted;                     /* counted in the work tracker: only then is it ended there */
    bool faulted;                      /* failed by an injected `error` fault (before or in) */
    keel_http_deferred *deferred;      /* answered later from another thread (deferred.c), or NULL */
    bool resumed;                      /* deferred and answered: its connection is resumed */
    bool defer_abandoned;              /* deferred and given up by a stop: answered 503 */
    const keel__http_refusal *refusal; /* the head is not served (head.c), but answered this */
};

/* A connection's libmicrohttpd pool past http.header_limit: what MHD parses the head into (some
 * 56 bytes per header field) and the answer's head. With the default limit the pool is 32 KiB,
 * the most libmicrohttpd takes from malloc(): a larger pool is mmap()ed for each connection and
 * munmap()ed at its close, and in a process of several threads every munmap() interrupts the other
 * CPUs to flush their TLBs: 64 KiB pools made a new connection cost ~0.8 ms of CPU (decision 21). */
#define KEEL_HTTP_POOL_PAST_HEAD (24 * 1024)

/* What a connection waits for, and so which deadline it has (deadline.c). */
typedef enum conn_phase {
    CONN_WAIT_HEAD, /* a request's head: since it opened or since the previous answer */
    CONN_WAIT_BODY, /* the rest of a request whose head came */
    CONN_SERVING,   /* the answer: silence is all that is timed (http.connection_timeout) */
} conn_phase;

typedef enum conn_cut {
    CUT_HEADER_TIMEOUT,
    CUT_BODY_TIMEOUT,
    CUT_EVICTED,
    _CUT_MAX,
} conn_cut;

struct connection_state {
    struct MHD_Connection *connection; /* borrowed */
    char *identity;                    /* owned: the verified client certificate's, or NULL */
    bool tls;                          /* came through the server's TLS */
    bool busy;                         /* a request is under way on it */
    bool cut;                          /* shut down by deadline.c: MHD closes it on its next run */
    const char *target;                /* the request being read: its target as sent (head.c) */
    size_t target_len;                 /* up to a NUL, if it has one */
    bool target_bad;                   /* a space or control character in it */
    bool nul_in_target;                /* a %00 decoded into it (keel__http_unescape()) */
    conn_phase phase;
    keel_usec_t since;         /* when the phase began */
    keel_http_request request; /* HTTP/1.1 runs one request at a time per connection */
};

/* A constant answer built once and queued again and again (MHD responses are reference-counted). */
typedef struct cached_response {
    unsigned status;
    const char *content_type, *body; /* compared by address: static storage */
    bool close;                      /* carries Connection: close (draining) */
    struct MHD_Response *response;   /* owned */
} cached_response;

/* What the main thread asks of the polling thread. */
enum { COMMAND_NONE, COMMAND_DRAIN, COMMAND_EXIT };

struct keel_http_server {
    keel_app *app; /* borrowed */
    char *service, *label, *point_request, *point_spawn;
    keel_address address;
    unsigned connection_limit, connection_timeout, connection_limit_per_client;
    keel_usec_t header_timeout, body_timeout;
    size_t header_limit;
    keel_http_handler_t handler;
    void *userdata;

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
    keel_task_group *tasks;    /* owned: the polling thread */
    struct MHD_Daemon *daemon; /* owned */
    int wake_fd, epoll_fd;     /* owned */
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

    /* The polling thread's own. */
    connection_state **conns;
    size_t n_conns, allocated_conns;
    keel_http_request **delayed;
    size_t n_delayed, allocated_delayed;
    bool relisten;                /* a place freed at the connection limit: run MHD once more before waiting */
    bool out_of_fds;              /* MHD stopped accepting for lack of descriptors until a connection closes */
    keel_usec_t deadline_at;      /* the earliest head or body deadline, or infinity (deadline.c) */
    keel_counter *cuts[_CUT_MAX]; /* keel_http_connections_cut_total{service,reason}, on first use */
    cached_response cache[8];
    size_t n_cache;
    char accept_error[128];        /* the last accept() error libmicrohttpd reported */
    keel_usec_t out_of_fds_logged; /* when running out of descriptors was last said (descriptors.c) */

    /* Deferred requests (deferred.c): the polling thread's list; has_answers under lock. */
    keel_http_deferred **pending;
    size_t n_pending, allocated_pending;
    bool has_answers;

    /* TLS (tls.c), the polling thread's own but for the count. */
    int tls_epoll, tls_listen; /* owned, -EBADF without TLS */
    bool tls_listening;
    tls_conn **tls_conns;
    size_t n_tls, allocated_tls;
    tls_conn *attaching;       /* the connection MHD_add_connection() is taking now */
    keel_usec_t tls_expire_at; /* the earliest deadline of a handshake under way or of tls_trim_at, or infinity */
    keel_usec_t tls_trim_at;   /* when to give freed memory back if no connection opened since, or infinity */
    atomic_uint tls_open;      /* TLS connections open: the drain waits for them too */
};

/* listen.c, main thread: the socket systemd passed under @name, or -ENOENT; a new listener for
 * @a; what @fd is bound to, into @s (bound, port, wildcard). */
int keel__http_activated_socket(const char *name);
int keel__http_bind_address(const keel_address *a);
void keel__http_describe_bound(keel_http_server *s, int fd);
/* "127.0.0.1:8880", "[::1]:8880" of @sa into @buf. */
void keel__http_format_peer(const struct sockaddr *sa, char *buf, size_t size);

/* descriptors.c: raises the soft open file limit to the hard one, once per process, and says
 * how many connections that leaves room for (main thread); says, at most every 10 s, that @s
 * cannot accept for lack of descriptors or memory (@why: the error), below its connection limit
 * (polling thread). */
void keel__http_raise_fd_limit(void);
void keel__http_out_of_fds(keel_http_server *s, const char *why);

/* request.c: a new request id, unique in this process and unlikely to repeat across processes
 * ("3f9c0a1e2b7d4c55-42"). Thread-safe. */
void keel__http_new_request_id(char ret[static KEEL_HTTP_REQUEST_ID_MAX]);

/* mount.c: the app's table of mounts (made on first use; NULL when out of memory); the mount
 * that answers @req, if any (polling thread: then true, its result in *@ret); a started server
 * counted as serving, or no longer (main thread). */
keel_http_mounts *keel__http_mounts(keel_app *app);
bool keel__http_serve_mounted(keel_http_server *s, keel_http_request *req, int *ret);
void keel__http_set_serving(keel_http_server *s, bool serving);

/* deferred.c, polling thread: resumes the connections whose deferred answer came; sends it when
 * MHD calls for the request again (true: sent); at a stop (main thread, after the join), gives up
 * every answer not sent (their connections resumed, a late answer freed by its thread). */
void keel__http_resume_answered(keel_http_server *s);
bool keel__http_send_deferred(keel_http_server *s, keel_http_request *req);
void keel__http_abandon_deferred(keel_http_server *s);

/* tls.c, polling thread: the TLS listener and connections in an epoll set of their own (in the
 * server's), run when it is readable; the ms until the next handshake deadline, or -1; the
 * drain's step (the listener closes, handshakes under way end); everything closed (main thread,
 * once the polling thread is joined); the identity of the connection being added to MHD. */
int keel__http_tls_setup(keel_http_server *s, int listen_fd);
void keel__http_tls_run(keel_http_server *s);
void keel__http_tls_expire(keel_http_server *s);
int keel__http_tls_timeout(keel_http_server *s);
void keel__http_tls_listen(keel_http_server *s, bool on);
void keel__http_tls_drain(keel_http_server *s);
void keel__http_tls_close_all(keel_http_server *s);
const char *keel__http_tls_attaching_identity(keel_http_server *s);

/* ready.c, main thread: confirms the server end to end with libcurl (DESIGN §2). */
int keel__http_wait_ready(keel_http_server *s);

/* request.c, polling thread: MHD's callbacks for requests; resumes the delayed requests that are
 * due (all with @all) and returns the ms until the next one is, or -1. */
enum MHD_Result keel__http_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size, void **con_cls);
void keel__http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe);
int keel__http_resume_due(keel_http_server *s, bool all);

/* head.c, polling thread: MHD's callbacks for a request's target, and what a request whose head
 * came is answered instead of being served, or NULL. */
void *keel__http_on_target(void *cls, const char *uri, struct MHD_Connection *c);
size_t keel__http_unescape(void *cls, struct MHD_Connection *c, char *s);
const keel__http_refusal *keel__http_head_refusal(const keel_http_server *s, struct MHD_Connection *c, const char *method,
                                                  const char *version);

/* deadline.c, polling thread: @cs now waits for @phase; cuts the connections past their deadline;
 * the ms until the next deadline, or -1; near the connection limit, cuts the connection that has
 * waited longest for a head, to make room for @arrived; out of descriptors, cuts that connection
 * to give one back (false: none waits for a head). */
void keel__http_conn_wait(keel_http_server *s, connection_state *cs, conn_phase phase);
void keel__http_deadlines_run(keel_http_server *s);
int keel__http_deadlines_timeout(const keel_http_server *s);
void keel__http_make_room(keel_http_server *s, connection_state *arrived);
bool keel__http_make_room_for_fds(keel_http_server *s);

/* drain.c: MHD's connection callback and idle closing (polling thread); the main thread's command
 * and its wait until nothing is open or @deadline (-ETIMEDOUT). */
void keel__http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code);
void keel__http_close_when_idle(connection_state *cs);
void keel__http_send_command(keel_http_server *s, int command);
int keel__http_drain(keel_http_server *s, keel_usec_t deadline);
