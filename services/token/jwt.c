/* SPDX-License-Identifier: MIT */
/* JWT claims, the /token answer and JWKS (jwt.h). Signing itself is credential_sign_jws(). */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <keel/strbuf.h>
#include <keel/util.h>

#include "jwt.h"
#include "openssl-util.h"

static int strbuf_take(const keel_strbuf *sb, char **ret)
{
    if (sb->truncated)
        return -E2BIG;
    char *s = strdup(sb->buf);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

int token_claims_json(const token_claims *c, char **ret)
{
    char buf[4096];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    keel_strbuf_append(&sb, "{");
    keel_strbuf_json_field(&sb, "iss", c->iss, true);
    keel_strbuf_json_field(&sb, "sub", c->sub, false);
    keel_strbuf_json_field(&sb, "aud", c->aud, false);
    keel_strbuf_json_field(&sb, "scope", c->scope, false);
    keel_strbuf_printf(&sb, ",\"iat\":%" PRId64 ",\"nbf\":%" PRId64 ",\"exp\":%" PRId64, c->iat, c->nbf, c->exp);
    keel_strbuf_json_field(&sb, "jti", c->jti, false);
    keel_strbuf_append(&sb, "}");
    return strbuf_take(&sb, ret);
}

int token_new_jti(char ret[static 23])
{
    unsigned char bits[16];
    _cleanup_free_ char *s = NULL;
    if (RAND_bytes(bits, sizeof bits) != 1)
        return -EIO;
    int r = base64url(bits, sizeof bits, &s);
    if (r < 0)
        return r;
    memcpy(ret, s, 23); /* 22 characters and the NUL */
    return 0;
}

/* The first DNS name of the subjectAltName, or NULL. */
static char *first_dns_name(X509 *cert)
{
    _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
        if (n->type == GEN_DNS)
            return strndup((const char *) ASN1_STRING_get0_data(n->d.dNSName), (size_t) ASN1_STRING_length(n->d.dNSName));
    }
    return NULL;
}

static char *common_name(X509 *cert)
{
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    return n > 0 ? strdup(cn) : NULL;
}

int token_subject(const credential *cred, char **ret)
{
    X509 *cert = credential_cert(cred);
    char *s = cert ? first_dns_name(cert) : NULL;
    if (!s && cert)
        s = common_name(cert);
    if (!s)
        s = strdup(credential_kid(cred));
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

int token_sign(const credential *cred, const token_params *p, const char *domain, const char *role, keel_usec_t now, char **ret_jwt,
               keel_usec_t *ret_expires)
{
    _cleanup_free_ char *sub = NULL, *claims = NULL;
    int64_t iat = (int64_t) (now / KEEL_USEC_PER_SEC);
    int64_t exp = (int64_t) ((now + p->expiry) / KEEL_USEC_PER_SEC);
    keel_usec_t not_after = credential_not_after(cred);
    if (not_after != KEEL_USEC_INFINITY)
        exp = KEEL_MIN(exp, (int64_t) (not_after / KEEL_USEC_PER_SEC));
    if (exp <= iat)
        return -EKEYEXPIRED;

    token_claims c = { .iss = p->issuer, .aud = domain, .scope = role, .iat = iat, .nbf = iat, .exp = exp };
    int r = token_new_jti(c.jti);
    if (r >= 0)
        r = token_subject(cred, &sub);
    if (r < 0)
        return r;
    c.sub = sub;
    r = token_claims_json(&c, &claims);
    if (r >= 0)
        r = credential_sign_jws(cred, claims, strlen(claims), ret_jwt);
    if (r < 0)
        return r;
    *ret_expires = (keel_usec_t) exp * KEEL_USEC_PER_SEC;
    return 0;
}

int token_issue(identity *id, const token_params *p, const char *domain, const char *role, keel_usec_t now, char **ret_jwt,
                keel_usec_t *ret_expires, char *reason, size_t size)
{
    _cleanup_(credential_unrefp) credential *cred = identity_get(id, IDENTITY_CURRENT);
    if (!cred) {
        (void) snprintf(reason, size, "no current credential: the certificate service has published none");
        return -ENOKEY;
    }
    int r = credential_check(cred, now, reason, size);
    if (r < 0)
        return r;
    r = token_sign(cred, p, domain, role, now, ret_jwt, ret_expires);
    if (r == -EKEYEXPIRED)
        (void) snprintf(reason, size, "the certificate of key %s has no time left", credential_kid(cred));
    else if (r < 0)
        (void) snprintf(reason, size, "signing with key %s failed: %s", credential_kid(cred), strerror(-r));
    return r;
}

/* Appends @n bytes of @s at *@p and advances it. */
static void put(char **p, const char *s, size_t n)
{
    memcpy(*p, s, n);
    *p += n;
}

/* Whether @s goes into a JSON string as it is: no quote, backslash, control or non-ASCII byte. */
static bool json_plain(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
            return false;
    return true;
}

/* The answer of a token that needs escaping: an OAuth2 issuer's may hold any VSCHAR. */
static int response_json_escaped(const char *jwt, uint64_t left, const char *scope, char **ret)
{
    char buf[2048];
    keel_strbuf sb = KEEL_STRBUF_INIT(buf);
    keel_strbuf_append(&sb, "{");
    keel_strbuf_json_field(&sb, "access_token", jwt, true);
    keel_strbuf_json_field(&sb, "token_type", "Bearer", false);
    keel_strbuf_printf(&sb, ",\"expires_in\":%" PRIu64, left);
    keel_strbuf_json_field(&sb, "scope", scope, false);
    keel_strbuf_append(&sb, "}");
    return strbuf_take(&sb, ret);
}

/* Built with memcpy, not printf: this runs for every cached answer. */
int token_response_json(const char *jwt, keel_usec_t expires, keel_usec_t now, const char *scope, char **ret)
{
    static const char a[] = "{\"access_token\":\"", b[] = "\",\"token_type\":\"Bearer\",\"expires_in\":", c[] = ",\"scope\":\"",
                      d[] = "\"}";
    char left[24];
    uint64_t seconds = expires > now ? (expires - now) / KEEL_USEC_PER_SEC : 0;
    if (!json_plain(jwt) || !json_plain(scope))
        return response_json_escaped(jwt, seconds, scope, ret);
    int nl = snprintf(left, sizeof left, "%" PRIu64, seconds);
    size_t nj = strlen(jwt), ns = strlen(scope);
    char *s = malloc(sizeof a + nj + sizeof b + (size_t) nl + sizeof c + ns + sizeof d), *p = s;
    if (!s)
        return -ENOMEM;
    put(&p, a, sizeof a - 1);
    put(&p, jwt, nj);
    put(&p, b, sizeof b - 1);
    put(&p, left, (size_t) nl);
    put(&p, c, sizeof c - 1);
    put(&p, scope, ns);
    put(&p, d, sizeof d); /* with the NUL */
    *ret = s;
    return 0;
}

int token_bearer(const char *jwt, char **ret)
{
    size_t n = strlen(jwt);
    char *s = malloc(7 + n + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, "Bearer ", 7);
    memcpy(s + 7, jwt, n + 1);
    *ret = s;
    return 0;
}

static bool kid_seen(credential *const *creds, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (creds[j] && streq(credential_kid(creds[j]), credential_kid(creds[i])))
            return true;
    return false;
}

int token_jwks_json(credential *const *creds, size_t n, char **ret)
{
    _cleanup_free_ char *out = strdup("{\"keys\":[");
    bool first = true;
    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *jwk = NULL, *old = NULL;
        if (!creds[i] || kid_seen(creds, i))
            continue;
        int r = credential_public_jwk(creds[i], &jwk);
        if (r < 0)
            return r;
        old = TAKE_PTR(out);
        if (!(out = keel_strdup_printf("%s%s%s", old, first ? "" : ",", jwk)))
            return -ENOMEM;
        first = false;
    }
    char *s = keel_strdup_printf("%s]}", out);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}
