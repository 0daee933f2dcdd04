/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/log.h>

/* The state machine tells the logger what runs on this thread, so every record from inside an
 * observer carries event, phase and observer fields without the observer passing them. */
void keel__log_context_set(const char *event, const char *phase, const char *observer);

/* Where records go; tests point it at a pipe. -EBADF restores stderr. */
void keel__log_set_fd(int fd);
/* core/daemon.c: stderr is /dev/null from now on; the "auto" format picks the journal if there is one. */
void keel__log_detached(void);
