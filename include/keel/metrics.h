/* SPDX-License-Identifier: MIT */
#pragma once

#include <keel/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A registry of metrics, written out in Prometheus' text exposition format 0.0.4. The app owns one.
 * Registration and formatting take the registry's mutex; updating a series never does.
 */
typedef struct keel_metrics keel_metrics;
/** One counter series: a member of a counter family with fixed label values. Owned by its registry. */
typedef struct keel_counter keel_counter;
/** One gauge series. Owned by its registry. */
typedef struct keel_gauge keel_gauge;
/** One histogram series: its buckets, sum and count. Owned by its registry. */
typedef struct keel_histogram keel_histogram;

/**
 * Reads the value of a series registered with keel_metrics_gauge_fn() or keel_metrics_counter_fn().
 * Called by keel_metrics_format() on the formatting thread, with the registry's mutex held: it must
 * not register series in, or format, the same registry.
 */
typedef double (*keel_metrics_value_handler_t)(void *userdata);

/** The Content-Type of the text keel_metrics_format() writes. */
#define KEEL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/** The most labels a family may have. */
#define KEEL_METRICS_LABELS_MAX 16
/** The most bucket bounds a histogram may have (the implicit "+Inf" bucket not counted). */
#define KEEL_METRICS_BOUNDS_MAX 1024

/** Creates an empty registry. Returns NULL when out of memory. */
KEEL_API keel_metrics *keel_metrics_new(void);
/**
 * Frees @m and every series it handed out; accepts NULL; returns NULL. No other thread may use
 * the registry or one of its series any more.
 */
KEEL_API keel_metrics *keel_metrics_free(keel_metrics *m);

/**
 * Gets or creates the counter series @name{@labels}. The first call for @name creates its family
 * with @help, the type and the set of label names; a later call must repeat all three, or it
 * fails with -EINVAL. Series are identified by their label values, in whatever order the pairs
 * come, so the same labels return the same pointer.
 *
 * @labels is a NULL-terminated array of name, value pairs, or NULL for none; the strings are
 * copied. A metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*, a label name [a-zA-Z_][a-zA-Z0-9_]*;
 * neither may begin with "__" (reserved by Prometheus). Label values and @help are UTF-8 (empty is
 * fine). By Prometheus' conventions a counter's name ends in "_total" and carries its unit
 * ("_seconds_total", "_bytes_total"); that is not enforced.
 *
 * Returns 0 and sets @ret, or: -EINVAL for a NULL argument, an invalid name or label name, a
 * duplicate label name, a label without a value, a value or help that is not UTF-8, a name
 * taken by a family of another type, help or label set, a name that collides with a histogram's
 * series (x_bucket, x_sum, x_count of histogram x, or the other way round), or a series that
 * exists and reads its value from a function (keel_metrics_gauge_fn()); -E2BIG for more than
 * KEEL_METRICS_LABELS_MAX labels; -ENOMEM. @ret is written only on success; a failed call
 * registers nothing. The series stays valid until keel_metrics_free(). Thread-safe (it takes the
 * registry's mutex); meant for set-up, not for the hot path.
 */
KEEL_API int keel_metrics_counter(keel_metrics *m, const char *name, const char *help, const char *const *labels,
                                  keel_counter **ret);
/** Gets or creates the gauge series @name{@labels}; otherwise exactly as keel_metrics_counter(). */
KEEL_API int keel_metrics_gauge(keel_metrics *m, const char *name, const char *help, const char *const *labels, keel_gauge **ret);
/**
 * Gets or creates the histogram series @name{@labels}, with the @n_bounds finite, strictly
 * increasing upper bounds @bounds (@bounds may be NULL when @n_bounds is 0); the "+Inf" bucket is
 * implicit. The family's bounds are part of its definition: a later call with other bounds fails
 * with -EINVAL, as does the label name "le"; more than KEEL_METRICS_BOUNDS_MAX bounds fail with
 * -E2BIG. Otherwise exactly as keel_metrics_counter().
 */
KEEL_API int keel_metrics_histogram(keel_metrics *m, const char *name, const char *help, const char *const *labels,
                                    const double *bounds, size_t n_bounds, keel_histogram **ret);

/**
 * Registers the gauge series @name{@labels} whose value keel_metrics_format() reads by calling
 * @fn(@userdata); @userdata must stay valid for as long as the registry may be formatted. A family
 * may mix such series with ordinary ones. Returns -EEXIST when the series already exists (with a
 * function or not), -EINVAL for a NULL @fn, and otherwise the errors of keel_metrics_counter().
 */
KEEL_API int keel_metrics_gauge_fn(keel_metrics *m, const char *name, const char *help, const char *const *labels,
                                   keel_metrics_value_handler_t fn, void *userdata);
/** Registers a counter series whose value is read from @fn; exactly as keel_metrics_gauge_fn(). */
KEEL_API int keel_metrics_counter_fn(keel_metrics *m, const char *name, const char *help, const char *const *labels,
                                     keel_metrics_value_handler_t fn, void *userdata);

/**
 * Adds @n to a counter. Lock-free and wait-free: one relaxed atomic add, no allocation, callable
 * from any thread (also from a signal handler). Wraps at 2^64. Does nothing when @c is NULL.
 */
KEEL_API void keel_counter_add(keel_counter *c, uint64_t n);
/** A counter's current value; 0 when @c is NULL. */
KEEL_API uint64_t keel_counter_get(const keel_counter *c);

/** Sets a gauge: one atomic store. Callable from any thread. Does nothing when @g is NULL. */
KEEL_API void keel_gauge_set(keel_gauge *g, double v);
/**
 * Adds @v (negative to subtract) to a gauge: lock-free, a compare-and-swap loop that retries
 * only when another thread changed the gauge meanwhile. Does nothing when @g is NULL.
 */
KEEL_API void keel_gauge_add(keel_gauge *g, double v);
/** A gauge's current value; 0 when @g is NULL. */
KEEL_API double keel_gauge_get(const keel_gauge *g);

/**
 * Records one observation: the smallest bucket whose bound is >= @v counts it (NaN and values
 * above the last bound go to "+Inf"), and @v is added to the sum. Lock-free, no allocation,
 * callable from any thread: one atomic add and a compare-and-swap loop. The count is the sum of
 * the buckets, so "+Inf" and _count always agree; _sum, read at the same moment, may miss an
 * observation that is being recorded. Does nothing when @h is NULL.
 */
KEEL_API void keel_histogram_observe(keel_histogram *h, double v);

/**
 * Writes the whole registry in the text exposition format 0.0.4 (KEEL_METRICS_CONTENT_TYPE) to a
 * new NUL-terminated buffer: families sorted by name (bytewise), each with its "# HELP" and
 * "# TYPE" lines, then its series in the order they were created. Values are printed as integers
 * where they are integers below 2^53, otherwise in the shortest form that reads back to the same
 * double, and as "+Inf", "-Inf" and "NaN". Histogram buckets are cumulative, with le="+Inf"
 * last, followed by _sum and _count. Calls the value functions, and refreshes the process
 * collector's readings, while holding the registry's mutex.
 *
 * Returns 0 and sets @ret_text (free() it) and @ret_size (its length without the NUL), -EINVAL
 * for a NULL argument, -ENOMEM. Thread-safe.
 */
KEEL_API int keel_metrics_format(keel_metrics *m, char **ret_text, size_t *ret_size);

/**
 * Registers the standard process metrics, read from /proc at each keel_metrics_format():
 * process_cpu_seconds_total (counter), process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_start_time_seconds (since the epoch),
 * process_open_fds, process_max_fds (the soft RLIMIT_NOFILE; +Inf when unlimited) and
 * process_threads (gauges). A value that cannot be read at a later exposition is NaN.
 *
 * Returns 0, -EEXIST when it was registered already, -EINVAL when @m is NULL or one of those names
 * is taken, -ENOMEM, or the negative errno of reading /proc the first time (nothing is registered
 * then). Thread-safe.
 */
KEEL_API int keel_metrics_add_process_collector(keel_metrics *m);

#ifdef __cplusplus
}
#endif
