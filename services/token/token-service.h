/* SPDX-License-Identifier: MIT */
#pragma once

/* The token service's state and answers, shared by token.c (configuration, HTTP, tasks, hooks) and
 * issuer.c (token.provider oauth2: the requests that wait on the issuer, its start). */

#include <stdatomic.h>

#include <keel/http.h>
#include <keel/keel.h>

#include "cache.h"
#include "hooks.h"
#include "oauth2.h"
#include "token.h"
#include "workers.h"

/* token.targets and the files they are written to (files.c): a table of its own. */
typedef struct token_files {
    struct {
        char **targets;
        char *dir, *mode, *group;
        hook_config hooks; /* token.files_exec, files_signal, files_pidfile, files_hook_timeout */
    } config;
    mode_t mode;                     /* token.file_mode */
    gid_t gid;                       /* token.file_group, or (gid_t) -1 */
    char **domains, **roles;         /* of each target (owned) */
    char **written;                  /* the JWT last written for each target, NULL before (owned) */
    keel_usec_t *due;                /* CLOCK_REALTIME µs when each written token should be written again (owned) */
    atomic_uint_fast64_t rewrite_at; /* the earliest of them, 0 before any; read by the refresh task */
    size_t n;
    hooks *hooks; /* owned: told after a refresh rewrote files, or NULL */
} token_files;

typedef struct token_service {
    struct {
        keel_address address, jwks_address;
        bool jwks_server;
        keel_usec_t refresh_interval, expiry, memory_report_interval;
        int64_t cache_size;
        char *issuer;
        tls_server_config tls;
    } config;
    identity *identity;               /* borrowed from the app: the credential tokens are signed with */
    token_cache *cache;               /* owned: made in configure, freed in finalize (after every thread that reads it) */
    keel_http_server *server;         /* owned */
    keel_http_server *jwks_server;    /* owned: token.jwks_server, or NULL */
    tls_server *tls;                  /* owned: the server's TLS, or NULL */
    token_provider_settings provider; /* token.provider, token.oauth2.* (a table of its own) */
    token_files files;                /* token.targets, token.dir, token.file_* (a table of its own) */
    oauth2 *issuer;                   /* owned: token.provider oauth2, or NULL */
    token_workers *workers;           /* owned: answer the requests that wait on the issuer */
    keel_task_group *tasks;           /* owned: the refresh task and the memory reporter */
    keel_work *work;                  /* borrowed from the app: the server's tracker, which refreshes join */
    /* borrowed from the metrics registry: */
    keel_counter *refreshed, *refresh_failed, *files_written, *file_failures;
    keel_counter *access_ok, *access_refused, *access_failed; /* POST /accesstoken, by result */
    /* The live keys as other threads read them: copied at configure and at every refresh. */
    atomic_uint_fast64_t refresh_interval, expiry, jwks_max_age_s;
    /* Start reached the restore of the cache kept by the last stop: this stop keeps it in turn. */
    bool restored;
    int cancel_fd; /* keel init: the app's stop descriptor, which ends a fetch from the issuer; else -1 */
} token_service;

/* Where an answer goes: the request now, or, for one an issuer worker answers, later. */
typedef struct reply {
    keel_http_request *req;
    keel_http_deferred *later;
} reply;
#define NOW(r) ((reply){ .req = (r) })

extern const char token_json[];

/* Answers {"error","error_description"[,"header"]} with @status. */
int token_answer_error(reply to, const char *id, unsigned status, const char *error, const char *description, const char *header);
/* Answers @t as RFC 6749 §5.1 JSON, with the token in Authorization too. */
int token_answer_token_ok(reply to, const char *id, const token_minted *t, const char *role, keel_usec_t now);

/* issuer.c: defers @req to a worker, which asks the cache (so the issuer) for the pair and answers
 * /token's JSON with @role as its scope — or, with @scope, POST /accesstoken's (a failure then
 * 500, and counted); starts the issuer (a first token, the workers). Failures of the start are
 * given to keel_app_fail(). */
int token_answer_later(keel_http_request *req, token_service *token, const char *id, const char *domain, const char *role,
                       const char *scope);
int token_issuer_start(token_service *token, keel_app *app);

/* accesstoken.c: answers POST /accesstoken (and 405 to other methods); @client_verified false
 * when token.tls_client_ca_file asks for a client certificate the request did not come with. */
int token_answer_access(keel_http_request *req, token_service *token, const char *id, bool client_verified);

/* files.c: the table of token.targets and its keys; their check at configure (a configuration
 * error names the key); writing every target's file whose token changed (at start, then after
 * each refresh: the first error, each one logged); what configure made, freed at finalize. */
extern const keel_config_key token_files_config_keys[];
extern const size_t token_files_n_config_keys;
int token_files_configure(token_service *token, keel_app *app);
int token_files_write(token_service *token, bool at_start);
/* How long from @now (CLOCK_REALTIME µs) until a token file should be written again, before its
 * token is too close to its end; KEEL_USEC_INFINITY without files. */
keel_usec_t token_files_due_in(token_service *token, keel_usec_t now);
int token_files_start(token_service *token);
/* keel init: token_files_write(), the fetches from an OAuth2 issuer tried again until init.timeout;
 * a stop ends it as a failure. Logs its failure through keel_app_fail(). */
int token_files_write_in_init(token_service *token, keel_app *app);

/* tasks.c: from token.start, the refresh task and the memory reporter in token->tasks. */
int token_tasks_start(token_service *token, keel_app *app);
void token_files_free(token_service *token);

/* kept.c: the cache across a restart. At start, before the server accepts: the tokens the last
 * stop kept go back into the cache (never fails: a refusal is a warning, and the cache starts
 * empty). At stop, once no thread mints any more: an OAuth2 issuer's tokens are kept. */
void token_restore_cache(token_service *token);
void token_keep_cache(token_service *token);
