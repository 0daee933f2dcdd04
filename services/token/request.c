/* SPDX-License-Identifier: MIT */
/* Request headers of the token server (request.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "request.h"

static bool safe_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == ':' || ch == '.' ||
           ch == '_' || ch == '-';
}

int token_check_value(const char *what, const char *value, char *reason, size_t size)
{
    size_t n = strnlen(value, TOKEN_HEADER_MAX + 1);
    if (n == 0) {
        (void) snprintf(reason, size, "empty %s", what);
        return -EINVAL;
    }
    if (n > TOKEN_HEADER_MAX) {
        (void) snprintf(reason, size, "%s is longer than %d bytes", what, TOKEN_HEADER_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if (!safe_char(value[i])) {
            (void) snprintf(reason, size, "%s has a character outside [A-Za-z0-9._:-] at offset %zu", what, i);
            return -EINVAL;
        }
    return 0;
}

int token_check_header(const char *name, const char *value, char *reason, size_t size)
{
    char what[64];
    if (!value) {
        (void) snprintf(reason, size, "missing header %s", name);
        return -EINVAL;
    }
    (void) snprintf(what, sizeof what, "header %s", name);
    return token_check_value(what, value, reason, size);
}

void token_log_safe(const char *value, char ret[static 68])
{
    size_t i = 0;
    for (; value && value[i] && i < 64; i++)
        ret[i] = value[i] >= 0x20 && value[i] < 0x7f ? value[i] : '?';
    if (value && value[i])
        ret[i++] = '.', ret[i++] = '.', ret[i++] = '.';
    ret[i] = '\0';
}
