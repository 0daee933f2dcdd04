/* SPDX-License-Identifier: MIT */
/* The metrics registry: the hot path, which touches only its series, and the objects. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics-internal.h"

/* ---- The hot path ---- */

void keel_counter_add(keel_counter *c, uint64_t n)
{
    /* NULL is a counter of a component that runs without metrics: not worth a debug message. */
    if (!c)
        return;
    atomic_fetch_add_explicit(&series_of(c)->value, n, memory_order_relaxed);
}

uint64_t keel_counter_get(const keel_counter *c)
{
    if (!c)
        return 0;
    return atomic_load_explicit(&series_of(c)->value, memory_order_relaxed);
}

void keel_gauge_set(keel_gauge *g, double v)
{
    if (!g)
        return;
    atomic_store_explicit(&series_of(g)->value, double_to_bits(v), memory_order_relaxed);
}

/* There is no atomic add of doubles: add to the value we saw, and retry if someone else changed it. */
static inline void double_add(_Atomic uint64_t *word, double v)
{
    uint64_t old = atomic_load_explicit(word, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(word, &old, double_to_bits(bits_to_double(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

void keel_gauge_add(keel_gauge *g, double v)
{
    if (!g)
        return;
    double_add(&series_of(g)->value, v);
}

double keel_gauge_get(const keel_gauge *g)
{
    if (!g)
        return 0;
    return bits_to_double(atomic_load_explicit(&series_of(g)->value, memory_order_relaxed));
}

void keel_histogram_observe(keel_histogram *h, double v)
{
    series *s = series_of(h);
    size_t lo = 0, hi;

    if (!s)
        return;
    /* The first bound >= v; none (n_bounds, the "+Inf" bucket) when v is above them all or NaN,
     * since every comparison with NaN is false. */
    hi = s->n_bounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= s->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    double_add(&s->value, v);
}

/* ---- Objects ---- */

series *keel__series_free(series *s)
{
    if (!s)
        return NULL;
    if (s->values)
        for (size_t i = 0; i < s->family->n_labels; i++)
            free(s->values[i]);
    free(s->values);
    free(s);
    return NULL;
}

int keel__series_new(family *f, const char *const *values, const metric_spec *spec, series **ret)
{
    size_t n_buckets = f->type == METRIC_HISTOGRAM ? f->n_bounds + 1 : 0;
    size_t size = offsetof(series, buckets) + n_buckets * sizeof(_Atomic uint64_t);
    _cleanup_(keel__series_freep) series *s = aligned_alloc(CACHE_LINE, (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE);

    if (!s)
        return -ENOMEM;
    *s = (series){
        .family = f,
        .bounds = f->bounds,
        .n_bounds = f->n_bounds,
        .fn = spec->fn,
        .userdata = spec->userdata,
    };
    for (size_t i = 0; i < n_buckets; i++)
        atomic_init(&s->buckets[i], 0);
    s->values = calloc(f->n_labels ? f->n_labels : 1, sizeof(char *));
    if (!s->values)
        return -ENOMEM;
    for (size_t i = 0; i < f->n_labels; i++) {
        s->values[i] = strdup(values[i]);
        if (!s->values[i])
            return -ENOMEM;
    }
    *ret = TAKE_PTR(s);
    return 0;
}

static void print_g(double v, int precision, char buf[static DOUBLE_STRLEN])
{
    /* At most 17 digits, a sign, a point and an exponent like "e-308": 24 bytes. */
    int n = snprintf(buf, DOUBLE_STRLEN, "%.*g", precision, v);
    assert(n > 0 && n < DOUBLE_STRLEN);
    (void) n;
}

/*
 * Formats @v so that Prometheus (Go's strconv.ParseFloat) reads back the same double: integers
 * below 2^53, where every integer is exact, as plain digits (1048576, not 1.048576e+06); other
 * values in the shortest %g form that round-trips (0.1, 1e-09, 1e+20, 0.3333333333333333); "NaN",
 * "+Inf" and "-Inf" as the format spells them. The caller has set LC_NUMERIC to "C".
 */
void keel__metrics_format_double(double v, char buf[static DOUBLE_STRLEN])
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double) (int64_t) v) {
        (void) snprintf(buf, DOUBLE_STRLEN, "%" PRId64, (int64_t) v); /* -0 prints as 0 */
        return;
    }
    /* A decimal that reads back as a normal double is within 2^-53 of it (relatively), and
     * decimals of 15 significant digits lie more than twice that apart: so when one of 15 digits
     * or fewer reads back, it is the nearest, and %.15g (which drops trailing zeros) prints it.
     * Else 16 digits may do, and 17 always do. Subnormals are coarser: search the fewest digits. */
    if (v > -DBL_MIN && v < DBL_MIN) {
        int lo = 1, hi = 17;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            print_g(v, mid, buf);
            if (strtod(buf, NULL) == v)
                hi = mid;
            else
                lo = mid + 1;
        }
        print_g(v, lo, buf);
        return;
    }
    for (int precision = 15; precision < 17; precision++) {
        print_g(v, precision, buf);
        if (strtod(buf, NULL) == v)
            return;
    }
    print_g(v, 17, buf);
}

family *keel__family_free(family *f)
{
    if (!f)
        return NULL;
    for (size_t i = 0; i < f->n_series; i++)
        keel__series_free(f->series[i]);
    free(f->series);
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->label_names[i]);
    free(f->bounds);
    free(f->le);
    free(f->help);
    free(f->name);
    free(f);
    return NULL;
}

int keel__family_new(const metric_spec *spec, const label_set *labels, locale_t c_locale, family **ret)
{
    _cleanup_(keel__family_freep) family *f = malloc(sizeof *f);

    if (!f)
        return -ENOMEM;
    *f = (family){ .type = spec->type };
    f->name = strdup(spec->name);
    f->help = strdup(spec->help);
    if (!f->name || !f->help)
        return -ENOMEM;
    for (size_t i = 0; i < labels->n; i++) {
        f->label_names[i] = strdup(labels->names[i]);
        if (!f->label_names[i])
            return -ENOMEM;
        f->n_labels = i + 1;
    }
    if (spec->n_bounds > 0) {
        f->bounds = malloc(spec->n_bounds * sizeof(double));
        if (!f->bounds)
            return -ENOMEM;
        memcpy(f->bounds, spec->bounds, spec->n_bounds * sizeof(double));
        f->n_bounds = spec->n_bounds;
        f->le = malloc(spec->n_bounds * sizeof f->le[0]);
        if (!f->le)
            return -ENOMEM;
        locale_t saved = uselocale(c_locale);
        for (size_t i = 0; i < f->n_bounds; i++)
            keel__metrics_format_double(f->bounds[i], f->le[i]);
        (void) uselocale(saved);
    }
    *ret = TAKE_PTR(f);
    return 0;
}

keel_metrics *keel_metrics_free(keel_metrics *m)
{
    if (!m)
        return NULL;
    for (size_t i = 0; i < m->n_families; i++)
        keel__family_free(m->families[i]);
    free(m->families);
    free(m->process);
    if (m->c_locale)
        freelocale(m->c_locale);
    (void) pthread_mutex_destroy(&m->lock);
    free(m);
    return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(keel_metrics *, keel_metrics_free);

keel_metrics *keel_metrics_new(void)
{
    _cleanup_(keel_metrics_freep) keel_metrics *m = malloc(sizeof *m);

    if (!m)
        return NULL;
    *m = (keel_metrics){ .lock = PTHREAD_MUTEX_INITIALIZER, .c_locale = (locale_t) 0 };
    m->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t) 0);
    if (!m->c_locale)
        return NULL;
    return TAKE_PTR(m);
}