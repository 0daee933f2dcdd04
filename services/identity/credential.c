/* SPDX-License-Identifier: MIT */
/*
 * Credentials (a key and its certificate) and the app's three slots for them. JOSE lives here
 * too (JWK, thumbprint, compact JWS) because a key id is defined by the JWK of the key: the
 * certificate service, the token service and JWKS must agree on it byte for byte.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include <keel/util.h>

#include "credential.h"
#include "openssl-util.h"

struct credential {
    atomic_uint n_ref;
    EVP_PKEY *key;          /* owned reference */
    X509 *cert;             /* owned reference, or NULL */
    STACK_OF(X509) * chain; /* owned, or NULL */
    bool ec;                /* P-256, else RSA */
    bool cert_matches_key;  /* checked once: both are immutable, and /healthz asks on every probe */
    char kid[44];
    keel_usec_t not_before, not_after;
    char *members; /* the JWK's public members in RFC 7638 order: {"crv","kty","x","y"} or {"e","kty","n"} */
};

/* ---- encoding ------------------------------------------------------------------------------ */

int base64url(const void *data, size_t size, char **ret)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (!(ret && (data || size == 0)))
        return -EINVAL;
    const unsigned char *p = data;
    char *out = malloc(size / 3 * 4 + 4 + 1), *o = out;
    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16 | (i + 1 < size ? (uint32_t) p[i + 1] << 8 : 0) | (i + 2 < size ? p[i + 2] : 0);
        *o++ = alphabet[v >> 18 & 63];
        *o++ = alphabet[v >> 12 & 63];
        if (i + 1 < size)
            *o++ = alphabet[v >> 6 & 63];
        if (i + 2 < size)
            *o++ = alphabet[v & 63];
    }
    *o = '\0';
    *ret = out;
    return 0;
}

/* A key parameter as unsigned big-endian bytes, left-padded to @pad bytes when @pad > 0. */
static int bn_param_b64(const EVP_PKEY *key, const char *name, int pad, char **ret)
{
    _cleanup_(BN_freep) BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
        return -EIO;
    int n = pad > 0 ? pad : BN_num_bytes(bn);
    unsigned char buf[1024];
    if (n <= 0 || (size_t) n > sizeof buf || BN_bn2binpad(bn, buf, n) != n)
        return -EIO;
    return base64url(buf, (size_t) n, ret);
}

static int public_members(credential *c)
{
    _cleanup_free_ char *a = NULL, *b = NULL;
    int r = c->ec ? bn_param_b64(c->key, OSSL_PKEY_PARAM_EC_PUB_X, 32, &a) : bn_param_b64(c->key, OSSL_PKEY_PARAM_RSA_E, 0, &a);
    if (r >= 0)
        r = c->ec ? bn_param_b64(c->key, OSSL_PKEY_PARAM_EC_PUB_Y, 32, &b) : bn_param_b64(c->key, OSSL_PKEY_PARAM_RSA_N, 0, &b);
    if (r < 0)
        return r;
    c->members = c->ec ? keel_strdup_printf("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", a, b)
                       : keel_strdup_printf("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", a, b);
    return c->members ? 0 : -ENOMEM;
}

static int thumbprint(credential *c)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    _cleanup_free_ char *kid = NULL;
    if (EVP_Digest(c->members, strlen(c->members), md, &len, EVP_sha256(), NULL) != 1)
        return -EIO;
    int r = base64url(md, len, &kid);
    if (r < 0)
        return r;
    (void) snprintf(c->kid, sizeof c->kid, "%s", kid);
    return 0;
}

/* ---- credentials --------------------------------------------------------------------------- */

static keel_usec_t asn1_time_usec(const ASN1_TIME *t, keel_usec_t fallback)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return fallback;
    time_t s = timegm(&tm);
    return s < 0 ? 0 : (keel_usec_t) s * KEEL_USEC_PER_SEC;
}

/* Whether @key is a type Keel signs with: EC on P-256, or RSA of 2048 bits or more. */
static int key_kind(EVP_PKEY *key, bool *ret_ec)
{
    if (EVP_PKEY_is_a(key, "RSA")) {
        *ret_ec = false;
        return EVP_PKEY_get_bits(key) >= 2048 ? 0 : -EINVAL;
    }
    char group[64];
    if (EVP_PKEY_is_a(key, "EC") &&
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) == 1 &&
        STR_IN_SET(group, "prime256v1", "P-256")) {
        *ret_ec = true;
        return 0;
    }
    return -EINVAL;
}

int credential_new(EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain, credential **ret)
{
    if (!(key && ret))
        return -EINVAL;
    bool ec;
    if (key_kind(key, &ec) < 0)
        return -EINVAL;

    credential *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (credential){
        .n_ref = 1,
        .ec = ec,
        .not_before = cert ? asn1_time_usec(X509_get0_notBefore(cert), KEEL_USEC_INFINITY) : 0,
        .not_after = cert ? asn1_time_usec(X509_get0_notAfter(cert), 0) : KEEL_USEC_INFINITY,
    };
    if (EVP_PKEY_up_ref(key) == 1)
        c->key = key;
    if (cert && X509_up_ref(cert) == 1)
        c->cert = cert;
    if (chain)
        c->chain = X509_chain_up_ref(chain);
    c->cert_matches_key = c->cert && c->key && X509_check_private_key(c->cert, c->key) == 1;
    int r = !c->key || (cert && !c->cert) || (chain && !c->chain) ? -ENOMEM : public_members(c);
    if (r >= 0)
        r = thumbprint(c);
    if (r < 0) {
        (void) credential_unref(c);
        return r == -EIO ? -EINVAL : r;
    }
    *ret = c;
    return 0;
}

credential *credential_ref(credential *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->n_ref, 1, memory_order_relaxed);
    return c;
}

credential *credential_unref(credential *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->n_ref, 1, memory_order_acq_rel) != 1)
        return NULL;
    EVP_PKEY_free(c->key);
    X509_free(c->cert);
    if (c->chain)
        sk_X509_pop_free(c->chain, X509_free);
    free(c->members);
    free(c);
    return NULL;
}

EVP_PKEY *credential_key(const credential *c)
{
    return c ? c->key : NULL;
}

X509 *credential_cert(const credential *c)
{
    return c ? c->cert : NULL;
}

STACK_OF(X509) * credential_chain(const credential *c)
{
    return c ? c->chain : NULL;
}

const char *credential_kid(const credential *c)
{
    return c ? c->kid : NULL;
}

const char *credential_alg(const credential *c)
{
    return !c ? NULL : c->ec ? "ES256" : "RS256";
}

keel_usec_t credential_not_before(const credential *c)
{
    return c ? c->not_before : 0;
}

keel_usec_t credential_not_after(const credential *c)
{
    return c ? c->not_after : 0;
}

static void format_time(keel_usec_t usec, char *buf, size_t size)
{
    time_t s = (time_t) (usec / KEEL_USEC_PER_SEC);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void) snprintf(buf, size, "?");
}

int credential_check(const credential *c, keel_usec_t now, char *reason, size_t size)
{
    if (!(c && (reason || size == 0)))
        return -EINVAL;
    char when[32];
    if (!c->cert) {
        if (size)
            (void) snprintf(reason, size, "no certificate for key %s", c->kid);
        return -ENOKEY;
    }
    if (!c->cert_matches_key) {
        if (size)
            (void) snprintf(reason, size, "the certificate does not belong to key %s", c->kid);
        return -EKEYREJECTED;
    }
    if (now < c->not_before || now > c->not_after) {
        bool early = now < c->not_before;
        format_time(early ? c->not_before : c->not_after, when, sizeof when);
        if (size)
            (void) snprintf(reason, size, "the certificate %s %s", early ? "is not valid before" : "expired at", when);
        return -EKEYEXPIRED;
    }
    return 0;
}

/* ---- JOSE ------------------------------------------------------------------------------------ */

int credential_public_jwk(const credential *c, char **ret)
{
    if (!(c && ret))
        return -EINVAL;
    size_t n = strlen(c->members);
    /* The thumbprint members, then the ones a verifier uses to pick and trust the key. */
    char *jwk = keel_strdup_printf("%.*s,\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"%s\"}", (int) (n - 1), c->members, c->kid,
                                   credential_alg(c));
    if (!jwk)
        return -ENOMEM;
    *ret = jwk;
    return 0;
}

/* ECDSA signatures come out of OpenSSL as DER; JWS wants r and s as two 32-byte integers. */
static int ecdsa_der_to_raw(const unsigned char *der, size_t size, unsigned char raw[64])
{
    _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &der, (long) size);
    if (!sig)
        return -EIO;
    const BIGNUM *r = ECDSA_SIG_get0_r(sig), *s = ECDSA_SIG_get0_s(sig);
    if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32)
        return -EIO;
    return 0;
}

static int sign(const credential *c, const char *input, size_t size, char **ret)
{
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[1024], raw[64];
    size_t n = sizeof sig;
    if (!ctx)
        return -ENOMEM;
    if (EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, c->key, NULL) != 1 ||
        EVP_DigestSign(ctx, sig, &n, (const unsigned char *) input, size) != 1)
        return -EIO;
    if (!c->ec)
        return base64url(sig, n, ret);
    int r = ecdsa_der_to_raw(sig, n, raw);
    return r < 0 ? r : base64url(raw, sizeof raw, ret);
}

/* The three parts of a JWS, each base64url: the protected header, the payload, the signature over
 * "header.payload". */
typedef struct jws_parts {
    char *header, *payload, *signature;
} jws_parts;

static void jws_parts_done(jws_parts *j)
{
    free(j->header);
    free(j->payload);
    free(j->signature);
}

static int jws_sign(const credential *c, const char *header, const char *payload, size_t size, jws_parts *ret)
{
    _cleanup_(jws_parts_done) jws_parts j = { 0 };
    _cleanup_free_ char *input = NULL;
    int r = base64url(header, strlen(header), &j.header);
    if (r >= 0)
        r = base64url(payload, size, &j.payload);
    if (r < 0)
        return r;
    if (!(input = keel_strdup_printf("%s.%s", j.header, j.payload)))
        return -ENOMEM;
    if ((r = sign(c, input, strlen(input), &j.signature)) < 0)
        return r;
    *ret = j;
    j = (jws_parts){ 0 };
    return 0;
}

int credential_sign_jws(const credential *c, const char *payload, size_t size, char **ret)
{
    if (!(c && payload && ret))
        return -EINVAL;
    char header[128];
    _cleanup_(jws_parts_done) jws_parts j = { 0 };
    (void) snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", credential_alg(c), c->kid);
    int r = jws_sign(c, header, payload, size, &j);
    if (r < 0)
        return r;
    char *token = keel_strdup_printf("%s.%s.%s", j.header, j.payload, j.signature);
    if (!token)
        return -ENOMEM;
    *ret = token;
    return 0;
}

int credential_sign_jws_flattened(const credential *c, const char *protected_header, const char *payload, size_t size, char **ret)
{
    if (!(c && protected_header && (payload || size == 0) && ret))
        return -EINVAL;
    _cleanup_(jws_parts_done) jws_parts j = { 0 };
    int r = jws_sign(c, protected_header, payload ? payload : "", size, &j);
    if (r < 0)
        return r;
    char *json =
        keel_strdup_printf("{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", j.header, j.payload, j.signature);
    if (!json)
        return -ENOMEM;
    *ret = json;
    return 0;
}

const char *credential_jwk_members(const credential *c)
{
    return c ? c->members : NULL;
}
