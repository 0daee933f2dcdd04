/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include <keel/strbuf.h>

void keel_strbuf_appendn(keel_strbuf *sb, const char *s, size_t n)
{
    size_t room = sb->size - 1 - sb->len;
    if (n > room) {
        n = room;
        sb->truncated = true;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = 0;
}

void keel_strbuf_append(keel_strbuf *sb, const char *s)
{
    keel_strbuf_appendn(sb, s, strlen(s));
}

void keel_strbuf_vprintf(keel_strbuf *sb, const char *fmt, va_list ap)
{
    size_t room = sb->size - sb->len;
    int n = vsnprintf(sb->buf + sb->len, room, fmt, ap);
    if (n < 0)
        return;
    if ((size_t) n >= room) {
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

void keel_strbuf_json(keel_strbuf *sb, const char *s)
{
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        switch (*p) {
        case '"':
            keel_strbuf_append(sb, "\\\"");
            break;
        case '\\':
            keel_strbuf_append(sb, "\\\\");
            break;
        case '\n':
            keel_strbuf_append(sb, "\\n");
            break;
        case '\t':
            keel_strbuf_append(sb, "\\t");
            break;
        case '\r':
            keel_strbuf_append(sb, "\\r");
            break;
        default:
            if (*p < 0x20)
                keel_strbuf_printf(sb, "\\u%04x", *p);
            else
                keel_strbuf_appendn(sb, (const char *) p, 1);
        }
    }
}

void keel_strbuf_json_field(keel_strbuf *sb, const char *name, const char *value, bool first)
{
    keel_strbuf_append(sb, first ? "\"" : ",\"");
    keel_strbuf_append(sb, name);
    keel_strbuf_append(sb, "\":\"");
    keel_strbuf_json(sb, value);
    keel_strbuf_append(sb, "\"");
}
