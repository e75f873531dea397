/*
 * metrics: a registry of counters, gauges and histograms rendered in the
 * Prometheus text exposition format 0.0.4. Registration hands out plain
 * pointers that hot paths bump without a call; series that only exist at
 * render time (consumer lag per partition) come from collect callbacks.
 * Not thread-safe: register, update and render on the owner's thread.
 */
#ifndef KWS_METRICS_H
#define KWS_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The Content-Type of metrics_render's output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* At most this many label pairs per series (histograms add "le"). */
#define METRICS_MAX_LABELS 8
/* At most this many finite histogram bounds. */
#define METRICS_MAX_BUCKETS 64

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

struct metrics;
struct metrics_histogram;
struct metrics_writer;

struct metrics *metrics_new(void);
/* Frees the registry and every series (the handed-out pointers die). NULL is fine. */
void metrics_free(struct metrics *m);

/*
 * Registration. name is a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), help one
 * line of text; the optional variadic arguments are label name/value pairs
 * (name [a-zA-Z_][a-zA-Z0-9_]*, any value), as many as METRICS_MAX_LABELS.
 * All strings are copied. Series of one name form one family, rendered
 * together in registration order whatever the order of registration of the
 * other families; the first registration's help text is the family's.
 * Registering the same name and labels again returns the same series.
 * Misuse (a bad name, an odd number of label arguments, a name registered
 * with another type, bad bounds) is a programming error: it aborts.
 * The returned pointers live as long as the registry.
 *
 *   uint64_t *out = metrics_counter(m, "kws_router_messages_total",
 *                                   "Messages delivered to clients", "direction", "out");
 *   (*out)++;
 */
#define metrics_counter(m, name, help, ...) \
	metrics_counterl(m, name, help, ##__VA_ARGS__, (const char *)NULL)
#define metrics_gauge(m, name, help, ...) \
	metrics_gaugel(m, name, help, ##__VA_ARGS__, (const char *)NULL)
/* bounds: n finite upper bounds, strictly increasing (a trailing +Inf is
 * dropped); the +Inf bucket is always there. */
#define metrics_histogram(m, name, help, bounds, n, ...) \
	metrics_histograml(m, name, help, bounds, n, ##__VA_ARGS__, (const char *)NULL)

/* The same, with the label list ended by a NULL (as execl). */
uint64_t *metrics_counterl(struct metrics *m, const char *name, const char *help, ...)
	__attribute__((sentinel));
double *metrics_gaugel(struct metrics *m, const char *name, const char *help, ...)
	__attribute__((sentinel));
struct metrics_histogram *metrics_histograml(struct metrics *m, const char *name, const char *help,
					     const double *bounds, size_t n, ...)
	__attribute__((sentinel));

/* Counts one observation: into the first bucket whose bound is >= value, and
 * into _sum and _count. */
void metrics_observe(struct metrics_histogram *h, double value);

/*
 * Dynamic series: fn(arg, w) runs during every metrics_render, after the
 * registered families, in the order of metrics_collect calls. It writes
 * whole families with metrics_write_family followed by that family's
 * samples; it must not repeat the name of a registered family.
 */
typedef void (*metrics_collect_fn)(void *arg, struct metrics_writer *w);
void metrics_collect(struct metrics *m, metrics_collect_fn fn, void *arg);

/* Starts a family (its HELP and TYPE lines); type is METRICS_COUNTER or
 * METRICS_GAUGE. */
void metrics_write_family(struct metrics_writer *w, const char *name, const char *help,
			  enum metrics_type type);
/* One sample of the current family, with NULL-free label pairs as above:
 *   metrics_write_sample(w, lag, "topic", t, "partition", pbuf); */
#define metrics_write_sample(w, value, ...) \
	metrics_write_samplel(w, value, ##__VA_ARGS__, (const char *)NULL)
void metrics_write_samplel(struct metrics_writer *w, double value, ...) __attribute__((sentinel));

/* Renders every family. *out is malloc'ed, NUL-terminated, owned by the
 * caller; *len excludes the NUL. */
void metrics_render(struct metrics *m, char **out, size_t *len);

#endif
