/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a symbol as part of Keel's public API; everything else has hidden visibility. */
#define KEEL_API __attribute__((visibility("default")))

/** printf-style format checking for the function it marks. */
#define KEEL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/**
 * The size of the buffer a function that can say why it failed writes its one-line reason into:
 * its last parameter, `char *error`, may be NULL, and is written only on failure. The same for
 * every such function of the API; an observer says why it failed with keel_app_fail() instead.
 */
#define KEEL_ERROR_MAX 256

/** Microseconds, the unit of every time value in Keel's API (CLOCK_MONOTONIC unless named). */
typedef uint64_t keel_usec_t;

/** A duration or deadline that never arrives. */
#define KEEL_USEC_INFINITY ((keel_usec_t) UINT64_MAX)
#define KEEL_USEC_PER_MSEC ((keel_usec_t) 1000ULL)
#define KEEL_USEC_PER_SEC  ((keel_usec_t) 1000000ULL)

/** The current CLOCK_MONOTONIC time in microseconds. Never fails. */
KEEL_API keel_usec_t keel_now(void);

/** The current CLOCK_REALTIME time in microseconds since the epoch (certificate dates, token claims). */
KEEL_API keel_usec_t keel_now_realtime(void);

/** @usec as Go's time.Duration prints it ("24h0m0s", "1m30s", "1.5s", "250ms", "7µs", "0s"), for
 * logs in the form operators of the Go peers know. Writes at most @size bytes; returns @buf. */
KEEL_API char *keel_format_duration(keel_usec_t usec, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
