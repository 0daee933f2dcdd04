/* SPDX-License-Identifier: MIT */
/* The exposition: the registry in Prometheus' text format 0.0.4. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics-internal.h"

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
    keel__metrics_format_double(bits_to_double(atomic_load_explicit(&s->value, memory_order_relaxed)), value);
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
            keel__metrics_format_double(s->fn(s->userdata), value);
        else if (f->type == METRIC_COUNTER)
            (void) snprintf(value, sizeof value, "%" PRIu64, atomic_load_explicit(&s->value, memory_order_relaxed));
        else if (f->type == METRIC_GAUGE)
            keel__metrics_format_double(bits_to_double(atomic_load_explicit(&s->value, memory_order_relaxed)), value);
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
        (void) keel__metrics_process_refresh(m->process); /* a reading that failed shows as NaN */
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
