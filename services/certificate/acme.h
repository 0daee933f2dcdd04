/* SPDX-License-Identifier: MIT */
#pragma once

/* The ACME provider's parts: the client of one issuance (acme.c) and the http-01 responder it
 * answers challenges with (acme-http01.c). */

#include <jansson.h>
#include <pthread.h>

#include <keel/fetch.h>

#include "certificate-service.h"

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
    char *renewal_info_url;  /* RFC 9773, or NULL: the CA offers no renewal information */
    unsigned problem_status; /* the HTTP status of the last problem document, or 0 */
    keel_usec_t deadline;    /* CLOCK_MONOTONIC: certificate.acme.timeout from the start */
    acme_responder responder;
    const char *directory_url; /* borrowed: the CA's directory; NULL: certificate.acme.directory_url */
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
