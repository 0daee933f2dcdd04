/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <keel/work.h>

#include "macro-internal.h"
#include "work-internal.h"
#include "work-shards-internal.h"

/*
 * No begin or end executes a locked instruction: a locked read-modify-write costs ~10 ns on the
 * target machine, and two of them put a begin+end pair over its 20 ns budget (ADR 0009).
 *
 * Shards. Each thread that uses a tracker gets its own shard of counters, on its own cache line,
 * and only that thread writes it, with plain loads and stores. The totals are the sums over the
 * shards. A unit may begin on one thread and end on another: the sums stay exact, only the
 * shards' own differences (begun - ok - failed) go off, which matters for the peak alone. A thread
 * finds its shard through a small thread-local cache keyed by the tracker's generation, a number
 * no other tracker of the process ever gets, so that an entry left behind by a freed tracker never
 * matches a new one at the same address. On a miss it takes the tracker's mutex, and finds its
 * shard, adopts the shard of a thread that has exited (whose counts it then continues, so that
 * short-lived threads do not make the list grow), or links in a new one.
 *
 * Gate. A begin stores begun + 1, then loads `draining`; a drainer stores `draining`, then loads
 * every shard. That is Dekker's pattern, which needs a full fence between the store and the load
 * on both sides; the begin's side only gets a compiler barrier, and the drainer makes up for it
 * with membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full barrier on every CPU that
 * runs one of our threads (a thread that is not running passed one when it was switched out).
 * After it, a begin has either seen `draining` (and refuses) or its store is visible to the
 * drainer (which waits for it). liburcu's membarrier flavour rests on the same argument. Where
 * membarrier() is missing (old kernels, seccomp sandboxes), begins and ends use a real fence:
 * correct, and as slow as the locked instructions this design removes (a pair ~22 ns, not ~6).
 *
 * Wake-ups. An end's publishing store is its last access to the tracker: once the drainer sees
 * it, it may return and the caller may free the tracker (and its shards). So the end cannot load
 * `draining` after it. It loads the `waiters` count of a static drain slot instead (the slot is
 * picked from the generation, read before the store), after the same compiler barrier, and only
 * when a drain is waiting there does it bump the slot's event count and FUTEX_WAKE it: static
 * memory, never freed. A drainer counts itself in `waiters` before it closes the gate and before
 * the barrier, so the membarrier argument applies again: an end either sees the waiter, or its
 * store is visible to the drainer's first sums. A drainer that misses an end's store read the
 * event count before that end bumped it (the bump comes after the store and is a release, the
 * drainer's load an acquire), so FUTEX_WAIT on the value it read returns at once or is woken.
 * Trackers whose generations share a slot only wake each other spuriously.
 *
 * Snapshots. Three 64-bit counters stored one after the other could be read at three different
 * instants. So a shard also keeps their low bits packed in one word, stored last: a reader takes
 * the instant from the word and the high bits from the counters read around it (shard_read()).
 * Each shard is thus read at one instant; shards are read one after another. While a unit moves
 * between threads a snapshot may count its end and not its begin: in_flight is then held at 0.
 *
 * Peak. An exact peak needs a shared read-modify-write, which is what this design removes. Each
 * shard keeps the high-water mark of its own difference. While no shard's difference is below 0
 * (no thread ended more units than it began), each is at most the total, so the marks are lower
 * bounds of the peak, and exact when one thread does all the work. The first end that would take
 * a shard below 0 (work moved between threads) freezes the marks under the mutex before it
 * publishes. Totals computed by stats and drain raise the peak too, but only when no end happened
 * while they were read (see keel__work_sum(), work-drain.c): a sum of shards read one after another could otherwise count
 * a unit that ended before another began as in flight together with it.
 */

drain_slot keel__work_drain_slots[DRAIN_SLOTS];
static _Atomic uint64_t last_gen;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t owner_key;
static bool have_owner_key;
static _Atomic bool membarrier_registered, membarrier_wanted = true;
static _Thread_local cache_slot cache[CACHE_SLOTS];
static _Thread_local owner *me; /* the reference the thread holds on its own record */

long keel__work_membarrier(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0, 0);
}

static void owner_unref(owner *o)
{
    if (o && atomic_fetch_sub_explicit(&o->n_ref, 1, memory_order_acq_rel) == 1)
        free(o);
}

/* Runs when a thread that used a tracker exits. */
static void owner_exit(void *p)
{
    owner *o = p;

    /* A later destructor of the same thread that begins work again starts afresh. */
    memset(cache, 0, sizeof cache);
    me = NULL;
    /* Release: the thread's stores to its shards happen before an adopter's acquire load. */
    atomic_store_explicit(&o->exited, true, memory_order_release);
    owner_unref(o);
}

static void init_once(void)
{
    long cmds;

    have_owner_key = pthread_key_create(&owner_key, owner_exit) == 0;
    if (!have_owner_key)
        keel_log_debug("Work tracker: no thread-exit hook, shards of exited threads will not be reused");

    /* Registration waits for an RCU grace period (~14 ms here) unless the process still has one
     * thread (3 us): keel_app_run() calls keel__work_setup() early for that. A fork inherits it. */
    cmds = keel__work_membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds < 0)
        keel_log_debug_errno(errno, "Work tracker: membarrier() unavailable (%m), begins and ends use a full fence");
    else if (!(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
        keel_log_debug("Work tracker: membarrier() lacks PRIVATE_EXPEDITED, begins and ends use a full fence");
    else if (keel__work_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) < 0)
        keel_log_debug_errno(errno, "Work tracker: membarrier() registration failed (%m), begins and ends use a full fence");
    else
        atomic_store_explicit(&membarrier_registered, true, memory_order_relaxed);
}

void keel__work_setup(void)
{
    (void) pthread_once(&once, init_once);
}

bool keel__work_use_membarrier(bool enable)
{
    (void) pthread_once(&once, init_once);
    atomic_store_explicit(&membarrier_wanted, enable, memory_order_relaxed);
    return enable && atomic_load_explicit(&membarrier_registered, memory_order_relaxed);
}

/* Orders a hot path's publishing store before its next load, as far as the drainer needs (see the
 * comment at the top): a compiler barrier when the drainer runs membarrier(), else a full fence. */
static inline void hot_fence(bool membarrier_covers)
{
    if (_likely_(membarrier_covers))
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
}

/* Called after this thread's last access to the tracker: touches only the static slot. */
static void __attribute__((noinline, cold)) wake(drain_slot *d)
{
    /* Release: a drainer whose acquire load sees the bump sees the store before it. */
    (void) atomic_fetch_add_explicit(&d->events, 1, memory_order_release);
    (void) syscall(SYS_futex, &d->events, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void wake_drainer(drain_slot *d)
{
    if (_unlikely_(atomic_load_explicit(&d->waiters, memory_order_relaxed) != 0))
        wake(d);
}

/* Waits while d->events == expected, until woken or @until (CLOCK_MONOTONIC, absolute) passes.
 * FUTEX_WAIT_BITSET takes an absolute time, so a wake-up never stretches the deadline. */
void keel__work_wait_until(drain_slot *d, uint32_t expected, keel_usec_t until)
{
    struct timespec ts = {
        .tv_sec = (time_t) (until / KEEL_USEC_PER_SEC),
        .tv_nsec = (long) (until % KEEL_USEC_PER_SEC) * 1000,
    };
    (void) syscall(SYS_futex, &d->events, FUTEX_WAIT_BITSET_PRIVATE, expected, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

keel_work *keel_work_new(const char *name)
{
    keel_work *w;
    int r;

    if (!name) {
        errno = EINVAL;
        return NULL;
    }
    (void) pthread_once(&once, init_once);

    /* Cache-line aligned, so the hot fields share their line with no other object. */
    w = aligned_alloc(CACHE_LINE, (sizeof(keel_work) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE);
    if (!w)
        return NULL;
    *w = (keel_work){
        .gen = atomic_fetch_add_explicit(&last_gen, 1, memory_order_relaxed) + 1,
        .membarrier = atomic_load_explicit(&membarrier_registered, memory_order_relaxed) &&
                      atomic_load_explicit(&membarrier_wanted, memory_order_relaxed),
        .name = strdup(name),
    };
    if (!w->name) {
        free(w);
        return NULL;
    }
    r = pthread_mutex_init(&w->lock, NULL);
    if (r != 0) {
        free(w->name);
        free(w);
        errno = r;
        return NULL;
    }
    return w;
}

keel_work *keel_work_free(keel_work *w)
{
    if (!w)
        return NULL;
#ifndef NDEBUG
    counts c = keel__work_sum(w, NULL);
    assert(keel__work_in_flight_of(&c) == 0);
#endif
    for (shard *s = atomic_load_explicit(&w->shards, memory_order_acquire), *next; s; s = next) {
        next = s->next;
        owner_unref(s->owner);
        free(s);
    }
    (void) pthread_mutex_destroy(&w->lock);
    free(w->name);
    free(w);
    return NULL;
}

const char *keel_work_name(const keel_work *w)
{
    keel_assert_return(w, NULL);
    return w->name;
}

size_t keel__work_n_shards(const keel_work *cw)
{
    keel_work *w = (keel_work *) cw; /* C11 atomic loads take non-const pointers */
    size_t n = 0;

    for (shard *s = atomic_load_explicit(&w->shards, memory_order_acquire); s; s = s->next)
        n++;
    return n;
}

static owner *owner_get(void)
{
    owner *o;

    if (me)
        return me;
    o = malloc(sizeof *o);
    if (!o)
        return NULL;
    *o = (owner){ .n_ref = 1 };
    if (have_owner_key && pthread_setspecific(owner_key, o) != 0) {
        free(o);
        return NULL;
    }
    me = o;
    return o;
}

/* The cache missed: find this thread's shard, adopt one whose thread exited, or link in a new one.
 * NULL when out of memory; the caller then counts on the spare counters. */
static shard *__attribute__((noinline, cold)) shard_find(keel_work *w, cache_slot *c)
{
    shard *found = NULL, *orphan = NULL;
    owner *o = owner_get();

    if (!o)
        return NULL;

    (void) pthread_mutex_lock(&w->lock);
    for (shard *s = atomic_load_explicit(&w->shards, memory_order_relaxed); s; s = s->next) {
        if (s->owner == o) {
            found = s;
            break;
        }
        if (!orphan && atomic_load_explicit(&s->owner->exited, memory_order_acquire))
            orphan = s;
    }
    if (!found && orphan) {
        /* The acquire above made the exited thread's stores visible: go on from its counts. */
        owner_unref(orphan->owner);
        (void) atomic_fetch_add_explicit(&o->n_ref, 1, memory_order_relaxed);
        orphan->owner = o;
        found = orphan;
    } else if (!found) {
        found = aligned_alloc(CACHE_LINE, CACHE_LINE);
        if (found) {
            (void) atomic_fetch_add_explicit(&o->n_ref, 1, memory_order_relaxed);
            *found = (shard){ .owner = o, .next = atomic_load_explicit(&w->shards, memory_order_relaxed) };
            /* Release: readers that see the new head see an initialised shard. */
            atomic_store_explicit(&w->shards, found, memory_order_release);
        }
    }
    (void) pthread_mutex_unlock(&w->lock);

    if (found)
        *c = (cache_slot){ .gen = w->gen, .shard = found };
    return found;
}

static inline shard *shard_get(keel_work *w)
{
    cache_slot *c = &cache[w->gen % CACHE_SLOTS];

    if (_likely_(c->gen == w->gen))
        return c->shard;
    return shard_find(w, c);
}

int64_t keel__work_marks_max(keel_work *w)
{
    int64_t m = 0;

    for (shard *s = atomic_load_explicit(&w->shards, memory_order_acquire); s; s = s->next)
        m = MAX(m, (int64_t) atomic_load_explicit(&s->mark, memory_order_relaxed));
    return m;
}

/* An end is about to take its shard below 0, or cannot tell (spare counters): from now on a
 * shard's difference may exceed the total, so keep the marks' maximum as it is now. Runs before
 * the end's publishing store, while its unit keeps the tracker alive. */
static void __attribute__((noinline, cold)) freeze_peak(keel_work *w)
{
    if (atomic_load_explicit(&w->crossed, memory_order_acquire))
        return;
    (void) pthread_mutex_lock(&w->lock);
    if (!atomic_load_explicit(&w->crossed, memory_order_relaxed)) {
        atomic_store_explicit(&w->frozen_peak, (uint64_t) keel__work_marks_max(w), memory_order_relaxed);
        atomic_store_explicit(&w->crossed, true, memory_order_release);
    }
    (void) pthread_mutex_unlock(&w->lock);
}

/* Out of memory: count on the shared spare counters. The seq_cst read-modify-write is also the
 * full fence between the count and the gate. */
static int __attribute__((noinline, cold)) begin_spare(keel_work *w)
{
    drain_slot *d = keel__work_slot_of(w);

    (void) atomic_fetch_add(&w->spare_begun, 1);
    if (!atomic_load(&w->draining))
        return 0;
    (void) atomic_fetch_add_explicit(&w->rejected, 1, memory_order_relaxed);
    (void) atomic_fetch_sub_explicit(&w->spare_begun, 1, memory_order_release); /* last access to @w */
    atomic_thread_fence(memory_order_seq_cst);
    wake_drainer(d);
    return -ESHUTDOWN;
}

static void __attribute__((noinline, cold)) end_spare(keel_work *w, bool ok)
{
    drain_slot *d = keel__work_slot_of(w);

    freeze_peak(w);
    (void) atomic_fetch_add_explicit(ok ? &w->spare_ok : &w->spare_failed, 1, memory_order_release); /* last access */
    atomic_thread_fence(memory_order_seq_cst);
    wake_drainer(d);
}

static int __attribute__((noinline, cold)) begin_refuse(keel_work *w, shard *s, uint64_t begun)
{
    drain_slot *d = keel__work_slot_of(w);

    /* Count the refusal before the undo: after it a drainer may return and free @w. */
    (void) atomic_fetch_add_explicit(&w->rejected, 1, memory_order_relaxed);
    atomic_store_explicit(&s->begun, begun - 1, memory_order_release);
    atomic_store_explicit(&s->word, atomic_load_explicit(&s->word, memory_order_relaxed) - BEGUN_ONE,
                          memory_order_release); /* last access to @w */
    /* A full fence whatever the mode: this is cold, and a drainer that started after the close
     * may be waiting for the undo. */
    atomic_thread_fence(memory_order_seq_cst);
    wake_drainer(d);
    return -ESHUTDOWN;
}

int keel_work_begin(keel_work *w)
{
    keel_assert_return(w, -EINVAL);

    shard *s = shard_get(w);
    if (_unlikely_(!s))
        return begin_spare(w);

    /* Relaxed loads of our own stores; release stores so that a reader that sees the word sees
     * the counter stored before it (shard_read()). */
    uint64_t begun = atomic_load_explicit(&s->begun, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->begun, begun, memory_order_release);
    atomic_store_explicit(&s->word, atomic_load_explicit(&s->word, memory_order_relaxed) + BEGUN_ONE, memory_order_release);
    hot_fence(w->membarrier);
    if (_unlikely_(atomic_load_explicit(&w->draining, memory_order_relaxed)))
        return begin_refuse(w, s, begun);

    int64_t level = (int64_t) (begun - atomic_load_explicit(&s->ok, memory_order_relaxed) -
                               atomic_load_explicit(&s->failed, memory_order_relaxed));
    if (level > (int64_t) atomic_load_explicit(&s->mark, memory_order_relaxed))
        atomic_store_explicit(&s->mark, (uint64_t) level, memory_order_relaxed);
    return 0;
}

/* Stores an end's outcome, then wakes a drainer waiting on @d. The word's store publishes the
 * end and is this thread's last access to the tracker: once a drainer sees it, it may return and
 * the tracker (with @s) may be freed. Release: everything the work did happens before a drainer's
 * acquire load of the word, so the drainer may tear down what the work used. */
static inline void end_publish(drain_slot *d, bool membarrier_covers, shard *s, bool ok, uint64_t n_ok, uint64_t n_failed)
{
    if (ok)
        atomic_store_explicit(&s->ok, n_ok + 1, memory_order_release);
    else
        atomic_store_explicit(&s->failed, n_failed + 1, memory_order_release);
    uint64_t word = (atomic_load_explicit(&s->word, memory_order_relaxed) + (ok ? OK_ONE : FAIL_ONE)) & ~GUARD_BITS;
    atomic_store_explicit(&s->word, word, memory_order_release);
    hot_fence(membarrier_covers);
    wake_drainer(d);
}

/* This thread ends more than it began on @w: work moved between threads. */
static void __attribute__((noinline, cold)) end_crossing(keel_work *w, shard *s, bool ok)
{
    freeze_peak(w);
    end_publish(keel__work_slot_of(w), w->membarrier, s, ok, atomic_load_explicit(&s->ok, memory_order_relaxed),
                atomic_load_explicit(&s->failed, memory_order_relaxed));
}

void keel_work_end(keel_work *w, bool ok)
{
    keel_assert_return_void(w);

    shard *s = shard_get(w);
    if (_unlikely_(!s)) {
        end_spare(w, ok);
        return;
    }

    uint64_t n_ok = atomic_load_explicit(&s->ok, memory_order_relaxed);
    uint64_t n_failed = atomic_load_explicit(&s->failed, memory_order_relaxed);
    if (_unlikely_((int64_t) (atomic_load_explicit(&s->begun, memory_order_relaxed) - n_ok - n_failed) <= 0)) {
        end_crossing(w, s, ok);
        return;
    }
    /* Everything needed from @w is read before the publishing store. */
    end_publish(keel__work_slot_of(w), w->membarrier, s, ok, n_ok, n_failed);
}

void keel_work_close(keel_work *w)
{
    keel_assert_return_void(w);
    atomic_store(&w->draining, true);
}
