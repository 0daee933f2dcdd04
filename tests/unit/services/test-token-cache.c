/* SPDX-License-Identifier: MIT */
/* services/token/cache.c: the LRU bound, the one-minute rule, single-flight, serving while a
 * refresh fails and while one flies. Also runs under ThreadSanitizer (make test-tsan). */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "helpers.h"
#include "testing.h"

TestSuite(token_cache, .timeout = 60);

#define HOUR   (3600 * KEEL_USEC_PER_SEC)
#define MINUTE (60 * KEEL_USEC_PER_SEC)
#define T0     ((keel_usec_t) 1700000000 * KEEL_USEC_PER_SEC)

/* A mint handler that counts, can be made slow or failing, and names each token after its pair
 * and its number. */
typedef struct fake {
    atomic_int mints;
    atomic_bool fail;
    atomic_int delay_ms;
    keel_usec_t lifetime;
} fake;

static int fake_mint(const char *domain, const char *role, keel_usec_t now, void *userdata, token_minted *ret)
{
    fake *f = userdata;
    if (atomic_load(&f->delay_ms))
        test_sleep_ms(atomic_load(&f->delay_ms));
    if (atomic_load(&f->fail))
        return -EIO;
    int n = atomic_fetch_add(&f->mints, 1) + 1;
    char buf[256];
    (void) snprintf(buf, sizeof buf, "%s/%s/%d", domain, role, n);
    *ret = (token_minted){ .jwt = strdup(buf), .expires = now + f->lifetime };
    return ret->jwt ? 0 : -ENOMEM;
}

/* Gets (domain, role) at @now and checks the token is @want (NULL: any); returns the result. */
static int get(token_cache *c, const char *domain, const char *role, keel_usec_t now, const char *want)
{
    token_minted t = { 0 };
    int r = token_cache_get(c, domain, role, now, &t);
    if (r >= 0 && want)
        cr_assert_str_eq(t.jwt, want);
    token_minted_done(&t);
    return r;
}

Test(token_cache, lru_keeps_at_most_capacity_and_evicts_the_least_recently_used)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(3, fake_mint, &f);
    cr_assert_eq(get(c, "a", "r", T0, "a/r/1"), 0);
    cr_assert_eq(get(c, "b", "r", T0, "b/r/2"), 0);
    cr_assert_eq(get(c, "c", "r", T0, "c/r/3"), 0);
    cr_assert_eq(get(c, "a", "r", T0, "a/r/1"), 0); /* a is now the most recent: b is the least */
    cr_assert_eq(get(c, "d", "r", T0, "d/r/4"), 0);
    token_cache_stats st;
    token_cache_get_stats(c, &st);
    cr_assert_eq(st.entries, (size_t) 3);
    cr_assert_eq(get(c, "a", "r", T0, "a/r/1"), 0); /* kept */
    cr_assert_eq(get(c, "b", "r", T0, "b/r/5"), 0); /* evicted, minted again; evicts c */
    cr_assert_eq(get(c, "c", "r", T0, "c/r/6"), 0);
    token_cache_get_stats(c, &st);
    cr_assert_eq(st.entries, (size_t) 3);
    cr_assert_eq(st.hits, (uint64_t) 2);
    cr_assert_eq(st.misses, (uint64_t) 6);
    cr_assert_eq(st.mints, (uint64_t) 6);
    cr_assert_geq(st.bytes, 3 * (strlen("a/r/1") + 4));
    token_cache_free(c);
}

Test(token_cache, domain_and_role_are_one_key)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    /* "ab"+"c" and "a"+"bc" are different pairs. */
    cr_assert_eq(get(c, "ab", "c", T0, "ab/c/1"), 0);
    cr_assert_eq(get(c, "a", "bc", T0, "a/bc/2"), 0);
    cr_assert_eq(get(c, "ab", "c", T0, "ab/c/1"), 0);
    token_cache_free(c);
}

Test(token_cache, served_while_more_than_a_minute_is_left)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    cr_assert_eq(get(c, "d", "r", T0 + HOUR - MINUTE - 1, "d/r/1"), 0); /* a minute and 1 µs left */
    cr_assert_eq(get(c, "d", "r", T0 + HOUR - MINUTE, "d/r/2"), 0);     /* exactly a minute: minted again */
    cr_assert_eq(atomic_load(&f.mints), 2);
    token_cache_free(c);
}

/* A step back of the wall clock makes a cached token valid only from a moment still to come (its
 * iat and nbf): the next request mints again. Within a second it is still a hit. */
Test(token_cache, a_token_minted_before_a_step_back_of_the_clock_is_minted_again)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    cr_assert_eq(get(c, "d", "r", T0 - KEEL_USEC_PER_SEC, "d/r/1"), 0, "a second back: still a hit");
    cr_assert_eq(get(c, "d", "r", T0 - 2 * HOUR, "d/r/2"), 0, "two hours back: minted again");
    cr_assert_eq(get(c, "d", "r", T0 - 2 * HOUR + MINUTE, "d/r/2"), 0);
    cr_assert_eq(atomic_load(&f.mints), 2);
    token_cache_free(c);
}

Test(token_cache, a_failed_refresh_leaves_the_valid_token_served)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    atomic_store(&f.fail, true);
    size_t failed = 0;
    cr_assert_eq(token_cache_refresh(c, T0 + 30 * MINUTE, &failed), 0);
    cr_assert_eq(failed, (size_t) 1);
    cr_assert_eq(get(c, "d", "r", T0 + 31 * MINUTE, "d/r/1"), 0); /* fresh: a hit */
    /* Under a minute left: the miss mints, fails, and still answers the valid token. */
    cr_assert_eq(get(c, "d", "r", T0 + HOUR - 30 * KEEL_USEC_PER_SEC, "d/r/1"), 0);
    /* Expired: the mint's error. */
    cr_assert_eq(get(c, "d", "r", T0 + HOUR, NULL), -EIO);
    atomic_store(&f.fail, false);
    cr_assert_eq(token_cache_refresh(c, T0 + HOUR, &failed), 1); /* the expired token is still cached: minted again */
    cr_assert_eq(get(c, "d", "r", T0 + HOUR, "d/r/2"), 0);
    token_cache_stats st;
    token_cache_get_stats(c, &st);
    cr_assert_eq(st.mint_failures, (uint64_t) 3);
    token_cache_free(c);
}

Test(token_cache, refresh_mints_every_cached_pair_again)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    cr_assert_eq(get(c, "a", "r", T0, "a/r/1"), 0);
    cr_assert_eq(get(c, "b", "r", T0, "b/r/2"), 0);
    size_t failed = 99;
    cr_assert_eq(token_cache_refresh(c, T0 + 30 * MINUTE, &failed), 2);
    cr_assert_eq(failed, (size_t) 0);
    /* The refreshed tokens run an hour from the refresh. */
    cr_assert_eq(get(c, "a", "r", T0 + 30 * MINUTE + HOUR - 2 * MINUTE, NULL), 0);
    cr_assert_eq(atomic_load(&f.mints), 4);
    token_cache_free(c);
}

Test(token_cache, a_new_key_makes_cached_tokens_stale_but_still_servable)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    cr_assert(token_cache_rekey(c, "k1"));
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    cr_assert_not(token_cache_rekey(c, "k1")); /* same key (a renewed certificate): nothing changes */
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    cr_assert(token_cache_rekey(c, "k2"));
    cr_assert_eq(get(c, "d", "r", T0, "d/r/2"), 0); /* minted again with the new key */
    cr_assert(token_cache_rekey(c, "k3"));
    atomic_store(&f.fail, true);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/2"), 0); /* the new key cannot sign: the old token is still valid */
    token_cache_free(c);
}

/* ---- single-flight ------------------------------------------------------------------------ */

#define THREADS 100

typedef struct crowd {
    token_cache *cache;
    pthread_barrier_t go;
    char tokens[THREADS][64];
    int results[THREADS];
    atomic_int next;
} crowd;

static void *crowd_member(void *userdata)
{
    crowd *w = userdata;
    int i = atomic_fetch_add(&w->next, 1);
    token_minted t = { 0 };
    (void) pthread_barrier_wait(&w->go);
    w->results[i] = token_cache_get(w->cache, "sports", "reader", T0, &t);
    if (t.jwt)
        (void) snprintf(w->tokens[i], sizeof w->tokens[i], "%s", t.jwt);
    token_minted_done(&t);
    return NULL;
}

static void run_crowd(crowd *w)
{
    pthread_t th[THREADS];
    cr_assert_eq(pthread_barrier_init(&w->go, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, crowd_member, w), 0);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    (void) pthread_barrier_destroy(&w->go);
}

Test(token_cache, a_hundred_concurrent_misses_mint_once)
{
    fake f = { .lifetime = HOUR, .delay_ms = 50 }; /* a slow mint: every thread arrives while it flies */
    static crowd w;
    w = (crowd){ .cache = token_cache_new(10, fake_mint, &f) };
    run_crowd(&w);
    cr_assert_eq(atomic_load(&f.mints), 1);
    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(w.results[i], 0);
        cr_assert_str_eq(w.tokens[i], "sports/reader/1");
    }
    token_cache_stats st;
    token_cache_get_stats(w.cache, &st);
    cr_assert_eq(st.hits + st.misses, (uint64_t) THREADS);
    cr_assert_eq(st.mints, (uint64_t) 1);
    token_cache_free(w.cache);
}

Test(token_cache, waiters_of_a_failed_flight_share_its_error)
{
    fake f = { .lifetime = HOUR, .delay_ms = 50, .fail = true };
    static crowd w;
    w = (crowd){ .cache = token_cache_new(10, fake_mint, &f) };
    run_crowd(&w);
    token_cache_stats st;
    token_cache_get_stats(w.cache, &st);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(w.results[i], -EIO);
    /* Flights only start once the one before ended, and every thread arrived within the first
     * (the barrier): far fewer flights than callers. */
    cr_assert_lt(st.mint_failures, (uint64_t) THREADS);
    cr_assert_eq(st.mints, (uint64_t) 0);
    token_cache_free(w.cache);
}

typedef struct refresher {
    token_cache *cache;
    keel_usec_t now;
    int result;
} refresher;

static void *run_refresh(void *userdata)
{
    refresher *rf = userdata;
    rf->result = token_cache_refresh(rf->cache, rf->now, NULL);
    return NULL;
}

Test(token_cache, a_request_without_a_valid_token_waits_for_the_refresh_flying_its_pair)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    atomic_store(&f.delay_ms, 200);
    keel_usec_t late = T0 + HOUR; /* expired: nothing to answer but the refresh's token */
    refresher rf = { .cache = c, .now = late };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_refresh, &rf), 0);
    test_sleep_ms(50); /* the refresh is in flight */
    cr_assert_eq(get(c, "d", "r", late, "d/r/2"), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(rf.result, 1);
    cr_assert_eq(atomic_load(&f.mints), 2);
    token_cache_free(c);
}

Test(token_cache, a_hit_does_not_wait_for_a_refresh)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    atomic_store(&f.delay_ms, 300);
    refresher rf = { .cache = c, .now = T0 };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_refresh, &rf), 0);
    test_sleep_ms(50);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0); /* the current token, at once */
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert_lt((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 100);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/2"), 0);
    token_cache_free(c);
}

/* ---- serving while a flight replaces the token ---------------------------------------------- */

/* A mint handler the test holds: once armed, each mint says it began and then waits until the
 * test lets it go, for 5 s at most, so a test whose caller waits for the flight fails instead of
 * hanging. */
typedef struct gate {
    fake f;
    atomic_bool armed;
    sem_t began, release;
} gate;

static int sem_wait_s(sem_t *s, int seconds)
{
    struct timespec until;
    (void) clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    int r;
    while ((r = sem_timedwait(s, &until)) < 0 && errno == EINTR)
        ;
    return r < 0 ? -errno : 0;
}

static int gated_mint(const char *domain, const char *role, keel_usec_t now, void *userdata, token_minted *ret)
{
    gate *g = userdata;
    if (atomic_load(&g->armed)) {
        (void) sem_post(&g->began);
        (void) sem_wait_s(&g->release, 5);
    }
    return fake_mint(domain, role, now, &g->f, ret);
}

static token_cache *gate_new(gate *g)
{
    *g = (gate){ .f = { .lifetime = HOUR } };
    cr_assert_eq(sem_init(&g->began, 0, 0), 0);
    cr_assert_eq(sem_init(&g->release, 0, 0), 0);
    return token_cache_new(10, gated_mint, g);
}

static keel_usec_t elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    (void) clock_gettime(CLOCK_MONOTONIC, &now);
    return (keel_usec_t) ((now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000);
}

Test(token_cache, a_valid_token_is_answered_at_once_while_a_refresh_flies_its_pair)
{
    static gate g;
    token_cache *c = gate_new(&g);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    keel_usec_t late = T0 + HOUR - 30 * KEEL_USEC_PER_SEC; /* under a minute left: not a hit, still valid */
    atomic_store(&g.armed, true);
    refresher rf = { .cache = c, .now = late };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_refresh, &rf), 0);
    cr_assert_eq(sem_wait_s(&g.began, 5), 0); /* the refresh is in flight, held by the test */
    struct timespec t0;
    (void) clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(get(c, "d", "r", late, "d/r/1"), 0); /* the old token: its successor is on its way */
    cr_assert_lt(elapsed_ms(&t0), 1000, "answered without waiting for the flight");
    cr_assert_eq(sem_post(&g.release), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(rf.result, 1);
    cr_assert_eq(get(c, "d", "r", late, "d/r/2"), 0); /* the new one from then on */
    cr_assert_eq(atomic_load(&g.f.mints), 2);
    token_cache_free(c);
}

typedef struct getter {
    token_cache *cache;
    keel_usec_t now;
    int result;
    char jwt[64];
} getter;

static void *run_get(void *userdata)
{
    getter *gt = userdata;
    token_minted t = { 0 };
    gt->result = token_cache_get(gt->cache, "d", "r", gt->now, &t);
    if (t.jwt)
        (void) snprintf(gt->jwt, sizeof gt->jwt, "%s", t.jwt);
    token_minted_done(&t);
    return NULL;
}

Test(token_cache, a_valid_token_is_answered_at_once_while_another_request_mints_its_pair)
{
    static gate g;
    token_cache *c = gate_new(&g);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    keel_usec_t late = T0 + HOUR - 30 * KEEL_USEC_PER_SEC;
    atomic_store(&g.armed, true);
    getter first = { .cache = c, .now = late };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_get, &first), 0);
    cr_assert_eq(sem_wait_s(&g.began, 5), 0); /* the first request's flight */
    struct timespec t0;
    (void) clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(get(c, "d", "r", late, "d/r/1"), 0);
    cr_assert_lt(elapsed_ms(&t0), 1000, "answered without waiting for the flight");
    cr_assert_eq(sem_post(&g.release), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(first.result, 0);
    cr_assert_str_eq(first.jwt, "d/r/2");
    token_cache_stats st;
    token_cache_get_stats(c, &st);
    cr_assert_eq(st.mints, (uint64_t) 2);
    cr_assert_eq(st.hits, (uint64_t) 1, "the answer from the cache counts as a hit");
    cr_assert_eq(st.misses, (uint64_t) 2);
    token_cache_free(c);
}

/* A token about to expire is no answer: the client would fail with it soon after. */
Test(token_cache, a_token_with_seconds_left_waits_for_the_flight)
{
    static gate g;
    token_cache *c = gate_new(&g);
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    keel_usec_t late = T0 + HOUR - TOKEN_CACHE_FLIGHT_MIN_LEFT / 2;
    atomic_store(&g.armed, true);
    refresher rf = { .cache = c, .now = late };
    getter second = { .cache = c, .now = late };
    pthread_t a, b;
    cr_assert_eq(pthread_create(&a, NULL, run_refresh, &rf), 0);
    cr_assert_eq(sem_wait_s(&g.began, 5), 0);
    cr_assert_eq(pthread_create(&b, NULL, run_get, &second), 0);
    test_sleep_ms(50); /* the request is waiting for the flight */
    cr_assert_eq(sem_post(&g.release), 0);
    cr_assert_eq(pthread_join(a, NULL), 0);
    cr_assert_eq(pthread_join(b, NULL), 0);
    cr_assert_str_eq(second.jwt, "d/r/2");
    cr_assert_eq(atomic_load(&g.f.mints), 2);
    token_cache_free(c);
}

Test(token_cache, a_token_of_the_previous_key_waits_for_the_flight_of_the_new_one)
{
    static gate g;
    token_cache *c = gate_new(&g);
    cr_assert(token_cache_rekey(c, "k1"));
    cr_assert_eq(get(c, "d", "r", T0, "d/r/1"), 0);
    cr_assert(token_cache_rekey(c, "k2"));
    atomic_store(&g.armed, true);
    getter first = { .cache = c, .now = T0 }, second = { .cache = c, .now = T0 };
    pthread_t a, b;
    cr_assert_eq(pthread_create(&a, NULL, run_get, &first), 0);
    cr_assert_eq(sem_wait_s(&g.began, 5), 0);
    cr_assert_eq(pthread_create(&b, NULL, run_get, &second), 0);
    test_sleep_ms(50); /* the second request is waiting for the flight */
    cr_assert_eq(sem_post(&g.release), 0);
    cr_assert_eq(pthread_join(a, NULL), 0);
    cr_assert_eq(pthread_join(b, NULL), 0);
    cr_assert_str_eq(first.jwt, "d/r/2");
    cr_assert_str_eq(second.jwt, "d/r/2", "the previous key's token is only a fallback when the new key cannot sign");
    cr_assert_eq(atomic_load(&g.f.mints), 2);
    token_cache_free(c);
}

/* ---- across a restart ------------------------------------------------------------------------ */

typedef struct listing {
    char text[512];
    int stop_after; /* 0: never */
    int seen;
} listing;

static int list_one(const char *domain, const char *role, const token_minted *t, void *userdata)
{
    listing *l = userdata;
    size_t n = strlen(l->text);
    (void) snprintf(l->text + n, sizeof l->text - n, "%s/%s=%s ", domain, role, t->jwt);
    return ++l->seen == l->stop_after ? 7 : 0;
}

Test(token_cache, foreach_lists_tokens_most_recently_used_first_and_stops_when_told)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(10, fake_mint, &f);
    cr_assert_eq(get(c, "a", "r", T0, "a/r/1"), 0);
    cr_assert_eq(get(c, "b", "r", T0, "b/r/2"), 0);
    cr_assert_eq(get(c, "a", "r", T0, "a/r/1"), 0);
    atomic_store(&f.fail, true);
    cr_assert_eq(get(c, "failed", "r", T0, NULL), -EIO); /* an entry without a token is not listed */
    listing l = { .stop_after = 0 };
    cr_assert_eq(token_cache_foreach(c, list_one, &l), 0);
    cr_assert_str_eq(l.text, "a/r=a/r/1 b/r=b/r/2 ");
    l = (listing){ .stop_after = 1 };
    cr_assert_eq(token_cache_foreach(c, list_one, &l), 7);
    cr_assert_str_eq(l.text, "a/r=a/r/1 ");
    token_cache_free(c);
}

Test(token_cache, a_put_token_is_served_behind_the_others_without_a_mint)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(3, fake_mint, &f);
    cr_assert(token_cache_rekey(c, "k1"));
    cr_assert_eq(get(c, "new", "r", T0, "new/r/1"), 0);
    token_minted kept = { .jwt = (char *) "kept-a", .expires = T0 + HOUR };
    cr_assert_eq(token_cache_put(c, "a", "r", &kept), 0);
    kept.jwt = (char *) "kept-b";
    cr_assert_eq(token_cache_put(c, "b", "r", &kept), 0);
    cr_assert_eq(token_cache_put(c, "new", "r", &kept), -EEXIST, "a request came first");
    cr_assert_eq(token_cache_put(c, "c", "r", &kept), -ENOSPC, "it would be the first evicted");
    listing l = { 0 };
    cr_assert_eq(token_cache_foreach(c, list_one, &l), 0);
    cr_assert_str_eq(l.text, "new/r=new/r/1 a/r=kept-a b/r=kept-b ", "in the order put, behind what was there");
    /* Hits, of the current key: no mint. */
    cr_assert_eq(get(c, "a", "r", T0 + MINUTE, "kept-a"), 0);
    cr_assert_eq(get(c, "b", "r", T0 + MINUTE, "kept-b"), 0);
    cr_assert_eq(atomic_load(&f.mints), 1);
    token_cache_stats st;
    token_cache_get_stats(c, &st);
    cr_assert_eq(st.entries, (size_t) 3);
    cr_assert_eq(st.hits, (uint64_t) 2);
    cr_assert_geq(st.bytes, strlen("kept-a") + strlen("kept-b") + strlen("new/r/1"));
    /* Like any token: stale once the key changes, minted again when it expires. */
    cr_assert(token_cache_rekey(c, "k2"));
    cr_assert_eq(get(c, "a", "r", T0 + MINUTE, "a/r/2"), 0);
    cr_assert_eq(get(c, "b", "r", T0 + HOUR, "b/r/3"), 0);
    token_cache_free(c);
}

typedef struct putter {
    token_cache *cache;
    int put;
} putter;

static void *put_many(void *userdata)
{
    putter *p = userdata;
    for (int i = 0; i < 200; i++) {
        char domain[16];
        (void) snprintf(domain, sizeof domain, "d%d", i);
        token_minted t = { .jwt = (char *) "kept", .expires = T0 + HOUR };
        p->put += token_cache_put(p->cache, domain, "r", &t) == 0;
    }
    return NULL;
}

Test(token_cache, puts_race_requests_for_the_same_pairs_safely)
{
    fake f = { .lifetime = HOUR };
    token_cache *c = token_cache_new(1000, fake_mint, &f);
    putter p = { .cache = c };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, put_many, &p), 0);
    int minted = 0;
    for (int i = 0; i < 200; i++) {
        char domain[16];
        (void) snprintf(domain, sizeof domain, "d%d", i);
        cr_assert_eq(get(c, domain, "r", T0, NULL), 0);
    }
    cr_assert_eq(pthread_join(th, NULL), 0);
    minted = atomic_load(&f.mints);
    cr_assert_eq(p.put + minted, 200, "each pair either put or minted, never both: %d + %d", p.put, minted);
    token_cache_stats st;
    token_cache_get_stats(c, &st);
    cr_assert_eq(st.entries, (size_t) 200);
    token_cache_free(c);
}
