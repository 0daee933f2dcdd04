/* SPDX-License-Identifier: MIT */
/* The body of POST /accesstoken as any client sends it (services/token/access.c): a refusal always
 * names what is wrong; a request taken has a domain and one to ACCESS_ROLES_MAX roles, each
 * non-empty, of [A-Za-z0-9._:-] only, sorted and each once, and an expiry that is not negative;
 * and its cache key splits back into its roles and the lifetime it was made with. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether the role of @n bytes at @a sorts before the one of @m bytes at @b, as strcmp() would. */
static bool before(const char *a, size_t n, const char *b, size_t m)
{
    int c = memcmp(a, b, n < m ? n : m);
    return c < 0 || (c == 0 && n < m);
}

static void check_roles(const access_request *a)
{
    static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
    const char *prev = NULL;
    size_t n_prev = 0, count = 0;
    for (const char *p = a->roles;; p++) {
        size_t n = strspn(p, allowed);
        if (n == 0 || (prev && !before(prev, n_prev, p, n)))
            abort(); /* empty, or not after the one before it */
        prev = p, n_prev = n, count++;
        p += n;
        if (!*p)
            break;
        if (*p != ' ')
            abort();
    }
    if (count != a->n_roles || count > ACCESS_ROLES_MAX)
        abort();
}

static void check_key(const access_request *a)
{
    keel_usec_t lifetime = 0, back = 1;
    char *key = NULL, *scope = NULL;
    if (a->expiry_s > 0)
        lifetime = access_lifetime(a, 3600 * KEEL_USEC_PER_SEC);
    if (access_cache_role(a, lifetime, &key) < 0 || access_scope(a, &scope) < 0)
        abort();
    if (access_cache_role_split(key, &back) != strlen(a->roles) || back != lifetime)
        abort();
    if (lifetime && (lifetime < ACCESS_LIFETIME_MIN || lifetime >= 3600 * KEEL_USEC_PER_SEC))
        abort();
    free(key);
    free(scope);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    access_request a = { 0 };
    char reason[256] = "";
    int r = access_request_parse(size > 0 && data[0] == ' ' ? "application/json; x" : NULL, data, size, &a, reason, sizeof reason);
    if (r == -EINVAL && !reason[0])
        abort(); /* a refusal names its reason */
    if (r == 0) {
        if (!a.domain || !*a.domain || a.expiry_s < 0)
            abort();
        check_roles(&a);
        check_key(&a);
    }
    access_request_done(&a);
    return 0;
}
