/* SPDX-License-Identifier: MIT */
/* A request head as any client sends it, read by the server's own parser (core/http/parse.c), and
 * what follows it as a chunked body: a refusal always has a status and a reason; a head that is
 * served has a method of token characters, a path, and fields whose names are tokens and whose
 * values hold no CR, LF or NUL and no blank at either end, all within the head; the chunked
 * reader never reads past its input; and on a path that takes a body (core/http/body.c, "/a" of
 * at most 64 bytes here), a chunked one is refused 411 and a larger one 413, both closing the
 * connection, and any other is kept whole, right behind the head, within the limit. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z') || strchr(extra, *s)))
            return false;
    return true;
}

static bool inside(const char *p, const char *buf, size_t len)
{
    return p >= buf && p + strlen(p) <= buf + len;
}

static void check_served(const keel__http_head *h, const char *buf, size_t len)
{
    if (!h->method || !token(h->method) || !h->path || !h->path[0] || (h->minor != 0 && h->minor != 1))
        abort();
    for (size_t i = 0; i < h->n_fields; i++) {
        const char *name = h->fields[i].name, *value = h->fields[i].value;
        size_t n = strlen(value);
        if (!token(name) || !inside(name, buf, len) || !inside(value, buf, len) || strpbrk(value, "\r\n"))
            abort();
        if (n > 0 && (value[0] == ' ' || value[0] == '\t' || value[n - 1] == ' ' || value[n - 1] == '\t'))
            abort();
    }
    if (h->body == BODY_LENGTH && h->length == 0)
        abort(); /* an empty body is no body */
}

/* The body path of a served head @h parsed from @buf (@end bytes). */
static void check_body(const keel__http_head *h, char *buf, size_t end)
{
    static keel_http_server s;
    s.body_routes[0] = (struct keel__http_body_route){ .path = (char *) "/a", .limit = 64, .flags = end & 1 };
    s.n_body_routes = 1;
    connection_state cs = { .s = &s, .in = buf, .in_len = end, .head_len = end, .head = *h, .body = h->body };
    cs.request = (keel_http_request){ .cs = &cs };
    const keel__http_refusal *r = keel__http_body_refusal(&cs);
    const void *body = NULL;
    size_t n = 0;
    int got = keel_http_request_body(&cs.request, &body, &n);
    if (strcmp(h->path, "/a") != 0) {
        if (r || cs.body_kept || got != -ENODATA)
            abort(); /* another path: skipped as ever */
        return;
    }
    if (h->body == BODY_CHUNKED || (h->body == BODY_LENGTH && h->length > 64)) {
        if (!r || r->status != (h->body == BODY_CHUNKED ? 411u : 413u) || !cs.head.close || cs.body != BODY_NONE)
            abort();
        return;
    }
    if (r || !cs.body_kept || got != 0 || body != buf + end || n > 64 || n != (h->body == BODY_LENGTH ? h->length : 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t scanned = 0;
    size_t end = keel__http_head_end((const char *) data, size, &scanned);
    if (!end)
        return 0;
    if (end > size || scanned > size)
        abort();
    char *buf = malloc(end);
    if (!buf)
        abort();
    memcpy(buf, data, end);
    keel__http_head h = {};
    const keel__http_refusal *r = keel__http_parse_head(buf, end, &h);
    if (r && (r->status < 400 || !r->body || !r->body[0]))
        abort(); /* a refusal names its reason */
    if (!r) {
        check_served(&h, buf, end);
        check_body(&h, buf, end);
    }
    if (!r && h.body == BODY_CHUNKED) {
        keel__http_chunked c = { .state = CHUNK_SIZE };
        ssize_t n = keel__http_chunked_skip(&c, (const char *) data + end, size - end);
        if (n > (ssize_t) (size - end) || (n >= 0 && c.state != CHUNK_DONE && (size_t) n != size - end))
            abort(); /* it stops only at the body's end or an error */
    }
    free(h.fields);
    free(buf);
    return 0;
}
