/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <keel/common.h>

/**
 * A bounded string builder over the caller's buffer, for records and bodies formatted on the
 * stack: past the end it truncates, keeps the text NUL-terminated and remembers that it did.
 * Never allocates, never fails. Keel's log and trace records, and its services' small JSON
 * bodies, are built with it.
 */
typedef struct keel_strbuf {
    char *buf;
    size_t size; /* capacity, the NUL included */
    size_t len;  /* bytes written, the NUL not included */
    bool truncated;
} keel_strbuf;

/** A builder over the array @b (not a pointer), empty. */
#define KEEL_STRBUF_INIT(b) ((keel_strbuf){ .buf = (b), .size = sizeof(b), .len = 0, .truncated = false })

/** Appends the string @s. */
KEEL_API void keel_strbuf_append(keel_strbuf *sb, const char *s);
/** Appends the first @n bytes of @s. */
KEEL_API void keel_strbuf_appendn(keel_strbuf *sb, const char *s, size_t n);
/** Appends printf-formatted text. */
KEEL_API void keel_strbuf_printf(keel_strbuf *sb, const char *fmt, ...) KEEL_PRINTF(2, 3);
/** keel_strbuf_printf() with a va_list. */
KEEL_API void keel_strbuf_vprintf(keel_strbuf *sb, const char *fmt, va_list ap) KEEL_PRINTF(2, 0);
/** Appends @s as the inside of a JSON string: quotes, backslashes and control characters escaped. */
KEEL_API void keel_strbuf_json(keel_strbuf *sb, const char *s);
/** Appends "name":"value", both JSON-escaped, preceded by a comma unless @first. */
KEEL_API void keel_strbuf_json_field(keel_strbuf *sb, const char *name, const char *value, bool first);
