/* SPDX-License-Identifier: MIT */
/* services/token/access.c: the body of POST /accesstoken read and checked, the cache key and the
 * scope of what it asks. Every refusal's wording is checked end to end by
 * tests/integration/test_accesstoken.py; here, what a request that passes becomes. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include <keel/keel.h>

#include "access.h"

TestSuite(access, .timeout = 30);

static int parse(const char *type, const char *body, access_request *ret, char *reason)
{
    return access_request_parse(type, body, strlen(body), ret, reason, 256);
}

Test(access, roles_are_a_set_sorted_and_each_once)
{
    access_request a;
    char reason[256] = "";
    cr_assert_eq(parse("application/json; charset=utf-8",
                       "{\"domain\":\"sports\",\"role\":\"writer,reader,writer\",\"proxy_for_principal\":\"\",\"expiry\":1800,"
                       "\"other\":[1]}",
                       &a, reason),
                 0, "%s", reason);
    cr_assert_str_eq(a.domain, "sports");
    cr_assert_str_eq(a.roles, "reader writer");
    cr_assert_eq(a.n_roles, 2);
    cr_assert_eq(a.expiry_s, 1800);
    char *scope = NULL;
    cr_assert_eq(access_scope(&a, &scope), 0);
    cr_assert_str_eq(scope, "sports:role.reader sports:role.writer");
    free(scope);
    access_request_done(&a);
}

Test(access, refusals_name_the_member_and_leave_ret_alone)
{
    access_request a = { .expiry_s = 7 };
    char reason[256];
    cr_assert_eq(parse(NULL, "{\"domain\":\"d\",\"role\":\"a,,b\"}", &a, reason), -EINVAL);
    cr_assert_str_eq(reason, "role: empty element at position 2");
    cr_assert_eq(a.expiry_s, 7, "untouched on failure");
    cr_assert_eq(parse("text/plain", "{}", &a, reason), -EINVAL);
    cr_assert_str_eq(reason, "Content-Type: must be application/json, not 'text/plain'");
    cr_assert_eq(parse(NULL, "{\"domain\":\"d\",\"role\":\"r\",\"expiry\":-1}", &a, reason), -EINVAL);
    cr_assert(strncmp(reason, "expiry: must not be negative", 28) == 0, "%s", reason);
    cr_assert_eq(parse(NULL, "{\"domain\":\"d\",\"role\":\"r\",\"proxy_for_principal\":\"user.x\"}", &a, reason), -EINVAL);
    cr_assert(strncmp(reason, "proxy_for_principal: not supported", 34) == 0, "%s", reason);
    cr_assert_eq(access_request_parse(NULL, "", 0, &a, reason, sizeof reason), -EINVAL);
    cr_assert(strncmp(reason, "body: required", 14) == 0, "%s", reason);
}

Test(access, the_lifetime_keys_the_cache_within_token_expiry)
{
    keel_usec_t hour = 3600 * KEEL_USEC_PER_SEC, lifetime = 1;
    access_request a = { .domain = (char *) "d", .roles = (char *) "r", .n_roles = 1 };
    cr_assert_eq(access_lifetime(&a, hour), 0, "none asked: token.expiry");
    a.expiry_s = 3600;
    cr_assert_eq(access_lifetime(&a, hour), 0, "token.expiry itself");
    a.expiry_s = 99999;
    cr_assert_eq(access_lifetime(&a, hour), 0, "capped at token.expiry");
    a.expiry_s = 1800;
    cr_assert_eq(access_lifetime(&a, hour), 1800 * KEEL_USEC_PER_SEC);
    a.expiry_s = 1;
    cr_assert_eq(access_lifetime(&a, hour), ACCESS_LIFETIME_MIN, "raised to the shortest minted");
    cr_assert_eq(access_lifetime(&a, ACCESS_LIFETIME_MIN), 0, "raised to token.expiry itself: token.expiry's key");

    char *key = NULL;
    cr_assert_eq(access_cache_role(&a, 0, &key), 0);
    cr_assert_str_eq(key, "r", "shares /token's key");
    cr_assert_eq(access_cache_role_split(key, &lifetime), 1);
    cr_assert_eq(lifetime, 0);
    free(key);
    a.roles = (char *) "r s";
    cr_assert_eq(access_cache_role(&a, 600 * KEEL_USEC_PER_SEC, &key), 0);
    cr_assert_str_eq(key, "r s#600");
    cr_assert_eq(access_cache_role_split(key, &lifetime), 3);
    cr_assert_eq(lifetime, 600 * KEEL_USEC_PER_SEC);
    free(key);
}
