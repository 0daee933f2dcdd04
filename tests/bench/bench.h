/* SPDX-License-Identifier: MIT */
#pragma once

/* What every benchmark needs: a nanosecond clock, a median, and one loop run on two threads that
 * start together. Header-only: each bench-*.c is its own executable. */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* Sorts @v in place. */
static inline double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* A loop to time: runs @n iterations on @arg and returns ns per iteration. */
typedef double (*bench_loop_t)(void *arg, unsigned long n);

typedef struct bench_contender {
    bench_loop_t loop;
    void *arg;
    pthread_barrier_t *start;
    unsigned long n;
    double ns;
} bench_contender;

static inline void *bench_contend(void *p)
{
    bench_contender *c = p;
    (void) pthread_barrier_wait(c->start);
    c->ns = c->loop(c->arg, c->n);
    return NULL;
}

/* @loop on this thread and a second one at once, on the same @arg: the mean ns per iteration. */
static inline double bench_contended(bench_loop_t loop, void *arg, unsigned long n)
{
    pthread_barrier_t start;
    pthread_t t;
    bench_contender a = { .loop = loop, .arg = arg, .start = &start, .n = n }, b = a;

    if (pthread_barrier_init(&start, NULL, 2) != 0 || pthread_create(&t, NULL, bench_contend, &b) != 0)
        abort();
    bench_contend(&a);
    (void) pthread_join(t, NULL);
    pthread_barrier_destroy(&start);
    return (a.ns + b.ns) / 2;
}
