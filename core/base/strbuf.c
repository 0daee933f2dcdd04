/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keel/strbuf.h>

#include "macro-internal.h"

/* Room for @n more bytes and the NUL: the caller's buffer, a larger heap one for a growable
 * builder, or what is left (and truncated set) when neither holds it. */
static size_t reserve(keel_strbuf *sb, size_t n)
{
    size_t room = sb->size - 1 - sb->len;
    if (n <= room || !sb->growable)
        return MIN(n, room);
    size_t size = MAX(sb->size * 2, sb->len + n + 1);
    char *p = sb->heap ? realloc(sb->buf, size) : malloc(size);
    if (!p)
        return room;
    if (!sb->heap)
        memcpy(p, sb->buf, sb->len + 1);
    sb->buf = p;
    sb->size = size;
    sb->heap = true;
    return n;
}

void keel_strbuf_appendn(keel_strbuf *sb, const char *s, size_t n)
{
    size_t fits = reserve(sb, n);
    if (fits < n)
        sb->truncated = true;
    memcpy(sb->buf + sb->len, s, fits);
    sb->len += fits;
    sb->buf[sb->len] = 0;
}

void keel_strbuf_append(keel_strbuf *sb, const char *s)
{
    keel_strbuf_appendn(sb, s, strlen(s));
}

void keel_strbuf_vprintf(keel_strbuf *sb, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    size_t room = sb->size - sb->len;
    int n = vsnprintf(sb->buf + sb->len, room, fmt, ap);
    if (n >= 0 && (size_t) n >= room && reserve(sb, (size_t) n) == (size_t) n)
        (void) vsnprintf(sb->buf + sb->len, sb->size - sb->len, fmt, again);
    va_end(again);
    if (n < 0)
        return;
    if ((size_t) n >= sb->size - sb->len) {
        sb->len = sb->size - 1;
        sb->truncated = true;
    } else
        sb->len += (size_t) n;
}

void keel_strbuf_printf(keel_strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_strbuf_vprintf(sb, fmt, ap);
    va_end(ap);
}

size_t keel_utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *) s;
    if (n == 0)
        return 0;
    if (p[0] < 0x80)
        return 1;
    size_t len = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, past U+10FFFF, a surrogate: as Go's utf8.ValidString */
    return len;
}

bool keel_utf8_valid(const char *s)
{
    for (size_t n = strlen(s), k; n > 0; s += k, n -= k)
        if (!(k = keel_utf8_valid_prefix(s, n)))
            return false;
    return true;
}

/* @s as the inside of a JSON string (@json) or of a text record: what is not valid UTF-8 becomes
 * "\xNN", so that the byte is still known and the output stays valid. */
static void escape(keel_strbuf *sb, const char *s, size_t n, bool json)
{
    while (n > 0) {
        unsigned char c = (unsigned char) *s;
        size_t k = keel_utf8_valid_prefix(s, n);
        if (k == 0)
            keel_strbuf_printf(sb, json ? "\\\\x%02x" : "\\x%02x", c);
        else if (c == '"' && json)
            keel_strbuf_append(sb, "\\\"");
        else if (c == '\\')
            keel_strbuf_append(sb, "\\\\");
        else if (c == '\n')
            keel_strbuf_append(sb, "\\n");
        else if (c == '\t')
            keel_strbuf_append(sb, "\\t");
        else if (c == '\r')
            keel_strbuf_append(sb, "\\r");
        else if (c < 0x20 || c == 0x7f)
            keel_strbuf_printf(sb, json ? "\\u%04x" : "\\x%02x", c);
        else
            keel_strbuf_appendn(sb, s, k);
        k = k ? k : 1;
        s += k;
        n -= k;
    }
}

void keel_strbuf_json(keel_strbuf *sb, const char *s)
{
    escape(sb, s, strlen(s), true);
}

void keel_strbuf_escaped(keel_strbuf *sb, const char *s)
{
    escape(sb, s, strlen(s), false);
}

void keel_strbuf_json_field(keel_strbuf *sb, const char *name, const char *value, bool first)
{
    keel_strbuf_append(sb, first ? "\"" : ",\"");
    keel_strbuf_append(sb, name);
    keel_strbuf_append(sb, "\":\"");
    keel_strbuf_json(sb, value);
    keel_strbuf_append(sb, "\"");
}

void keel_strbuf_done(keel_strbuf *sb)
{
    if (sb->heap)
        free(sb->buf);
    sb->buf = NULL;
    sb->heap = false;
}
