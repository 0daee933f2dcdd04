/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <keel/metrics.h>

#include "macro-internal.h"
#include "testing.h"

static keel_metrics *m;
/* Criterion's asserts must run on the test's own thread: other threads count what went wrong. */
static atomic_uint thread_errors;

static void setup(void)
{
    m = keel_metrics_new();
    cr_assert_not_null(m);
}

static void teardown(void)
{
    m = keel_metrics_free(m);
}

TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 60);

/* The exposition of @m; the caller frees it. */
static char *format(void)
{
    char *text = NULL;
    size_t size = 0;

    cr_assert_eq(keel_metrics_format(m, &text, &size), 0);
    cr_assert_not_null(text);
    cr_assert_eq(strlen(text), size);
    return text;
}

/* The value of the sample line that begins with @series ("name" or "name{...}"), NaN when there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        if (strneq(line, series, n) && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        if (!strchr(line, '\n'))
            break;
    }
    return NAN;
}

static double double_from(void *userdata)
{
    return *(const double *) userdata;
}

Test(metrics, get_or_create_returns_the_same_series)
{
    keel_counter *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    keel_gauge *g1 = NULL, *g2 = NULL;
    keel_histogram *h1 = NULL, *h2 = NULL;
    const double bounds[] = { 0.1, 1 };

    cr_assert_eq(keel_metrics_counter(m, "req_total", "Requests.", (const char *[]){ "code", "200", "method", "GET", NULL }, &a),
                 0);
    cr_assert_eq(keel_metrics_counter(m, "req_total", "Requests.", (const char *[]){ "code", "200", "method", "GET", NULL }, &b),
                 0);
    cr_assert_eq(a, b);
    /* The same labels in another order name the same series. */
    cr_assert_eq(keel_metrics_counter(m, "req_total", "Requests.", (const char *[]){ "method", "GET", "code", "200", NULL }, &c),
                 0);
    cr_assert_eq(a, c);
    cr_assert_eq(keel_metrics_counter(m, "req_total", "Requests.", (const char *[]){ "code", "500", "method", "GET", NULL }, &d),
                 0);
    cr_assert_not_null(d);
    cr_assert(d != a);

    keel_counter_add(a, 2);
    keel_counter_add(c, 3);
    cr_assert_eq(keel_counter_get(b), 5);
    cr_assert_eq(keel_counter_get(d), 0);

    cr_assert_eq(keel_metrics_gauge(m, "depth", "Depth.", NULL, &g1), 0);
    cr_assert_eq(keel_metrics_gauge(m, "depth", "Depth.", (const char *[]){ NULL }, &g2), 0);
    cr_assert_not_null(g1);
    cr_assert_eq(g1, g2);

    cr_assert_eq(keel_metrics_histogram(m, "lat_seconds", "Latency.", NULL, bounds, 2, &h1), 0);
    cr_assert_eq(keel_metrics_histogram(m, "lat_seconds", "Latency.", NULL, bounds, 2, &h2), 0);
    cr_assert_not_null(h1);
    cr_assert_eq(h1, h2);
}

Test(metrics, label_values_are_copied)
{
    char value[] = "token";
    keel_counter *c;

    cr_assert_eq(keel_metrics_counter(m, "x_total", "X.", (const char *[]){ "service", value, NULL }, &c), 0);
    strcpy(value, "other");
    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, "# HELP x_total X.\n# TYPE x_total counter\nx_total{service=\"token\"} 0\n");
}

Test(metrics, conflicts_are_einval_and_leave_ret_alone)
{
    keel_counter *c = NULL, *sentinel = (keel_counter *) &thread_errors, *r = sentinel;
    keel_gauge *g = (keel_gauge *) &thread_errors;
    keel_histogram *h = NULL, *hr = (keel_histogram *) &thread_errors;
    const double bounds[] = { 1, 2 }, other[] = { 1, 3 };

    cr_assert_eq(keel_metrics_counter(m, "a_total", "A.", (const char *[]){ "x", "1", NULL }, &c), 0);
    /* another type */
    cr_assert_eq(keel_metrics_gauge(m, "a_total", "A.", (const char *[]){ "x", "1", NULL }, &g), -EINVAL);
    cr_assert_eq(g, (keel_gauge *) &thread_errors);
    cr_assert_eq(keel_metrics_histogram(m, "a_total", "A.", (const char *[]){ "x", "1", NULL }, bounds, 2, &hr), -EINVAL);
    /* another help */
    cr_assert_eq(keel_metrics_counter(m, "a_total", "B.", (const char *[]){ "x", "1", NULL }, &r), -EINVAL);
    /* another label set: fewer, more, renamed */
    cr_assert_eq(keel_metrics_counter(m, "a_total", "A.", NULL, &r), -EINVAL);
    cr_assert_eq(keel_metrics_counter(m, "a_total", "A.", (const char *[]){ "x", "1", "y", "2", NULL }, &r), -EINVAL);
    cr_assert_eq(keel_metrics_counter(m, "a_total", "A.", (const char *[]){ "y", "1", NULL }, &r), -EINVAL);
    cr_assert_eq(r, sentinel);

    /* a histogram's bounds are part of its family */
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, bounds, 2, &h), 0);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, other, 2, &hr), -EINVAL);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, bounds, 1, &hr), -EINVAL);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, NULL, 0, &hr), -EINVAL);
    cr_assert_eq(hr, (keel_histogram *) &thread_errors);

    /* A failed registration left nothing behind. */
    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 0\n"
                           "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
                           "h_seconds_bucket{le=\"1\"} 0\nh_seconds_bucket{le=\"2\"} 0\nh_seconds_bucket{le=\"+Inf\"} 0\n"
                           "h_seconds_sum 0\nh_seconds_count 0\n");
}

Test(metrics, histogram_sample_names_collide)
{
    keel_histogram *h;
    keel_counter *c;
    keel_gauge *g;
    const double bounds[] = { 1 };

    cr_assert_eq(keel_metrics_histogram(m, "rpc_seconds", "R.", NULL, bounds, 1, &h), 0);
    cr_assert_eq(keel_metrics_counter(m, "rpc_seconds_count", "C.", NULL, &c), -EINVAL);
    cr_assert_eq(keel_metrics_gauge(m, "rpc_seconds_sum", "S.", NULL, &g), -EINVAL);
    cr_assert_eq(keel_metrics_histogram(m, "rpc_seconds_bucket", "B.", NULL, bounds, 1, &h), -EINVAL);
    /* and the other way round */
    cr_assert_eq(keel_metrics_gauge(m, "size_bytes_sum", "S.", NULL, &g), 0);
    cr_assert_eq(keel_metrics_histogram(m, "size_bytes", "B.", NULL, bounds, 1, &h), -EINVAL);
    /* a name that merely ends like one is fine */
    cr_assert_eq(keel_metrics_gauge(m, "rpc_seconds_summary", "S.", NULL, &g), 0);
    cr_assert_eq(keel_metrics_counter(m, "rpc_count", "C.", NULL, &c), 0);
}

Test(metrics, bad_arguments_are_einval)
{
    keel_counter *c = NULL;
    keel_gauge *g = NULL;
    keel_histogram *h = NULL;
    const double bounds[] = { 1, 2 };

    cr_assert_eq(keel_metrics_counter(NULL, "a_total", "A.", NULL, &c), -EINVAL);
    cr_assert_eq(keel_metrics_counter(m, NULL, "A.", NULL, &c), -EINVAL);
    cr_assert_eq(keel_metrics_counter(m, "a_total", NULL, NULL, &c), -EINVAL);
    cr_assert_eq(keel_metrics_counter(m, "a_total", "A.", NULL, NULL), -EINVAL);
    cr_assert_eq(keel_metrics_gauge_fn(m, "f", "F.", NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(keel_metrics_counter_fn(m, "f_total", "F.", NULL, NULL, NULL), -EINVAL);

    /* metric names */
    static const char *const bad_names[] = { "", "1abc", "a-b", "a b", "__reserved", "é", "a.b", "a{b}" };
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        cr_assert_eq(keel_metrics_counter(m, bad_names[i], "A.", NULL, &c), -EINVAL, "%s", bad_names[i]);
    cr_assert_eq(keel_metrics_gauge(m, "a:b_c9:", "Colons are fine in metric names.", NULL, &g), 0);
    cr_assert_eq(keel_metrics_gauge(m, "_x", "So is a single leading underscore.", NULL, &g), 0);

    /* label names */
    static const char *const bad_labels[] = { "", "1a", "a-b", "a:b", "__name__", "__x" };
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++)
        cr_assert_eq(keel_metrics_counter(m, "l_total", "L.", (const char *[]){ bad_labels[i], "v", NULL }, &c), -EINVAL, "%s",
                     bad_labels[i]);
    /* a label without a value, twice the same label */
    cr_assert_eq(keel_metrics_counter(m, "l_total", "L.", (const char *[]){ "a", NULL }, &c), -EINVAL);
    cr_assert_eq(keel_metrics_counter(m, "l_total", "L.", (const char *[]){ "a", "1", "b", NULL }, &c), -EINVAL);
    cr_assert_eq(keel_metrics_counter(m, "l_total", "L.", (const char *[]){ "a", "1", "a", "2", NULL }, &c), -EINVAL);
    /* "le" is the histograms' own */
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", (const char *[]){ "le", "1", NULL }, bounds, 2, &h), -EINVAL);
    cr_assert_eq(keel_metrics_counter(m, "le_total", "Fine outside histograms.", (const char *[]){ "le", "1", NULL }, &c), 0);
    cr_assert_eq(keel_metrics_counter(m, "q_total", "Q.", (const char *[]){ "quantile", "0.5", NULL }, &c), 0);

    /* UTF-8: fine when valid, whatever it spells; not when invalid */
    cr_assert_eq(keel_metrics_counter(m, "u_total", "Ünïcode ✓.", (const char *[]){ "v", "naïve 🚀", NULL }, &c), 0);
    static const char *const bad_utf8[] = { "\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82" };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        cr_assert_eq(keel_metrics_counter(m, "u_total", "Ünïcode ✓.", (const char *[]){ "v", bad_utf8[i], NULL }, &c), -EINVAL);
        cr_assert_eq(keel_metrics_counter(m, "w_total", bad_utf8[i], NULL, &c), -EINVAL);
    }

    /* too many labels */
    const char *many[2 * KEEL_METRICS_LABELS_MAX + 3];
    char names[KEEL_METRICS_LABELS_MAX + 1][8];
    for (size_t i = 0; i <= KEEL_METRICS_LABELS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "l%zu", i);
        many[2 * i] = names[i];
        many[2 * i + 1] = "v";
    }
    many[2 * KEEL_METRICS_LABELS_MAX + 2] = NULL;
    cr_assert_eq(keel_metrics_counter(m, "many_total", "M.", many, &c), -E2BIG);
    many[2 * KEEL_METRICS_LABELS_MAX] = NULL;
    cr_assert_eq(keel_metrics_counter(m, "many_total", "M.", many, &c), 0);

    /* bounds: strictly increasing and finite */
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, (const double[]){ 1, 1 }, 2, &h), -EINVAL);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, (const double[]){ 2, 1 }, 2, &h), -EINVAL);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, (const double[]){ 1, NAN }, 2, &h), -EINVAL);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, (const double[]){ 1, INFINITY }, 2, &h), -EINVAL);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, (const double[]){ -INFINITY, 1 }, 2, &h), -EINVAL);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, NULL, 2, &h), -EINVAL);
    static double lots[KEEL_METRICS_BOUNDS_MAX + 1];
    for (size_t i = 0; i < KEEL_METRICS_BOUNDS_MAX + 1; i++)
        lots[i] = (double) i;
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, lots, KEEL_METRICS_BOUNDS_MAX + 1, &h), -E2BIG);
    cr_assert_null(h);
    cr_assert_eq(keel_metrics_histogram(m, "h_seconds", "H.", NULL, lots, KEEL_METRICS_BOUNDS_MAX, &h), 0);
    cr_assert_not_null(h);
}

Test(metrics, value_functions)
{
    double v = 4;
    keel_gauge *g = NULL;
    keel_counter *c = NULL;

    cr_assert_eq(
        keel_metrics_gauge_fn(m, "work_in_flight", "In flight.", (const char *[]){ "component", "token", NULL }, double_from, &v),
        0);
    /* A second function for the same series, or a handle to it, is refused. */
    cr_assert_eq(
        keel_metrics_gauge_fn(m, "work_in_flight", "In flight.", (const char *[]){ "component", "token", NULL }, double_from, &v),
        -EEXIST);
    cr_assert_eq(keel_metrics_gauge(m, "work_in_flight", "In flight.", (const char *[]){ "component", "token", NULL }, &g),
                 -EINVAL);
    cr_assert_null(g);
    /* The family may mix them. */
    cr_assert_eq(keel_metrics_gauge(m, "work_in_flight", "In flight.", (const char *[]){ "component", "cert", NULL }, &g), 0);
    cr_assert_eq(
        keel_metrics_gauge_fn(m, "work_in_flight", "In flight.", (const char *[]){ "component", "cert", NULL }, double_from, &v),
        -EEXIST);
    keel_gauge_set(g, 1);
    cr_assert_eq(keel_metrics_counter_fn(m, "work_started_total", "Started.", NULL, double_from, &v), 0);
    cr_assert_eq(keel_metrics_counter(m, "work_started_total", "Started.", NULL, &c), -EINVAL);
    cr_assert_eq(keel_metrics_gauge_fn(m, "work_started_total", "Started.", NULL, double_from, &v), -EINVAL);

    _cleanup_free_ char *t1 = format();
    v = 0.25;
    _cleanup_free_ char *t2 = format();
    cr_assert_str_eq(t1, "# HELP work_in_flight In flight.\n# TYPE work_in_flight gauge\n"
                         "work_in_flight{component=\"token\"} 4\nwork_in_flight{component=\"cert\"} 1\n"
                         "# HELP work_started_total Started.\n# TYPE work_started_total counter\nwork_started_total 4\n");
    cr_assert_str_eq(t2, "# HELP work_in_flight In flight.\n# TYPE work_in_flight gauge\n"
                         "work_in_flight{component=\"token\"} 0.25\nwork_in_flight{component=\"cert\"} 1\n"
                         "# HELP work_started_total Started.\n# TYPE work_started_total counter\nwork_started_total 0.25\n");
}

Test(metrics, hot_path_is_null_safe)
{
    keel_counter_add(NULL, 1);
    keel_gauge_set(NULL, 1);
    keel_gauge_add(NULL, 1);
    keel_histogram_observe(NULL, 1);
    cr_assert_eq(keel_counter_get(NULL), 0);
    cr_assert(keel_gauge_get(NULL) == 0);
    cr_assert_null(keel_metrics_free(NULL));
}

Test(metrics, gauge_and_counter_values)
{
    keel_counter *c;
    keel_gauge *g;

    cr_assert_eq(keel_metrics_counter(m, "c_total", "C.", NULL, &c), 0);
    cr_assert_eq(keel_metrics_gauge(m, "g", "G.", NULL, &g), 0);
    keel_counter_add(c, UINT64_MAX - 1);
    keel_counter_add(c, 1);
    cr_assert_eq(keel_counter_get(c), UINT64_MAX);
    keel_gauge_set(g, 10);
    keel_gauge_add(g, -2.5);
    keel_gauge_add(g, 0.25);
    cr_assert(keel_gauge_get(g) == 7.75);

    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, "# HELP c_total C.\n# TYPE c_total counter\nc_total 18446744073709551615\n"
                           "# HELP g G.\n# TYPE g gauge\ng 7.75\n");
}

Test(metrics, empty_registry_and_format_arguments)
{
    char *text = (char *) "untouched";
    size_t size = 42;

    cr_assert_eq(keel_metrics_format(NULL, &text, &size), -EINVAL);
    cr_assert_eq(keel_metrics_format(m, NULL, &size), -EINVAL);
    cr_assert_eq(keel_metrics_format(m, &text, NULL), -EINVAL);
    cr_assert_str_eq(text, "untouched");
    cr_assert_eq(size, 42);

    cr_assert_eq(keel_metrics_format(m, &text, &size), 0);
    cr_assert_str_eq(text, "");
    cr_assert_eq(size, 0);
    free(text);
}

/* The small registry the exact-text and promtool tests share: registered out of order. */
static double in_flight = 2.5;

static void small_registry(void)
{
    keel_counter *get, *post;
    keel_gauge *depth;
    keel_histogram *h;
    const double bounds[] = { 0.005, 0.1, 1 };

    cr_assert_eq(keel_metrics_histogram(m, "request_duration_seconds", "Time to answer a request.",
                                        (const char *[]){ "service", "token", NULL }, bounds, 3, &h),
                 0);
    cr_assert_eq(keel_metrics_gauge(m, "queue_depth", "Items waiting.", NULL, &depth), 0);
    cr_assert_eq(keel_metrics_counter(m, "http_requests_total", "Requests served.\nBy method and path: \\ and \"quotes\".",
                                      (const char *[]){ "method", "GET", "path", "/a\"b\\c\nd", NULL }, &get),
                 0);
    cr_assert_eq(keel_metrics_counter(m, "http_requests_total", "Requests served.\nBy method and path: \\ and \"quotes\".",
                                      (const char *[]){ "path", "/", "method", "POST", NULL }, &post),
                 0);
    cr_assert_eq(keel_metrics_gauge_fn(m, "keel_work_in_flight", "Work in flight.", (const char *[]){ "component", "token", NULL },
                                       double_from, &in_flight),
                 0);

    keel_counter_add(get, 3);
    keel_gauge_set(depth, 7);
    /* Exact binary fractions, so the sum is exact: 2.56640625. */
    keel_histogram_observe(h, 0.00390625);
    keel_histogram_observe(h, 0.0625);
    keel_histogram_observe(h, 0.5);
    keel_histogram_observe(h, 2);
}

static const char small_registry_text[] = "# HELP http_requests_total Requests served.\\nBy method and path: \\\\ and \"quotes\".\n"
                                          "# TYPE http_requests_total counter\n"
                                          "http_requests_total{method=\"GET\",path=\"/a\\\"b\\\\c\\nd\"} 3\n"
                                          "http_requests_total{method=\"POST\",path=\"/\"} 0\n"
                                          "# HELP keel_work_in_flight Work in flight.\n"
                                          "# TYPE keel_work_in_flight gauge\n"
                                          "keel_work_in_flight{component=\"token\"} 2.5\n"
                                          "# HELP queue_depth Items waiting.\n"
                                          "# TYPE queue_depth gauge\n"
                                          "queue_depth 7\n"
                                          "# HELP request_duration_seconds Time to answer a request.\n"
                                          "# TYPE request_duration_seconds histogram\n"
                                          "request_duration_seconds_bucket{service=\"token\",le=\"0.005\"} 1\n"
                                          "request_duration_seconds_bucket{service=\"token\",le=\"0.1\"} 2\n"
                                          "request_duration_seconds_bucket{service=\"token\",le=\"1\"} 3\n"
                                          "request_duration_seconds_bucket{service=\"token\",le=\"+Inf\"} 4\n"
                                          "request_duration_seconds_sum{service=\"token\"} 2.56640625\n"
                                          "request_duration_seconds_count{service=\"token\"} 4\n";

Test(metrics, exposition_text_is_exact_and_sorted)
{
    small_registry();
    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, small_registry_text);
    /* Formatting changes nothing: the same text again. */
    _cleanup_free_ char *again = format();
    cr_assert_str_eq(again, small_registry_text);
}

Test(metrics, histogram_buckets)
{
    keel_histogram *h, *none;
    const double bounds[] = { -1, 0, 1 };

    cr_assert_eq(keel_metrics_histogram(m, "h", "H.", NULL, bounds, 3, &h), 0);
    cr_assert_eq(keel_metrics_histogram(m, "only_inf", "No bounds at all.", NULL, NULL, 0, &none), 0);
    /* A value equal to a bound is in that bound's bucket (le: less or equal). */
    keel_histogram_observe(h, -1);
    keel_histogram_observe(h, -0.5);
    keel_histogram_observe(h, 0);
    keel_histogram_observe(h, 1);
    keel_histogram_observe(h, 1.5);
    keel_histogram_observe(h, -INFINITY);
    keel_histogram_observe(h, INFINITY);
    keel_histogram_observe(none, 3);

    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, "# HELP h H.\n# TYPE h histogram\n"
                           "h_bucket{le=\"-1\"} 2\nh_bucket{le=\"0\"} 4\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 7\n"
                           "h_sum NaN\nh_count 7\n"
                           "# HELP only_inf No bounds at all.\n# TYPE only_inf histogram\n"
                           "only_inf_bucket{le=\"+Inf\"} 1\nonly_inf_sum 3\nonly_inf_count 1\n");
}

Test(metrics, nan_observation_counts_in_inf)
{
    keel_histogram *h;
    const double bounds[] = { 1 };

    cr_assert_eq(keel_metrics_histogram(m, "h", "H.", NULL, bounds, 1, &h), 0);
    keel_histogram_observe(h, NAN);
    keel_histogram_observe(h, 0.5);
    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text,
                     "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum NaN\nh_count 2\n");
}

static const struct {
    double v;
    const char *text;
} floats[] = {
    { 0.5, "0.5" },
    { 1e-9, "1e-09" },
    { 0.1, "0.1" },
    { -2.5, "-2.5" },
    { 1.0 / 3, "0.3333333333333333" },
    { 0, "0" },
    { -0.0, "0" },
    { 42, "42" },
    { -7, "-7" },
    { 1048576, "1048576" },
    { 123456789012, "123456789012" },
    { 9007199254740991.0, "9007199254740991" },         /* 2^53 - 1: the largest integer printed as digits */
    { 9007199254740992.0, "9007199254740992" },         /* past it, the shortest form: here the digits too */
    { 1152921504606846976.0, "1.152921504606847e+18" }, /* 2^60 */
    { 1e20, "1e+20" },
    { 1.7976931348623157e308, "1.7976931348623157e+308" },
    { 5e-324, "5e-324" },
    { 1704067200.5, "1704067200.5" },
    { INFINITY, "+Inf" },
    { -INFINITY, "-Inf" },
    { NAN, "NaN" },
};

Test(metrics, floats_print_as_prometheus_reads_them)
{
    char expected[4096] = "# HELP f Floats.\n# TYPE f gauge\n", label[16];

    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        keel_gauge *g;
        snprintf(label, sizeof label, "%02zu", i);
        cr_assert_eq(keel_metrics_gauge(m, "f", "Floats.", (const char *[]){ "i", label, NULL }, &g), 0);
        keel_gauge_set(g, floats[i].v);
        snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "f{i=\"%s\"} %s\n", label, floats[i].text);
        /* and every one reads back to the same double */
        if (!isnan(floats[i].v))
            cr_assert(strtod(floats[i].text, NULL) == floats[i].v || floats[i].v == 0, "%s", floats[i].text);
    }
    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, expected);
}

Test(metrics, bounds_print_like_values)
{
    keel_histogram *h;
    const double bounds[] = { 1e-9, 0.25, 1e20 };

    cr_assert_eq(keel_metrics_histogram(m, "b", "B.", (const char *[]){ "x", "y", NULL }, bounds, 3, &h), 0);
    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, "# HELP b B.\n# TYPE b histogram\n"
                           "b_bucket{x=\"y\",le=\"1e-09\"} 0\nb_bucket{x=\"y\",le=\"0.25\"} 0\nb_bucket{x=\"y\",le=\"1e+20\"} 0\n"
                           "b_bucket{x=\"y\",le=\"+Inf\"} 0\nb_sum{x=\"y\"} 0\nb_count{x=\"y\"} 0\n");
}

/* ---- Concurrency ---- */

#define THREADS    4
#define ITERATIONS 100000

typedef struct worker {
    keel_counter *c;
    keel_gauge *g;
    keel_histogram *h;
    pthread_barrier_t *start;
} worker;

static void *work(void *arg)
{
    static const double values[] = { 0.25, 1, 3, 100 };
    worker *w = arg;

    (void) pthread_barrier_wait(w->start);
    for (unsigned i = 0; i < ITERATIONS; i++) {
        keel_counter_add(w->c, 1);
        keel_gauge_add(w->g, 1);
        keel_histogram_observe(w->h, values[i % 4]);
    }
    return NULL;
}

Test(metrics, concurrent_updates_give_exact_totals)
{
    pthread_t threads[THREADS];
    pthread_barrier_t start;
    worker w = { .start = &start };
    const double bounds[] = { 0.5, 2, 10 };
    char expected[1024];
    unsigned scrapes = 0;

    cr_assert_eq(keel_metrics_counter(m, "ops_total", "Operations.", NULL, &w.c), 0);
    cr_assert_eq(keel_metrics_gauge(m, "level", "Level.", NULL, &w.g), 0);
    cr_assert_eq(keel_metrics_histogram(m, "size", "Sizes.", NULL, bounds, 3, &w.h), 0);
    cr_assert_eq(pthread_barrier_init(&start, NULL, THREADS + 1), 0);
    for (size_t i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, work, &w), 0);
    (void) pthread_barrier_wait(&start);

    /* Scrape while they count: the formatter reads what the hot path writes. */
    while (keel_counter_get(w.c) < (uint64_t) THREADS * ITERATIONS) {
        _cleanup_free_ char *text = format();
        double inf = sample(text, "size_bucket{le=\"+Inf\"}"), count = sample(text, "size_count");
        if (!(inf == count))
            atomic_fetch_add(&thread_errors, 1);
        scrapes++;
    }
    for (size_t i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&start);
    cr_assert_eq(atomic_load(&thread_errors), 0);
    cr_assert_geq(scrapes, 1);

    const unsigned n = THREADS * ITERATIONS, q = n / 4;
    cr_assert_eq(keel_counter_get(w.c), n);
    cr_assert(keel_gauge_get(w.g) == n);
    snprintf(expected, sizeof expected,
             "# HELP level Level.\n# TYPE level gauge\nlevel %u\n"
             "# HELP ops_total Operations.\n# TYPE ops_total counter\nops_total %u\n"
             "# HELP size Sizes.\n# TYPE size histogram\n"
             "size_bucket{le=\"0.5\"} %u\nsize_bucket{le=\"2\"} %u\nsize_bucket{le=\"10\"} %u\nsize_bucket{le=\"+Inf\"} %u\n"
             "size_sum %u\nsize_count %u\n",
             n, n, q, 2 * q, 3 * q, n, (unsigned) (q * 104.25), n);
    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, expected);
}

/* Registration from several threads at once: one series per name and labels, whoever gets there first. */
static void *register_many(void *arg)
{
    keel_counter **out = arg;
    char value[16];

    for (unsigned i = 0; i < 100; i++) {
        snprintf(value, sizeof value, "%u", i);
        if (keel_metrics_counter(m, "reg_total", "Registered.", (const char *[]){ "i", value, NULL }, &out[i]) < 0)
            atomic_fetch_add(&thread_errors, 1);
        keel_counter_add(out[i], 1);
    }
    return NULL;
}

Test(metrics, concurrent_registration)
{
    static keel_counter *got[THREADS][100];
    pthread_t threads[THREADS];

    for (size_t i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, register_many, got[i]), 0);
    for (size_t i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_join(threads[i], NULL), 0);
    cr_assert_eq(atomic_load(&thread_errors), 0);
    for (size_t i = 0; i < 100; i++) {
        for (size_t t = 1; t < THREADS; t++)
            cr_assert_eq(got[t][i], got[0][i]);
        cr_assert_eq(keel_counter_get(got[0][i]), THREADS);
    }
}

/* ---- The process collector ---- */

static int block_fd = -EBADF;

static void *blocked(void *arg)
{
    char c;
    (void) arg;
    while (read(block_fd, &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static double cpu_time(void)
{
    struct timespec ts;
    (void) clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* The process's start as /proc/stat's btime and /proc/self/stat's starttime date it. */
static double start_from_btime(void)
{
    unsigned long long btime = 0, ticks = 0;
    char line[4096];
    FILE *f = fopen("/proc/stat", "re");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    f = fopen("/proc/self/stat", "re");
    cr_assert_not_null(f);
    cr_assert(fgets(line, sizeof line, f));
    fclose(f);
    const char *s = strrchr(line, ')');
    cr_assert_not_null(s);
    /* starttime is field 22; fields 3 and on follow the last ')'. */
    cr_assert_eq(sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &ticks), 1);
    return (double) btime + (double) ticks / (double) sysconf(_SC_CLK_TCK);
}

Test(metrics, process_collector_values_are_sane)
{
    struct rlimit rl;
    int fds[10], p[2];
    pthread_t t;

    cr_assert_eq(keel_metrics_add_process_collector(m), 0);
    cr_assert_eq(keel_metrics_add_process_collector(m), -EEXIST);
    cr_assert_eq(keel_metrics_add_process_collector(NULL), -EINVAL);

    /* Burn some CPU, so the counter has something to show at clock-tick resolution. */
    double cpu0 = cpu_time();
    while (cpu_time() - cpu0 < 0.05)
        ;

    _cleanup_free_ char *text = format();
    struct timespec now;
    cr_assert_eq(clock_gettime(CLOCK_REALTIME, &now), 0);

    double rss = sample(text, "process_resident_memory_bytes"), vsize = sample(text, "process_virtual_memory_bytes");
    cr_assert(rss > 0, "rss %g", rss);
    cr_assert(vsize >= rss, "vsize %g rss %g", vsize, rss);
    cr_assert_geq(sample(text, "process_threads"), 1);
    /* Criterion started this process for this test, moments ago; /proc/stat's btime (whole
     * seconds), which the collector does without, dates it the same to within a second. */
    double start = sample(text, "process_start_time_seconds");
    cr_assert(start > (double) now.tv_sec - 60 && start <= (double) now.tv_sec + 1.0, "start %f now %ld", start, (long) now.tv_sec);
    cr_assert(fabs(start - start_from_btime()) <= 1.0, "start %f, from btime %f", start, start_from_btime());
    double cpu = sample(text, "process_cpu_seconds_total");
    cr_assert(cpu >= 0.03 && cpu <= cpu_time() + 0.02, "cpu %f", cpu);
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_assert(sample(text, "process_max_fds") == (double) rl.rlim_cur);
    double open_fds = sample(text, "process_open_fds");
    cr_assert(open_fds >= 1 && open_fds <= (double) rl.rlim_cur);

    /* Read at exposition time: ten more descriptors, one more thread, a lower limit. */
    for (size_t i = 0; i < 10; i++)
        cr_assert_geq(fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    block_fd = p[0];
    cr_assert_eq(pthread_create(&t, NULL, blocked, NULL), 0);
    rl.rlim_cur = 512;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);

    _cleanup_free_ char *later = format();
    cr_assert(sample(later, "process_open_fds") == open_fds + 12, "%g then %g", open_fds, sample(later, "process_open_fds"));
    /* At least one more: a sanitizer's runtime may start its own helper thread with ours. */
    cr_assert_geq(sample(later, "process_threads"), sample(text, "process_threads") + 1);
    cr_assert(sample(later, "process_max_fds") == 512);
    cr_assert(sample(later, "process_start_time_seconds") == start);

    close(p[1]);
    cr_assert_eq(pthread_join(t, NULL), 0);
    close(p[0]);
    for (size_t i = 0; i < 10; i++)
        close(fds[i]);
}

Test(metrics, process_collector_names_taken)
{
    keel_gauge *g;

    cr_assert_eq(keel_metrics_gauge(m, "process_threads", "Mine.", NULL, &g), 0);
    cr_assert_eq(keel_metrics_add_process_collector(m), -EINVAL);
    /* All or nothing: no process_* family but the one that was there. */
    _cleanup_free_ char *text = format();
    cr_assert_str_eq(text, "# HELP process_threads Mine.\n# TYPE process_threads gauge\nprocess_threads 0\n");
}

/* ---- promtool ---- */

Test(metrics, promtool_accepts_the_exposition)
{
    char path[] = "/tmp/test-metrics-XXXXXX", cmd[128];
    keel_gauge *g;

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
#ifdef STANDALONE
        fprintf(stderr, "promtool is not installed (Debian package prometheus): skipping\n");
        return;
#else
        cr_skip_test("promtool is not installed (Debian package prometheus)");
#endif
    }

    small_registry();
    cr_assert_eq(keel_metrics_add_process_collector(m), 0);
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        char label[16];
        snprintf(label, sizeof label, "%02zu", i);
        cr_assert_eq(keel_metrics_gauge(m, "test_value", "Floats.", (const char *[]){ "case", label, NULL }, &g), 0);
        keel_gauge_set(g, floats[i].v);
    }
    _cleanup_free_ char *text = format();

    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    cr_assert_eq(close(fd), 0);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int status = system(cmd);
    (void) unlink(path);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "promtool check metrics failed (%d) on:\n%s", status, text);
}
