/* SPDX-License-Identifier: MIT */
/*
 * The token cache (cache.h): a chained hash table for lookups and a doubly linked list in use
 * order for eviction, one mutex and one condition variable for the whole cache. Everything here
 * is a few pointer moves under the lock; minting, the only slow step, runs outside it.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>

#include <keel/util.h>

#include "cache.h"

typedef struct entry entry;
struct entry {
    entry *hnext;       /* hash chain */
    entry *prev, *next; /* use order: head most recent */
    char *domain, *role;
    token_minted token;  /* jwt NULL before the first successful mint */
    keel_usec_t minted;  /* the clock when the token was minted here (its iat and nbf); 0 when put */
    uint64_t generation; /* the cache's key generation when the token's flight began */
    uint64_t flights;    /* flights finished: waiters watch it change */
    int error;           /* the last flight's result */
    bool minting;
    unsigned waiters; /* callers waiting for this entry's flight: it cannot be evicted meanwhile */
    size_t bytes;
};

struct token_cache {
    pthread_mutex_t lock;
    pthread_cond_t flown; /* a flight finished */
    token_mint_handler_t mint;
    void *userdata;
    size_t capacity, n_buckets;
    entry **buckets;
    entry *head, *tail;
    uint64_t generation;
    char kid[64];
    token_cache_stats stats;
    token_cache_metrics metrics;
};

void token_minted_done(token_minted *t)
{
    free(t->jwt);
    *t = (token_minted){ 0 };
}

/* ---- table and list --------------------------------------------------------------------------- */

static size_t hash(const char *domain, const char *role)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over "domain\0role" */
    for (const char *p = domain;; p++) {
        h = (h ^ (unsigned char) *p) * 1099511628211ULL;
        if (!*p)
            break;
    }
    for (const char *p = role; *p; p++)
        h = (h ^ (unsigned char) *p) * 1099511628211ULL;
    return (size_t) h;
}

static entry **slot_of(token_cache *c, const char *domain, const char *role)
{
    entry **p = &c->buckets[hash(domain, role) & (c->n_buckets - 1)];
    while (*p && !(streq((*p)->domain, domain) && streq((*p)->role, role)))
        p = &(*p)->hnext;
    return p;
}

static void list_unlink(token_cache *c, entry *e)
{
    *(e->prev ? &e->prev->next : &c->head) = e->next;
    *(e->next ? &e->next->prev : &c->tail) = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(token_cache *c, entry *e)
{
    e->next = c->head;
    e->prev = NULL;
    *(c->head ? &c->head->prev : &c->tail) = e;
    c->head = e;
}

static void account(token_cache *c, entry *e, size_t bytes)
{
    c->stats.bytes = c->stats.bytes - e->bytes + bytes;
    e->bytes = bytes;
    keel_gauge_set(c->metrics.bytes, (double) c->stats.bytes);
    keel_gauge_set(c->metrics.entries, (double) c->stats.entries);
}

static size_t entry_bytes(const entry *e)
{
    return sizeof *e + strlen(e->domain) + strlen(e->role) + 2 + (e->token.jwt ? strlen(e->token.jwt) + 1 : 0);
}

static void entry_remove(token_cache *c, entry *e)
{
    entry **p = slot_of(c, e->domain, e->role);
    assert(*p == e);
    *p = e->hnext;
    list_unlink(c, e);
    c->stats.entries--;
    account(c, e, 0);
    token_minted_done(&e->token);
    free(e->domain);
    free(e);
}

/* Evicts least recently used entries until there is room for one more. Entries in flight or
 * waited for are skipped: for that moment the cache may hold up to one entry per minting thread
 * more than its capacity. */
static void make_room(token_cache *c)
{
    entry *e = c->tail;
    while (e && c->stats.entries >= c->capacity) {
        entry *prev = e->prev;
        if (!e->minting && e->waiters == 0)
            entry_remove(c, e);
        e = prev;
    }
}

static void list_push_back(token_cache *c, entry *e)
{
    e->prev = c->tail;
    e->next = NULL;
    *(c->tail ? &c->tail->next : &c->head) = e;
    c->tail = e;
}

/* A new entry for the key, in the table and counted; the caller puts it in the use order. */
static entry *entry_new(token_cache *c, const char *domain, const char *role)
{
    size_t nd = strlen(domain) + 1, nr = strlen(role) + 1;
    entry *e = malloc(sizeof *e);
    char *key = malloc(nd + nr);
    if (!e || !key) {
        free(e);
        free(key);
        return NULL;
    }
    *e = (entry){ .domain = memcpy(key, domain, nd), .role = memcpy(key + nd, role, nr) };
    entry **p = slot_of(c, domain, role);
    *p = e;
    c->stats.entries++;
    return e;
}

static entry *entry_add(token_cache *c, const char *domain, const char *role)
{
    make_room(c);
    entry *e = entry_new(c, domain, role);
    if (e) {
        list_push_front(c, e);
        account(c, e, entry_bytes(e));
    }
    return e;
}

/* ---- flights ---------------------------------------------------------------------------------- */

/* Not expired: what a caller may be answered when nothing better is to be had. */
static bool valid(const entry *e, keel_usec_t now)
{
    return e->token.jwt && e->token.expires > now;
}

/* A hit: minted with the current key, with more than TOKEN_CACHE_MIN_LEFT left, and not after
 * @now. A token minted before a step back of the wall clock is valid only from a moment still to
 * come by the same clock (its nbf and iat): a verifier on this host would refuse it, so it is
 * minted again. A second of slack: a caller reads the clock before it takes the lock, so a flight
 * can end after its @now, and a token's times are whole seconds. */
static bool fresh(const token_cache *c, const entry *e, keel_usec_t now)
{
    return valid(e, now) && e->generation == c->generation && e->token.expires - now > TOKEN_CACHE_MIN_LEFT &&
           e->minted <= now + KEEL_USEC_PER_SEC;
}

/* While another thread mints @e's successor, its token is answered while it has some life left and
 * is of the current key: waiting would only trade it for a newer one, and blocks the caller's
 * thread (the server's polling thread). A token of the previous key is no answer here; it is the
 * fallback for when the new key cannot sign, which the flight will tell. */
static bool servable_in_flight(const token_cache *c, const entry *e, keel_usec_t now)
{
    return e->minting && valid(e, now) && e->generation == c->generation && e->token.expires - now > TOKEN_CACHE_FLIGHT_MIN_LEFT;
}

/* Mints for @e with the lock released. Called and returns with the lock held. */
static int fly(token_cache *c, entry *e, keel_usec_t now)
{
    token_minted t = { 0 };
    uint64_t generation = c->generation;
    e->minting = true;
    (void) pthread_mutex_unlock(&c->lock);
    int r = c->mint(e->domain, e->role, now, c->userdata, &t);
    (void) pthread_mutex_lock(&c->lock);
    e->minting = false;
    e->error = r < 0 ? r : 0;
    e->flights++;
    if (r >= 0) {
        token_minted_done(&e->token);
        e->token = t;
        e->minted = now;
        e->generation = generation;
        account(c, e, entry_bytes(e));
    }
    c->stats.mints += r >= 0;
    c->stats.mint_failures += r < 0;
    keel_counter_add(r >= 0 ? c->metrics.mints : c->metrics.mint_failures, 1);
    (void) pthread_cond_broadcast(&c->flown);
    return e->error;
}

static void wait_flight(token_cache *c, entry *e)
{
    uint64_t flights = e->flights;
    e->waiters++;
    while (e->flights == flights)
        (void) pthread_cond_wait(&c->flown, &c->lock);
    e->waiters--;
}

/* What a miss answers after its flight: the token if it is still valid (the new one, or the old
 * one when the flight failed), else the flight's error. */
static int answer(const entry *e, keel_usec_t now, token_minted *ret)
{
    if (!valid(e, now))
        return e->error < 0 ? e->error : -ESTALE;
    char *jwt = strdup(e->token.jwt);
    if (!jwt)
        return -ENOMEM;
    *ret = (token_minted){ .jwt = jwt, .expires = e->token.expires };
    return 0;
}

static int hit(token_cache *c, entry *e, keel_usec_t now, token_minted *ret)
{
    c->stats.hits++;
    keel_counter_add(c->metrics.hits, 1);
    list_unlink(c, e);
    list_push_front(c, e);
    return answer(e, now, ret);
}

static int get_locked(token_cache *c, const char *domain, const char *role, keel_usec_t now, token_minted *ret)
{
    entry *e = *slot_of(c, domain, role);
    if (e && (fresh(c, e, now) || servable_in_flight(c, e, now)))
        return hit(c, e, now, ret);
    c->stats.misses++;
    keel_counter_add(c->metrics.misses, 1);
    if (!e && !(e = entry_add(c, domain, role)))
        return -ENOMEM;
    if (e->minting)
        wait_flight(c, e);
    else
        (void) fly(c, e, now);
    return answer(e, now, ret);
}

int token_cache_get(token_cache *c, const char *domain, const char *role, keel_usec_t now, token_minted *ret)
{
    assert(c && domain && role && ret);
    (void) pthread_mutex_lock(&c->lock);
    int r = get_locked(c, domain, role, now, ret);
    (void) pthread_mutex_unlock(&c->lock);
    return r;
}

int token_cache_peek(token_cache *c, const char *domain, const char *role, keel_usec_t now, token_minted *ret)
{
    assert(c && domain && role && ret);
    (void) pthread_mutex_lock(&c->lock);
    entry *e = *slot_of(c, domain, role);
    int r = e && (fresh(c, e, now) || servable_in_flight(c, e, now)) ? hit(c, e, now, ret) : -EWOULDBLOCK;
    (void) pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---- refresh ---------------------------------------------------------------------------------- */

/* The keys of every entry holding a token, as "domain\0role" strings, into *@ret. */
static int snapshot_keys(token_cache *c, char ***ret)
{
    _cleanup_strv_free_ char **keys = NULL;
    for (entry *e = c->head; e; e = e->next) {
        if (!e->token.jwt)
            continue;
        size_t nd = strlen(e->domain) + 1, nr = strlen(e->role) + 1;
        char *k = malloc(nd + nr);
        if (!k)
            return -ENOMEM;
        memcpy(k, e->domain, nd);
        memcpy(k + nd, e->role, nr);
        if (keel_strv_push(&keys, k) < 0)
            return -ENOMEM;
    }
    *ret = TAKE_PTR(keys);
    return 0;
}

int token_cache_refresh(token_cache *c, keel_usec_t now, size_t *ret_failed)
{
    assert(c);
    _cleanup_strv_free_ char **keys = NULL;
    size_t ok = 0, failed = 0;
    (void) pthread_mutex_lock(&c->lock);
    int r = snapshot_keys(c, &keys);
    for (size_t i = 0; r >= 0 && keys && keys[i]; i++) {
        /* Looked up again: the lock was released during the last flight. */
        entry *e = *slot_of(c, keys[i], keys[i] + strlen(keys[i]) + 1);
        if (!e || e->minting)
            continue;
        if (fly(c, e, now) < 0)
            failed++;
        else
            ok++;
    }
    (void) pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    if (ret_failed)
        *ret_failed = failed;
    return (int) KEEL_MIN(ok, (size_t) INT32_MAX);
}

/* ---- across a restart --------------------------------------------------------------------------- */

int token_cache_put(token_cache *c, const char *domain, const char *role, const token_minted *t)
{
    assert(c && domain && role && t && t->jwt);
    char *jwt = strdup(t->jwt);
    if (!jwt)
        return -ENOMEM;
    (void) pthread_mutex_lock(&c->lock);
    entry *e = *slot_of(c, domain, role);
    int r = e ? -EEXIST : c->stats.entries >= c->capacity ? -ENOSPC : 0;
    if (r >= 0 && !(e = entry_new(c, domain, role)))
        r = -ENOMEM;
    if (r >= 0) {
        e->token = (token_minted){ .jwt = TAKE_PTR(jwt), .expires = t->expires };
        e->generation = c->generation;
        list_push_back(c, e);
        account(c, e, entry_bytes(e));
    }
    (void) pthread_mutex_unlock(&c->lock);
    free(jwt);
    return r;
}

int token_cache_foreach(token_cache *c, token_cache_visit_handler_t fn, void *userdata)
{
    assert(c && fn);
    int r = 0;
    (void) pthread_mutex_lock(&c->lock);
    for (entry *e = c->head; e && r == 0; e = e->next)
        if (e->token.jwt)
            r = fn(e->domain, e->role, &e->token, userdata);
    (void) pthread_mutex_unlock(&c->lock);
    return r;
}

bool token_cache_rekey(token_cache *c, const char *kid)
{
    assert(c && kid);
    (void) pthread_mutex_lock(&c->lock);
    bool changed = !streq(c->kid, kid);
    if (changed) {
        (void) snprintf(c->kid, sizeof c->kid, "%s", kid);
        c->generation++;
    }
    (void) pthread_mutex_unlock(&c->lock);
    return changed;
}

void token_cache_get_stats(token_cache *c, token_cache_stats *ret)
{
    (void) pthread_mutex_lock(&c->lock);
    *ret = c->stats;
    (void) pthread_mutex_unlock(&c->lock);
}

/* ---- life ------------------------------------------------------------------------------------- */

token_cache *token_cache_new(size_t capacity, token_mint_handler_t mint, void *userdata)
{
    assert(capacity >= 1 && mint);
    size_t n = 16;
    while (n < capacity && n < ((size_t) 1 << 20))
        n <<= 1;
    token_cache *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = (token_cache){ .mint = mint, .userdata = userdata, .capacity = capacity, .n_buckets = n };
    c->buckets = calloc(n, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    (void) pthread_mutex_init(&c->lock, NULL);
    (void) pthread_cond_init(&c->flown, NULL);
    return c;
}

void token_cache_set_metrics(token_cache *c, const token_cache_metrics *m)
{
    (void) pthread_mutex_lock(&c->lock);
    c->metrics = *m;
    keel_gauge_set(c->metrics.entries, (double) c->stats.entries);
    keel_gauge_set(c->metrics.bytes, (double) c->stats.bytes);
    (void) pthread_mutex_unlock(&c->lock);
}

token_cache *token_cache_free(token_cache *c)
{
    if (!c)
        return NULL;
    while (c->head)
        entry_remove(c, c->head);
    free(c->buckets);
    (void) pthread_cond_destroy(&c->flown);
    (void) pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}
