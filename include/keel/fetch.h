/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * An HTTP(S) client for a service that talks to other servers: an ACME CA, an OAuth2 token
 * endpoint. libcurl does the work; it is loaded with dlopen() when the first client is made and
 * unloaded when the last one is freed, so a daemon that fetches once a day does not keep its
 * dependencies mapped in between. A client keeps its connections open
 * between requests. Every function is safe on any thread; one client is used by one thread at
 * a time. No redirect is followed, proxies are taken from the environment as curl(1) does
 * (https_proxy, no_proxy), and signals are never used for timeouts.
 */
typedef struct keel_fetch keel_fetch;

/** What a client trusts and presents. Zeros take the defaults. */
typedef struct keel_fetch_options {
    const char *ca_file;         /* trust anchors (PEM) for https://; NULL: the system's */
    const char *cert_file;       /* client certificate (PEM, its chain after it) for mutual TLS; NULL: none */
    const char *key_file;        /* its private key (PEM) */
    keel_usec_t timeout;         /* a whole request, connection included; default 30 s */
    keel_usec_t connect_timeout; /* the connection and TLS handshake; default 10 s */
    size_t body_limit;           /* the most bytes of a response body; default 1 MiB */
    const char *user_agent;      /* default "keel/VERSION" */
    /* Asked between libcurl's steps during a request (about once a second while the server is
     * silent): true abandons it (-ECANCELED), so that a task told to stop does not wait out the
     * timeout. NULL: never. keel_fetch_set_cancel_fd() wakes at once instead. */
    bool (*cancelled)(void *userdata);
    void *userdata;
} keel_fetch_options;

/** An answer. Its strings are NUL-terminated and owned: keel_fetch_response_done() frees them. */
typedef struct keel_fetch_response {
    unsigned status; /* 200 */
    char *body;      /* the body (may hold NUL bytes: see size), "" when empty */
    size_t size;
    char *headers; /* the response head's fields, "Name: value\n" each */
} keel_fetch_response;

/** The most bytes of a request's error text, its NUL included: KEEL_ERROR_MAX, as everywhere. */
#define KEEL_FETCH_ERROR_MAX KEEL_ERROR_MAX

/**
 * Makes a client, loading libcurl if no other client holds it. Returns 0, -ENOENT when libcurl
 * cannot be loaded, -EINVAL when only one of cert_file and key_file is set, -ENOMEM; the reason
 * in @error (KEEL_FETCH_ERROR_MAX bytes, may be NULL). The options' strings are copied.
 */
KEEL_API int keel_fetch_new(const keel_fetch_options *options, keel_fetch **ret, char *error);
/** Closes the client's connections and frees it; the last client unloads libcurl. Accepts NULL; returns NULL. */
KEEL_API keel_fetch *keel_fetch_free(keel_fetch *f);

/**
 * Sends @method ("GET", "POST", "HEAD") to @url with @headers (NULL-terminated "Name: value"
 * strings, may be NULL) and @size bytes of @body (may be NULL for none), and waits for the answer.
 * Any HTTP status is a result (0): the caller decides what a 4xx means. Returns -ETIMEDOUT (no
 * answer in the timeout), -ECONNREFUSED and -EHOSTUNREACH (nothing listens, no route),
 * -EKEYREJECTED (TLS: the peer's certificate is not trusted or the handshake failed, our own
 * certificate included), -EFBIG (the body passes body_limit), -EPROTO (not HTTP), -EINVAL
 * (a malformed URL), -ECANCELED (the cancelled callback or the cancel descriptor of
 * keel_fetch_set_cancel_fd() said so), -ENOMEM, -EIO otherwise; the reason in @error ("Could not connect to
 * server: Connection refused", "SSL certificate problem: unable to get local issuer
 * certificate"). *@ret is filled only on success and must then be given to keel_fetch_response_done().
 */
KEEL_API int keel_fetch_request(keel_fetch *f, const char *method, const char *url, const char *const *headers, const void *body,
                                size_t size, keel_fetch_response *ret, char *error);

/**
 * Makes every later request of @f end with -ECANCELED as soon as @fd polls readable (POLLIN), such
 * as keel_app_stop_fd(): the wait for the server wakes on it, where the options' cancelled
 * callback is asked only between libcurl's steps, which can be a second apart. A descriptor
 * readable already cancels the request before it is sent. A negative @fd removes it. Borrowed:
 * it must stay open while @f may use it. Returns 0, or -EINVAL for a NULL @f.
 */
KEEL_API int keel_fetch_set_cancel_fd(keel_fetch *f, int fd);

/** The value of the response header @name (case-insensitive; the first if repeated) into @buf of
 * @size bytes (cut short to fit), or NULL when absent. */
KEEL_API const char *keel_fetch_response_header(const keel_fetch_response *r, const char *name, char *buf, size_t size);
/** Frees what @r holds and zeroes it. Accepts a zeroed response. */
KEEL_API void keel_fetch_response_done(keel_fetch_response *r);

#ifdef __cplusplus
}
#endif
