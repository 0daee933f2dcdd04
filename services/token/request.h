/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* What a /token request must carry, and the id each request gets. */

/* The longest X-Athenz-Domain or X-Athenz-Role value accepted. */
#define TOKEN_HEADER_MAX 128

/*
 * Checks the value of header @name: present, non-empty, at most TOKEN_HEADER_MAX bytes, only
 * [A-Za-z0-9._:-]. Returns 0, or -EINVAL with "missing header X-Athenz-Domain" (or empty, too
 * long, a bad character at a position) in @reason (@size bytes).
 */
int token_check_header(const char *name, const char *value, char *reason, size_t size);
/* The same checks of a present @value, which @what names in @reason ("option --domain"). */
int token_check_value(const char *what, const char *value, char *reason, size_t size);

/* @value made safe for a log line: at most 64 bytes, anything outside printable ASCII as '?'. */
void token_log_safe(const char *value, char ret[static 68]);
