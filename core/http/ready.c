/* SPDX-License-Identifier: MIT */
/* The end-to-end check of a start: a GET from libcurl, retried with a millisecond backoff. */
#include <stdio.h>
#include <time.h>

#include "curl.h"
#include "http-internal.h"

static size_t discard(char *p, size_t size, size_t n, void *userdata)
{
    return size * n;
}

static CURL *ready_check_new(const keel_curl *c, const char *url)
{
    CURL *curl = c->easy_init();
    if (!curl)
        return NULL;
    (void) c->easy_setopt(curl, CURLOPT_URL, url);
    (void) c->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    (void) c->easy_setopt(curl, CURLOPT_NOPROXY, "*");
    (void) c->easy_setopt(curl, CURLOPT_USERAGENT, "keel-ready-check");
    (void) c->easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    return curl;
}

/* DESIGN §2: success, or retry with a short backoff until a bounded error; never cut short by a
 * signal, which takes effect when the start observer returns. */
int keel__http_wait_ready(keel_http_server *s)
{
    const keel_curl *c;
    char url[sizeof s->bound + 16];

    keel__curl_schedule_unload(s->app);
    if (keel__curl_load(&c) < 0)
        return keel_app_fail(s->app, -ENOENT,
                             "Cannot confirm %s ready: libcurl (libcurl-gnutls.so.4 or libcurl.so.4) cannot be loaded", s->label);
    /* The socket actually bound (it may be systemd's), numeric; for "every address", loopback
     * (IPv4: our own "[::]" is dual-stack). */
    const char *scheme = s->tls ? "https" : "http";
    if (s->wildcard)
        (void) snprintf(url, sizeof url, "%s://127.0.0.1:%u/", scheme, s->port);
    else
        (void) snprintf(url, sizeof url, "%s://%s/", scheme, s->bound);
    CURL *curl = ready_check_new(c, url);
    if (!curl)
        return keel_app_fail(s->app, -ENOMEM, "Cannot confirm %s ready: out of memory", s->label);
    if (s->tls) { /* the server answering over TLS is what is checked, not who it says it is */
        (void) c->easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        (void) c->easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
        /* Nothing is verified: loading the system's trust store (hundreds of certificates) would
         * be most of the check's time. */
        (void) c->easy_setopt(curl, CURLOPT_CAINFO, NULL);
        (void) c->easy_setopt(curl, CURLOPT_CAPATH, NULL);
    }

    keel_usec_t deadline = keel_now() + KEEL_HTTP_READY_TIMEOUT_USEC, backoff = KEEL_USEC_PER_MSEC;
    CURLcode code;
    /* Each attempt may take what is left of the budget: an injected request delay is a slow
     * answer, not an absent server. */
    for (;;) {
        keel_usec_t now = keel_now();
        (void) c->easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) ((deadline > now ? deadline - now : 1000) / 1000 + 1));
        code = c->easy_perform(curl);
        if (code == CURLE_OK || keel_now() >= deadline)
            break;
        keel_log_service(s->service, KEEL_LOG_DEBUG, "Unable to confirm the server ready: %s; retrying in %llums",
                         c->easy_strerror(code), (unsigned long long) (backoff / 1000));
        struct timespec ts = { .tv_nsec = (long) backoff * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        backoff = MIN(backoff * 2, 64 * KEEL_USEC_PER_MSEC);
    }
    c->easy_cleanup(curl);
    if (code != CURLE_OK)
        return keel_app_fail(s->app, -ETIMEDOUT, "%s[%s] did not answer within %llus: %s", s->label, s->bound,
                             (unsigned long long) (KEEL_HTTP_READY_TIMEOUT_USEC / KEEL_USEC_PER_SEC), c->easy_strerror(code));
    return 0;
}
