/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "apptest.h"

static apptest t;

static void setup(void)
{
    apptest_init(&t);
}

static void teardown(void)
{
    apptest_done(&t);
}

TestSuite(service, .init = setup, .fini = teardown, .timeout = 30);

typedef struct svc {
    const char *name;
    bool fail_start;
} svc;

static int record(keel_service *s, const char *what)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s.%s ", keel_service_vtable_get(s)->name, what);
    strcat(t.calls, buf);
    return 0;
}

static int svc_configure(keel_service *s, void *userdata)
{
    return record(s, "configure");
}

static int svc_start(keel_service *s, void *userdata)
{
    svc *v = userdata;
    cr_assert_eq(keel_service_userdata(s), userdata);
    cr_assert_eq(keel_service_app(s), t.app);
    record(s, "start");
    return v->fail_start ? keel_app_fail(keel_service_app(s), -EADDRINUSE, "address already in use") : 0;
}

static int svc_stop(keel_service *s, void *userdata)
{
    return record(s, "stop");
}

static const keel_service_vtable cert_vt = {
    .name = "certificate", .label = "certificate provider", .configure = svc_configure, .start = svc_start, .stop = svc_stop
};
static const keel_service_vtable token_vt = {
    .name = "token", .label = "token provider", .configure = svc_configure, .start = svc_start, .stop = svc_stop
};
static const keel_service_vtable metrics_vt = {
    .name = "metrics", .label = "metrics exporter", .start = svc_start, .stop = svc_stop
};

Test(service, services_start_in_order_and_stop_in_reverse)
{
    svc c = { 0 }, k = { 0 }, m = { 0 };
    cr_assert_eq(keel_app_add_service(t.app, &cert_vt, &c, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &token_vt, &k, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &metrics_vt, &m, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "certificate.configure token.configure certificate.start token.start metrics.start done "
                              "metrics.stop token.stop certificate.stop ");
}

Test(service, a_failing_start_logs_like_the_seed_and_skips_the_rest)
{
    svc c = { 0 }, k = { .fail_start = true }, m = { 0 };
    keel_app_add_service(t.app, &cert_vt, &c, NULL);
    keel_app_add_service(t.app, &token_vt, &k, NULL);
    keel_app_add_service(t.app, &metrics_vt, &m, NULL);

    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_str_eq(t.calls, "certificate.configure token.configure certificate.start token.start "
                              "metrics.stop token.stop certificate.stop ");
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Error starting token provider: address already in use"), "%s", logs);
    cr_assert(strstr(logs, "Skipped metrics exporter start"), "%s", logs);
}

Test(service, bad_vtables_are_refused)
{
    static const keel_service_vtable nameless = { .label = "x" };
    cr_assert_eq(keel_app_add_service(t.app, &nameless, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_service(t.app, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_service(NULL, &cert_vt, NULL, NULL), -EINVAL);
    cr_assert_null(keel_service_app(NULL));
}
