/* SPDX-License-Identifier: MIT */
#pragma once

/* Telling another program that a credential it reads changed (certificate.out_*, token.files_*):
 * an exec hook (an argv run with a timeout, its exit status and output logged) and a signal hook
 * (a signal to the PID in a pidfile). They run on a task of their own, off the main loop, one run
 * at a time; a failed run is retried with a backoff (1 s doubling to 5 min) until one succeeds,
 * and a change during the backoff runs them at once. */

#include <keel/keel.h>

typedef struct hook_config {
    char **exec;   /* argv (the first found in PATH), or empty */
    char *signal;  /* "SIGHUP", "HUP", or "" */
    char *pidfile; /* with signal: the PID to send it to */
    keel_usec_t timeout;
} hook_config;

typedef struct hooks hooks;

/*
 * Checks @c (the keys named with @prefix, "certificate.out" or "token.files", in the reason) and
 * makes the runner of its hooks into *@ret: NULL when none is configured. Logs as @service and
 * counts each run in keel_hooks_total{target=@prefix,result}. Returns 0, -EINVAL with the reason
 * in @error, or -ENOMEM.
 */
int hooks_new(keel_app *app, const char *service, const char *prefix, const hook_config *c, hooks **ret, char *error, size_t size);
/* From a start observer: spawns the runner's task ("<service>.spawn.hooks"). Accepts NULL. */
int hooks_start(hooks *h);
/* A change the program must be told of: the hooks run once more, soon (any thread; accepts NULL). */
void hooks_notify(hooks *h);
/* Stops the runner (a hook running is killed) and frees it. Accepts NULL; returns NULL. */
hooks *hooks_free(hooks *h);
