/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>

#include <keel/common.h>

/*
 * The lifecycle trace (--trace FILE, keel(1)): a Chrome trace-event JSON file that Perfetto
 * opens, {"traceEvents":[ ... ]}. Every record is written with one write(2) on an O_APPEND fd, so
 * records of several threads never interleave and the file is complete up to its last record
 * even when the process dies. Closing appends a process_name metadata record and "]}"; it runs
 * on keel__trace_close(), at exit() and on a fatal signal (SIGSEGV, SIGBUS, SIGABRT, SIGFPE,
 * SIGILL), so the document parses whenever the process ends by any path but SIGKILL (or _exit()).
 * Only the process that opened the trace closes it: a forked child that exits leaves it alone.
 *
 * With "-" instead of a path, each record is one readable line on stderr instead:
 *   trace: event start 12.345ms
 *   trace: phase start.before 0.120ms
 *   trace: observer start.during token.start ok 1.234ms
 *   trace: observer start.during metrics.start error 0.010ms: test error
 *   trace: spawn token.spawn.refresh
 * Timestamps are CLOCK_MONOTONIC microseconds (keel_now()). Every function is thread-safe.
 */

/* Arguments of an observer call; NULL members are left out. */
typedef struct keel_trace_args {
    const char *event;  /* "start" */
    const char *phase;  /* "during" */
    const char *result; /* "ok", "error" or "skipped" */
    const char *error;  /* the error message, when there is one */
} keel_trace_args;

/*
 * Starts tracing to @path, created or truncated with mode 0644, or to stderr as readable lines
 * when @path is "-". Returns 0, -EINVAL when @path is NULL or empty, -EBUSY when a trace is
 * already open, or the -errno of open(2)/write(2).
 */
int keel__trace_open(const char *path);
/* Finishes the trace and stops tracing; idempotent, and a no-op when no trace is open. */
void keel__trace_close(void);
/* The same from a signal handler: async-signal-safe, waits at most 100 ms for writers. */
void keel__trace_close_from_signal(void);

/* Whether a trace is open; a relaxed load, for call sites to skip building a record. */
extern atomic_bool keel__trace_on;
static inline bool keel__trace_enabled(void)
{
    return atomic_load_explicit(&keel__trace_on, memory_order_relaxed);
}

/*
 * Records a complete event ("ph":"X") of category @cat ("event", "phase", "observer") named
 * @name that started at @start and lasted @dur (both usec). @args may be NULL. Long strings are
 * cut (at a UTF-8 boundary) so that the record always fits one write. No-op when not tracing.
 */
void keel__trace_complete(const char *cat, const char *name, keel_usec_t start, keel_usec_t dur, const keel_trace_args *args);
/*
 * Records an instant event ("ph":"i", process scope) of category @cat ("spawn", "signal",
 * "refresh", "point") named @name, now; @detail (may be NULL) becomes "args":{"detail":…}.
 * No-op when not tracing.
 */
void keel__trace_instant(const char *cat, const char *name, const char *detail);
/* Names the calling thread in the trace (a thread_name metadata record: Perfetto labels its track
 * with it); nothing in the readable-lines mode. */
void keel__trace_thread_name(const char *name);
