/* SPDX-License-Identifier: MIT */
/* Snapshots of a tracker and the drain: the readers' side of the design at the top of work.c. */
#include <errno.h>
#include <linux/membarrier.h>

#include <keel/work.h>

#include "macro-internal.h"
#include "work-internal.h"
#include "work-shards-internal.h"

/* The number whose low @bits bits are @low, nearest to @near. */
static uint64_t widen(uint64_t near, uint64_t low, unsigned bits)
{
    uint64_t span = UINT64_C(1) << bits;
    uint64_t d = (low - near) & (span - 1);
    return d < span / 2 ? near + d : near + d - span;
}

/*
 * One shard's counters as of one instant: the instant its word was stored. The owner stores a
 * counter, then the word (both release); the loads here are acquire, in order. So the first
 * reads of the counters are at most one operation ahead of the word, the second ones not behind
 * it, and when they are close the word's fields are within READ_SKEW of the first reads.
 */
static counts shard_read(shard *s)
{
    for (;;) {
        uint64_t b0 = atomic_load_explicit(&s->begun, memory_order_acquire);
        uint64_t o0 = atomic_load_explicit(&s->ok, memory_order_acquire);
        uint64_t f0 = atomic_load_explicit(&s->failed, memory_order_acquire);
        uint64_t word = atomic_load_explicit(&s->word, memory_order_acquire);
        uint64_t b1 = atomic_load_explicit(&s->begun, memory_order_acquire);
        uint64_t o1 = atomic_load_explicit(&s->ok, memory_order_acquire);
        uint64_t f1 = atomic_load_explicit(&s->failed, memory_order_acquire);

        /* begun goes back by one when a refusal undoes its begin: + 1 keeps that small. */
        if (b1 - b0 + 1 <= READ_SKEW && o1 - o0 <= READ_SKEW && f1 - f0 <= READ_SKEW)
            return (counts){
                .begun = widen(b0, FIELD(word, BEGUN_SHIFT, BEGUN_BITS), BEGUN_BITS),
                .ok = widen(o0, FIELD(word, OK_SHIFT, OK_BITS), OK_BITS),
                .failed = widen(f0, FIELD(word, FAIL_SHIFT, FAIL_BITS), FAIL_BITS),
            };
        /* Preempted between the reads while the owner ran on: read again. */
    }
}

/*
 * The sums over the shards and the spare counters, each shard as of its own instant. Sets
 * *ret_exact when no end happened on a shard after it was read (the end counters read again give
 * the same sum): then no shard's count went down after its read (but for a refusal undoing its
 * begin), so the in-flight total computed here is at most the one at the last read, and may raise
 * the peak. Ends before begins for the spare counters, so that a unit counted as ended there is
 * counted as begun.
 */
counts keel__work_sum(keel_work *w, bool *ret_exact)
{
    counts t = {
        .ok = atomic_load_explicit(&w->spare_ok, memory_order_acquire),
        .failed = atomic_load_explicit(&w->spare_failed, memory_order_acquire),
    };
    t.begun = atomic_load_explicit(&w->spare_begun, memory_order_acquire);

    for (shard *s = atomic_load_explicit(&w->shards, memory_order_acquire); s; s = s->next) {
        counts c = shard_read(s);
        t.begun += c.begun;
        t.ok += c.ok;
        t.failed += c.failed;
    }

    if (ret_exact) {
        /* The head again: ends on a shard linked meanwhile count too. */
        uint64_t ends =
            atomic_load_explicit(&w->spare_ok, memory_order_acquire) + atomic_load_explicit(&w->spare_failed, memory_order_acquire);
        for (shard *s = atomic_load_explicit(&w->shards, memory_order_acquire); s; s = s->next)
            ends += atomic_load_explicit(&s->ok, memory_order_acquire) + atomic_load_explicit(&s->failed, memory_order_acquire);
        *ret_exact = ends == t.ok + t.failed;
    }
    return t;
}

/* Only a unit that moved between threads during the snapshot can make this negative. */
uint64_t keel__work_in_flight_of(const counts *c)
{
    int64_t n = (int64_t) (c->begun - c->ok - c->failed);
    return n > 0 ? (uint64_t) n : 0;
}

/* Raises the tracker's peak to @in_flight, a total just computed, when it held at one instant
 * (@exact), and returns the peak. */
static uint64_t peak_of(keel_work *w, uint64_t in_flight, bool exact)
{
    uint64_t seen = atomic_load_explicit(&w->seen_peak, memory_order_relaxed);
    while (exact && in_flight > seen &&
           !atomic_compare_exchange_weak_explicit(&w->seen_peak, &seen, in_flight, memory_order_relaxed, memory_order_relaxed))
        ;
    if (exact)
        seen = MAX(seen, in_flight);

    /* The marks count until the freeze; a freeze while they are read makes them suspect. */
    uint64_t marks;
    if (atomic_load_explicit(&w->crossed, memory_order_acquire))
        marks = atomic_load_explicit(&w->frozen_peak, memory_order_relaxed);
    else {
        marks = (uint64_t) keel__work_marks_max(w);
        if (atomic_load_explicit(&w->crossed, memory_order_acquire))
            marks = atomic_load_explicit(&w->frozen_peak, memory_order_relaxed);
    }
    return MAX(seen, marks);
}

void keel_work_get_stats(const keel_work *cw, keel_work_stats *ret)
{
    keel_work *w = (keel_work *) cw; /* C11 atomic loads take non-const pointers */

    keel_assert_return_void(w);
    keel_assert_return_void(ret);

    bool exact;
    counts c = keel__work_sum(w, &exact);
    uint64_t in_flight = keel__work_in_flight_of(&c);
    keel_work_stats st = {
        .in_flight = in_flight,
        .peak = peak_of(w, in_flight, exact),
        .succeeded = c.ok,
        .failed = c.failed,
        .rejected = atomic_load_explicit(&w->rejected, memory_order_relaxed),
        .draining = atomic_load_explicit(&w->draining, memory_order_relaxed),
    };
    st.started = st.succeeded + st.failed + st.in_flight;
    *ret = st;
}

uint64_t keel__work_started_total(keel_work *w)
{
    counts c = keel__work_sum(w, NULL);
    uint64_t started = c.ok + c.failed + keel__work_in_flight_of(&c);
    uint64_t shown = atomic_load_explicit(&w->started_shown, memory_order_relaxed);
    while (started > shown &&
           !atomic_compare_exchange_weak_explicit(&w->started_shown, &shown, started, memory_order_relaxed, memory_order_relaxed))
        ;
    return MAX(shown, started);
}

static void report_progress(keel_work *w, keel_usec_t now, keel_usec_t deadline, keel_work_progress_handler_t progress,
                            void *userdata)
{
    keel_work_stats st;

    if (!progress)
        return;
    keel_work_get_stats(w, &st);
    progress(w, &st, deadline == KEEL_USEC_INFINITY ? KEEL_USEC_INFINITY : deadline - now, userdata);
}

/* The drainer's side of the fences of begins and ends (see the comment at the top). Returns false
 * when membarrier() failed, which registration rules out; the drain then must not conclude. */
static bool barrier(keel_work *w)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!w->membarrier)
        return true;
    if (keel__work_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) >= 0)
        return true;
    keel_log_debug_errno(errno, "Work tracker: membarrier() failed (%m), retrying");
    if (errno == EPERM)
        (void) keel__work_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
    return false;
}

int keel_work_drain(keel_work *w, keel_usec_t deadline, keel_work_progress_handler_t progress, void *userdata)
{
    keel_assert_return(w, -EINVAL);

    drain_slot *d = keel__work_slot_of(w);
    int r;

    /* Counted as a waiter before the gate closes and before the barrier, so that every end and
     * refusal the sums below miss sees the waiter and wakes it. */
    (void) atomic_fetch_add(&d->waiters, 1);
    keel_work_close(w);
    bool fenced = barrier(w);

    keel_usec_t tick = keel_now() + KEEL_WORK_PROGRESS_USEC;
    for (;;) {
        /* Read before the sums: an end they miss changes it, so the wait below returns. */
        uint32_t events = atomic_load_explicit(&d->events, memory_order_acquire);
        bool exact;
        counts c = keel__work_sum(w, &exact);
        uint64_t in_flight = keel__work_in_flight_of(&c);
        (void) peak_of(w, in_flight, exact);
        if (in_flight == 0 && fenced) {
            r = 0;
            break;
        }

        keel_usec_t now = keel_now();
        if (now >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        if (now >= tick) {
            report_progress(w, now, deadline, progress, userdata);
            tick += KEEL_WORK_PROGRESS_USEC;
            if (tick <= now) /* a slow callback: report again one interval from now, not at once */
                tick = now + KEEL_WORK_PROGRESS_USEC;
            if (!fenced)
                fenced = barrier(w);
            continue; /* the callback may have taken a while: look again before sleeping */
        }
        keel__work_wait_until(d, events, MIN(tick, deadline));
    }
    (void) atomic_fetch_sub(&d->waiters, 1);
    return r;
}
