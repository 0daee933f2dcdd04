/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <string.h>

#include <systemd/sd-event.h>

#include <keel/fetch.h>

#include "apptest.h"
#include "curl-internal.h"
#include "helpers.h"
#include "testing.h"

static apptest t;

static void setup(void)
{
    apptest_init(&t);
}

static void teardown(void)
{
    apptest_done(&t);
}

TestSuite(curl, .init = setup, .fini = teardown, .timeout = 60);

/* A machine without libcurl: the test's own dlopen() is found before libc's, so curl.c's calls
 * come here and fail as the loader would. Each test runs in a process of its own. */
static bool libcurl_absent;

void *dlopen(const char *file, int mode)
{
    if (file && libcurl_absent && strncmp(file, "libcurl", 7) == 0)
        file = "libkeel-test-absent-libcurl.so.4";
    return test_real_dlopen(file, mode);
}

typedef struct record {
    int preload, preload_again, load, threads_before;
    bool handle_works, mapped_in_start, mapped_in_ready, mapped_once_idle;
    int turns; /* loop iterations that dispatched something while ready */
} record;
static record rec;

static int on_configure(keel_app *app, void *userdata)
{
    rec.threads_before = (int) test_thread_count();
    rec.preload = keel__curl_preload(app);
    rec.preload_again = keel__curl_preload(app);
    return 0;
}

static int on_start(keel_app *app, void *userdata)
{
    const keel_curl *c = NULL;
    rec.load = keel__curl_load(&c);
    if (rec.load >= 0) {
        CURL *h = c->easy_init();
        rec.handle_works = h != NULL;
        if (h)
            c->easy_cleanup(h);
    }
    rec.mapped_in_start = test_curl_mapped();
    keel__curl_schedule_unload(app);
    return 0;
}

static int on_ready(keel_app *app, void *userdata)
{
    rec.mapped_in_ready = test_curl_mapped();
    return 0;
}

/* The loop's turns while the app is ready, until it has nothing left to dispatch, as the running
 * app takes them: the unload waits for the first idle moment, and finalize would unload libcurl
 * anyway, so only here can the test tell whether the idle unload happened. */
static int on_ready_after(keel_app *app, void *userdata)
{
    sd_event *loop = keel_app_get_event_loop(app);
    while (rec.turns < 16 && sd_event_run(loop, 0) > 0)
        rec.turns++;
    rec.mapped_once_idle = test_curl_mapped();
    (void) keel_app_cancel(app, KEEL_CAUSE_COMMAND_DONE, "done");
    return 0;
}

static int fail(keel_app *app, void *userdata)
{
    return keel_app_fail(app, -EIO, "failed on purpose");
}

Test(curl, preload_then_load_then_unloaded_once_ready)
{
    rec = (record){ 0 };
    cr_assert_not(test_curl_mapped());
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_DURING, "t.configure", on_configure, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_DURING, "t.ready", on_ready, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.idle", on_ready_after, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(rec.preload, 0);
    cr_assert_eq(rec.preload_again, 0);
    cr_assert_eq(rec.load, 0);
    cr_assert(rec.handle_works);
    cr_assert(rec.mapped_in_start);
    cr_assert(rec.mapped_in_ready, "READY=1 goes out first: the unload waits for the loop to idle");
    cr_assert_geq(rec.turns, 1, "the unload is a source of the loop");
    cr_assert_not(rec.mapped_once_idle, "unloaded at the loop's first idle moment, not only at finalize");
    cr_assert_not(test_curl_mapped());
    cr_assert_eq((int) test_thread_count(), rec.threads_before, "the loader thread must be joined");
}

Test(curl, a_start_that_fails_first_still_joins_and_unloads)
{
    rec = (record){ 0 };
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_DURING, "t.configure", on_configure, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_BEFORE, "t.fail", fail, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 1);
    cr_assert_eq(rec.preload, 0);
    cr_assert_eq(rec.load, 0, "never called: stays 0");
    cr_assert_not(test_curl_mapped());
    cr_assert_eq((int) test_thread_count(), rec.threads_before);
}

Test(curl, a_configure_that_fails_after_the_preload_still_joins_and_unloads)
{
    rec = (record){ 0 };
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_DURING, "t.configure", on_configure, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_AFTER, "t.fail", fail, NULL, NULL), 0);
    cr_assert_neq(apptest_run(&t, NULL), 0);
    cr_assert_eq(rec.preload, 0);
    cr_assert_not(test_curl_mapped());
    cr_assert_eq((int) test_thread_count(), rec.threads_before);
}

Test(curl, load_without_preload)
{
    rec = (record){ 0 };
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_DURING, "t.ready", on_ready, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.idle", on_ready_after, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0);
    cr_assert_eq(rec.load, 0);
    cr_assert(rec.handle_works);
    cr_assert_not(rec.mapped_once_idle);
    cr_assert_not(test_curl_mapped());
}

Test(curl, preload_needs_an_app)
{
    cr_assert_eq(keel__curl_preload(NULL), -EINVAL);
}

Test(curl, a_machine_without_libcurl_runs_without_the_ready_check_and_fetch_says_why)
{
    rec = (record){ 0 };
    libcurl_absent = true;
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_CONFIGURE, KEEL_PHASE_DURING, "t.configure", on_configure, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_START, KEEL_PHASE_DURING, "t.start", on_start, NULL, NULL), 0);
    cr_assert_eq(keel_app_observe(t.app, KEEL_EVENT_READY, KEEL_PHASE_AFTER, "t.idle", on_ready_after, NULL, NULL), 0);
    cr_assert_eq(apptest_run(&t, NULL), 0, "libcurl is an option of the ready check, not of the app");
    cr_assert_eq(rec.preload, 0, "the preload's thread starts; its load fails");
    cr_assert_eq(rec.load, -ENOENT);
    cr_assert_eq((int) test_thread_count(), rec.threads_before, "the loader thread must be joined");

    keel_fetch *f = NULL;
    char error[KEEL_FETCH_ERROR_MAX] = "";
    cr_assert_eq(keel_fetch_new(&(keel_fetch_options){ 0 }, &f, error), -ENOENT);
    cr_assert_null(f);
    cr_assert(strncmp(error, "Cannot load libcurl (libcurl-gnutls.so.4 or libcurl.so.4): ", 59) == 0, "%s", error);
    cr_assert(strstr(error, "libkeel-test-absent-libcurl.so.4: cannot open shared object file"), "%s", error);
    cr_assert_not(test_curl_mapped());
}
