/* SPDX-License-Identifier: MIT */
/* Requests on the polling thread: admitted to the work tracker, delayed without blocking, served by
 * a mount or the handler, counted and logged; what a handler reads of its request. */
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

void keel__http_request_begin(connection_state *cs, const keel__http_refusal *refusal)
{
    keel_http_server *s = cs->s;
    keel_http_request *req = &cs->request;
    *req = (keel_http_request){
        .server = s,
        .cs = cs,
        .method = cs->head.method ? cs->head.method : "",
        .path = cs->head.path ? cs->head.path : "",
        .started = keel_now(), /* for the duration histogram: a vDSO read, no system call */
        .refusal = refusal,
    };
    cs->busy = true;
    /* Never refused: the gate for requests is the listener, and a request on a connection that is
     * already open is served (with Connection: close) even while draining. */
    req->admitted = keel_work_begin(s->work) >= 0;
    req->fault = keel_point_before_nowait(s->point_request);
    req->faulted = req->fault < 0;
}

static int delay_request(keel_http_server *s, keel_http_request *req, keel_usec_t delay)
{
    int r = GROW(s->delayed, s->allocated_delayed, s->n_delayed + 1);
    if (r < 0)
        return r;
    req->resume_at = keel_now() + delay;
    s->delayed[s->n_delayed++] = req;
    req->cs->waiting = true; /* the connection waits without holding up the others */
    return 0;
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
    if (r >= 0 && !req->answered && !req->deferred) {
        keel_log_service(s->service, KEEL_LOG_ERROR, "The handler of %s %s neither answered nor deferred it", req->method,
                         req->path);
        r = -EIO;
    }
    if (r < 0 && !req->answered && !req->deferred)
        (void) keel_http_respond_text(req, 500, "text/plain; charset=utf-8",
                                      req->faulted ? KEEL_FAULT_MESSAGE "\n" : "internal server error\n");
}

void keel__http_request_run(connection_state *cs)
{
    keel_http_server *s = cs->s;
    keel_http_request *req = &cs->request;
    keel__http_conn_wait(s, cs, CONN_SERVING);
    if (req->refusal) {
        (void) keel_http_respond_static(req, req->refusal->status, keel__http_refusal_type(req->refusal), req->refusal->body);
        return;
    }
    /* Injected sleeps, before or in, delay the answer; the polling thread never sleeps. */
    keel_usec_t delay = keel_point_before_delay(s->point_request) + keel_point_in_delay(s->point_request);
    if (delay > 0 && delay_request(s, req, delay) >= 0)
        return;
    serve(s, req);
}

/* Resumes every delayed request that is due and returns the time until the next one is, in ms for
 * epoll_wait(), or -1. A drain waits for them as for any request in flight (an injected delay
 * stands for a slow handler), so they are served in their time while it goes on; one still
 * delayed when the drain passes its deadline is cut with its connection, as a deferred one is. */
int keel__http_resume_due(keel_http_server *s)
{
    keel_usec_t now = keel_now(), next = KEEL_USEC_INFINITY;
    for (size_t i = 0; i < s->n_delayed;) {
        keel_http_request *req = s->delayed[i];
        if (req->resume_at > now) {
            next = MIN(next, req->resume_at);
            i++;
            continue;
        }
        s->delayed[i] = s->delayed[--s->n_delayed];
        req->cs->waiting = false;
        serve(s, req);
        keel__http_conn_run(req->cs, 0);
    }
    return next == KEEL_USEC_INFINITY ? -1 : (int) ((next - now + 999) / 1000);
}

static void forget_delayed(keel_http_server *s, keel_http_request *req)
{
    for (size_t i = 0; i < s->n_delayed; i++)
        if (s->delayed[i] == req) {
            s->delayed[i] = s->delayed[--s->n_delayed];
            return;
        }
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
 * first paths of a server, "other", so that clients cannot make series without bound. A path gets
 * a series of its own once served (below 400): a refusal of any path (a 405 for a POST, a 401) is
 * "unmatched" until then, so that a client cannot take the sixteen places with made-up paths. */
static void observe_duration(keel_http_server *s, const keel_http_request *req)
{
    keel_histogram **h = NULL;
    if (req->status == 404)
        h = &s->unmatched_route;
    for (size_t i = 0; !h && i < s->n_routes; i++)
        if (streq(s->routes[i].path, req->path))
            h = &s->routes[i].h;
    if (!h && req->status >= 400)
        h = &s->unmatched_route;
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

static void log_request(keel_http_server *s, keel_http_request *req, bool ok)
{
    keel__log_context_request(log_request_id, req);
    const char *identity = keel_http_request_peer_identity(req);
    keel_log_service(s->service, KEEL_LOG_DEBUG, "%s %s from %s%s%s%s: %u in %.3fms%s, request[%s]", req->method, req->path,
                     keel_http_request_peer(req), identity ? " (client " : "", identity ? identity : "", identity ? ")" : "",
                     req->status, (double) (keel_now() - req->started) / 1000.0, ok ? "" : " (failed)", keel_http_request_id(req));
    keel__log_context_request(NULL, NULL);
}

void keel__http_request_end(connection_state *cs, bool completed)
{
    keel_http_server *s = cs->s;
    keel_http_request *req = &cs->request;
    if (!cs->busy)
        return;
    cs->busy = false;
    if (cs->waiting) { /* the connection ends under it; a deferred answer is given up at its reap */
        forget_delayed(s, req);
        cs->waiting = false;
    }
    bool ok = completed && req->status > 0 && req->status < 500;
    if (req->admitted)
        keel_work_end(s->work, ok);
    if (req->status && completed) {
        count_request(s, req->status);
        if (!req->refusal)
            observe_duration(s, req);
    }
    if (keel_log_get_level() >= KEEL_LOG_DEBUG) /* the peer is formatted only for this line */
        log_request(s, req, ok);
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
    if (!req || !name || req->refusal)
        return NULL;
    const keel__http_head *h = &req->cs->head;
    for (size_t i = 0; i < h->n_fields; i++)
        if (strcasecmp(h->fields[i].name, name) == 0)
            return h->fields[i].value;
    return NULL;
}

/* Whether the query's key at *@p, percent-decoded, is @key ("?verbose", "?a=1&verbose"); moves
 * *@p past its parameter. */
static bool next_key_is(const char **p, const char *key)
{
    const char *k = *p, *end = k + strcspn(k, "&=");
    *p = k + strcspn(k, "&");
    if (**p)
        (*p)++;
    for (; k < end; key++) {
        int c = (unsigned char) *k++, hi, lo;
        if (c == '%' && end - k >= 2 && (hi = keel__http_unhex(k[0])) >= 0 && (lo = keel__http_unhex(k[1])) >= 0) {
            c = hi << 4 | lo;
            k += 2;
        } else if (c == '+')
            c = ' ';
        if (!*key || (unsigned char) *key != c)
            return false;
    }
    return !*key;
}

bool keel_http_request_has_arg(const keel_http_request *req, const char *key)
{
    if (!req || !key || req->refusal || !req->cs->head.query)
        return false;
    for (const char *p = req->cs->head.query; *p;)
        if (next_key_is(&p, key))
            return true;
    return false;
}

int keel_http_request_header_strict(const keel_http_request *req, const char *name, const char **ret)
{
    keel_assert_return(req && name && ret, -EINVAL);
    if (req->refusal) {
        *ret = NULL;
        return 0;
    }
    const keel__http_head *h = &req->cs->head;
    const char *value = NULL;
    for (size_t i = 0; i < h->n_fields; i++) {
        if (strcasecmp(h->fields[i].name, name) != 0)
            continue;
        if (value)
            return -ENOTUNIQ;
        value = h->fields[i].value;
    }
    for (const char *c = value; c && *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f)
            return -EBADMSG; /* a tab: the parser lets one through inside a value */
    *ret = value;
    return 0;
}

bool keel_http_request_from_ready_check(const keel_http_request *req)
{
    const char *agent = keel_http_request_header(req, "User-Agent");
    return agent && streq(agent, KEEL__HTTP_READY_AGENT);
}

bool keel_http_request_tls(const keel_http_request *req)
{
    return req && req->cs->tls;
}

const char *keel_http_request_peer_identity(const keel_http_request *req)
{
    return req ? req->cs->identity : NULL;
}

const char *keel_http_request_peer(const keel_http_request *req)
{
    if (!req)
        return NULL;
    if (!req->peer[0]) {
        keel_http_request *r = (keel_http_request *) req; /* a cache, not a change */
        keel__http_format_peer((const struct sockaddr *) &req->cs->peer, r->peer, sizeof r->peer);
    }
    return req->peer;
}
