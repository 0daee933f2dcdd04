/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>

#include <keel/health.h>

#include "app-state-internal.h"
#include "macro-internal.h"

static const char *const keel_readiness_table[_KEEL_READINESS_MAX] = {
    [KEEL_READINESS_STARTING] = "starting",
    [KEEL_READINESS_READY] = "ready",
    [KEEL_READINESS_STOPPING] = "shutting_down",
};

DEFINE_STRING_TABLE_LOOKUP_TO_STRING(keel_readiness, keel_readiness, )

keel_readiness keel_app_readiness(const keel_app *app)
{
    return app ? (keel_readiness) atomic_load(&app->health.readiness) : _KEEL_READINESS_INVALID;
}

void keel__app_set_readiness(keel_app *app, keel_readiness r)
{
    atomic_store(&app->health.readiness, (int) r);
}

void keel__app_loop_busy(keel_app *app, bool busy)
{
    atomic_store_explicit(&app->health.loop_busy_since, busy ? keel_now() : 0, memory_order_relaxed);
}

keel_usec_t keel__app_loop_busy_for(const keel_app *app, keel_usec_t now)
{
    keel_usec_t since = atomic_load_explicit(&app->health.loop_busy_since, memory_order_relaxed);
    return since && now > since ? now - since : 0;
}

static bool valid_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

int keel_app_add_health_check(keel_app *app, const char *name, keel_health_check_t check, void *userdata)
{
    keel_assert_return(app && check && valid_name(name), -EINVAL);

    _cleanup_free_ char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    int r = 0;
    (void) pthread_mutex_lock(&app->health.lock);
    for (size_t i = 0; i < app->health.n_checks && r == 0; i++)
        if (streq(app->health.checks[i].name, name))
            r = -EEXIST;
    if (r == 0)
        r = GROW(app->health.checks, app->health.allocated_checks, app->health.n_checks + 1);
    if (r == 0)
        app->health.checks[app->health.n_checks++] =
            (keel_health_entry){ .name = TAKE_PTR(copy), .check = check, .userdata = userdata };
    (void) pthread_mutex_unlock(&app->health.lock);
    return r;
}

unsigned keel_app_run_health_checks(keel_app *app, keel_health_report_t report, void *userdata)
{
    unsigned failed = 0;
    if (!app)
        return 0;
    (void) pthread_mutex_lock(&app->health.lock);
    for (size_t i = 0; i < app->health.n_checks; i++) {
        char reason[256];
        reason[0] = '\0'; /* not the whole buffer: this runs on every probe */
        keel_health_entry *e = &app->health.checks[i];
        int r = e->check(e->userdata, reason, sizeof reason);
        failed += r < 0;
        if (report)
            report(e->name, r, r < 0 && !reason[0] ? strerror(-r) : reason, userdata);
    }
    (void) pthread_mutex_unlock(&app->health.lock);
    return failed;
}

void keel__app_health_done(keel_app *app)
{
    for (size_t i = 0; i < app->health.n_checks; i++)
        free(app->health.checks[i].name);
    app->health.checks = (free(app->health.checks), NULL);
    app->health.n_checks = 0;
    (void) pthread_mutex_destroy(&app->health.lock);
}
