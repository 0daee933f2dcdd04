/* SPDX-License-Identifier: MIT */
/*
 * The token cache across a restart (kept.h, docs/decisions/0020). Only an OAuth2 issuer's tokens
 * are kept: they cost a round trip to another server each, while the agent's own are a signature
 * of well under a millisecond, and one restored from before a restart would skip a change of
 * token.expiry or token.issuer made meanwhile. The blob's key is derived from the agent's private
 * key, so a start with another key (another state directory, a key replaced) refuses what an
 * earlier one kept.
 */
#include <stdio.h>

#include <openssl/core_names.h>

#include <keel/fdstore.h>

#include "kept.h"
#include "openssl-util.h"
#include "token-service.h"

/* Never changes: a new label would refuse every cache kept before (as another key does). */
static const char KEY_LABEL[] = "keel token cache kept across a restart";

int token_kept_source(const token_provider_settings *p, char **ret)
{
    const oauth2_config *o = &p->oauth2;
    char *s = p->provider == TOKEN_PROVIDER_OAUTH2 ? keel_strdup_printf("oauth2 %s %s %s", o->token_url, o->client_id, o->scope)
                                                   : strdup("local");
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

int token_kept_key(EVP_PKEY *key, uint8_t ret[TOKEN_KEPT_KEY_SIZE])
{
    const char *param = EVP_PKEY_is_a(key, "EC")    ? OSSL_PKEY_PARAM_PRIV_KEY
                        : EVP_PKEY_is_a(key, "RSA") ? OSSL_PKEY_PARAM_RSA_D
                                                    : NULL;
    _cleanup_(BN_freep) BIGNUM *secret = NULL;
    if (!param)
        return -EINVAL;
    if (EVP_PKEY_get_bn_param(key, param, &secret) != 1)
        return -EIO;
    int n = BN_num_bytes(secret);
    uint8_t buf[1024]; /* an RSA exponent of up to 8192 bits */
    size_t size = 0;
    int r = n > 0 && (size_t) n <= sizeof buf && BN_bn2bin(secret, buf) == n ? 0 : -EIO;
    if (r >= 0 && !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, buf, (size_t) n, (const unsigned char *) KEY_LABEL,
                             sizeof KEY_LABEL - 1, ret, TOKEN_KEPT_KEY_SIZE, &size))
        r = -EIO;
    explicit_bzero(buf, sizeof buf);
    BN_clear(secret);
    return r < 0 || size != TOKEN_KEPT_KEY_SIZE ? -EIO : 0;
}

/* ---- the payload ------------------------------------------------------------------------------ */

static void put_string(keel_strbuf *sb, const char *s)
{
    uint32_t n = (uint32_t) strlen(s);
    keel_strbuf_appendn(sb, (const char *) &n, sizeof n);
    keel_strbuf_appendn(sb, s, n);
}

typedef struct encoder {
    keel_strbuf *sb;
    keel_usec_t now;
    size_t max, count;
} encoder;

static int encode_one(const char *domain, const char *role, const token_minted *t, void *userdata)
{
    encoder *e = userdata;
    size_t size = 3 * sizeof(uint32_t) + strlen(domain) + strlen(role) + strlen(t->jwt) + sizeof t->expires;
    if (t->expires <= e->now)
        return 0;
    if (e->sb->len + size > e->max) /* the least recently used are the ones left out */
        return 1;
    put_string(e->sb, domain);
    put_string(e->sb, role);
    put_string(e->sb, t->jwt);
    keel_strbuf_appendn(e->sb, (const char *) &t->expires, sizeof t->expires);
    e->count++;
    return e->sb->truncated ? -ENOMEM : 0;
}

int token_kept_encode(token_cache *c, const char *source, keel_usec_t now, size_t max, keel_strbuf *sb, size_t *ret_count)
{
    encoder e = { .sb = sb, .now = now, .max = max };
    uint32_t count = 0;
    if (2 * sizeof count + strlen(source) > max)
        return -E2BIG;
    put_string(sb, source);
    size_t at = sb->len;
    keel_strbuf_appendn(sb, (const char *) &count, sizeof count); /* written once known */
    int r = sb->truncated ? -ENOMEM : token_cache_foreach(c, encode_one, &e);
    if (r < 0)
        return r;
    count = (uint32_t) e.count;
    memcpy(sb->buf + at, &count, sizeof count);
    *ret_count = e.count;
    return 0;
}

/* Reads what token_kept_encode() wrote, never past the end. */
typedef struct decoder {
    const uint8_t *p, *end;
} decoder;

/* The next @n bytes into @ret, or false past the end. */
static bool take(decoder *d, void *ret, size_t n)
{
    if ((size_t) (d->end - d->p) < n)
        return false;
    memcpy(ret, d->p, n);
    d->p += n;
    return true;
}

/* The next string, NUL-terminated, into *@ret (free() it), or false past the end or with a NUL in it. */
static bool take_string(decoder *d, char **ret)
{
    uint32_t n = 0;
    if (!take(d, &n, sizeof n) || (size_t) (d->end - d->p) < n || memchr(d->p, '\0', n))
        return false;
    *ret = strndup((const char *) d->p, n);
    d->p += n;
    return *ret != NULL;
}

typedef struct kept_token {
    char *domain, *role;
    token_minted token;
} kept_token;

static void kept_token_done(kept_token *k)
{
    free(k->domain);
    free(k->role);
    token_minted_done(&k->token);
    *k = (kept_token){ 0 };
}

static bool take_token(decoder *d, kept_token *ret)
{
    return take_string(d, &ret->domain) && take_string(d, &ret->role) && take_string(d, &ret->token.jwt) &&
           take(d, &ret->token.expires, sizeof ret->token.expires);
}

/* The payload is checked whole before anything goes into the cache. */
static int check(const void *payload, size_t size, const char *source)
{
    decoder d = { .p = payload, .end = (const uint8_t *) payload + size };
    _cleanup_free_ char *from = NULL;
    uint32_t count = 0;
    if (!take_string(&d, &from) || !take(&d, &count, sizeof count))
        return -EBADMSG;
    for (; d.p < d.end && count > 0; count--) {
        kept_token k = { 0 };
        bool ok = take_token(&d, &k);
        kept_token_done(&k);
        if (!ok)
            return -EBADMSG;
    }
    if (count > 0 || d.p != d.end)
        return -EBADMSG;
    return streq(from, source) ? 0 : -EREMCHG;
}

int token_kept_decode(token_cache *c, const void *payload, size_t size, const char *source, keel_usec_t now, token_kept_stats *ret)
{
    decoder d = { .p = payload, .end = (const uint8_t *) payload + size };
    token_kept_stats st = { 0 };
    uint32_t n = 0;
    int r = check(payload, size, source);
    if (r < 0)
        return r;
    (void) take(&d, &n, sizeof n);
    d.p += n;
    (void) take(&d, &n, sizeof n); /* the count, checked */
    while (d.p < d.end && r >= 0) {
        kept_token k = { 0 };
        (void) take_token(&d, &k);
        r = k.token.expires <= now ? 1 /* expired: dropped */ : token_cache_put(c, k.domain, k.role, &k.token);
        st.restored += r == 0;
        st.expired += r == 1;
        st.skipped += r == -EEXIST || r == -ENOSPC;
        r = r == -ENOMEM ? r : 0;
        kept_token_done(&k);
    }
    *ret = st;
    return r;
}

/* ---- in the service --------------------------------------------------------------------------- */

/* The key for the current credential's private key. */
static int current_key(token_service *token, uint8_t ret[TOKEN_KEPT_KEY_SIZE])
{
    _cleanup_(credential_unrefp) credential *c = identity_get(token->identity, IDENTITY_CURRENT);
    return c ? token_kept_key(credential_key(c), ret) : -ENOKEY;
}

/* Milliseconds since @t0 (keel_now()). */
static double ms_since(keel_usec_t t0)
{
    return (double) (keel_now() - t0) / 1e3;
}

static void restore(token_service *token, const void *payload, size_t size, keel_usec_t t0)
{
    _cleanup_free_ char *source = NULL;
    token_kept_stats st = { 0 };
    int r = token_kept_source(&token->provider, &source);
    if (r >= 0)
        r = token_kept_decode(token->cache, payload, size, source, keel_now_realtime(), &st);
    if (r == -EREMCHG)
        keel_log_service("token", KEEL_LOG_INFO,
                         "Dropped the tokens kept by the last stop: token.provider or token.oauth2 (issuer, client, scope) changed "
                         "since");
    else if (r < 0)
        keel_log_service_errno("token", KEEL_LOG_WARNING, r,
                               "Refused the tokens kept by the last stop: %m; starting with an empty cache");
    else
        keel_log_service("token", KEEL_LOG_INFO,
                         "Restored %zu tokens kept by the last stop (%zu expired, %zu skipped; %zu bytes in %.2f ms)", st.restored,
                         st.expired, st.skipped, size, ms_since(t0));
}

void token_restore_cache(token_service *token)
{
    uint8_t key[TOKEN_KEPT_KEY_SIZE];
    char why[KEEL_FDSTORE_ERROR_MAX] = "";
    _cleanup_free_ void *payload = NULL;
    size_t size = 0;
    keel_usec_t t0 = keel_now();
    token->restored = true;
    if (!keel_fdstore_passed(TOKEN_KEPT_NAME)) /* a first start: no key to derive (a first HMAC costs ~0.2 ms) */
        return;
    int r = current_key(token, key);
    if (r >= 0)
        r = keel_fdstore_load(TOKEN_KEPT_NAME, key, sizeof key, &payload, &size, why);
    explicit_bzero(key, sizeof key);
    if (r == -ENOENT)
        return;
    if (r < 0)
        keel_log_service_errno("token", KEEL_LOG_WARNING, r,
                               "Refused the tokens kept by the last stop: %s; starting with an empty cache",
                               why[0] ? why : strerror(-r));
    else
        restore(token, payload, size, t0);
}

void token_keep_cache(token_service *token)
{
    char buf[4096];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(buf);
    _cleanup_free_ char *source = NULL;
    uint8_t key[TOKEN_KEPT_KEY_SIZE];
    size_t count = 0;
    keel_usec_t t0 = keel_now();
    /* Not after a start that never reached the restore (nor for `keel config`, whose stop runs
     * without a start), and never the agent's own tokens. */
    if (!token->restored || !token->cache || token->provider.provider != TOKEN_PROVIDER_OAUTH2)
        return;
    int r = token_kept_source(&token->provider, &source);
    if (r >= 0)
        r = token_kept_encode(token->cache, source, keel_now_realtime(), KEEL_FDSTORE_SIZE_MAX, &sb, &count);
    if (r >= 0 && count > 0 && (r = current_key(token, key)) >= 0)
        r = keel_fdstore_save(TOKEN_KEPT_NAME, sb.buf, sb.len, key, sizeof key);
    explicit_bzero(key, sizeof key);
    if (r < 0)
        keel_log_service_errno("token", KEEL_LOG_WARNING, r, "Failed to keep the token cache for the next start: %m, ignoring");
    else if (r > 0)
        keel_log_service("token", KEEL_LOG_INFO, "Kept %zu tokens for the next start (%zu bytes in %.2f ms)", count, sb.len,
                         ms_since(t0));
    keel_strbuf_done(&sb);
}
