/* handshake: see handshake.h. */
#include "handshake.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "admission.h"
#include "ident.h"
#include "router_int.h"
#include "util.h"

int handshake_send_plain(struct lws *wsi, unsigned int status, const char *text)
{
	unsigned char hbuf[LWS_PRE + 512], *start = hbuf + LWS_PRE, *p = start,
					   *end = hbuf + sizeof hbuf - 1;
	char body[LWS_PRE + 320];
	char *b = body + LWS_PRE;
	size_t n = 0;
	/* Plain text, one line: control characters (a path may hold any) become '?'. */
	for (const char *c = text; *c && n < 300; c++)
		b[n++] = (unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c;
	b[n++] = '\n';
	if (lws_add_http_common_headers(wsi, status, "text/plain; charset=utf-8", n, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (unsigned char *)"close", 5, &p,
					 end) ||
	    lws_add_http_header_by_name(wsi, (unsigned char *)"x-content-type-options:",
					(unsigned char *)"nosniff", 7, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (lws_write(wsi, (unsigned char *)b, n, LWS_WRITE_HTTP_FINAL) < (int)n)
		return -1;
	return 0;
}

/* Refuses an upgrade with an HTTP status and a plain-text reason; counts
 * it. Returns -1 (hang up: the answer is already written). */
static int reject(struct router *r, struct lws *wsi, enum admission_reason why, unsigned int status,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int reject(struct router *r, struct lws *wsi, enum admission_reason why, unsigned int status,
		  const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->rejected[why]++;
	log_debug("handshake refused: %u %s", status, msg);
	handshake_send_plain(wsi, status, msg);
	return -1;
}

/* Copies a header that lws does not know (name lowercase with its ':') into
 * buf, NUL-terminated. Returns its length, -1 when absent, -2 when it does
 * not fit. */
static int custom(struct lws *wsi, const char *name, char *buf, int cap)
{
	int nl = (int)strlen(name);
	int n = lws_hdr_custom_length(wsi, name, nl);
	if (n < 0)
		return -1;
	if (n >= cap || lws_hdr_custom_copy(wsi, buf, cap, name, nl) != n)
		return -2;
	return n;
}

/* Copies a header into buf (NUL-terminated); NULL if absent or too long. */
static const char *header(struct lws *wsi, enum lws_token_indexes h, char *buf, int cap)
{
	int n = lws_hdr_total_length(wsi, h);
	if (n <= 0 || n >= cap || lws_hdr_copy(wsi, buf, cap, h) < 0)
		return NULL;
	return buf;
}

/* The Origin rule (admission_origin_allowed); an Origin longer than any
 * allowed one could be is refused. */
static bool origin_allowed(struct router *r, struct lws *wsi)
{
	if (!r->cfg->allowed_origins.count)
		return true;
	char o[512];
	if (!header(wsi, WSI_TOKEN_ORIGIN, o, sizeof o))
		return lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0;
	return admission_origin_allowed(&r->cfg->allowed_origins, o);
}

/* The TCP peer's address; false if unknown. */
static bool peer_addr(struct lws *wsi, struct sockaddr_storage *ss)
{
	socklen_t sl = sizeof *ss;
	return getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)ss, &sl) == 0;
}

/* The value of the first query argument called name (lws keeps each
 * "name=value" as a fragment of WSI_TOKEN_HTTP_URI_ARGS, percent-decoded),
 * copied NUL-terminated into buf[0..cap). Returns its length; -1 when
 * absent; -2 when it does not fit (the caller refuses: a value is never
 * silently cut or ignored). */
static int query_arg(struct lws *wsi, const char *name, char *buf, size_t cap)
{
	for (int i = 0;; i++) {
		int fl = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
		char *frag = xmalloc((size_t)fl + 1);
		int n = lws_hdr_copy_fragment(wsi, frag, fl + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0) {
			free(frag);
			return -1; /* no more arguments */
		}
		size_t vl;
		const char *v = admission_query_arg(frag, (size_t)n, name, &vl);
		int rc = !v ? 0 : vl >= cap ? -2 : (int)vl;
		if (rc > 0 || (v && rc == 0)) {
			memcpy(buf, v, vl);
			buf[vl] = '\0';
		}
		free(frag);
		if (v)
			return rc;
	}
}

/* Who the client is (ident.c decides, by --auth). Returns the id's length
 * with the id in id[], or -1 after refusing the handshake. */
static int identify(struct router *r, struct lws *wsi, char *id, size_t cap)
{
	char idh[4096], auth[IDENT_MAX_TOKEN + 32], protos[IDENT_MAX_TOKEN + 256],
		qtok[IDENT_MAX_TOKEN + 16], why[160];
	struct sockaddr_storage peer;
	struct ident_input in = { 0 };
	int n = lws_hdr_custom_length(wsi, r->id_header, r->id_header_len);
	if (n >= 0 && n < (int)sizeof idh &&
	    lws_hdr_custom_copy(wsi, idh, sizeof idh, r->id_header, r->id_header_len) == n) {
		in.id_header = idh;
		in.id_len = (size_t)n;
	} else if (n >= (int)sizeof idh) {
		return reject(r, wsi, ADMISSION_LONG_ID, 400, "%s is too long", r->cfg->id_header);
	}
	in.authorization = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth);
	/* The whole list as the client sent it (door.c moved it there; lws
	 * sees only the entries that are not tokens). */
	int pn = custom(wsi, ADMISSION_HDR_PROTOCOLS ":", protos, sizeof protos);
	if (pn == -2)
		return reject(r, wsi, ADMISSION_AUTH, 401,
			      "the Sec-WebSocket-Protocol list is too long");
	in.subprotocols = pn >= 0 ? protos : NULL;
	int qn = query_arg(wsi, "access_token", qtok, sizeof qtok);
	if (qn == -2)
		return reject(r, wsi, ADMISSION_AUTH, 401, "the access_token is too long");
	in.query_token = qn >= 0 ? qtok : NULL;
	/* --token-cookie: the token of a same-site browser, used when the
	 * handshake carries no token otherwise; ident takes it as a bearer
	 * token. */
	if (*r->cfg->token_cookie && !in.authorization && !in.query_token &&
	    !(in.subprotocols && strstr(in.subprotocols, IDENT_SUBPROTOCOL_TOKEN))) {
		int cl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
		char *cookies = cl > 0 ? xmalloc((size_t)cl + 1) : NULL;
		size_t vl;
		const char *v =
			cookies && lws_hdr_copy(wsi, cookies, cl + 1, WSI_TOKEN_HTTP_COOKIE) == cl
				? admission_cookie(cookies, (size_t)cl, r->cfg->token_cookie, &vl)
				: NULL;
		if (v && vl + 8 >= sizeof auth) {
			free(cookies);
			return reject(r, wsi, ADMISSION_AUTH, 401, "the %s cookie is too long",
				      r->cfg->token_cookie);
		}
		if (v) {
			snprintf(auth, sizeof auth, "Bearer %.*s", (int)vl, v);
			in.authorization = auth;
		}
		free(cookies);
	}
	if (peer_addr(wsi, &peer))
		in.peer = (struct sockaddr *)&peer;
	size_t len;
	int rc = ident_check(r->ident, &in, now_wall_ms() / 1000, id, cap, &len, why, sizeof why);
	if (rc < 0) {
		enum admission_reason rr = rc == IDENT_ENOID    ? ADMISSION_NO_ID
					   : rc == IDENT_EBADID ? ADMISSION_BAD_ID
								: ADMISSION_AUTH;
		if (rc == IDENT_ENOID || rc == IDENT_EBADID)
			return reject(r, wsi, rr, 400, "%s", why);
		return reject(r, wsi, rr, (unsigned int)ident_http_status(rc), "%s", why);
	}
	return (int)len;
}

/* The per-address token bucket (--handshakes-per-ip). */
static bool rate_ok(struct router *r, struct lws *wsi)
{
	struct sockaddr_storage ss;
	uint8_t key[16];
	if (!peer_addr(wsi, &ss))
		return true;
	admission_addr_key((struct sockaddr *)&ss, key);
	return admission_rate_take(&r->rate, key, now_mono_ms());
}

int handshake_position(struct lws *wsi, uint32_t *p, int64_t *off)
{
	char hbuf[ADMISSION_MAX_POSITION + 2], qbuf[ADMISSION_MAX_POSITION + 2];
	int hn = lws_hdr_custom_length(wsi, "x-kws-position:", 15);
	if (hn >= (int)sizeof hbuf)
		return -1;
	if (hn >= 0 && lws_hdr_custom_copy(wsi, hbuf, sizeof hbuf, "x-kws-position:", 15) != hn)
		return -1;
	int qn = query_arg(wsi, "position", qbuf, sizeof qbuf);
	if (qn == -2 && hn < 0)
		return -1;
	return admission_position(hn >= 0 ? hbuf : NULL, hn >= 0 ? (size_t)hn : 0,
				  qn >= 0 ? qbuf : NULL, qn >= 0 ? (size_t)qn : 0, p, off);
}

/* What lws 4.1.6 would otherwise refuse by hanging up without an answer,
 * and the repeated headers that it would silently take the first of: each
 * refused here with a status and a reason. 0 or -1 (refused). */
static int upgrade_checks(struct router *r, struct lws *wsi)
{
	char buf[512];
	int n = custom(wsi, ADMISSION_HDR_DUP ":", buf, sizeof buf);
	if (n != -1) /* door.c names them: "x-client-id", "authorization" or both */
		return reject(r, wsi, ADMISSION_DUPLICATE, 400,
			      "repeated header (%s): send each of the id and Authorization once",
			      n >= 0 ? buf : "id, authorization");
	if (!header(wsi, WSI_TOKEN_CONNECTION, buf, sizeof buf) || !strcasestr(buf, "upgrade"))
		return reject(r, wsi, ADMISSION_BAD_REQUEST, 400,
			      "not a WebSocket upgrade: want Connection: Upgrade");
	if (!header(wsi, WSI_TOKEN_VERSION, buf, sizeof buf) || strcmp(buf, "13") != 0)
		return reject(r, wsi, ADMISSION_BAD_REQUEST, 426, "want Sec-WebSocket-Version: 13");
	n = lws_hdr_total_length(wsi, WSI_TOKEN_KEY);
	if (n <= 0 || n >= 64 || lws_hdr_total_length(wsi, WSI_TOKEN_HOST) <= 0)
		return reject(r, wsi, ADMISSION_BAD_REQUEST, 400,
			      "a WebSocket upgrade needs Host and Sec-WebSocket-Key");
	/* The list lws chooses from (the entries that are not tokens): it takes
	 * at most 127 bytes and names under 64, and hangs up when it knows
	 * none of them. */
	n = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);
	if (n <= 0)
		return 0;
	if (n >= 127 || !header(wsi, WSI_TOKEN_PROTOCOL, buf, sizeof buf))
		return reject(
			r, wsi, ADMISSION_SUBPROTOCOL, 400,
			"too many subprotocols offered: offer kws.v1 (and a kws.token. entry)");
	bool known = false;
	for (char *save = NULL, *e = strtok_r(buf, ", \t", &save); e;
	     e = strtok_r(NULL, ", \t", &save)) {
		if (strlen(e) >= 64)
			return reject(r, wsi, ADMISSION_SUBPROTOCOL, 400,
				      "a subprotocol name is too long");
		known |= strcmp(e, "kws.v1") == 0 || strcmp(e, "kws") == 0;
	}
	if (!known)
		return reject(r, wsi, ADMISSION_SUBPROTOCOL, 400,
			      "no subprotocol this router speaks: offer kws.v1");
	return 0;
}

int handshake_check(struct router *r, struct lws *wsi)
{
	char uri[512], id[4096];
	if (r->draining)
		return reject(r, wsi, ADMISSION_DRAINING, 503,
			      "this router is draining; connect to another one");
	if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
		return reject(r, wsi, ADMISSION_BAD_PATH, 400, "no request path");
	char *q = strchr(uri, '?');
	if (q)
		*q = '\0';
	if (strcmp(uri, "/ws") != 0)
		return reject(r, wsi, ADMISSION_BAD_PATH, 404,
			      "no WebSocket endpoint at %.200s; use /ws", uri);
	if (!rate_ok(r, wsi))
		return reject(r, wsi, ADMISSION_LIMIT, 429,
			      "too many handshakes from this address; slow down");
	if (upgrade_checks(r, wsi) < 0)
		return -1;
	if (!origin_allowed(r, wsi))
		return reject(r, wsi, ADMISSION_ORIGIN, 403, "this Origin is not allowed");
	if (r->sessions.count >= (size_t)r->cfg->max_connections)
		return reject(r, wsi, ADMISSION_LIMIT, 503,
			      "this router is full; connect to another one");
	int n = identify(r, wsi, id, sizeof id);
	if (n < 0)
		return -1;
	if (!admission_id_ok(id, (size_t)n, (size_t)r->cfg->max_id_bytes))
		return reject(r, wsi, ADMISSION_BAD_ID, 400,
			      "a client id is 1..%ld bytes of UTF-8 without control characters",
			      r->cfg->max_id_bytes);
	if (sessions_for_client(&r->sessions, id, (size_t)n, NULL, NULL) >=
	    (size_t)r->cfg->max_sessions_per_id)
		return reject(r, wsi, ADMISSION_LIMIT, 429, "too many sessions for this client id");
	uint32_t pp;
	int64_t po;
	if (handshake_position(wsi, &pp, &po) < 0)
		return reject(r, wsi, ADMISSION_BAD_POSITION, 400,
			      "malformed position: want <partition>:<offset>, e.g. 3:1234");
	if (!r->routes.partition_count)
		return reject(r, wsi, ADMISSION_NOT_READY, 503,
			      "no edge has reported the partitions yet; retry shortly");
	/* Keep the verified id for ESTABLISHED (freed there, or at WSI_DESTROY). */
	lws_set_opaque_user_data(wsi, xstrndup(id, (size_t)n));
	return 0;
}

char *handshake_take_id(struct lws *wsi)
{
	char *id = lws_get_opaque_user_data(wsi);
	lws_set_opaque_user_data(wsi, NULL);
	return id;
}
