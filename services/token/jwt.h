/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/util.h>

#include "identity.h"

/* The JSON the token service writes: JWT claims, the /token answer and the JWKS document. */

/* The claims of one access token. Times are seconds since the epoch. */
typedef struct token_claims {
    const char *iss, *sub, *aud, *scope;
    int64_t iat, nbf, exp;
    char jti[23]; /* 128 random bits, base64url */
} token_claims;

/* What a token is made of besides the credential. */
typedef struct token_params {
    const char *issuer;
    keel_usec_t expiry; /* lifetime; the certificate's notAfter cuts it shorter */
} token_params;

/* The claims as a JSON object into *@ret (freed by the caller). 0, -ENOMEM, -E2BIG. */
int token_claims_json(const token_claims *c, char **ret);

/* 128 random bits, base64url (22 characters), into @ret. 0 or -EIO when the RNG fails. */
int token_new_jti(char ret[static 23]);

/* The subject of tokens signed with @cred: the certificate's first DNS name, else its common
 * name, else the key id. Into *@ret (freed by the caller). 0 or -ENOMEM. */
int token_subject(const credential *cred, char **ret);

/*
 * Signs a token for @domain and @role at @now (CLOCK_REALTIME µs) with @cred: iat and nbf now,
 * exp now + @p->expiry or the certificate's notAfter if that is sooner. The compact JWS goes into
 * *@ret_jwt, its expiry (µs) into *@ret_expires. Returns 0, -EKEYEXPIRED when the certificate has
 * no time left, -ENOMEM, -EIO.
 */
int token_sign(const credential *cred, const token_params *p, const char *domain, const char *role, keel_usec_t now, char **ret_jwt,
               keel_usec_t *ret_expires);

/*
 * Signs with @id's current credential after checking it (credential_check()). Returns 0,
 * -ENOKEY when there is none (or it has no certificate), -EKEYEXPIRED, -EKEYREJECTED, or
 * token_sign()'s errors; on a check failure a one-line reason goes into @reason (@size bytes).
 */
int token_issue(identity *id, const token_params *p, const char *domain, const char *role, keel_usec_t now, char **ret_jwt,
                keel_usec_t *ret_expires, char *reason, size_t size);

/* The /token answer {"access_token","token_type":"Bearer","expires_in","scope"} into *@ret. */
int token_response_json(const char *jwt, keel_usec_t expires, keel_usec_t now, const char *scope, char **ret);

/* "Bearer @jwt" into *@ret: the Authorization header's value. 0 or -ENOMEM. */
int token_bearer(const char *jwt, char **ret);

/* {"keys":[…]} of the @n credentials (NULL ones skipped, a key id given twice written once). */
int token_jwks_json(credential *const *creds, size_t n, char **ret);
