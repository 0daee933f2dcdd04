/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <keel/common.h>

/* A bounded string builder over a caller's buffer: logging and tracing format whole records on
 * the stack and hand them to one write(2), so records from several threads never interleave.
 * Past the end it truncates and remembers it did. */
typedef struct keel_strbuf {
    char *buf;
    size_t size; /* capacity including the NUL */
    size_t len;
    bool truncated;
} keel_strbuf;

#define KEEL_STRBUF_INIT(b) ((keel_strbuf){ .buf = (b), .size = sizeof(b), .len = 0, .truncated = false })

void keel__strbuf_append(keel_strbuf *sb, const char *s);
void keel__strbuf_appendn(keel_strbuf *sb, const char *s, size_t n);
void keel__strbuf_printf(keel_strbuf *sb, const char *fmt, ...) KEEL_PRINTF(2, 3);
void keel__strbuf_vprintf(keel_strbuf *sb, const char *fmt, va_list ap) KEEL_PRINTF(2, 0);
/* Appends @s as the inside of a JSON string: quotes, backslashes and control characters escaped. */
void keel__strbuf_json(keel_strbuf *sb, const char *s);
/* Appends "name":"value" (JSON-escaped), preceded by a comma unless @first. */
void keel__strbuf_json_field(keel_strbuf *sb, const char *name, const char *value, bool first);
