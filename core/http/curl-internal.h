/* SPDX-License-Identifier: MIT */
#pragma once

#include <curl/curl.h>

#include <keel/app.h>

/* libcurl, loaded with dlopen() only while servers confirm themselves ready and while keel_fetch
 * clients exist: linked in, its twenty-odd dependencies (Kerberos, LDAP, SSH, TLS…) would hold
 * ~6 MB of an idle agent's 12 MB of RSS for a check that takes milliseconds (docs/decisions/0011). */
typedef struct keel_curl {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    /* The multi interface, for a keel_fetch request that also waits on a cancel descriptor. */
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd[], unsigned, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
} keel_curl;

/* Starts loading libcurl on a helper thread, so that its dlopen() and global init overlap the
 * start observers that run before the first server's ready check (a service that will listen
 * calls it in its configure observer). Registers the unload at finalize.after of @app, which
 * joins the thread however start ends. Main thread only. Returns 0, or a negative errno when the
 * thread cannot start (then the first keel__curl_load() loads libcurl itself). */
int keel__curl_preload(keel_app *app);
/* Once per app, when the first server starts: libcurl goes away when start ends, however it ends
 * (start.after when it succeeds, finalize.after otherwise). Main thread only. */
void keel__curl_schedule_unload(keel_app *app);
/* Loads libcurl (once; later calls return the same table) and initialises it without TLS; after a
 * preload, waits for the helper thread. Main thread only. -ENOENT when libcurl cannot be loaded
 * (the message is logged at debug). */
int keel__curl_load(const keel_curl **ret);
/* Drops the ready check's hold on libcurl, after joining the helper thread of a preload: it is
 * unloaded unless a keel_fetch client holds it. Main thread only; idempotent. */
void keel__curl_unload(void);
/* For keel_fetch, on any thread: loads libcurl when it is not loaded and takes a reference, which
 * keeps the table in *@ret valid until keel__curl_release(). -ENOENT with the reason in @error. */
int keel__curl_acquire(const keel_curl **ret, char *error, size_t size);
void keel__curl_release(void);
