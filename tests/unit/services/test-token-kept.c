/* SPDX-License-Identifier: MIT */
/* services/token/kept.c: the key a kept cache is authenticated with, and the payload from one
 * cache to the next — order, expiry, the issuer it came from, every malformation. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <keel/fdstore.h>

#include "kept.h"
#include "openssl-util.h"

TestSuite(token_kept, .timeout = 60);

#define HOUR ((keel_usec_t) 3600 * KEEL_USEC_PER_SEC)
#define T0   ((keel_usec_t) 1700000000 * KEEL_USEC_PER_SEC)
#define SRC  "oauth2 https://127.0.0.1:8443/token agent {domain}:role.{role}"

static int no_mint(const char *domain, const char *role, keel_usec_t now, void *userdata, token_minted *ret)
{
    return -EIO;
}

/* ---- the key ------------------------------------------------------------------------------------ */

/* @key through PEM (PKCS#8, as the certificate service writes it) and back. */
static EVP_PKEY *through_pem(EVP_PKEY *key)
{
    _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
    cr_assert_eq(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    EVP_PKEY *back = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    cr_assert_not_null(back);
    return back;
}

static void key_of(EVP_PKEY *key, uint8_t ret[TOKEN_KEPT_KEY_SIZE])
{
    cr_assert_eq(token_kept_key(key, ret), 0);
}

Test(token_kept, the_key_is_the_same_for_a_key_written_and_read_again_and_differs_between_keys)
{
    for (int ec = 0; ec < 2; ec++) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *other = ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *back = through_pem(key);
        uint8_t a[TOKEN_KEPT_KEY_SIZE], b[TOKEN_KEPT_KEY_SIZE], c[TOKEN_KEPT_KEY_SIZE];
        key_of(key, a);
        key_of(back, b);
        key_of(other, c);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "%s: the key the next start loads from the state directory", ec ? "EC" : "RSA");
        cr_assert_neq(memcmp(a, c, sizeof a), 0, "%s: another key", ec ? "EC" : "RSA");
    }
    _cleanup_(EVP_PKEY_freep) EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    uint8_t k[TOKEN_KEPT_KEY_SIZE];
    cr_assert_eq(token_kept_key(ed, k), -EINVAL);
}

/* ---- the payload -------------------------------------------------------------------------------- */

static void put(token_cache *c, const char *domain, const char *role, const char *jwt, keel_usec_t expires)
{
    token_minted t = { .jwt = (char *) jwt, .expires = expires };
    cr_assert_eq(token_cache_put(c, domain, role, &t), 0);
}

static int list_one(const char *domain, const char *role, const token_minted *t, void *userdata)
{
    char *text = userdata;
    size_t n = strlen(text);
    (void) snprintf(text + n, 512 - n, "%s/%s=%s@%llu ", domain, role, t->jwt,
                    (unsigned long long) ((t->expires - T0) / KEEL_USEC_PER_SEC));
    return 0;
}

static const char *listed(token_cache *c)
{
    static char text[512];
    text[0] = '\0';
    cr_assert_eq(token_cache_foreach(c, list_one, text), 0);
    return text;
}

/* A cache of three valid tokens and one expired by T0, most recently used first: a, b, c. */
static token_cache *three(void)
{
    token_cache *c = token_cache_new(10, no_mint, NULL);
    put(c, "a", "reader", "token-a", T0 + HOUR);
    put(c, "b", "writer", "token-b with a space", T0 + 2 * HOUR);
    put(c, "gone", "r", "token-gone", T0);
    put(c, "c", "reader", "token-c", T0 + 30);
    return c;
}

/* The payload tests: the cache three() (before) and what it keeps at T0, and an empty cache for the next start (after). */
static token_cache *before, *after;
static char buf[64];
static keel_strbuf sb;
static size_t count;

static void payload_setup(void)
{
    before = three();
    after = token_cache_new(10, no_mint, NULL);
    sb = KEEL_STRBUF_INIT_GROWABLE(buf);
    cr_assert_eq(token_kept_encode(before, SRC, T0, KEEL_FDSTORE_SIZE_MAX, &sb, &count), 0);
}

static void payload_teardown(void)
{
    keel_strbuf_done(&sb);
    token_cache_free(before);
    token_cache_free(after);
}

TestSuite(token_kept_payload, .init = payload_setup, .fini = payload_teardown, .timeout = 60);

Test(token_kept_payload, round_trip_in_order_without_expired_tokens)
{
    cr_assert_eq(count, 3, "the expired one is not kept");
    token_kept_stats st;
    cr_assert_eq(token_kept_decode(after, sb.buf, sb.len, SRC, T0, &st), 0);
    cr_assert_eq(st.restored, 3);
    cr_assert_eq(st.expired + st.skipped, 0);
    cr_assert_str_eq(listed(after), "a/reader=token-a@3600 b/writer=token-b with a space@7200 c/reader=token-c@0 ");
}

Test(token_kept_payload, what_expired_since_is_dropped_and_what_is_cached_stays)
{
    token_cache_free(after);
    after = token_cache_new(2, no_mint, NULL);
    put(after, "b", "writer", "newer-b", T0 + 3 * HOUR); /* a request came first */
    token_kept_stats st;
    cr_assert_eq(token_kept_decode(after, sb.buf, sb.len, SRC, T0 + 60 * KEEL_USEC_PER_SEC, &st), 0);
    cr_assert_eq(st.restored, 1);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.expired, 1, "c expired 30 s after T0");
    cr_assert_str_eq(listed(after), "b/writer=newer-b@10800 a/reader=token-a@3600 ");
}

Test(token_kept_payload, the_most_recently_used_are_kept_when_they_do_not_all_fit)
{
    size_t one = 4 + strlen(SRC) + 4 + 3 * 4 + strlen("a") + strlen("reader") + strlen("token-a") + 8;
    keel_strbuf_done(&sb);
    sb = KEEL_STRBUF_INIT_GROWABLE(buf);
    cr_assert_eq(token_kept_encode(before, SRC, T0, one, &sb, &count), 0);
    cr_assert_eq(count, 1);
    cr_assert_eq(sb.len, one);
    token_kept_stats st;
    cr_assert_eq(token_kept_decode(after, sb.buf, sb.len, SRC, T0, &st), 0);
    cr_assert_str_eq(listed(after), "a/reader=token-a@3600 ");
    cr_assert_eq(token_kept_encode(before, SRC, T0, 8, &sb, &count), -E2BIG);
}

Test(token_kept_payload, tokens_of_another_issuer_client_or_scope_are_dropped)
{
    token_kept_stats st = { .restored = 99 };
    const char *others[] = { "oauth2 https://127.0.0.1:9443/token agent {domain}:role.{role}",
                             "oauth2 https://127.0.0.1:8443/token other {domain}:role.{role}",
                             "oauth2 https://127.0.0.1:8443/token agent {domain}.{role}", "local" };
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(token_kept_decode(after, sb.buf, sb.len, others[i], T0, &st), -EREMCHG, "%s", others[i]);
    cr_assert_str_eq(listed(after), "");
    cr_assert_eq(st.restored, 99, "written only on success");
    token_provider_settings p = { .provider = TOKEN_PROVIDER_OAUTH2,
                                  .oauth2 = { .token_url = (char *) "https://127.0.0.1:8443/token",
                                              .client_id = (char *) "agent",
                                              .scope = (char *) "{domain}:role.{role}" } };
    _cleanup_free_ char *source = NULL, *local = NULL;
    cr_assert_eq(token_kept_source(&p, &source), 0);
    cr_assert_str_eq(source, SRC);
    p.provider = TOKEN_PROVIDER_LOCAL;
    cr_assert_eq(token_kept_source(&p, &local), 0);
    cr_assert_str_eq(local, "local");
}

Test(token_kept_payload, every_truncation_and_any_trailing_byte_are_malformed_and_put_nothing)
{
    token_kept_stats st;
    for (size_t n = 0; n < sb.len; n++) {
        _cleanup_free_ char *cut = malloc(n + 1); /* its own allocation: ASan sees a read past it */
        memcpy(cut, sb.buf, n);
        cr_assert_eq(token_kept_decode(after, cut, n, SRC, T0, &st), -EBADMSG, "%zu of %zu bytes", n, sb.len);
    }
    keel_strbuf_appendn(&sb, "x", 1);
    cr_assert_eq(token_kept_decode(after, sb.buf, sb.len, SRC, T0, &st), -EBADMSG);
    /* A size past the end, and a NUL inside a string. */
    sb.len--;
    uint32_t huge = UINT32_MAX;
    memcpy(sb.buf, &huge, sizeof huge);
    cr_assert_eq(token_kept_decode(after, sb.buf, sb.len, SRC, T0, &st), -EBADMSG);
    uint32_t n = (uint32_t) strlen(SRC);
    memcpy(sb.buf, &n, sizeof n);
    sb.buf[4 + strlen(SRC) + 4 + 4] = '\0'; /* the first domain */
    cr_assert_eq(token_kept_decode(after, sb.buf, sb.len, SRC, T0, &st), -EBADMSG);
    cr_assert_str_eq(listed(after), "");
}
