/* SPDX-License-Identifier: MIT */
/* The stop request of core/machine/signals.c: keel_app_stop_requested(), keel_app_wait() and
 * keel_app_stop_fd(), with the signal pending (start: the loop idle), taken by the loop, on
 * another thread, and not there (a SIGHUP is no stop). */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "app-internal.h"
#include "machine-internal.h"
#include "testing.h"

static keel_app *app;

static void setup(void)
{
    app = keel_app_new("test");
    cr_assert_not_null(app);
    cr_assert_eq(keel__signals_setup(app), 0);
}

static void teardown(void)
{
    app = keel_app_free(app);
}

TestSuite(signals, .init = setup, .fini = teardown, .timeout = 30);

static bool pending(int sig)
{
    sigset_t set;
    cr_assert_eq(sigpending(&set), 0);
    return sigismember(&set, sig) == 1;
}

/* Dispatches what the loop has: at most a few sources, never blocking. */
static void run_loop(void)
{
    for (int i = 0; i < 8 && sd_event_run(keel_app_get_event_loop(app), 0) > 0; i++)
        ;
}

Test(signals, bad_arguments_and_an_app_without_signals)
{
    cr_assert_eq(keel_app_wait(NULL, 0), -EINVAL);
    cr_assert_eq(keel_app_stop_fd(NULL), -EINVAL);
    cr_assert_not(keel_app_stop_requested(NULL));
    keel_app *bare = keel_app_new("bare");
    cr_assert_eq(keel_app_wait(bare, 0), -ENOTCONN);
    cr_assert_eq(keel_app_stop_fd(bare), -ENOTCONN);
    cr_assert_not(keel_app_stop_requested(bare));
    keel_app_free(bare);
}

Test(signals, a_wait_without_a_stop_lasts_its_time)
{
    keel_usec_t t0 = keel_now();
    cr_assert_eq(keel_app_wait(app, 30 * KEEL_USEC_PER_MSEC), 0);
    cr_assert_geq(keel_now() - t0, 30 * KEEL_USEC_PER_MSEC);
    cr_assert_eq(keel_app_wait(app, 0), 0);
    cr_assert_not(keel_app_stop_requested(app));
}

Test(signals, a_pending_stop_signal_ends_a_wait_at_once_and_stays_pending)
{
    cr_assert_eq(kill(getpid(), SIGTERM), 0);
    cr_assert(keel_app_stop_requested(app));
    keel_usec_t t0 = keel_now();
    cr_assert_eq(keel_app_wait(app, KEEL_USEC_INFINITY), -ECANCELED);
    cr_assert_lt(keel_now() - t0, KEEL_USEC_PER_SEC);
    /* Not consumed: the machine acts on it when the observer returns. */
    cr_assert(pending(SIGTERM));
    cr_assert_eq(keel_app_cause(app), KEEL_CAUSE_NONE);
    run_loop();
    cr_assert_eq(keel_app_cause(app), KEEL_CAUSE_SIGNAL);
}

Test(signals, a_stop_the_loop_took_still_ends_every_wait)
{
    cr_assert_eq(kill(getpid(), SIGINT), 0);
    run_loop();
    cr_assert_not(pending(SIGINT));
    cr_assert_eq(keel_app_cause(app), KEEL_CAUSE_SIGNAL);
    cr_assert(keel_app_stop_requested(app));
    cr_assert_eq(keel_app_wait(app, 10 * KEEL_USEC_PER_SEC), -ECANCELED);
    cr_assert_eq(keel_app_wait(app, 0), -ECANCELED);
}

Test(signals, sigquit_is_a_stop_and_sighup_is_not)
{
    cr_assert_eq(kill(getpid(), SIGHUP), 0);
    cr_assert(pending(SIGHUP));
    cr_assert_not(keel_app_stop_requested(app));
    cr_assert_eq(keel_app_wait(app, KEEL_USEC_PER_MSEC), 0);
    cr_assert_eq(kill(getpid(), SIGQUIT), 0);
    cr_assert(keel_app_stop_requested(app));
}

Test(signals, the_stop_descriptor_polls_readable_at_a_stop)
{
    int fd = keel_app_stop_fd(app);
    cr_assert_geq(fd, 0);
    struct pollfd p = { .fd = fd, .events = POLLIN };
    cr_assert_eq(poll(&p, 1, 0), 0);
    cr_assert_eq(kill(getpid(), SIGTERM), 0);
    cr_assert_eq(poll(&p, 1, 1000), 1);
    cr_assert(p.revents & POLLIN);
    run_loop(); /* taken by the loop: still readable */
    cr_assert_eq(poll(&p, 1, 0), 1);
}

static void *wait_long(void *userdata)
{
    return (void *) (intptr_t) keel_app_wait(userdata, KEEL_USEC_INFINITY);
}

/* The waiter blocks in poll(2) until the signal: no busy loop to race with. The main thread
 * then takes the signal as the loop would; the waiter has returned either way. */
Test(signals, a_signal_wakes_a_wait_on_another_thread)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wait_long, app), 0);
    cr_assert_eq(kill(getpid(), SIGTERM), 0);
    void *r;
    cr_assert_eq(pthread_join(t, &r), 0);
    cr_assert_eq((int) (intptr_t) r, -ECANCELED);
    run_loop();
    cr_assert_eq(keel_app_cause(app), KEEL_CAUSE_SIGNAL);
}

Test(signals, a_signal_the_loop_takes_wakes_a_waiting_thread)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wait_long, app), 0);
    cr_assert_eq(kill(getpid(), SIGINT), 0);
    /* Blocks until the signal is there; the waiter may not have seen it pending yet. */
    cr_assert_geq(sd_event_run(keel_app_get_event_loop(app), 5 * KEEL_USEC_PER_SEC), 1);
    void *r;
    cr_assert_eq(pthread_join(t, &r), 0);
    cr_assert_eq((int) (intptr_t) r, -ECANCELED);
}
