/* SPDX-License-Identifier: MIT */
/*
 * Which challenge answers an authorization (docs/decisions/0033): certificate.acme.challenges in
 * order, the first the CA offers, the next it offers when presenting one fails. Pure, for the unit
 * test: the flow that presents them is acme-challenge.c.
 */
#include <stdio.h>

#include "acme.h"

static const char *const challenge_type_table[_ACME_CHALLENGE_TYPE_MAX] = {
    [ACME_CHALLENGE_HTTP01] = "http-01",
    [ACME_CHALLENGE_DNS01] = "dns-01",
    [ACME_CHALLENGE_TLSALPN01] = "tls-alpn-01",
};

const char *acme_challenge_type_to_string(acme_challenge_type t)
{
    return (int) t >= 0 && t < _ACME_CHALLENGE_TYPE_MAX ? challenge_type_table[t] : NULL;
}

acme_challenge_type acme_challenge_type_from_string(const char *s)
{
    for (size_t i = 0; s && i < ELEMENTSOF(challenge_type_table); i++)
        if (streq(challenge_type_table[i], s))
            return (acme_challenge_type) i;
    return _ACME_CHALLENGE_TYPE_INVALID;
}

int acme_challenge_types_parse(char *const *list, acme_challenge_type ret[static _ACME_CHALLENGE_TYPE_MAX], size_t *ret_n,
                               cert_error *e)
{
    acme_challenge_type types[_ACME_CHALLENGE_TYPE_MAX];
    size_t n = 0;
    if (!list || !*list)
        return cert_fail(e, -EINVAL,
                         "certificate.acme.challenges is empty: list http-01, dns-01, tls-alpn-01, in the order to try them");
    for (; *list; list++) {
        acme_challenge_type t = acme_challenge_type_from_string(*list);
        if (t < 0)
            return cert_fail(e, -EINVAL, "certificate.acme.challenges: '%s' is no challenge type (http-01, dns-01, tls-alpn-01)",
                             *list);
        for (size_t i = 0; i < n; i++)
            if (types[i] == t)
                return cert_fail(e, -EINVAL, "certificate.acme.challenges: '%s' is listed twice", *list);
        types[n++] = t;
    }
    memcpy(ret, types, n * sizeof *types);
    *ret_n = n;
    return 0;
}

static bool has_type(const acme_challenge_type *types, size_t n, acme_challenge_type t)
{
    for (size_t i = 0; i < n; i++)
        if (types[i] == t)
            return true;
    return false;
}

int acme_challenge_names_check(char *const *names, const acme_challenge_type *types, size_t n, cert_error *e)
{
    for (; names && *names; names++) {
        if (strncmp(*names, "*.", 2) == 0 && !has_type(types, n, ACME_CHALLENGE_DNS01))
            return cert_fail(e, -EINVAL,
                             "certificate.dns_names: the wildcard '%s' can only be validated through dns-01, which "
                             "certificate.acme.challenges does not list",
                             *names);
        if (cert_name_is_ip(*names) && !has_type(types, n, ACME_CHALLENGE_HTTP01) && !has_type(types, n, ACME_CHALLENGE_TLSALPN01))
            return cert_fail(e, -EINVAL,
                             "certificate.dns_names: the IP address '%s' cannot be validated through dns-01: add http-01 or "
                             "tls-alpn-01 to certificate.acme.challenges",
                             *names);
    }
    return 0;
}

/* The challenge of @type in @authz, or NULL. */
static const json_t *offered(const json_t *authz, acme_challenge_type type)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(authz, "challenges"), i, c)
    {
        if (streq(json_string_value(json_object_get(c, "type")) ?: "", acme_challenge_type_to_string(type)))
            return c;
    }
    return NULL;
}

int acme_challenge_pick(const json_t *authz, const acme_challenge_type *types, size_t n, size_t from, const json_t **ret_challenge)
{
    for (size_t i = from; i < n; i++) {
        const json_t *c = offered(authz, types[i]);
        if (c) {
            *ret_challenge = c;
            return (int) i;
        }
    }
    return -ENOENT;
}

int acme_profile_check(const json_t *dir, const char *url, const char *profile, cert_error *e)
{
    if (!profile || !*profile)
        return 0;
    const json_t *profiles = json_object_get(json_object_get(dir, "meta"), "profiles");
    if (json_is_object(profiles) && json_object_get(profiles, profile))
        return 0;
    char offered[256] = "";
    keel_strbuf sb = KEEL_STRBUF_INIT(offered);
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *) profiles, name, value) keel_strbuf_printf(&sb, "%s%s", sb.len ? ", " : "", name);
    return cert_fail(e, -EOPNOTSUPP, "certificate.acme.profile: the CA at %s offers no profile '%s' (%s%s)", url, profile,
                     sb.len ? "it offers: " : "its directory lists no profiles", offered);
}
