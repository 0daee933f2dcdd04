/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include <criterion/criterion.h>

#include "http-internal.h"

TestSuite(server, .timeout = 30);

static int handler(keel_http_request *req, void *userdata)
{
    (void) userdata;
    return keel_http_respond_static(req, 200, "text/plain", "ok");
}

/* A NULL that reads as "out of memory" for a forgotten option was a newcomer's hour (issue 26). */
Test(server, options_without_a_required_field_are_refused_as_invalid_not_as_out_of_memory)
{
    keel_app *app = keel_app_new("servertest");
    cr_assert_not_null(app);
    const keel_http_options full = { .service = "probe", .label = "probe server", .handler = handler };
    keel_http_options missing[] = { full, full, full };
    missing[0].service = NULL;
    missing[1].label = NULL;
    missing[2].handler = NULL;
    for (size_t i = 0; i < 3; i++) {
        cr_assert_null(keel_http_server_new(app, &missing[i]), "option %zu", i);
        keel_http_server *s = NULL;
        cr_assert_eq(keel_http_server_start_new(app, &missing[i], &s), -EINVAL, "option %zu", i);
        cr_assert_null(s);
    }
    keel_http_server *s = keel_http_server_new(app, &full);
    cr_assert_not_null(s);
    cr_assert_null(keel_http_server_free(s));
    cr_assert_null(keel_app_free(app));
}
