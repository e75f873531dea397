/* ident: see ident.h. The policy only: which mode, which carrier of the
 * token or the id, what an id may be; keys.c loads the keys and token.c
 * verifies tokens. */
#include "ident.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keys.h"
#include "token.h"
#include "util.h"

#define LEEWAY_MAX 86400

_Static_assert(IDENT_MAX_TOKEN == TOKEN_MAX_BYTES, "one token size limit");

struct ident {
	enum ident_mode mode;
	char *id_header;
	size_t max_id;
	struct cidr_list proxies;
	struct keys keys;
	char *claim;
	char *issuer, *audience;  /* NULL: not configured */
	struct token_rules rules; /* points to issuer and audience */
	bool token_in_id_header;
	bool token_in_query;
};

static void say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* ---- lifecycle ------------------------------------------------------- */

int ident_mode_parse(const char *s)
{
	if (!s)
		return -1;
	if (strcmp(s, "none") == 0)
		return IDENT_NONE;
	if (strcmp(s, "header-from-proxies") == 0)
		return IDENT_HEADER_FROM_PROXIES;
	if (strcmp(s, "jwt") == 0)
		return IDENT_JWT;
	return -1;
}

const char *ident_mode_name(enum ident_mode m)
{
	switch (m) {
	case IDENT_NONE:
		return "none";
	case IDENT_HEADER_FROM_PROXIES:
		return "header-from-proxies";
	case IDENT_JWT:
		return "jwt";
	}
	return "?";
}

static char *dup_or_null(const char *s)
{
	return s && *s ? xstrdup(s) : NULL;
}

struct ident *ident_new(const struct ident_config *cfg, char *err, size_t errlen)
{
	struct ident *id;

	if (cfg->mode != IDENT_NONE && cfg->mode != IDENT_HEADER_FROM_PROXIES &&
	    cfg->mode != IDENT_JWT) {
		say(err, errlen, "unknown identification mode %d", (int)cfg->mode);
		return NULL;
	}
	if (cfg->max_id_bytes <= 0) {
		say(err, errlen, "max id bytes must be positive");
		return NULL;
	}
	id = xcalloc(1, sizeof *id);
	id->mode = cfg->mode;
	id->id_header = xstrdup(cfg->id_header && *cfg->id_header ? cfg->id_header : "X-Client-Id");
	id->max_id = (size_t)cfg->max_id_bytes;
	switch (cfg->mode) {
	case IDENT_NONE:
		break;
	case IDENT_HEADER_FROM_PROXIES:
		if (cfg->proxies.n == 0) {
			say(err, errlen,
			    "header-from-proxies needs at least one trusted proxy address");
			goto out_free;
		}
		cidr_copy(&id->proxies, &cfg->proxies);
		break;
	case IDENT_JWT:
		if (cfg->leeway_s < 0 || cfg->leeway_s > LEEWAY_MAX) {
			say(err, errlen, "JWT leeway %ld s is not within 0..%d", cfg->leeway_s,
			    LEEWAY_MAX);
			goto out_free;
		}
		id->rules.leeway_s = cfg->leeway_s;
		id->claim = xstrdup(cfg->claim && *cfg->claim ? cfg->claim : "sub");
		id->issuer = dup_or_null(cfg->issuer);
		id->audience = dup_or_null(cfg->audience);
		id->rules.issuer = id->issuer;
		id->rules.audience = id->audience;
		id->token_in_id_header = cfg->token_in_id_header;
		id->token_in_query = cfg->token_in_query;
		for (size_t i = 0; i < cfg->key_files.count; i++)
			if (keys_add(&id->keys, cfg->key_files.items[i], err, errlen) < 0)
				goto out_free;
		if (id->keys.n == 0) {
			say(err, errlen, "jwt mode needs at least one key file");
			goto out_free;
		}
		break;
	}
	return id;
out_free:
	ident_free(id);
	return NULL;
}

void ident_free(struct ident *id)
{
	if (!id)
		return;
	keys_free(&id->keys);
	cidr_free(&id->proxies);
	free(id->id_header);
	free(id->claim);
	free(id->issuer);
	free(id->audience);
	free(id);
}

enum ident_mode ident_mode(const struct ident *id)
{
	return id->mode;
}

size_t ident_key_count(const struct ident *id)
{
	return id->keys.n;
}

/* ---- checks ---------------------------------------------------------- */

/* Whether s[0..n) has a control character. */
static bool has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* Validates an id (what names it in messages: "X-Client-Id header", "id
 * claim \"sub\"") and copies it out. */
static int take_id(const struct ident *id, const char *s, size_t n, const char *what, int bad,
		   char *out, size_t cap, size_t *outlen, char *why, size_t whylen)
{
	if (n > id->max_id || n + 1 > cap) {
		say(why, whylen, "%s longer than %zu bytes", what, id->max_id);
		return bad;
	}
	if (has_ctl(s, n)) {
		say(why, whylen, "%s has control characters", what);
		return bad;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	*outlen = n;
	return 0;
}

static int from_header(const struct ident *id, const struct ident_input *in, char *out, size_t cap,
		       size_t *outlen, char *why, size_t whylen)
{
	char what[128];

	if (!in->id_header || in->id_len == 0) {
		say(why, whylen, "missing %s header", id->id_header);
		return IDENT_ENOID;
	}
	snprintf(what, sizeof what, "%s header", id->id_header);
	return take_id(id, in->id_header, in->id_len, what, IDENT_EBADID, out, cap, outlen, why,
		       whylen);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The token of "Bearer <token>", or NULL for another scheme. */
static const char *bearer(const char *auth, size_t *len)
{
	const char *p = auth, *e;

	while (blank(*p))
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || !blank(p[6]))
		return NULL;
	p += 6;
	while (blank(*p))
		p++;
	e = p + strlen(p);
	while (e > p && blank(e[-1]))
		e--;
	*len = (size_t)(e - p);
	return p;
}

/* The token of the first "kws.token.<token>" entry of a subprotocol list. */
static const char *subprotocol_token(const char *list, size_t *len)
{
	static const size_t plen = sizeof IDENT_SUBPROTOCOL_TOKEN - 1;
	const char *p = list;

	for (;;) {
		const char *end = strchr(p, ','), *b = p, *e = end ? end : p + strlen(p);

		while (b < e && blank(*b))
			b++;
		while (e > b && blank(e[-1]))
			e--;
		if ((size_t)(e - b) >= plen && memcmp(b, IDENT_SUBPROTOCOL_TOKEN, plen) == 0) {
			*len = (size_t)(e - b) - plen;
			return b + plen;
		}
		if (!end)
			return NULL;
		p = end + 1;
	}
}

/* Finds the token in the enabled sources, in order (see ident.h). */
static int find_token(const struct ident *id, const struct ident_input *in, const char **tok,
		      size_t *len, char *why, size_t whylen)
{
	if (in->query_token && !id->token_in_query) {
		say(why, whylen,
		    "access_token in the query is disabled; "
		    "send the token in Authorization or the " IDENT_SUBPROTOCOL_TOKEN
		    " subprotocol");
		return IDENT_EQUERY;
	}
	if (in->authorization && (*tok = bearer(in->authorization, len)))
		return 0;
	if (in->subprotocols && (*tok = subprotocol_token(in->subprotocols, len)))
		return 0;
	if (id->token_in_id_header && in->id_header && in->id_len > 0) {
		*tok = in->id_header;
		*len = in->id_len;
		return 0;
	}
	if (in->query_token) {
		*tok = in->query_token;
		*len = strlen(in->query_token);
		return 0;
	}
	say(why, whylen, "missing token: send Authorization: Bearer <token>");
	return IDENT_ENOTOKEN;
}

/* The IDENT_E* for a TOKEN_E*. */
static int token_error(int r)
{
	switch (r) {
	case TOKEN_EEXPIRED:
		return IDENT_EEXPIRED;
	case TOKEN_ECLAIMS:
		return IDENT_ECLAIMS;
	}
	return IDENT_ETOKEN;
}

/* Takes the client id out of verified claims. */
static int id_claim(const struct ident *id, const json_t *c, char *out, size_t cap, size_t *outlen,
		    char *why, size_t whylen)
{
	const json_t *v = json_object_get(c, id->claim);
	char what[96];

	if (!json_is_string(v) || json_string_length(v) == 0) {
		say(why, whylen, "token has no client id (claim \"%s\")", id->claim);
		return IDENT_ECLAIMID;
	}
	snprintf(what, sizeof what, "client id (claim \"%s\")", id->claim);
	return take_id(id, json_string_value(v), json_string_length(v), what, IDENT_ECLAIMID, out,
		       cap, outlen, why, whylen);
}

static int from_jwt(const struct ident *id, const struct ident_input *in, int64_t now, char *out,
		    size_t cap, size_t *outlen, char *why, size_t whylen)
{
	const char *tok;
	size_t len;
	json_t *claims = NULL;
	int r;

	if ((r = find_token(id, in, &tok, &len, why, whylen)) < 0)
		return r;
	if (len == 0) {
		say(why, whylen, "empty token");
		return IDENT_ENOTOKEN;
	}
	if ((r = token_verify(&id->keys, &id->rules, tok, len, now, &claims, why, whylen)) < 0)
		return token_error(r);
	r = id_claim(id, claims, out, cap, outlen, why, whylen);
	json_decref(claims);
	return r;
}

int ident_check(const struct ident *id, const struct ident_input *in, int64_t now_s, char *id_out,
		size_t cap, size_t *id_len, char *why, size_t whylen)
{
	if (!why)
		whylen = 0; /* token_verify writes with snprintf */
	say(why, whylen, "ok");
	switch (id->mode) {
	case IDENT_NONE:
		return from_header(id, in, id_out, cap, id_len, why, whylen);
	case IDENT_HEADER_FROM_PROXIES:
		if (!cidr_match(&id->proxies, in->peer)) {
			say(why, whylen, "peer is not a trusted proxy");
			return IDENT_EPEER;
		}
		return from_header(id, in, id_out, cap, id_len, why, whylen);
	case IDENT_JWT:
		return from_jwt(id, in, now_s, id_out, cap, id_len, why, whylen);
	}
	say(why, whylen, "bad identification mode");
	return IDENT_ETOKEN;
}

int ident_http_status(int err)
{
	switch (err) {
	case IDENT_ENOID:
	case IDENT_EBADID:
	case IDENT_EQUERY:
		return 400;
	case IDENT_EPEER:
		return 403;
	case IDENT_ENOTOKEN:
	case IDENT_ETOKEN:
	case IDENT_EEXPIRED:
	case IDENT_ECLAIMS:
	case IDENT_ECLAIMID:
		return 401;
	}
	return 500;
}

const char *ident_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case IDENT_ENOID:
		return "missing client id";
	case IDENT_EBADID:
		return "bad client id";
	case IDENT_EPEER:
		return "peer is not a trusted proxy";
	case IDENT_ENOTOKEN:
		return "missing token";
	case IDENT_ETOKEN:
		return "invalid token";
	case IDENT_EEXPIRED:
		return "token expired or not yet valid";
	case IDENT_ECLAIMS:
		return "token claims not accepted";
	case IDENT_ECLAIMID:
		return "token has no client id";
	case IDENT_EQUERY:
		return "token in the query is disabled";
	}
	return "unknown identification error";
}
