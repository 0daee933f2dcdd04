/* SPDX-License-Identifier: MIT */
/* keel_fetch: an HTTP(S) client on the libcurl that curl.c loads on demand, one easy handle per
 * client (so its connections are reused), the body and head collected into growable buffers. */
#include <poll.h>
#include <stdio.h>
#include <strings.h>

#include <keel/fetch.h>
#include <keel/strbuf.h>

#include "curl-internal.h"
#include "macro-internal.h"

#define DEFAULT_TIMEOUT         (30 * KEEL_USEC_PER_SEC)
#define DEFAULT_CONNECT_TIMEOUT (10 * KEEL_USEC_PER_SEC)
#define DEFAULT_BODY_LIMIT      ((size_t) 1024 * 1024)

struct keel_fetch {
    const keel_curl *curl; /* holds a reference on libcurl */
    CURL *easy;
    CURLM *multi;  /* made at the first request with a cancel descriptor; keeps its connections */
    int cancel_fd; /* borrowed, or -EBADF */
    size_t body_limit;
    char *ca_file, *cert_file, *key_file, *user_agent;
    keel_usec_t timeout, connect_timeout;
    bool (*cancelled)(void *userdata);
    void *userdata;
};

/* What one request collects. */
typedef struct transfer {
    keel_strbuf body, head;
    size_t limit;
    bool too_big;
} transfer;

static void set_error(char *error, const char *fmt, const char *arg)
{
    if (error)
        (void) snprintf(error, KEEL_FETCH_ERROR_MAX, fmt, arg);
}

static char *strdup_or_null(const char *s, bool *failed)
{
    char *d = s && *s ? strdup(s) : NULL;
    if (s && *s && !d)
        *failed = true;
    return d;
}

static keel_fetch *fetch_free_fields(keel_fetch *f)
{
    free(f->ca_file);
    free(f->cert_file);
    free(f->key_file);
    free(f->user_agent);
    free(f);
    return NULL;
}

int keel_fetch_new(const keel_fetch_options *options, keel_fetch **ret, char *error)
{
    keel_fetch_options o = options ? *options : (keel_fetch_options){};
    bool failed = false;
    if (!ret || (!o.cert_file || !*o.cert_file) != (!o.key_file || !*o.key_file)) {
        set_error(error, "%s", "Set both a client certificate and its key, or neither");
        return -EINVAL;
    }
    keel_fetch *f = calloc(1, sizeof *f);
    if (!f)
        return set_error(error, "%s", "Out of memory"), -ENOMEM;
    f->ca_file = strdup_or_null(o.ca_file, &failed);
    f->cert_file = strdup_or_null(o.cert_file, &failed);
    f->key_file = strdup_or_null(o.key_file, &failed);
    f->user_agent = o.user_agent ? strdup(o.user_agent) : strdup("keel/" KEEL_VERSION);
    f->timeout = o.timeout ? o.timeout : DEFAULT_TIMEOUT;
    f->connect_timeout = o.connect_timeout ? o.connect_timeout : DEFAULT_CONNECT_TIMEOUT;
    f->body_limit = o.body_limit ? o.body_limit : DEFAULT_BODY_LIMIT;
    f->cancelled = o.cancelled;
    f->userdata = o.userdata;
    f->cancel_fd = -EBADF;
    if (failed || !f->user_agent) {
        set_error(error, "%s", "Out of memory");
        return fetch_free_fields(f), -ENOMEM;
    }
    char why[KEEL_FETCH_ERROR_MAX] = "";
    int r = keel__curl_acquire(&f->curl, why, sizeof why);
    if (r < 0) {
        set_error(error, "Cannot load libcurl (libcurl-gnutls.so.4 or libcurl.so.4): %s", why);
        return fetch_free_fields(f), r;
    }
    if (!(f->easy = f->curl->easy_init())) {
        keel__curl_release();
        set_error(error, "%s", "Out of memory");
        return fetch_free_fields(f), -ENOMEM;
    }
    *ret = f;
    return 0;
}

keel_fetch *keel_fetch_free(keel_fetch *f)
{
    if (!f)
        return NULL;
    if (f->multi)
        (void) f->curl->multi_cleanup(f->multi);
    f->curl->easy_cleanup(f->easy);
    keel__curl_release();
    return fetch_free_fields(f);
}

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
    transfer *t = userdata;
    if (t->body.len + n > t->limit) {
        t->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    keel_strbuf_appendn(&t->body, p, n);
    return t->body.truncated ? 0 : n;
}

/* Each response head (a 100 Continue, then the answer) starts with its status line: only the last
 * one's fields are kept. */
static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
    transfer *t = userdata;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        t->head.len = 0;
        t->head.buf[0] = '\0';
        return n;
    }
    size_t len = n;
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    if (len > 0) {
        keel_strbuf_appendn(&t->head, p, len);
        keel_strbuf_append(&t->head, "\n");
    }
    return t->head.truncated ? 0 : n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    keel_fetch *f = userdata;
    return f->cancelled(f->userdata) ? 1 : 0;
}

static int errno_of(CURLcode code, const transfer *t)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return -EKEYREJECTED;
    case CURLE_WRITE_ERROR:
        return t->too_big ? -EFBIG : -ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_GOT_NOTHING:
        return -EPROTO;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_ABORTED_BY_CALLBACK:
        return -ECANCELED;
    default:
        return -EIO;
    }
}

int keel_fetch_set_cancel_fd(keel_fetch *f, int fd)
{
    keel_assert_return(f, -EINVAL);
    f->cancel_fd = fd < 0 ? -EBADF : fd;
    return 0;
}

/* The result of the transfer that just ended on f->multi. */
static CURLcode multi_result(keel_fetch *f)
{
    int left;
    for (CURLMsg *m; (m = f->curl->multi_info_read(f->multi, &left));)
        if (m->msg == CURLMSG_DONE && m->easy_handle == f->easy)
            return m->data.result;
    return CURLE_RECV_ERROR;
}

/* curl_easy_perform() that also wakes when cancel_fd polls readable, where the progress callback
 * is called only between libcurl's steps (up to a second apart): the multi interface, with the
 * descriptor as an extra one of its poll. Each round waits at most a second, and libcurl ends the
 * transfer at its own timeout, so the loop is bounded by that. */
static CURLcode perform_cancellable(keel_fetch *f)
{
    const keel_curl *c = f->curl;
    struct pollfd p = { .fd = f->cancel_fd, .events = POLLIN };
    if (poll(&p, 1, 0) > 0) /* before the first step, which may send the request on a kept connection */
        return CURLE_ABORTED_BY_CALLBACK;
    if (!f->multi && !(f->multi = c->multi_init()))
        return CURLE_OUT_OF_MEMORY;
    if (c->multi_add_handle(f->multi, f->easy) != CURLM_OK)
        return CURLE_FAILED_INIT;
    CURLcode code = CURLE_FAILED_INIT;
    for (;;) {
        int running = 0;
        if (c->multi_perform(f->multi, &running) != CURLM_OK)
            break;
        if (!running) {
            code = multi_result(f);
            break;
        }
        struct curl_waitfd w = { .fd = f->cancel_fd, .events = CURL_WAIT_POLLIN };
        if (c->multi_poll(f->multi, &w, 1, 1000, NULL) != CURLM_OK)
            break;
        if (w.revents & CURL_WAIT_POLLIN) {
            code = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
    }
    (void) c->multi_remove_handle(f->multi, f->easy);
    return code;
}

/* The options of every request; curl_easy_reset() is not used, so connections and TLS sessions
 * survive from one request to the next. */
static void set_common(keel_fetch *f, transfer *t, char *errbuf)
{
    const keel_curl *c = f->curl;
    (void) c->easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
    (void) c->easy_setopt(f->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    (void) c->easy_setopt(f->easy, CURLOPT_USERAGENT, f->user_agent);
    (void) c->easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, (long) (f->timeout / KEEL_USEC_PER_MSEC));
    (void) c->easy_setopt(f->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) (f->connect_timeout / KEEL_USEC_PER_MSEC));
    (void) c->easy_setopt(f->easy, CURLOPT_ERRORBUFFER, errbuf);
    (void) c->easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_body);
    (void) c->easy_setopt(f->easy, CURLOPT_WRITEDATA, t);
    (void) c->easy_setopt(f->easy, CURLOPT_HEADERFUNCTION, on_header);
    (void) c->easy_setopt(f->easy, CURLOPT_HEADERDATA, t);
    if (f->cancelled) {
        (void) c->easy_setopt(f->easy, CURLOPT_NOPROGRESS, 0L);
        (void) c->easy_setopt(f->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
        (void) c->easy_setopt(f->easy, CURLOPT_XFERINFODATA, f);
    }
    if (f->ca_file)
        (void) c->easy_setopt(f->easy, CURLOPT_CAINFO, f->ca_file);
    if (f->cert_file) {
        (void) c->easy_setopt(f->easy, CURLOPT_SSLCERT, f->cert_file);
        (void) c->easy_setopt(f->easy, CURLOPT_SSLKEY, f->key_file);
    }
}

static void set_method(keel_fetch *f, const char *method, const void *body, size_t size)
{
    const keel_curl *c = f->curl;
    bool head = streq(method, "HEAD"), get = streq(method, "GET");
    (void) c->easy_setopt(f->easy, CURLOPT_HTTPGET, 1L); /* resets POST and NOBODY of an earlier request */
    if (head)
        (void) c->easy_setopt(f->easy, CURLOPT_NOBODY, 1L);
    if (!head && !get) {
        (void) c->easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) size);
        (void) c->easy_setopt(f->easy, CURLOPT_POSTFIELDS, body ? body : "");
    }
    (void) c->easy_setopt(f->easy, CURLOPT_CUSTOMREQUEST, head || get || streq(method, "POST") ? NULL : method);
}

static int fill_headers(keel_fetch *f, const char *const *headers, struct curl_slist **ret)
{
    struct curl_slist *list = NULL;
    /* libcurl sends "Expect: 100-continue" before a large body: a round trip for nothing. */
    const char *const expect[] = { "Expect:", NULL };
    for (const char *const *v = expect; *v; v++)
        if (!(list = f->curl->slist_append(list, *v)))
            return -ENOMEM;
    for (const char *const *h = headers; h && *h; h++) {
        struct curl_slist *l = f->curl->slist_append(list, *h);
        if (!l) {
            f->curl->slist_free_all(list);
            return -ENOMEM;
        }
        list = l;
    }
    *ret = list;
    return 0;
}

static void transfer_done(transfer *t)
{
    keel_strbuf_done(&t->body);
    keel_strbuf_done(&t->head);
}

/* The collected buffers as the response's own strings. */
static int take_response(transfer *t, long status, keel_fetch_response *ret)
{
    char *body = t->body.heap ? t->body.buf : strndup(t->body.buf, t->body.len);
    char *head = t->head.heap ? t->head.buf : strndup(t->head.buf, t->head.len);
    if (!body || !head) {
        if (body != t->body.buf)
            free(body);
        if (head != t->head.buf)
            free(head);
        return -ENOMEM;
    }
    *ret = (keel_fetch_response){ .status = (unsigned) status, .body = body, .size = t->body.len, .headers = head };
    t->body.heap = t->head.heap = false; /* now the response's */
    return 0;
}

int keel_fetch_request(keel_fetch *f, const char *method, const char *url, const char *const *headers, const void *body,
                       size_t size, keel_fetch_response *ret, char *error)
{
    if (!f || !method || !url || !ret) {
        set_error(error, "%s", "Invalid arguments");
        return -EINVAL;
    }
    char bbuf[1024], hbuf[1024], errbuf[CURL_ERROR_SIZE] = "";
    transfer t = { .body = KEEL_STRBUF_INIT_GROWABLE(bbuf), .head = KEEL_STRBUF_INIT_GROWABLE(hbuf), .limit = f->body_limit };
    struct curl_slist *list = NULL;
    if (fill_headers(f, headers, &list) < 0)
        return set_error(error, "%s", "Out of memory"), -ENOMEM;
    set_common(f, &t, errbuf);
    set_method(f, method, body, size);
    (void) f->curl->easy_setopt(f->easy, CURLOPT_URL, url);
    (void) f->curl->easy_setopt(f->easy, CURLOPT_HTTPHEADER, list);
    CURLcode code = f->cancel_fd >= 0 ? perform_cancellable(f) : f->curl->easy_perform(f->easy);
    (void) f->curl->easy_setopt(f->easy, CURLOPT_HTTPHEADER, NULL);
    (void) f->curl->easy_setopt(f->easy, CURLOPT_ERRORBUFFER, NULL);
    f->curl->slist_free_all(list);
    long status = 0;
    int r = 0;
    if (code != CURLE_OK) {
        r = errno_of(code, &t);
        if (r == -EFBIG)
            (void) snprintf(errbuf, sizeof errbuf, "the response body passes %zu bytes", f->body_limit);
        set_error(error, "%s", *errbuf ? errbuf : f->curl->easy_strerror(code));
    } else if (f->curl->easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
               (r = take_response(&t, status, ret)) < 0) {
        r = r < 0 ? r : -EIO;
        set_error(error, "%s", r == -ENOMEM ? "Out of memory" : "No response code");
    }
    transfer_done(&t);
    return r;
}

/* Whitespace and every control byte: a header value neither begins nor ends with one, nor holds one. */
static bool is_blank(char c)
{
    return (unsigned char) c <= 0x20 || c == 0x7f;
}

const char *keel_fetch_response_header(const keel_fetch_response *r, const char *name, char *buf, size_t size)
{
    size_t n = name ? strlen(name) : 0;
    if (!r || !r->headers || n == 0 || size == 0)
        return NULL;
    for (const char *line = r->headers; *line;) {
        const char *end = strchrnul(line, '\n');
        if ((size_t) (end - line) > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            const char *v = line + n + 1;
            while (v < end && is_blank(*v))
                v++;
            size_t len = (size_t) (end - v);
            while (len > 0 && is_blank(v[len - 1]))
                len--;
            (void) snprintf(buf, size, "%.*s", (int) KEEL_MIN(len, (size_t) INT_MAX), v);
            /* RFC 9110 §5.5: a CR (or another control byte) in a value is replaced with SP. */
            for (char *c = buf; *c; c++)
                if (is_blank(*c))
                    *c = ' ';
            return buf;
        }
        line = *end ? end + 1 : end;
    }
    return NULL;
}

void keel_fetch_response_done(keel_fetch_response *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->headers);
    *r = (keel_fetch_response){};
}
