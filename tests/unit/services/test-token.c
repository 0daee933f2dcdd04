/* SPDX-License-Identifier: MIT */
/* services/token/jwt.c, request.c and duration.c: claims, signing, JWKS, the /token answer,
 * request-header checks and Go-style durations. Credentials are made here and published on a
 * bare keel_app, so no certificate service is needed. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <keel/keel.h>

#include "credential.h"
#include "helpers.h"
#include "jwt.h"
#include "oauth2.h"
#include "openssl-util.h"
#include "request.h"

TestSuite(token, .timeout = 60);

#define DAY (86400 * KEEL_USEC_PER_SEC)

/* A self-signed certificate of @key valid from now + @from_s for @secs seconds, with CN "agent"
 * and, when @dns is not NULL, that DNS name in its subjectAltName. */
static X509 *self_signed(EVP_PKEY *key, long from_s, long secs, const char *dns)
{
    X509 *x = X509_new();
    cr_assert_not_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), from_s + secs);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *) "agent", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (dns) {
        char san[300];
        snprintf(san, sizeof san, "DNS:%s,DNS:second.example", dns);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
        cr_assert_not_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    cr_assert_gt(X509_sign(x, key, EVP_sha256()), 0);
    return x;
}

/* A credential of a new key (EC P-256, or RSA 2048) with a certificate valid for @secs seconds. */
static credential *make_credential(bool ec, long secs, const char *dns)
{
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    cr_assert_not_null(key);
    _cleanup_(X509_freep) X509 *cert = self_signed(key, -60, secs, dns);
    credential *c = NULL;
    cr_assert_eq(credential_new(key, cert, NULL, &c), 0);
    return c;
}

/* The JSON of part @i (0 header, 1 payload) of a compact JWS, into @out. */
static void jws_part(const char *jwt, int i, char *out)
{
    const char *start = jwt;
    for (int k = 0; k < i; k++)
        start = strchr(start, '.') + 1;
    test_unbase64url(start, (size_t) (strchr(start, '.') - start), (unsigned char *) out);
}

/* Verifies the signature with the credential's public key, as a JWT library would. */
static void verify(const char *jwt, const credential *c)
{
    const char *dot2 = strrchr(jwt, '.');
    unsigned char sig[1024], der[128];
    size_t n = test_unbase64url(dot2 + 1, strlen(dot2 + 1), sig);
    const unsigned char *final = sig;
    bool ec = streq(credential_alg(c), "ES256");
    if (ec) {
        cr_assert_eq(n, 64);
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *s = ECDSA_SIG_new();
        ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        unsigned char *p = der;
        n = (size_t) i2d_ECDSA_SIG(s, &p);
        final = der;
    }
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    cr_assert_eq(EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, credential_key(c), NULL), 1);
    cr_assert_eq(EVP_DigestVerify(ctx, final, n, (const unsigned char *) jwt, (size_t) (dot2 - jwt)), 1);
}

/* ---- claims --------------------------------------------------------------------------------- */

Test(token, claims_json_has_every_claim_in_order_and_escapes_strings)
{
    token_claims c = { .iss = "https://keel.example/\"x\"",
                       .sub = "agent.example",
                       .aud = "sports",
                       .scope = "reader",
                       .iat = 1700000000,
                       .nbf = 1700000000,
                       .exp = 1700003600,
                       .jti = "AAAAAAAAAAAAAAAAAAAAAA" };
    _cleanup_free_ char *json = NULL;
    cr_assert_eq(token_claims_json(&c, &json), 0);
    cr_assert_str_eq(json,
                     "{\"iss\":\"https://keel.example/\\\"x\\\"\",\"sub\":\"agent.example\",\"aud\":\"sports\",\"scope\":"
                     "\"reader\",\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1700003600,\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\"}");
}

Test(token, claims_json_refuses_what_does_not_fit)
{
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    token_claims c = { .iss = big, .sub = "s", .aud = "a", .scope = "r", .jti = "j" };
    char *json = NULL;
    cr_assert_eq(token_claims_json(&c, &json), -E2BIG);
    cr_assert_null(json);
}

Test(token, jti_is_128_random_bits_in_base64url)
{
    char a[23], b[23];
    cr_assert_eq(token_new_jti(a), 0);
    cr_assert_eq(token_new_jti(b), 0);
    cr_assert_eq(strlen(a), 22);
    cr_assert_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 22);
    cr_assert_str_neq(a, b);
}

Test(token, subject_is_the_first_dns_name_else_the_common_name)
{
    credential *with_dns = make_credential(true, 3600, "agent.example"), *without = make_credential(true, 3600, NULL);
    _cleanup_free_ char *a = NULL, *b = NULL;
    cr_assert_eq(token_subject(with_dns, &a), 0);
    cr_assert_str_eq(a, "agent.example");
    cr_assert_eq(token_subject(without, &b), 0);
    cr_assert_str_eq(b, "agent");
    credential_unref(with_dns);
    credential_unref(without);
}

/* ---- signing -------------------------------------------------------------------------------- */

static void sign_and_check(bool ec)
{
    credential *c = make_credential(ec, 86400, "agent.example");
    token_params p = { .issuer = "keel", .expiry = 3600 * KEEL_USEC_PER_SEC };
    keel_usec_t now = keel_now_realtime();
    _cleanup_free_ char *jwt = NULL;
    keel_usec_t expires = 0;
    char header[512], payload[1024], want[128];
    cr_assert_eq(token_sign(c, &p, "sports", "reader", now, &jwt, &expires), 0);
    verify(jwt, c);
    jws_part(jwt, 0, header);
    snprintf(want, sizeof want, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", ec ? "ES256" : "RS256", credential_kid(c));
    cr_assert_str_eq(header, want);
    jws_part(jwt, 1, payload);
    long long iat = (long long) (now / KEEL_USEC_PER_SEC);
    snprintf(want, sizeof want, "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,\"jti\":\"", iat, iat, iat + 3600);
    cr_assert(strstr(payload, want), "%s", payload);
    cr_assert(strstr(payload, "{\"iss\":\"keel\",\"sub\":\"agent.example\",\"aud\":\"sports\",\"scope\":\"reader\","), "%s",
              payload);
    cr_assert_eq(expires, (keel_usec_t) (iat + 3600) * KEEL_USEC_PER_SEC);
    credential_unref(c);
}

Test(token, es256_tokens_verify_and_carry_the_claims)
{
    sign_and_check(true);
}

Test(token, rs256_tokens_verify_and_carry_the_claims)
{
    sign_and_check(false);
}

Test(token, expiry_never_passes_the_certificates_not_after)
{
    credential *c = make_credential(true, 600, NULL); /* notAfter in 10 minutes (less 1 minute back-dated) */
    token_params p = { .issuer = "keel", .expiry = 3600 * KEEL_USEC_PER_SEC };
    _cleanup_free_ char *jwt = NULL;
    keel_usec_t expires = 0, now = keel_now_realtime();
    cr_assert_eq(token_sign(c, &p, "d", "r", now, &jwt, &expires), 0);
    cr_assert_eq(expires, credential_not_after(c));
    cr_assert_lt(expires, now + 600 * KEEL_USEC_PER_SEC);

    char *late = NULL;
    cr_assert_eq(token_sign(c, &p, "d", "r", credential_not_after(c), &late, &expires), -EKEYEXPIRED);
    cr_assert_null(late);
    credential_unref(c);
}

Test(token, issue_needs_a_current_credential_that_is_in_date)
{
    keel_app *app = keel_app_new("test");
    identity *id = NULL;
    cr_assert_eq(identity_of(app, &id), 0);
    token_params p = { .issuer = "keel", .expiry = 3600 * KEEL_USEC_PER_SEC };
    char reason[256] = "", *jwt = NULL;
    keel_usec_t expires = 0, now = keel_now_realtime();
    cr_assert_eq(token_issue(id, &p, "d", "r", now, &jwt, &expires, reason, sizeof reason), -ENOKEY);
    cr_assert(strstr(reason, "no current credential"), "%s", reason);

    credential *c = make_credential(true, 86400, NULL);
    cr_assert_eq(identity_rotate(id, c), 0);
    cr_assert_eq(token_issue(id, &p, "d", "r", now, &jwt, &expires, reason, sizeof reason), 0);
    verify(jwt, c);
    free(jwt);
    jwt = NULL;
    cr_assert_eq(token_issue(id, &p, "d", "r", now + 2 * DAY, &jwt, &expires, reason, sizeof reason), -EKEYEXPIRED);
    cr_assert(strstr(reason, "expired at"), "%s", reason);
    cr_assert_null(jwt);
    credential_unref(c);
    keel_app_free(app);
}

/* ---- JSON answers --------------------------------------------------------------------------- */

Test(token, response_json_counts_seconds_left)
{
    _cleanup_free_ char *json = NULL;
    keel_usec_t now = 1700000000 * KEEL_USEC_PER_SEC;
    cr_assert_eq(token_response_json("a.b.c", now + 3599500000ULL, now, "reader", &json), 0);
    cr_assert_str_eq(json, "{\"access_token\":\"a.b.c\",\"token_type\":\"Bearer\",\"expires_in\":3599,\"scope\":\"reader\"}");
}

/* Found by fuzz-claims: an issuer's token (any VSCHAR) went into the answer unescaped. */
Test(token, an_answer_whose_token_needs_escaping_is_still_json)
{
    _cleanup_free_ char *json = NULL;
    cr_assert_eq(token_response_json("a\"b\\c", 60 * KEEL_USEC_PER_SEC, 0, "r\"o", &json), 0);
    cr_assert_str_eq(json, "{\"access_token\":\"a\\\"b\\\\c\",\"token_type\":\"Bearer\",\"expires_in\":60,\"scope\":\"r\\\"o\"}");
}

static int parse(const char *body, unsigned status, token_minted *t, char *why, size_t size)
{
    keel_fetch_response resp = { .status = status, .body = (char *) body, .size = strlen(body), .headers = (char *) "" };
    return oauth2_parse_answer(&resp, 0, t, why, size);
}

/* An issuer's access_token goes into our JSON answer and our Authorization header: RFC 6749's
 * VSCHAR only, so no CR or LF can split the header. */
Test(token, an_issuers_token_outside_vschar_is_refused)
{
    token_minted t = { 0 };
    char why[256];
    cr_assert_eq(parse("{\"access_token\":\"a\\\"b\",\"expires_in\":60}", 200, &t, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(t.jwt, "a\"b");
    cr_assert_eq(t.expires, 60 * KEEL_USEC_PER_SEC);
    token_minted_done(&t);
    cr_assert_eq(parse("{\"access_token\":\"a\\r\\nSet-Cookie: x\"}", 200, &t, why, sizeof why), -EBADMSG);
    cr_assert_str_eq(why, "the answer's access_token has the byte 0x0d, outside RFC 6749's VSCHAR");
    cr_assert_null(t.jwt);
    cr_assert_eq(parse("{\"access_token\":\"caf\\u00e9\"}", 200, &t, why, sizeof why), -EBADMSG);
    cr_assert_eq(parse("{\"error\":\"invalid_client\"}", 401, &t, why, sizeof why), -EACCES);
    cr_assert_str_eq(why, "HTTP 401 invalid_client");
}

/* expires_in as issuers send it; anything else is refused, never taken for the RFC's hour. */
Test(token, an_issuers_expires_in_is_an_integer_a_real_or_digits)
{
    struct {
        const char *body;
        int r;
        keel_usec_t seconds;
    } cases[] = {
        { "{\"access_token\":\"t\",\"expires_in\":60}", 0, 60 },
        { "{\"access_token\":\"t\"}", 0, 3600 },
        { "{\"access_token\":\"t\",\"expires_in\":\"60\"}", 0, 60 },
        { "{\"access_token\":\"t\",\"expires_in\":3599.0}", 0, 3599 },
        { "{\"access_token\":\"t\",\"expires_in\":59.9}", 0, 59 },
        { "{\"access_token\":\"t\",\"expires_in\":\"60s\"}", -EBADMSG, 0 },
        { "{\"access_token\":\"t\",\"expires_in\":\"\"}", -EBADMSG, 0 },
        { "{\"access_token\":\"t\",\"expires_in\":\"-60\"}", -EBADMSG, 0 },
        { "{\"access_token\":\"t\",\"expires_in\":null}", -EBADMSG, 0 },
        { "{\"access_token\":\"t\",\"expires_in\":true}", -EBADMSG, 0 },
        { "{\"access_token\":\"t\",\"expires_in\":0}", -EBADMSG, 0 },
        { "{\"access_token\":\"t\",\"expires_in\":1e300}", -EBADMSG, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        token_minted t = { 0 };
        char why[256] = "";
        cr_assert_eq(parse(cases[i].body, 200, &t, why, sizeof why), cases[i].r, "%s: %s", cases[i].body, why);
        cr_assert_eq(t.expires, cases[i].seconds * KEEL_USEC_PER_SEC, "%s", cases[i].body);
        token_minted_done(&t);
    }
    token_minted t = { 0 };
    char why[256];
    cr_assert_eq(parse("{\"access_token\":\"t\",\"expires_in\":\"60s\"}", 200, &t, why, sizeof why), -EBADMSG);
    cr_assert_str_eq(why, "the answer's expires_in is not a number of seconds");
}

Test(token, jwks_lists_each_key_once_and_skips_empty_slots)
{
    credential *a = make_credential(true, 3600, NULL), *b = make_credential(false, 3600, NULL);
    credential *const slots[] = { a, NULL, b, a };
    _cleanup_free_ char *json = NULL, *ja = NULL, *jb = NULL, *want = NULL, *empty = NULL;
    cr_assert_eq(token_jwks_json(slots, 4, &json), 0);
    cr_assert_eq(credential_public_jwk(a, &ja), 0);
    cr_assert_eq(credential_public_jwk(b, &jb), 0);
    want = keel_strdup_printf("{\"keys\":[%s,%s]}", ja, jb);
    cr_assert_str_eq(json, want);
    cr_assert_eq(token_jwks_json(slots + 1, 1, &empty), 0);
    cr_assert_str_eq(empty, "{\"keys\":[]}");
    credential_unref(a);
    credential_unref(b);
}

/* ---- request headers ------------------------------------------------------------------------ */

Test(token, headers_must_be_present_short_and_plain)
{
    char reason[160], long_value[TOKEN_HEADER_MAX + 2];
    cr_assert_eq(token_check_header("X-Athenz-Domain", "sports.api-v2:prod_1", reason, sizeof reason), 0);
    cr_assert_eq(token_check_header("X-Athenz-Domain", NULL, reason, sizeof reason), -EINVAL);
    cr_assert_str_eq(reason, "missing header X-Athenz-Domain");
    cr_assert_eq(token_check_header("X-Athenz-Role", "", reason, sizeof reason), -EINVAL);
    cr_assert_str_eq(reason, "empty header X-Athenz-Role");
    cr_assert_eq(token_check_header("X-Athenz-Role", "read er", reason, sizeof reason), -EINVAL);
    cr_assert_str_eq(reason, "header X-Athenz-Role has a character outside [A-Za-z0-9._:-] at offset 4");
    cr_assert_eq(token_check_header("X-Athenz-Role", "a\"b", reason, sizeof reason), -EINVAL);
    cr_assert_eq(token_check_header("X-Athenz-Role", "caf\xc3\xa9", reason, sizeof reason), -EINVAL);
    memset(long_value, 'a', TOKEN_HEADER_MAX);
    long_value[TOKEN_HEADER_MAX] = '\0';
    cr_assert_eq(token_check_header("X-Athenz-Domain", long_value, reason, sizeof reason), 0);
    long_value[TOKEN_HEADER_MAX] = 'a';
    long_value[TOKEN_HEADER_MAX + 1] = '\0';
    cr_assert_eq(token_check_header("X-Athenz-Domain", long_value, reason, sizeof reason), -EINVAL);
    cr_assert_str_eq(reason, "header X-Athenz-Domain is longer than 128 bytes");
}

Test(token, bearer_is_the_authorization_value)
{
    _cleanup_free_ char *s = NULL;
    cr_assert_eq(token_bearer("a.b.c", &s), 0);
    cr_assert_str_eq(s, "Bearer a.b.c");
}

Test(token, log_safe_cuts_and_masks)
{
    char out[68], in[100];
    token_log_safe("a\nb\x01", out);
    cr_assert_str_eq(out, "a?b?");
    token_log_safe(NULL, out);
    cr_assert_str_eq(out, "");
    memset(in, 'x', sizeof in - 1);
    in[sizeof in - 1] = '\0';
    token_log_safe(in, out);
    cr_assert_eq(strlen(out), 67);
    cr_assert_str_eq(out + 64, "...");
}
