/* pmd: see pmd.h. */
#include "pmd.h"

#include <stdio.h>
#include <string.h>

#define PMD_NAME "permessage-deflate"
#define MAX_TOKEN 64

/* One offer's parameters, as the client wrote them. */
struct offer {
	bool snct, cnct;    /* server_/client_no_context_takeover */
	bool smwb, cmwb;    /* server_/client_max_window_bits present */
	int smwb_v, cmwb_v; /* their values; cmwb_v 0: present without a value */
	bool bad;           /* unknown, repeated or malformed parameter */
};

static const char *ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* RFC 7230 3.2.6 tchar. */
static bool tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Reads a token at p into buf (NUL-terminated; one longer than MAX_TOKEN - 1
 * is cut, and then matches no name). Returns the end, or NULL if there is
 * no token at p. */
static const char *token(const char *p, char *buf)
{
	size_t n = 0;
	while (tchar(*p)) {
		if (n < MAX_TOKEN - 1)
			buf[n++] = *p;
		p++;
	}
	buf[n] = '\0';
	return n ? p : NULL;
}

/* Reads a value at p: a token or a quoted-string (RFC 7230 3.2.6, escapes
 * undone) into buf. Returns the end, or NULL if malformed. */
static const char *value(const char *p, char *buf)
{
	if (*p != '"')
		return token(p, buf);
	size_t n = 0;
	for (p++; *p != '"'; p++) {
		if (*p == '\\')
			p++;
		if (!*p)
			return NULL;
		if (n < MAX_TOKEN - 1)
			buf[n++] = *p;
	}
	buf[n] = '\0';
	return p + 1;
}

/* Window bits: 8..15 in decimal, no leading zero (RFC 7692 7.1.2). */
static int window_bits(const char *v)
{
	if (v[0] == '8' || v[0] == '9')
		return v[1] ? -1 : v[0] - '0';
	if (v[0] == '1' && v[1] >= '0' && v[1] <= '5' && !v[2])
		return 10 + v[1] - '0';
	return -1;
}

static void param(struct offer *o, const char *name, const char *val)
{
	bool *seen;
	if (!strcmp(name, "server_no_context_takeover"))
		seen = &o->snct;
	else if (!strcmp(name, "client_no_context_takeover"))
		seen = &o->cnct;
	else if (!strcmp(name, "server_max_window_bits"))
		seen = &o->smwb;
	else if (!strcmp(name, "client_max_window_bits"))
		seen = &o->cmwb;
	else {
		o->bad = true;
		return;
	}
	if (*seen)
		o->bad = true; /* RFC 7692 7: a parameter at most once */
	*seen = true;
	if (seen == &o->snct || seen == &o->cnct) {
		if (val)
			o->bad = true;
	} else if (seen == &o->smwb) {
		if (!val || (o->smwb_v = window_bits(val)) < 0)
			o->bad = true;
	} else if (val && (o->cmwb_v = window_bits(val)) < 0) {
		o->bad = true;
	}
}

/* Parses one extension at p: its name and parameters into *o. Returns the
 * end (at "," or NUL), or NULL if the header is malformed there. */
static const char *extension(const char *p, bool *is_pmd, struct offer *o)
{
	char name[MAX_TOKEN], val[MAX_TOKEN];
	memset(o, 0, sizeof *o);
	if (!(p = token(p, name)))
		return NULL;
	*is_pmd = !strcmp(name, PMD_NAME);
	for (p = ows(p); *p == ';'; p = ows(p)) {
		if (!(p = token(ows(p + 1), name)))
			return NULL;
		p = ows(p);
		bool has_val = *p == '=';
		if (has_val && !(p = value(ows(p + 1), val)))
			return NULL;
		param(o, name, has_val ? val : NULL);
	}
	return *p == ',' || !*p ? p : NULL;
}

static int min_int(int a, int b)
{
	return a < b ? a : b;
}

/* Fills *out for offer o, or returns 0 if the router cannot accept it. */
static int answer(const struct offer *o, const struct pmd_limits *lim, struct pmd_answer *out)
{
	if (o->bad || (o->smwb && o->smwb_v == 8))
		return 0;
	memset(out, 0, sizeof *out);
	out->server_window = (unsigned char)min_int(o->smwb ? o->smwb_v : 15, lim->server_window);
	/* Without client_max_window_bits in the offer the client may use 15
	 * and must not be told otherwise (RFC 7692 7.1.2.2). */
	out->client_window =
		(unsigned char)(o->cmwb ? min_int(o->cmwb_v ? o->cmwb_v : 15, lim->client_window)
					: 15);
	/* RFC 7692 7.1.1.1: a server may answer server_no_context_takeover
	 * even if the offer did not have it. */
	out->server_no_takeover = o->snct || lim->server_no_takeover;
	out->client_no_takeover = o->cnct;
	out->say_server_window = o->smwb;
	out->say_client_window = o->cmwb;
	return 1;
}

int pmd_negotiate(const char *header, const struct pmd_limits *lim, struct pmd_answer *out)
{
	const char *p = header;
	for (;;) {
		p = ows(p);
		if (*p == ',') { /* empty list elements are allowed (RFC 7230 7) */
			p++;
			continue;
		}
		if (!*p)
			return 0;
		bool is_pmd;
		struct offer o;
		if (!(p = extension(p, &is_pmd, &o)))
			return 0;
		if (is_pmd && answer(&o, lim, out))
			return 1;
	}
}

int pmd_format(const struct pmd_answer *a, char *buf, size_t len)
{
	char sw[32] = "", cw[32] = "";
	if (a->say_server_window)
		snprintf(sw, sizeof sw, "; server_max_window_bits=%d", a->server_window);
	if (a->say_client_window)
		snprintf(cw, sizeof cw, "; client_max_window_bits=%d", a->client_window);
	int n = snprintf(buf, len, "%s%s%s%s",
			 a->server_no_takeover ? "; server_no_context_takeover" : "",
			 a->client_no_takeover ? "; client_no_context_takeover" : "", sw, cw);
	return n < 0 || (size_t)n >= len ? -1 : n;
}
