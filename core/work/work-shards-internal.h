/* SPDX-License-Identifier: MIT */
#pragma once

/* The work tracker's shards and drain slots, shared by work.c (setup, begins and ends; the design
 * is explained at its top) and work-drain.c (snapshots and the drain). */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <keel/work.h>

#define CACHE_LINE 64

/* The packed word: ok in bits 0..20, failed in 22..42, begun in 44..63. Bits 21 and 43 catch the
 * carry out of a field that wraps and are cleared, so a field never carries into the next. */
#define OK_SHIFT                 0
#define OK_BITS                  21
#define FAIL_SHIFT               22
#define FAIL_BITS                21
#define BEGUN_SHIFT              44
#define BEGUN_BITS               20
#define OK_ONE                   (UINT64_C(1) << OK_SHIFT)
#define FAIL_ONE                 (UINT64_C(1) << FAIL_SHIFT)
#define BEGUN_ONE                (UINT64_C(1) << BEGUN_SHIFT)
#define GUARD_BITS               ((UINT64_C(1) << (OK_SHIFT + OK_BITS)) | (UINT64_C(1) << (FAIL_SHIFT + FAIL_BITS)))
#define FIELD(word, shift, bits) (((word) >> (shift)) & ((UINT64_C(1) << (bits)) - 1))

/* A reader retries when a counter moved by this much between its reads around the word (it was
 * preempted); otherwise the word's fields are within this of the counters, well inside the half
 * range the narrowest field can tell apart. */
#define READ_SKEW (UINT64_C(1) << 16)
_Static_assert(READ_SKEW + 2 < (UINT64_C(1) << (BEGUN_BITS - 1)), "packed fields too narrow for the read skew");

#define CACHE_SLOTS 16 /* trackers a thread can alternate between without a miss */
#define DRAIN_SLOTS 64

/* A thread that has used a tracker. Shards point to it so that another thread can tell when it
 * has exited and adopt its shard. */
typedef struct owner {
    _Atomic unsigned n_ref; /* the thread until it exits, and every shard it owns */
    _Atomic bool exited;    /* stored with release by the thread's last act */
} owner;

typedef struct shard {
    /* Written by the owning thread only, loads and stores; read by anyone. */
    _Atomic uint64_t word; /* low bits of ok, failed and begun, stored after them */
    _Atomic uint64_t begun;
    _Atomic uint64_t ok;
    _Atomic uint64_t failed;
    _Atomic uint64_t mark; /* highest begun - ok - failed a begin of the owner saw, as signed */
    /* Under the tracker's lock. */
    owner *owner;       /* owned reference */
    struct shard *next; /* set before the shard is published, then constant */
} shard;
_Static_assert(sizeof(shard) <= CACHE_LINE, "a shard must fit one cache line");

struct keel_work {
    /* Read by every begin and end; written once, or (draining, shards) rarely. */
    uint64_t gen;    /* unique in the process: keys the thread caches, picks the drain slot */
    bool membarrier; /* begins and ends rely on the drainer's membarrier() */
    _Atomic bool draining;
    _Atomic(shard *) shards; /* owned list, newest first; only ever grows */
    char *name;

    /* Cold. */
    _Alignas(CACHE_LINE) pthread_mutex_t lock; /* shard lookups that miss the cache, the peak freeze */
    _Atomic uint64_t rejected;
    _Atomic uint64_t seen_peak;     /* highest in-flight total computed by stats or drain */
    _Atomic uint64_t frozen_peak;   /* the marks' maximum when `crossed` was set */
    _Atomic bool crossed;           /* some end took its shard below 0: the marks stopped counting */
    _Atomic uint64_t started_shown; /* highest started keel__work_started_total() returned */

    /* For a thread that could not allocate a shard: shared, so read-modify-writes. */
    _Alignas(CACHE_LINE) _Atomic uint64_t spare_begun;
    _Atomic uint64_t spare_ok;
    _Atomic uint64_t spare_failed;
};

typedef struct cache_slot {
    uint64_t gen;
    shard *shard; /* borrowed from the tracker of generation `gen` */
} cache_slot;

/* Static, never freed: what an end may touch after its publishing store. */
typedef struct drain_slot {
    _Alignas(CACHE_LINE) _Atomic uint32_t waiters; /* drains under way on trackers of this slot */
    _Atomic uint32_t events;                       /* futex word: ends and refusals bump it while a drain waits */
} drain_slot;

typedef struct counts {
    uint64_t begun, ok, failed;
} counts;

/* membarrier(2). */
long keel__work_membarrier(int cmd);
/* The static drain slots (never freed: what an end may touch after its publishing store), and the
 * one of @w. */
extern drain_slot keel__work_drain_slots[DRAIN_SLOTS];
static inline drain_slot *keel__work_slot_of(const keel_work *w)
{
    return &keel__work_drain_slots[w->gen % DRAIN_SLOTS];
}
/* Waits while d->events == @expected, until woken or @until (CLOCK_MONOTONIC, absolute) passes. */
void keel__work_wait_until(drain_slot *d, uint32_t expected, keel_usec_t until);
/* The highest mark of @w's shards, under its lock. */
int64_t keel__work_marks_max(keel_work *w);
/* The sums over the shards (see work-drain.c); exact when no end happened meanwhile. */
counts keel__work_sum(keel_work *w, bool *ret_exact);
uint64_t keel__work_in_flight_of(const counts *c);
