/* SPDX-License-Identifier: MIT */
/*
 * Tokens delivered as files (token.targets, token.dir): a program that cannot ask /token (nginx,
 * a JVM, a shell script) reads `<domain>:role.<role>.token` instead, the JWT alone. Each file is
 * written at start and again after every refresh of the cache, before its token expires; a new
 * file is staged under a temporary name with its mode and group, synced and renamed into place, so
 * a reader sees the old token or the new one, whole, with the right permissions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keel/util.h>

#include "delivery.h"
#include "mode.h"
#include "request.h"
#include "token-service.h"

#define F(field) offsetof(token_files, config.field)
const keel_config_key token_files_config_keys[] = {
    { .key = "token.targets",
      .type = KEEL_CONFIG_LIST,
      .offset = F(targets),
      .def = "[]",
      .help = "domain:role pairs whose tokens are written to token.dir and kept fresh" },
    { .key = "token.dir",
      .type = KEEL_CONFIG_PATH,
      .offset = F(dir),
      .def = "''",
      .help = "where the token of each of token.targets is written, as <domain>:role.<role>.token (required with targets)" },
    { .key = "token.file_mode",
      .type = KEEL_CONFIG_STRING,
      .offset = F(mode),
      .def = "0440",
      .help = "octal mode of the token files: owner and group only (a token is a credential)" },
    { .key = "token.file_group",
      .type = KEEL_CONFIG_STRING,
      .offset = F(group),
      .def = "''",
      .help = "group (name or number) of the token files, for a workload that runs as another user; empty: keel's own" },
    { .key = "token.files_exec",
      .type = KEEL_CONFIG_LIST,
      .offset = F(hooks.exec),
      .def = "[]",
      .help = "a command (argv) run after a refresh rewrote token files" },
    { .key = "token.files_signal",
      .type = KEEL_CONFIG_STRING,
      .offset = F(hooks.signal),
      .def = "''",
      .help = "a signal (HUP, USR1, ...) sent after a refresh rewrote token files to the PID in files_pidfile" },
    { .key = "token.files_pidfile",
      .type = KEEL_CONFIG_PATH,
      .offset = F(hooks.pidfile),
      .def = "''",
      .help = "the pidfile of the program files_signal goes to" },
    { .key = "token.files_hook_timeout",
      .type = KEEL_CONFIG_DURATION,
      .offset = F(hooks.timeout),
      .def = "10s",
      .min = 100000,
      .max = 600LL * 1000000,
      .help = "the most files_exec may run before it is killed" },
};
const size_t token_files_n_config_keys = ELEMENTSOF(token_files_config_keys);

/* "domain:role" into its halves, checked as /token checks its headers. */
static int split_target(const char *target, char **ret_domain, char **ret_role, char *reason, size_t size)
{
    const char *colon = strchr(target, ':');
    if (!colon) {
        (void) snprintf(reason, size, "'%s' is not domain:role", target);
        return -EINVAL;
    }
    _cleanup_free_ char *domain = strndup(target, (size_t) (colon - target)), *role = strdup(colon + 1);
    if (!domain || !role)
        return -ENOMEM;
    int r = token_check_value("the domain", domain, reason, size);
    if (r >= 0)
        r = token_check_value("the role", role, reason, size);
    if (r < 0)
        return r;
    *ret_domain = TAKE_PTR(domain);
    *ret_role = TAKE_PTR(role);
    return 0;
}

static int check_settings(token_service *token, keel_app *app)
{
    token_files *f = &token->files;
    if (delivery_parse_mode(f->config.mode, &f->mode) < 0)
        return keel_app_fail(app, -EINVAL, "token.file_mode '%s' is not an octal mode such as 0440", f->config.mode);
    if (f->mode & 0007)
        return keel_app_fail(
            app, -EINVAL, "token.file_mode %04o lets others read or write the tokens: give the reader the group (token.file_group)",
            (unsigned) f->mode);
    if (delivery_parse_group(f->config.group, &f->gid) < 0)
        return keel_app_fail(app, -EINVAL, "token.file_group '%s' is no group of this system", f->config.group);
    if (!*f->config.dir)
        return keel_app_fail(app, -EINVAL, "token.targets is set: set token.dir too, where the token files go");
    /* A file must be written again before its token expires: the refresh does that. */
    if (token->config.refresh_interval + TOKEN_CACHE_MIN_LEFT >= token->config.expiry)
        return keel_app_fail(app, -EINVAL,
                             "token.targets is set: token.refresh_interval must be shorter than token.expiry less a minute, or "
                             "the token files would expire before they are written again");
    return 0;
}

static int hooks_configure(token_service *token, keel_app *app, size_t n)
{
    const hook_config *h = &token->files.config.hooks;
    if (n == 0 && ((h->exec && h->exec[0]) || *h->signal || *h->pidfile))
        return keel_app_fail(app, -EINVAL,
                             "token.files_exec or files_signal is set: set token.targets too, whose files they tell of");
    char why[256];
    int r = hooks_new(app, "token", "token.files", h, &token->files.hooks, why, sizeof why);
    return r < 0 ? keel_app_fail(app, r, "%s", r == -EINVAL ? why : strerror(-r)) : 0;
}

int token_files_configure(token_service *token, keel_app *app)
{
    token_files *f = &token->files;
    size_t n = keel_strv_length(f->config.targets);
    int r = hooks_configure(token, app, n);
    if (r < 0 || n == 0)
        return r;
    if ((r = check_settings(token, app)) < 0)
        return r;
    if (!(f->domains = calloc(n + 1, sizeof *f->domains)) || !(f->roles = calloc(n + 1, sizeof *f->roles)) ||
        !(f->written = calloc(n + 1, sizeof *f->written)) || !(f->due = calloc(n, sizeof *f->due)))
        return keel_app_fail(app, -ENOMEM, "Out of memory");
    for (size_t i = 0; i < n; i++) {
        char reason[256];
        if ((r = split_target(f->config.targets[i], &f->domains[i], &f->roles[i], reason, sizeof reason)) < 0)
            return keel_app_fail(app, r, "token.targets[%zu]: %s", i, r == -ENOMEM ? "out of memory" : reason);
    }
    f->n = n;
    return 0;
}

static int write_target(token_service *token, size_t i)
{
    token_files *f = &token->files;
    token_minted t = { 0 };
    keel_usec_t now = keel_now_realtime();
    int r = token_cache_get(token->cache, f->domains[i], f->roles[i], now, &t);
    if (r < 0)
        return r;
    if (f->written[i] && streq(f->written[i], t.jwt)) {
        token_minted_done(&t);
        return 0;
    }
    char path[PATH_MAX];
    (void) snprintf(path, sizeof path, "%s/%s:role.%s.token", f->config.dir, f->domains[i], f->roles[i]);
    if ((r = delivery_write(path, t.jwt, strlen(t.jwt), f->mode, f->gid)) >= 0) {
        free(f->written[i]);
        f->written[i] = TAKE_PTR(t.jwt);
        /* Written again with a third of its life left: a reader always finds a token in date,
         * whatever refresh_interval is (an issuer's tokens may live two minutes). */
        f->due[i] = t.expires > now ? now + (t.expires - now) / 3 * 2 : now;
    }
    token_minted_done(&t);
    return r < 0 ? r : 1;
}

int token_files_write(token_service *token, bool at_start)
{
    token_files *f = &token->files;
    int first = 0;
    size_t wrote = 0;
    for (size_t i = 0; i < f->n; i++) {
        int r = write_target(token, i);
        keel_counter_add(r < 0 ? token->file_failures : token->files_written, r < 0 ? 1 : (uint64_t) (r > 0));
        wrote += r > 0;
        if (r < 0 && first == 0)
            first = r;
        if (r < 0)
            keel_log_service_errno("token", at_start ? KEEL_LOG_ERROR : KEEL_LOG_WARNING, r,
                                   "Failed to write the token of domain[%s] role[%s] to '%s': %m%s", f->domains[i], f->roles[i],
                                   f->config.dir, at_start ? "" : "; the file keeps the last one");
    }
    keel_usec_t earliest = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->written[i] && (earliest == 0 || f->due[i] < earliest))
            earliest = f->due[i];
    atomic_store(&f->rewrite_at, earliest);
    if (wrote > 0)
        keel_log_service("token", KEEL_LOG_INFO, "Wrote %zu of %zu token files in '%s'", wrote, f->n, f->config.dir);
    /* The files of a start are read when their program starts: the hooks tell of later ones. */
    if (wrote > 0 && !at_start)
        hooks_notify(f->hooks);
    return first;
}

keel_usec_t token_files_due_in(token_service *token, keel_usec_t now)
{
    keel_usec_t at = atomic_load(&token->files.rewrite_at);
    return at == 0 ? KEEL_USEC_INFINITY : at > now ? at - now : 0;
}

int token_files_start(token_service *token)
{
    return hooks_start(token->files.hooks);
}

/* keel init: the token files, their fetches from an OAuth2 issuer tried again with a backoff
 * until init.timeout; a stop ends it as a failure (exit 1). The agent's own key mints or fails at
 * once. Nothing serves and no task runs. */
int token_files_write_in_init(token_service *token, keel_app *app)
{
    keel_usec_t deadline = keel_now() + agent_init_timeout(app), backoff = KEEL_USEC_PER_SEC;
    token->cancel_fd = keel_app_stop_fd(app);
    int r;
    while ((r = token_files_write(token, true)) < 0 && token->issuer && !keel_app_stop_requested(app) &&
           keel_now() + backoff < deadline) {
        char d[32];
        keel_log_service("token", KEEL_LOG_WARNING, "Trying the token files again in %s",
                         keel_format_duration(backoff, d, sizeof d));
        if (keel_app_wait(app, backoff) < 0)
            break;
        backoff = KEEL_MIN(backoff * 2, 30 * KEEL_USEC_PER_SEC);
    }
    if (r < 0)
        return keel_app_fail(app, keel_app_stop_requested(app) ? -EINTR : -EIO,
                             "Cannot write the token files of token.targets in '%s'%s", token->files.config.dir,
                             keel_app_stop_requested(app) ? ": keel init stopped" : " (see above)");
    return 0;
}

void token_files_free(token_service *token)
{
    token_files *f = &token->files;
    f->hooks = hooks_free(f->hooks);
    for (size_t i = 0; f->written && i < f->n; i++)
        free(f->written[i]); /* NULL until first written: not a NULL-terminated list */
    free(f->written);
    f->written = NULL;
    free(f->due);
    f->due = NULL;
    f->domains = keel_strv_free(f->domains);
    f->roles = keel_strv_free(f->roles);
    f->n = 0;
}
