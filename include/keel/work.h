/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/common.h>

/** Lock-free counters of a component's work in flight, and the gate that refuses it while draining. */
typedef struct keel_work keel_work;

/** A consistent-enough snapshot of a tracker (each counter is read atomically on its own). */
typedef struct keel_work_stats {
    uint64_t in_flight;
    uint64_t peak;    /* highest in_flight seen */
    uint64_t started; /* begins that were admitted */
    uint64_t succeeded;
    uint64_t failed;
    uint64_t rejected; /* begins refused because the tracker was draining */
    bool draining;
} keel_work_stats;

/** Called by keel_work_drain() every progress interval while work is still in flight. */
typedef void (*keel_work_progress_handler_t)(keel_work *w, const keel_work_stats *stats, keel_usec_t left, void *userdata);

/** How often keel_work_drain() reports progress. */
#define KEEL_WORK_PROGRESS_USEC (500 * KEEL_USEC_PER_MSEC)

/** Creates a tracker for component @name. NULL when out of memory. */
KEEL_API keel_work *keel_work_new(const char *name);
/** Frees @w; accepts NULL; returns NULL. Work must not be in flight. */
KEEL_API keel_work *keel_work_free(keel_work *w);
/** The component's name. */
KEEL_API const char *keel_work_name(const keel_work *w);

/** Admits one unit of work: 0, or -ESHUTDOWN (counted as rejected) once draining. Thread-safe. */
KEEL_API int keel_work_begin(keel_work *w);
/** Ends one admitted unit of work as succeeded or failed. Thread-safe. */
KEEL_API void keel_work_end(keel_work *w, bool ok);

/** Closes the gate: every later keel_work_begin() is refused. Idempotent. */
KEEL_API void keel_work_close(keel_work *w);
/**
 * Closes the gate and waits until no work is in flight or @deadline (CLOCK_MONOTONIC) passes,
 * calling @progress (when not NULL) every KEEL_WORK_PROGRESS_USEC meanwhile. Returns 0 as soon as
 * in-flight reaches 0, -ETIMEDOUT at the deadline.
 */
KEEL_API int keel_work_drain(keel_work *w, keel_usec_t deadline, keel_work_progress_handler_t progress, void *userdata);
/** Fills @ret with the current counters. */
KEEL_API void keel_work_get_stats(const keel_work *w, keel_work_stats *ret);
