/* SPDX-License-Identifier: MIT */
/* The standard components as a program adds them (keel/components.h): argument checks, one of
 * each, the order `after` gives, and the TLS hooks called from the component's own observers. No
 * server binds here: the TLS open hook fails the start before it would. */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <keel/keel.h>

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

TestSuite(components, .init = setup, .fini = teardown, .timeout = 30);

static void record(const char *what)
{
    strcat(t.calls, what);
    strcat(t.calls, " ");
}

static int work_start(keel_service *s, void *state)
{
    record("work.start");
    return 0;
}

static int work_stop(keel_service *s, void *state)
{
    record("work.stop");
    return 0;
}

static const keel_service_vtable work_vt = { .name = "work", .start = work_start, .stop = work_stop };

static int tls_configure(keel_app *app, const char *component, void *userdata)
{
    char buf[64];
    (void) snprintf(buf, sizeof buf, "%s.tls-configure(%s)", component, (const char *) userdata);
    record(buf);
    return 0;
}

static int tls_open(keel_app *app, const char *component, void *userdata, void **ret_context)
{
    char buf[64];
    (void) snprintf(buf, sizeof buf, "%s.tls-open", component);
    record(buf);
    return keel_app_fail(app, -EIO, "no certificate on purpose");
}

static void tls_close(void *userdata, void *context)
{
    record("tls-close"); /* never: no context was opened */
}

static const keel_http_tls_ops no_ops; /* never called: no session is made */

Test(components, arguments_are_checked)
{
    keel_component_tls without_open = { .ops = &no_ops };
    keel_component_tls without_ops = { .open = tls_open };
    cr_assert_eq(keel_app_add_healthcheck(NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_metrics_exporter(NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_healthcheck(t.app, &(keel_component_options){ .tls = &without_open }), -EINVAL);
    cr_assert_eq(keel_app_add_metrics_exporter(t.app, &(keel_component_options){ .tls = &without_ops }), -EINVAL);
    cr_assert_null(keel_app_find_service(t.app, "healthcheck"));
    cr_assert_null(keel_app_find_service(t.app, "metrics"));
}

Test(components, each_is_one_service_with_its_configuration_section)
{
    cr_assert_eq(keel_app_add_healthcheck(t.app, NULL), 0);
    cr_assert_eq(keel_app_add_metrics_exporter(t.app, NULL), 0);
    cr_assert_eq(keel_app_add_healthcheck(t.app, NULL), -EEXIST);
    cr_assert_eq(keel_app_add_metrics_exporter(t.app, NULL), -EEXIST);
    cr_assert_not_null(keel_app_find_service(t.app, "healthcheck"));
    cr_assert_not_null(keel_app_find_service(t.app, "metrics"));
    cr_assert_str_eq(keel_app_config_origin(t.app, "healthcheck.address"), "default");
    cr_assert_str_eq(keel_app_config_origin(t.app, "healthcheck.verbose"), "default");
    cr_assert_str_eq(keel_app_config_origin(t.app, "metrics.address"), "default");
}

Test(components, a_service_of_the_same_name_is_refused)
{
    static const keel_service_vtable named_metrics = { .name = "metrics" };
    cr_assert_eq(keel_app_add_service(t.app, &named_metrics, NULL), 0);
    cr_assert_eq(keel_app_add_metrics_exporter(t.app, NULL), -EEXIST);
}

/* Registered first, the health check still starts after the service it names, and its TLS hooks
 * run inside its own observers; a failed open leaves nothing to close. */
Test(components, after_orders_them_and_the_tls_hooks_run_in_their_observers)
{
    keel_component_tls tls = { .ops = &no_ops, .userdata = "ud", .configure = tls_configure, .open = tls_open, .close = tls_close };
    cr_assert_eq(
        keel_app_add_healthcheck(t.app, &(keel_component_options){ .after = (const char *const[]){ "work", NULL }, .tls = &tls }),
        0);
    cr_assert_eq(keel_app_add_service(t.app, &work_vt, NULL), 0);

    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_str_eq(t.calls, "healthcheck.tls-configure(ud) work.start healthcheck.tls-open work.stop ");
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Error starting health check: no certificate on purpose"), "%s", logs);
}

Test(components, too_late_once_the_command_line_was_parsed)
{
    apptest_observe(&t, KEEL_EVENT_INIT, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(keel_app_add_healthcheck(t.app, NULL), -ESTALE);
}
