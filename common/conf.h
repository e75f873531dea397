/*
 * conf: table-driven settings from command-line flags and environment
 * variables (for Kubernetes). Precedence: flag, then environment, then the
 * default. One table per program also produces its --help text, so the flags,
 * the variables and the documentation cannot drift apart.
 */
#ifndef KWS_CONF_H
#define KWS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum conf_type {
	CONF_STR,    /* dst: const char ** (points into argv, environ or def) */
	CONF_INT,    /* dst: long *; decimal, within [min, max] */
	CONF_SIZE,   /* dst: long *; bytes, with optional K/KiB/M/MiB/G/GiB suffix */
	CONF_BOOL,   /* dst: bool *; "true/false/1/0/yes/no/on/off"; a bare flag means true */
	CONF_CHOICE, /* dst: int *; index of the value in choices (NULL-terminated) */
	CONF_LIST,   /* dst: struct conf_list *; repeatable flag; env is comma-separated */
};

#define CONF_REQUIRED 1u /* no default: a missing value is an error */

struct conf_list {
	const char **items; /* owned by the list; the strings point into argv or buf */
	size_t count;
	char *buf; /* owned: the split copy of the environment variable, if used */
};
void conf_list_free(struct conf_list *l);

struct conf_opt {
	const char *name; /* the flag without "--" */
	const char *env;  /* environment variable, or NULL */
	enum conf_type type;
	void *dst;
	const char *def; /* default, in the flag's syntax; NULL: none */
	const char *help;
	unsigned flags;
	long min, max;              /* CONF_INT / CONF_SIZE bounds when max > min */
	const char *const *choices; /* CONF_CHOICE */
	/* Optional, for CONF_STR and CONF_LIST: checks each value (the default
	 * too) before it is stored. Returns 0, or -1 with what is wrong and the
	 * fix in why; conf_parse then names the setting. A CONF_LIST flag value
	 * with a comma is refused before this is called. */
	int (*check)(const char *value, char *why, size_t whylen);
};

/* Parses argv and the environment into the table's destinations.
 * Returns 0 on success; 1 when --help was given (usage was printed to out);
 * -1 on a bad or missing setting, with a message naming the flag and its
 * environment variable in err. Strings in the table outlive the call. */
int conf_parse(const struct conf_opt *opts, int argc, char **argv, FILE *out, const char *summary,
	       char *err, size_t errlen);

/* For a program's main(): parses like conf_parse, printing usage to stdout on
 * --help and "prog: <message>" to stderr on a bad setting. Returns true when
 * main must return at once, with the exit status in *status (0 after --help,
 * 2 on a bad setting); false to go on. */
bool conf_main_exits(const struct conf_opt *opts, int argc, char **argv, const char *prog,
		     const char *summary, int *status);

/* Prints the usage text: summary, then each flag with its variable, default
 * and help. */
void conf_usage(FILE *out, const char *prog, const char *summary, const struct conf_opt *opts);

/* Parses a size such as "65536", "64K", "64KiB", "1M", "2GiB". 0 or -1. */
int conf_parse_size(const char *s, long *out);

/* Splits "HOST:PORT", or "[HOST:]PORT" when need_host is false (host is then
 * ""), into host (copied) and *port. PORT is decimal, 1..65535. HOST has no
 * blanks, commas or slashes. Returns 0, or -1 with what is wrong in why. */
int conf_parse_host_port(const char *s, bool need_host, char *host, size_t hostlen, long *port,
			 char *why, size_t whylen);

/* Checks for conf_opt.check: */
/* tcp://HOST:PORT, as nng dials and listens (--edges, the edge's --listen). */
int conf_check_tcp_url(const char *s, char *why, size_t whylen);
/* HOST:PORT (--edges-dns); empty (the setting is off) passes. */
int conf_check_host_port(const char *s, char *why, size_t whylen);
/* [HOST:]PORT (the router's --listen). */
int conf_check_listen(const char *s, char *why, size_t whylen);

/* Tries to bind a TCP socket to host:port (IPv4; empty host: every address)
 * with SO_REUSEADDR, as a server would, and closes it at once: a startup
 * check that reports a taken port with the setting's name instead of a
 * library's log line. A host that does not resolve is not checked. Returns
 * 0, or -1 with the reason in why ("address in use", ...). */
int conf_try_bind(const char *host, long port, char *why, size_t whylen);

#endif
