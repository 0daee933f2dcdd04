/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Counters of a component's work in flight, and the gate that refuses it while draining. Begins
 * and ends of different threads do not contend with each other. Memory grows with the number of
 * threads that used the tracker at the same time, not with the number of threads that ever did.
 */
typedef struct keel_work keel_work;

/**
 * A snapshot of a tracker. started == succeeded + failed + in_flight always holds, and succeeded
 * and failed never go backwards. Each thread's counts are read at one instant, the threads one
 * after another: while a unit moves from one thread to another (begun on one, ended on the other)
 * a snapshot may see its end before its begin, and in_flight then stays at 0 instead of going
 * below. peak and rejected are read on their own. A begin that is being refused is counted in
 * in_flight and started for the few nanoseconds before it is undone.
 *
 * peak is exact when all of the tracker's work begins and ends on one thread (an HTTP server's
 * polling thread), and a lower bound otherwise: an exact peak across threads would cost every
 * begin a shared atomic read-modify-write. It is the highest of each thread's own in-flight count
 * (until the first unit ends on another thread than the one it began on) and of the in_flight
 * totals computed by keel_work_get_stats() and keel_work_drain() while no work ended.
 */
typedef struct keel_work_stats {
    uint64_t in_flight;
    uint64_t peak;    /* highest in_flight known: see above */
    uint64_t started; /* begins that were admitted */
    uint64_t succeeded;
    uint64_t failed;
    uint64_t rejected; /* begins refused: the tracker was draining */
    bool draining;
} keel_work_stats;

/** Called by keel_work_drain() every progress interval while work is still in flight. */
typedef void (*keel_work_progress_handler_t)(keel_work *w, const keel_work_stats *stats, keel_usec_t left, void *userdata);

/** How often keel_work_drain() reports progress. */
#define KEEL_WORK_PROGRESS_USEC (500 * KEEL_USEC_PER_MSEC)

/**
 * Creates an open tracker for component @name (copied). NULL with errno EINVAL when @name is NULL,
 * ENOMEM when out of memory. The first tracker of a process costs a one-time set-up of some
 * milliseconds, unless keel_app_run() did it already (as it does, while it is the only thread).
 */
KEEL_API keel_work *keel_work_new(const char *name);
/** Frees @w; accepts NULL; returns NULL. Work must not be in flight. */
KEEL_API keel_work *keel_work_free(keel_work *w);
/** The component's name; NULL when @w is NULL. */
KEEL_API const char *keel_work_name(const keel_work *w);

/**
 * Admits one unit of work: 0, or -ESHUTDOWN (counted as rejected) once draining, -EINVAL when @w
 * is NULL. There is no limit on the units in flight. Thread-safe, with no system call and no lock
 * on the common path; a thread's first begin or end on @w, or one after the thread used many other
 * trackers in between, may take a lock. A thread that alternates between a few trackers does not.
 */
KEEL_API int keel_work_begin(keel_work *w);
/**
 * Ends one admitted unit of work as succeeded or failed; the unit may have begun on another
 * thread. Thread-safe and as cheap as keel_work_begin(), except while a drain waits, when it may
 * also wake the drainer (a system call). Once it returns, a drainer may free @w: the caller must
 * not touch @w afterwards unless it holds another unit.
 */
KEEL_API void keel_work_end(keel_work *w, bool ok);

/** Closes the gate: every later keel_work_begin() is refused. Idempotent. */
KEEL_API void keel_work_close(keel_work *w);
/**
 * Closes the gate and waits until no work is in flight or @deadline (CLOCK_MONOTONIC) passes,
 * calling @progress (when not NULL) every KEEL_WORK_PROGRESS_USEC meanwhile. Returns 0 as soon as
 * in-flight reaches 0, -ETIMEDOUT at the deadline (KEEL_USEC_INFINITY: never), -EINVAL when @w
 * is NULL. @progress gets the stats and the time left (KEEL_USEC_INFINITY without a deadline).
 * Once it returned 0, no unit is in flight and none can start: @w may be freed.
 */
KEEL_API int keel_work_drain(keel_work *w, keel_usec_t deadline, keel_work_progress_handler_t progress, void *userdata);
/** Fills @ret with the current counters; does nothing when @w or @ret is NULL. */
KEEL_API void keel_work_get_stats(const keel_work *w, keel_work_stats *ret);

/**
 * A keel_work_progress_handler_t for stop observers; @userdata is the keel_app. Logs at info level
 * what @w still waits for ("Waiting for token: 3 in flight, 12.5s left") and keeps the service
 * manager's stop timeout extended through keel_app_stop_progress().
 */
KEEL_API void keel_app_drain_progress(keel_work *w, const keel_work_stats *stats, keel_usec_t left, void *userdata);

#ifdef __cplusplus
}
#endif
