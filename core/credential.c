/* SPDX-License-Identifier: MIT */
/*
 * Credentials (a key and its certificate) and the app's three slots for them. JOSE lives here
 * too (JWK, thumbprint, compact JWS) because a key id is defined by the JWK of the key: the
 * certificate service, the token service and JWKS must agree on it byte for byte.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include <keel/credential.h>

#include "app-internal.h"
#include "cleanup.h"
#include "macro.h"

struct keel_credential {
    atomic_uint n_ref;
    EVP_PKEY *key;          /* owned reference */
    X509 *cert;             /* owned reference, or NULL */
    STACK_OF(X509) * chain; /* owned, or NULL */
    bool ec;                /* P-256, else RSA */
    char kid[44];
    keel_usec_t not_before, not_after;
    char *members; /* the JWK's public members in RFC 7638 order: {"crv","kty","x","y"} or {"e","kty","n"} */
};

typedef struct credential_subscriber {
    keel_credential_handler_t fn;
    void *userdata;
} credential_subscriber;

/* ---- encoding ------------------------------------------------------------------------------ */

int keel_base64url(const void *data, size_t size, char **ret)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    keel_assert_return(ret && (data || size == 0), -EINVAL);
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
    return keel_base64url(buf, (size_t) n, ret);
}

static int public_members(keel_credential *c)
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

static int thumbprint(keel_credential *c)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    _cleanup_free_ char *kid = NULL;
    if (EVP_Digest(c->members, strlen(c->members), md, &len, EVP_sha256(), NULL) != 1)
        return -EIO;
    int r = keel_base64url(md, len, &kid);
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

int keel_credential_new(EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain, keel_credential **ret)
{
    keel_assert_return(key && ret, -EINVAL);
    bool ec;
    if (key_kind(key, &ec) < 0)
        return -EINVAL;

    keel_credential *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (keel_credential){
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
    int r = !c->key || (cert && !c->cert) || (chain && !c->chain) ? -ENOMEM : public_members(c);
    if (r >= 0)
        r = thumbprint(c);
    if (r < 0) {
        (void) keel_credential_unref(c);
        return r == -EIO ? -EINVAL : r;
    }
    *ret = c;
    return 0;
}

keel_credential *keel_credential_ref(keel_credential *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->n_ref, 1, memory_order_relaxed);
    return c;
}

keel_credential *keel_credential_unref(keel_credential *c)
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

EVP_PKEY *keel_credential_key(const keel_credential *c)
{
    return c ? c->key : NULL;
}

X509 *keel_credential_cert(const keel_credential *c)
{
    return c ? c->cert : NULL;
}

STACK_OF(X509) * keel_credential_chain(const keel_credential *c)
{
    return c ? c->chain : NULL;
}

const char *keel_credential_kid(const keel_credential *c)
{
    return c ? c->kid : NULL;
}

const char *keel_credential_alg(const keel_credential *c)
{
    return !c ? NULL : c->ec ? "ES256" : "RS256";
}

keel_usec_t keel_credential_not_before(const keel_credential *c)
{
    return c ? c->not_before : 0;
}

keel_usec_t keel_credential_not_after(const keel_credential *c)
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

int keel_credential_check(const keel_credential *c, keel_usec_t now, char *reason, size_t size)
{
    keel_assert_return(c && (reason || size == 0), -EINVAL);
    char when[32];
    if (!c->cert) {
        if (size)
            (void) snprintf(reason, size, "no certificate for key %s", c->kid);
        return -ENOKEY;
    }
    if (X509_check_private_key(c->cert, c->key) != 1) {
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

int keel_credential_public_jwk(const keel_credential *c, char **ret)
{
    keel_assert_return(c && ret, -EINVAL);
    size_t n = strlen(c->members);
    /* The thumbprint members, then the ones a verifier uses to pick and trust the key. */
    char *jwk = keel_strdup_printf("%.*s,\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"%s\"}", (int) (n - 1), c->members, c->kid,
                                   keel_credential_alg(c));
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

static int sign(const keel_credential *c, const char *input, size_t size, char **ret)
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
        return keel_base64url(sig, n, ret);
    int r = ecdsa_der_to_raw(sig, n, raw);
    return r < 0 ? r : keel_base64url(raw, sizeof raw, ret);
}

int keel_credential_sign_jws(const keel_credential *c, const char *payload, size_t size, char **ret)
{
    keel_assert_return(c && payload && ret, -EINVAL);
    char header[128];
    _cleanup_free_ char *h = NULL, *p = NULL, *input = NULL, *s = NULL;
    int n = snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", keel_credential_alg(c), c->kid);
    int r = keel_base64url(header, (size_t) n, &h);
    if (r >= 0)
        r = keel_base64url(payload, size, &p);
    if (r < 0)
        return r;
    if (!(input = keel_strdup_printf("%s.%s", h, p)))
        return -ENOMEM;
    r = sign(c, input, strlen(input), &s);
    if (r < 0)
        return r;
    char *token = keel_strdup_printf("%s.%s", input, s);
    if (!token)
        return -ENOMEM;
    *ret = token;
    return 0;
}

/* ---- the app's slots ------------------------------------------------------------------------- */

keel_credential *keel_app_get_credential(keel_app *app, keel_credential_slot slot)
{
    keel_assert_return(app && slot >= 0 && slot < _KEEL_CREDENTIAL_SLOT_MAX, NULL);
    (void) pthread_mutex_lock(&app->credential_lock);
    keel_credential *c = keel_credential_ref(app->credentials[slot]);
    (void) pthread_mutex_unlock(&app->credential_lock);
    return c;
}

static void notify_subscribers(keel_app *app)
{
    /* Subscribers are added before `start` and never removed, so the list is stable here. */
    for (size_t i = 0; i < app->n_credential_subscribers; i++)
        app->credential_subscribers[i].fn(app, app->credential_subscribers[i].userdata);
}

static bool same_key(const keel_credential *a, const keel_credential *b)
{
    return a && b && streq(a->kid, b->kid);
}

int keel_app_rotate_credential(keel_app *app, keel_credential *c)
{
    keel_assert_return(app && c && c->cert, -EINVAL);
    keel_credential *dropped[2] = { NULL, NULL };

    (void) pthread_mutex_lock(&app->credential_lock);
    keel_credential **slots = app->credentials;
    if (!same_key(slots[KEEL_CREDENTIAL_CURRENT], c)) {
        /* A renewal of the same key keeps the previous slot: it still holds the last other key. */
        dropped[0] = slots[KEEL_CREDENTIAL_PREVIOUS];
        slots[KEEL_CREDENTIAL_PREVIOUS] = slots[KEEL_CREDENTIAL_CURRENT];
    } else
        dropped[0] = slots[KEEL_CREDENTIAL_CURRENT];
    slots[KEEL_CREDENTIAL_CURRENT] = keel_credential_ref(c);
    if (same_key(slots[KEEL_CREDENTIAL_NEXT], c)) {
        dropped[1] = slots[KEEL_CREDENTIAL_NEXT];
        slots[KEEL_CREDENTIAL_NEXT] = NULL;
    }
    (void) pthread_mutex_unlock(&app->credential_lock);

    (void) keel_credential_unref(dropped[0]);
    (void) keel_credential_unref(dropped[1]);
    notify_subscribers(app);
    return 0;
}

int keel_app_set_next_credential(keel_app *app, keel_credential *c)
{
    keel_assert_return(app, -EINVAL);
    (void) pthread_mutex_lock(&app->credential_lock);
    keel_credential *old = app->credentials[KEEL_CREDENTIAL_NEXT];
    app->credentials[KEEL_CREDENTIAL_NEXT] = keel_credential_ref(c);
    (void) pthread_mutex_unlock(&app->credential_lock);
    (void) keel_credential_unref(old);
    notify_subscribers(app);
    return 0;
}

int keel_app_subscribe_credential(keel_app *app, keel_credential_handler_t fn, void *userdata)
{
    keel_assert_return(app && fn, -EINVAL);
    credential_subscriber *l = realloc(app->credential_subscribers, (app->n_credential_subscribers + 1) * sizeof *l);
    if (!l)
        return -ENOMEM;
    app->credential_subscribers = l;
    l[app->n_credential_subscribers++] = (credential_subscriber){ fn, userdata };
    return 0;
}

void keel__app_credentials_done(keel_app *app)
{
    for (size_t i = 0; i < ELEMENTSOF(app->credentials); i++)
        app->credentials[i] = keel_credential_unref(app->credentials[i]);
    free(app->credential_subscribers);
    app->credential_subscribers = NULL;
    app->n_credential_subscribers = 0;
    (void) pthread_mutex_destroy(&app->credential_lock);
}
