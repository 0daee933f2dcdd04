/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "app-internal.h"
#include "apptest.h"

static apptest t;
static const char *fail_start; /* the service whose start fails */

static void setup(void)
{
    apptest_init(&t);
    fail_start = NULL;
}

static void teardown(void)
{
    apptest_done(&t);
}

TestSuite(service, .init = setup, .fini = teardown, .timeout = 30);

/* Each service's private state: core allocates it, its configuration lives in it. */
typedef struct svc_state {
    int64_t key; /* the key <name>.key, registered with the service */
    bool set_up;
} svc_state;

static int record(keel_service *s, const char *what)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s.%s ", keel_service_name(s), what);
    strcat(t.calls, buf);
    return 0;
}

static int svc_setup(keel_service *s, void *state)
{
    svc_state *st = state;
    cr_assert_eq(keel_service_state(s), state);
    st->set_up = true;
    return 0;
}

static int svc_configure(keel_service *s, void *state)
{
    return record(s, "configure");
}

static int svc_start(keel_service *s, void *state)
{
    svc_state *st = state;
    cr_assert_eq(keel_service_state(s), state);
    cr_assert_eq(keel_service_app(s), t.app);
    cr_assert(st->set_up, "setup ran at registration");
    record(s, "start");
    bool fail = fail_start && streq(fail_start, keel_service_name(s));
    return fail ? keel_app_fail(keel_service_app(s), -EADDRINUSE, "address already in use") : 0;
}

static int svc_stop(keel_service *s, void *state)
{
    return record(s, "stop");
}

static int svc_finalize(keel_service *s, void *state)
{
    return record(s, "finalize");
}

#define KEYS(n)                                                                                                                    \
    static const keel_config_key n##_keys[] = {                                                                                    \
        { .key = #n ".key", .type = KEEL_CONFIG_INT, .offset = offsetof(svc_state, key), .def = "7" },                             \
    }
KEYS(certificate);
KEYS(token);
KEYS(metrics);

#define SVC(n, lbl, ...)                                                                                                           \
    {                                                                                                                              \
        .name = #n, .label = lbl, .state_size = sizeof(svc_state), .config = n##_keys, .n_config = 1, .setup = svc_setup,          \
        .start = svc_start, .stop = svc_stop, __VA_ARGS__                                                                          \
    }

static const keel_service_vtable cert_vt = SVC(certificate, "certificate provider", .configure = svc_configure);
static const keel_service_vtable token_vt =
    SVC(token, "token provider", .configure = svc_configure, .after = (const char *const[]){ "certificate", NULL });
static const keel_service_vtable for_token = SVC(certificate, NULL, .commands = (const char *const[]){ "token", NULL });
static const keel_service_vtable typo = SVC(token, NULL, .after = (const char *const[]){ "certifcate", NULL });
static const keel_service_vtable cycle_start = SVC(certificate, NULL, .after = (const char *const[]){ "metrics", NULL });
static const keel_service_vtable self = SVC(token, NULL, .after = (const char *const[]){ "token", NULL });
static const keel_service_vtable cmd = SVC(token, NULL, .commands = (const char *const[]){ "tokn", NULL });
static const keel_service_vtable metrics_vt =
    SVC(metrics, "metrics exporter", .after = (const char *const[]){ "token", NULL }, .finalize = svc_finalize);

Test(service, services_start_in_order_and_stop_in_reverse)
{
    cr_assert_eq(keel_app_add_service(t.app, &cert_vt, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &token_vt, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &metrics_vt, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "certificate.configure token.configure certificate.start token.start metrics.start done "
                              "metrics.stop token.stop certificate.stop metrics.finalize ");
}

/* `after` decides, not the registration order: registered backwards, they still start in order. */
Test(service, dependencies_order_the_services_whatever_the_registration_order)
{
    keel_service *m = NULL;
    cr_assert_eq(keel_app_add_service(t.app, &metrics_vt, &m), 0);
    cr_assert_eq(keel_app_add_service(t.app, &token_vt, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &cert_vt, NULL), 0);
    cr_assert_eq(keel_app_find_service(t.app, "metrics"), m);
    cr_assert_null(keel_app_find_service(t.app, "nope"));
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);

    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "certificate.configure token.configure certificate.start token.start metrics.start done "
                              "metrics.stop token.stop certificate.stop metrics.finalize ");
}

Test(service, a_failing_start_logs_like_the_seed_and_skips_the_rest)
{
    keel_app_add_service(t.app, &cert_vt, NULL);
    keel_app_add_service(t.app, &token_vt, NULL);
    keel_app_add_service(t.app, &metrics_vt, NULL);

    fail_start = "token";
    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_str_eq(t.calls, "certificate.configure token.configure certificate.start token.start "
                              "metrics.stop token.stop certificate.stop metrics.finalize ");
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Error starting token provider: address already in use"), "%s", logs);
    cr_assert(strstr(logs, "Skipped metrics exporter start"), "%s", logs);
}

/* A service runs for the commands it names (serve when it names none); its keys exist for all. */
Test(service, a_service_joins_only_its_commands)
{
    cr_assert_eq(keel_app_add_command(t.app, "token", "print a token", 0), 0);
    cr_assert_eq(keel_app_add_service(t.app, &for_token, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &token_vt, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_AFTER, "done", ACT_DONE);

    cr_assert_eq(apptest_run(&t, "token", NULL), 0);
    cr_assert_str_eq(t.calls, "certificate.start done certificate.stop ");
    svc_state *st = keel_service_state(keel_app_find_service(t.app, "token"));
    cr_assert_eq(st->key, 7, "the keys of a service that does not run have their defaults");
}

/* A command may pull in a service whose vtable does not name it: the dependent knows its dependency. */
Test(service, a_command_uses_a_service_that_does_not_know_it)
{
    cr_assert_eq(keel_app_add_command(t.app, "token", "print a token", 0), 0);
    cr_assert_eq(keel_app_add_service(t.app, &cert_vt, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &token_vt, NULL), 0);
    cr_assert_eq(keel_app_command_uses(t.app, "token", "certificate"), 0);
    cr_assert_eq(keel_app_command_uses(t.app, "token", "certificate"), 0, "idempotent");
    cr_assert_eq(keel_app_command_uses(t.app, "tokn", "certificate"), -ENOENT);
    apptest_observe(&t, KEEL_EVENT_START, KEEL_PHASE_AFTER, "done", ACT_DONE);

    cr_assert_eq(apptest_run(&t, "token", NULL), 0);
    cr_assert_str_eq(t.calls, "certificate.configure certificate.start done certificate.stop ");
    cr_assert_eq(keel_app_command_uses(t.app, "token", "metrics"), -ESTALE);
}

Test(service, a_command_that_uses_an_unknown_service_fails_the_run)
{
    cr_assert_eq(keel_app_add_command(t.app, "token", "print a token", 0), 0);
    cr_assert_eq(keel_app_command_uses(t.app, "token", "certifcate"), 0, "checked once every plugin registered");
    cr_assert_eq(apptest_run(&t, "token", NULL), KEEL_EXIT_SOFTWARE);
    cr_assert(strstr(apptest_logs(&t), "The command token uses the service 'certifcate', which is not registered"), "%s",
              apptest_logs(&t));
}

Test(service, a_missing_dependency_fails_the_run_naming_it)
{
    cr_assert_eq(keel_app_add_service(t.app, &cert_vt, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &typo, NULL), 0, "only known once every plugin registered");
    apptest_observe(&t, KEEL_EVENT_INIT, KEEL_PHASE_DURING, "init", ACT_OK);

    cr_assert_eq(apptest_run(&t, NULL), KEEL_EXIT_SOFTWARE);
    cr_assert_str_eq(t.calls, "", "nothing ran");
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "Service token starts after 'certifcate', which is not a registered service"), "%s", logs);
}

Test(service, a_cycle_fails_the_run_naming_its_services)
{
    cr_assert_eq(keel_app_add_service(t.app, &cycle_start, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &token_vt, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &metrics_vt, NULL), 0);

    cr_assert_eq(apptest_run(&t, NULL), KEEL_EXIT_SOFTWARE);
    const char *logs = apptest_logs(&t);
    cr_assert(strstr(logs, "The services certificate, token, metrics start after one another in a cycle"), "%s", logs);
}

Test(service, a_service_after_itself_or_for_an_undeclared_command_fails_the_run)
{
    cr_assert_eq(keel_app_add_service(t.app, &self, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), KEEL_EXIT_SOFTWARE);
    cr_assert(strstr(apptest_logs(&t), "Service token starts after itself"), "%s", apptest_logs(&t));

    apptest_done(&t);
    apptest_init(&t);
    cr_assert_eq(keel_app_add_service(t.app, &cmd, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), KEEL_EXIT_SOFTWARE);
    cr_assert(strstr(apptest_logs(&t), "Service token runs for the command 'tokn', which is not declared"), "%s", apptest_logs(&t));
}

/* plugins.disabled names a service as well as a plugin: its hooks are gone, the others run. */
static int disable_token(keel_app *app, void *userdata)
{
    cr_assert_eq(keel__app_disable_plugin(app, "token"), 3, "its configure, start and stop");
    return 0;
}

Test(service, a_service_is_disabled_by_its_name)
{
    keel_app_add_service(t.app, &cert_vt, NULL);
    keel_app_add_service(t.app, &token_vt, NULL);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_BEFORE, "disable", disable_token, NULL, NULL), 0);
    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_str_eq(t.calls, "certificate.configure certificate.start done certificate.stop ");
}

static int freed;
static void svc_free(keel_service *s, void *state)
{
    cr_assert_eq(((svc_state *) state)->set_up, true);
    freed++;
}

Test(service, the_free_hook_runs_with_the_app_whatever_ran)
{
    static const keel_service_vtable with_free = SVC(token, NULL, .free = svc_free);
    freed = 0;
    cr_assert_eq(keel_app_add_service(t.app, &with_free, NULL), 0);
    apptest_done(&t); /* never run */
    cr_assert_eq(freed, 1);
    apptest_init(&t);
}

Test(service, bad_vtables_and_late_registrations_are_refused)
{
    static const keel_service_vtable nameless = { .label = "x" };
    static const keel_service_vtable bad_name = { .name = "Token" };
    static const keel_service_vtable keys_without_state = { .name = "x", .config = token_keys, .n_config = 1 };
    cr_assert_eq(keel_app_add_service(t.app, &nameless, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_service(t.app, &bad_name, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_service(t.app, &keys_without_state, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_service(t.app, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_service(NULL, &cert_vt, NULL), -EINVAL);
    cr_assert_eq(keel_app_add_service(t.app, &cert_vt, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &cert_vt, NULL), -EEXIST);
    cr_assert_null(keel_service_app(NULL));
    cr_assert_null(keel_service_state(NULL));

    apptest_observe(&t, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "done", ACT_DONE);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(keel_app_add_service(t.app, &token_vt, NULL), -ESTALE, "the order is fixed once the command is known");
}
