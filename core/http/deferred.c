/* SPDX-License-Identifier: MIT */
/*
 * Answers that come later, from another thread: the handler defers the request (its connection
 * waits, the others go on), a thread answers it with keel_http_deferred_respond(), which copies
 * the answer and queues it for the polling thread, woken through the server's eventfd; the polling
 * thread answers the request and its connection goes on.
 *
 * Exactly one side frees a deferred answer: the polling thread once it has sent it, or the
 * answering thread when the server gave it up first (its connection closed, or the server stopped
 * past its drain): d->lock decides which, so a late answer never touches a server that is gone.
 * A request given up stays readable until its answer comes, as keel_http_request_defer()
 * promises: its connection's memory goes to the handle, which the answering thread frees.
 */
#include <pthread.h>
#include <unistd.h>

#include "http-internal.h"

struct keel_http_deferred {
    pthread_mutex_t lock;
    keel_http_server *s; /* borrowed; not touched once abandoned */
    keel_http_request *req;
    connection_state *kept; /* owned once abandoned: the memory @req lives in */
    bool answered, abandoned;
    unsigned status;
    char *content_type, *body;
    size_t size;
    char **headers; /* name, value pairs */
};

static void deferred_free(keel_http_deferred *d)
{
    /* The answering thread may still be leaving keel_http_deferred_respond(): let it. */
    (void) pthread_mutex_lock(&d->lock);
    (void) pthread_mutex_unlock(&d->lock);
    free(d->content_type);
    free(d->body);
    keel_strv_free(d->headers);
    keel__http_conn_free(d->kept);
    (void) pthread_mutex_destroy(&d->lock);
    free(d);
}

keel_http_deferred *keel_http_request_defer(keel_http_request *req)
{
    keel_assert_return(req && !req->answered && !req->deferred, NULL);
    keel_http_server *s = req->server;
    keel_http_deferred *d = calloc(1, sizeof *d);
    if (!d || GROW(s->pending, s->allocated_pending, s->n_pending + 1) < 0) {
        free(d);
        return NULL;
    }
    (void) pthread_mutex_init(&d->lock, NULL);
    /* Made now, not on first use: the answering thread may ask for them while the polling thread
     * logs the request's end, should its connection close first. */
    (void) keel_http_request_id(req);
    (void) keel_http_request_peer(req);
    d->s = s;
    d->req = req;
    req->deferred = d;
    req->cs->waiting = true; /* the connection waits without holding up the others */
    s->pending[s->n_pending++] = d;
    return d;
}

static int copy_answer(keel_http_deferred *d, unsigned status, const char *content_type, const void *body, size_t size,
                       const char *const *headers)
{
    d->status = status;
    d->size = size;
    if ((content_type && !(d->content_type = strdup(content_type))) || !(d->body = malloc(size ? size : 1)))
        return -ENOMEM;
    memcpy(d->body, body, size);
    for (const char *const *h = headers; h && h[0] && h[1]; h += 2)
        if (keel_strv_extend(&d->headers, h[0]) < 0 || keel_strv_extend(&d->headers, h[1]) < 0)
            return -ENOMEM;
    return 0;
}

int keel_http_deferred_respond(keel_http_deferred *d, unsigned status, const char *content_type, const void *body, size_t size,
                               const char *const *headers)
{
    keel_assert_return(d, -EINVAL);
    int r = -EINVAL;
    if (keel__http_status_valid(status, size) && (body || size == 0))
        r = copy_answer(d, status, content_type, body ? body : "", size, headers);
    else
        keel_log_debug("A deferred answer of status %u with %zu bytes of body cannot be sent, answering 500", status, size);
    /* Still answered, even for arguments no answer can have, as the handler's own call is: with a
     * 500 the polling thread builds itself. The handle is spent either way; kept, it would hold the
     * request, and the drain with it, until the shutdown timeout. */
    if (r < 0) {
        d->status = 500;
        free(d->body);
        d->body = NULL;
    }
    (void) pthread_mutex_lock(&d->lock);
    bool abandoned = d->abandoned;
    if (!abandoned) {
        keel_http_server *s = d->s;
        uint64_t one = 1;
        (void) pthread_mutex_lock(&s->lock);
        d->answered = true;
        s->has_answers = true;
        (void) pthread_mutex_unlock(&s->lock);
        ssize_t _unused_ n = write(s->wake_fd, &one, sizeof one);
    }
    (void) pthread_mutex_unlock(&d->lock);
    if (abandoned)
        deferred_free(d);
    return abandoned ? -ESHUTDOWN : r;
}

static void forget(keel_http_server *s, keel_http_deferred *d)
{
    for (size_t i = 0; i < s->n_pending; i++)
        if (s->pending[i] == d) {
            s->pending[i] = s->pending[--s->n_pending];
            return;
        }
}

static void send_one(keel_http_server *s, keel_http_deferred *d)
{
    keel_http_request *req = d->req;
    forget(s, d);
    req->deferred = NULL;
    if (req->cs->fd < 0) { /* its connection closed earlier in this turn: nothing to send on */
        deferred_free(d);
        return;
    }
    req->cs->waiting = false;
    if (d->body)
        (void) keel_http_respond(req, d->status, d->content_type, d->body, d->size, (const char *const *) d->headers);
    else
        (void) keel_http_respond_text(req, 500, "text/plain; charset=utf-8", "internal server error\n");
    deferred_free(d);
    keel__http_conn_run(req->cs, 0);
}

void keel__http_send_answered(keel_http_server *s)
{
    (void) pthread_mutex_lock(&s->lock);
    bool any = s->has_answers;
    s->has_answers = false;
    (void) pthread_mutex_unlock(&s->lock);
    for (size_t i = s->n_pending; any && i > 0; i--) { /* backwards: sending one moves the last into its place */
        keel_http_deferred *d = s->pending[i - 1];
        (void) pthread_mutex_lock(&s->lock);
        bool answered = d->answered;
        (void) pthread_mutex_unlock(&s->lock);
        if (answered)
            send_one(s, d);
    }
}

bool keel__http_deferred_keep(keel_http_server *s, connection_state *cs)
{
    keel_http_deferred *d = cs->request.deferred;
    if (!d)
        return false;
    forget(s, d);
    (void) pthread_mutex_lock(&d->lock);
    bool answered = d->answered;
    d->abandoned = !answered;
    if (!answered)
        d->kept = cs;
    (void) pthread_mutex_unlock(&d->lock);
    if (answered) /* its thread is done with the request: the connection goes as any other */
        deferred_free(d);
    return !answered;
}
