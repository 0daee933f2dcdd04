/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/config.h>
#include <keel/fetch.h>

#include "cache.h"

/* The OAuth2 issuer of token.provider oauth2 (oauth2.c). Thread-safe. */
typedef struct oauth2 oauth2;

typedef enum oauth2_client_auth {
    OAUTH2_TLS_CLIENT_AUTH,     /* RFC 8705 §2.1: the client certificate is the credential */
    OAUTH2_CLIENT_SECRET_BASIC, /* RFC 6749 §2.3.1 */
} oauth2_client_auth;

extern const char *const oauth2_auth_choices[];

typedef struct oauth2_config {
    char *token_url, *client_id, *client_secret_file, *ca_file, *scope;
    char *cert_file, *key_file; /* tls_client_auth: the pair presented (resolved by the caller) */
    int client_auth;            /* oauth2_client_auth */
    keel_usec_t timeout;
} oauth2_config;

/* Checks @c and reads the secret; the reason in @error. */
int oauth2_new(const oauth2_config *c, oauth2 **ret, char *error, size_t size);
oauth2 *oauth2_free(oauth2 *o);
/* A token for the scope of @domain and @role (both NULL: the client's default scope) at @now
 * (CLOCK_REALTIME µs) into *@ret: -EACCES when the issuer refused the client, -ETIMEDOUT and the
 * errors of keel_fetch_request() when it cannot be reached, -EBADMSG for an answer that is not
 * RFC 6749's, -ECANCELED as soon as @cancel_fd (or -1: none) is readable; the reason in @error.
 * Blocks for at most token.oauth2.timeout. Any thread. */
int oauth2_fetch(oauth2 *o, const char *domain, const char *role, keel_usec_t now, int cancel_fd, token_minted *ret, char *error,
                 size_t size);
const char *oauth2_token_url(const oauth2 *o);
/* The issuer's answer @resp: RFC 6749 §5.1 into *@ret (expiring @now + expires_in), or §5.2's
 * error as the reason: -EACCES (HTTP 400, 401), -EIO (another status), -EBADMSG (not RFC 6749's). */
int oauth2_parse_answer(const keel_fetch_response *resp, keel_usec_t now, token_minted *ret, char *error, size_t size);

/* token.provider and token.oauth2.*: a table of their own (oauth2.c), in the token service's state. */
typedef enum token_provider {
    TOKEN_PROVIDER_LOCAL,  /* JWTs signed with the certificate service's key */
    TOKEN_PROVIDER_OAUTH2, /* the issuer's tokens, by the client credentials grant */
} token_provider;

typedef struct token_provider_settings {
    int provider; /* token_provider */
    oauth2_config oauth2;
    char *cert_file, *key_file; /* token.oauth2.cert_file, key_file as configured (empty: the certificate service's) */
} token_provider_settings;

extern const keel_config_key oauth2_config_keys[];
extern const size_t oauth2_n_config_keys;
