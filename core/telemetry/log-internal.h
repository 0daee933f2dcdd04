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

/* While a request's handler runs on this thread, records carry its id (KEEL_REQUEST_ID=, and
 * "request_id" in JSON), which @id returns for @request when a record needs it. NULL @request
 * ends it. */
void keel__log_context_request(const char *(*id)(const void *request), const void *request);

/*
 * The lifecycle's messages, with journald MESSAGE_IDs (documented for `journalctl -x` in
 * conf/keel.catalog) and extra fields, "NAME=value" strings NULL-terminated (may be NULL).
 */
int keel__log_struct(keel_log_level level, int error, const char *message_id, const char *const *fields, const char *file, int line,
                     const char *func, const char *fmt, ...) KEEL_PRINTF(8, 9);
#define keel__log_message(level, id, fields, ...)                                                                                  \
    keel__log_struct((level), 0, (id), (fields), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define KEEL_MESSAGE_STARTING      "1052e29176b54768a0288c49dce70895" /* start begins: the command's services start */
#define KEEL_MESSAGE_READY         "6fe7ba6ccb85474496f85eb399b752c9" /* READY=1 was sent */
#define KEEL_MESSAGE_RELOADED      "7d0e9e78d55e4ddeb51792d26c80e703" /* a refresh applied */
#define KEEL_MESSAGE_RELOAD_FAILED "cae5ee4e00ba4229a20548a0773f3b40" /* a refresh failed: the old configuration stays */
#define KEEL_MESSAGE_STOPPING      "a53d579f69564c0a8fc4a170ec98848a" /* the run was cancelled: KEEL_CAUSE= */
#define KEEL_MESSAGE_FORCED        "f0980b3bf2d0409ba4871e23b9cdf48e" /* the stop overran shutdown.timeout */
#define KEEL_MESSAGE_EXITED        "02d048f96c22482b9dc524b5c32c2855" /* the process ends: EXIT_STATUS= */
