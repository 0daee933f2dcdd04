/* SPDX-License-Identifier: MIT */
/* The body of POST /accesstoken, checked, and the cache key and scope of what it asks (access.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <keel/strbuf.h>

#include "access.h"
#include "request.h"

void access_request_done(access_request *a)
{
    free(a->domain);
    free(a->roles);
    *a = (access_request){ 0 };
}

static int refuse(char *reason, size_t size, const char *fmt, ...) KEEL_PRINTF(3, 4);
static int refuse(char *reason, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void) vsnprintf(reason, size, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const char *type_name(const json_t *j)
{
    static const char *const names[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string", [JSON_INTEGER] = "an integer",
        [JSON_REAL] = "a number",    [JSON_TRUE] = "true",      [JSON_FALSE] = "false",     [JSON_NULL] = "null",
    };
    return names[json_typeof(j)];
}

/* The OpenAPI file gives the body as application/json only; none at all is taken as JSON too. */
static int check_content_type(const char *type, char *reason, size_t size)
{
    if (!type)
        return 0;
    size_t n = strcspn(type, ";");
    while (n > 0 && (type[n - 1] == ' ' || type[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(type, "application/json", 16) == 0)
        return 0;
    char safe[68];
    token_log_safe(type, safe);
    return refuse(reason, size, "Content-Type: must be application/json, not '%s'", safe);
}

/* A member that must be a string when present: its value, NULL when absent, or -EINVAL. */
static int member_string(json_t *body, const char *name, const char **ret, char *reason, size_t size)
{
    json_t *j = json_object_get(body, name);
    if (j && !json_is_string(j))
        return refuse(reason, size, "%s: must be a string, not %s", name, type_name(j));
    *ret = j ? json_string_value(j) : NULL;
    return 0;
}

static int check_domain(const char *domain, char *reason, size_t size)
{
    if (!domain)
        return refuse(reason, size, "domain: required");
    if (!*domain)
        return refuse(reason, size, "domain: must not be empty");
    return token_check_value("domain", domain, reason, size);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The comma-separated @role, checked, into @ret's roles: sorted, each once, one space apart. */
static int parse_roles(const char *role, access_request *ret, char *reason, size_t size)
{
    if (!role)
        return refuse(reason, size, "role: required: keel mints tokens for the roles named, and cannot ask for a domain's all");
    if (!*role)
        return refuse(reason, size, "role: must not be empty");
    _cleanup_free_ char *copy = strdup(role);
    if (!copy)
        return -ENOMEM;
    char *elements[ACCESS_ROLES_MAX];
    size_t n = 0, position = 1;
    for (char *p = copy, *next; p; p = next, position++) {
        next = strchr(p, ',');
        if (next)
            *next++ = '\0';
        char what[48];
        (void) snprintf(what, sizeof what, "role: the element at position %zu", position);
        if (!*p)
            return refuse(reason, size, "role: empty element at position %zu", position);
        if (token_check_value(what, p, reason, size) < 0)
            return -EINVAL;
        if (n == ACCESS_ROLES_MAX)
            return refuse(reason, size, "role: more than %d roles", ACCESS_ROLES_MAX);
        elements[n++] = p;
    }
    qsort(elements, n, sizeof *elements, compare_strings);
    char buf[256];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(buf);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || !streq(elements[i], elements[i - 1])) {
            keel_strbuf_printf(&sb, "%s%s", kept++ ? " " : "", elements[i]);
        }
    ret->roles = sb.truncated ? NULL : strdup(sb.buf);
    keel_strbuf_done(&sb);
    if (!ret->roles)
        return -ENOMEM;
    ret->n_roles = kept;
    return 0;
}

/* A principal another one acts for needs an authorization keel has no way to check: only the
 * SIA's default, an empty string, is taken (decision 0029). */
static int check_proxy(const char *proxy, char *reason, size_t size)
{
    if (proxy && *proxy)
        return refuse(
            reason, size,
            "proxy_for_principal: not supported: keel issues tokens for its own identity only; send \"\" or leave it out");
    return 0;
}

static int parse_expiry(json_t *body, int64_t *ret, char *reason, size_t size)
{
    json_t *j = json_object_get(body, "expiry");
    *ret = 0;
    if (!j)
        return 0;
    if (!json_is_integer(j))
        return refuse(reason, size, "expiry: must be an integer number of seconds, not %s", type_name(j));
    if (json_integer_value(j) < 0)
        return refuse(reason, size, "expiry: must not be negative (0 or none: token.expiry), not %" JSON_INTEGER_FORMAT,
                      json_integer_value(j));
    *ret = (int64_t) json_integer_value(j);
    return 0;
}

static int parse_members(json_t *body, access_request *a, char *reason, size_t size)
{
    const char *domain = NULL, *role = NULL, *proxy = NULL; /* gcc -O2 cannot see refuse() is negative */
    int r = member_string(body, "domain", &domain, reason, size);
    if (r >= 0)
        r = check_domain(domain, reason, size);
    if (r >= 0)
        r = member_string(body, "role", &role, reason, size);
    if (r >= 0)
        r = parse_roles(role, a, reason, size);
    if (r >= 0)
        r = member_string(body, "proxy_for_principal", &proxy, reason, size);
    if (r >= 0)
        r = check_proxy(proxy, reason, size);
    if (r >= 0)
        r = parse_expiry(body, &a->expiry_s, reason, size);
    if (r >= 0 && !(a->domain = strdup(domain)))
        r = -ENOMEM;
    return r;
}

int access_request_parse(const char *content_type, const void *body, size_t size, access_request *ret, char *reason,
                         size_t reason_size)
{
    int r = check_content_type(content_type, reason, reason_size);
    if (r < 0)
        return r;
    if (size == 0)
        return refuse(reason, reason_size, "body: required: a JSON object with domain, role, proxy_for_principal, expiry");
    json_error_t error;
    json_auto_t *j = json_loadb(body, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
    if (!j)
        return refuse(reason, reason_size, "body: not JSON: %s at line %d column %d", error.text, error.line, error.column);
    if (!json_is_object(j))
        return refuse(reason, reason_size, "body: must be a JSON object, not %s", type_name(j));
    access_request a = { 0 };
    r = parse_members(j, &a, reason, reason_size);
    if (r < 0) {
        access_request_done(&a);
        return r;
    }
    *ret = a;
    return 0;
}

keel_usec_t access_lifetime(const access_request *a, keel_usec_t configured)
{
    if (a->expiry_s == 0 || (uint64_t) a->expiry_s >= configured / KEEL_USEC_PER_SEC)
        return 0;
    keel_usec_t lifetime = KEEL_MAX((keel_usec_t) a->expiry_s * KEEL_USEC_PER_SEC, ACCESS_LIFETIME_MIN);
    return lifetime >= configured ? 0 : lifetime; /* raised to token.expiry itself: its key */
}

int access_cache_role(const access_request *a, keel_usec_t lifetime, char **ret)
{
    char *s = lifetime ? keel_strdup_printf("%s#%" PRIu64, a->roles, (uint64_t) (lifetime / KEEL_USEC_PER_SEC)) : strdup(a->roles);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

size_t access_cache_role_split(const char *key, keel_usec_t *ret_lifetime)
{
    const char *hash = strchr(key, '#');
    *ret_lifetime = hash ? (keel_usec_t) strtoull(hash + 1, NULL, 10) * KEEL_USEC_PER_SEC : 0;
    return hash ? (size_t) (hash - key) : strlen(key);
}

int access_scope(const access_request *a, char **ret)
{
    char buf[512];
    keel_strbuf sb = KEEL_STRBUF_INIT_GROWABLE(buf);
    for (const char *p = a->roles; *p;) {
        size_t n = strcspn(p, " ");
        keel_strbuf_printf(&sb, "%s%s:role.%.*s", p == a->roles ? "" : " ", a->domain, (int) n, p);
        p += n + (p[n] == ' ');
    }
    char *s = sb.truncated ? NULL : strdup(sb.buf);
    keel_strbuf_done(&sb);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}
