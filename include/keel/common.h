/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Marks a symbol as part of Keel's public API; everything else has hidden visibility. */
#define KEEL_API __attribute__((visibility("default")))

/** printf-style format checking for the function it marks. */
#define KEEL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/** Microseconds, the unit of every time value in Keel's API (CLOCK_MONOTONIC unless named). */
typedef uint64_t keel_usec_t;

/** A duration or deadline that never arrives. */
#define KEEL_USEC_INFINITY ((keel_usec_t) UINT64_MAX)
#define KEEL_USEC_PER_MSEC ((keel_usec_t) 1000ULL)
#define KEEL_USEC_PER_SEC  ((keel_usec_t) 1000000ULL)

/** The current CLOCK_MONOTONIC time in microseconds. Never fails. */
KEEL_API keel_usec_t keel_now(void);
