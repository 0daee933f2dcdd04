/* SPDX-License-Identifier: MIT */
/*
 * Request bodies a handler reads (keel_http_server_accept_body()): on the paths a server names
 * before it starts, a body framed by Content-Length, up to the path's limit, stays in the
 * connection's buffer behind its head until the request is answered, and the handler reads it in
 * place; every other path keeps its body skipped by its framing (conn.c). The buffer of each
 * connection of such a server is larger by the largest limit, allocated as before on its first
 * read: reading a body costs no allocation and no system call more than skipping it did.
 *
 * Only Content-Length is taken: a chunked body on such a path is answered 411 (RFC 9110 §15.5.12)
 * and one announced past the limit 413 (§15.5.14), at once, without reading it, and the
 * connection closes after the answer (lingering, conn.c) rather than read what it refused.
 */
#include <stdio.h>

#include "http-internal.h"

int keel_http_server_accept_body(keel_http_server *s, const char *path, size_t limit, unsigned flags)
{
    keel_assert_return(s && path && path[0] == '/', -EINVAL);
    keel_assert_return(limit > 0 && limit <= KEEL_HTTP_BODY_MAX, -EINVAL);
    keel_assert_return((flags & ~(unsigned) KEEL_HTTP_BODY_JSON_REFUSALS) == 0, -EINVAL);
    keel_assert_return(!s->started, -EBUSY);
    for (size_t i = 0; i < s->n_body_routes; i++)
        if (streq(s->body_routes[i].path, path)) {
            s->body_routes[i].limit = limit;
            s->body_routes[i].flags = flags;
            s->body_limit_max = MAX(s->body_limit_max, limit);
            return 0;
        }
    if (s->n_body_routes == ELEMENTSOF(s->body_routes))
        return -E2BIG;
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    s->body_routes[s->n_body_routes++] = (struct keel__http_body_route){ .path = copy, .limit = limit, .flags = flags };
    s->body_limit_max = MAX(s->body_limit_max, limit);
    return 0;
}

void keel__http_body_routes_free(keel_http_server *s)
{
    for (size_t i = 0; i < s->n_body_routes; i++)
        free(s->body_routes[i].path);
    s->n_body_routes = 0;
}

static const keel__http_refusal chunked_text = { 411, "length required: a body here needs Content-Length, not chunked\n", true };
static const keel__http_refusal chunked_json = {
    411, "{\"error\":\"length_required\",\"error_description\":\"a body here needs Content-Length, not chunked\"}", true
};
static const keel__http_refusal large_text = { 413, "content too large: the body is larger than this path takes\n", true };
static const keel__http_refusal large_json = {
    413, "{\"error\":\"content_too_large\",\"error_description\":\"the body is larger than this path takes\"}", true
};

const char *keel__http_refusal_type(const keel__http_refusal *r)
{
    return r == &chunked_json || r == &large_json ? "application/json" : "text/plain; charset=utf-8";
}

const keel__http_refusal *keel__http_body_refusal(connection_state *cs)
{
    keel_http_server *s = cs->s;
    const struct keel__http_body_route *route = NULL;
    for (size_t i = 0; !route && i < s->n_body_routes; i++)
        if (streq(s->body_routes[i].path, cs->head.path))
            route = &s->body_routes[i];
    if (!route)
        return NULL;
    bool json = route->flags & KEEL_HTTP_BODY_JSON_REFUSALS;
    const keel__http_refusal *refusal = NULL;
    if (cs->head.body == BODY_CHUNKED)
        refusal = json ? &chunked_json : &chunked_text;
    else if (cs->head.body == BODY_LENGTH && cs->head.length > route->limit)
        refusal = json ? &large_json : &large_text;
    if (refusal) { /* not read: what follows the head cannot be told from the next request */
        cs->body = BODY_NONE;
        cs->head.close = true;
        return refusal;
    }
    cs->body_kept = true;
    cs->body_size = cs->head.body == BODY_LENGTH ? (size_t) cs->head.length : 0;
    return NULL;
}

int keel_http_request_body(const keel_http_request *req, const void **ret, size_t *ret_size)
{
    keel_assert_return(req && ret && ret_size, -EINVAL);
    const connection_state *cs = req->cs;
    if (req->refusal || !cs->body_kept)
        return -ENODATA;
    *ret = cs->in + cs->head_len;
    *ret_size = cs->body_size;
    return 0;
}
