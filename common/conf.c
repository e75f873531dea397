/* conf: see conf.h. */
#include "conf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

void conf_list_free(struct conf_list *l)
{
	if (!l)
		return;
	free(l->items);
	free(l->buf);
	l->items = NULL;
	l->buf = NULL;
	l->count = 0;
}

static void list_push(struct conf_list *l, const char *s)
{
	l->items = xrealloc(l->items, (l->count + 1) * sizeof *l->items);
	l->items[l->count++] = s;
}

int conf_parse_size(const char *s, long *out)
{
	static const struct { const char *suffix; long mult; } units[] = {
		{ "", 1 }, { "B", 1 },
		{ "K", 1024L }, { "KiB", 1024L }, { "k", 1024L },
		{ "M", 1024L * 1024 }, { "MiB", 1024L * 1024 },
		{ "G", 1024L * 1024 * 1024 }, { "GiB", 1024L * 1024 * 1024 },
	};
	char *end;
	errno = 0;
	if (!*s || strchr(s, '-') || *s == ' ' || *s == '\t')
		return -1;
	long v = strtol(s, &end, 10);
	if (errno || end == s)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			if (v > LONG_MAX / units[i].mult)
				return -1;
			*out = v * units[i].mult;
			return 0;
		}
	}
	return -1;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Names the setting in error messages: "--flag (ENV)". */
static void name_of(const struct conf_opt *o, char *buf, size_t len)
{
	if (o->env)
		snprintf(buf, len, "--%s (%s)", o->name, o->env);
	else
		snprintf(buf, len, "--%s", o->name);
}

/* Stores value s (from source src: "flag", "environment" or "default"). */
static int apply(const struct conf_opt *o, const char *s, const char *src, char *err,
		 size_t errlen)
{
	char nm[128];
	name_of(o, nm, sizeof nm);
	switch (o->type) {
	case CONF_STR:
		*(const char **)o->dst = s;
		return 0;
	case CONF_INT:
	case CONF_SIZE: {
		long v;
		char *end;
		if (o->type == CONF_SIZE) {
			if (conf_parse_size(s, &v) < 0) {
				snprintf(err, errlen, "%s: '%s' from %s is not a size (like 65536, 64KiB, 1MiB)",
					 nm, s, src);
				return -1;
			}
		} else {
			errno = 0;
			v = strtol(s, &end, 10);
			if (errno || end == s || *end) {
				snprintf(err, errlen, "%s: '%s' from %s is not an integer", nm, s, src);
				return -1;
			}
		}
		if (o->max > o->min && (v < o->min || v > o->max)) {
			snprintf(err, errlen, "%s: %ld from %s is out of range [%ld, %ld]", nm, v, src,
				 o->min, o->max);
			return -1;
		}
		*(long *)o->dst = v;
		return 0;
	}
	case CONF_BOOL:
		if (parse_bool(s, (bool *)o->dst) < 0) {
			snprintf(err, errlen, "%s: '%s' from %s is not a boolean (true/false)", nm, s,
				 src);
			return -1;
		}
		return 0;
	case CONF_CHOICE:
		for (int i = 0; o->choices[i]; i++) {
			if (strcmp(s, o->choices[i]) == 0) {
				*(int *)o->dst = i;
				return 0;
			}
		}
		{
			size_t n = (size_t)snprintf(err, errlen, "%s: '%s' from %s is not one of:", nm,
						    s, src);
			for (int i = 0; o->choices[i] && n < errlen; i++)
				n += (size_t)snprintf(err + n, errlen - n, " %s", o->choices[i]);
		}
		return -1;
	case CONF_LIST:
		list_push(o->dst, s);
		return 0;
	}
	return -1;
}

static const struct conf_opt *find(const struct conf_opt *opts, const char *name, size_t len)
{
	for (const struct conf_opt *o = opts; o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

void conf_usage(FILE *out, const char *prog, const char *summary, const struct conf_opt *opts)
{
	fprintf(out, "Usage: %s [--flag value]...\n\n%s\n\nSettings (flag, environment variable):\n",
		prog, summary);
	for (const struct conf_opt *o = opts; o->name; o++) {
		fprintf(out, "  --%s%s", o->name, o->type == CONF_BOOL ? "[=BOOL]" : " VALUE");
		if (o->env)
			fprintf(out, "  (env %s)", o->env);
		fprintf(out, "\n      %s", o->help);
		if (o->type == CONF_CHOICE) {
			fputs(" One of:", out);
			for (int i = 0; o->choices[i]; i++)
				fprintf(out, " %s", o->choices[i]);
			fputc('.', out);
		}
		if (o->flags & CONF_REQUIRED)
			fputs(" Required.", out);
		else if (o->def)
			fprintf(out, " Default: %s.", *o->def ? o->def : "(empty)");
		if (o->type == CONF_LIST)
			fputs(" Repeatable; the variable takes a comma-separated list.", out);
		fputc('\n', out);
	}
	fputs("  --help\n      Print this text and exit.\n", out);
}

int conf_parse(const struct conf_opt *opts, int argc, char **argv, FILE *out,
	       const char *summary, char *err, size_t errlen)
{
	size_t nopts = 0;
	while (opts[nopts].name)
		nopts++;
	bool *seen = xcalloc(nopts ? nopts : 1, sizeof *seen);
	int rc = -1;

	/* Flags first, remembering which settings they gave. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			conf_usage(out, argv[0], summary, opts);
			rc = 1;
			goto out_free_seen;
		}
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%s' (settings are --flag value; see --help)", a);
			goto out_free_seen;
		}
		a += 2;
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
		const struct conf_opt *o = find(opts, a, nlen);
		if (!o) {
			snprintf(err, errlen, "unknown flag '--%.*s' (see --help)", (int)nlen, a);
			goto out_free_seen;
		}
		const char *val = eq ? eq + 1 : NULL;
		if (!val && o->type == CONF_BOOL) {
			val = "true";
		} else if (!val) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--%s needs a value", o->name);
				goto out_free_seen;
			}
			val = argv[++i];
		}
		if (apply(o, val, "flag", err, errlen) < 0)
			goto out_free_seen;
		seen[o - opts] = true;
	}

	/* Then the environment, then defaults, for what flags did not give. */
	for (size_t k = 0; k < nopts; k++) {
		const struct conf_opt *o = &opts[k];
		if (seen[k])
			continue;
		const char *env = o->env ? getenv(o->env) : NULL;
		if (env && *env) {
			if (o->type == CONF_LIST) {
				/* Split a copy on commas; the list owns the copy. */
				struct conf_list *l = o->dst;
				char *copy = xstrdup(env), *save = NULL;
				free(l->buf);
				l->buf = copy;
				for (char *t = strtok_r(copy, ",", &save); t;
				     t = strtok_r(NULL, ",", &save))
					list_push(o->dst, t);
			} else if (apply(o, env, "environment", err, errlen) < 0) {
				goto out_free_seen;
			}
			continue;
		}
		if (o->flags & CONF_REQUIRED) {
			char nm[128];
			name_of(o, nm, sizeof nm);
			snprintf(err, errlen, "%s is required: %s", nm, o->help);
			goto out_free_seen;
		}
		if (o->def && o->type != CONF_LIST && apply(o, o->def, "default", err, errlen) < 0)
			goto out_free_seen;
	}
	rc = 0;
out_free_seen:
	free(seen);
	return rc;
}

int conf_main(const struct conf_opt *opts, int argc, char **argv, const char *prog,
	      const char *summary)
{
	char err[512];
	int rc = conf_parse(opts, argc, argv, stdout, summary, err, sizeof err);
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 2;
	}
	return -1;
}
