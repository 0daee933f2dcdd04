/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/metrics.h>

/*
 * The token cache: one token per (domain, role), a bounded LRU, thread-safe. The HTTP polling
 * thread and the refresh task share it. A miss mints through the cache's mint handler with no
 * lock held, and only once for any number of concurrent misses of one key (single-flight): the
 * other callers wait for that flight and take its result, unless the key's token is still valid
 * and of the current key, which they are answered at once. A failed flight leaves the token it
 * meant to replace in place, and it is served for as long as it is valid.
 */
typedef struct token_cache token_cache;

/* A token and when it expires (CLOCK_REALTIME µs). */
typedef struct token_minted {
    char *jwt; /* owned */
    keel_usec_t expires;
} token_minted;

/* Frees what @t owns and empties it. */
void token_minted_done(token_minted *t);

/* Makes a token for @domain and @role at @now (CLOCK_REALTIME µs) into *@ret; 0 or a negative errno.
 * Called with no lock held, from whichever thread missed; must be thread-safe. */
typedef int (*token_mint_handler_t)(const char *domain, const char *role, keel_usec_t now, void *userdata, token_minted *ret);

/* A token is a hit only while it has more than this left; with less, a request mints again, and
 * is answered the old token only while another thread's flight replaces it or when its own fails. */
#define TOKEN_CACHE_MIN_LEFT (60 * KEEL_USEC_PER_SEC)
/* While another thread's flight replaces a token, the old one is answered at once only with more
 * than this left: a client handed a token about to expire would fail soon after, and the flight
 * (a mint: well under a millisecond) is the better wait. */
#define TOKEN_CACHE_FLIGHT_MIN_LEFT (10 * KEEL_USEC_PER_SEC)

/* Series the cache keeps up to date (owned by a registry; any may be NULL). */
typedef struct token_cache_metrics {
    keel_counter *hits, *misses, *mints, *mint_failures;
    keel_gauge *entries, *bytes;
} token_cache_metrics;

typedef struct token_cache_stats {
    uint64_t hits, misses, mints, mint_failures;
    size_t entries, bytes;
} token_cache_stats;

/* A cache of at most @capacity (>= 1) keys minting with @mint. NULL when out of memory. */
token_cache *token_cache_new(size_t capacity, token_mint_handler_t mint, void *userdata);
/* Accepts NULL; returns NULL. No other thread may use @c any more. */
token_cache *token_cache_free(token_cache *c);
/* Sets the series to update; call before sharing @c with other threads. */
void token_cache_set_metrics(token_cache *c, const token_cache_metrics *m);

/*
 * A token for (@domain, @role) at @now into *@ret (a copy, the caller's): the cached one while it
 * has more than TOKEN_CACHE_MIN_LEFT left and was minted with the current key generation, else a
 * new one (single-flight). While another thread mints the pair (a request or
 * token_cache_refresh()), a cached token of the current key generation with more than
 * TOKEN_CACHE_FLIGHT_MIN_LEFT left is answered at once; other callers wait for the flight.
 * Returns 0; -ENOMEM; or, when the flight failed and no valid token is cached, the mint handler's
 * error.
 */
int token_cache_get(token_cache *c, const char *domain, const char *role, keel_usec_t now, token_minted *ret);

/* token_cache_get() when it would answer at once (a hit); -EWOULDBLOCK when it would mint or wait
 * for a flight (nothing is counted then: the token_cache_get() that follows counts the miss). */
int token_cache_peek(token_cache *c, const char *domain, const char *role, keel_usec_t now, token_minted *ret);

/*
 * Re-mints every cached token at @now, one flight per key (a key already in flight is left to
 * it). Tokens whose re-mint fails stay cached. Returns the number re-minted and sets *@ret_failed
 * (may be NULL) to the number that failed, or -ENOMEM.
 */
int token_cache_refresh(token_cache *c, keel_usec_t now, size_t *ret_failed);

/*
 * Tells the cache which key signs now. When @kid differs from the last one given, every cached
 * token turns stale: the next request for it mints again (and falls back to the stale token,
 * still valid through the previous key, if that fails). Returns true when the key changed.
 */
bool token_cache_rekey(token_cache *c, const char *kid);

/*
 * Puts a copy of @t in the cache for (@domain, @role) as a token of the current key generation:
 * one kept from before a restart. It goes behind every other entry (the least recently used),
 * so that tokens put in the order token_cache_foreach() gave them keep their order, and it evicts
 * nothing. Returns 0; -EEXIST when the pair is cached already (a request came first), -ENOSPC when
 * the cache is full, -ENOMEM.
 */
int token_cache_put(token_cache *c, const char *domain, const char *role, const token_minted *t);

/* Called for each cached token (@t borrowed), with the cache's lock held: must not call into it. */
typedef int (*token_cache_visit_handler_t)(const char *domain, const char *role, const token_minted *t, void *userdata);

/* Calls @fn for every pair that holds a token (valid or not), most recently used first, until @fn
 * returns nonzero; returns that, or 0. Blocks every other caller meanwhile. */
int token_cache_foreach(token_cache *c, token_cache_visit_handler_t fn, void *userdata);

/* A consistent snapshot of the counters. */
void token_cache_get_stats(token_cache *c, token_cache_stats *ret);
