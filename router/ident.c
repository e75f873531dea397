/* ident: see ident.h. libjwt (1.10) checks signatures; everything it would
 * decide from the token's own header (which algorithm, which key) is decided
 * here first, from the keys. */
#include "ident.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

#define KEY_FILE_MAX (64 * 1024)
#define HMAC_MIN_BYTES 32
#define RSA_MIN_BITS 2048
#define LEEWAY_MAX 86400

enum key_type { KEY_HMAC, KEY_RSA, KEY_EC };

struct key {
	enum key_type type;
	char *kid;
	char *file;
	unsigned char *data; /* what libjwt gets: the secret, or the whole PEM file */
	size_t len;
};

struct ident {
	enum ident_mode mode;
	char *id_header;
	size_t max_id;
	struct cidr_list proxies;
	struct key *keys;
	size_t nkeys;
	char *claim;
	int64_t leeway;
	char *issuer;
	char *audience;
	bool token_in_id_header;
	bool token_in_query;
};

static const struct {
	const char *name;
	enum key_type type;
	jwt_alg_t alg;
} algs[] = {
	{ "HS256", KEY_HMAC, JWT_ALG_HS256 },
	{ "RS256", KEY_RSA, JWT_ALG_RS256 },
	{ "ES256", KEY_EC, JWT_ALG_ES256 },
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

/* ---- base64 ---------------------------------------------------------- */

static int b64_value(unsigned char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/* Decodes base64 (url: the URL-safe alphabet, no padding; otherwise the
 * standard one, blank space skipped, '=' padding allowed at the end) into
 * out, which has room for len * 3 / 4 + 3 bytes. Returns 0 or -1. */
static int b64_decode(const char *in, size_t len, bool url, uint8_t *out, size_t *outlen)
{
	uint32_t acc = 0;
	size_t n = 0, o = 0, pad = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (!url && (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
			continue;
		if (!url && c == '=') {
			pad++;
			continue;
		}
		if (pad)
			return -1; /* data after padding */
		if ((v = b64_value(c, url)) < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		if (++n % 4 == 0) {
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	switch (n % 4) {
	case 1:
		return -1;
	case 2:
		out[o++] = (uint8_t)(acc >> 4);
		break;
	case 3:
		out[o++] = (uint8_t)(acc >> 10);
		out[o++] = (uint8_t)(acc >> 2);
		break;
	}
	if (pad > 2 || (pad && (n + pad) % 4 != 0))
		return -1;
	*outlen = o;
	return 0;
}

/* ---- keys ------------------------------------------------------------ */

struct der {
	const uint8_t *p;
	size_t n;
};

/* Takes one element with the given tag (definite length) off the front of d
 * into *v. Returns 0 or -1. */
static int der_take(struct der *d, uint8_t tag, struct der *v)
{
	size_t len, hdr = 2;

	if (d->n < 2 || d->p[0] != tag)
		return -1;
	len = d->p[1];
	if (len & 0x80) {
		size_t nb = len & 0x7f;

		if (nb == 0 || nb > 3 || d->n < 2 + nb)
			return -1;
		len = 0;
		for (size_t i = 0; i < nb; i++)
			len = len << 8 | d->p[2 + i];
		hdr += nb;
	}
	if (len > d->n - hdr)
		return -1;
	v->p = d->p + hdr;
	v->n = len;
	d->p += hdr + len;
	d->n -= hdr + len;
	return 0;
}

static bool der_is(const struct der *v, const uint8_t *bytes, size_t n)
{
	return v->n == n && memcmp(v->p, bytes, n) == 0;
}

/* Classifies a DER SubjectPublicKeyInfo: RSA of at least RSA_MIN_BITS, or EC
 * on P-256. Returns 0 or -1 with why. */
static int spki_type(const uint8_t *der, size_t n, enum key_type *type, char *why, size_t whylen)
{
	static const uint8_t oid_rsa[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
	static const uint8_t oid_ec[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
	static const uint8_t oid_p256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	struct der all = { der, n }, spki, alg, oid, param, bits;

	if (der_take(&all, 0x30, &spki) < 0 || all.n != 0 || der_take(&spki, 0x30, &alg) < 0 ||
	    der_take(&spki, 0x03, &bits) < 0 || spki.n != 0 || der_take(&alg, 0x06, &oid) < 0 ||
	    bits.n < 1 || bits.p[0] != 0)
		goto bad;
	if (der_is(&oid, oid_rsa, sizeof oid_rsa)) {
		struct der inner = { bits.p + 1, bits.n - 1 }, rsa, mod;
		size_t nbits;

		if (der_take(&inner, 0x30, &rsa) < 0 || der_take(&rsa, 0x02, &mod) < 0 || mod.n == 0)
			goto bad;
		while (mod.n > 1 && mod.p[0] == 0) {
			mod.p++;
			mod.n--;
		}
		nbits = (mod.n - 1) * 8;
		for (unsigned b = mod.p[0]; b; b >>= 1)
			nbits++;
		if (nbits < RSA_MIN_BITS) {
			say(why, whylen, "RSA key of %zu bits; RS256 needs at least %d", nbits,
			    RSA_MIN_BITS);
			return -1;
		}
		*type = KEY_RSA;
		return 0;
	}
	if (der_is(&oid, oid_ec, sizeof oid_ec)) {
		if (der_take(&alg, 0x06, &param) < 0 || !der_is(&param, oid_p256, sizeof oid_p256)) {
			say(why, whylen, "EC key not on curve P-256; ES256 needs P-256");
			return -1;
		}
		*type = KEY_EC;
		return 0;
	}
	say(why, whylen, "public key neither RSA nor EC");
	return -1;
bad:
	say(why, whylen, "malformed public key");
	return -1;
}

/* Classifies a key file's bytes: a PEM public key or an HMAC secret. */
static int key_type_of(const unsigned char *data, size_t len, enum key_type *type, char *why,
		       size_t whylen)
{
	static const char begin[] = "-----BEGIN PUBLIC KEY-----";
	static const char end[] = "-----END PUBLIC KEY-----";
	const char *s = (const char *)data, *b64, *stop;
	size_t i = 0, derlen;
	uint8_t *der;
	int r;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	if (len - i < 11 || memcmp(s + i, "-----BEGIN ", 11) != 0) {
		if (len < HMAC_MIN_BYTES) {
			say(why, whylen, "HMAC secret of %zu bytes; HS256 needs at least %d", len,
			    HMAC_MIN_BYTES);
			return -1;
		}
		*type = KEY_HMAC;
		return 0;
	}
	if (len - i < sizeof begin - 1 || memcmp(s + i, begin, sizeof begin - 1) != 0) {
		say(why, whylen, "PEM but not a public key (want %s, as `openssl pkey -pubout` writes)",
		    begin);
		return -1;
	}
	b64 = s + i + sizeof begin - 1;
	stop = memmem(b64, len - (size_t)(b64 - s), end, sizeof end - 1);
	if (!stop) {
		say(why, whylen, "PEM without %s", end);
		return -1;
	}
	der = xmalloc((size_t)(stop - b64) * 3 / 4 + 3);
	if (b64_decode(b64, (size_t)(stop - b64), false, der, &derlen) < 0) {
		say(why, whylen, "bad base64 in PEM");
		r = -1;
	} else {
		r = spki_type(der, derlen, type, why, whylen);
	}
	free(der);
	return r;
}

static int read_key_file(const char *path, unsigned char **data, size_t *len, char *why,
			 size_t whylen)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	if (!f) {
		say(why, whylen, "%s", strerror(errno));
		return -1;
	}
	buf = xmalloc(KEY_FILE_MAX + 1);
	n = fread(buf, 1, KEY_FILE_MAX + 1, f);
	if (ferror(f)) {
		say(why, whylen, "read error");
		goto out_free;
	}
	if (n > KEY_FILE_MAX) {
		say(why, whylen, "over %d bytes: not a key", KEY_FILE_MAX);
		goto out_free;
	}
	if (n == 0) {
		say(why, whylen, "empty");
		goto out_free;
	}
	fclose(f);
	*data = buf;
	*len = n;
	return 0;
out_free:
	explicit_bzero(buf, KEY_FILE_MAX + 1);
	free(buf);
	fclose(f);
	return -1;
}

static void key_wipe(struct key *k)
{
	if (k->data) {
		explicit_bzero(k->data, k->len);
		free(k->data);
	}
	free(k->kid);
	free(k->file);
}

static int add_key_file(struct ident *id, const char *path, char *err, size_t errlen)
{
	char why[160];
	const char *base = strrchr(path, '/'), *dot;
	struct key k = { 0 };

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (read_key_file(path, &k.data, &k.len, why, sizeof why) < 0 ||
	    key_type_of(k.data, k.len, &k.type, why, sizeof why) < 0) {
		say(err, errlen, "key file %s: %s", path, why);
		goto out_wipe;
	}
	k.kid = dot && dot != base ? xstrndup(base, (size_t)(dot - base)) : xstrdup(base);
	if (k.kid[0] == '\0') {
		say(err, errlen, "key file %s: no key id (its name without extension is empty)", path);
		goto out_wipe;
	}
	for (size_t i = 0; i < id->nkeys; i++) {
		if (strcmp(id->keys[i].kid, k.kid) == 0) {
			say(err, errlen, "key files %s and %s have the same key id \"%s\"",
			    id->keys[i].file, path, k.kid);
			goto out_wipe;
		}
	}
	k.file = xstrdup(path);
	id->keys = xrealloc(id->keys, (id->nkeys + 1) * sizeof *id->keys);
	id->keys[id->nkeys++] = k;
	return 0;
out_wipe:
	key_wipe(&k);
	return -1;
}

static int visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static int add_keys(struct ident *id, const char *path, char *err, size_t errlen)
{
	struct dirent **names = NULL;
	struct stat st;
	int n, r = 0, regular = 0;

	if (stat(path, &st) < 0) {
		say(err, errlen, "key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return add_key_file(id, path, err, errlen);
	n = scandir(path, &names, visible, alphasort);
	if (n < 0) {
		say(err, errlen, "key directory %s: %s", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char *file = NULL;

		if (r == 0) {
			if (asprintf(&file, "%s/%s", path, names[i]->d_name) < 0)
				abort();
			if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
				regular++;
				r = add_key_file(id, file, err, errlen);
			}
			free(file);
		}
		free(names[i]);
	}
	free(names);
	if (r == 0 && regular == 0) {
		say(err, errlen, "key directory %s has no key files", path);
		r = -1;
	}
	return r;
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
			say(err, errlen, "header-from-proxies needs at least one trusted proxy address");
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
		id->leeway = cfg->leeway_s;
		id->claim = xstrdup(cfg->claim && *cfg->claim ? cfg->claim : "sub");
		id->issuer = dup_or_null(cfg->issuer);
		id->audience = dup_or_null(cfg->audience);
		id->token_in_id_header = cfg->token_in_id_header;
		id->token_in_query = cfg->token_in_query;
		for (size_t i = 0; i < cfg->key_files.count; i++)
			if (add_keys(id, cfg->key_files.items[i], err, errlen) < 0)
				goto out_free;
		if (id->nkeys == 0) {
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
	for (size_t i = 0; i < id->nkeys; i++)
		key_wipe(&id->keys[i]);
	free(id->keys);
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
	return id->nkeys;
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

static int from_header(const struct ident *id, const struct ident_input *in, char *out,
		       size_t cap, size_t *outlen, char *why, size_t whylen)
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
		say(why, whylen, "access_token in the query is disabled; "
		    "send the token in Authorization or the " IDENT_SUBPROTOCOL_TOKEN " subprotocol");
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

/* Reads a NumericDate, clamped to int64_t. */
static bool numeric_date(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v); /* truncated: a fraction of a second does not matter */

		*out = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
		return true;
	}
	return false;
}

/* Splits and parses the header of tok (NUL-terminated, len bytes); on
 * success *alg indexes algs[] and *kid is the header's kid (a copy, or NULL). */
static int parse_header(const char *tok, size_t len, size_t *alg, char **kid, char *why,
			size_t whylen)
{
	size_t dots[2], ndots = 0, hlen, n;
	uint8_t *buf;
	json_t *h, *v;
	const char *name;
	int r = IDENT_ETOKEN;

	for (size_t i = 0; i < len; i++) {
		if (tok[i] == '.') {
			if (ndots == 2)
				goto malformed;
			dots[ndots++] = i;
		} else if (b64_value((unsigned char)tok[i], true) < 0) {
			goto malformed;
		}
	}
	if (ndots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] + 1 == len)
		goto malformed;
	hlen = dots[0];
	buf = xmalloc(hlen * 3 / 4 + 3);
	if (b64_decode(tok, hlen, true, buf, &n) < 0) {
		free(buf);
		goto malformed;
	}
	h = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	if (!json_is_object(h)) {
		json_decref(h);
		goto malformed;
	}
	name = json_string_value(json_object_get(h, "alg"));
	*alg = sizeof algs / sizeof algs[0];
	for (size_t i = 0; name && i < sizeof algs / sizeof algs[0]; i++)
		if (strcmp(name, algs[i].name) == 0)
			*alg = i;
	if (*alg == sizeof algs / sizeof algs[0]) {
		say(why, whylen, "token algorithm not accepted (HS256, RS256 or ES256)");
		goto out_put;
	}
	if (json_object_get(h, "crit")) {
		say(why, whylen, "token has critical header extensions");
		goto out_put;
	}
	*kid = NULL;
	if ((v = json_object_get(h, "kid"))) {
		if (!json_is_string(v)) {
			say(why, whylen, "token key id is not a string");
			goto out_put;
		}
		*kid = xstrdup(json_string_value(v));
	}
	r = 0;
out_put:
	json_decref(h);
	return r;
malformed:
	say(why, whylen, "malformed token");
	return IDENT_ETOKEN;
}

/* Verifies tok's signature with the keys the header allows; on success
 * *claims holds its claims (the caller json_decref's it). */
static int verify(const struct ident *id, const char *tok, size_t len, json_t **claims,
		  char *why, size_t whylen)
{
	size_t a;
	char *kid = NULL;
	jwt_t *jwt = NULL;
	bool candidate = false;
	int r;

	if ((r = parse_header(tok, len, &a, &kid, why, whylen)) < 0)
		return r;
	r = IDENT_ETOKEN;
	for (size_t i = 0; i < id->nkeys && !jwt; i++) {
		const struct key *k = &id->keys[i];

		if (kid && strcmp(kid, k->kid) != 0)
			continue;
		if (k->type != algs[a].type) {
			if (kid) {
				say(why, whylen, "token algorithm does not match its key");
				goto out_free;
			}
			continue;
		}
		candidate = true;
		/* The key is never NULL (libjwt would skip the check) and its
		 * type is the token's algorithm (else an RSA public key could
		 * serve as an HMAC secret). */
		if (jwt_decode(&jwt, tok, k->data, (int)k->len) != 0) {
			jwt = NULL;
		} else if (jwt_get_alg(jwt) != algs[a].alg) {
			jwt_free(jwt);
			jwt = NULL;
		}
	}
	if (!candidate) {
		say(why, whylen, kid ? "unknown token key id" : "no key for the token's algorithm");
		goto out_free;
	}
	if (!jwt) {
		say(why, whylen, "bad token signature");
		goto out_free;
	}
	{
		char *json = jwt_get_grants_json(jwt, NULL);

		*claims = json ? json_loads(json, JSON_REJECT_DUPLICATES, NULL) : NULL;
		free(json);
	}
	if (!json_is_object(*claims)) {
		json_decref(*claims);
		*claims = NULL;
		say(why, whylen, "malformed token claims");
		goto out_free;
	}
	r = 0;
out_free:
	jwt_free(jwt);
	free(kid);
	return r;
}

static bool audience_ok(const json_t *aud, const char *want)
{
	size_t i;
	json_t *v;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
			return true;
	return false;
}

static int check_claims(const struct ident *id, const json_t *c, int64_t now, char *out,
			size_t cap, size_t *outlen, char *why, size_t whylen)
{
	int64_t exp, nbf;
	const json_t *v;
	char what[96];

	if (!numeric_date(json_object_get(c, "exp"), &exp)) {
		say(why, whylen, "token has no numeric exp");
		return IDENT_ECLAIMS;
	}
	if (exp <= INT64_MAX - id->leeway && now >= exp + id->leeway) {
		say(why, whylen, "token expired");
		return IDENT_EEXPIRED;
	}
	if ((v = json_object_get(c, "nbf"))) {
		if (!numeric_date(v, &nbf)) {
			say(why, whylen, "token nbf is not a number");
			return IDENT_ECLAIMS;
		}
		if (now + id->leeway < nbf) {
			say(why, whylen, "token not yet valid");
			return IDENT_EEXPIRED;
		}
	}
	if (id->issuer) {
		v = json_object_get(c, "iss");
		if (!json_is_string(v) || strcmp(json_string_value(v), id->issuer) != 0) {
			say(why, whylen, "token issuer not accepted");
			return IDENT_ECLAIMS;
		}
	}
	v = json_object_get(c, "aud");
	if (id->audience ? !audience_ok(v, id->audience) : v != NULL) {
		say(why, whylen, "token audience not accepted");
		return IDENT_ECLAIMS;
	}
	v = json_object_get(c, id->claim);
	if (!json_is_string(v) || json_string_length(v) == 0) {
		say(why, whylen, "token has no client id (claim \"%s\")", id->claim);
		return IDENT_ECLAIMID;
	}
	snprintf(what, sizeof what, "client id (claim \"%s\")", id->claim);
	return take_id(id, json_string_value(v), json_string_length(v), what,
		       IDENT_ECLAIMID, out, cap, outlen, why, whylen);
}

static int from_jwt(const struct ident *id, const struct ident_input *in, int64_t now,
		    char *out, size_t cap, size_t *outlen, char *why, size_t whylen)
{
	char tok[IDENT_MAX_TOKEN + 1];
	const char *src;
	size_t len;
	json_t *claims = NULL;
	int r;

	if ((r = find_token(id, in, &src, &len, why, whylen)) < 0)
		return r;
	if (len == 0) {
		say(why, whylen, "empty token");
		return IDENT_ENOTOKEN;
	}
	if (len > IDENT_MAX_TOKEN) {
		say(why, whylen, "token longer than %d bytes", IDENT_MAX_TOKEN);
		return IDENT_ETOKEN;
	}
	memcpy(tok, src, len);
	tok[len] = '\0';
	if ((r = verify(id, tok, len, &claims, why, whylen)) < 0)
		return r;
	r = check_claims(id, claims, now, out, cap, outlen, why, whylen);
	json_decref(claims);
	return r;
}

int ident_check(const struct ident *id, const struct ident_input *in, int64_t now_s,
		char *id_out, size_t cap, size_t *id_len, char *why, size_t whylen)
{
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
