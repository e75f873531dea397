/* metrics: see metrics.h. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct metrics_histogram {
	size_t n;         /* finite bounds */
	double *bounds;   /* n */
	uint64_t *counts; /* n + 1, not cumulative; the last is +Inf */
	double sum;
	uint64_t count;
};

struct series {
	struct series *next;
	char *labels; /* escaped pairs without braces: a="x",b="y"; "" for none */
	union {
		uint64_t counter;
		double gauge;
		struct metrics_histogram hist;
	} v;
};

struct family {
	struct family *next;
	char *name, *help;
	enum metrics_type type;
	struct series *first, **last;
};

struct collector {
	struct collector *next;
	metrics_collect_fn fn;
	void *arg;
};

struct metrics {
	struct family *first, **last;
	struct collector *cfirst, **clast;
};

struct metrics_writer {
	FILE *f;
	char *family; /* owned copy of the current family's name, or NULL */
};

static const char *const type_names[] = { "counter", "gauge", "histogram" };

static __attribute__((noreturn, format(printf, 1, 2))) void misuse(const char *fmt, ...)
{
	va_list ap;

	fputs("metrics: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* A metric name (colons allowed) or a label name (no colons, no "__"). */
static bool valid_name(const char *s, bool label)
{
	if (!s || !*s || (label && strncmp(s, "__", 2) == 0))
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			     (!label && c == ':');
		if (!alpha && !(p > s && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static FILE *mem_open(char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);

	if (!f) {
		fprintf(stderr, "fatal: out of memory (open_memstream)\n");
		abort();
	}
	return f;
}

static void mem_close(FILE *f)
{
	if (ferror(f) || fclose(f) != 0) {
		fprintf(stderr, "fatal: out of memory (memstream)\n");
		abort();
	}
}

/* Writes s escaped for a label value (quote) or a HELP text. */
static void put_escaped(FILE *f, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '"' && quote)
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v; Prometheus
 * spellings for the infinities and NaN. */
static void put_double(FILE *f, double v)
{
	char buf[32];

	if (isnan(v)) {
		fputs("NaN", f);
		return;
	}
	if (isinf(v)) {
		fputs(v > 0 ? "+Inf" : "-Inf", f);
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	fputs(buf, f);
}

/* Renders the NULL-ended label pairs of ap as name="escaped",... (malloc'ed). */
static char *take_labels(va_list ap)
{
	const char *kv[2 * METRICS_MAX_LABELS];
	size_t n = 0, len;
	const char *s;
	char *out;
	FILE *f;

	while ((s = va_arg(ap, const char *))) {
		if (n == 2 * METRICS_MAX_LABELS)
			misuse("more than %d labels", METRICS_MAX_LABELS);
		if (n % 2 == 0 && (!valid_name(s, true) || strcmp(s, "le") == 0))
			misuse("bad label name \"%s\"", s);
		kv[n++] = s;
	}
	if (n % 2)
		misuse("label \"%s\" has no value", kv[n - 1]);
	f = mem_open(&out, &len);
	for (size_t i = 0; i < n; i += 2) {
		fprintf(f, "%s%s=\"", i ? "," : "", kv[i]);
		put_escaped(f, kv[i + 1], true);
		fputc('"', f);
	}
	mem_close(f);
	return out;
}

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	m->last = &m->first;
	m->clast = &m->cfirst;
	return m;
}

void metrics_free(struct metrics *m)
{
	struct family *fam, *fnext;
	struct series *s, *snext;
	struct collector *c, *cnext;

	if (!m)
		return;
	for (fam = m->first; fam; fam = fnext) {
		fnext = fam->next;
		for (s = fam->first; s; s = snext) {
			snext = s->next;
			if (fam->type == METRICS_HISTOGRAM) {
				free(s->v.hist.bounds);
				free(s->v.hist.counts);
			}
			free(s->labels);
			free(s);
		}
		free(fam->name);
		free(fam->help);
		free(fam);
	}
	for (c = m->cfirst; c; c = cnext) {
		cnext = c->next;
		free(c);
	}
	free(m);
}

/* Finds or adds the series name{labels} (labels is taken over); *fresh says
 * whether it is new. */
static struct series *series_get(struct metrics *m, enum metrics_type type, const char *name,
				 const char *help, char *labels, bool *fresh)
{
	struct family *fam;
	struct series *s;

	if (!valid_name(name, false))
		misuse("bad metric name \"%s\"", name ? name : "(null)");
	for (fam = m->first; fam; fam = fam->next)
		if (strcmp(fam->name, name) == 0)
			break;
	if (!fam) {
		fam = xcalloc(1, sizeof(*fam));
		fam->name = xstrdup(name);
		fam->help = xstrdup(help ? help : "");
		fam->type = type;
		fam->last = &fam->first;
		*m->last = fam;
		m->last = &fam->next;
	} else if (fam->type != type) {
		misuse("%s registered as a %s and as a %s", name, type_names[fam->type],
		       type_names[type]);
	}
	for (s = fam->first; s; s = s->next) {
		if (strcmp(s->labels, labels) == 0) {
			free(labels);
			*fresh = false;
			return s;
		}
	}
	s = xcalloc(1, sizeof(*s));
	s->labels = labels;
	*fam->last = s;
	fam->last = &s->next;
	*fresh = true;
	return s;
}

uint64_t *metrics_counterl(struct metrics *m, const char *name, const char *help, ...)
{
	va_list ap;
	char *labels;
	bool fresh;

	va_start(ap, help);
	labels = take_labels(ap);
	va_end(ap);
	return &series_get(m, METRICS_COUNTER, name, help, labels, &fresh)->v.counter;
}

double *metrics_gaugel(struct metrics *m, const char *name, const char *help, ...)
{
	va_list ap;
	char *labels;
	bool fresh;

	va_start(ap, help);
	labels = take_labels(ap);
	va_end(ap);
	return &series_get(m, METRICS_GAUGE, name, help, labels, &fresh)->v.gauge;
}

struct metrics_histogram *metrics_histograml(struct metrics *m, const char *name, const char *help,
					     const double *bounds, size_t n, ...)
{
	struct metrics_histogram *h;
	struct series *s;
	va_list ap;
	char *labels;
	bool fresh;

	if (n > 0 && isinf(bounds[n - 1]) && bounds[n - 1] > 0)
		n--;
	if (n > METRICS_MAX_BUCKETS)
		misuse("%s: more than %d buckets", name, METRICS_MAX_BUCKETS);
	for (size_t i = 0; i < n; i++)
		if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
			misuse("%s: bounds must be finite and increasing", name);
	va_start(ap, n);
	labels = take_labels(ap);
	va_end(ap);
	s = series_get(m, METRICS_HISTOGRAM, name, help, labels, &fresh);
	h = &s->v.hist;
	if (fresh) {
		h->n = n;
		h->bounds = xmalloc(n * sizeof(double));
		if (n)
			memcpy(h->bounds, bounds, n * sizeof(double));
		h->counts = xcalloc(n + 1, sizeof(uint64_t));
	} else if (h->n != n || (n && memcmp(h->bounds, bounds, n * sizeof(double)) != 0)) {
		misuse("%s registered twice with other bounds", name);
	}
	return h;
}

void metrics_observe(struct metrics_histogram *h, double value)
{
	size_t lo = 0, hi = h->n; /* the answer is in [lo, hi]; hi == n is +Inf */

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (value <= h->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	h->counts[lo]++;
	h->sum += value;
	h->count++;
}

void metrics_collect(struct metrics *m, metrics_collect_fn fn, void *arg)
{
	struct collector *c = xcalloc(1, sizeof(*c));

	c->fn = fn;
	c->arg = arg;
	*m->clast = c;
	m->clast = &c->next;
}

static void put_header(FILE *f, const char *name, const char *help, enum metrics_type type)
{
	fprintf(f, "# HELP %s ", name);
	put_escaped(f, help, false);
	fprintf(f, "\n# TYPE %s %s\n", name, type_names[type]);
}

/* name{labels[,le="bound"]} */
static void put_series(FILE *f, const char *name, const char *suffix, const char *labels,
		       const double *le)
{
	fprintf(f, "%s%s", name, suffix);
	if (!*labels && !le)
		return;
	fprintf(f, "{%s", labels);
	if (le) {
		fprintf(f, "%sle=\"", *labels ? "," : "");
		put_double(f, *le);
		fputc('"', f);
	}
	fputc('}', f);
}

static void render_histogram(FILE *f, const char *name, const struct series *s)
{
	const struct metrics_histogram *h = &s->v.hist;
	const double inf = INFINITY;
	uint64_t cum = 0;

	for (size_t i = 0; i <= h->n; i++) {
		cum += h->counts[i];
		put_series(f, name, "_bucket", s->labels, i < h->n ? &h->bounds[i] : &inf);
		fprintf(f, " %llu\n", (unsigned long long)cum);
	}
	put_series(f, name, "_sum", s->labels, NULL);
	fputc(' ', f);
	put_double(f, h->sum);
	fputc('\n', f);
	put_series(f, name, "_count", s->labels, NULL);
	fprintf(f, " %llu\n", (unsigned long long)h->count);
}

void metrics_write_family(struct metrics_writer *w, const char *name, const char *help,
			  enum metrics_type type)
{
	if (!valid_name(name, false) || type == METRICS_HISTOGRAM)
		misuse("bad collected family \"%s\"", name ? name : "(null)");
	free(w->family);
	w->family = xstrdup(name);
	put_header(w->f, name, help ? help : "", type);
}

void metrics_write_samplel(struct metrics_writer *w, double value, ...)
{
	va_list ap;
	char *labels;

	if (!w->family)
		misuse("metrics_write_sample before metrics_write_family");
	va_start(ap, value);
	labels = take_labels(ap);
	va_end(ap);
	put_series(w->f, w->family, "", labels, NULL);
	fputc(' ', w->f);
	put_double(w->f, value);
	fputc('\n', w->f);
	free(labels);
}

void metrics_render(struct metrics *m, char **out, size_t *len)
{
	struct metrics_writer w = { 0 };

	w.f = mem_open(out, len);
	for (const struct family *fam = m->first; fam; fam = fam->next) {
		put_header(w.f, fam->name, fam->help, fam->type);
		for (const struct series *s = fam->first; s; s = s->next) {
			if (fam->type == METRICS_HISTOGRAM) {
				render_histogram(w.f, fam->name, s);
				continue;
			}
			put_series(w.f, fam->name, "", s->labels, NULL);
			if (fam->type == METRICS_COUNTER)
				fprintf(w.f, " %llu\n", (unsigned long long)s->v.counter);
			else {
				fputc(' ', w.f);
				put_double(w.f, s->v.gauge);
				fputc('\n', w.f);
			}
		}
	}
	for (const struct collector *c = m->cfirst; c; c = c->next)
		c->fn(c->arg, &w);
	free(w.family);
	mem_close(w.f);
}
