/* SPDX-License-Identifier: MIT */
/* Keeping the credential fresh: the refresh task (renew at refresh_interval or half the remaining
 * lifetime, jittered, with backoff after failures) and, for the file provider, an inotify watch of
 * the files that reloads them when they change. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <time.h>

#include "certificate-service.h"
#include "openssl-util.h"

/* Editors and `cp` write a file in several steps: reload once they are quiet this long. */
#define DEBOUNCE (200 * KEEL_USEC_PER_MSEC)

/* Until the next renewal: at the point picked in the ACME server's renewal window (acme-ari.c),
 * which is random already; else what is left of refresh_interval since @last (CLOCK_MONOTONIC: the
 * last attempt, or the start) or half what is left of the certificate, the sooner; at once when it
 * is due. The certificate's part is read against the wall clock at each call, so a step of it
 * counts at the next wake (clock.c). */
static keel_usec_t next_delay(cert_service *s, keel_usec_t last)
{
    _cleanup_(credential_unrefp) credential *c = identity_get(s->identity, IDENTITY_CURRENT);
    keel_usec_t nb = c ? credential_not_before(c) : 0, na = c ? credential_not_after(c) : 0, ari;
    if (cert_ari_delay(s, nb, na, &ari))
        return ari;
    keel_usec_t left = keel_usec_left(last, keel_now(), atomic_load(&s->interval));
    return cert_jitter(cert_renew_delay(keel_now_realtime(), nb, na, left));
}

bool cert_current_due(cert_service *s)
{
    _cleanup_(credential_unrefp) credential *c = identity_get(s->identity, IDENTITY_CURRENT);
    return c && cert_due(keel_now_realtime(), credential_not_before(c), credential_not_after(c));
}

/* One attempt: the point `certificate.refresh`, a new credential stored, then published. */
static int refresh_once(cert_service *s, cert_error *e)
{
    keel_counter_add(s->refreshes, 1);
    int r = keel_point_before("certificate.refresh");
    if (r >= 0)
        r = keel_point_in("certificate.refresh");
    if (r < 0)
        return cert_fail(e, r, KEEL_FAULT_MESSAGE);

    return cert_reload(s, false, e);
}

/* After a wake the delay is a remainder, or a point in an ACME renewal window: the log says of what. */
static void log_schedule(cert_service *s, keel_usec_t delay, bool woken)
{
    char d[64], i[64], why[128] = "";
    keel_format_duration(delay, d, sizeof d);
    if (atomic_load(&s->ari.renew_at))
        (void) snprintf(why, sizeof why, " (in the ACME server's renewal window)");
    else if (woken)
        (void) snprintf(why, sizeof why, " (refresh_interval %s, counted from the last refresh)",
                        keel_format_duration(atomic_load(&s->interval), i, sizeof i));
    CERT_LOG(KEEL_LOG_INFO, "Will refresh key[%s], cert[%s] with provider[%s], backup[%s] after %s%s", s->key_path, s->cert_path,
             cert_source_name(s), cert_backup_name(s->config.backup), d, why);
}

/* The wait after @backoff: jittered, or an ACME server's Retry-After if longer. */
static keel_usec_t backoff_wait(cert_service *s, keel_usec_t backoff)
{
    return KEEL_MAX(cert_jitter(backoff), s->retry_after);
}

/* @wait cut to half of what is left of the current certificate (cert_retry_cap()). */
static keel_usec_t capped_by_expiry(cert_service *s, keel_usec_t wait)
{
    _cleanup_(credential_unrefp) credential *c = identity_get(s->identity, IDENTITY_CURRENT);
    return c ? cert_retry_cap(keel_now_realtime(), credential_not_after(c), wait) : wait;
}

/* One attempt, logged. Returns the backoff before the next one: 0 after a success; the wait until
 * it into *@ret_wait. After a failure the wait never passes half of what is left of the current
 * certificate, so that a CA that is back before the expiry renews it in time. A new certificate
 * that this host's clock already calls due (a clock far ahead of the CA's) is waited on as a
 * failure is, uncut: every wake would issue another, and sooner ones would only issue more. */
bool cert_stopping(const cert_service *s)
{
    return s->refresh_task ? keel_task_stopping(s->refresh_task) : keel_app_stop_requested(s->app);
}

static keel_usec_t refresh_logged(cert_service *s, keel_usec_t backoff, keel_usec_t *ret_wait)
{
    cert_error e = {};
    char d[64];
    int r = refresh_once(s, &e);
    /* A renewal a stop cut short did not fail: neither counted in refresh_failures_total nor warned
     * of. The app's stop comes first (dns-01 and ACME end at the signal), the task's at stop. */
    if (r < 0 && (keel_app_stop_requested(s->app) || cert_stopping(s))) {
        CERT_LOG(KEEL_LOG_INFO, "Cancelled the certificate refresh at the stop: %s", e.text);
        *ret_wait = 0;
        return backoff;
    }
    if (r >= 0 && !cert_current_due(s)) {
        CERT_LOG(KEEL_LOG_INFO, "Refreshed key[%s], cert[%s]", s->key_path, s->cert_path);
        *ret_wait = 0;
        return 0;
    }
    backoff = cert_backoff_next(backoff);
    keel_usec_t wait = backoff_wait(s, backoff);
    keel_format_duration(backoff, d, sizeof d);
    if (r >= 0) {
        CERT_LOG(KEEL_LOG_WARNING,
                 "Refreshed key[%s], cert[%s], but by this host's clock the new certificate is already "
                 "expired or in the last tenth of its lifetime (is the clock right?); trying again in about %s",
                 s->key_path, s->cert_path, d);
        *ret_wait = wait;
        return backoff;
    }
    keel_counter_add(s->refresh_failures, 1);
    *ret_wait = capped_by_expiry(s, wait);
    if (*ret_wait < wait) /* "about": to the millisecond */
        keel_format_duration(*ret_wait / KEEL_USEC_PER_MSEC * KEEL_USEC_PER_MSEC, d, sizeof d);
    CERT_LOG_ERRNO(KEEL_LOG_WARNING, r, "Failed to refresh the certificate, retrying in about %s%s: %s", d,
                   *ret_wait < wait ? " (half of what is left of the certificate)" : "", e.text);
    return backoff;
}

/* Makes and publishes the key of the next rotation; returns whether it is published. A failure is
 * tolerated: the rotation makes the key then. */
static bool prepare_next_key(cert_service *s)
{
    (void) pthread_mutex_lock(&s->lock);
    int r = cert_prepare_next_key(s);
    (void) pthread_mutex_unlock(&s->lock);
    if (r < 0)
        CERT_LOG_ERRNO(KEEL_LOG_WARNING, r, "Failed to make the key of the next rotation ahead of it, ignoring: %m");
    return r >= 0;
}

/* After an attempt: whether a next key is still published (a failed rotation keeps it; one that
 * succeeded, or failed after consuming it, leaves the next rotation's to be made). */
static bool next_key_published(cert_service *s)
{
    (void) pthread_mutex_lock(&s->lock);
    bool published = s->config.provider == CERT_PROVIDER_FILE || s->next_key;
    (void) pthread_mutex_unlock(&s->lock);
    return published;
}

/* Every wait counts from the last attempt, so a wake (a new refresh_interval) shortens or
 * lengthens the wait under way instead of starting a whole new one; a retry after a failure
 * keeps its time. Halfway to a rotation its key is made and published (JWKS lists it), so that a
 * verifier caching the set for less than half the interval knows the key before any token is
 * signed with it; halfway, not at once, so that key generation (seconds for large RSA keys) does
 * not compete with the start. A stop that comes during a generation waits for it. A wait also
 * ends for the next read of the ACME server's renewal information, which may move the renewal. */
static void refresh_task(keel_task *t, void *userdata)
{
    cert_service *s = userdata;
    keel_usec_t last = keel_now(), backoff = 0, retry = 0; /* last: the last attempt, or the start */
    /* Whether the next rotation's key is published; the operator's files have no next key. */
    bool announced = s->config.provider == CERT_PROVIDER_FILE;
    cert_issuers_recall(s); /* a pair reused at start: whose CA's renewal information to read */
    for (int w = 0; w >= 0;) {
        s->refresh_task = t; /* a read of the renewal information ends when the task is told to stop */
        cert_ari_update(s, w > 0);
        s->refresh_task = NULL;
        keel_usec_t delay = backoff ? keel_usec_left(last, keel_now(), retry) : next_delay(s, last);
        keel_usec_t check = cert_ari_check_in(s);
        if (!backoff)
            log_schedule(s, delay, w > 0);
        keel_usec_t from = keel_now();
        atomic_store(&s->renewal_at, from + delay);
        if (!announced) {
            if ((w = keel_task_wait(t, KEEL_MIN(delay / 2, check))) != 0 || check < delay / 2)
                continue;
            announced = prepare_next_key(s);
        }
        w = keel_task_wait(t, keel_usec_left(from, keel_now(), KEEL_MIN(delay, check)));
        if (w != 0 || check < delay)
            continue; /* stopping, woken (a new interval, a clock step) or a read of the renewal information due: schedule again */
        s->refresh_task = t; /* ACME's waits end when the task is told to stop */
        backoff = refresh_logged(s, backoff, &retry);
        s->refresh_task = NULL;
        announced = next_key_published(s);
        last = keel_now();
    }
}

int cert_refresh_start(cert_service *s)
{
    atomic_store(&s->interval, s->config.refresh_interval);
    if (!(s->tasks = keel_task_group_new(s->app, "certificate")))
        return -ENOMEM;
    int r = keel_task_group_spawn(s->tasks, "certificate.spawn.refresh", "refresh", refresh_task, s);
    return r < 0 ? r : cert_clock_watch_start(s);
}

/* ---- the file watch ---------------------------------------------------------------------------- */

static int on_promote(sd_event_source *src, uint64_t usec, void *userdata)
{
    cert_service *s = userdata;
    (void) pthread_mutex_lock(&s->lock);
    _cleanup_(credential_unrefp) credential *c = TAKE_PTR(s->pending);
    int r = c ? identity_rotate(s->identity, c) : 0;
    (void) pthread_mutex_unlock(&s->lock);
    if (r < 0)
        CERT_LOG_ERRNO(KEEL_LOG_ERROR, r, "Failed to sign with the new key[%s] from the files: %m", credential_kid(c));
    else if (c)
        CERT_LOG(KEEL_LOG_INFO, "Signing with the new key[%s] from the files after publish_delay", credential_kid(c));
    return 0;
}

/* Publishes @c at once. A key that waited and is not @c's leaves the set: on_promote() then finds
 * nothing to do. */
static int publish_now(cert_service *s, credential *c)
{
    bool waited = s->pending;
    s->pending = credential_unref(s->pending);
    int r = identity_rotate(s->identity, c); /* empties the next slot when it holds @c's key */
    _cleanup_(credential_unrefp) credential *next = identity_get(s->identity, IDENTITY_NEXT);
    if (r >= 0 && waited && next)
        r = identity_set_next(s->identity, NULL);
    return r;
}

/* @delay (publish_delay) cut to half of what is left of @current's certificate, with a warning: a
 * wait past its expiry would keep signing with a key whose certificate has expired, and the
 * operator's files cannot be asked to renew sooner. Half, as the refresh task's schedule has it
 * (whose re-read of the files may publish the key sooner still). Not at configure: only the files
 * say how long their certificates live, and each rotation may say otherwise. */
static keel_usec_t publish_delay_within(const credential *current, const credential *c, keel_usec_t delay)
{
    keel_usec_t now = keel_now_realtime(), not_after = credential_not_after(current);
    keel_usec_t left = not_after > now ? (not_after - now) / KEEL_USEC_PER_MSEC * KEEL_USEC_PER_MSEC : 0; /* ms: for the log */
    if (delay <= left / 2)
        return delay;
    char d[32], l[32], cut[32];
    CERT_LOG(KEEL_LOG_WARNING,
             "certificate.publish_delay (%s) is longer than half of what is left of the current certificate (%s): signing "
             "with the new key[%s] from the files after %s instead",
             keel_format_duration(delay, d, sizeof d), keel_format_duration(left, l, sizeof l), credential_kid(c),
             keel_format_duration(left / 2, cut, sizeof cut));
    return left / 2;
}

/* The files' new key waits as the next credential for publish_delay, so that every replica that
 * reads the same files lists it before any signs with it (docs/operations.md, "Kubernetes"). A
 * renewal that keeps the key, no delay, or a reload off the main thread (the refresh task's, which
 * cannot arm the event loop's timer) is published at once; a change during the wait replaces what
 * waits and starts the wait again. Under the service's lock. */
static int publish_from_files(cert_service *s, const cert_pair *p, bool main_thread)
{
    _cleanup_(credential_unrefp) credential *c = NULL, *current = identity_get(s->identity, IDENTITY_CURRENT);
    int r = credential_new(p->key, p->leaf, p->chain, &c);
    if (r < 0)
        return r;
    keel_usec_t delay = s->config.provider == CERT_PROVIDER_FILE ? s->config.publish_delay : 0;
    if (delay == 0 || !main_thread || !current || streq(credential_kid(current), credential_kid(c))) {
        if (main_thread)
            (void) sd_event_source_set_enabled(s->promote, SD_EVENT_OFF);
        return publish_now(s, c);
    }
    delay = publish_delay_within(current, c, delay);
    if (s->promote)
        r = sd_event_source_set_time_relative(s->promote, delay);
    else if ((r = sd_event_add_time_relative(keel_app_get_event_loop(s->app), &s->promote, CLOCK_MONOTONIC, delay, 0, on_promote,
                                             s)) >= 0)
        (void) sd_event_source_set_description(s->promote, "certificate-promote");
    if (r >= 0)
        r = sd_event_source_set_enabled(s->promote, SD_EVENT_ONESHOT);
    if (r >= 0)
        r = identity_set_next(s->identity, c);
    if (r < 0)
        return r;
    credential_unref(s->pending);
    s->pending = TAKE_PTR(c);
    char d[32];
    keel_format_duration(delay, d, sizeof d);
    CERT_LOG(KEEL_LOG_INFO, "Publishing the new key[%s] from the files; signing with it after %s", credential_kid(s->pending), d);
    return 0;
}

int cert_reload(cert_service *s, bool main_thread, cert_error *e)
{
    cert_pair p = {};
    (void) pthread_mutex_lock(&s->lock);
    int r = cert_renew(s, &p, e);
    if (r >= 0 && (r = publish_from_files(s, &p, main_thread)) < 0)
        (void) cert_fail(e, r, "Cannot publish the new credential: %s", strerror(-r));
    (void) pthread_mutex_unlock(&s->lock);
    cert_pair_done(&p);
    return r;
}

static int on_debounce(sd_event_source *src, uint64_t usec, void *userdata)
{
    cert_service *s = userdata;
    cert_error e = {};
    int r = cert_reload(s, true, &e);
    if (r < 0)
        CERT_LOG_ERRNO(KEEL_LOG_WARNING, r, "Failed to reload the changed files, keeping the current certificate: %s", e.text);
    else
        CERT_LOG(KEEL_LOG_INFO, "Reloaded key[%s], cert[%s]", s->key_path, s->cert_path);
    return 0;
}

/* Whether a change of @name in a watched directory may change the files: one of them, or, for a
 * Kubernetes secret volume, the "..data" symlink its files point through, swapped at each update. */
static bool relevant(const char *name, const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    return streq(name, sa ? sa + 1 : a) || streq(name, sb ? sb + 1 : b) || streq(name, "..data");
}

static int on_inotify(sd_event_source *src, const struct inotify_event *ev, void *userdata)
{
    cert_service *s = userdata;
    if (ev->len == 0 || !relevant(ev->name, s->key_path, s->cert_path))
        return 0;
    if (s->debounce) {
        (void) sd_event_source_set_time_relative(s->debounce, DEBOUNCE);
        (void) sd_event_source_set_enabled(s->debounce, SD_EVENT_ONESHOT);
        return 0;
    }
    int r = sd_event_add_time_relative(keel_app_get_event_loop(s->app), &s->debounce, CLOCK_MONOTONIC, DEBOUNCE, 1, on_debounce, s);
    if (r < 0)
        return CERT_LOG_ERRNO(KEEL_LOG_WARNING, r, "Failed to schedule the reload of the changed files, ignoring: %m"), 0;
    (void) sd_event_source_set_description(s->debounce, "certificate-reload");
    return 0;
}

static int watch_dir_of(cert_service *s, const char *path, size_t slot)
{
    char copy[PATH_MAX];
    (void) snprintf(copy, sizeof copy, "%s", path);
    const char *dir = dirname(copy);
    /* Directories, not files: a file replaced by rename is a new inode, which a file watch misses. */
    int r = sd_event_add_inotify(keel_app_get_event_loop(s->app), &s->watch[slot], dir,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_ONLYDIR, on_inotify, s);
    if (r < 0)
        return r;
    (void) sd_event_source_set_description(s->watch[slot], "certificate-watch");
    return 0;
}

int cert_watch_start(cert_service *s)
{
    char a[PATH_MAX], b[PATH_MAX];
    (void) snprintf(a, sizeof a, "%s", s->key_path);
    (void) snprintf(b, sizeof b, "%s", s->cert_path);
    int r = watch_dir_of(s, s->key_path, 0);
    if (r >= 0 && !streq(dirname(a), dirname(b)))
        r = watch_dir_of(s, s->cert_path, 1);
    return r;
}

void cert_refresh_stop(cert_service *s)
{
    s->clock_watch = sd_event_source_disable_unref(s->clock_watch);
    s->tasks = keel_task_group_free(s->tasks);
    for (size_t i = 0; i < ELEMENTSOF(s->watch); i++)
        s->watch[i] = sd_event_source_disable_unref(s->watch[i]);
    s->debounce = sd_event_source_disable_unref(s->debounce);
    s->promote = sd_event_source_disable_unref(s->promote);
    s->pending = credential_unref(s->pending);
}
