/* SPDX-License-Identifier: MIT */
/* token.provider oauth2 in the token service: a request whose pair is not cached is deferred to an
 * issuer worker, which asks the cache — so the issuer, one flight per pair — and answers it; the
 * polling thread never waits on the network. And the start: the client pair, a first token. */
#include <stdio.h>

#include "mode.h"
#include "token-service.h"

typedef struct job {
    keel_http_deferred *later;
    char id[KEEL_HTTP_REQUEST_ID_MAX];
    char *domain, *role;
    char *scope; /* POST /accesstoken's answer, or NULL: /token's */
} job;

static void job_free(job *j)
{
    free(j->domain);
    free(j->role);
    free(j->scope);
    free(j);
}

/* On an issuer worker: the cache mints (one flight per pair, however many wait). */
static void run_job(void *data, void *userdata)
{
    job *j = data;
    token_service *token = userdata;
    token_minted minted = { 0 };
    keel_usec_t now = keel_now_realtime();
    reply to = { .later = j->later };
    int r = token_cache_get(token->cache, j->domain, j->role, now, &minted);
    if (j->scope) /* before the answer, which the client may read at once */
        keel_counter_add(r >= 0 ? token->access_ok : token->access_failed, 1);
    if (r < 0 && j->scope) /* the SIA's API says 500 */
        (void) token_answer_error(to, j->id, 500, "server_error", "no token can be had from the issuer now: see the agent's log",
                                  NULL);
    else if (r < 0)
        (void) token_answer_error(to, j->id, 503, "temporarily_unavailable",
                                  "no token can be had from the issuer now: see the agent's log", NULL);
    else if (token_answer_token_ok(to, j->id, &minted, j->scope ? j->scope : j->role, now) < 0)
        (void) keel_http_deferred_respond(j->later, 500, token_json, "{}", 2, NULL);
    token_minted_done(&minted);
    job_free(j);
}

/* No token for @j, for @why: /accesstoken's only error is 500 (the peer's API, decision 29),
 * /token's a 503 the client may try again after. */
static int unavailable(reply to, const job *j, const char *why)
{
    return j->scope ? token_answer_error(to, j->id, 500, "server_error", why, NULL)
                    : token_answer_error(to, j->id, 503, "temporarily_unavailable", why, NULL);
}

/* A stop came first. */
static void cancel_job(void *data, void *userdata)
{
    job *j = data;
    token_service *token = userdata;
    if (j->scope)
        keel_counter_add(token->access_failed, 1);
    unavailable((reply){ .later = j->later }, j, "the agent is stopping");
    job_free(j);
}

int token_answer_later(keel_http_request *req, token_service *token, const char *id, const char *domain, const char *role,
                       const char *scope)
{
    job *j = calloc(1, sizeof *j);
    if (j && (!(j->domain = strdup(domain)) || !(j->role = strdup(role)) || (scope && !(j->scope = strdup(scope)))))
        j = (job_free(j), NULL);
    if (j)
        (void) snprintf(j->id, sizeof j->id, "%s", id);
    if (j && (j->later = keel_http_request_defer(req)) && token_workers_push(token->workers, j) >= 0)
        return 0;
    if (j && j->later) { /* deferred but not queued: answered from here, later all the same */
        (void) unavailable((reply){ .later = j->later }, j, "out of memory");
        job_free(j);
        return 0;
    }
    if (j)
        job_free(j);
    return scope ? token_answer_error(NOW(req), id, 500, "server_error", "out of memory", NULL)
                 : token_answer_error(NOW(req), id, 503, "temporarily_unavailable", "out of memory", NULL);
}

/* tls_client_auth presents the certificate service's pair unless token.oauth2.cert_file says
 * otherwise: the operator's files with its file provider, else the pair it keeps in state_dir. */
static int client_pair(keel_app *app, const token_provider_settings *p, char **ret_cert, char **ret_key)
{
    const int *cert_provider = keel_app_config_value(app, "certificate.provider", KEEL_CONFIG_ENUM);
    const char *const *cf = keel_app_config_value(app, "certificate.cert_file", KEEL_CONFIG_PATH);
    const char *const *kf = keel_app_config_value(app, "certificate.key_file", KEEL_CONFIG_PATH);
    if (*p->cert_file) {
        *ret_cert = strdup(p->cert_file);
        *ret_key = strdup(p->key_file);
    } else if (cert_provider && *cert_provider == 1 /* file */ && cf && kf) {
        *ret_cert = strdup(*cf);
        *ret_key = strdup(*kf);
    } else {
        *ret_cert = keel_strdup_printf("%s/cert.pem", keel_app_state_dir(app));
        *ret_key = keel_strdup_printf("%s/key.pem", keel_app_state_dir(app));
    }
    return *ret_cert && *ret_key ? 0 : -ENOMEM;
}

/* token.provider oauth2: the issuer answers a first request (the client's default scope), so a
 * wrong URL, trust anchor or credential fails the start, not the first client. It is a credential
 * fetch in start: a stop signal ends it (decision 24). */
int token_issuer_start(token_service *token, keel_app *app)
{
    token_provider_settings *p = &token->provider;
    oauth2_config c = p->oauth2;
    _cleanup_free_ char *cert = NULL, *key = NULL;
    char why[512];
    if (c.client_auth == OAUTH2_TLS_CLIENT_AUTH && client_pair(app, p, &cert, &key) < 0)
        return keel_app_fail(app, -ENOMEM, "Out of memory");
    c.cert_file = cert ? cert : "";
    c.key_file = key ? key : "";
    int r = oauth2_new(&c, &token->issuer, why, sizeof why);
    if (r < 0)
        return keel_app_fail(app, r, "%s", why);
    if (agent_init_mode(app)) /* it fetches each target's token, tried again until init.timeout */
        return 0;
    token_minted t = { 0 };
    r = oauth2_fetch(token->issuer, NULL, NULL, keel_now_realtime(), keel_app_stop_fd(app), &t, why, sizeof why);
    token_minted_done(&t);
    if (r < 0)
        return keel_app_fail(app, r, "Cannot get a token from the OAuth2 issuer %s: %s", c.token_url, why);
    keel_log_service("token", KEEL_LOG_INFO, "Getting tokens from %s as client %s (%s)", c.token_url, c.client_id,
                     oauth2_auth_choices[c.client_auth]);
    r = token_workers_start(app, 4, run_job, cancel_job, token, &token->workers);
    return r < 0 ? keel_app_fail(app, r, "Failed to spawn the token issuer tasks: %s", strerror(-r)) : 0;
}
