/* SPDX-License-Identifier: MIT */
/*
 * Answers, on the polling thread: the head and the body are laid out in the connection's output
 * buffer and go out in one write (over TLS, one record). A constant answer's head is built once
 * per server and copied; only its Date changes, once a second.
 */
#include <stdio.h>
#include <time.h>

#include "http-internal.h"

static const char *reason_of(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 200   ? "Informational"
               : status < 300 ? "Success"
               : status < 400 ? "Redirection"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}

static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char) ('0' + v % 10);
    return p + n;
}

/* RFC 9110 §5.6.7, by hand: strftime() would follow the locale. */
static const char *date_field(keel_http_server *s)
{
    static const char days[] = "SunMonTueWedThuFriSat", months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct timespec ts;
    struct tm tm;
    (void) clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if ((ts.tv_sec == s->date_second && s->date[0]) || !gmtime_r(&ts.tv_sec, &tm))
        return s->date;
    s->date_second = ts.tv_sec;
    char *p = s->date;
    p = memcpy(p, "Date: ", 6), p += 6;
    p = memcpy(p, days + 3 * (tm.tm_wday % 7), 3), p += 3;
    p = memcpy(p, ", ", 2), p += 2;
    p = put_digits(p, (unsigned) tm.tm_mday, 2);
    *p++ = ' ';
    p = memcpy(p, months + 3 * (tm.tm_mon % 12), 3), p += 3;
    *p++ = ' ';
    p = put_digits(p, (unsigned) (tm.tm_year + 1900) % 10000, 4);
    *p++ = ' ';
    p = put_digits(p, (unsigned) tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned) tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned) tm.tm_sec, 2);
    memcpy(p, " GMT\r\n", 7); /* its NUL too */
    return s->date;
}

/* What the Connection field says: closed after this answer (a drain, the client's wish, a refusal
 * whose framing is in doubt), or kept alive for an HTTP/1.0 client, which closes otherwise. */
static const char *connection_field(const keel_http_request *req)
{
    connection_state *cs = req->cs;
    if (atomic_load(&req->server->draining))
        cs->head.close = true;
    if (cs->head.close)
        return "Connection: close\r\n";
    return cs->head.minor == 0 ? "Connection: keep-alive\r\n" : "";
}

/* The head but its Date and the empty line, into @buf (NULL: only measured). */
static size_t head_into(char *buf, unsigned status, const char *content_type, size_t body_len, const char *const *headers,
                        const char *connection)
{
    char line[96];
    size_t n = 0;
#define PUT(p, len)                                                                                                                \
    do {                                                                                                                           \
        size_t len_ = (len);                                                                                                       \
        if (buf)                                                                                                                   \
            memcpy(buf + n, (p), len_);                                                                                            \
        n += len_;                                                                                                                 \
    } while (0)
    /* 204 and 304 end at their head: no Content-Length (RFC 9110 8.6), and no body to measure. */
    int l = keel__http_status_bodiless(status)
                ? snprintf(line, sizeof line, "HTTP/1.1 %u %s\r\n", status, reason_of(status))
                : snprintf(line, sizeof line, "HTTP/1.1 %u %s\r\nContent-Length: %zu\r\n", status, reason_of(status), body_len);
    PUT(line, (size_t) l);
    if (content_type) {
        PUT("Content-Type: ", 14);
        PUT(content_type, strlen(content_type));
        PUT("\r\n", 2);
    }
    for (const char *const *h = headers; h && h[0] && h[1]; h += 2) {
        PUT(h[0], strlen(h[0]));
        PUT(": ", 2);
        PUT(h[1], strlen(h[1]));
        PUT("\r\n", 2);
    }
    PUT(connection, strlen(connection));
#undef PUT
    return n;
}

/* Lays out head, Date, empty line and body (none for HEAD) in the connection's buffer. */
static int lay_out(keel_http_request *req, const char *head, size_t head_len, const void *body, size_t body_len)
{
    connection_state *cs = req->cs;
    const char *date = date_field(req->server);
    size_t date_len = strlen(date);
    if (cs->head.head_method)
        body_len = 0;
    size_t need = head_len + date_len + 2 + body_len;
    if (cs->out_size < need) {
        char *out = malloc(MAX(need, (size_t) 512));
        if (!out)
            return -ENOMEM;
        free(cs->out);
        cs->out = out;
        cs->out_size = MAX(need, (size_t) 512);
    }
    memcpy(cs->out, head, head_len);
    memcpy(cs->out + head_len, date, date_len);
    memcpy(cs->out + head_len + date_len, "\r\n", 2);
    if (body_len)
        memcpy(cs->out + head_len + date_len + 2, body, body_len);
    cs->out_len = need;
    cs->out_sent = 0;
    keel__http_conn_wait(req->server, cs, CONN_SERVING); /* its silence is timed from here */
    return 0;
}

static int answer(keel_http_request *req, unsigned status)
{
    req->status = status;
    req->answered = true;
    return 0;
}

int keel_http_respond(keel_http_request *req, unsigned status, const char *content_type, const void *body, size_t size,
                      const char *const *headers)
{
    keel_assert_return(req && keel__http_status_valid(status, size) && (body || size == 0), -EINVAL);
    if (req->answered)
        return -EALREADY;
    const char *connection = connection_field(req);
    char small[1024];
    size_t head_len = head_into(NULL, status, content_type, size, headers, connection);
    char *head = head_len <= sizeof small ? small : malloc(head_len);
    if (!head)
        return -ENOMEM;
    (void) head_into(head, status, content_type, size, headers, connection);
    int r = lay_out(req, head, head_len, body, size);
    if (head != small)
        free(head);
    return r < 0 ? r : answer(req, status);
}

static cached_response *cached(keel_http_server *s, unsigned status, const char *content_type, const char *body,
                               const char *connection)
{
    for (size_t i = 0; i < s->n_cache; i++) {
        cached_response *c = &s->cache[i];
        if (c->status == status && c->content_type == content_type && c->body == body && c->connection == connection)
            return c;
    }
    if (s->n_cache == ELEMENTSOF(s->cache))
        return NULL;
    size_t body_len = strlen(body), head_len = head_into(NULL, status, content_type, body_len, NULL, connection);
    char *head = malloc(head_len);
    if (!head)
        return NULL;
    (void) head_into(head, status, content_type, body_len, NULL, connection);
    s->cache[s->n_cache] = (cached_response){ status, content_type, body, connection, head, head_len, body_len };
    return &s->cache[s->n_cache++];
}

int keel_http_respond_static(keel_http_request *req, unsigned status, const char *content_type, const char *body)
{
    keel_assert_return(req && body && keel__http_status_valid(status, strlen(body)), -EINVAL);
    if (req->answered)
        return -EALREADY;
    cached_response *c = cached(req->server, status, content_type, body, connection_field(req));
    if (!c) /* the cache is full: answer the usual way */
        return keel_http_respond_text(req, status, content_type, body);
    int r = lay_out(req, c->head, c->head_len, body, c->body_len);
    return r < 0 ? r : answer(req, status);
}

int keel_http_respond_text(keel_http_request *req, unsigned status, const char *content_type, const char *body)
{
    keel_assert_return(body, -EINVAL);
    return keel_http_respond(req, status, content_type, body, strlen(body), NULL);
}

void keel__http_cache_free(keel_http_server *s)
{
    for (size_t i = 0; i < s->n_cache; i++)
        free(s->cache[i].head);
    s->n_cache = 0;
}
