/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <keel/point.h>

#include "fault-internal.h"
#include "macro-internal.h"
#include "trace-internal.h"

static void teardown(void)
{
    keel__faults_clear();
    keel__trace_close();
}

TestSuite(point, .fini = teardown, .timeout = 20);

static void faults(const char *spec)
{
    char *error = NULL;
    cr_assert_eq(keel__faults_parse(spec, &error), 0, "%s", error ? error : "");
}

static sigset_t block(int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    cr_assert_eq(sigprocmask(SIG_BLOCK, &s, NULL), 0);
    return s;
}

static bool pending(int sig)
{
    sigset_t s;
    cr_assert_eq(sigpending(&s), 0);
    return sigismember(&s, sig) == 1;
}

/* Takes the pending @sig and returns how it was sent (si_code). */
static int take(int sig)
{
    sigset_t s = block(sig);
    siginfo_t si;
    struct timespec zero = { 0 };
    cr_assert_eq(sigtimedwait(&s, &si, &zero), sig);
    return si.si_code;
}

Test(point, no_faults_no_effect)
{
    cr_assert_eq(keel__point_before_observer("token.start"), 0);
    cr_assert_eq(keel_point_before("token.spawn.refresh"), 0);
    cr_assert_eq(keel_point_in("token.start"), 0);
    cr_assert_eq(keel_point_in_delay("token.request"), 0);
}

Test(point, null_point)
{
    faults("error@in:a");
    cr_assert_eq(keel_point_before(NULL), -EINVAL);
    cr_assert_eq(keel_point_in(NULL), -EINVAL);
    cr_assert_eq(keel_point_in_delay(NULL), 0);
}

Test(point, error_only_for_its_point_and_when)
{
    faults("error@in:metrics.start,error@before:token.spawn.refresh");

    cr_assert_eq(keel_point_in("metrics.start"), -EIO);
    cr_assert_eq(keel_point_in("metrics.start"), -EIO, "every time");
    cr_assert_eq(keel__point_before_observer("metrics.start"), 0);
    cr_assert_eq(keel_point_before("token.spawn.refresh"), -EIO);
    cr_assert_eq(keel_point_in("token.spawn.refresh"), 0);
    cr_assert_eq(keel_point_in("metrics.stop"), 0);
    cr_assert_eq(keel_point_in("metrics.start.x"), 0, "names match exactly");
    cr_assert_eq(keel_point_in("metrics"), 0);
    cr_assert_eq(keel_point_in(""), 0);
}

Test(point, sigterm_is_sent_to_the_process)
{
    block(SIGTERM);
    faults("sigterm@before:token.start");

    cr_assert_not(pending(SIGTERM));
    cr_assert_eq(keel_point_in("token.start"), 0);
    cr_assert_not(pending(SIGTERM), "an `in` point does not fire a `before` fault");
    cr_assert_eq(keel__point_before_observer("token.start"), 0);
    cr_assert(pending(SIGTERM));
    cr_assert_eq(take(SIGTERM), SI_USER, "kill(), not raise() (SI_TKILL)");
}

Test(point, sigint_and_sighup)
{
    block(SIGINT);
    block(SIGHUP);
    faults("sigint@in:a, sighup@in:a");

    cr_assert_eq(keel_point_in("a"), 0);
    cr_assert(pending(SIGINT));
    cr_assert(pending(SIGHUP));
    cr_assert_eq(take(SIGINT), SI_USER);
    cr_assert_eq(take(SIGHUP), SI_USER);
}

static void *fire_in_thread(void *arg)
{
    (void) keel_point_before(arg);
    return NULL;
}

/* A thread that blocks the signal fires it; the process, not the thread, must hold it, or a
 * main thread waiting on a signalfd would never see it. */
Test(point, signal_from_thread_reaches_process)
{
    pthread_t t;

    block(SIGINT); /* inherited by the thread, as every Keel thread blocks it */
    faults("sigint@before:token.spawn.refresh");
    cr_assert_eq(pthread_create(&t, NULL, fire_in_thread, "token.spawn.refresh"), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert(pending(SIGINT));
    cr_assert_eq(take(SIGINT), SI_USER);
}

static keel_usec_t timed_in(const char *point, int *ret)
{
    keel_usec_t start = keel_now();
    *ret = keel_point_in(point);
    return keel_now() - start;
}

Test(point, sleep_sleeps)
{
    int r;

    faults("sleep=60@before:s,sleep=30@in:s,sleep=20@in:s,sleep=500@in:other");
    keel_usec_t start = keel_now();
    cr_assert_eq(keel__point_before_observer("s"), 0);
    cr_assert_geq(keel_now() - start, 60 * KEEL_USEC_PER_MSEC);

    cr_assert_geq(timed_in("s", &r), 50 * KEEL_USEC_PER_MSEC, "both `in` sleeps");
    cr_assert_eq(r, 0);
}

Test(point, sleep_then_error_both_fire)
{
    int r;

    faults("error@in:x,sleep=40@in:x");
    cr_assert_geq(timed_in("x", &r), 40 * KEEL_USEC_PER_MSEC);
    cr_assert_eq(r, -EIO);
}

Test(point, in_delay_sums_without_sleeping)
{
    faults("sleep=200@in:token.request,sleep=50@in:token.request,sleep=7@before:token.request,error@in:token.request,"
           "sleep=1000@in:metrics.request");

    keel_usec_t start = keel_now();
    cr_assert_eq(keel_point_in_delay("token.request"), 250 * KEEL_USEC_PER_MSEC);
    cr_assert_eq(keel_point_in_delay("metrics.request"), KEEL_USEC_PER_SEC);
    cr_assert_eq(keel_point_in_delay("healthcheck.request"), 0);
    cr_assert_lt(keel_now() - start, 100 * KEEL_USEC_PER_MSEC, "must not sleep");
}

/* Instant trace events for non-observer points, by category; none for observers. */
Test(point, traces_instants)
{
    int p[2], saved = dup(STDERR_FILENO);
    char out[1024] = "";

    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    cr_assert_eq(keel__trace_open("-"), 0);
    cr_assert_eq(keel_point_before("token.spawn.refresh"), 0);
    cr_assert_eq(keel_point_before("certificate.refresh"), 0);
    cr_assert_eq(keel_point_before("token.request"), 0);
    cr_assert_eq(keel__point_before_observer("token.start"), 0);
    cr_assert_eq(keel_point_in("token.start"), 0);
    keel__trace_close();
    cr_assert_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(p[1]);
    close(saved);
    cr_assert_geq(read(p[0], out, sizeof out - 1), 0);
    close(p[0]);

    cr_assert_str_eq(out, "trace: spawn token.spawn.refresh\n"
                          "trace: refresh certificate.refresh\n"
                          "trace: point token.request\n");
}

/* The USDT probes are in the binary for bpftrace and perf to find. */
Test(point, usdt_probes_present)
{
    char cmd[256];

    snprintf(cmd, sizeof cmd,
             "readelf -n /proc/%d/exe | grep -q 'Name: point__before' && readelf -n /proc/%d/exe | grep -q 'Name: point__in'",
             (int) getpid(), (int) getpid());
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "stapsdt notes for point__before and point__in");
}
