/* conf: see conf.h. */
#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

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
	static const struct {
		const char *suffix;
		long mult;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "K", 1024L },
		{ "KiB", 1024L },
		{ "k", 1024L },
		{ "M", 1024L * 1024 },
		{ "MiB", 1024L * 1024 },
		{ "G", 1024L * 1024 * 1024 },
		{ "GiB", 1024L * 1024 * 1024 },
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

/* Refuses blanks, control characters and commas in an address. 0 or -1. */
static int bad_chars(const char *s, char *why, size_t whylen)
{
	for (const char *p = s; *p; p++) {
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
			snprintf(why, whylen, "has a blank or control character: remove it");
			return -1;
		}
	}
	if (strchr(s, ',')) {
		snprintf(why, whylen, "has a comma: expected one address");
		return -1;
	}
	return 0;
}

int conf_parse_host_port(const char *s, bool need_host, char *host, size_t hostlen, long *port,
			 char *why, size_t whylen)
{
	if (bad_chars(s, why, whylen) < 0)
		return -1;
	const char *colon = strrchr(s, ':');
	const char *ps = colon ? colon + 1 : s;
	size_t hl = colon ? (size_t)(colon - s) : 0;
	if (need_host && (!colon || hl == 0)) {
		snprintf(why, whylen, "expected HOST:PORT, e.g. edges.example.svc:7100");
		return -1;
	}
	if (colon && hl == 0) {
		snprintf(why, whylen, "has no host before ':' (write PORT alone, or HOST:PORT)");
		return -1;
	}
	if (memchr(s, '/', hl)) {
		snprintf(why, whylen, "expected %s without a scheme or path",
			 need_host ? "HOST:PORT" : "[HOST:]PORT");
		return -1;
	}
	if (hl >= hostlen) {
		snprintf(why, whylen, "the host is longer than %zu bytes", hostlen - 1);
		return -1;
	}
	size_t pl = strlen(ps);
	if (pl == 0 || strspn(ps, "0123456789") != pl) {
		snprintf(why, whylen, "the port '%s' is not a number; expected %s", ps,
			 need_host ? "HOST:PORT" : "[HOST:]PORT");
		return -1;
	}
	long v = pl > 5 ? 99999999 : strtol(ps, NULL, 10);
	if (v < 1 || v > 65535) {
		snprintf(why, whylen, "the port %s is not within 1..65535", ps);
		return -1;
	}
	snprintf(host, hostlen, "%.*s", (int)hl, s);
	*port = v;
	return 0;
}

int conf_check_tcp_url(const char *s, char *why, size_t whylen)
{
	char host[256];
	long port;
	const char *scheme_end = strstr(s, "://");
	if (!*s) {
		snprintf(why, whylen, "is empty: expected tcp://HOST:PORT");
		return -1;
	}
	if (bad_chars(s, why, whylen) < 0)
		return -1;
	if (!scheme_end) {
		/* Suggest the URL the user probably meant. */
		bool digits = strspn(s, "0123456789") == strlen(s);
		snprintf(why, whylen, "expected tcp://HOST:PORT, e.g. tcp://%s%.160s%s",
			 digits ? "0.0.0.0:" : "", s, !digits && !strchr(s, ':') ? ":7100" : "");
		return -1;
	}
	if (strncmp(s, "tcp://", 6) != 0) {
		snprintf(why, whylen, "expected tcp://HOST:PORT (the scheme must be tcp://)");
		return -1;
	}
	char inner[200];
	if (conf_parse_host_port(s + 6, true, host, sizeof host, &port, inner, sizeof inner) < 0) {
		if (strncmp(inner, "expected", 8) == 0)
			snprintf(why, whylen,
				 "expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:7100");
		else
			snprintf(why, whylen, "%s", inner);
		return -1;
	}
	return 0;
}

int conf_check_host_port(const char *s, char *why, size_t whylen)
{
	char host[256];
	long port;
	if (!*s)
		return 0;
	return conf_parse_host_port(s, true, host, sizeof host, &port, why, whylen);
}

int conf_check_listen(const char *s, char *why, size_t whylen)
{
	char host[256];
	long port;
	return conf_parse_host_port(s, false, host, sizeof host, &port, why, whylen);
}

int conf_try_bind(const char *host, long port, char *why, size_t whylen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (!*host || strcmp(host, "*") == 0) {
		sa.sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
		if (getaddrinfo(host, NULL, &hints, &res) != 0)
			return 0; /* perhaps an interface name: the server decides */
		sa.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
		freeaddrinfo(res);
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int one = 1, rc = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (errno == EADDRINUSE)
			snprintf(why, whylen, "address in use (another process listens there)");
		else
			snprintf(why, whylen, "%s", strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
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
static int apply(const struct conf_opt *o, const char *s, const char *src, char *err, size_t errlen)
{
	char nm[128];
	name_of(o, nm, sizeof nm);
	if (o->type == CONF_LIST && o->check && strchr(s, ',') && strcmp(src, "flag") == 0) {
		snprintf(err, errlen,
			 "%s: '%s' from flag holds a comma: give --%s once per value, or set %s to "
			 "the comma-separated list",
			 nm, s, o->name, o->env ? o->env : "the variable");
		return -1;
	}
	if ((o->type == CONF_STR || o->type == CONF_LIST) && o->check) {
		char why[256];
		if (o->check(s, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s: '%s' from %s: %s", nm, s, src, why);
			return -1;
		}
	}
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
				snprintf(err, errlen,
					 "%s: '%s' from %s is not a size (like 65536, 64KiB, 1MiB)",
					 nm, s, src);
				return -1;
			}
		} else {
			errno = 0;
			v = strtol(s, &end, 10);
			if (errno || end == s || *end) {
				snprintf(err, errlen, "%s: '%s' from %s is not an integer", nm, s,
					 src);
				return -1;
			}
		}
		if (o->max > o->min && (v < o->min || v > o->max)) {
			snprintf(err, errlen, "%s: %ld from %s is out of range [%ld, %ld]", nm, v,
				 src, o->min, o->max);
			return -1;
		}
		*(long *)o->dst = v;
		return 0;
	}
	case CONF_BOOL:
		if (parse_bool(s, (bool *)o->dst) < 0) {
			snprintf(err, errlen, "%s: '%s' from %s is not a boolean (true/false)", nm,
				 s, src);
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
			size_t n = (size_t)snprintf(err, errlen,
						    "%s: '%s' from %s is not one of:", nm, s, src);
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
	fprintf(out,
		"Usage: %s [--flag value]...\n\n%s\n\nSettings (flag, environment variable):\n",
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

int conf_parse(const struct conf_opt *opts, int argc, char **argv, FILE *out, const char *summary,
	       char *err, size_t errlen)
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
			snprintf(err, errlen,
				 "unexpected argument '%s' (settings are --flag value; see --help)",
				 a);
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
				     t = strtok_r(NULL, ",", &save)) {
					/* "a, b": blanks around the commas are
					 * separators too. */
					while (isspace((unsigned char)*t))
						t++;
					char *e = t + strlen(t);
					while (e > t && isspace((unsigned char)e[-1]))
						*--e = '\0';
					if (!*t)
						continue;
					if (apply(o, t, "environment", err, errlen) < 0)
						goto out_free_seen;
				}
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

bool conf_main_exits(const struct conf_opt *opts, int argc, char **argv, const char *prog,
		     const char *summary, int *status)
{
	char err[512];
	int rc = conf_parse(opts, argc, argv, stdout, summary, err, sizeof err);
	if (rc == 1) {
		*status = 0;
		return true;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		*status = 2;
		return true;
	}
	return false;
}
