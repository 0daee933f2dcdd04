/* SPDX-License-Identifier: MIT */
/*
 * POST /accesstoken on the token server: the AthenZ SIA sidecar's token API (access.h), so that a
 * client written for the SIA works against keel unchanged. The token is the one /token hands out,
 * from the same cache and issuer: one per (domain, set of roles, lifetime), its scope claim the
 * roles one space apart. The answer is /token's JSON with the SIA's scope,
 * "<domain>:role.<r1> <domain>:role.<r2>"; what the SIA's API refuses is a 400 naming what is
 * wrong, and a token that cannot be issued a 500, as the SIA's OpenAPI file says.
 */
#include <stdio.h>

#include <keel/strbuf.h>

#include "access.h"
#include "request.h"
#include "token-service.h"

/* Answers {"error","error_description"} with @status, and an Allow header when @allow is set. */
static int answer_error(keel_http_request *req, const char *id, unsigned status, const char *error, const char *description,
                        const char *allow)
{
    char buf[512];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    keel_strbuf_append(&sb, "{");
    keel_strbuf_json_field(&sb, "error", error, true);
    keel_strbuf_json_field(&sb, "error_description", description, false);
    keel_strbuf_append(&sb, "}");
    const char *headers[] = { "X-Request-Id", id, "Cache-Control", "no-store", allow ? "Allow" : NULL, allow, NULL };
    return keel_http_respond(req, status, token_json, sb.buf, sb.len, headers);
}

static int refuse(keel_http_request *req, token_service *token, const char *id, unsigned status, const char *error,
                  const char *reason)
{
    keel_counter_add(token->access_refused, 1);
    keel_log_service("token", KEEL_LOG_WARNING, "Client error: while handling POST /accesstoken: %s, request[%s] from %s", reason,
                     id, keel_http_request_peer(req));
    return answer_error(req, id, status, error, reason, status == 405 ? "POST" : NULL);
}

/* What the cache is asked for: its role key and the answer's scope. */
typedef struct access_ask {
    access_request request;
    char *role, *scope;
} access_ask;

static void access_ask_done(access_ask *a)
{
    access_request_done(&a->request);
    free(a->role);
    free(a->scope);
}

/* An issuer's tokens live as long as the issuer says: the request's expiry keys only local ones. */
static int make_ask(token_service *token, access_ask *a)
{
    keel_usec_t lifetime = token->issuer ? 0 : access_lifetime(&a->request, atomic_load(&token->expiry));
    int r = access_cache_role(&a->request, lifetime, &a->role);
    return r < 0 ? r : access_scope(&a->request, &a->scope);
}

static int answer(keel_http_request *req, token_service *token, const char *id, access_ask *a)
{
    token_minted minted = { 0 };
    keel_usec_t now = keel_now_realtime();
    const char *domain = a->request.domain;
    /* token.provider oauth2: a miss waits on the network, on an issuer worker. */
    if (token->issuer && token_cache_peek(token->cache, domain, a->role, now, &minted) < 0)
        return token_answer_later(req, token, id, domain, a->role, a->scope);
    int r = minted.jwt ? 0 : token_cache_get(token->cache, domain, a->role, now, &minted);
    if (r < 0) { /* the mint logged why */
        keel_counter_add(token->access_failed, 1);
        return answer_error(req, id, 500, "server_error", "no token can be issued now: see the agent's log", NULL);
    }
    r = token_answer_token_ok(NOW(req), id, &minted, a->scope, now);
    token_minted_done(&minted);
    keel_counter_add(r >= 0 ? token->access_ok : token->access_failed, 1);
    return r;
}

int token_answer_access(keel_http_request *req, token_service *token, const char *id, bool client_verified)
{
    if (!streq(keel_http_request_method(req), "POST"))
        return refuse(req, token, id, 405, "method_not_allowed", "only POST is served here");
    if (!client_verified)
        return refuse(req, token, id, 401, "invalid_client",
                      "a client certificate verified by token.tls_client_ca_file is required");
    const void *body = NULL;
    size_t size = 0;
    int r = keel_http_request_body(req, &body, &size);
    if (r < 0)
        return r; /* the server takes bodies here: answered 500 */
    access_ask a = { 0 };
    char reason[256];
    r = access_request_parse(keel_http_request_header(req, "Content-Type"), body, size, &a.request, reason, sizeof reason);
    if (r == -EINVAL)
        return refuse(req, token, id, 400, "invalid_request", reason);
    if (r >= 0)
        r = make_ask(token, &a);
    if (r >= 0)
        r = answer(req, token, id, &a);
    else
        keel_counter_add(token->access_failed, 1);
    access_ask_done(&a);
    return r;
}
