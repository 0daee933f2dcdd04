/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <keel/app.h>

#include "credential.h"
#include "helpers.h"
#include "identity.h"
#include "openssl-util.h"

TestSuite(credential, .timeout = 30);

static EVP_PKEY *ec_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    cr_assert_not_null(k);
    return k;
}

static EVP_PKEY *rsa_key(unsigned bits)
{
    EVP_PKEY *k = EVP_RSA_gen(bits);
    cr_assert_not_null(k);
    return k;
}

/* A self-signed certificate of @key valid from now + @from_s for @days days. */
static X509 *self_signed(EVP_PKEY *key, long from_s, long days)
{
    X509 *x = X509_new();
    cr_assert_not_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), from_s + days * 86400);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) "test", -1, -1, 0);
    X509_set_issuer_name(x, n);
    cr_assert_gt(X509_sign(x, key, EVP_sha256()), 0);
    return x;
}

static keel_usec_t realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (keel_usec_t) ts.tv_sec * KEEL_USEC_PER_SEC + (keel_usec_t) ts.tv_nsec / 1000;
}

Test(credential, base64url_vectors)
{
    /* RFC 4648 §10, in the URL-safe alphabet without padding. */
    const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar", "\xfb\xff" };
    const char *out[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy", "-_8" };
    for (size_t i = 0; i < ELEMENTSOF(in); i++) {
        _cleanup_free_ char *s = NULL;
        cr_assert_eq(base64url(in[i], strlen(in[i]), &s), 0);
        cr_assert_str_eq(s, out[i]);
    }
}

Test(credential, rfc7638_thumbprint)
{
    /* The example of RFC 7638 §3.1: a public RSA key and its thumbprint. */
    static const char n_b64[] =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_"
        "2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbI"
        "SD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    unsigned char n_bin[512];
    size_t n_len = test_unbase64url(n_b64, strlen(n_b64), n_bin);
    _cleanup_(BN_freep) BIGNUM *n = BN_bin2bn(n_bin, (int) n_len, NULL), *e = BN_new();
    BN_set_word(e, 65537);
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n);
    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e);
    _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    OSSL_PARAM_BLD_free(b);
    _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
    cr_assert_eq(EVP_PKEY_fromdata_init(ctx), 1);
    cr_assert_eq(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);

    credential *c = NULL;
    cr_assert_eq(credential_new(key, NULL, NULL, &c), 0);
    cr_assert_str_eq(credential_kid(c), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    cr_assert_str_eq(credential_alg(c), "RS256");
    _cleanup_free_ char *jwk = NULL;
    cr_assert_eq(credential_public_jwk(c, &jwk), 0);
    cr_assert(strstr(jwk, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"0vx7agoe"), "%s", jwk);
    cr_assert(strstr(jwk, ",\"kid\":\"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs\",\"use\":\"sig\",\"alg\":\"RS256\"}"), "%s",
              jwk);
    credential_unref(c);
}

Test(credential, refuses_weak_or_unknown_keys)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *rsa1024 = rsa_key(1024), *p384 = EVP_EC_gen("P-384");
    credential *c = NULL;
    cr_assert_eq(credential_new(rsa1024, NULL, NULL, &c), -EINVAL);
    cr_assert_eq(credential_new(p384, NULL, NULL, &c), -EINVAL);
    cr_assert_eq(credential_new(NULL, NULL, NULL, &c), -EINVAL);
    cr_assert_null(c);
}

Test(credential, check_match_and_dates)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = ec_key(), *other = ec_key();
    _cleanup_(X509_freep) X509 *good = self_signed(key, -60, 1), *foreign = self_signed(other, -60, 1),
                               *expired = self_signed(key, -3 * 86400, 1), *future = self_signed(key, 86400, 1);
    keel_usec_t now = realtime();
    char reason[256];
    credential *c = NULL;

    cr_assert_eq(credential_new(key, NULL, NULL, &c), 0);
    cr_assert_eq(credential_check(c, now, reason, sizeof reason), -ENOKEY);
    cr_assert_eq(credential_not_after(c), KEEL_USEC_INFINITY);
    c = credential_unref(c);

    cr_assert_eq(credential_new(key, good, NULL, &c), 0);
    cr_assert_eq(credential_check(c, now, reason, sizeof reason), 0);
    cr_assert_lt(credential_not_before(c), now);
    cr_assert_gt(credential_not_after(c), now + 86000 * KEEL_USEC_PER_SEC);
    cr_assert_eq(credential_check(c, credential_not_after(c) + KEEL_USEC_PER_SEC, reason, sizeof reason), -EKEYEXPIRED);
    cr_assert(strstr(reason, "expired at"), "%s", reason);
    c = credential_unref(c);

    cr_assert_eq(credential_new(key, foreign, NULL, &c), 0);
    cr_assert_eq(credential_check(c, now, reason, sizeof reason), -EKEYREJECTED);
    cr_assert(strstr(reason, "does not belong"), "%s", reason);
    c = credential_unref(c);

    cr_assert_eq(credential_new(key, expired, NULL, &c), 0);
    cr_assert_eq(credential_check(c, now, reason, sizeof reason), -EKEYEXPIRED);
    c = credential_unref(c);

    cr_assert_eq(credential_new(key, future, NULL, &c), 0);
    cr_assert_eq(credential_check(c, now, reason, sizeof reason), -EKEYEXPIRED);
    cr_assert(strstr(reason, "not valid before"), "%s", reason);
    credential_unref(c);
}

/* Verifies a compact JWS with the key's public half, as any JWT library would. */
static void verify_jws(const char *token, EVP_PKEY *key, bool ec)
{
    const char *dot2 = strrchr(token, '.');
    cr_assert_not_null(dot2);
    unsigned char sig[1024], der[128];
    size_t n = test_unbase64url(dot2 + 1, strlen(dot2 + 1), sig);
    const unsigned char *final = sig;
    size_t final_len = n;
    if (ec) {
        cr_assert_eq(n, 64);
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *s = ECDSA_SIG_new();
        ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        unsigned char *p = der;
        final_len = (size_t) i2d_ECDSA_SIG(s, &p);
        final = der;
    }
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    cr_assert_eq(EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    cr_assert_eq(EVP_DigestVerify(ctx, final, final_len, (const unsigned char *) token, (size_t) (dot2 - token)), 1);
}

static void sign_and_verify(EVP_PKEY *key, bool ec)
{
    credential *c = NULL;
    _cleanup_free_ char *token = NULL, *header_b64 = NULL;
    static const char payload[] = "{\"sub\":\"keel\"}";
    cr_assert_eq(credential_new(key, NULL, NULL, &c), 0);
    cr_assert_eq(credential_sign_jws(c, payload, strlen(payload), &token), 0);

    char header[128];
    int hn = snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", ec ? "ES256" : "RS256",
                      credential_kid(c));
    cr_assert_eq(base64url(header, (size_t) hn, &header_b64), 0);
    cr_assert_eq(strncmp(token, header_b64, strlen(header_b64)), 0, "%s", token);
    unsigned char body[128];
    const char *p = strchr(token, '.') + 1;
    size_t bn = test_unbase64url(p, (size_t) (strrchr(token, '.') - p), body);
    cr_assert_eq(bn, strlen(payload));
    cr_assert_eq(memcmp(body, payload, bn), 0);
    verify_jws(token, key, ec);
    credential_unref(c);
}

Test(credential, es256_verifies)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = ec_key();
    sign_and_verify(key, true);
}

Test(credential, rs256_verifies)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = rsa_key(2048);
    sign_and_verify(key, false);
}

/* The base64url value of "@name":"..." in the flattened JWS @json, into @ret (decoded). */
static size_t field(const char *json, const char *name, char *ret_b64, size_t size)
{
    char key[32];
    snprintf(key, sizeof key, "\"%s\":\"", name);
    const char *p = strstr(json, key);
    cr_assert_not_null(p, "%s in %s", name, json);
    p += strlen(key);
    size_t n = strcspn(p, "\"");
    cr_assert_lt(n, size);
    memcpy(ret_b64, p, n);
    ret_b64[n] = 0;
    return n;
}

/* An ACME request as RFC 8555 §6.2 has it: the protected header and payload come back as they went
 * in, and the signature verifies over "protected.payload" with the account key. */
static void flattened_verifies(EVP_PKEY *key, bool ec, const char *payload)
{
    credential *c = NULL;
    _cleanup_free_ char *json = NULL, *header = NULL;
    cr_assert_eq(credential_new(key, NULL, NULL, &c), 0);
    header = keel_strdup_printf("{\"alg\":\"%s\",\"nonce\":\"abc\",\"url\":\"https://acme.test/new-acct\",\"jwk\":%s}",
                                credential_alg(c), credential_jwk_members(c));
    cr_assert_eq(credential_sign_jws_flattened(c, header, payload, strlen(payload), &json), 0);
    cr_assert(json[0] == '{' && json[strlen(json) - 1] == '}', "%s", json);

    char prot[4096], pay[4096], sig[4096], compact[12288];
    unsigned char decoded[4096];
    field(json, "protected", prot, sizeof prot);
    size_t pn = field(json, "payload", pay, sizeof pay);
    field(json, "signature", sig, sizeof sig);
    size_t hn = test_unbase64url(prot, strlen(prot), decoded);
    cr_assert_eq(hn, strlen(header));
    cr_assert_eq(memcmp(decoded, header, hn), 0);
    if (!*payload)
        cr_assert_eq(pn, 0, "POST-as-GET: an empty payload");
    else {
        size_t bn = test_unbase64url(pay, pn, decoded);
        cr_assert(bn == strlen(payload) && memcmp(decoded, payload, bn) == 0);
    }
    snprintf(compact, sizeof compact, "%s.%s.%s", prot, pay, sig);
    verify_jws(compact, key, ec);
    credential_unref(c);
}

Test(credential, acme_requests_are_flattened_jws_that_verify)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *ec = ec_key(), *rsa = rsa_key(2048);
    flattened_verifies(ec, true, "{\"termsOfServiceAgreed\":true}");
    flattened_verifies(ec, true, "");
    flattened_verifies(rsa, false, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.test\"}]}");
    credential *c = NULL;
    char *out = NULL;
    cr_assert_eq(credential_new(ec, NULL, NULL, &c), 0);
    cr_assert_eq(credential_sign_jws_flattened(c, NULL, "", 0, &out), -EINVAL);
    cr_assert_null(out);
    credential_unref(c);
}

/* The key id is the thumbprint of the members an ACME jwk carries: one definition for both. */
Test(credential, the_kid_is_the_thumbprint_of_the_jwk_members)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = ec_key();
    credential *c = NULL;
    unsigned char md[32];
    unsigned len = 0;
    _cleanup_free_ char *want = NULL;
    cr_assert_eq(credential_new(key, NULL, NULL, &c), 0);
    const char *m = credential_jwk_members(c);
    cr_assert(strncmp(m, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"", 31) == 0, "%s", m);
    cr_assert_eq(EVP_Digest(m, strlen(m), md, &len, EVP_sha256(), NULL), 1);
    cr_assert_eq(base64url(md, len, &want), 0);
    cr_assert_str_eq(credential_kid(c), want);
    credential_unref(c);
}

static void count(identity *id, void *userdata)
{
    (*(unsigned *) userdata)++;
}

static bool holds(identity *id, identity_slot slot, const credential *want)
{
    credential *c = identity_get(id, slot);
    bool same = want ? c && streq(credential_kid(c), credential_kid(want)) && credential_cert(c) == credential_cert(want) : !c;
    credential_unref(c);
    return same;
}

Test(credential, app_slots_rotate)
{
    keel_app *app = keel_app_new("test");
    identity *id = NULL, *again = NULL;
    cr_assert_eq(identity_of(app, &id), 0);
    cr_assert_eq(identity_of(app, &again), 0);
    cr_assert_eq(id, again, "one identity per app, attached to it");
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *ka = ec_key(), *kb = ec_key();
    _cleanup_(X509_freep) X509 *xa = self_signed(ka, -60, 1), *xb = self_signed(kb, -60, 1), *xb2 = self_signed(kb, -30, 2);
    credential *a = NULL, *b_key = NULL, *b = NULL, *b2 = NULL;
    unsigned calls = 0;
    cr_assert_eq(identity_subscribe(id, count, &calls), 0);
    cr_assert_eq(credential_new(ka, xa, NULL, &a), 0);
    cr_assert_eq(credential_new(kb, NULL, NULL, &b_key), 0);
    cr_assert_eq(credential_new(kb, xb, NULL, &b), 0);
    cr_assert_eq(credential_new(kb, xb2, NULL, &b2), 0);

    cr_assert_eq(identity_rotate(id, b_key), -EINVAL, "a key without certificate cannot be current");
    cr_assert_eq(identity_rotate(id, a), 0);
    cr_assert(holds(id, IDENTITY_CURRENT, a) && holds(id, IDENTITY_PREVIOUS, NULL));

    cr_assert_eq(identity_set_next(id, b_key), 0);
    cr_assert(holds(id, IDENTITY_NEXT, b_key));

    cr_assert_eq(identity_rotate(id, b), 0);
    cr_assert(holds(id, IDENTITY_CURRENT, b) && holds(id, IDENTITY_PREVIOUS, a));
    cr_assert(holds(id, IDENTITY_NEXT, NULL), "the next key is in use now");

    /* A renewal of the same key keeps the other key in `previous`, for tokens it signed. */
    cr_assert_eq(identity_rotate(id, b2), 0);
    cr_assert(holds(id, IDENTITY_CURRENT, b2) && holds(id, IDENTITY_PREVIOUS, a));
    cr_assert_eq(calls, 4);

    credential_unref(a);
    credential_unref(b_key);
    credential_unref(b);
    credential_unref(b2);
    keel_app_free(app);
}
