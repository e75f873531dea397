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

/* Refuses an upgrade with an HTTP status and a reason in the body; counts
 * it. Returns -1 (what the filter callback returns). */
static int reject(struct router *r, struct lws *wsi, enum admission_reason why,
		  unsigned int status, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int reject(struct router *r, struct lws *wsi, enum admission_reason why,
		  unsigned int status, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->rejected[why]++;
	log_debug("handshake refused: %u %s", status, msg);
	lws_return_http_status(wsi, status, msg);
	return -1;
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
	in.subprotocols = header(wsi, WSI_TOKEN_PROTOCOL, protos, sizeof protos);
	int qn = query_arg(wsi, "access_token", qtok, sizeof qtok);
	if (qn == -2)
		return reject(r, wsi, ADMISSION_AUTH, 401, "the access_token is too long");
	in.query_token = qn >= 0 ? qtok : NULL;
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
	if (!origin_allowed(r, wsi))
		return reject(r, wsi, ADMISSION_ORIGIN, 403, "this Origin is not allowed");
	if (r->sessions.count >= (size_t)r->cfg->max_connections)
		return reject(r, wsi, ADMISSION_LIMIT, 503,
			      "this router is full; connect to another one");
	int n = identify(r, wsi, id, sizeof id);
	if (n < 0)
		return -1;
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
