/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>

#include "curl.h"
#include "macro.h"

static void *handle;
static void (*global_cleanup)(void);
static void (*ssh2_exit)(void); /* balances our libssh2_init(NO_CRYPTO), see keel__curl_load() */
static keel_curl api;

static int resolve(void *dl, const char *name, void *ret)
{
    void *sym = dlsym(dl, name);
    if (!sym) {
        keel_log_debug("libcurl has no %s", name);
        return -ENOENT;
    }
    memcpy(ret, &sym, sizeof sym); /* object pointer to function pointer, as POSIX allows */
    return 0;
}

int keel__curl_load(const keel_curl **ret)
{
    if (handle) {
        *ret = &api;
        return 0;
    }
    /* The GnuTLS build first: libmicrohttpd has loaded GnuTLS already, while the OpenSSL build
     * would add libcrypto, which OpenSSL marks never-unload. The API is the same. */
    void *dl = dlopen("libcurl-gnutls.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        dl = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        keel_log_debug("Failed to load libcurl: %s", dlerror());
        return -ENOENT;
    }
    CURLcode (*global_init)(long) = NULL;
    keel_curl t = { 0 };
    if (resolve(dl, "curl_global_init", &global_init) < 0 || resolve(dl, "curl_global_cleanup", &global_cleanup) < 0 ||
        resolve(dl, "curl_easy_init", &t.easy_init) < 0 || resolve(dl, "curl_easy_setopt", &t.easy_setopt) < 0 ||
        resolve(dl, "curl_easy_perform", &t.easy_perform) < 0 || resolve(dl, "curl_easy_cleanup", &t.easy_cleanup) < 0 ||
        resolve(dl, "curl_easy_strerror", &t.easy_strerror) < 0) {
        (void) dlclose(dl);
        return -ENOENT;
    }
    /* libcurl's global init calls libssh2_init(0), which initialises OpenSSL (megabytes of pages
     * that stay: libcrypto is never unloaded). libssh2 initialises crypto only on its first init,
     * so one without crypto first leaves OpenSSL untouched; the check uses plain HTTP anyway. */
    void *ssh2 = dlopen("libssh2.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    int (*ssh2_init)(int) = NULL;
    if (ssh2 && resolve(ssh2, "libssh2_init", &ssh2_init) >= 0 && resolve(ssh2, "libssh2_exit", &ssh2_exit) >= 0)
        (void) ssh2_init(0x0001 /* LIBSSH2_INIT_NO_CRYPTO */);
    else
        ssh2_exit = NULL;
    if (ssh2)
        (void) dlclose(ssh2); /* libcurl keeps it loaded */
    /* Plain HTTP to ourselves: no TLS to initialise. */
    if (global_init(CURL_GLOBAL_NOTHING) != CURLE_OK) {
        (void) dlclose(dl);
        return -ENOENT;
    }
    handle = dl;
    api = t;
    *ret = &api;
    return 0;
}

void keel__curl_unload(void)
{
    if (!handle)
        return;
    global_cleanup();
    if (ssh2_exit)
        ssh2_exit();
    ssh2_exit = NULL;
    (void) dlclose(handle);
    handle = NULL;
    api = (keel_curl){ 0 };
}
