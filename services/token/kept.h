/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The token cache across a restart (docs/decisions/0020): as the token service stops, the tokens
 * an OAuth2 issuer gave it go to the service manager's file descriptor store
 * (keel_fdstore_save()), authenticated with a key derived from the agent's private key; as it
 * starts again, those still valid go back into the cache, so that `systemctl restart` asks the
 * issuer nothing for them. The payload is read by the build that wrote it only (the blob carries
 * the build id), so it is written in this machine's byte order:
 *
 *     u32 size, source       where the tokens came from (token_kept_source())
 *     u32 count              then for each token, most recently used first:
 *     u32 size, domain       u32 size, role       u32 size, token       u64 expiry (CLOCK_REALTIME µs)
 */

#include <stdint.h>

#include <openssl/evp.h>

#include <keel/strbuf.h>

#include "cache.h"
#include "oauth2.h"

/* The name the cache is kept under (FDNAME=). */
#define TOKEN_KEPT_NAME "token-cache"
/* Bytes of the key a kept cache is authenticated with. */
#define TOKEN_KEPT_KEY_SIZE 32

/* What tokens came from, which kept ones must match to be restored: "oauth2 URL client_id scope"
 * or "local", into *@ret (free() it). 0 or -ENOMEM. */
int token_kept_source(const token_provider_settings *p, char **ret);

/* The key a kept cache is authenticated with: HMAC-SHA256, keyed with @key's private number (an EC
 * key's scalar, an RSA key's private exponent, big-endian: the same however the key was encoded
 * or loaded), of a fixed label. 0, -EINVAL (another kind of key), -EIO. */
int token_kept_key(EVP_PKEY *key, uint8_t ret[TOKEN_KEPT_KEY_SIZE]);

/* Appends to the growable @sb the payload of @source and the tokens of @c valid at @now, most
 * recently used first, as many as keep it within @max bytes; their number into *@ret_count.
 * 0, -E2BIG when not even @source fits, -ENOMEM. */
int token_kept_encode(token_cache *c, const char *source, keel_usec_t now, size_t max, keel_strbuf *sb, size_t *ret_count);

/* What token_kept_decode() did with the tokens it found. */
typedef struct token_kept_stats {
    size_t restored; /* put into the cache */
    size_t expired;  /* expired by @now: dropped */
    size_t skipped;  /* cached already, or no room left */
} token_kept_stats;

/* Puts the tokens of the @size bytes of @payload (token_kept_encode()'s) that are valid at @now
 * into @c, in their order. Returns 0, -EBADMSG for a malformed payload (nothing is put then),
 * -EREMCHG when its source is not @source (the issuer, the client or the scope changed), -ENOMEM;
 * the counts into *@ret. */
int token_kept_decode(token_cache *c, const void *payload, size_t size, const char *source, keel_usec_t now, token_kept_stats *ret);
