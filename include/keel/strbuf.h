/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A string builder over the caller's buffer, for records and bodies formatted on the stack. A
 * bounded one truncates past the end, keeps the text NUL-terminated and remembers that it did; it
 * never allocates and never fails. A growable one moves to the heap when the text outgrows the
 * buffer (truncating only when memory runs out), and then must be given to keel_strbuf_done().
 */
typedef struct keel_strbuf {
    char *buf;
    size_t size; /* capacity, the NUL included */
    size_t len;  /* bytes written, the NUL not included */
    bool truncated;
    bool growable; /* may move to the heap */
    bool heap;     /* buf is malloc'd: keel_strbuf_done() frees it */
} keel_strbuf;

/** A bounded builder over the array @b (not a pointer), empty. */
#define KEEL_STRBUF_INIT(b) ((keel_strbuf){ .buf = (b), .size = sizeof(b) })
/** A growable builder that starts in the array @b. */
#define KEEL_STRBUF_INIT_GROWABLE(b) ((keel_strbuf){ .buf = (b), .size = sizeof(b), .growable = true })

/** Appends the string @s. */
KEEL_API void keel_strbuf_append(keel_strbuf *sb, const char *s);
/** Appends the first @n bytes of @s. */
KEEL_API void keel_strbuf_appendn(keel_strbuf *sb, const char *s, size_t n);
/** Appends printf-formatted text. */
KEEL_API void keel_strbuf_printf(keel_strbuf *sb, const char *fmt, ...) KEEL_PRINTF(2, 3);
/** keel_strbuf_printf() with a va_list. */
KEEL_API void keel_strbuf_vprintf(keel_strbuf *sb, const char *fmt, va_list ap) KEEL_PRINTF(2, 0);
/**
 * Appends @s as the inside of a JSON string: quotes, backslashes and control characters escaped,
 * and every byte that is not part of valid UTF-8 as the text "\xNN" (so the output is valid JSON
 * and the byte is still known).
 */
KEEL_API void keel_strbuf_json(keel_strbuf *sb, const char *s);
/** Appends @s for a one-line text record: backslashes, control characters (newlines too) and bytes
 * that are not valid UTF-8 as "\n", "\t", "\xNN". */
KEEL_API void keel_strbuf_escaped(keel_strbuf *sb, const char *s);
/** Appends "name":"value", both JSON-escaped, preceded by a comma unless @first. */
KEEL_API void keel_strbuf_json_field(keel_strbuf *sb, const char *name, const char *value, bool first);
/** Frees what a growable builder allocated; the builder is empty and unusable afterwards. */
KEEL_API void keel_strbuf_done(keel_strbuf *sb);

/** The length of the valid UTF-8 sequence at @s (of @n bytes), or 0 when none starts there
 * (an overlong form, a surrogate, past U+10FFFF, cut short). */
KEEL_API size_t keel_utf8_valid_prefix(const char *s, size_t n);
/** Whether the string @s is valid UTF-8 throughout. */
KEEL_API bool keel_utf8_valid(const char *s);

#ifdef __cplusplus
}
#endif
