/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>

/* Tasks that run jobs off the polling thread: the token requests whose answer waits on the OAuth2
 * issuer (workers.c). */
typedef struct token_workers token_workers;

typedef void (*token_job_fn)(void *job, void *userdata);

/* Spawns @n tasks ("token-issuer") running each pushed job with @run; from a start observer. At
 * free, jobs never run are given to @cancel. *@ret is set even on failure (free it). */
int token_workers_start(keel_app *app, unsigned n, token_job_fn run, token_job_fn cancel, void *userdata, token_workers **ret);
/* Queues @job; any thread. -ENOMEM. */
int token_workers_push(token_workers *w, void *job);
/* Stops and joins the tasks (a job under way finishes), cancels the rest. Accepts NULL; returns NULL. */
token_workers *token_workers_free(token_workers *w);
