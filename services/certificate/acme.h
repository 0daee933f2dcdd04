/* SPDX-License-Identifier: MIT */
#pragma once

/* The ACME provider's parts: the client of one issuance (acme.c) and the http-01 responder it
 * answers challenges with (acme-http01.c). */

#include <jansson.h>
#include <pthread.h>

#include <keel/fetch.h>

#include "certificate-service.h"
#include "dns01.h"

/* The key authorizations being validated, served at /.well-known/acme-challenge/TOKEN. */
typedef struct acme_challenge {
    char *token, *key_authorization;
} acme_challenge;

/*
 * Where the challenges are answered: a handler mounted on the running server of
 * certificate.acme.http01_server or, when that server is not up yet (the first issuance, in
 * start, before the health check starts), a server of the same framework of our own on that
 * server's address, for the issuance only.
 */
typedef struct acme_responder {
    keel_app *app;
    pthread_mutex_t lock; /* the challenges: the polling thread reads them */
    acme_challenge *challenges;
    size_t n_challenges;
    keel_http_mount *mount;   /* owned */
    keel_http_server *server; /* owned: our own, when the named one was not serving */
    bool open;
} acme_responder;

/* One issuance. */
typedef struct acme {
    cert_service *s;
    cert_error *e;
    keel_fetch *fetch;   /* owned */
    credential *account; /* owned: the account key */
    char *kid;           /* the account URL */
    char nonce[256];     /* the next Replay-Nonce to use, or "" */
    char *new_nonce_url, *new_account_url, *new_order_url;
    char *renewal_info_url;        /* RFC 9773, or NULL: the CA offers no renewal information */
    unsigned problem_status;       /* the HTTP status of the last problem document, or 0 */
    keel_usec_t deadline;          /* CLOCK_MONOTONIC: certificate.acme.timeout from the start */
    acme_responder responder;      /* opened at the first http-01 challenge */
    dns01_solver *dns01;           /* owned: made at the first dns-01 challenge */
    tlsalpn01_responder *tls_alpn; /* owned: opened at the first tls-alpn-01 challenge */
    const char *directory_url;     /* borrowed: the CA's directory; NULL: certificate.acme.directory_url */
} acme;

/* Starts answering challenges for @s: -ENOENT when the named server neither serves nor has an
 * address key, bind errors of our own server. */
int acme_responder_open(acme_responder *r, cert_service *s, cert_error *e);
/* Adds the key authorization of @token: "TOKEN.THUMBPRINT". -EINVAL for a token that is not
 * base64url (RFC 8555 §8.3). */
int acme_answer(acme_responder *r, const char *token, const char *thumbprint);
/* Stops answering and forgets every challenge. Idempotent. */
void acme_responder_close(acme_responder *r);

/* acme.c, for acme-account.c: a string member of @j or NULL; a failed fetch as the attempt's error;
 * the body as a JSON object; a signed POST whose answer is a JSON object (and its Location). */
const char *acme_json_text(const json_t *j, const char *key);
/* Retry-After in seconds, below a day, as µs; 0 without one (RFC 9110's date form included: the
 * caller's own interval then). */
keel_usec_t acme_retry_after(const keel_fetch_response *resp);
int acme_fetch_failed(acme *a, int r, const char *what, const char *url, const char *why);
int acme_parse_object(acme *a, const char *what, const char *url, const keel_fetch_response *resp, json_t **ret);
int acme_post_json(acme *a, const char *what, const char *url, const char *payload, json_t **ret, char **location);
/* Polls @url (POST-as-GET) while its status is one of @waiting, into *@ret. */
int acme_poll_status(acme *a, const char *what, const char *url, const char *const *waiting, json_t **ret);
/* Counts a problem of @type (the part after urn:ietf:params:acme:error:) in keel_certificate_acme_errors_total. */
void acme_count_error(cert_service *s, const char *type);
/* Sleeps up to @usec: -ECANCELED at a stop (the refresh task's, or the app's in start). */
int acme_wait(acme *a, keel_usec_t usec);
/* Whether the issuance of @userdata (an acme) is to be given up: the refresh task is told to stop,
 * or, in start, a stop is requested. Cheap enough to ask every 100 ms. */
bool acme_cancelled(void *userdata);

/* acme.c: the fetch client of one exchange with the CA, given up at a stop (the refresh task's, or
 * the app's in start); everything of @a freed. */
int acme_open(acme *a);
void acme_done(acme *a);

/* acme-ari.c, for the order: the ARI certificate identifier (RFC 9773 §4.1) of the certificate a new
 * order replaces, into *@ret, or NULL when there is none to name (no renewalInfo, no current
 * certificate, one without an authority key identifier). */
int acme_replaces(acme *a, char **ret);

/* acme-account.c: the directory's URLs, the account key (made on first use), the account. */
int acme_read_directory(acme *a);
int acme_account_key(acme *a);
int acme_find_or_create_account(acme *a);

/* acme-challenge.c */
/* Registers keel_certificate_acme_validations_total. */
int acme_challenge_register_metrics(cert_service *s);
/* Has every authorization of @order validated (RFC 8555 §7.5): for each one not valid yet, the
 * first type of certificate.acme.challenges it offers is presented, the next one it offers when
 * presenting fails; then the CA is asked to look at each, and each is polled to its verdict. Every
 * dns-01 record added is deleted again, whatever the outcome. */
int acme_authorize(acme *a, const json_t *order, const char *order_url);

/* acme-choice.c: the choice, pure. */
const char *acme_challenge_type_to_string(acme_challenge_type t);
acme_challenge_type acme_challenge_type_from_string(const char *s);
/* @list (certificate.acme.challenges) into @ret, *@ret_n types in order. -EINVAL with the reason in
 * @e for an empty list and an unknown or repeated type. */
int acme_challenge_types_parse(char *const *list, acme_challenge_type ret[static _ACME_CHALLENGE_TYPE_MAX], size_t *ret_n,
                               cert_error *e);
/* -EINVAL with the reason in @e when a name of @names can be validated by none of @types: a
 * wildcard needs dns-01 (RFC 8555 §7.1.3: the CA offers only DNS challenges), an IP address
 * http-01 (RFC 8738 §7: no dns-01). */
int acme_challenge_names_check(char *const *names, const acme_challenge_type *types, size_t n, cert_error *e);
/* The index (from @from on) into @types of the first type @authz offers a challenge of, and that
 * challenge (borrowed from @authz) into *@ret_challenge; -ENOENT when it offers none of them. */
int acme_challenge_pick(const json_t *authz, const acme_challenge_type *types, size_t n, size_t from, const json_t **ret_challenge);
/* Whether the directory @dir of the CA at @url lists the certificate profile @profile in its
 * meta.profiles (draft-ietf-acme-profiles): 0 for "" (the CA's default) and for a listed one;
 * -EOPNOTSUPP with the profiles it does list, or that it lists none, in @e. */
int acme_profile_check(const json_t *dir, const char *url, const char *profile, cert_error *e);
