/* SPDX-License-Identifier: MIT */
/* The token service's tasks (token-service.h): the refresh task, which mints every cached pair
 * again each token.refresh_interval and writes the token files after it, and the memory reporter. */
#include <stdio.h>
#include <unistd.h>

#include <keel/keel.h>
#include <keel/util.h>

#include "token-service.h"

static void refresh_once(token_service *token)
{
    int r = keel_point_before("token.refresh");
    if (r >= 0)
        r = keel_point_in("token.refresh");
    if (r < 0) {
        keel_counter_add(token->refresh_failed, 1);
        keel_log_service("token", KEEL_LOG_WARNING, "Failed to refresh tokens: %s, ignoring", KEEL_FAULT_MESSAGE);
        return;
    }
    if (keel_work_begin(token->work) < 0) /* draining: the server is stopping */
        return;
    size_t failed = 0;
    r = token_cache_refresh(token->cache, keel_now_realtime(), &failed);
    if (r >= 0)
        (void) token_files_write(token, false); /* each failure logged and counted */
    keel_work_end(token->work, r >= 0 && failed == 0);
    keel_counter_add(r >= 0 && failed == 0 ? token->refreshed : token->refresh_failed, 1);
    if (r < 0)
        keel_log_service_errno("token", KEEL_LOG_WARNING, r, "Failed to refresh tokens: %m, ignoring");
    else
        keel_log_service("token", failed ? KEEL_LOG_WARNING : KEEL_LOG_INFO, "Refreshed %d tokens, %zu failed%s", r, failed,
                         failed ? " (still served while valid)" : "");
}

/* After a wake the delay is a remainder, or the token files' own: the log says of what. */
static void log_schedule(keel_usec_t delay, keel_usec_t interval, bool woken, bool files)
{
    char d[32], i[32];
    keel_format_duration(delay, d, sizeof d);
    keel_format_duration(interval, i, sizeof i);
    if (files)
        keel_log_service("token", KEEL_LOG_INFO,
                         "Will refresh tokens after %s, before a token file's token has a third of its life left", d);
    else if (woken)
        keel_log_service("token", KEEL_LOG_INFO,
                         "Will refresh tokens after %s (refresh_interval %s, counted from the last refresh)", d, i);
    else
        keel_log_service("token", KEEL_LOG_INFO, "Will refresh tokens after %s", d);
}

/* A wake (a new refresh_interval) waits only what is left of the new interval since the last
 * refresh, or refreshes at once when that is past, instead of a whole interval from the reload. */
static void refresh_task(keel_task *task, void *userdata)
{
    token_service *token = userdata;
    keel_usec_t last = keel_now(), backoff = KEEL_USEC_PER_SEC; /* the last refresh, or the start */
    for (int w = 0; w >= 0;) {
        keel_usec_t interval = atomic_load(&token->refresh_interval);
        keel_usec_t delay = w > 0 ? keel_usec_left(last, keel_now(), interval) : interval;
        /* A token file's token may end sooner (an issuer's lifetime, an expiry a reload made short):
         * then sooner. One still due after a refresh (its issuer failing) is tried again after 1 s,
         * 2 s, 4 s ..., not at every turn. */
        keel_usec_t files = token_files_due_in(token, keel_now_realtime());
        bool by_files = files < delay;
        if (by_files && files == 0)
            delay = backoff, backoff = KEEL_MIN(backoff * 2, interval);
        else if (by_files)
            delay = files, backoff = KEEL_USEC_PER_SEC;
        log_schedule(delay, interval, w > 0, by_files);
        w = keel_task_wait(task, delay);
        if (w == 0) {
            refresh_once(token);
            last = keel_now();
        }
    }
}

/* Resident set size in bytes from /proc/self/statm, or a negative errno. */
static int64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size, resident;
    if (!f)
        return -errno;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    (void) fclose(f);
    return n == 2 ? (int64_t) resident * sysconf(_SC_PAGESIZE) : -EIO;
}

static void report_memory(token_service *token)
{
    token_cache_stats st;
    int64_t rss = rss_bytes();
    token_cache_get_stats(token->cache, &st);
    if (rss < 0) {
        keel_log_service_errno("token", KEEL_LOG_WARNING, (int) rss, "Failed to read /proc/self/statm: %m, ignoring");
        return;
    }
    keel_log_service("token", KEEL_LOG_INFO, "Memory: rss[%.1fMiB] token cache entries[%zu] bytes[%zu]", (double) rss / 1048576.0,
                     st.entries, st.bytes);
}

/* The group's wakes are for the refresh task (a new refresh_interval): woken, this one only goes
 * back to sleep for what is left of its interval, and reports on time. */
static void memory_task(keel_task *task, void *userdata)
{
    token_service *token = userdata;
    keel_usec_t last = 0;
    for (int w = 0; w >= 0;) {
        if (w == 0) {
            report_memory(token);
            last = keel_now();
        }
        w = keel_task_wait(task, keel_usec_left(last, keel_now(), token->config.memory_report_interval));
    }
}

static int spawn(token_service *token, keel_app *app, const char *point, const char *role, keel_task_handler_t fn)
{
    int r = keel_task_group_spawn(token->tasks, point, role, fn, token);
    if (r < 0)
        return keel_app_fail(app, r, "Failed to spawn the token %s task: %s", role, strerror(-r));
    return 0;
}

int token_tasks_start(token_service *token, keel_app *app)
{
    if (!(token->tasks = keel_task_group_new(app, "token")))
        return keel_app_fail(app, -ENOMEM, "Failed to allocate the token task group");
    int r = spawn(token, app, "token.spawn.refresh", "refresh", refresh_task);
    if (r >= 0)
        r = spawn(token, app, "token.spawn.memory", "memory", memory_task);
    return r;
}
