/* SPDX-License-Identifier: MIT */
#pragma once

/* The metrics registry's objects, shared by its files: metrics.c (the hot path and the objects),
 * metrics-register.c (registration), metrics-process.c (the process collector) and
 * metrics-text.c (the exposition). */

#include <locale.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <keel/metrics.h>

#include "macro-internal.h"

/*
 * A registry is a sorted array of families; a family is a name, help, type, label names and (for
 * histograms) bounds, with an array of series in creation order. The arrays move when they grow,
 * the series never do: each is allocated on its own, and its address is the handle the hot path
 * uses. The hot path therefore touches nothing but the series (its counter, or its buckets and
 * sum) and never the registry's mutex, which only registration and formatting take.
 */

#define CACHE_LINE 64
/* Room for any double as keel__metrics_format_double() prints it: at most 24 bytes. */
#define DOUBLE_STRLEN 32

typedef enum metric_type {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
    _METRIC_TYPE_MAX,
} metric_type;

static const char *const metric_type_table[_METRIC_TYPE_MAX] = {
    [METRIC_COUNTER] = "counter",
    [METRIC_GAUGE] = "gauge",
    [METRIC_HISTOGRAM] = "histogram",
};

typedef struct family family;

/*
 * One series. Cache-line aligned and padded to whole lines, so that no other object's writes
 * share its lines: a counter bumped by every request does not slow down its neighbour's.
 */
typedef struct series {
    /* The only word the update functions write, besides a histogram's buckets. Counter: the count.
     * Gauge: the bits of its double. Histogram: the bits of the sum. */
    _Atomic uint64_t value;
    /* Set before the series is handed out, read-only afterwards. */
    family *family;                  /* borrowed */
    const double *bounds;            /* borrowed from the family: histograms only */
    size_t n_bounds;                 /* buckets has n_bounds + 1 entries, the last one "+Inf" */
    keel_metrics_value_handler_t fn; /* NULL unless the value is read at exposition time */
    void *userdata;
    char **values; /* label values in the family's label order; owned */
    /* Histograms: per-bucket counts, not cumulative, so that an observation is one atomic add. */
    _Atomic uint64_t buckets[];
} series;

struct family {
    char *name;
    char *help;
    metric_type type;
    char *label_names[KEEL_METRICS_LABELS_MAX]; /* in the order of the first registration */
    size_t n_labels;
    double *bounds;
    size_t n_bounds;
    char (*le)[DOUBLE_STRLEN]; /* the bounds as the le label writes them, formatted once */
    series **series;           /* owned, in creation order */
    size_t n_series, n_allocated;
};

/* What the process collector reads, refreshed by keel_metrics_format() under the registry's mutex. */
typedef struct process_info {
    long ticks_per_sec;
    long page_size;
    double boot_time; /* seconds since the epoch (CLOCK_REALTIME less CLOCK_BOOTTIME), as last moved */
    double cpu_seconds, resident_bytes, virtual_bytes, start_time, threads, open_fds, max_fds;
} process_info;

struct keel_metrics {
    pthread_mutex_t lock; /* over everything below; never taken by the update functions */
    family **families;    /* owned, sorted by name */
    size_t n_families, n_allocated;
    process_info *process; /* owned; NULL until keel_metrics_add_process_collector() */
    locale_t c_locale;     /* LC_NUMERIC "C": the exposition format wants '.', whatever the process's locale */
    size_t size_hint;      /* the size of the last exposition, to allocate the next one at once */
};

/* What a registration asks for. */
typedef struct metric_spec {
    const char *name;
    const char *help;
    metric_type type;
    const double *bounds;
    size_t n_bounds;
    keel_metrics_value_handler_t fn;
    void *userdata;
} metric_spec;

/* The labels of one registration, as given. */
typedef struct label_set {
    const char *names[KEEL_METRICS_LABELS_MAX];
    const char *values[KEEL_METRICS_LABELS_MAX];
    size_t n;
} label_set;

static inline uint64_t double_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static inline double bits_to_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline series *series_of(const void *handle)
{
    return (series *) handle;
}

static inline pthread_mutex_t *lock(pthread_mutex_t *mutex)
{
    (void) pthread_mutex_lock(mutex);
    return mutex;
}

static inline void unlockp(pthread_mutex_t **mutex)
{
    if (*mutex)
        (void) pthread_mutex_unlock(*mutex);
}

/* Frees a series or a family (its series too); accept NULL, return NULL. */
series *keel__series_free(series *s);
family *keel__family_free(family *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(series *, keel__series_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(family *, keel__family_free);
/* A new series of @f with the label @values (in the family's order), or a new family. */
int keel__series_new(family *f, const char *const *values, const metric_spec *spec, series **ret);
int keel__family_new(const metric_spec *spec, const label_set *labels, locale_t c_locale, family **ret);
/* @v as the exposition format writes it: an integer below 2^53 as one, else the shortest form
 * that reads back as @v; "+Inf", "-Inf", "NaN". Needs LC_NUMERIC "C" on the calling thread. */
void keel__metrics_format_double(double v, char buf[static DOUBLE_STRLEN]);
/* Registration's own steps, which the process collector uses under the registry's lock too: the
 * family named by the first @len bytes of @name (or NULL), its removal, and a registration. */
family *keel__family_find(const keel_metrics *m, const char *name, size_t len);
void keel__family_unlink(keel_metrics *m, const char *name);
int keel__register_locked(keel_metrics *m, const metric_spec *spec, const label_set *labels, series **ret);
/* Reads /proc for the process collector again; a reading that fails is NaN. */
int keel__metrics_process_refresh(process_info *p);
