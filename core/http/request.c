/* SPDX-License-Identifier: MIT */
/* Requests on the polling thread: admitted to the work tracker, delayed without blocking, answered
 * (constant answers from a per-server cache), counted and logged. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <keel/point.h>

#include "http-internal.h"
#include "log-internal.h"

/* ---- requests (polling thread) ----------------------------------------------------------- */

void keel__http_format_peer(const struct sockaddr *sa, char *buf, size_t size)
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

static uint64_t prefix;
static atomic_uint_fast64_t counter;

static void init_prefix(void)
{
    if (getrandom(&prefix, sizeof prefix, GRND_NONBLOCK) != sizeof prefix)
        prefix = (uint64_t) getpid() << 32 ^ (uint64_t) time(NULL); /* still unique within the process */
}

void keel__http_new_request_id(char ret[static KEEL_HTTP_REQUEST_ID_MAX])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void) pthread_once(&once, init_prefix);
    uint64_t n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1;
    char digits[24], *d = digits + sizeof digits;
    /* By hand, not snprintf: one per request. */
    for (int i = 15; i >= 0; i--)
        ret[15 - i] = "0123456789abcdef"[prefix >> (i * 4) & 15];
    ret[16] = '-';
    do
        *--d = (char) ('0' + n % 10);
    while ((n /= 10) > 0);
    size_t len = (size_t) (digits + sizeof digits - d);
    memcpy(ret + 17, d, len);
    ret[17 + len] = '\0';
}

const char *keel_http_request_id(const keel_http_request *req)
{
    if (!req)
        return NULL;
    keel_http_request *r = (keel_http_request *) req; /* made once, on first use: a cache, not a change */
    if (!r->id[0])
        keel__http_new_request_id(r->id);
    return r->id;
}

static const char *log_request_id(const void *req)
{
    return keel_http_request_id(req);
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
        .started = keel_now(), /* for the duration histogram: a vDSO read, no system call */
    };
    return req;
}

static int delay_request(keel_http_server *s, keel_http_request *req, keel_usec_t delay)
{
    int r = GROW(s->delayed, s->allocated_delayed, s->n_delayed + 1);
    if (r < 0)
        return r;
    req->resume_at = keel_now() + delay;
    s->delayed[s->n_delayed++] = req;
    /* The connection waits without holding up the others (DESIGN §4). */
    MHD_suspend_connection(req->connection);
    return 0;
}

/* Resumes every delayed request that is due (all of them with @all) and returns the time until
 * the next one is, in ms for epoll_wait(), or -1. */
int keel__http_resume_due(keel_http_server *s, bool all)
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
    keel__log_context_request(log_request_id, req);
    if (r >= 0 && !keel__http_serve_mounted(s, req, &r))
        r = s->handler(req, s->userdata);
    keel__log_context_request(NULL, NULL);
    if (r < 0 && !req->answered && !req->deferred)
        (void) keel_http_respond_text(req, 500, "text/plain; charset=utf-8",
                                      req->faulted ? KEEL_FAULT_MESSAGE "\n" : "internal server error\n");
}

enum MHD_Result keel__http_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
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
        if (req->cs) {
            req->cs->busy = true;
            keel__http_conn_wait(s, req->cs, CONN_WAIT_BODY);
        }
        /* Never refused: the gate for requests is the listener, and a request on a connection
         * that is already open is served (with Connection: close) even while draining. */
        req->admitted = keel_work_begin(s->work) >= 0;
        req->fault = keel_point_before_nowait(s->point_request);
        req->faulted = req->fault < 0;
        req->refusal = keel__http_head_refusal(s, c, method, version);
        return MHD_YES;
    }
    if (*upload_data_size > 0) { /* no service reads a body: consume and ignore it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->cs && req->cs->phase == CONN_WAIT_BODY)
        keel__http_conn_wait(s, req->cs, CONN_SERVING);
    if (req->answered || keel__http_send_deferred(s, req))
        return MHD_YES;
    if (req->refusal) {
        (void) keel_http_respond_static(req, req->refusal->status, "text/plain; charset=utf-8", req->refusal->body);
        return MHD_YES;
    }
    if (req->defer_abandoned) {
        (void) keel_http_respond_static(req, 503, "text/plain; charset=utf-8", "shutting down\n");
        return MHD_YES;
    }
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

static const double duration_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

static keel_histogram *route_histogram(keel_http_server *s, const char *route)
{
    keel_histogram *h = NULL;
    (void) keel_metrics_histogram(keel_app_metrics(s->app), "keel_http_request_duration_seconds",
                                  "Time from a request's head to its answer being handed to the connection, by server and route.",
                                  (const char *const[]){ "service", s->service, "route", route, NULL }, duration_bounds,
                                  ELEMENTSOF(duration_bounds), &h);
    return h;
}

/* A route is the path a request was answered for; 404s are "unmatched" and, past the sixteen
 * first paths of a server, "other", so that clients cannot make series without bound. */
static void observe_duration(keel_http_server *s, const keel_http_request *req)
{
    keel_histogram **h = NULL;
    if (req->status == 404)
        h = &s->unmatched_route;
    for (size_t i = 0; !h && i < s->n_routes; i++)
        if (streq(s->routes[i].path, req->path))
            h = &s->routes[i].h;
    if (!h && s->n_routes < ELEMENTSOF(s->routes) && strlen(req->path) < sizeof s->routes[0].path) {
        (void) snprintf(s->routes[s->n_routes].path, sizeof s->routes[0].path, "%s", req->path);
        h = &s->routes[s->n_routes++].h;
    }
    if (!h)
        h = &s->other_route;
    if (!*h)
        *h = route_histogram(s, h == &s->unmatched_route ? "unmatched" : h == &s->other_route ? "other" : req->path);
    if (*h)
        keel_histogram_observe(*h, (double) (keel_now() - req->started) / 1e6);
}

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

void keel__http_on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    keel_http_server *s = cls;
    keel_http_request *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && req->status > 0 && req->status < 500;
    if (req->admitted)
        keel_work_end(s->work, ok);
    if (req->status) {
        count_request(s, req->status);
        observe_duration(s, req);
    }
    if (req->cs) {
        req->cs->busy = false;
        keel__http_conn_wait(s, req->cs, CONN_WAIT_HEAD); /* the next request's head, on keep-alive */
        /* Its answer may have been queued before the drain began, without Connection: close:
         * the connection goes idle now and must not stay for the keep-alive timeout. */
        if (atomic_load(&s->draining))
            keel__http_close_when_idle(req->cs);
    }
    bool allocated = req->allocated;
    if (keel_log_get_level() >= KEEL_LOG_DEBUG) { /* the peer is formatted only for this line */
        keel__log_context_request(log_request_id, req);
        const char *identity = keel_http_request_peer_identity(req);
        keel_log_service(s->service, KEEL_LOG_DEBUG, "%s %s from %s%s%s%s: %u in %.3fms%s, request[%s]", req->method, req->path,
                         keel_http_request_peer(req), identity ? " (client " : "", identity ? identity : "", identity ? ")" : "",
                         req->status, (double) (keel_now() - req->started) / 1000.0, ok ? "" : " (failed)",
                         keel_http_request_id(req));
        keel__log_context_request(NULL, NULL);
    }
    if (allocated)
        free(req);
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

/* Counts the values named @key (headers case-insensitively, as HTTP names them): iterating is the
 * only way to tell a key without a value ("?verbose") from an absent one, and to see repeats. */
typedef struct key_count {
    const char *key;
    bool nocase;
    unsigned n;
} key_count;

static enum MHD_Result count_key(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    key_count *k = cls;
    k->n += key && (k->nocase ? strcasecmp(key, k->key) : strcmp(key, k->key)) == 0;
    return MHD_YES;
}

bool keel_http_request_has_arg(const keel_http_request *req, const char *key)
{
    if (!req || !key)
        return false;
    key_count k = { .key = key };
    (void) MHD_get_connection_values(req->connection, MHD_GET_ARGUMENT_KIND, count_key, &k);
    return k.n > 0;
}

int keel_http_request_header_strict(const keel_http_request *req, const char *name, const char **ret)
{
    keel_assert_return(req && name && ret, -EINVAL);
    const char *value = NULL;
    size_t size = 0;
    *ret = NULL;
    if (MHD_lookup_connection_value_n(req->connection, MHD_HEADER_KIND, name, strlen(name), &value, &size) != MHD_YES)
        return 0;
    key_count k = { .key = name, .nocase = true };
    (void) MHD_get_connection_values(req->connection, MHD_HEADER_KIND, count_key, &k);
    if (k.n > 1)
        return -ENOTUNIQ;
    for (size_t i = 0; i < size; i++)
        if ((unsigned char) value[i] < 0x20 || value[i] == 0x7f)
            return -EBADMSG; /* NUL among them: the text after it would be lost */
    *ret = value;
    return 0;
}

bool keel_http_request_tls(const keel_http_request *req)
{
    return req && req->cs && req->cs->tls;
}

const char *keel_http_request_peer_identity(const keel_http_request *req)
{
    return req && req->cs ? req->cs->identity : NULL;
}

const char *keel_http_request_peer(const keel_http_request *req)
{
    if (!req)
        return NULL;
    if (!req->peer[0]) {
        keel_http_request *r = (keel_http_request *) req; /* a cache, not a change */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        keel__http_format_peer(ci ? ci->client_addr : NULL, r->peer, sizeof r->peer);
    }
    return req->peer;
}
