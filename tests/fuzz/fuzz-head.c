/* SPDX-License-Identifier: MIT */
/* A request head as any client sends it, read by the server's own parser (core/http/parse.c), and
 * what follows it as a chunked body: a refusal always has a status and a reason; a head that is
 * served has a method of token characters, a path, and fields whose names are tokens and whose
 * values hold no CR, LF or NUL and no blank at either end, all within the head; and the chunked
 * reader never reads past its input. */
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
    if (!r)
        check_served(&h, buf, end);
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
