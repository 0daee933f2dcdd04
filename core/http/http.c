/* SPDX-License-Identifier: MIT */
/*
 * The HTTP server under every listening service: libmicrohttpd in external-polling mode, so that
 * its polling thread is ours (a task of the service, spawned at "<service>.spawn.server") and
 * every MHD call happens on that one thread. The main thread talks to it through an eventfd:
 * "drain" (stop accepting, close idle connections) and "exit". DESIGN §3 and §4.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>
#include <systemd/sd-daemon.h>

#include <keel/http.h>
#include <keel/point.h>

#include "app-internal.h"
#include "curl.h"
#include "macro.h"

typedef struct connection_state connection_state;

struct keel_http_request {
    keel_http_server *server;          /* borrowed */
    struct MHD_Connection *connection; /* borrowed */
    connection_state *cs;              /* borrowed */
    const char *method, *path;         /* borrowed from MHD, valid for the request */
    char peer[INET6_ADDRSTRLEN + 8];   /* formatted on first use: most requests never need it */
    keel_usec_t started, resume_at;
    unsigned status;
    int fault; /* of the request's `before` point */
    bool delayed, answered;
    bool allocated; /* on the heap, not in its connection's state */
    bool admitted;  /* counted in the work tracker: only then is it ended there */
    bool faulted;   /* failed by an injected `error` fault (before or in) */
};

struct connection_state {
    struct MHD_Connection *connection; /* borrowed */
    bool busy;                         /* a request is under way on it */
    keel_http_request request;         /* HTTP/1.1 runs one request at a time per connection */
};

/* A constant answer built once and queued again and again (MHD responses are reference-counted). */
typedef struct cached_response {
    unsigned status;
    const char *content_type, *body; /* compared by address: static storage */
    bool close;                      /* carries Connection: close (draining) */
    struct MHD_Response *response;   /* owned */
} cached_response;

enum { COMMAND_NONE, COMMAND_DRAIN, COMMAND_EXIT };

struct keel_http_server {
    keel_app *app; /* borrowed */
    char *service, *label, *point_request, *point_spawn;
    keel_address address;
    unsigned connection_limit, connection_timeout;
    size_t header_limit;
    keel_http_handler_t handler;
    void *userdata;

    keel_work *work;              /* borrowed from the app: requests in flight */
    keel_counter *by_status[600]; /* keel_http_requests_total{service,code}, created on first use */
    keel_task_group *tasks;       /* owned: the polling thread */
    struct MHD_Daemon *daemon;    /* owned */
    int wake_fd, epoll_fd;        /* owned */
    char bound[INET6_ADDRSTRLEN + 8];
    uint16_t port;
    bool wildcard; /* bound to every address: the ready check goes to loopback */
    bool started, stopped, thread_running;

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
    bool relisten; /* a place freed at the connection limit: run MHD once more before waiting */
    cached_response cache[8];
    size_t n_cache;
};

/* ---- setup ----------------------------------------------------------------------------- */

void keel_http_prepare(keel_app *app)
{
    int r = keel__curl_preload(app);
    if (r < 0)
        keel_log_debug("Failed to start loading libcurl early, the first server will: %s", strerror(-r));
}

keel_http_server *keel_http_server_new(keel_app *app, const keel_http_options *o)
{
    keel_assert_return(app && o && o->service && o->label && o->handler, NULL);

    const keel_core_settings *cfg = keel__app_settings(app);
    keel_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    *s = (keel_http_server){
        .app = app,
        .address = o->address,
        .connection_limit = o->connection_limit ? o->connection_limit : (unsigned) cfg->http_connection_limit,
        .connection_timeout =
            o->connection_timeout ? o->connection_timeout : (unsigned) (cfg->http_connection_timeout / KEEL_USEC_PER_SEC),
        .header_limit = o->header_limit ? o->header_limit : (size_t) cfg->http_header_limit,
        .handler = o->handler,
        .userdata = o->userdata,
        .wake_fd = -EBADF,
        .epoll_fd = -EBADF,
        .lock = PTHREAD_MUTEX_INITIALIZER,
    };
    pthread_condattr_t attr;
    /* CLOCK_MONOTONIC, like every deadline here: a wall-clock step must not stretch a drain. */
    if (pthread_condattr_init(&attr) != 0 || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&s->changed, &attr) != 0) {
        free(s);
        return NULL;
    }
    (void) pthread_condattr_destroy(&attr);
    s->service = strdup(o->service);
    s->label = strdup(o->label);
    s->point_request = keel_strdup_printf("%s.request", o->service);
    s->point_spawn = keel_strdup_printf("%s.spawn.server", o->service);
    s->work = keel_app_work(app, o->service);
    s->tasks = keel_task_group_new(app, o->service);
    if (!s->service || !s->label || !s->point_request || !s->point_spawn || !s->work || !s->tasks)
        return keel_http_server_free(s);
    return s;
}

keel_http_server *keel_http_server_free(keel_http_server *s)
{
    if (!s)
        return NULL;
    (void) keel_http_server_stop(s);
    keel_task_group_free(s->tasks);
    free(s->conns);
    free(s->delayed);
    free(s->service);
    free(s->label);
    free(s->point_request);
    free(s->point_spawn);
    (void) pthread_cond_destroy(&s->changed);
    (void) pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

/* ---- requests (polling thread) ----------------------------------------------------------- */

static void format_peer(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
        (void) inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        (void) snprintf(buf, size, "%s:%u", host, port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
        (void) inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        (void) snprintf(buf, size, "[%s]:%u", host, port);
    } else
        (void) snprintf(buf, size, "%s", host);
}

static keel_http_request *request_new(keel_http_server *s, struct MHD_Connection *c, const char *url, const char *method)
{
    const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    connection_state *cs = sc ? sc->socket_context : NULL;
    bool allocated = !cs || cs->busy;
    keel_http_request *req = allocated ? malloc(sizeof *req) : &cs->request;
    if (!req)
        return NULL;
    *req = (keel_http_request){
        .server = s,
        .connection = c,
        .cs = cs,
        .allocated = allocated,
        .method = method,
        .path = url,
        /* Only the debug log reads the latency: no clock read per request otherwise. */
        .started = keel_log_get_level() >= KEEL_LOG_DEBUG ? keel_now() : 0,
    };
    return req;
}

static int delay_request(keel_http_server *s, keel_http_request *req, keel_usec_t delay)
{
    if (s->n_delayed == s->allocated_delayed) {
        size_t n = s->allocated_delayed ? s->allocated_delayed * 2 : 16;
        keel_http_request **d = realloc(s->delayed, n * sizeof *d);
        if (!d)
            return -ENOMEM;
        s->delayed = d;
        s->allocated_delayed = n;
    }
    req->resume_at = keel_now() + delay;
    s->delayed[s->n_delayed++] = req;
    /* The connection waits without holding up the others (DESIGN §4). */
    MHD_suspend_connection(req->connection);
    return 0;
}

/* Resumes every delayed request that is due (all of them with @all) and returns the time until
 * the next one is, in ms for epoll_wait(), or -1. */
static int resume_due(keel_http_server *s, bool all)
{
    keel_usec_t now = keel_now(), next = KEEL_USEC_INFINITY;
    size_t j = 0;
    for (size_t i = 0; i < s->n_delayed; i++) {
        keel_http_request *req = s->delayed[i];
        if (all || req->resume_at <= now) {
            MHD_resume_connection(req->connection);
            continue;
        }
        next = MIN(next, req->resume_at);
        s->delayed[j++] = req;
    }
    s->n_delayed = j;
    return next == KEEL_USEC_INFINITY ? -1 : (int) ((next - now + 999) / 1000);
}

int keel_http_respond(keel_http_request *req, unsigned status, const char *content_type, const void *body, size_t size,
                      const char *const *headers)
{
    keel_assert_return(req && status >= 100 && status <= 599, -EINVAL);
    if (req->answered)
        return -EALREADY;

    struct MHD_Response *r = MHD_create_response_from_buffer(size, (void *) body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return -ENOMEM;
    if (content_type)
        (void) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (const char *const *h = headers; h && h[0] && h[1]; h += 2)
        (void) MHD_add_response_header(r, h[0], h[1]);
    /* Once draining, every answer ends its connection, so no request is cut mid-way (DESIGN §3). */
    if (atomic_load(&req->server->draining))
        (void) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result q = MHD_queue_response(req->connection, status, r);
    MHD_destroy_response(r);
    if (q != MHD_YES)
        return -EIO;
    req->status = status;
    req->answered = true;
    return 0;
}

static struct MHD_Response *cached(keel_http_server *s, unsigned status, const char *content_type, const char *body, bool close)
{
    for (size_t i = 0; i < s->n_cache; i++) {
        cached_response *c = &s->cache[i];
        if (c->status == status && c->content_type == content_type && c->body == body && c->close == close)
            return c->response;
    }
    if (s->n_cache == ELEMENTSOF(s->cache))
        return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return NULL;
    if (content_type)
        (void) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (close)
        (void) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    s->cache[s->n_cache++] = (cached_response){ status, content_type, body, close, r };
    return r;
}

int keel_http_respond_static(keel_http_request *req, unsigned status, const char *content_type, const char *body)
{
    keel_assert_return(req && body && status >= 100 && status <= 599, -EINVAL);
    if (req->answered)
        return -EALREADY;
    struct MHD_Response *r = cached(req->server, status, content_type, body, atomic_load(&req->server->draining));
    if (!r) /* the cache is full: answer the usual way */
        return keel_http_respond_text(req, status, content_type, body);
    if (MHD_queue_response(req->connection, status, r) != MHD_YES)
        return -EIO;
    req->status = status;
    req->answered = true;
    return 0;
}

int keel_http_respond_text(keel_http_request *req, unsigned status, const char *content_type, const char *body)
{
    keel_assert_return(body, -EINVAL);
    return keel_http_respond(req, status, content_type, body, strlen(body), NULL);
}

static void serve(keel_http_server *s, keel_http_request *req)
{
    int r = req->fault;
    if (r >= 0) {
        r = keel_point_in_nowait(s->point_request);
        req->faulted = r < 0;
    }
    if (r >= 0)
        r = s->handler(req, s->userdata);
    if (r < 0 && !req->answered)
        (void) keel_http_respond_text(req, 500, "text/plain; charset=utf-8",
                                      req->faulted ? KEEL_FAULT_MESSAGE "\n" : "internal server error\n");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    keel_http_server *s = cls;
    keel_http_request *req = *con_cls;

    if (!req) {
        /* Queue nothing on the first call: MHD 0.9.75 would answer `Connection: close` (DESIGN §4). */
        req = request_new(s, c, url, method);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        if (req->cs)
            req->cs->busy = true;
        /* Never refused: the gate for requests is the listener, and a request on a connection
         * that is already open is served (with Connection: close) even while draining. */
        req->admitted = keel_work_begin(s->work) >= 0;
        req->fault = keel_point_before_nowait(s->point_request, true);
        req->faulted = req->fault < 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) { /* no service reads a body: consume and ignore it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->answered)
        return MHD_YES;
    if (!req->delayed) {
        req->delayed = true;
        /* Injected sleeps, before or in, delay the answer; the polling thread never sleeps. */
        keel_usec_t delay = keel_point_before_delay(s->point_request) + keel_point_in_delay(s->point_request);
        if (delay > 0 && delay_request(s, req, delay) >= 0)
            return MHD_YES;
    }
    serve(s, req);
    return MHD_YES;
}

static void close_when_idle(connection_state *cs);

static void count_request(keel_http_server *s, unsigned status)
{
    if (status >= ELEMENTSOF(s->by_status))
        return;
    if (!s->by_status[status]) {
        char code[8];
        (void) snprintf(code, sizeof code, "%u", status);
        (void) keel_metrics_counter(keel_app_metrics(s->app), "keel_http_requests_total", "HTTP requests answered.",
                                    (const char *const[]){ "service", s->service, "code", code, NULL }, &s->by_status[status]);
    }
    keel_counter_add(s->by_status[status], 1);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    keel_http_server *s = cls;
    keel_http_request *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && req->status > 0 && req->status < 500;
    if (req->admitted)
        keel_work_end(s->work, ok);
    if (req->status)
        count_request(s, req->status);
    if (req->cs) {
        req->cs->busy = false;
        /* Its answer may have been queued before the drain began, without Connection: close:
         * the connection goes idle now and must not stay for the keep-alive timeout. */
        if (atomic_load(&s->draining))
            close_when_idle(req->cs);
    }
    bool allocated = req->allocated;
    if (req->started)
        keel_log_service(s->service, KEEL_LOG_DEBUG, "%s %s from %s: %u in %.3fms%s", req->method, req->path,
                         keel_http_request_peer(req), req->status, (double) (keel_now() - req->started) / 1000.0,
                         ok ? "" : " (failed)");
    if (allocated)
        free(req);
}

/* ---- connections (polling thread) ------------------------------------------------------- */

static void close_when_idle(connection_state *cs)
{
    /* MHD has no "close now"; a one-second inactivity timeout closes an idle keep-alive
     * connection on its next run, as Go's Shutdown closes idle connections. */
    if (!cs->busy)
        (void) MHD_set_connection_option(cs->connection, MHD_CONNECTION_OPTION_TIMEOUT, 1U);
}

static int track_connection(keel_http_server *s, connection_state *cs)
{
    if (s->n_conns == s->allocated_conns) {
        size_t n = s->allocated_conns ? s->allocated_conns * 2 : 16;
        connection_state **l = realloc(s->conns, n * sizeof *l);
        if (!l)
            return -ENOMEM;
        s->conns = l;
        s->allocated_conns = n;
    }
    s->conns[s->n_conns++] = cs;
    return 0;
}

static void untrack_connection(keel_http_server *s, connection_state *cs)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i] == cs) {
            s->conns[i] = s->conns[--s->n_conns];
            return;
        }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code)
{
    keel_http_server *s = cls;
    connection_state *cs = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->connections, 1);
        cs = calloc(1, sizeof *cs);
        if (cs) {
            cs->connection = c;
            if (track_connection(s, cs) < 0)
                cs = (free(cs), NULL);
        }
        *socket_context = cs;
        if (cs && atomic_load(&s->draining))
            close_when_idle(cs);
        return;
    }
    if (cs) {
        untrack_connection(s, cs);
        free(cs);
        *socket_context = NULL;
    }
    unsigned before = atomic_fetch_sub(&s->connections, 1);
    /* At the limit MHD took the listener out of its epoll set; it puts it back at the start of
     * its next run, and only then can a connection waiting in the backlog wake us. */
    if (before >= s->connection_limit)
        s->relisten = true;
    if (before == 1) {
        (void) pthread_mutex_lock(&s->lock);
        (void) pthread_cond_broadcast(&s->changed);
        (void) pthread_mutex_unlock(&s->lock);
    }
}

/* ---- the polling thread ------------------------------------------------------------------ */

static void drain_now(keel_http_server *s)
{
    atomic_store(&s->draining, true);
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    /* External polling: nothing else uses the listener any more, so it can close at once. */
    if (fd != MHD_INVALID_SOCKET)
        safe_close(fd);
    for (size_t i = 0; i < s->n_conns; i++)
        close_when_idle(s->conns[i]);
}

/* Carries out the main thread's command; returns false when the thread must end. */
static bool take_command(keel_http_server *s)
{
    uint64_t v;
    ssize_t _unused_ n = read(s->wake_fd, &v, sizeof v);
    (void) pthread_mutex_lock(&s->lock);
    int command = s->command;
    if (command == COMMAND_DRAIN && !s->quiesced) {
        drain_now(s);
        s->quiesced = true;
        (void) pthread_cond_broadcast(&s->changed);
    }
    (void) pthread_mutex_unlock(&s->lock);
    return command != COMMAND_EXIT;
}

/* Milliseconds until the next delayed request falls due, or -1. */
static int next_due(keel_http_server *s)
{
    keel_usec_t now = keel_now(), next = KEEL_USEC_INFINITY;
    for (size_t i = 0; i < s->n_delayed; i++)
        next = MIN(next, s->delayed[i]->resume_at);
    if (next == KEEL_USEC_INFINITY)
        return -1;
    return next <= now ? 0 : (int) ((next - now + 999) / 1000);
}

/* The epoll timeout: MHD's own, or sooner when a delayed request falls due. Asked after
 * MHD_run(), which is where handlers delay new requests. */
static int next_timeout(keel_http_server *s)
{
    MHD_UNSIGNED_LONG_LONG mhd;
    int t = next_due(s);
    if (MHD_get_timeout(s->daemon, &mhd) == MHD_YES && (t < 0 || mhd < (MHD_UNSIGNED_LONG_LONG) t))
        t = mhd > INT32_MAX ? INT32_MAX : (int) mhd;
    return t;
}

static void poll_loop(keel_task *task, void *userdata)
{
    keel_http_server *s = userdata;
    for (bool running = true; running;) {
        /* The order libmicrohttpd documents for external polling: after MHD_resume_connection(),
         * MHD_run() and then MHD_get_timeout() before waiting again — a resumed connection whose
         * answer is queued must not wait for a readiness edge that already passed. */
        (void) resume_due(s, false);
        (void) MHD_run(s->daemon);
        if (s->relisten) {
            s->relisten = false;
            (void) MHD_run(s->daemon);
        }
        struct epoll_event ev[4];
        int n = epoll_wait(s->epoll_fd, ev, (int) ELEMENTSOF(ev), next_timeout(s));
        for (int i = 0; i < n; i++)
            if (ev[i].data.fd == s->wake_fd)
                running = take_command(s);
    }
}

/* ---- start (main thread) ----------------------------------------------------------------- */

static int activated_socket(const char *name)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(0, &names), fd = -ENOENT;
    for (int i = 0; i < n; i++) {
        if (fd < 0 && names && streq(names[i], name) && sd_is_socket_inet(SD_LISTEN_FDS_START + i, 0, SOCK_STREAM, 1, 0) > 0)
            fd = SD_LISTEN_FDS_START + i;
        free(names ? names[i] : NULL);
    }
    free(names);
    return fd;
}

static int bind_one(const struct sockaddr *sa, socklen_t len)
{
    _cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1, off = 0;
    if (fd < 0)
        return -errno;
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (sa->sa_family == AF_INET6) /* "[::]" takes IPv4 too */
        (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    if (bind(fd, sa, len) < 0 || listen(fd, SOMAXCONN) < 0)
        return -errno;
    return TAKE_FD(fd);
}

static int bind_address(const keel_address *a)
{
    char port[8];
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai = NULL;
    (void) snprintf(port, sizeof port, "%u", a->port);
    if (!a->host[0]) { /* every address: IPv6 dual-stack where there is IPv6 */
        struct sockaddr_in6 any6 = { .sin6_family = AF_INET6, .sin6_port = htons(a->port), .sin6_addr = IN6ADDR_ANY_INIT };
        int fd = bind_one((struct sockaddr *) &any6, sizeof any6);
        if (fd != -EAFNOSUPPORT)
            return fd;
        hints.ai_family = AF_INET;
    }
    int r = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &ai);
    if (r != 0)
        return r == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
    int fd = -EADDRNOTAVAIL;
    for (struct addrinfo *i = ai; i && fd < 0; i = i->ai_next)
        fd = bind_one(i->ai_addr, i->ai_addrlen);
    freeaddrinfo(ai);
    return fd;
}

static void describe_bound(keel_http_server *s, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
        return;
    format_peer((struct sockaddr *) &ss, s->bound, sizeof s->bound);
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &ss;
        s->port = ntohs(in6->sin6_port);
        s->wildcard = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *) &ss;
        s->port = ntohs(in->sin_port);
        s->wildcard = in->sin_addr.s_addr == htonl(INADDR_ANY);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    (void) vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = 0;
    keel_log_service(cls, KEEL_LOG_DEBUG, "libmicrohttpd: %s", buf);
}

static int start_daemon(keel_http_server *s, int listen_fd)
{
    s->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_CONNECTION_LIMIT, s->connection_limit,
                                 MHD_OPTION_CONNECTION_TIMEOUT, s->connection_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                 s->header_limit, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
                                 on_connection, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s->service, MHD_OPTION_END);
    if (!s->daemon)
        return -EIO;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!info)
        return -EIO;
    if (s->wake_fd < 0 || s->epoll_fd < 0)
        return -errno;
    struct epoll_event mhd = { .events = EPOLLIN, .data.fd = info->epoll_fd };
    struct epoll_event wake = { .events = EPOLLIN, .data.fd = s->wake_fd };
    if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, info->epoll_fd, &mhd) < 0 ||
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->wake_fd, &wake) < 0)
        return -errno;
    return 0;
}

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
    (void) c->easy_setopt(curl, CURLOPT_USERAGENT, "keel-ready-check");
    (void) c->easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    return curl;
}

/* DESIGN §2: success, or retry with a short backoff until a bounded error; never cut short by a
 * signal, which takes effect when the start observer returns. */
static int wait_ready(keel_http_server *s)
{
    const keel_curl *c;
    char url[sizeof s->bound + 16];

    keel__curl_schedule_unload(s->app);
    if (keel__curl_load(&c) < 0)
        return keel_app_fail(s->app, -ENOENT,
                             "Cannot confirm %s ready: libcurl (libcurl-gnutls.so.4 or libcurl.so.4) cannot be loaded", s->label);
    /* The socket actually bound (it may be systemd's), numeric; for "every address", loopback
     * (IPv4: our own "[::]" is dual-stack). */
    if (s->wildcard)
        (void) snprintf(url, sizeof url, "http://127.0.0.1:%u/", s->port);
    else
        (void) snprintf(url, sizeof url, "http://%s/", s->bound);
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
        struct timespec ts = { .tv_nsec = (long) backoff * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        backoff = MIN(backoff * 2, 64 * KEEL_USEC_PER_MSEC);
    }
    c->easy_cleanup(curl);
    if (code != CURLE_OK)
        return keel_app_fail(s->app, -ETIMEDOUT, "%s[%s] did not answer within %llus: %s", s->label, s->bound,
                             (unsigned long long) (KEEL_HTTP_READY_TIMEOUT_USEC / KEEL_USEC_PER_SEC), c->easy_strerror(code));
    return 0;
}

int keel_http_server_start(keel_http_server *s)
{
    keel_assert_return(s, -EINVAL);
    if (!keel__app_in_start(s->app))
        return -EPERM;
    if (s->started)
        return -EALREADY;
    s->started = true;

    int fd = activated_socket(s->service);
    bool activated = fd >= 0;
    if (!activated)
        fd = bind_address(&s->address);
    if (fd < 0) {
        char want[300];
        (void) snprintf(want, sizeof want, "%s:%u", s->address.host, s->address.port);
        return keel_app_fail(s->app, fd, "Failed to bind %s to '%s': %s", s->label, want, strerror(-fd));
    }
    describe_bound(s, fd);
    keel_log_service(s->service, KEEL_LOG_INFO, "Starting %s[%s]%s", s->label, s->bound, activated ? " (socket activation)" : "");
    int r = start_daemon(s, fd);
    if (r < 0) {
        if (!s->daemon)
            safe_close(fd);
        return keel_app_fail(s->app, r, "Failed to start %s: %s", s->label, strerror(-r));
    }
    r = keel_task_group_spawn(s->tasks, s->point_spawn, "server", poll_loop, s);
    if (r < 0)
        return keel_app_fail(s->app, r, "Failed to spawn the %s thread: %s", s->label, strerror(-r));
    s->thread_running = true;
    r = wait_ready(s);
    if (r >= 0)
        (void) keel__app_add_status_detail(s->app, "%s[%s]", s->label, s->bound);
    return r;
}

/* ---- stop (main thread) ------------------------------------------------------------------ */

static void send_command(keel_http_server *s, int command)
{
    uint64_t one = 1;
    (void) pthread_mutex_lock(&s->lock);
    s->command = command;
    (void) pthread_mutex_unlock(&s->lock);
    ssize_t _unused_ n = write(s->wake_fd, &one, sizeof one);
}

static bool drained(keel_http_server *s)
{
    keel_work_stats st;
    keel_work_get_stats(s->work, &st);
    return atomic_load(&s->connections) == 0 && st.in_flight == 0;
}

static struct timespec abs_time(keel_usec_t usec)
{
    return (struct timespec){ .tv_sec = (time_t) (usec / KEEL_USEC_PER_SEC), .tv_nsec = (long) (usec % KEEL_USEC_PER_SEC) * 1000 };
}

static void report_drain(keel_http_server *s, keel_usec_t deadline)
{
    keel_work_stats st;
    char what[256];
    keel_work_get_stats(s->work, &st);
    (void) snprintf(what, sizeof what, "Waiting for %s: %u connections open, %llu requests in flight, %.1fs left", s->label,
                    atomic_load(&s->connections), (unsigned long long) st.in_flight, (double) (deadline - keel_now()) / 1e6);
    keel_app_stop_progress(s->app, what);
}

static void wait_changed(keel_http_server *s, keel_usec_t until)
{
    struct timespec ts = abs_time(until);
    (void) pthread_cond_timedwait(&s->changed, &s->lock, &ts);
}

/* How long the polling thread gets to carry out "drain" even when the budget is already spent
 * (an earlier server used it up): a server with nothing open still stops cleanly. */
#define DRAIN_ACK_USEC (100 * KEEL_USEC_PER_MSEC)

/* Steps 3 and 4 of DESIGN §3: stop accepting, then wait until nothing is open. */
static int drain(keel_http_server *s, keel_usec_t deadline)
{
    keel_usec_t tick = keel_now() + KEEL_WORK_PROGRESS_USEC, ack_by = MAX(deadline, keel_now() + DRAIN_ACK_USEC);
    int r = 0;

    send_command(s, COMMAND_DRAIN);
    (void) pthread_mutex_lock(&s->lock);
    while (!(s->quiesced && drained(s))) {
        keel_usec_t now = keel_now(), until = s->quiesced ? deadline : ack_by;
        if (now >= until) {
            r = -ETIMEDOUT;
            break;
        }
        if (now >= tick) {
            (void) pthread_mutex_unlock(&s->lock);
            report_drain(s, deadline);
            (void) pthread_mutex_lock(&s->lock);
            tick = now + KEEL_WORK_PROGRESS_USEC;
        } else
            wait_changed(s, MIN(tick, until));
    }
    (void) pthread_mutex_unlock(&s->lock);
    return r;
}

int keel_http_server_stop(keel_http_server *s)
{
    if (!s || s->stopped || !s->started)
        return 0;
    s->stopped = true;
    if (!s->daemon)
        return 0; /* the bind failed: nothing runs */

    int r = 0;
    if (s->thread_running) {
        keel_usec_t deadline = keel_app_stop_deadline(s->app);
        if (deadline == KEEL_USEC_INFINITY) /* stopped outside `stop`: the same budget from now */
            deadline = keel_now() + keel__app_settings(s->app)->shutdown_timeout;
        r = drain(s, deadline);
        if (r < 0) {
            keel_work_stats st;
            keel_work_get_stats(s->work, &st);
            keel_log_service(s->service, KEEL_LOG_ERROR,
                             "Stopping %s past the shutdown timeout: %u connections and %llu requests still open; cutting them",
                             s->label, atomic_load(&s->connections), (unsigned long long) st.in_flight);
        }
        send_command(s, COMMAND_EXIT);
        (void) keel_task_group_join(s->tasks);
        s->thread_running = false;
    }
    (void) resume_due(s, true); /* MHD must not be stopped with suspended connections */
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    for (size_t i = 0; i < s->n_cache; i++)
        MHD_destroy_response(s->cache[i].response);
    s->n_cache = 0;
    s->epoll_fd = safe_close(s->epoll_fd);
    s->wake_fd = safe_close(s->wake_fd);
    keel_log_service(s->service, KEEL_LOG_INFO, "Stopped %s", s->label);
    return r;
}

int keel_http_server_start_new(keel_app *app, const keel_http_options *options, keel_http_server **ret)
{
    keel_assert_return(app && options && ret, -EINVAL);
    *ret = keel_http_server_new(app, options);
    if (!*ret)
        return keel_app_fail(app, -ENOMEM, "Failed to create the %s: %m", options->label ? options->label : "HTTP server");
    return keel_http_server_start(*ret);
}

int keel_http_server_stop_and_free(keel_app *app, keel_http_server **s)
{
    keel_assert_return(app && s, -EINVAL);
    if (!*s)
        return 0;
    int r = keel_http_server_stop(*s);
    char label[128];
    (void) snprintf(label, sizeof label, "%s", (*s)->label);
    *s = keel_http_server_free(*s);
    return r < 0 ? keel_app_fail(app, r, "%s drained past the shutdown timeout", label) : 0;
}

const char *keel_http_server_address(const keel_http_server *s)
{
    return s && s->bound[0] ? s->bound : NULL;
}

uint16_t keel_http_server_port(const keel_http_server *s)
{
    return s ? s->port : 0;
}

keel_work *keel_http_server_work(keel_http_server *s)
{
    return s ? s->work : NULL;
}

unsigned keel_http_server_connections(const keel_http_server *s)
{
    return s ? atomic_load(&s->connections) : 0;
}

const char *keel_http_request_method(const keel_http_request *req)
{
    return req ? req->method : NULL;
}

const char *keel_http_request_path(const keel_http_request *req)
{
    return req ? req->path : NULL;
}

const char *keel_http_request_header(const keel_http_request *req, const char *name)
{
    return req && name ? MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name) : NULL;
}

typedef struct arg_search {
    const char *key;
    bool found;
} arg_search;

static enum MHD_Result find_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    arg_search *a = cls;
    if (key && streq(key, a->key)) {
        a->found = true;
        return MHD_NO; /* stop iterating */
    }
    return MHD_YES;
}

bool keel_http_request_has_arg(const keel_http_request *req, const char *key)
{
    if (!req || !key)
        return false;
    /* Iterate: MHD_lookup_connection_value() cannot tell "?verbose" (no value) from an absent key. */
    arg_search a = { .key = key };
    (void) MHD_get_connection_values(req->connection, MHD_GET_ARGUMENT_KIND, find_arg, &a);
    return a.found;
}

const char *keel_http_request_peer(const keel_http_request *req)
{
    if (!req)
        return NULL;
    if (!req->peer[0]) {
        keel_http_request *r = (keel_http_request *) req; /* a cache, not a change */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        format_peer(ci ? ci->client_addr : NULL, r->peer, sizeof r->peer);
    }
    return req->peer;
}
