/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Points are named places in a run (an observer, a thread spawn, a refresh attempt, an HTTP
 * request). Each records to the lifecycle trace, is a USDT probe (provider `keel`, probes
 * `point__before` and `point__in`) and may fire a fault injected through $KEEL_FAULT.
 */

/**
 * Just before the work of @point starts. Fires the `before` faults for it, all of them in spec
 * order: sends the signal of `sigint`/`sigterm`/`sighup` to the process (kill(), not raise(), so
 * the main thread's signalfd sees it), sleeps for `sleep=MS`, and returns -EIO for `error` (the
 * caller fails the point with "test error"). Records an instant trace event: category "spawn" for
 * names containing ".spawn.", "refresh" for names ending in ".refresh", else "point" (the
 * observers' own points are complete events the state machine records instead). Returns 0
 * otherwise, -EINVAL when @point is NULL. Without faults or tracing it costs a few loads: no
 * system call, no lock.
 */
KEEL_API int keel_point_before(const char *point);
/**
 * Inside the work of @point: fires its `in` faults the same way. Returns -EIO for `error`,
 * -EINVAL when @point is NULL, else 0.
 */
KEEL_API int keel_point_in(const char *point);
/**
 * keel_point_before() for callers that must not block: fires the signal and error faults, and
 * leaves the `sleep=MS` ones to the caller, which gets their length from keel_point_before_delay().
 */
KEEL_API int keel_point_before_nowait(const char *point);
/** The sum of the `sleep=MS` of the `before` faults for @point, in microseconds, without sleeping. */
KEEL_API keel_usec_t keel_point_before_delay(const char *point);
/**
 * keel_point_in() for callers that must not block: fires the signal and error faults, and leaves
 * the `sleep=MS` ones to the caller, which gets their length from keel_point_in_delay().
 */
KEEL_API int keel_point_in_nowait(const char *point);
/**
 * The sum of the `sleep=MS` of the `in` faults for @point, in microseconds, or 0 (also for a NULL
 * @point), without sleeping: for callers that must not block (an HTTP handler suspends its
 * connection for that long instead of sleeping).
 */
KEEL_API keel_usec_t keel_point_in_delay(const char *point);
/** The message an injected `error` fault carries. */
#define KEEL_FAULT_MESSAGE "test error"

#ifdef __cplusplus
}
#endif
