/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>

#include "macro-internal.h"

char **keel_strv_free(char **l)
{
    if (!l)
        return NULL;
    for (char **i = l; *i; i++)
        free(*i);
    free(l);
    return NULL;
}

size_t keel_strv_length(char *const *l)
{
    size_t n = 0;
    if (l)
        while (l[n])
            n++;
    return n;
}

int keel_strv_push(char ***l, char *value)
{
    size_t n = keel_strv_length(*l);
    char **c = realloc(*l, sizeof(char *) * (n + 2));
    if (!c) {
        free(value);
        return -ENOMEM;
    }
    c[n] = value;
    c[n + 1] = NULL;
    *l = c;
    return 0;
}

int keel_strv_extend(char ***l, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -ENOMEM;
    return keel_strv_push(l, v);
}

char **keel_strv_copy(char *const *l)
{
    _cleanup_strv_free_ char **c = calloc(keel_strv_length(l) + 1, sizeof(char *));
    if (!c)
        return NULL;
    for (size_t i = 0; l && l[i]; i++)
        if (!(c[i] = strdup(l[i])))
            return NULL;
    return TAKE_PTR(c);
}

bool keel_strv_contains(const char *const *l, const char *s)
{
    for (; l && *l; l++)
        if (streq(*l, s))
            return true;
    return false;
}

bool keel_strv_equal(char *const *a, char *const *b)
{
    size_t n = keel_strv_length(a);
    if (n != keel_strv_length(b))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!streq(a[i], b[i]))
            return false;
    return true;
}

char *keel_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    return r < 0 ? NULL : s;
}
