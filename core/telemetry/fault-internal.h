/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Faults injected through $KEEL_FAULT (keel(1)): a comma-separated list of ACTION@WHEN:POINT.
 * The set is parsed once at start-up on the main thread, before any thread exists, and is only
 * read afterwards; keel_point_before() and keel_point_in() fire it.
 *
 *   ACTION  error | sigint | sigterm | sighup | sleep=MS   (MS from 1 to KEEL_FAULT_SLEEP_MSEC_MAX)
 *   WHEN    before | in
 *   POINT   [a-z0-9_.-]+, at most KEEL_FAULT_POINT_MAX - 1 characters
 *
 * Blanks (spaces and tabs) around an element are ignored ("error@in:a, sleep=5@in:b"); inside
 * one they are an error. An empty or blank spec means no faults.
 */

/* When a fault fires: keel_point_before() or keel_point_in(). */
typedef enum keel_fault_when {
    KEEL_FAULT_BEFORE,
    KEEL_FAULT_IN,
    _KEEL_FAULT_WHEN_MAX,
    _KEEL_FAULT_WHEN_INVALID = -EINVAL,
} keel_fault_when;

/* What a fault does: fail the point with -EIO, send a signal to the process, or sleep. */
typedef enum keel_fault_action {
    KEEL_FAULT_ERROR,
    KEEL_FAULT_SIGINT,
    KEEL_FAULT_SIGTERM,
    KEEL_FAULT_SIGHUP,
    KEEL_FAULT_SLEEP,
    _KEEL_FAULT_ACTION_MAX,
    _KEEL_FAULT_ACTION_INVALID = -EINVAL,
} keel_fault_action;

/* Bounds of a spec: faults in it, length of a point name, longest sleep (one hour). */
#define KEEL_FAULTS_MAX           32
#define KEEL_FAULT_POINT_MAX      64 /* including the NUL */
#define KEEL_FAULT_SLEEP_MSEC_MAX 3600000U

/* One parsed ACTION@WHEN:POINT. */
typedef struct keel_fault {
    keel_fault_action action;
    keel_fault_when when;
    unsigned sleep_msec; /* KEEL_FAULT_SLEEP only */
    char point[KEEL_FAULT_POINT_MAX];
} keel_fault;

/* The number of faults configured; read through keel__faults_any() and keel__faults_get(). */
extern _Atomic size_t keel__faults_n;

/* Whether any fault is configured: one load and compare, the whole cost of a point without faults. */
static inline bool keel__faults_any(void)
{
    return atomic_load_explicit(&keel__faults_n, memory_order_acquire) > 0;
}

/* The configured faults in spec order (several may name the same point); their number in @ret_n. */
const keel_fault *keel__faults_get(size_t *ret_n);

/*
 * Parses @spec and replaces the configured faults with it. On a malformed spec returns -EINVAL,
 * leaves the configured faults alone and, when @ret_error is not NULL, stores there a message
 * naming the bad part (malloc'd; the caller frees it), e.g. "KEEL_FAULT: bad action 'eror' in
 * 'eror@in:metrics.start' (expected error, sigint, sigterm, sighup or sleep=MS)". -ENOMEM when
 * the message cannot be allocated. @ret_error is not touched on success.
 */
int keel__faults_parse(const char *spec, char **ret_error);
/* keel__faults_parse() of $KEEL_FAULT; unset or empty clears the faults. */
int keel__faults_from_env(char **ret_error);
/* keel_point_before() for an observer's own point, which the machine traces as a complete event:
 * no instant event. */
int keel__point_before_observer(const char *point);
/* Removes every configured fault. */
void keel__faults_clear(void);

/* "error", "sigint", "sigterm", "sighup", "sleep"; NULL when out of range. */
const char *keel__fault_action_to_string(keel_fault_action a);
/* "before", "in"; NULL when out of range. */
const char *keel__fault_when_to_string(keel_fault_when w);
