/* SPDX-License-Identifier: MIT */
/* Registration: names, labels and bounds checked, families found or made, series handed out. */
#include <math.h>
#include <stdlib.h>

#include <keel/strbuf.h>

#include "metrics-internal.h"

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

static int labels_parse(const char *const *labels, bool histogram, label_set *ret)
{
    label_set ls = { .n = 0 };

    for (size_t i = 0; labels && labels[i]; i += 2) {
        const char *name = labels[i], *value = labels[i + 1];

        if (!value)
            return -EINVAL;
        if (ls.n >= KEEL_METRICS_LABELS_MAX)
            return -E2BIG;
        if (!name_valid(name, false) || (histogram && streq(name, "le")) || !keel_utf8_valid(value))
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

family *keel__family_find(const keel_metrics *m, const char *name, size_t len)
{
    bool found;
    size_t i = family_search(m, name, len, &found);
    return found ? m->families[i] : NULL;
}

void keel__family_unlink(keel_metrics *m, const char *name)
{
    bool found;
    size_t i = family_search(m, name, strlen(name), &found);

    if (!found)
        return;
    keel__family_free(m->families[i]);
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

        if (len > n && streq(name + len - n, suffixes[i]) && (f = keel__family_find(m, name, len - n)) &&
            f->type == METRIC_HISTOGRAM)
            return -EINVAL;
        if (type == METRIC_HISTOGRAM) {
            _cleanup_free_ char *s = keel_strdup_printf("%s%s", name, suffixes[i]);
            if (!s)
                return -ENOMEM;
            if (keel__family_find(m, s, strlen(s)))
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
int keel__register_locked(keel_metrics *m, const metric_spec *spec, const label_set *labels, series **ret)
{
    _cleanup_(keel__family_freep) family *new_family = NULL;
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
        r = keel__family_new(spec, labels, m->c_locale, &new_family);
        if (r < 0)
            return r;
        f = new_family;
        for (size_t i = 0; i < labels->n; i++)
            values[i] = labels->values[i];
        r = keel__grow(&m->families, &m->n_allocated, m->n_families + 1, sizeof(family *));
        if (r < 0)
            return r;
    }

    r = keel__grow(&f->series, &f->n_allocated, f->n_series + 1, sizeof(series *));
    if (r < 0)
        return r;
    r = keel__series_new(f, values, spec, &s);
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
    keel_assert_return(spec->help && keel_utf8_valid(spec->help), -EINVAL);

    r = labels_parse(labels, spec->type == METRIC_HISTOGRAM, &ls);
    if (r < 0)
        return r;
    r = bounds_check(spec->bounds, spec->n_bounds);
    if (r < 0)
        return r;

    locked = lock(&m->lock);
    return keel__register_locked(m, spec, &ls, ret);
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