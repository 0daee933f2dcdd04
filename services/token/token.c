/* SPDX-License-Identifier: MIT */
/*
 * The token service: GET /token (and /) issues an access token for the X-Athenz-Domain and
 * X-Athenz-Role request headers, signed with the app's current credential and cached per pair;
 * /.well-known/jwks.json publishes the keys tokens verify with. A refresh task re-mints what is
 * cached and a memory reporter logs and exports the process's RSS and the cache's size (tasks.c).
 *
 * Handlers run on the server's polling thread and mint inline: signing with a local key is CPU
 * work of ~50 µs (ES256) to ~1 ms (RS256), never a wait (docs/decisions/0013-token-cache.md).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include <keel/health.h>
#include <keel/http.h>
#include <keel/keel.h>
#include <keel/strbuf.h>
#include <keel/util.h>

#include "access.h"
#include "cache.h"
#include "oauth2.h"
#include "request.h"
#include "mode.h"
#include "token-service.h"
#include "token.h"
#include "workers.h"

const char token_json[] = "application/json";
#define JSON token_json

#define JWKS_PATH   "/.well-known/jwks.json"
#define ACCESS_PATH "/accesstoken"

static const keel_config_key config_keys[] = {
    { .key = "token.address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = offsetof(token_service, config.address),
      .def = "127.0.0.1:8880",
      .help = "where /token, POST /accesstoken and /.well-known/jwks.json listen" },
    { .key = "token.jwks_server",
      .type = KEEL_CONFIG_BOOL,
      .offset = offsetof(token_service, config.jwks_server),
      .def = "false",
      .help = "also serve /.well-known/jwks.json, and only it, on token.jwks_address: for verifiers outside the host or pod" },
    { .key = "token.jwks_address",
      .type = KEEL_CONFIG_ADDRESS,
      .offset = offsetof(token_service, config.jwks_address),
      .def = ":8881",
      .help = "where the token keys server listens when token.jwks_server is true" },
    { .key = "token.refresh_interval",
      .type = KEEL_CONFIG_DURATION,
      .offset = offsetof(token_service, config.refresh_interval),
      .def = "30m",
      .min = (int64_t) KEEL_USEC_PER_SEC,
      .max = (int64_t) (24 * 3600 * KEEL_USEC_PER_SEC),
      .live = true,
      .help = "how often every cached token is minted again" },
    { .key = "token.expiry",
      .type = KEEL_CONFIG_DURATION,
      .offset = offsetof(token_service, config.expiry),
      .def = "1h",
      .min = (int64_t) (2 * 60 * KEEL_USEC_PER_SEC),
      .max = (int64_t) (24 * 3600 * KEEL_USEC_PER_SEC),
      .live = true,
      .help = "lifetime of a token (never past the certificate's notAfter); over 1m, since tokens are served while 1m is left" },
    { .key = "token.memory_report_interval",
      .type = KEEL_CONFIG_DURATION,
      .offset = offsetof(token_service, config.memory_report_interval),
      .def = "1m",
      .min = (int64_t) (100 * KEEL_USEC_PER_MSEC),
      .max = (int64_t) (24 * 3600 * KEEL_USEC_PER_SEC),
      .help = "how often the memory reporter logs RSS and the token cache's size" },
    { .key = "token.cache_size",
      .type = KEEL_CONFIG_INT,
      .offset = offsetof(token_service, config.cache_size),
      .def = "1000",
      .min = 1,
      .max = 1000000,
      .help = "most (domain, role) pairs whose tokens are cached (least recently used evicted)" },
    { .key = "token.issuer",
      .type = KEEL_CONFIG_STRING,
      .offset = offsetof(token_service, config.issuer),
      .def = "keel",
      .help = "the iss claim of every token: what verifiers check the issuer against" },
    { .key = "token.tls",
      .type = KEEL_CONFIG_ENUM,
      .offset = offsetof(token_service, config.tls.mode),
      .def = "off",
      .choices = tls_server_mode_choices,
      .help = "off, self (the certificate service's pair, rotating with it) or files (tls_cert_file, tls_key_file)" },
    { .key = "token.tls_cert_file",
      .type = KEEL_CONFIG_PATH,
      .offset = offsetof(token_service, config.tls.cert_file),
      .def = "''",
      .help = "token.tls files: the server certificate, then its chain (PEM); read again on SIGHUP" },
    { .key = "token.tls_key_file",
      .type = KEEL_CONFIG_PATH,
      .offset = offsetof(token_service, config.tls.key_file),
      .def = "''",
      .help = "token.tls files: its private key (PEM, mode 0600 or stricter)" },
    { .key = "token.tls_client_ca_file",
      .type = KEEL_CONFIG_PATH,
      .offset = offsetof(token_service, config.tls.client_ca_file),
      .def = "''",
      .help = "with TLS: the CAs client certificates are verified against; set, /token requires one (mTLS)" },
};

/* Any thread: the live expiry as copied at the last configure or refresh. */
static token_params params(token_service *token)
{
    return (token_params){ .issuer = token->config.issuer, .expiry = atomic_load(&token->expiry) };
}

token_params token_config_params(keel_service *s)
{
    token_service *token = keel_service_state(s);
    return (token_params){ .issuer = token->config.issuer, .expiry = token->config.expiry };
}

/* ---- minting ------------------------------------------------------------------------------------ */

/* The cache's mint handler: any thread, no lock held. Logs its failure once, here. */
static int mint(const char *domain, const char *key, keel_usec_t now, void *userdata, token_minted *ret)
{
    token_service *token = userdata;
    /* A key of POST /accesstoken may ask for a lifetime after its roles ("readers writers#600"). */
    keel_usec_t lifetime;
    size_t n = access_cache_role_split(key, &lifetime);
    _cleanup_free_ char *roles = key[n] ? strndup(key, n) : NULL;
    if (key[n] && !roles)
        return -ENOMEM;
    const char *role = roles ? roles : key;
    if (token->issuer) {
        char why[512];
        /* Serving, not cancelled at a stop: a request in flight is answered through the drain.
         * keel init gives the stop descriptor: a stop ends its fetch. */
        int r = oauth2_fetch(token->issuer, domain, role, now, token->cancel_fd, ret, why, sizeof why);
        if (r < 0)
            return keel_log_service_errno("token", KEEL_LOG_ERROR, r, "Failed to get a token for domain[%s] role[%s] from %s: %s",
                                          domain, role, oauth2_token_url(token->issuer), why);
        return 0;
    }
    token_params p = params(token);
    if (lifetime > 0) /* never past token.expiry, which may have come down since */
        p.expiry = KEEL_MIN(p.expiry, lifetime);
    char reason[256] = "";
    char *jwt = NULL;
    keel_usec_t expires = 0;
    int r = token_issue(token->identity, &p, domain, role, now, &jwt, &expires, reason, sizeof reason);
    if (r < 0)
        return keel_log_service_errno("token", KEEL_LOG_ERROR, r, "Failed to mint a token for domain[%s] role[%s]: %s", domain,
                                      role, reason);
    *ret = (token_minted){ .jwt = jwt, .expires = expires };
    return 0;
}

/* ---- HTTP --------------------------------------------------------------------------------------- */

static int respond(reply to, unsigned status, const char *type, const char *body, size_t size, const char *const *headers)
{
    if (to.later)
        return keel_http_deferred_respond(to.later, status, type, body, size, headers);
    return keel_http_respond(to.req, status, type, body, size, headers);
}

/* Answers {"error","error_description"[,"header"]} with @status. */
int token_answer_error(reply to, const char *id, unsigned status, const char *error, const char *description, const char *header)
{
    char buf[512];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    keel_strbuf_append(&sb, "{");
    keel_strbuf_json_field(&sb, "error", error, true);
    keel_strbuf_json_field(&sb, "error_description", description, false);
    if (header)
        keel_strbuf_json_field(&sb, "header", header, false);
    keel_strbuf_append(&sb, "}");
    const char *headers[] = { "X-Request-Id", id, "Cache-Control", "no-store", NULL };
    return respond(to, status, JSON, sb.buf, sb.len, headers);
}

static int client_error(keel_http_request *req, const char *id, const char *domain, const char *role, const char *header,
                        const char *reason)
{
    char d[68], r[68];
    token_log_safe(domain, d);
    token_log_safe(role, r);
    /* Start's own ready check asks for / without headers: not a client's error. */
    keel_log_level level = keel_http_request_from_ready_check(req) ? KEEL_LOG_DEBUG : KEEL_LOG_WARNING;
    keel_log_service(
        "token", level,
        "Client error: while handling request with: X-Athenz-Domain[%s] X-Athenz-Role[%s], error[%s], request[%s] from %s", d, r,
        reason, id, keel_http_request_peer(req));
    return token_answer_error(NOW(req), id, 400, "invalid_request", reason, header);
}

int token_answer_token_ok(reply to, const char *id, const token_minted *t, const char *role, keel_usec_t now)
{
    _cleanup_free_ char *body = NULL, *bearer = NULL;
    int r = token_response_json(t->jwt, t->expires, now, role, &body);
    if (r >= 0)
        r = token_bearer(t->jwt, &bearer);
    if (r < 0)
        return r;
    const char *headers[] = { "Authorization", bearer, "X-Request-Id", id, "Cache-Control", "no-store", NULL };
    return respond(to, 200, JSON, body, strlen(body), headers);
}

static int answer_token(keel_http_request *req, token_service *token, const char *id)
{
    static const char *const names[] = { "X-Athenz-Domain", "X-Athenz-Role" };
    const char *values[2] = { NULL, NULL };
    char reason[160];
    int strict[2];
    for (size_t i = 0; i < ELEMENTSOF(names); i++)
        strict[i] = keel_http_request_header_strict(req, names[i], &values[i]);
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        if (strict[i] < 0)
            (void) snprintf(reason, sizeof reason, "header %s %s", names[i],
                            strict[i] == -ENOTUNIQ ? "is repeated" : "holds a control character");
        if (strict[i] < 0 || token_check_header(names[i], values[i], reason, sizeof reason) < 0)
            return client_error(req, id, values[0], values[1], names[i], reason);
    }

    token_minted minted = { 0 };
    keel_usec_t now = keel_now_realtime();
    if (token->issuer && token_cache_peek(token->cache, values[0], values[1], now, &minted) < 0)
        return token_answer_later(req, token, id, values[0], values[1], NULL);
    int r = minted.jwt ? 0 : token_cache_get(token->cache, values[0], values[1], now, &minted);
    if (r < 0) /* the mint logged why */
        return token_answer_error(NOW(req), id, 503, "temporarily_unavailable", "no token can be issued now: see the agent's log",
                                  NULL);
    r = token_answer_token_ok(NOW(req), id, &minted, values[1], now);
    token_minted_done(&minted);
    return r;
}

static int answer_jwks(keel_http_request *req, token_service *token, const char *id)
{
    credential *creds[] = {
        identity_get(token->identity, IDENTITY_CURRENT),
        identity_get(token->identity, IDENTITY_PREVIOUS),
        identity_get(token->identity, IDENTITY_NEXT),
    };
    _cleanup_free_ char *body = NULL;
    int r = token_jwks_json(creds, ELEMENTSOF(creds), &body);
    for (size_t i = 0; i < ELEMENTSOF(creds); i++)
        (void) credential_unref(creds[i]);
    if (r < 0)
        return r;
    char cache_control[32];
    (void) snprintf(cache_control, sizeof cache_control, "max-age=%llu", (unsigned long long) atomic_load(&token->jwks_max_age_s));
    const char *headers[] = { "Cache-Control", cache_control, "X-Request-Id", id, NULL };
    return respond(NOW(req), 200, "application/jwk-set+json", body, strlen(body), headers);
}

/* With a client CA, a token is for a client that proved who it is. */
static bool client_unverified(keel_http_request *req, token_service *token)
{
    return tls_server_verifies_clients(token->tls) && !keel_http_request_peer_identity(req);
}

static int route(keel_http_request *req, token_service *token, const char *id)
{
    const char *path = keel_http_request_path(req), *method = keel_http_request_method(req);
    if (streq(path, ACCESS_PATH))
        return token_answer_access(req, token, id, !client_unverified(req, token));
    bool is_token = streq(path, "/token") || streq(path, "/"), is_jwks = streq(path, JWKS_PATH);
    if ((is_token || is_jwks) && !STR_IN_SET(method, "GET", "HEAD"))
        return token_answer_error(NOW(req), id, 405, "method_not_allowed", "only GET is served here", NULL);
    if (is_token && client_unverified(req, token))
        return token_answer_error(NOW(req), id, 401, "invalid_client",
                                  "a client certificate verified by token.tls_client_ca_file is required", NULL);
    if (is_token)
        return answer_token(req, token, id);
    if (is_jwks && token->issuer)
        return token_answer_error(NOW(req), id, 404, "not_found",
                                  "token.provider is oauth2: tokens are the issuer's, and so are the keys that verify them", NULL);
    if (is_jwks)
        return answer_jwks(req, token, id);
    return token_answer_error(NOW(req), id, 404, "not_found", "not found: try /token, POST " ACCESS_PATH " or " JWKS_PATH, NULL);
}

/* The server logs every request at debug level with its id (one line: not this handler's too).
 * Client errors are warnings (client_error()), mint failures errors (mint()). */
static int handle(keel_http_request *req, void *userdata)
{
    return route(req, userdata, keel_http_request_id(req));
}

/* The token keys server publishes what verifies tokens and nothing that issues them: /token is
 * not there at all, so it is safe to expose where the token server must not be. */
static int handle_jwks(keel_http_request *req, void *userdata)
{
    token_service *token = userdata;
    const char *path = keel_http_request_path(req), *id = keel_http_request_id(req);
    if (!streq(path, JWKS_PATH))
        return token_answer_error(NOW(req), id, 404, "not_found", "not found: only " JWKS_PATH " is served here", NULL);
    if (!STR_IN_SET(keel_http_request_method(req), "GET", "HEAD"))
        return token_answer_error(NOW(req), id, 405, "method_not_allowed", "only GET is served here", NULL);
    if (token->issuer)
        return token_answer_error(NOW(req), id, 404, "not_found",
                                  "token.provider is oauth2: tokens are the issuer's, and so are the keys that verify them", NULL);
    return answer_jwks(req, token, id);
}

/* ---- health, metrics, rotation ---------------------------------------------------------------- */

/* Healthy while the current credential can sign: it exists, matches its certificate and is in date. */
static int check_credential(void *userdata, char *reason, size_t size)
{
    token_service *token = userdata;
    keel_usec_t now = keel_now_realtime();
    if (identity_current_valid(token->identity, now, NULL, NULL)) /* every probe: no lock, no reference */
        return 0;
    _cleanup_(credential_unrefp) credential *c = identity_get(token->identity, IDENTITY_CURRENT);
    if (!c) {
        (void) snprintf(reason, size, "no current credential to sign tokens with");
        return -ENOKEY;
    }
    return credential_check(c, now, reason, size);
}

/* After every change of the credential slots, on the thread that made it. Tokens of the previous
 * key stay valid for verifiers (JWKS lists it), so a new key only marks them stale: each pair is
 * minted again on its next request, not all at once here. */
static void on_credential(identity *id, void *userdata)
{
    token_service *token = userdata;
    _cleanup_(credential_unrefp) credential *c = identity_get(id, IDENTITY_CURRENT);
    if (c && token->cache && token_cache_rekey(token->cache, credential_kid(c)))
        keel_log_service("token", KEEL_LOG_INFO, "Signing tokens with key[%s] (%s)", credential_kid(c), credential_alg(c));
}

static int add_metrics(token_service *token, keel_metrics *m, token_cache_metrics *ret)
{
    int r = keel_metrics_counter(m, "keel_token_cache_hits_total", "Token requests answered from the cache.", NULL, &ret->hits);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_token_cache_misses_total", "Token requests that had to mint (or wait for a mint).", NULL,
                                 &ret->misses);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_token_mints_total", "Tokens signed, by result.",
                                 (const char *const[]){ "result", "ok", NULL }, &ret->mints);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_token_mints_total", "Tokens signed, by result.",
                                 (const char *const[]){ "result", "error", NULL }, &ret->mint_failures);
    if (r >= 0)
        r = keel_metrics_gauge(m, "keel_token_cache_entries", "(domain, role) pairs in the token cache.", NULL, &ret->entries);
    if (r >= 0)
        r = keel_metrics_gauge(m, "keel_token_cache_bytes", "Bytes the token cache holds.", NULL, &ret->bytes);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_token_refreshes_total", "Refresh attempts of the token cache, by result.",
                                 (const char *const[]){ "result", "ok", NULL }, &token->refreshed);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_token_refreshes_total", "Refresh attempts of the token cache, by result.",
                                 (const char *const[]){ "result", "error", NULL }, &token->refresh_failed);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_token_files_total", "Writes of the token files of token.targets, by result.",
                                 (const char *const[]){ "result", "ok", NULL }, &token->files_written);
    if (r >= 0)
        r = keel_metrics_counter(m, "keel_token_files_total", "Writes of the token files of token.targets, by result.",
                                 (const char *const[]){ "result", "error", NULL }, &token->file_failures);
    for (size_t i = 0; r >= 0 && i < 3; i++) {
        static const char *const results[] = { "ok", "refused", "error" };
        keel_counter **c[] = { &token->access_ok, &token->access_refused, &token->access_failed };
        r = keel_metrics_counter(m, "keel_token_access_requests_total",
                                 "POST /accesstoken requests by result: ok, refused (4xx: the request), error (5xx).",
                                 (const char *const[]){ "result", results[i], NULL }, c[i]);
    }
    return r; /* RSS is process_resident_memory_bytes, read at each scrape: no series of our own repeats it */
}

/* ---- the service -------------------------------------------------------------------------------- */

/* Verifiers re-read JWKS at least this often: a sixth of the refresh interval, at most 5 minutes,
 * so a next key is seen long before tokens signed with it are handed out. */
static void apply_live_config(token_service *token)
{
    keel_usec_t age = KEEL_MIN(token->config.refresh_interval / 6, 300 * KEEL_USEC_PER_SEC);
    atomic_store(&token->jwks_max_age_s, KEEL_MAX(age / KEEL_USEC_PER_SEC, 1));
    atomic_store(&token->expiry, token->config.expiry);
    if (atomic_exchange(&token->refresh_interval, token->config.refresh_interval) != token->config.refresh_interval)
        keel_task_group_wake(token->tasks);
}

/* SIGHUP: a new refresh interval, expiry or JWKS max-age applies at once (tokens already cached
 * keep their expiry until their next mint). */
static int token_refresh(keel_service *s, void *state)
{
    token_service *token = state;
    apply_live_config(token);
    tls_server_refresh(token->tls, "token", &token->config.tls);
    return 0;
}

static int token_configure(keel_service *s, void *state)
{
    token_service *token = state;
    token->cancel_fd = -1;
    keel_app *app = keel_service_app(s);
    token_cache_metrics m = { 0 };
    int r = identity_of(app, &token->identity);
    if (r >= 0)
        r = identity_subscribe(token->identity, on_credential, token);
    if (r >= 0)
        r = add_metrics(token, keel_app_metrics(app), &m);
    if (r < 0)
        return keel_app_fail(app, r, "Failed to set up the token service: %s", strerror(-r));
    const oauth2_config *o = &token->provider.oauth2;
    if (token->provider.provider == TOKEN_PROVIDER_OAUTH2 && (!*o->token_url || !*o->client_id))
        return keel_app_fail(app, -EINVAL, "token.provider is oauth2: set token.oauth2.token_url and token.oauth2.client_id");
    token->cache = token_cache_new((size_t) token->config.cache_size, mint, token);
    if (!token->cache)
        return keel_app_fail(app, -ENOMEM, "Failed to allocate the token cache");
    token_cache_set_metrics(token->cache, &m);
    if ((r = token_files_configure(token, app)) < 0)
        return r;
    apply_live_config(token);
    /* The first server to start: a TLS server's ready check needs libcurl, which loads meanwhile
     * (decisions 11 and 26). */
    if (token->config.tls.mode != TLS_SERVER_OFF)
        keel_http_prepare(app);
    return 0;
}

/* The token server: POST /accesstoken takes a JSON body (the server answers a larger one 413). */
static int start_server(token_service *token, keel_app *app, const keel_http_options *o)
{
    token->server = keel_http_server_new(app, o);
    if (!token->server)
        return keel_app_fail(app, -ENOMEM, "Failed to create the %s: %s", o->label, strerror(ENOMEM));
    int r = keel_http_server_accept_body(token->server, ACCESS_PATH, ACCESS_BODY_MAX, KEEL_HTTP_BODY_JSON_REFUSALS);
    if (r < 0)
        return keel_app_fail(app, r, "Failed to set up %s on the %s: %s", ACCESS_PATH, o->label, strerror(-r));
    return keel_http_server_start(token->server);
}

static int token_start(keel_service *s, void *state)
{
    token_service *token = state;
    keel_app *app = keel_service_app(s);
    _cleanup_(credential_unrefp) credential *c = identity_get(token->identity, IDENTITY_CURRENT);
    if (!c)
        return keel_app_fail(app, -ENOKEY,
                             "No current credential to sign tokens with: the certificate service must publish one before the token "
                             "provider starts");
    on_credential(token->identity, token);
    /* Here rather than at configure, so /readyz lists it after the certificate's check. */
    int r = keel_app_add_health_check(app, "token", check_credential, token);
    if (r < 0)
        return keel_app_fail(app, r, "Failed to add the token health check: %s", strerror(-r));
    token->work = keel_app_work(app, "token");
    if (!agent_init_mode(app) && (r = tls_server_setup(app, token->identity, "token", &token->config.tls, &token->tls)) < 0)
        return r;
    if (token->provider.provider == TOKEN_PROVIDER_OAUTH2 && (r = token_issuer_start(token, app)) < 0)
        return r;
    if (agent_init_mode(app))
        return token_files_write_in_init(token, app);
    /* Last before the server: a start that failed before it leaves what was kept to the next one. */
    token_restore_cache(token);
    if (token_files_write(token, true) < 0)
        return keel_app_fail(app, -EIO, "Cannot write the token files of token.targets in '%s' (see above)",
                             token->files.config.dir);
    if ((r = token_files_start(token)) < 0)
        return keel_app_fail(app, r, "Cannot start the token.files hooks: %s", r == -EIO ? KEEL_FAULT_MESSAGE : strerror(-r));
    keel_http_options o = { .service = "token",
                            .label = "token provider server",
                            .address = token->config.address,
                            .handler = handle,
                            .userdata = token,
                            .tls = token->tls ? &tls_server_ops : NULL,
                            .tls_userdata = token->tls };
    r = start_server(token, app, &o);
    if (r >= 0 && token->config.jwks_server) {
        o.service = "jwks";
        o.label = "token keys server";
        o.address = token->config.jwks_address;
        o.handler = handle_jwks;
        r = keel_http_server_start_new(app, &o, &token->jwks_server);
    }
    return r < 0 ? r : token_tasks_start(token, app);
}

/* The server drains first (requests in flight finish), then the tasks stop and are joined, then
 * the cache is kept for the next start. */
static int token_stop(keel_service *s, void *state)
{
    token_service *token = state;
    int r = keel_http_server_stop_and_free(keel_service_app(s), &token->jwks_server);
    int k = keel_http_server_stop_and_free(keel_service_app(s), &token->server);
    r = r < 0 ? r : k;
    token->tls = tls_server_free(token->tls);            /* after the server: its sessions hold the context */
    token->workers = token_workers_free(token->workers); /* after the drain, which they answered */
    if (token->tasks) {
        token->tasks = keel_task_group_free(token->tasks);
        keel_log_service("token", KEEL_LOG_INFO, "Stopped token provider daemon");
    }
    token->files.hooks = hooks_free(token->files.hooks); /* after the refresh task, the last to notify */
    token->issuer = oauth2_free(token->issuer);          /* after every task that mints */
    token_keep_cache(token);                             /* the cache is final: no request, worker or task is left */
    return r;
}

/* After every service stopped: the certificate service's refresh task, which may call
 * on_credential(), is joined by then. */
static int token_finalize(keel_service *s, void *state)
{
    token_service *token = state;
    token->cache = token_cache_free(token->cache);
    token_files_free(token);
    return 0;
}

static const keel_service_vtable token_vtable = {
    .name = "token",
    .label = "token provider",
    .after = (const char *const[]){ "certificate", NULL },
    .state_size = sizeof(token_service),
    .config = config_keys,
    .n_config = ELEMENTSOF(config_keys),
    .configure = token_configure,
    .start = token_start,
    .stop = token_stop,
    .refresh = token_refresh,
    .finalize = token_finalize,
};

static int token_register(keel_app *app)
{
    /* The service's keys for every command (`keel config` shows them, `keel token` uses them). */
    keel_service *s = NULL;
    int r = keel_app_add_service(app, &token_vtable, &s);
    if (r >= 0) {
        token_service *token = keel_service_state(s);
        r = keel_app_add_config(app, oauth2_config_keys, oauth2_n_config_keys, &token->provider);
        if (r >= 0)
            r = keel_app_add_config(app, token_files_config_keys, token_files_n_config_keys, &token->files);
    }
    return r < 0 ? r : token_command_register(app, s);
}

KEEL_PLUGIN(token, token_register);
