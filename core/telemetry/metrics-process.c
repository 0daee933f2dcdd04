/* SPDX-License-Identifier: MIT */
/* The process collector: process_* from /proc, read at each exposition. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <keel/fileio.h>

#include "metrics-internal.h"

/* ---- The process collector ---- */

/* The boot time as the clocks give it: /proc/self/stat counts a process's start in ticks of
 * CLOCK_BOOTTIME, so the realtime clock less that one dates the boot without /proc/stat, which
 * systemd's ProcSubset=pid hides. Read at each scrape: a step of the wall clock moves the boot (and
 * so the start) with it, as the kernel's btime does, which Go's client reads at each scrape too.
 * A move under a second is kept out, as btime's whole seconds keep it out: the two reads are not
 * one instant, and a start time that changed at every scrape would count as restarts. */
static void refresh_boot_time(process_info *p)
{
    struct timespec real, boot;
    if (clock_gettime(CLOCK_REALTIME, &real) < 0 || clock_gettime(CLOCK_BOOTTIME, &boot) < 0)
        return;
    double now = (double) (real.tv_sec - boot.tv_sec) + (double) (real.tv_nsec - boot.tv_nsec) / 1e9;
    if (!(fabs(now - p->boot_time) < 1.0)) /* NaN until the first read */
        p->boot_time = now;
}

/* Reads /proc/self/stat (proc(5)): utime, stime, num_threads, starttime, vsize and rss. */
static int read_self_stat(process_info *p)
{
    enum { F_UTIME = 14, F_STIME = 15, F_THREADS = 20, F_START = 22, F_VSIZE = 23, F_RSS = 24 };
    unsigned long long v[F_RSS + 1] = { 0 };
    _cleanup_free_ char *buf = NULL;
    size_t size;
    char *s;
    int field;

    int r = keel_file_read("/proc/self/stat", 64 * 1024, &buf, &size, NULL);
    if (r < 0)
        return r;
    /* The command name in field 2 may contain anything, parentheses included: fields 3 and on
     * begin after its last ')'. Field 3 is the state, a letter. */
    s = strrchr(buf, ')');
    if (!s || s[1] != ' ')
        return -EIO;
    s += 2;
    s += strcspn(s, " ");
    for (field = 4; field <= F_RSS; field++) {
        char *end;
        errno = 0;
        v[field] = strtoull(s, &end, 10);
        if (end == s || errno != 0)
            return -EIO;
        s = end;
    }
    p->cpu_seconds = (double) (v[F_UTIME] + v[F_STIME]) / (double) p->ticks_per_sec;
    p->threads = (double) v[F_THREADS];
    refresh_boot_time(p);
    p->start_time = p->boot_time + (double) v[F_START] / (double) p->ticks_per_sec;
    p->virtual_bytes = (double) v[F_VSIZE];
    p->resident_bytes = (double) v[F_RSS] * (double) p->page_size;
    return 0;
}

/* Refreshes every reading; one that fails reads NaN. Returns the first error. */
int keel__metrics_process_refresh(process_info *p)
{
    struct rlimit rl;
    int r = 0, k;

    k = read_self_stat(p);
    if (k < 0) {
        p->cpu_seconds = p->threads = p->start_time = p->virtual_bytes = p->resident_bytes = NAN;
        r = k;
    }
    unsigned fds = 0;
    k = keel__fd_count(&fds);
    p->open_fds = fds;
    if (k < 0) {
        p->open_fds = NAN;
        if (r == 0)
            r = k;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        p->max_fds = NAN;
        if (r == 0)
            r = -errno;
    } else
        p->max_fds = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double) rl.rlim_cur;
    return r;
}

static double read_double(void *userdata)
{
    return *(const double *) userdata;
}

static const struct {
    const char *name;
    const char *help;
    metric_type type;
    size_t offset;
} process_metrics[] = {
    { "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", METRIC_COUNTER,
      offsetof(process_info, cpu_seconds) },
    { "process_max_fds", "Maximum number of open file descriptors.", METRIC_GAUGE, offsetof(process_info, max_fds) },
    { "process_open_fds", "Number of open file descriptors.", METRIC_GAUGE, offsetof(process_info, open_fds) },
    { "process_resident_memory_bytes", "Resident memory size in bytes.", METRIC_GAUGE, offsetof(process_info, resident_bytes) },
    { "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", METRIC_GAUGE,
      offsetof(process_info, start_time) },
    { "process_threads", "Number of OS threads in the process.", METRIC_GAUGE, offsetof(process_info, threads) },
    { "process_virtual_memory_bytes", "Virtual memory size in bytes.", METRIC_GAUGE, offsetof(process_info, virtual_bytes) },
};

int keel_metrics_add_process_collector(keel_metrics *m)
{
    _cleanup_(unlockp) pthread_mutex_t *locked = NULL;
    _cleanup_free_ process_info *p = NULL;
    const label_set none = { .n = 0 };
    int r;

    keel_assert_return(m, -EINVAL);

    p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    *p = (process_info){ .ticks_per_sec = sysconf(_SC_CLK_TCK), .page_size = sysconf(_SC_PAGESIZE), .boot_time = NAN };
    if (p->ticks_per_sec <= 0 || p->page_size <= 0)
        return -EIO;
    r = keel__metrics_process_refresh(p);
    if (r < 0)
        return r;

    locked = lock(&m->lock);
    if (m->process)
        return -EEXIST;
    for (size_t i = 0; i < ELEMENTSOF(process_metrics); i++)
        if (keel__family_find(m, process_metrics[i].name, strlen(process_metrics[i].name)))
            return -EINVAL;
    for (size_t i = 0; i < ELEMENTSOF(process_metrics); i++) {
        metric_spec spec = {
            .name = process_metrics[i].name,
            .help = process_metrics[i].help,
            .type = process_metrics[i].type,
            .fn = read_double,
            .userdata = (char *) p + process_metrics[i].offset,
        };
        series *s;

        r = keel__register_locked(m, &spec, &none, &s);
        if (r < 0) {
            /* None of these families existed: take out those made so far, all or nothing. */
            while (i-- > 0)
                keel__family_unlink(m, process_metrics[i].name);
            return r;
        }
    }
    m->process = TAKE_PTR(p);
    return 0;
}