/* SPDX-License-Identifier: MIT */
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <keel/work.h>

#include "macro.h"

/*
 * One 64-bit state word carries everything a begin or an end changes, so that a begin+end pair
 * costs two atomic read-modify-writes (a locked instruction costs ~7 ns on the target machine;
 * a third one for a separate "succeeded" counter would put a pair over its 20 ns budget):
 *
 *   bits  0..19  in flight (admission stops at IN_FLIGHT_LIMIT, so refusals cannot carry out)
 *   bit      20  draining: the gate is closed
 *   bits 21..41  failed, not yet moved to fail_base
 *   bits 42..63  succeeded, not yet moved to ok_base
 *
 * A begin adds 1. An end adds OK_ONE - 1 or FAIL_ONE - 1: in flight goes down and its outcome
 * goes up in the same instruction, so started = succeeded + failed + in flight holds in every
 * snapshot and never needs a counter of its own. Since the gate shares the word with the count,
 * the order of the word's modifications decides every race between begin and close: a begin
 * that comes after the close sees the bit, one that comes before is counted and waited for.
 *
 * The outcome fields are narrow, so a begin that finds a whole chunk in one moves it into the
 * 64-bit base counters (see transfer()). Only a begin does it: it holds a unit in flight, so the
 * tracker cannot be drained and freed under it. An end must not touch the tracker after its
 * decrement (the drainer may free it at once); its only later use is the futex wake, a syscall
 * on the address, which is harmless on freed memory (at worst a spurious wake-up elsewhere).
 */
#define IN_FLIGHT_MASK  ((UINT64_C(1) << 20) - 1)
#define IN_FLIGHT_LIMIT (UINT64_C(1) << 19)
#define DRAINING        (UINT64_C(1) << 20)
#define FAIL_SHIFT      21
#define FAIL_MASK       ((UINT64_C(1) << 21) - 1)
#define FAIL_ONE        (UINT64_C(1) << FAIL_SHIFT)
#define OK_SHIFT        42
#define OK_MASK         (UINT64_MAX >> OK_SHIFT)
#define OK_ONE          (UINT64_C(1) << OK_SHIFT)
/* Outcomes move to the bases in whole chunks of this many. A begin sees whether a field holds a
 * chunk by its high bits alone, so the check joins the gate check on the fast path. */
#define XFER_CHUNK   (UINT64_C(1) << 16)
#define XFER_BITS(v) ((v) & ~(XFER_CHUNK - 1))

/* A begin leaves its fast path only when one of these bits is set in the value it replaced. */
#define BEGIN_SLOW (IN_FLIGHT_LIMIT | DRAINING | (XFER_BITS(FAIL_MASK) << FAIL_SHIFT) | (XFER_BITS(OK_MASK) << OK_SHIFT))

/* Refused begins are undone, so at most IN_FLIGHT_LIMIT units plus one refusal per thread sit in
 * the count. A field holds less than a chunk after a transfer, and grows by at most one end per
 * unit admitted before the next begin moves it again: a chunk plus twice the limit always fits. */
_Static_assert(IN_FLIGHT_LIMIT * 2 - 1 <= IN_FLIGHT_MASK, "refused begins must not carry out of the in-flight field");
_Static_assert(XFER_CHUNK + 2 * IN_FLIGHT_LIMIT <= FAIL_MASK, "failed field too narrow");
_Static_assert(XFER_CHUNK + 2 * IN_FLIGHT_LIMIT <= OK_MASK, "succeeded field too narrow");

struct keel_work {
    /* Written by every begin and end: one cache line, nothing else the hot path touches. */
    _Atomic uint64_t state;
    _Atomic uint32_t peak;
    /* Cold: transfers, refusals. */
    _Alignas(64) _Atomic uint64_t ok_base;
    _Atomic uint64_t fail_base;
    /* Transfers in progress (low 32 bits) and done (high 32 bits): readers retry around them. */
    _Atomic uint64_t xfer;
    _Atomic uint64_t rejected;
    char *name;
};

/* The futex word is the low-order half of the state, which holds the in-flight count: any change
 * of the count changes it, so a drainer that waits on the value it saw cannot miss the last end. */
static uint32_t *futex_word(keel_work *w)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (uint32_t *) &w->state;
#else
    return (uint32_t *) &w->state + 1;
#endif
}

static void futex_wake_all(uint32_t *word)
{
    (void) syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Waits while *word == expected, until woken or @until (CLOCK_MONOTONIC, absolute) passes.
 * FUTEX_WAIT_BITSET takes an absolute time, so a wake-up never stretches the deadline. */
static void futex_wait_until(uint32_t *word, uint32_t expected, keel_usec_t until)
{
    struct timespec ts = {
        .tv_sec = (time_t) (until / KEEL_USEC_PER_SEC),
        .tv_nsec = (long) (until % KEEL_USEC_PER_SEC) * 1000,
    };
    (void) syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, expected, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

/* In flight just reached 0 while draining: the drainer may be asleep on the futex word. */
static bool wakes_drainer(uint64_t state)
{
    return (state & (DRAINING | IN_FLIGHT_MASK)) == DRAINING;
}

keel_work *keel_work_new(const char *name)
{
    keel_work *w;

    if (!name) {
        errno = EINVAL;
        return NULL;
    }
    /* Cache-line aligned, so the hot word shares its line with no other object. */
    w = aligned_alloc(64, (sizeof(keel_work) + 63) / 64 * 64);
    if (!w)
        return NULL;
    *w = (keel_work){ .name = strdup(name) };
    if (!w->name) {
        free(w);
        return NULL;
    }
    return w;
}

keel_work *keel_work_free(keel_work *w)
{
    if (!w)
        return NULL;
    assert((atomic_load(&w->state) & IN_FLIGHT_MASK) == 0);
    free(w->name);
    free(w);
    return NULL;
}

const char *keel_work_name(const keel_work *w)
{
    keel_assert_return(w, NULL);
    return w->name;
}

static void update_peak(keel_work *w, uint32_t n)
{
    uint32_t p = atomic_load_explicit(&w->peak, memory_order_relaxed);
    while (n > p && !atomic_compare_exchange_weak_explicit(&w->peak, &p, n, memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Moves the whole chunks of one outcome field into its base counter. The CAS subtracts only what
 * the word holds, so begins racing here never move a chunk twice. Everything is seq_cst so that
 * keel_work_get_stats() can prove with `xfer` alone that no move overlapped its reads. */
static void transfer(keel_work *w, int shift, uint64_t mask, _Atomic uint64_t *base)
{
    uint64_t s = atomic_load(&w->state);

    (void) atomic_fetch_add(&w->xfer, 1);
    for (;;) {
        uint64_t n = XFER_BITS((s >> shift) & mask);
        if (n == 0)
            break; /* another begin moved it */
        if (atomic_compare_exchange_weak(&w->state, &s, s - (n << shift))) {
            (void) atomic_fetch_add(base, n);
            break;
        }
    }
    (void) atomic_fetch_add(&w->xfer, (UINT64_C(1) << 32) - 1);
}

static int __attribute__((noinline, cold)) begin_slow(keel_work *w, uint64_t old)
{
    if (old & (DRAINING | IN_FLIGHT_LIMIT)) {
        /* Count the refusal before the undo: after it the drainer may return and free @w. */
        (void) atomic_fetch_add_explicit(&w->rejected, 1, memory_order_relaxed);
        uint64_t s = atomic_fetch_sub_explicit(&w->state, 1, memory_order_release) - 1;
        if (wakes_drainer(s))
            futex_wake_all(futex_word(w));
        return old & DRAINING ? -ESHUTDOWN : -EBUSY;
    }
    if (XFER_BITS((old >> FAIL_SHIFT) & FAIL_MASK))
        transfer(w, FAIL_SHIFT, FAIL_MASK, &w->fail_base);
    if (XFER_BITS((old >> OK_SHIFT) & OK_MASK))
        transfer(w, OK_SHIFT, OK_MASK, &w->ok_base);
    update_peak(w, (uint32_t) (old & IN_FLIGHT_MASK) + 1);
    return 0;
}

int keel_work_begin(keel_work *w)
{
    keel_assert_return(w, -EINVAL);

    /* Relaxed: admission is decided by the order of the word's modifications alone, and what
     * the work itself touches is published to the drainer by the release in keel_work_end(). */
    uint64_t old = atomic_fetch_add_explicit(&w->state, 1, memory_order_relaxed);
    if (_unlikely_(old & BEGIN_SLOW))
        return begin_slow(w, old);
    update_peak(w, (uint32_t) (old & IN_FLIGHT_MASK) + 1);
    return 0;
}

void keel_work_end(keel_work *w, bool ok)
{
    keel_assert_return_void(w);

    /* Release: everything the work did happens before a drainer's acquire load that sees the
     * count it leaves behind, so the drainer may tear down what the work used. */
    uint64_t delta = (ok ? OK_ONE : FAIL_ONE) - 1;
    uint64_t s = atomic_fetch_add_explicit(&w->state, delta, memory_order_release) + delta;
    if (_unlikely_(wakes_drainer(s)))
        futex_wake_all(futex_word(w));
}

void keel_work_close(keel_work *w)
{
    keel_assert_return_void(w);
    (void) atomic_fetch_or(&w->state, DRAINING);
}

void keel_work_get_stats(const keel_work *cw, keel_work_stats *ret)
{
    keel_work *w = (keel_work *) cw; /* C11 atomic loads take non-const pointers */
    uint64_t s, okb, failb;

    keel_assert_return_void(w);
    keel_assert_return_void(ret);

    /* A transfer moves a chunk from the word to a base in two steps; retry until no transfer
     * was in progress when the reads began and none started or ended while they ran. */
    for (unsigned i = 0;; i++) {
        uint64_t x = atomic_load(&w->xfer);
        if ((uint32_t) x == 0) {
            s = atomic_load(&w->state);
            okb = atomic_load(&w->ok_base);
            failb = atomic_load(&w->fail_base);
            if (atomic_load(&w->xfer) == x)
                break;
        }
        if (i >= 16)
            (void) sched_yield(); /* the transferring thread was preempted mid-way */
    }

    uint64_t in_flight = s & IN_FLIGHT_MASK;
    keel_work_stats st = {
        .in_flight = in_flight,
        .peak = MAX((uint64_t) atomic_load_explicit(&w->peak, memory_order_relaxed), in_flight),
        .succeeded = okb + (s >> OK_SHIFT),
        .failed = failb + ((s >> FAIL_SHIFT) & FAIL_MASK),
        .rejected = atomic_load_explicit(&w->rejected, memory_order_relaxed),
        .draining = s & DRAINING,
    };
    st.started = st.succeeded + st.failed + in_flight;
    *ret = st;
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

int keel_work_drain(keel_work *w, keel_usec_t deadline, keel_work_progress_handler_t progress, void *userdata)
{
    keel_assert_return(w, -EINVAL);

    keel_work_close(w);
    keel_usec_t tick = keel_now() + KEEL_WORK_PROGRESS_USEC;
    for (;;) {
        /* Acquire: pairs with the release of every end (all writes to the word are RMWs, so
         * they extend one release sequence), so the work's effects are visible once it is 0. */
        uint64_t s = atomic_load_explicit(&w->state, memory_order_acquire);
        if ((s & IN_FLIGHT_MASK) == 0)
            return 0;

        keel_usec_t now = keel_now();
        if (now >= deadline)
            return -ETIMEDOUT;
        if (now >= tick) {
            report_progress(w, now, deadline, progress, userdata);
            tick += KEEL_WORK_PROGRESS_USEC;
            if (tick <= now) /* a slow callback: report again one interval from now, not at once */
                tick = now + KEEL_WORK_PROGRESS_USEC;
            continue; /* the callback may have taken a while: look again before sleeping */
        }
        /* The futex compares the low half of `s`, which holds the count: if the count moved
         * since the load, the wait returns at once. */
        futex_wait_until(futex_word(w), (uint32_t) s, MIN(tick, deadline));
    }
}
