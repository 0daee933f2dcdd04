/* SPDX-License-Identifier: MIT */
/* Steps of the wall clock. The refresh task sleeps on CLOCK_MONOTONIC, which no step moves, while
 * a certificate's lifetime is in wall-clock time: a step forward (an NTP first sync, a resume, an
 * operator's date) can expire the certificate with the renewal still a day away, and a step back
 * at start leaves a renewal scheduled past notAfter once the clock is right again. The kernel tells
 * of a step by cancelling a CLOCK_REALTIME timerfd armed with TFD_TIMER_CANCEL_ON_SET (as
 * systemd's time-change watch does); the task is then woken to schedule again against the
 * certificate's own dates. */
#include <errno.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "certificate-service.h"

/* An absolute time that never comes: the timer only ever ends by a step. */
static int arm(int fd)
{
    struct itimerspec never = { .it_value = { .tv_sec = (time_t) INT32_MAX * 16 } };
    return timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &never, NULL) < 0 ? -errno : 0;
}

static void format_now(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void) snprintf(buf, size, "?");
}

/* A read says -ECANCELED after a step; an expiry or anything else is looked at the same way, since
 * a look costs one schedule. */
static int on_clock_change(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
    cert_service *s = userdata;
    uint64_t expirations;
    (void) !read(fd, &expirations, sizeof expirations);
    int r = arm(fd);
    if (r < 0) {
        CERT_LOG_ERRNO(KEEL_LOG_WARNING, r, "Failed to watch the wall clock again, ignoring its steps from now on: %m");
        (void) sd_event_source_set_enabled(src, SD_EVENT_OFF);
    }
    char now[32];
    format_now(now, sizeof now);
    CERT_LOG(KEEL_LOG_INFO, "The wall clock was set (now %s): scheduling the refresh again by the certificate's dates", now);
    keel_task_group_wake(s->tasks);
    return 0;
}

int cert_clock_watch_start(cert_service *s)
{
    int fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = arm(fd);
    if (r >= 0)
        r = sd_event_add_io(keel_app_get_event_loop(s->app), &s->clock_watch, fd, EPOLLIN, on_clock_change, s);
    if (r < 0) {
        (void) close(fd);
        return r;
    }
    (void) sd_event_source_set_io_fd_own(s->clock_watch, true);
    (void) sd_event_source_set_description(s->clock_watch, "certificate-clock");
    return 0;
}
