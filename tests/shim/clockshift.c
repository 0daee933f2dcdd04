/* SPDX-License-Identifier: MIT */
/*
 * An LD_PRELOAD library for the clock-step tests (tests/integration/test_clock.py): it moves
 * CLOCK_REALTIME, and the calls that read it (time(), gettimeofday()), by a number of seconds the
 * test writes into a file, and leaves every other clock alone. libfaketime moves the monotonic
 * clock too, and every task waiting on it would then spin.
 *
 * The file named by KEEL_CLOCKSHIFT_FILE holds the offset as a little-endian int64 in its first 8
 * bytes; it is mapped shared and read at every call, so the test steps the clock by rewriting
 * those bytes. The kernel is called directly (no dlsym()): the sanitizers' interceptors and their
 * start-up order stay out of it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const volatile int64_t *offset;

__attribute__((constructor)) static void map_offset(void)
{
    const char *path = getenv("KEEL_CLOCKSHIFT_FILE");
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0)
        return;
    void *p = mmap(NULL, sizeof *offset, PROT_READ, MAP_SHARED, fd, 0);
    (void) close(fd);
    if (p != MAP_FAILED)
        offset = p;
}

static int64_t shift(void)
{
    return offset ? *offset : 0;
}

int clock_gettime(clockid_t clock, struct timespec *ts)
{
    long r = syscall(SYS_clock_gettime, clock, ts);
    if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        ts->tv_sec += shift();
    return (int) r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    long r = syscall(SYS_gettimeofday, tv, tz);
    if (r == 0)
        tv->tv_sec += shift();
    return (int) r;
}

time_t time(time_t *t)
{
    struct timespec ts;
    time_t now = clock_gettime(CLOCK_REALTIME, &ts) == 0 ? ts.tv_sec : (time_t) -1;
    if (t)
        *t = now;
    return now;
}

int timespec_get(struct timespec *ts, int base)
{
    return base == TIME_UTC && clock_gettime(CLOCK_REALTIME, ts) == 0 ? base : 0;
}
