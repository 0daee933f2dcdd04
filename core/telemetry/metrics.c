/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

#include <keel/fileio.h>
#include <keel/metrics.h>

#include "macro.h"

/*
 * A registry is a sorted array of families; a family is a name, help, type, label names and (for
 * histograms) bounds, with an array of series in creation order. The arrays move when they grow,
 * the series never do: each is allocated on its own, and its address is the handle the hot path
 * uses. The hot path therefore touches nothing but the series (its counter, or its buckets and
 * sum) and never the registry's mutex, which only registration and formatting take.
 */

#define CACHE_LINE 64
/* Room for any double as format_double() prints it: at most 24 bytes. */
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
    double boot_time; /* /proc/stat btime, seconds since the epoch */
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

static pthread_mutex_t *lock(pthread_mutex_t *mutex)
{
    (void) pthread_mutex_lock(mutex);
    return mutex;
}

static void unlockp(pthread_mutex_t **mutex)
{
    if (*mutex)
        (void) pthread_mutex_unlock(*mutex);
}

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

static series *series_free(series *s)
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
DEFINE_TRIVIAL_CLEANUP_FUNC(series *, series_free);

static int series_new(family *f, const char *const *values, const metric_spec *spec, series **ret)
{
    size_t n_buckets = f->type == METRIC_HISTOGRAM ? f->n_bounds + 1 : 0;
    size_t size = offsetof(series, buckets) + n_buckets * sizeof(_Atomic uint64_t);
    _cleanup_(series_freep) series *s = aligned_alloc(CACHE_LINE, (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE);

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
static void format_double(double v, char buf[static DOUBLE_STRLEN])
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

static family *family_free(family *f)
{
    if (!f)
        return NULL;
    for (size_t i = 0; i < f->n_series; i++)
        series_free(f->series[i]);
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
DEFINE_TRIVIAL_CLEANUP_FUNC(family *, family_free);

static int family_new(const metric_spec *spec, const label_set *labels, locale_t c_locale, family **ret)
{
    _cleanup_(family_freep) family *f = malloc(sizeof *f);

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
            format_double(f->bounds[i], f->le[i]);
        (void) uselocale(saved);
    }
    *ret = TAKE_PTR(f);
    return 0;
}

/* Makes room for @need elements in *@array. */
static int grow(void *array, size_t *allocated, size_t need, size_t size)
{
    void **p = array;
    size_t n;
    void *q;

    if (need <= *allocated)
        return 0;
    n = MAX(need, MAX(*allocated * 2, (size_t) 8));
    q = reallocarray(*p, n, size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *allocated = n;
    return 0;
}

keel_metrics *keel_metrics_free(keel_metrics *m)
{
    if (!m)
        return NULL;
    for (size_t i = 0; i < m->n_families; i++)
        family_free(m->families[i]);
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

/* ---- Registration ---- */

static bool name_valid(const char *s, bool metric)
{
    if (!s || !*s || strneq(s, "__", 2))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':') ||
              (p != s && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* Prometheus rejects a scrape whose label values are not UTF-8. Rejects overlong forms,
 * surrogates and code points past U+10FFFF, as Go's utf8.ValidString does. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *) s;

    while (*p) {
        uint32_t cp, min;
        size_t n;

        if (*p < 0x80) {
            p++;
            continue;
        }
        if ((*p & 0xe0) == 0xc0) {
            n = 1;
            cp = *p & 0x1f;
            min = 0x80;
        } else if ((*p & 0xf0) == 0xe0) {
            n = 2;
            cp = *p & 0x0f;
            min = 0x800;
        } else if ((*p & 0xf8) == 0xf0) {
            n = 3;
            cp = *p & 0x07;
            min = 0x10000;
        } else
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
                return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

static int labels_parse(const char *const *labels, bool histogram, label_set *ret)
{
    label_set ls = { .n = 0 };

    for (size_t i = 0; labels && labels[i]; i += 2) {
        const char *name = labels[i], *value = labels[i + 1];

        if (!value)
            return -EINVAL;
        if (ls.n >= KEEL_METRICS_LABELS_MAX)
            return -E2BIG;
        if (!name_valid(name, false) || (histogram && streq(name, "le")) || !utf8_valid(value))
            return -EINVAL;
        for (size_t j = 0; j < ls.n; j++)
            if (streq(ls.names[j], name))
                return -EINVAL;
        ls.names[ls.n] = name;
        ls.values[ls.n] = value;
        ls.n++;
    }
    *ret = ls;
    return 0;
}

/* Puts the values of @ls in @f's label order: -EINVAL unless @ls has exactly @f's label names
 * (they are distinct in both, so equal counts and each of @f's found make the same set). */
static int labels_order(const family *f, const label_set *ls, const char **ret_values)
{
    if (ls->n != f->n_labels)
        return -EINVAL;
    for (size_t i = 0; i < f->n_labels; i++) {
        size_t j = 0;
        while (j < ls->n && !streq(ls->names[j], f->label_names[i]))
            j++;
        if (j == ls->n)
            return -EINVAL;
        ret_values[i] = ls->values[j];
    }
    return 0;
}

static int bounds_check(const double *bounds, size_t n)
{
    if (n > KEEL_METRICS_BOUNDS_MAX)
        return -E2BIG;
    if (n > 0 && !bounds)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return -EINVAL;
    return 0;
}

/* Compares family name @a with the first @len bytes of @b, as strcmp() would compare @a with
 * that prefix of @b. */
static int name_cmp(const char *a, const char *b, size_t len)
{
    int r = strncmp(a, b, len);
    return r != 0 ? r : a[len] != 0;
}

/* The index of the family named by the first @len bytes of @name, or where it would go. */
static size_t family_search(const keel_metrics *m, const char *name, size_t len, bool *ret_found)
{
    size_t lo = 0, hi = m->n_families;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(m->families[mid]->name, name, len);
        if (c == 0) {
            *ret_found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *ret_found = false;
    return lo;
}

static family *family_find(const keel_metrics *m, const char *name, size_t len)
{
    bool found;
    size_t i = family_search(m, name, len, &found);
    return found ? m->families[i] : NULL;
}

static void family_unlink(keel_metrics *m, const char *name)
{
    bool found;
    size_t i = family_search(m, name, strlen(name), &found);

    if (!found)
        return;
    family_free(m->families[i]);
    memmove(m->families + i, m->families + i + 1, (m->n_families - i - 1) * sizeof(family *));
    m->n_families--;
}

/* Histogram x writes the samples x_bucket, x_sum and x_count: no other family may have those
 * names, or a scraper could not tell whose samples they are. */
static int check_collisions(const keel_metrics *m, const char *name, metric_type type)
{
    static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
    size_t len = strlen(name);

    for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
        size_t n = strlen(suffixes[i]);
        family *f;

        if (len > n && streq(name + len - n, suffixes[i]) && (f = family_find(m, name, len - n)) && f->type == METRIC_HISTOGRAM)
            return -EINVAL;
        if (type == METRIC_HISTOGRAM) {
            _cleanup_free_ char *s = keel_strdup_printf("%s%s", name, suffixes[i]);
            if (!s)
                return -ENOMEM;
            if (family_find(m, s, strlen(s)))
                return -EINVAL;
        }
    }
    return 0;
}

static series *family_find_series(const family *f, const char *const *values)
{
    for (size_t i = 0; i < f->n_series; i++) {
        size_t j = 0;
        while (j < f->n_labels && streq(f->series[i]->values[j], values[j]))
            j++;
        if (j == f->n_labels)
            return f->series[i];
    }
    return NULL;
}

/* With the registry's mutex held. Changes nothing unless it succeeds. */
static int register_locked(keel_metrics *m, const metric_spec *spec, const label_set *labels, series **ret)
{
    _cleanup_(family_freep) family *new_family = NULL;
    const char *values[KEEL_METRICS_LABELS_MAX];
    bool found;
    size_t idx = family_search(m, spec->name, strlen(spec->name), &found);
    family *f = found ? m->families[idx] : NULL;
    series *s;
    int r;

    if (f) {
        if (f->type != spec->type || !streq(f->help, spec->help))
            return -EINVAL;
        if (f->type == METRIC_HISTOGRAM &&
            (f->n_bounds != spec->n_bounds || (f->n_bounds > 0 && memcmp(f->bounds, spec->bounds, f->n_bounds * sizeof(double)))))
            return -EINVAL;
        r = labels_order(f, labels, values);
        if (r < 0)
            return r;
        s = family_find_series(f, values);
        if (s) {
            if (spec->fn)
                return -EEXIST;
            if (s->fn) /* its value comes from the function: a handle to it would update nothing */
                return -EINVAL;
            *ret = s;
            return 0;
        }
    } else {
        r = check_collisions(m, spec->name, spec->type);
        if (r < 0)
            return r;
        r = family_new(spec, labels, m->c_locale, &new_family);
        if (r < 0)
            return r;
        f = new_family;
        for (size_t i = 0; i < labels->n; i++)
            values[i] = labels->values[i];
        r = grow(&m->families, &m->n_allocated, m->n_families + 1, sizeof(family *));
        if (r < 0)
            return r;
    }

    r = grow(&f->series, &f->n_allocated, f->n_series + 1, sizeof(series *));
    if (r < 0)
        return r;
    r = series_new(f, values, spec, &s);
    if (r < 0)
        return r;
    f->series[f->n_series++] = s;
    if (new_family) {
        memmove(m->families + idx + 1, m->families + idx, (m->n_families - idx) * sizeof(family *));
        m->families[idx] = TAKE_PTR(new_family);
        m->n_families++;
    }
    *ret = s;
    return 0;
}

static int metrics_register(keel_metrics *m, const metric_spec *spec, const char *const *labels, series **ret)
{
    _cleanup_(unlockp) pthread_mutex_t *locked = NULL;
    label_set ls;
    int r;

    keel_assert_return(m, -EINVAL);
    keel_assert_return(name_valid(spec->name, true), -EINVAL);
    keel_assert_return(spec->help && utf8_valid(spec->help), -EINVAL);

    r = labels_parse(labels, spec->type == METRIC_HISTOGRAM, &ls);
    if (r < 0)
        return r;
    r = bounds_check(spec->bounds, spec->n_bounds);
    if (r < 0)
        return r;

    locked = lock(&m->lock);
    return register_locked(m, spec, &ls, ret);
}

int keel_metrics_counter(keel_metrics *m, const char *name, const char *help, const char *const *labels, keel_counter **ret)
{
    metric_spec spec = { .name = name, .help = help, .type = METRIC_COUNTER };
    series *s;
    int r;

    keel_assert_return(ret, -EINVAL);
    r = metrics_register(m, &spec, labels, &s);
    if (r < 0)
        return r;
    *ret = (keel_counter *) s;
    return 0;
}

int keel_metrics_gauge(keel_metrics *m, const char *name, const char *help, const char *const *labels, keel_gauge **ret)
{
    metric_spec spec = { .name = name, .help = help, .type = METRIC_GAUGE };
    series *s;
    int r;

    keel_assert_return(ret, -EINVAL);
    r = metrics_register(m, &spec, labels, &s);
    if (r < 0)
        return r;
    *ret = (keel_gauge *) s;
    return 0;
}

int keel_metrics_histogram(keel_metrics *m, const char *name, const char *help, const char *const *labels, const double *bounds,
                           size_t n_bounds, keel_histogram **ret)
{
    metric_spec spec = { .name = name, .help = help, .type = METRIC_HISTOGRAM, .bounds = bounds, .n_bounds = n_bounds };
    series *s;
    int r;

    keel_assert_return(ret, -EINVAL);
    r = metrics_register(m, &spec, labels, &s);
    if (r < 0)
        return r;
    *ret = (keel_histogram *) s;
    return 0;
}

int keel_metrics_gauge_fn(keel_metrics *m, const char *name, const char *help, const char *const *labels,
                          keel_metrics_value_handler_t fn, void *userdata)
{
    metric_spec spec = { .name = name, .help = help, .type = METRIC_GAUGE, .fn = fn, .userdata = userdata };
    series *s;

    keel_assert_return(fn, -EINVAL);
    return metrics_register(m, &spec, labels, &s);
}

int keel_metrics_counter_fn(keel_metrics *m, const char *name, const char *help, const char *const *labels,
                            keel_metrics_value_handler_t fn, void *userdata)
{
    metric_spec spec = { .name = name, .help = help, .type = METRIC_COUNTER, .fn = fn, .userdata = userdata };
    series *s;

    keel_assert_return(fn, -EINVAL);
    return metrics_register(m, &spec, labels, &s);
}

/* ---- The process collector ---- */

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

/* /proc/stat can be long (a line per CPU, and one number per interrupt before btime): read it by line. */
static int read_boot_time(double *ret)
{
    _cleanup_(fclosep) FILE *f = fopen("/proc/stat", "re");
    _cleanup_free_ char *line = NULL;
    size_t size = 0;

    if (!f)
        return -errno;
    while (getline(&line, &size, f) >= 0) {
        unsigned long long t;
        if (sscanf(line, "btime %llu", &t) == 1) {
            *ret = (double) t;
            return 0;
        }
    }
    return -EIO;
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
    p->start_time = p->boot_time + (double) v[F_START] / (double) p->ticks_per_sec;
    p->virtual_bytes = (double) v[F_VSIZE];
    p->resident_bytes = (double) v[F_RSS] * (double) p->page_size;
    return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

static int count_open_fds(double *ret)
{
    _cleanup_(closedirp) DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;
    struct dirent *de;

    if (!d)
        return -errno;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d)) /* not the one we read it through */
            n++;
    *ret = n;
    return 0;
}

/* Refreshes every reading; one that fails reads NaN. Returns the first error. */
static int process_refresh(process_info *p)
{
    struct rlimit rl;
    int r = 0, k;

    k = read_self_stat(p);
    if (k < 0) {
        p->cpu_seconds = p->threads = p->start_time = p->virtual_bytes = p->resident_bytes = NAN;
        r = k;
    }
    k = count_open_fds(&p->open_fds);
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
    *p = (process_info){ .ticks_per_sec = sysconf(_SC_CLK_TCK), .page_size = sysconf(_SC_PAGESIZE) };
    if (p->ticks_per_sec <= 0 || p->page_size <= 0)
        return -EIO;
    r = read_boot_time(&p->boot_time);
    if (r < 0)
        return r;
    r = process_refresh(p);
    if (r < 0)
        return r;

    locked = lock(&m->lock);
    if (m->process)
        return -EEXIST;
    for (size_t i = 0; i < ELEMENTSOF(process_metrics); i++)
        if (family_find(m, process_metrics[i].name, strlen(process_metrics[i].name)))
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

        r = register_locked(m, &spec, &none, &s);
        if (r < 0) {
            /* None of these families existed: take out those made so far, all or nothing. */
            while (i-- > 0)
                family_unlink(m, process_metrics[i].name);
            return r;
        }
    }
    m->process = TAKE_PTR(p);
    return 0;
}

/* ---- Exposition ---- */

typedef struct buffer {
    char *data;
    size_t len, allocated;
    bool oom; /* an append failed: the text is incomplete */
} buffer;

static bool buffer_reserve(buffer *b, size_t n)
{
    size_t need;
    char *p;

    if (b->oom)
        return false;
    need = b->len + n + 1;
    if (need <= b->allocated)
        return true;
    need = MAX(need, MAX(b->allocated * 2, (size_t) 4096));
    p = realloc(b->data, need);
    if (!p) {
        b->oom = true;
        return false;
    }
    p[b->len] = 0; /* the text is a string even before the first append */
    b->data = p;
    b->allocated = need;
    return true;
}

static void buffer_append(buffer *b, const char *s, size_t n)
{
    if (!buffer_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void buffer_puts(buffer *b, const char *s)
{
    buffer_append(b, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void buffer_escaped(buffer *b, const char *s, bool quote)
{
    for (;;) {
        size_t n = strcspn(s, quote ? "\\\n\"" : "\\\n");
        buffer_append(b, s, n);
        s += n;
        if (!*s)
            return;
        buffer_puts(b, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\");
        s++;
    }
}

/* One sample line: name[suffix][{labels[,le="…"]}] value */
static void put_sample(buffer *b, const family *f, const series *s, const char *suffix, const char *le, const char *value)
{
    buffer_puts(b, f->name);
    if (suffix)
        buffer_puts(b, suffix);
    if (f->n_labels > 0 || le) {
        buffer_puts(b, "{");
        for (size_t i = 0; i < f->n_labels; i++) {
            if (i > 0)
                buffer_puts(b, ",");
            buffer_puts(b, f->label_names[i]);
            buffer_puts(b, "=\"");
            buffer_escaped(b, s->values[i], true);
            buffer_puts(b, "\"");
        }
        if (le) {
            buffer_puts(b, f->n_labels > 0 ? ",le=\"" : "le=\"");
            buffer_puts(b, le);
            buffer_puts(b, "\"");
        }
        buffer_puts(b, "}");
    }
    buffer_puts(b, " ");
    buffer_puts(b, value);
    buffer_puts(b, "\n");
}

static void put_histogram(buffer *b, const family *f, series *s)
{
    char value[DOUBLE_STRLEN];
    uint64_t cumulative = 0;

    /* The count is the sum of the buckets as read here, so le="+Inf" and _count always agree. */
    for (size_t i = 0; i <= s->n_bounds; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        (void) snprintf(value, sizeof value, "%" PRIu64, cumulative);
        put_sample(b, f, s, "_bucket", i < f->n_bounds ? f->le[i] : "+Inf", value);
    }
    format_double(bits_to_double(atomic_load_explicit(&s->value, memory_order_relaxed)), value);
    put_sample(b, f, s, "_sum", NULL, value);
    (void) snprintf(value, sizeof value, "%" PRIu64, cumulative);
    put_sample(b, f, s, "_count", NULL, value);
}

static void put_family(buffer *b, const family *f)
{
    buffer_puts(b, "# HELP ");
    buffer_puts(b, f->name);
    buffer_puts(b, " ");
    buffer_escaped(b, f->help, false);
    buffer_puts(b, "\n# TYPE ");
    buffer_puts(b, f->name);
    buffer_puts(b, " ");
    buffer_puts(b, metric_type_table[f->type]);
    buffer_puts(b, "\n");

    for (size_t i = 0; i < f->n_series; i++) {
        series *s = f->series[i];
        char value[DOUBLE_STRLEN];

        if (s->fn)
            format_double(s->fn(s->userdata), value);
        else if (f->type == METRIC_COUNTER)
            (void) snprintf(value, sizeof value, "%" PRIu64, atomic_load_explicit(&s->value, memory_order_relaxed));
        else if (f->type == METRIC_GAUGE)
            format_double(bits_to_double(atomic_load_explicit(&s->value, memory_order_relaxed)), value);
        else {
            put_histogram(b, f, s);
            continue;
        }
        put_sample(b, f, s, NULL, NULL, value);
    }
}

int keel_metrics_format(keel_metrics *m, char **ret_text, size_t *ret_size)
{
    buffer b = { .oom = false };
    locale_t saved;

    keel_assert_return(m, -EINVAL);
    keel_assert_return(ret_text, -EINVAL);
    keel_assert_return(ret_size, -EINVAL);

    saved = uselocale(m->c_locale);
    (void) lock(&m->lock);
    (void) buffer_reserve(&b, m->size_hint + m->size_hint / 8);
    if (m->process)
        (void) process_refresh(m->process); /* a reading that failed shows as NaN */
    for (size_t i = 0; i < m->n_families; i++)
        put_family(&b, m->families[i]);
    if (!b.oom)
        m->size_hint = b.len;
    (void) pthread_mutex_unlock(&m->lock);
    (void) uselocale(saved);

    if (b.oom) {
        free(b.data);
        return -ENOMEM;
    }
    *ret_text = b.data;
    *ret_size = b.len;
    return 0;
}
