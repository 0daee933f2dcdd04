/* SPDX-License-Identifier: MIT */
/*
 * What metrics cost:
 *   counter_add_ns           one uncontended keel_counter_add(), in ns
 *   counter_add_2threads_ns  the same while a second thread adds to the same counter, ns per add
 *   gauge_add_ns             one uncontended keel_gauge_add() (a compare-and-swap loop)
 *   histogram_observe_ns     one keel_histogram_observe() over Prometheus' 11 default buckets
 *   format_us                one keel_metrics_format() of a registry of 200 series (bytes: its size)
 * Each figure is the median of several runs.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <keel/metrics.h>

#include "bench.h"

#define RUNS 9

static double counter_ns(keel_counter *c, unsigned long n)
{
    uint64_t t = now_ns();
    for (unsigned long i = 0; i < n; i++)
        keel_counter_add(c, 1);
    return (double) (now_ns() - t) / (double) n;
}

static double gauge_ns(keel_gauge *g, unsigned long n)
{
    uint64_t t = now_ns();
    for (unsigned long i = 0; i < n; i++)
        keel_gauge_add(g, 1);
    return (double) (now_ns() - t) / (double) n;
}

/* Observations spread over every bucket, from a table so the loop costs no arithmetic. */
static double values[1024];

static double histogram_ns(keel_histogram *h, unsigned long n)
{
    uint64_t t = now_ns();
    for (unsigned long i = 0; i < n; i++)
        keel_histogram_observe(h, values[i & 1023]);
    return (double) (now_ns() - t) / (double) n;
}

static double counter_loop(void *arg, unsigned long n)
{
    return counter_ns(arg, n);
}

static const double default_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

/* 100 counters (10 families of 10), 80 gauges (one family, and the 7 process gauges among
 * them), 20 histograms of 11 buckets: what a daemon with a handful of services exposes. */
static keel_metrics *big_registry(void)
{
    keel_metrics *m = keel_metrics_new();
    char name[64], value[16];

    if (!m || keel_metrics_add_process_collector(m) < 0)
        abort();
    for (int f = 0; f < 10; f++)
        for (int s = 0; s < 10; s++) {
            keel_counter *c;
            snprintf(name, sizeof name, "keel_family_%d_total", f);
            snprintf(value, sizeof value, "%d", 200 + s);
            if (keel_metrics_counter(m, name, "A counter family.", (const char *[]){ "service", "token", "code", value, NULL },
                                     &c) < 0)
                abort();
            keel_counter_add(c, (uint64_t) (f * 1000 + s * 37));
        }
    for (int s = 0; s < 73; s++) {
        keel_gauge *g;
        snprintf(value, sizeof value, "%d", s);
        if (keel_metrics_gauge(m, "keel_gauge", "A gauge family.", (const char *[]){ "index", value, NULL }, &g) < 0)
            abort();
        keel_gauge_set(g, s * 0.37);
    }
    for (int s = 0; s < 20; s++) {
        keel_histogram *h;
        snprintf(value, sizeof value, "/path/%d", s);
        if (keel_metrics_histogram(m, "keel_request_duration_seconds", "A histogram family.",
                                   (const char *[]){ "handler", value, NULL }, default_bounds, 11, &h) < 0)
            abort();
        for (int i = 0; i < 100; i++)
            keel_histogram_observe(h, values[(s * 100 + i) & 1023]);
    }
    return m;
}

static double format_us(keel_metrics *m, int n, size_t *ret_size)
{
    uint64_t t = now_ns();
    for (int i = 0; i < n; i++) {
        char *text;
        if (keel_metrics_format(m, &text, ret_size) < 0)
            abort();
        free(text);
    }
    return (double) (now_ns() - t) / 1000.0 / n;
}

int main(void)
{
    keel_metrics *m = keel_metrics_new(), *big;
    keel_counter *c;
    keel_gauge *g;
    keel_histogram *h;
    double counter[RUNS], contended[RUNS], gauge[RUNS], histogram[RUNS], format[RUNS];
    size_t size = 0;

    if (!m || keel_metrics_counter(m, "bench_total", "Bench.", NULL, &c) < 0 ||
        keel_metrics_gauge(m, "bench", "Bench.", NULL, &g) < 0 ||
        keel_metrics_histogram(m, "bench_seconds", "Bench.", NULL, default_bounds, 11, &h) < 0)
        return 1;
    for (size_t i = 0; i < 1024; i++)
        values[i] = (double) ((i * 7919) % 1024) / 1024.0 * 12.0; /* 0 to 12: every bucket and "+Inf" */

    (void) counter_ns(c, 10000000); /* warm up: caches, frequency */
    for (int r = 0; r < RUNS; r++) {
        counter[r] = counter_ns(c, 20000000);
        gauge[r] = gauge_ns(g, 20000000);
        histogram[r] = histogram_ns(h, 20000000);
    }
    for (int r = 0; r < RUNS; r++)
        contended[r] = bench_contended(counter_loop, c, 5000000);

    big = big_registry();
    (void) format_us(big, 10, &size);
    for (int r = 0; r < RUNS; r++)
        format[r] = format_us(big, 100, &size);

    printf("bench-metrics: counter_add_ns=%.1f counter_add_2threads_ns=%.1f gauge_add_ns=%.1f histogram_observe_ns=%.1f "
           "format_us=%.1f (200 series, %zu bytes)\n",
           median(counter, RUNS), median(contended, RUNS), median(gauge, RUNS), median(histogram, RUNS), median(format, RUNS),
           size);
    keel_metrics_free(big);
    keel_metrics_free(m);
    return 0;
}
