/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A group of threads owned by one service: spawned together in start, stopped and joined in stop.
 * The group's functions are for the main thread, but keel_task_group_stop() and
 * keel_task_group_wake(), which are safe on any thread; a task's are for the task itself.
 */
typedef struct keel_task_group keel_task_group;
/** One thread of a group; valid from its spawn until its group is joined. */
typedef struct keel_task keel_task;

/** A task's body. Returns when it is done or when keel_task_wait() says the group is stopping. */
typedef void (*keel_task_handler_t)(keel_task *task, void *userdata);

/** Creates an empty group for @service ("token"), owned by the caller. NULL when out of memory. */
KEEL_API keel_task_group *keel_task_group_new(keel_app *app, const char *service);
/** Stops and joins every task of @g, then frees it. Accepts NULL; returns NULL. */
KEEL_API keel_task_group *keel_task_group_free(keel_task_group *g);

/**
 * Starts a thread named "<service>-<role>" (cut to 15 characters) running @fn. Allowed only
 * from an observer of the `start` event: anywhere else returns -EPERM. @point (e.g.
 * "token.spawn.refresh") is recorded in the trace just before the thread is created and may fire
 * an injected fault (an `error` fault returns -EIO without spawning). Returns -ESHUTDOWN once
 * the group was stopped, -EAGAIN or -ENOMEM when the thread cannot be created.
 */
KEEL_API int keel_task_group_spawn(keel_task_group *g, const char *point, const char *role, keel_task_handler_t fn, void *userdata);

/** Asks every task of @g to stop: their keel_task_wait() returns -ECANCELED at once. Idempotent. */
KEEL_API void keel_task_group_stop(keel_task_group *g);
/** Stops every task of @g and waits for each to return. Returns the number of tasks joined. */
KEEL_API size_t keel_task_group_join(keel_task_group *g);
/** Tasks spawned and not yet joined. */
KEEL_API size_t keel_task_group_count(keel_task_group *g);

/**
 * Wakes every task of @g: its keel_task_wait() returns 1 — at once if it sleeps, else at its
 * next call, so a wake is never lost — without stopping it. For a change a task must act on at
 * once, such as a new refresh interval after a reload. Accepts NULL.
 */
KEEL_API void keel_task_group_wake(keel_task_group *g);

/**
 * Sleeps up to @usec (KEEL_USEC_INFINITY: until stopped). Returns 0 when the time passed, 1 when
 * keel_task_group_wake() woke it first, or -ECANCELED as soon as the group is asked to stop (also when
 * it already was).
 */
KEEL_API int keel_task_wait(keel_task *t, keel_usec_t usec);
/** Whether the task's group is asked to stop. */
KEEL_API bool keel_task_stopping(keel_task *t);
/** The thread's name ("token-refresh"). */
KEEL_API const char *keel_task_name(const keel_task *t);

#ifdef __cplusplus
}
#endif
