/* SPDX-License-Identifier: MIT */
/* Which challenge answers an authorization (services/certificate/acme-choice.c): the list of
 * certificate.acme.challenges read and refused where it must be, the names no listed type can
 * validate, and the pick of the first configured type an authorization offers, then the next. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "acme.h"

TestSuite(acme_choice, .timeout = 30);

static int parse(const char *const *list, acme_challenge_type *types, size_t *n, cert_error *e)
{
    return acme_challenge_types_parse((char *const *) list, types, n, e);
}

Test(acme_choice, the_list_is_read_in_order)
{
    acme_challenge_type types[_ACME_CHALLENGE_TYPE_MAX];
    size_t n = 0;
    cert_error e = {};
    cr_assert_eq(parse((const char *const[]){ "dns-01", "http-01", NULL }, types, &n, &e), 0, "%s", e.text);
    cr_assert_eq(n, 2);
    cr_assert_eq(types[0], ACME_CHALLENGE_DNS01);
    cr_assert_eq(types[1], ACME_CHALLENGE_HTTP01);
    cr_assert_str_eq(acme_challenge_type_to_string(ACME_CHALLENGE_TLSALPN01), "tls-alpn-01");
    cr_assert_null(acme_challenge_type_to_string(_ACME_CHALLENGE_TYPE_MAX));
    cr_assert_eq(acme_challenge_type_from_string("dns-01"), ACME_CHALLENGE_DNS01);
    cr_assert_eq(acme_challenge_type_from_string("DNS-01"), -EINVAL);
}

Test(acme_choice, a_list_that_cannot_be_used_is_refused_naming_why)
{
    acme_challenge_type types[_ACME_CHALLENGE_TYPE_MAX] = { ACME_CHALLENGE_DNS01 };
    size_t n = 7;
    cert_error e = {};
    cr_assert_eq(parse((const char *const[]){ NULL }, types, &n, &e), -EINVAL);
    cr_assert(strstr(e.text, "certificate.acme.challenges is empty"), "%s", e.text);
    cr_assert_eq(parse((const char *const[]){ "http-01", "dns-1", NULL }, types, &n, &e), -EINVAL);
    cr_assert_str_eq(e.text, "certificate.acme.challenges: 'dns-1' is no challenge type (http-01, dns-01, tls-alpn-01)");
    cr_assert_eq(parse((const char *const[]){ "dns-01", "dns-01", NULL }, types, &n, &e), -EINVAL);
    cr_assert(strstr(e.text, "'dns-01' is listed twice"), "%s", e.text);
    cr_assert_eq(n, 7, "not written on failure");
    cr_assert_eq(types[0], ACME_CHALLENGE_DNS01);
}

Test(acme_choice, a_wildcard_needs_dns01_and_an_address_http01)
{
    cert_error e = {};
    acme_challenge_type http[] = { ACME_CHALLENGE_HTTP01 }, dns[] = { ACME_CHALLENGE_DNS01 },
                        both[] = { ACME_CHALLENGE_DNS01, ACME_CHALLENGE_HTTP01 };
    char *const names[] = { "example.test", "*.example.test", "127.0.0.1", NULL };
    cr_assert_eq(acme_challenge_names_check(names, http, 1, &e), -EINVAL);
    cr_assert(strstr(e.text, "the wildcard '*.example.test' can only be validated through dns-01"), "%s", e.text);
    cr_assert_eq(acme_challenge_names_check(names, dns, 1, &e), -EINVAL);
    cr_assert(strstr(e.text, "the IP address '127.0.0.1' cannot be validated through dns-01"), "%s", e.text);
    cr_assert_eq(acme_challenge_names_check(names, both, 2, &e), 0);
    cr_assert_eq(acme_challenge_names_check((char *const[]){ "www.example.test", NULL }, dns, 1, &e), 0);
    acme_challenge_type tls[] = { ACME_CHALLENGE_TLSALPN01 };
    cr_assert_eq(acme_challenge_names_check((char *const[]){ "127.0.0.1", "example.test", NULL }, tls, 1, &e), 0,
                 "tls-alpn-01 validates an address too (RFC 8738)");
}

Test(acme_choice, the_first_configured_type_offered_then_the_next)
{
    json_t *authz = json_loads("{\"identifier\":{\"type\":\"dns\",\"value\":\"www.example.test\"},\"challenges\":["
                               "{\"type\":\"tls-alpn-01\",\"token\":\"t0\"},{\"type\":\"http-01\",\"token\":\"t1\"},"
                               "{\"type\":\"dns-01\",\"token\":\"t2\"}]}",
                               0, NULL);
    json_t *wildcard = json_loads("{\"wildcard\":true,\"challenges\":[{\"type\":\"dns-01\",\"token\":\"w\"}]}", 0, NULL);
    cr_assert(authz && wildcard);
    acme_challenge_type types[] = { ACME_CHALLENGE_DNS01, ACME_CHALLENGE_HTTP01 };
    const json_t *c = NULL;
    cr_assert_eq(acme_challenge_pick(authz, types, 2, 0, &c), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c, "token")), "t2");
    cr_assert_eq(acme_challenge_pick(authz, types, 2, 1, &c), 1, "the fallback");
    cr_assert_str_eq(json_string_value(json_object_get(c, "token")), "t1");
    cr_assert_eq(acme_challenge_pick(authz, types, 2, 2, &c), -ENOENT);
    /* A wildcard's authorization offers dns-01 only: http-01 first still picks it. */
    acme_challenge_type http_first[] = { ACME_CHALLENGE_HTTP01, ACME_CHALLENGE_DNS01 };
    cr_assert_eq(acme_challenge_pick(wildcard, http_first, 2, 0, &c), 1);
    cr_assert_eq(acme_challenge_pick(wildcard, http_first, 1, 0, &c), -ENOENT);
    json_decref(authz);
    json_decref(wildcard);
}

/* Let's Encrypt's 6-day certificates are its `shortlived` profile (draft-ietf-acme-profiles). */
Test(acme_choice, a_profile_must_be_one_the_directory_lists)
{
    cert_error e = {};
    json_t *dir = json_loads("{\"meta\":{\"profiles\":{\"classic\":\"90 days\",\"shortlived\":\"6 days\"}}}", 0, NULL);
    json_t *bare = json_loads("{\"meta\":{\"termsOfService\":\"x\"}}", 0, NULL);
    cr_assert_not_null(dir);
    cr_assert_not_null(bare);
    cr_assert_eq(acme_profile_check(dir, "https://ca/dir", "shortlived", &e), 0);
    cr_assert_eq(acme_profile_check(bare, "https://ca/dir", "", &e), 0, "none asked: the CA's default");
    cr_assert_eq(acme_profile_check(dir, "https://ca/dir", "tlsserver", &e), -EOPNOTSUPP);
    cr_assert_str_eq(e.text,
                     "certificate.acme.profile: the CA at https://ca/dir offers no profile 'tlsserver' (it offers: classic, "
                     "shortlived)");
    cr_assert_eq(acme_profile_check(bare, "https://ca/dir", "shortlived", &e), -EOPNOTSUPP);
    cr_assert(strstr(e.text, "its directory lists no profiles"), "%s", e.text);
    json_decref(dir);
    json_decref(bare);
}
