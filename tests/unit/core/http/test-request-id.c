/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "http-internal.h"

TestSuite(request_id, .timeout = 30);

Test(request_id, ids_differ_and_share_the_process_prefix)
{
    char a[KEEL_HTTP_REQUEST_ID_MAX], b[KEEL_HTTP_REQUEST_ID_MAX];
    keel__http_new_request_id(a);
    keel__http_new_request_id(b);
    cr_assert_str_neq(a, b);
    cr_assert_eq(strncmp(a, b, 17), 0); /* one process prefix */
    cr_assert_eq(strspn(a, "0123456789abcdef"), 16);
    cr_assert_eq(a[16], '-');
    unsigned long na = strtoul(a + 17, NULL, 10), nb = strtoul(b + 17, NULL, 10);
    cr_assert_eq(nb, na + 1, "%s then %s", a, b);
    cr_assert_eq(strspn(a + 17, "0123456789"), strlen(a + 17));
}
