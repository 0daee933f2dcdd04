/* SPDX-License-Identifier: MIT */
#pragma once

#include <curl/curl.h>

/* libcurl, loaded with dlopen() only while servers confirm themselves ready: linked in, its
 * twenty-odd dependencies (Kerberos, LDAP, SSH, TLS…) would hold ~6 MB of an idle agent's
 * 12 MB of RSS for a check that takes milliseconds (docs/decisions/0011). */
typedef struct keel_curl {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
} keel_curl;

/* Loads libcurl (once; later calls return the same table) and initialises it without TLS.
 * Main thread only. -ENOENT when libcurl cannot be loaded (the message is logged at debug). */
int keel__curl_load(const keel_curl **ret);
/* Unloads libcurl if it is loaded. Main thread only; idempotent. */
void keel__curl_unload(void);
