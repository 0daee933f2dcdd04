/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "curl-internal.h"
#include "macro-internal.h"

/* Everything below is under `lock`: the ready check loads and unloads libcurl on the main thread
 * (or its loader thread), while keel_fetch clients take and drop references on any thread. The
 * library stays loaded while it has a reference: the ready check's (from keel__curl_load() until
 * keel__curl_unload()) and one per fetch client. A preloaded library nobody took is unloaded by
 * keel__curl_unload() or by the last client's release. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *handle;
static void (*global_cleanup)(void);
static void (*ssh2_exit)(void); /* balances our libssh2_init(NO_CRYPTO), see load() */
static keel_curl api;
static unsigned references;
static bool ready_reference; /* one of them is the ready check's */

/* The helper thread of keel__curl_preload(). Only the main thread starts and joins it; it runs
 * load() under the lock. load_error is the reason of the last failed load(). */
static pthread_t loader;
static bool loader_running;
static char load_error[256];
/* The app whose finalize.after already unloads libcurl (registered by the preload). */
static keel_app *finalize_scheduled;

static int resolve(void *dl, const char *name, void *ret)
{
    void *sym = dlsym(dl, name);
    if (!sym) {
        (void) snprintf(load_error, sizeof load_error, "libcurl has no %s", name);
        return -ENOENT;
    }
    memcpy(ret, &sym, sizeof sym); /* object pointer to function pointer, as POSIX allows */
    return 0;
}

/* Loads and initialises libcurl; on the helper thread or the main thread, never both at once.
 * Logs nothing (the helper thread has no log context): the reason goes to load_error. */
static int load(void)
{
    /* The GnuTLS build first: it is unloaded with libcurl once the servers are confirmed, while
     * the OpenSSL build would add libssl, which OpenSSL marks never-unload. The API is the same.
     * Lazily bound:
     * the check calls a handful of functions, and binding every symbol of its dependencies that
     * are not linked with -z now (Kerberos, nghttp2, brotli, rtmp…) is ~15 % of the dlopen();
     * the symbols resolve() looks up are checked here all the same. */
    void *dl = dlopen("libcurl-gnutls.so.4", RTLD_LAZY | RTLD_LOCAL);
    if (!dl)
        dl = dlopen("libcurl.so.4", RTLD_LAZY | RTLD_LOCAL);
    if (!dl) {
        (void) snprintf(load_error, sizeof load_error, "Failed to load libcurl: %s", dlerror());
        return -ENOENT;
    }
    CURLcode (*global_init)(long) = NULL;
    keel_curl t = { 0 };
    if (resolve(dl, "curl_global_init", &global_init) < 0 || resolve(dl, "curl_global_cleanup", &global_cleanup) < 0 ||
        resolve(dl, "curl_easy_init", &t.easy_init) < 0 || resolve(dl, "curl_easy_setopt", &t.easy_setopt) < 0 ||
        resolve(dl, "curl_easy_perform", &t.easy_perform) < 0 || resolve(dl, "curl_easy_cleanup", &t.easy_cleanup) < 0 ||
        resolve(dl, "curl_easy_strerror", &t.easy_strerror) < 0 || resolve(dl, "curl_easy_getinfo", &t.easy_getinfo) < 0 ||
        resolve(dl, "curl_slist_append", &t.slist_append) < 0 || resolve(dl, "curl_slist_free_all", &t.slist_free_all) < 0 ||
        resolve(dl, "curl_multi_init", &t.multi_init) < 0 || resolve(dl, "curl_multi_cleanup", &t.multi_cleanup) < 0 ||
        resolve(dl, "curl_multi_add_handle", &t.multi_add_handle) < 0 ||
        resolve(dl, "curl_multi_remove_handle", &t.multi_remove_handle) < 0 ||
        resolve(dl, "curl_multi_perform", &t.multi_perform) < 0 || resolve(dl, "curl_multi_poll", &t.multi_poll) < 0 ||
        resolve(dl, "curl_multi_info_read", &t.multi_info_read) < 0) {
        (void) dlclose(dl);
        return -ENOENT;
    }
    /* libcurl's global init calls libssh2_init(0), which initialises OpenSSL (megabytes of pages
     * that stay: libcrypto is never unloaded). libssh2 initialises crypto only on its first init,
     * so one without crypto first leaves OpenSSL untouched; the check uses plain HTTP anyway. */
    void *ssh2 = dlopen("libssh2.so.1", RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
    int (*ssh2_init)(int) = NULL;
    if (ssh2 && resolve(ssh2, "libssh2_init", &ssh2_init) >= 0 && resolve(ssh2, "libssh2_exit", &ssh2_exit) >= 0)
        (void) ssh2_init(0x0001 /* LIBSSH2_INIT_NO_CRYPTO */);
    else
        ssh2_exit = NULL;
    if (ssh2)
        (void) dlclose(ssh2); /* libcurl keeps it loaded */
    /* libcurl initialises its TLS backend whatever the flags say (since 7.57). */
    if (global_init(CURL_GLOBAL_NOTHING) != CURLE_OK) {
        (void) snprintf(load_error, sizeof load_error, "curl_global_init() failed");
        if (ssh2_exit)
            ssh2_exit();
        ssh2_exit = NULL;
        (void) dlclose(dl);
        return -ENOENT;
    }
    handle = dl;
    api = t;
    return 0;
}

static void *load_thread(void *userdata)
{
    (void) pthread_setname_np(pthread_self(), "http-curl-load");
    (void) pthread_mutex_lock(&lock);
    if (!handle)
        (void) load();
    (void) pthread_mutex_unlock(&lock);
    return NULL;
}

/* Under the lock: unloads libcurl once nothing holds it. */
static void unload_unused(void)
{
    if (!handle || references > 0)
        return;
    global_cleanup();
    if (ssh2_exit)
        ssh2_exit();
    ssh2_exit = NULL;
    (void) dlclose(handle);
    handle = NULL;
    api = (keel_curl){ 0 };
}

/* Waits for the helper thread, if one runs. Main thread. */
static void join_loader(void)
{
    if (!loader_running)
        return;
    (void) pthread_join(loader, NULL);
    loader_running = false;
}

static int unload_observer(keel_app *app, void *userdata)
{
    keel__curl_unload();
    if (finalize_scheduled == app && keel_app_event(app) == KEEL_EVENT_FINALIZE)
        finalize_scheduled = NULL;
    return 0;
}

int keel__curl_preload(keel_app *app)
{
    keel_assert_return(app, -EINVAL);
    if (loader_running)
        return 0;
    (void) pthread_mutex_lock(&lock);
    bool loaded = handle != NULL;
    (void) pthread_mutex_unlock(&lock);
    if (loaded)
        return 0;
    /* Whatever happens to start, finalize joins the thread and unloads what it loaded. */
    if (finalize_scheduled != app) {
        int r = keel_app_observe(app, KEEL_EVENT_FINALIZE, KEEL_PHASE_AFTER, "http.unload-curl", unload_observer, NULL, NULL);
        if (r < 0)
            return r;
        finalize_scheduled = app;
    }
    /* Every signal blocked: the app's arrive through its signalfd, the others are not ours. */
    sigset_t all, old;
    (void) sigfillset(&all);
    (void) pthread_sigmask(SIG_BLOCK, &all, &old);
    int r = pthread_create(&loader, NULL, load_thread, NULL);
    (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return -r; /* the first ready check loads it then */
    loader_running = true;
    return 0;
}

static int on_idle_unload(sd_event_source *s, void *userdata)
{
    keel__curl_unload();
    return 0;
}

/* After a start that succeeded, the unload waits for the loop's first idle moment: READY=1 goes out
 * first (unmapping libcurl costs ~0.3 ms). After one that failed, it happens at once. */
static int unload_after_start(keel_app *app, void *userdata)
{
    sd_event_source *s = NULL;
    if (!keel_app_cancelled(app) && sd_event_add_defer(keel_app_get_event_loop(app), &s, on_idle_unload, NULL) >= 0) {
        (void) sd_event_source_set_description(s, "unload-curl");
        (void) sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_floating(s, true); /* one-shot; the loop frees it */
        sd_event_source_unref(s);
        return 0;
    }
    keel__curl_unload();
    return 0;
}

void keel__curl_schedule_unload(keel_app *app)
{
    /* Once per app: an attachment marks it (the first attach wins), and goes with the app. */
    static char scheduled;
    if (keel_app_attach(app, "keel.http.unload-curl", &scheduled, NULL) < 0)
        return;
    (void) keel_app_observe(app, KEEL_EVENT_START, KEEL_PHASE_AFTER, "http.unload-curl", unload_after_start, NULL, NULL);
    if (finalize_scheduled != app)
        (void) keel_app_observe(app, KEEL_EVENT_FINALIZE, KEEL_PHASE_AFTER, "http.unload-curl", unload_observer, NULL, NULL);
}

int keel__curl_load(const keel_curl **ret)
{
    join_loader();
    (void) pthread_mutex_lock(&lock);
    /* Not preloaded, or the preload failed: (again) here, for the message. */
    int r = handle ? 0 : load();
    if (r < 0)
        keel_log_debug("%s", load_error);
    else if (!ready_reference) {
        ready_reference = true;
        references++;
    }
    (void) pthread_mutex_unlock(&lock);
    if (r < 0)
        return -ENOENT;
    *ret = &api; /* stays valid: the ready check's reference holds it until keel__curl_unload() */
    return 0;
}

void keel__curl_unload(void)
{
    join_loader();
    (void) pthread_mutex_lock(&lock);
    if (ready_reference) {
        ready_reference = false;
        references--;
    }
    unload_unused();
    (void) pthread_mutex_unlock(&lock);
}

int keel__curl_acquire(const keel_curl **ret, char *error, size_t size)
{
    (void) pthread_mutex_lock(&lock);
    int r = handle ? 0 : load();
    if (r >= 0)
        references++;
    else if (size > 0)
        (void) snprintf(error, size, "%s", load_error);
    (void) pthread_mutex_unlock(&lock);
    if (r >= 0)
        *ret = &api;
    return r;
}

void keel__curl_release(void)
{
    (void) pthread_mutex_lock(&lock);
    assert(references > 0);
    references--;
    unload_unused();
    (void) pthread_mutex_unlock(&lock);
}
