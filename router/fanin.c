/* fanin: see fanin.h. */
#include "fanin.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct series {
	char *key; /* name{labels} as written */
	double v;
};

struct family {
	char *name;
	char *help, *type; /* whole lines, or NULL */
	bool max;
	struct series *s;
	size_t ns, cap;
};

struct merge {
	struct family *f;
	size_t nf, cap;
};

static struct family *family_get(struct merge *m, const char *name, size_t len,
				 const char *const *max_families)
{
	for (size_t i = 0; i < m->nf; i++)
		if (strlen(m->f[i].name) == len && memcmp(m->f[i].name, name, len) == 0)
			return &m->f[i];
	if (m->nf == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 32;
		m->f = xrealloc(m->f, m->cap * sizeof *m->f);
	}
	struct family *f = &m->f[m->nf++];
	*f = (struct family){ .name = xstrndup(name, len) };
	for (const char *const *x = max_families; x && *x; x++)
		f->max |= strcmp(*x, f->name) == 0;
	return f;
}

static void series_add(struct family *f, const char *key, size_t len, double v)
{
	for (size_t i = 0; i < f->ns; i++)
		if (strlen(f->s[i].key) == len && memcmp(f->s[i].key, key, len) == 0) {
			f->s[i].v = f->max ? (v > f->s[i].v ? v : f->s[i].v) : f->s[i].v + v;
			return;
		}
	if (f->ns == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->s = xrealloc(f->s, f->cap * sizeof *f->s);
	}
	f->s[f->ns++] = (struct series){ .key = xstrndup(key, len), .v = v };
}

/* The length of the metric name at the start of s (up to '{' or a blank). */
static size_t name_len(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len && s[i] != '{' && s[i] != ' ')
		i++;
	return i;
}

/* The family a sample of metric name belongs to: its own, or that of a
 * histogram (name_bucket, _sum, _count) declared before. */
static struct family *family_of(struct merge *m, struct family *cur, const char *name, size_t len)
{
	if (cur && strlen(cur->name) == len && memcmp(cur->name, name, len) == 0)
		return cur;
	static const char *const suffixes[] = { "_bucket", "_sum", "_count", NULL };
	if (cur)
		for (const char *const *x = suffixes; *x; x++) {
			size_t fl = strlen(cur->name), sl = strlen(*x);
			if (fl + sl == len && memcmp(name, cur->name, fl) == 0 &&
			    memcmp(name + fl, *x, sl) == 0)
				return cur;
		}
	return NULL;
}

static void merge_one(struct merge *m, const char *t, size_t len, const char *const *maxf)
{
	struct family *cur = NULL;
	for (const char *p = t, *end = t + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t ll = (size_t)(le - p);
		if (ll > 7 && (memcmp(p, "# HELP ", 7) == 0 || memcmp(p, "# TYPE ", 7) == 0)) {
			size_t nlen = name_len(p + 7, ll - 7);
			cur = family_get(m, p + 7, nlen, maxf);
			char **slot = p[2] == 'H' ? &cur->help : &cur->type;
			if (!*slot)
				*slot = xstrndup(p, ll);
		} else if (ll && p[0] != '#') {
			const char *sp = le;
			while (sp > p && sp[-1] != ' ')
				sp--;
			if (sp > p + 1) {
				char num[64];
				size_t vl = (size_t)(le - sp);
				if (vl < sizeof num) {
					memcpy(num, sp, vl);
					num[vl] = 0;
					char *e;
					double v = strtod(num, &e);
					size_t nlen = name_len(p, ll);
					struct family *f = NULL;
					if (*e == 0 && vl && !(f = family_of(m, cur, p, nlen)))
						f = cur = family_get(m, p, nlen, maxf);
					if (f)
						series_add(f, p, (size_t)(sp - 1 - p), v);
				}
			}
		}
		p = nl ? nl + 1 : end;
	}
}

static void put_value(FILE *o, double v)
{
	if (isnan(v))
		fputs("NaN", o);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", o);
	else if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v)
		fprintf(o, "%.0f", v);
	else {
		/* The shortest that reads back as v. */
		char b[40];
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(b, sizeof b, "%.*g", prec, v);
			if (strtod(b, NULL) == v)
				break;
		}
		fputs(b, o);
	}
}

char *fanin_metrics(const char *const *texts, const size_t *lens, size_t n,
		    const char *const *max_families, size_t *outlen)
{
	struct merge m = { 0 };
	for (size_t i = 0; i < n; i++)
		if (texts[i])
			merge_one(&m, texts[i], lens[i], max_families);
	char *out = NULL;
	size_t ol = 0;
	FILE *o = open_memstream(&out, &ol);
	if (!o) {
		fprintf(stderr, "fatal: out of memory (open_memstream)\n");
		abort();
	}
	for (size_t i = 0; i < m.nf; i++) {
		struct family *f = &m.f[i];
		if (f->help)
			fprintf(o, "%s\n", f->help);
		if (f->type)
			fprintf(o, "%s\n", f->type);
		for (size_t j = 0; j < f->ns; j++) {
			fprintf(o, "%s ", f->s[j].key);
			put_value(o, f->s[j].v);
			fputc('\n', o);
			free(f->s[j].key);
		}
		free(f->s);
		free(f->name);
		free(f->help);
		free(f->type);
	}
	free(m.f);
	if (fclose(o) != 0) {
		fprintf(stderr, "fatal: out of memory (memstream)\n");
		abort();
	}
	*outlen = ol;
	return out;
}
