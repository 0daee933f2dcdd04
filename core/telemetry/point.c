/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <sys/sdt.h>

#include <keel/point.h>

#include "fault-internal.h"
#include "macro-internal.h"
#include "trace-internal.h"

/* The trace category of a point that is not an observer, from its name (docs/architecture.md, "Points, trace and faults"). */
static const char *instant_category(const char *point)
{
    size_t n = strlen(point);

    if (strstr(point, ".spawn."))
        return "spawn";
    if (n >= 8 && streq(point + n - 8, ".refresh"))
        return "refresh";
    return "point";
}

/* Against a monotonic deadline, so that restarting after a signal handler does not sleep longer.
 * nanosleep(), not clock_nanosleep(): ThreadSanitizer delivers a signal (the forced exit's SIGALRM)
 * at once only inside the blocking calls it knows, and nanosleep() is one of them. */
static void sleep_msec(unsigned msec)
{
    keel_usec_t until = keel_now() + (keel_usec_t) msec * KEEL_USEC_PER_MSEC;
    for (keel_usec_t now = keel_now(); now < until; now = keel_now()) {
        keel_usec_t left = until - now;
        struct timespec ts = { .tv_sec = (time_t) (left / KEEL_USEC_PER_SEC), .tv_nsec = (long) (left % KEEL_USEC_PER_SEC) * 1000 };
        (void) nanosleep(&ts, NULL);
    }
}

static int signal_of(keel_fault_action a)
{
    switch (a) {
    case KEEL_FAULT_SIGINT:
        return SIGINT;
    case KEEL_FAULT_SIGTERM:
        return SIGTERM;
    case KEEL_FAULT_SIGHUP:
        return SIGHUP;
    default:
        return 0;
    }
}

/* Fires every fault configured for @point at @when, in spec order; -EIO if one was `error`. */
static int fire(const char *point, keel_fault_when when, bool sleeps)
{
    size_t n;
    const keel_fault *f = keel__faults_get(&n);
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        if (f[i].when != when || !streq(f[i].point, point))
            continue;
        keel_log_debug("Injecting fault %s@%s:%s", keel__fault_action_to_string(f[i].action), keel__fault_when_to_string(when),
                       point);
        switch (f[i].action) {
        case KEEL_FAULT_ERROR:
            r = -EIO; /* after the rest have fired: every fault of the point takes effect */
            break;
        case KEEL_FAULT_SLEEP:
            if (sleeps)
                sleep_msec(f[i].sleep_msec);
            break;
        default:
            /* At the process, not this thread: threads block these signals and the main thread
             * takes them from its signalfd, which never sees a thread-directed signal. */
            (void) kill(getpid(), signal_of(f[i].action));
        }
    }
    return r;
}

static int before(const char *point, bool instant, bool sleeps)
{
    DTRACE_PROBE1(keel, point__before, point);
    if (instant && keel__trace_enabled())
        keel__trace_instant(instant_category(point), point, NULL);
    if (_likely_(!keel__faults_any()))
        return 0;
    return fire(point, KEEL_FAULT_BEFORE, sleeps);
}

int keel_point_before(const char *point)
{
    keel_assert_return(point, -EINVAL);
    return before(point, true, true);
}

int keel_point_before_nowait(const char *point)
{
    keel_assert_return(point, -EINVAL);
    return before(point, true, false);
}

int keel__point_before_observer(const char *point)
{
    assert(point);
    return before(point, false, true);
}

int keel_point_in(const char *point)
{
    keel_assert_return(point, -EINVAL);

    DTRACE_PROBE1(keel, point__in, point);
    if (_likely_(!keel__faults_any()))
        return 0;
    return fire(point, KEEL_FAULT_IN, true);
}

int keel_point_in_nowait(const char *point)
{
    keel_assert_return(point, -EINVAL);

    DTRACE_PROBE1(keel, point__in, point);
    if (_likely_(!keel__faults_any()))
        return 0;
    return fire(point, KEEL_FAULT_IN, false);
}

static keel_usec_t delay_of(const char *point, keel_fault_when when)
{
    keel_usec_t total = 0;
    size_t n;

    if (_likely_(!keel__faults_any()))
        return 0;
    const keel_fault *f = keel__faults_get(&n);
    for (size_t i = 0; i < n; i++)
        if (f[i].action == KEEL_FAULT_SLEEP && f[i].when == when && streq(f[i].point, point))
            total += f[i].sleep_msec * KEEL_USEC_PER_MSEC;
    return total;
}

keel_usec_t keel_point_in_delay(const char *point)
{
    keel_assert_return(point, 0);
    return delay_of(point, KEEL_FAULT_IN);
}

keel_usec_t keel_point_before_delay(const char *point)
{
    keel_assert_return(point, 0);
    return delay_of(point, KEEL_FAULT_BEFORE);
}
