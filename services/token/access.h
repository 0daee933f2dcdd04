/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include <keel/util.h>

/*
 * POST /accesstoken, the token API of the AthenZ SIA sidecar (its OpenAPI file:
 * FetchAccessToken; docs/decisions/0029-request-bodies-for-accesstoken.md): the JSON body read
 * and checked, and what keys the token cache by. No I/O: the token server's handler is
 * accesstoken.c.
 */

/* The most bytes of a body taken: larger ones are answered 413 by the server. */
#define ACCESS_BODY_MAX 4096
/* The most roles one request names (after duplicates are dropped). */
#define ACCESS_ROLES_MAX 16
/* The shortest lifetime a token is minted with: token.expiry's own floor, since a cached token is
 * served only while it has more than a minute left. */
#define ACCESS_LIFETIME_MIN (120 * KEEL_USEC_PER_SEC)

/* A checked request. */
typedef struct access_request {
    char *domain;     /* owned */
    char *roles;      /* owned: the roles, sorted, each once, separated by one space ("readers writers") */
    size_t n_roles;   /* >= 1 */
    int64_t expiry_s; /* the lifetime asked for in seconds; 0: token.expiry */
} access_request;

/* Frees what @a owns and empties it. */
void access_request_done(access_request *a);

/*
 * Reads the @size bytes of @body sent with Content-Type @content_type (NULL: none) into *@ret.
 * Returns 0; -ENOMEM; or -EINVAL with a reason that names what is wrong ("role: empty element at
 * position 2") in @reason (@reason_size bytes): a Content-Type that is not application/json, no
 * body, a body that is not one JSON object (or repeats a key), domain missing, not a string,
 * empty or outside [A-Za-z0-9._:-], role missing, not a string, empty, with an empty element or
 * one outside that set or more than ACCESS_ROLES_MAX of them, proxy_for_principal not a string
 * or not empty, expiry not an integer or negative. Members the API does not name are ignored.
 */
int access_request_parse(const char *content_type, const void *body, size_t size, access_request *ret, char *reason,
                         size_t reason_size);

/*
 * The token cache's role key of @a, whose token lives @lifetime (0: token.expiry): its roles, and
 * "#<seconds>" after them when a lifetime is given. /token's keys are single roles of
 * [A-Za-z0-9._:-], so a request for one role at token.expiry shares /token's token. Into *@ret
 * (freed by the caller). 0 or -ENOMEM.
 */
int access_cache_role(const access_request *a, keel_usec_t lifetime, char **ret);

/* Of a cache role key: the length of its roles part (the token's scope claim) and the lifetime it
 * asks (0: token.expiry) into *@ret_lifetime. */
size_t access_cache_role_split(const char *key, keel_usec_t *ret_lifetime);

/* The answer's scope, "<domain>:role.<r1> <domain>:role.<r2>", into *@ret. 0 or -ENOMEM. */
int access_scope(const access_request *a, char **ret);

/* The lifetime a token for @a gets: its expiry, within [ACCESS_LIFETIME_MIN, @configured]; 0 when
 * that is @configured (token.expiry), so that the key is the one token.expiry's tokens have. */
keel_usec_t access_lifetime(const access_request *a, keel_usec_t configured);
