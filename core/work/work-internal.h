/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/work.h>

/* Prepares the trackers of this process (the thread-exit hook, membarrier registration). Cheap
 * only while the process has one thread: the kernel then skips the RCU grace period it otherwise
 * waits for (measured: 3 us against 14 ms), so keel_app_run() calls it before any thread exists.
 * Idempotent; keel_work_new() calls it too. */
void keel__work_setup(void);

/* For tests and benchmarks: turn the membarrier fast path off (or back on) for trackers created
 * afterwards; returns whether trackers created now use it. */
bool keel__work_use_membarrier(bool enable);
/* For tests: the number of shards @w has handed out. */
size_t keel__work_n_shards(const keel_work *w);

/* keel_work_stats.started as a counter may show it: never below a value it returned. A snapshot
 * counts a begin being refused until its undo, so started alone can go back by one. */
uint64_t keel__work_started_total(keel_work *w);
