/* deflate: see deflate.h. */
#include "deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmd.h"
#include "pmdz.h"
#include "router_int.h"
#include "util.h"

/* The router's compressor: a 1 KiB window (2^10) and zlib memLevel 4, about
 * 12 KiB of zlib state per session that has been sent a message instead of
 * 256 KiB at zlib's defaults (15, 8). A smaller window than the client
 * allows is always valid (RFC 7692 7.1.2.1). */
#define DEFLATE_SERVER_WINDOW 10
#define DEFLATE_MEM_LEVEL 4
/* zlib level 1 (fastest), as lws's codec used: records are compressed
 * once per session that receives them, so the CPU per message counts more
 * than the last few percent of size. */
#define DEFLATE_LEVEL 1
/* What the router lets a client compress with when the client says it can
 * be limited (client_max_window_bits in its offer, as browsers send): the
 * router's inflater then needs a 1 KiB window instead of 32 KiB. Upstream
 * messages are few; their compression matters less than the memory. */
#define DEFLATE_CLIENT_WINDOW 10

#define EXT_LINE "Sec-WebSocket-Extensions: permessage-deflate\r\n"

/* What lws 4.1.6 hands an extension's payload callbacks, and the answers
 * it understands (lib/roles/ws/private-lib-roles-ws.h and
 * lib/core-net/private-lib-core-net.h at v4.1.6; the same in lws main). */
struct lws_ext_pm_deflate_rx_ebufs {
	struct lws_tokens eb_in, eb_out;
};
enum {
	PMDR_UNKNOWN,
	PMDR_DID_NOTHING,
	PMDR_HAS_PENDING, /* never answered here: see deflate.h */
	PMDR_EMPTY_NONFINAL,
	PMDR_EMPTY_FINAL,
	PMDR_NOTHING_WE_SHOULD_DO,
	PMDR_FAILED = -1
};
/* The RSV1 bit as lws_get_reserved_bits() reports it (rsv = byte0 & 0x70). */
#define RSV1 0x40

/* Our instance of the extension on one connection. */
struct instance {
	struct pmdz z;
	bool rx_msg;    /* inside a compressed message (its first frame had RSV1) */
	bool rx_failed; /* a message did not inflate: the rest is dropped, 1007 sent */
	bool tx_out;    /* the frame lws frames next carries our output: set RSV1 */
};

/* No options: lws would echo the client's value-less parameters itself
 * (and only those); the answer is pmd's, added by deflate_add_headers. */
static const struct lws_ext_options no_options[] = { { NULL, EXTARG_NONE } };

static int construct(struct lws *wsi, struct instance **user, const struct lws_ext_options **opts)
{
	struct conn *c = lws_wsi_user(wsi);
	if (!c || !c->pmd.server_window)
		return 1; /* not negotiated by deflate_confirm */
	struct instance *inst = calloc(1, sizeof *inst);
	if (!inst)
		return 1;
	const struct pmd_answer *a = &c->pmd;
	/* zlib's inflater takes any window at least the sender's; 9 at
	 * least (zlib 1.2.9+ refuses 8 for raw streams in deflate, and some
	 * versions in inflate). */
	pmdz_init(&inst->z, a->server_window, a->client_window < 9 ? 9 : a->client_window,
		  DEFLATE_MEM_LEVEL, DEFLATE_LEVEL, a->server_no_takeover, a->client_no_takeover,
		  (size_t)router_of(wsi)->cfg->max_frame_bytes, LWS_PRE);
	*user = inst;
	if (opts)
		*opts = no_options;
	c->deflate = true;
	c->dz = &inst->z;
	return 0;
}

/* Tells lws that all len bytes of eb_in were taken and that the result is
 * out[0..n) (the codec's buffer, valid until its next call). */
static void ebufs_consumed(struct lws_ext_pm_deflate_rx_ebufs *eb, size_t len, unsigned char *out,
			   size_t n)
{
	if (eb->eb_in.token)
		eb->eb_in.token += len;
	eb->eb_in.len = 0;
	eb->eb_out.token = out;
	eb->eb_out.len = (int)n;
}

/* A compressed message's next bytes (eb_in) inflated into eb_out, all at
 * once. lws tells the message's last bytes by lws_is_final_fragment(),
 * which is right here because this callback never leaves lws draining.
 *
 * Which calls belong to a compressed message: its first frame has RSV1
 * (lws_get_reserved_bits() gives the current frame's), its continuation
 * frames have not. lws calls once more, with nothing, after the last bytes
 * of a frame it read in bulk (without calling the protocol back): that
 * call (RSV1, no bytes, the message's end) must not inflate the 00 00 FF
 * FF trailer a second time (it would corrupt a kept context), so it opens
 * no message and gives an empty one, as does a whole message of one empty
 * RSV1 frame (RFC 7692 wants at least 00 there; taken as empty). A first
 * frame without bytes that is not the last opens the message. A Pong with
 * a payload between the frames of a compressed message would be taken for
 * its bytes (lws gives an extension no way to tell): browsers answer the
 * router's empty Pings with empty Pongs, which lws never hands to an
 * extension. */
static int payload_rx(struct lws *wsi, struct instance *inst,
		      struct lws_ext_pm_deflate_rx_ebufs *eb)
{
	size_t len = eb->eb_in.token && eb->eb_in.len > 0 ? (size_t)eb->eb_in.len : 0;
	bool rsv1 = lws_get_reserved_bits(wsi) & RSV1;
	bool fin = lws_is_final_fragment(wsi);
	if (inst->rx_failed) {
		ebufs_consumed(eb, len, (unsigned char *)"", 0);
		return fin ? PMDR_EMPTY_FINAL : PMDR_EMPTY_NONFINAL;
	}
	if (!inst->rx_msg) {
		if (!rsv1)
			return PMDR_NOTHING_WE_SHOULD_DO; /* not compressed: as it is */
		if (len == 0 && fin) {
			/* Nothing to inflate: an empty message. */
			eb->eb_out.token = eb->eb_in.token;
			eb->eb_out.len = 0;
			return PMDR_EMPTY_FINAL;
		}
		inst->rx_msg = true;
	}
	unsigned char *out;
	size_t n;
	if (pmdz_inflate(&inst->z, (const unsigned char *)eb->eb_in.token, len, fin, &out, &n) <
	    0) {
		/* 1007 (RFC 7692 8.2.3.3 fails the connection), written by the
		 * writeable callback as the router's other Closes are: failing
		 * here (PMDR_FAILED) made lws hang up without a Close frame.
		 * What the client sends until then is dropped, not delivered. */
		struct conn *c = lws_wsi_user(wsi);
		inst->rx_failed = true;
		if (c && !c->close_code) {
			c->close_code = LWS_CLOSE_STATUS_INVALID_PAYLOAD;
			snprintf(c->close_reason, sizeof c->close_reason, "bad compressed data");
			lws_callback_on_writable(wsi);
		}
		ebufs_consumed(eb, len, (unsigned char *)"", 0);
		return fin ? PMDR_EMPTY_FINAL : PMDR_EMPTY_NONFINAL;
	}
	ebufs_consumed(eb, len, out, n);
	if (fin)
		inst->rx_msg = false;
	return fin ? PMDR_EMPTY_FINAL : PMDR_EMPTY_NONFINAL;
}

/* A message's bytes (eb_in; wp: lws_write's protocol, LWS_WRITE_NO_FIN
 * when more follow) compressed into eb_out, all at once, with LWS_PRE in
 * front for lws's frame header. */
static int payload_tx(struct instance *inst, struct lws_ext_pm_deflate_rx_ebufs *eb, size_t wp)
{
	bool fin = !(wp & LWS_WRITE_NO_FIN);
	unsigned char *out;
	size_t n;
	size_t len = eb->eb_in.token && eb->eb_in.len > 0 ? (size_t)eb->eb_in.len : 0;
	if (pmdz_deflate(&inst->z, (const unsigned char *)eb->eb_in.token, len, fin, &out, &n) < 0)
		return PMDR_FAILED;
	ebufs_consumed(eb, len, out, n);
	inst->tx_out = n > 0;
	return fin ? PMDR_EMPTY_FINAL : PMDR_EMPTY_NONFINAL;
}

/* The frame lws is about to send (t: header and payload): RSV1 on the
 * first frame of a compressed message (RFC 7692 6), not on a continuation
 * nor a control frame. */
static void presend(struct instance *inst, struct lws_tokens *t)
{
	if (!inst->tx_out || !t || !t->token || t->len < 1)
		return;
	inst->tx_out = false;
	unsigned op = t->token[0] & 0x0f;
	if (op == 0x1 || op == 0x2) /* text, binary */
		t->token[0] |= 0x40;
}

/* The router's permessage-deflate extension for lws (deflate.h). */
static int ext_callback(struct lws_context *cx, const struct lws_extension *ext, struct lws *wsi,
			enum lws_extension_callback_reasons reason, void *user, void *in,
			size_t len)
{
	(void)cx;
	(void)ext;
	struct instance *inst = user;
	switch (reason) {
	case LWS_EXT_CB_CONSTRUCT:
		return construct(wsi, user, in);
	case LWS_EXT_CB_DESTROY:
		if (inst) {
			/* lws destroys extensions before it frees the
			 * connection's user data: it must not keep a pointer. */
			struct conn *c = lws_wsi_user(wsi);
			if (c && c->dz == &inst->z)
				c->dz = NULL;
			pmdz_free(&inst->z);
			free(inst);
		}
		return 0;
	case LWS_EXT_CB_PAYLOAD_RX:
		return inst ? payload_rx(wsi, inst, in) : PMDR_NOTHING_WE_SHOULD_DO;
	case LWS_EXT_CB_PAYLOAD_TX:
		return inst ? payload_tx(inst, in, len) : PMDR_FAILED;
	case LWS_EXT_CB_PACKET_TX_PRESEND:
		if (inst)
			presend(inst, in);
		return 0;
	default:
		return 0;
	}
}

const struct lws_extension deflate_extensions[] = {
	{ "permessage-deflate", ext_callback, "permessage-deflate; client_max_window_bits" },
	{ NULL, NULL, NULL }
};

void deflate_trim(struct conn *c)
{
	if (c && c->dz)
		pmdz_trim(c->dz);
}

int deflate_confirm(struct router *r, struct lws *wsi, struct conn *c, const char *ext_name)
{
	char hdr[1024];
	if (!c || !ext_name || strcmp(ext_name, "permessage-deflate") != 0)
		return 1;
	int n = lws_hdr_copy(wsi, hdr, sizeof hdr, WSI_TOKEN_EXTENSIONS);
	if (n <= 0)
		return 1;
	struct pmd_limits lim = { DEFLATE_SERVER_WINDOW, DEFLATE_CLIENT_WINDOW,
				  r->cfg->deflate_no_takeover };
	if (pmd_negotiate(hdr, &lim, &c->pmd) != 1) {
		memset(&c->pmd, 0, sizeof c->pmd);
		log_debug("permessage-deflate: no acceptable offer in '%s'", hdr);
		return 1;
	}
	return 0;
}

int deflate_add_headers(struct conn *c, struct lws_process_html_args *args)
{
	if (!c || !c->deflate)
		return 0;
	char params[PMD_PARAMS_MAX];
	int n = pmd_format(&c->pmd, params, sizeof params);
	size_t line = strlen(EXT_LINE);
	/* lws 4.1.6 (server-ws.c, handshake_0405) writes the extension line
	 * last, then "\r\n", then calls us at args->p; the status line and
	 * Sec-WebSocket-Accept before it are longer than EXT_LINE, so the
	 * bytes looked at are the response's. */
	if (n < 0 || n > args->max_len || memcmp(args->p - line, EXT_LINE, line) != 0) {
		log_error("permessage-deflate: no extension line to complete in the response");
		return -1;
	}
	memcpy(args->p - 2, params, (size_t)n);
	memcpy(args->p - 2 + n, "\r\n", 2);
	args->p += n;
	args->max_len -= n;
	return 0;
}
