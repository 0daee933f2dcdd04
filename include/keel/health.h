/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/app.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Where the app is in its life, as readiness probes see it. */
typedef enum keel_readiness {
    KEEL_READINESS_STARTING, /* before READY=1 */
    KEEL_READINESS_READY,    /* between READY=1 and STOPPING=1, reloads included */
    KEEL_READINESS_STOPPING, /* from STOPPING=1 on */
    _KEEL_READINESS_MAX,
    _KEEL_READINESS_INVALID = -EINVAL,
} keel_readiness;

/** The app's readiness. Thread-safe: HTTP polling threads read it. */
KEEL_API keel_readiness keel_app_readiness(const keel_app *app);
/** "starting", "ready", "shutting_down"; NULL when out of range. */
KEEL_API const char *keel_readiness_to_string(keel_readiness r);

/**
 * A health check: returns 0 when healthy, or a negative errno and a one-line reason in @reason
 * (@size bytes). A healthy check may leave a one-line note there instead, which the verbose lists
 * show after "ok" ("[+]certificate ok: NOTE"); @reason starts empty. Called from HTTP polling
 * threads, concurrently with anything else: it must be thread-safe and quick (read state, never
 * do I/O).
 */
typedef int (*keel_health_check_t)(void *userdata, char *reason, size_t size);

/**
 * Registers check @name ([a-z0-9_-]+), reported by /readyz and /healthz of the health check
 * component (keel_app_add_healthcheck(), keel/components.h). Register before `ready` (from a
 * plugin, command, init, configure or start observer).
 * Returns -EEXIST for a name in use, -EINVAL, -ENOMEM.
 */
KEEL_API int keel_app_add_health_check(keel_app *app, const char *name, keel_health_check_t check, void *userdata);

/** Called for each check by keel_app_run_health_checks(). */
typedef void (*keel_health_report_t)(const char *name, int result, const char *reason, void *userdata);

/**
 * Runs every check in registration order, calling @report (may be NULL) with each result and its
 * reason (strerror() of the result when a failing check gave none). Returns the number of failing
 * checks. Thread-safe: one run at a time, the checks and @report with the app's health lock held,
 * so neither may register or run checks.
 */
KEEL_API unsigned keel_app_run_health_checks(keel_app *app, keel_health_report_t report, void *userdata);

#ifdef __cplusplus
}
#endif
