/* deflate: see deflate.h. */
#include "deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmd.h"
#include "router_int.h"
#include "util.h"

/* The router's compressor: a 1 KiB window (2^10) and zlib memLevel 4, about
 * 12 KiB of zlib state per session that has been sent a message instead of
 * 256 KiB at zlib's defaults (15, 8). A smaller window than the client
 * allows is always valid (RFC 7692 7.1.2.1). */
#define DEFLATE_SERVER_WINDOW 10
#define DEFLATE_MEM_LEVEL 4
/* What the router lets a client compress with when the client says it can
 * be limited (client_max_window_bits in its offer, as browsers send): the
 * router's inflater then needs a 1 KiB window instead of 32 KiB. Upstream
 * messages are few; their compression matters less than the memory. */
#define DEFLATE_CLIENT_WINDOW 10

#define EXT_LINE "Sec-WebSocket-Extensions: permessage-deflate\r\n"

/* lws 4.1.6's private view of an extension's payload buffers and its
 * PAYLOAD_RX answers (lib/roles/ws/private-lib-roles-ws.h and
 * lib/core-net/private-lib-core-net.h at v4.1.6), for the workaround below. */
struct lws_ext_pm_deflate_rx_ebufs {
	struct lws_tokens eb_in, eb_out;
};
#define PMDR_HAS_PENDING 2

/* Our instance of the extension: lws's, and where the compressed input it
 * has not inflated yet lives.
 *
 * Workaround for lws < 4.4.0 (fixed upstream by 8d4079884 "pmd: revert
 * #3014 and drain extensions before next ssl read", in v4.4.0): lws hands
 * the inflater a pointer into its read buffer (shared by the thread's
 * connections) or into the connection's frame buffer; when the message's
 * tail inflates to more than the 1 KiB output buffer, the inflater keeps
 * the rest of its input there ("has pending") while lws reads the next
 * bytes into the same buffer. The message then comes out with other
 * contents (Autobahn 12.2.9, 12.2.10, 13.7.10: large compressible
 * messages). So each new input is first copied here, and inflated from
 * here, and not overwritten while the inflater has some of it left. */
struct instance {
	void *lws_priv;    /* lws's pm_deflate instance */
	unsigned char *in; /* the copy of the input being inflated */
	size_t cap;        /* its size */
	bool pending;      /* lws said "has pending": in is still in use */
};

static int payload_rx(struct lws_context *cx, const struct lws_extension *ext, struct lws *wsi,
		      struct instance *in, struct lws_ext_pm_deflate_rx_ebufs *eb, size_t len)
{
	if ((LWS_LIBRARY_VERSION_NUMBER) >= 4004000 || in->pending || !eb->eb_in.token ||
	    eb->eb_in.len <= 0) {
		int n = lws_extension_callback_pm_deflate(cx, ext, wsi, LWS_EXT_CB_PAYLOAD_RX,
							  in->lws_priv, eb, len);
		in->pending = n == PMDR_HAS_PENDING;
		return n;
	}
	size_t need = (size_t)eb->eb_in.len;
	if (need > in->cap) {
		unsigned char *b = realloc(in->in, need);
		if (!b)
			return -1;
		in->in = b;
		in->cap = need;
	}
	memcpy(in->in, eb->eb_in.token, need);
	struct lws_ext_pm_deflate_rx_ebufs copy = *eb;
	copy.eb_in.token = in->in;
	int n = lws_extension_callback_pm_deflate(cx, ext, wsi, LWS_EXT_CB_PAYLOAD_RX, in->lws_priv,
						  &copy, len);
	in->pending = n == PMDR_HAS_PENDING;
	/* Where the caller's input stands, as lws would have left it. */
	eb->eb_in.token += copy.eb_in.token - in->in;
	eb->eb_in.len = copy.eb_in.len;
	eb->eb_out = copy.eb_out;
	return n;
}

/* No options: lws would echo the client's value-less parameters itself
 * (and only those); the answer is pmd's, added by deflate_add_headers. */
static const struct lws_ext_options no_options[] = { { NULL, EXTARG_NONE } };

/* Sets one of lws's pm_deflate settings (by its name in lws's table) on
 * the extension instance priv. */
static void set_option(struct lws_context *cx, const struct lws_extension *ext, struct lws *wsi,
		       void *priv, const char *name, int val)
{
	char v[8];
	snprintf(v, sizeof v, "%d", val);
	struct lws_ext_option_arg oa = { name, 0, v, (int)strlen(v) };
	lws_extension_callback_pm_deflate(cx, ext, wsi, LWS_EXT_CB_NAMED_OPTION_SET, priv, &oa, 0);
}

/* lws's pm_deflate, set up at construction from the connection's answer.
 * lws 4.1.6 (extension-permessage-deflate.c, unchanged in lws main) names
 * its settings from a client's point of view, so on this server:
 *  - compressor window: "client_max_window_bits" (the vhost does not
 *    listen: args[PMD_SERVER_MAX_WINDOW_BITS + (listen_port <= 0)]);
 *  - inflater window: "server_max_window_bits";
 *  - compressor reset after each message: "client_no_context_takeover";
 *  - inflater reset after each message: "server_no_context_takeover".
 * A reset frees the zlib state (deflateEnd/inflateEnd) until the next
 * message. */
static int ext_callback(struct lws_context *cx, const struct lws_extension *ext, struct lws *wsi,
			enum lws_extension_callback_reasons reason, void *user, void *in,
			size_t len)
{
	struct instance *inst = user;
	switch (reason) {
	case LWS_EXT_CB_CONSTRUCT:
		break;
	case LWS_EXT_CB_PAYLOAD_RX:
		return payload_rx(cx, ext, wsi, inst, in, len);
	case LWS_EXT_CB_DESTROY: {
		int n = lws_extension_callback_pm_deflate(cx, ext, wsi, reason, inst->lws_priv, in,
							  len);
		free(inst->in);
		free(inst);
		return n;
	}
	default:
		/* The named options arrive without an instance for some
		 * reasons (lws_set_extension_option passes ours). */
		return lws_extension_callback_pm_deflate(cx, ext, wsi, reason,
							 inst ? inst->lws_priv : NULL, in, len);
	}
	struct conn *c = lws_wsi_user(wsi);
	if (!c || !c->pmd.server_window)
		return 1; /* not negotiated by deflate_confirm */
	if (lws_get_vhost_listen_port(lws_get_vhost(wsi)) > 0) {
		/* lws would size its compressor from server_max_window_bits,
		 * which it also uses for its inflater: not handled. */
		log_error("permessage-deflate: the lws vhost listens itself; declined");
		return 1;
	}
	void *priv = NULL;
	int n = lws_extension_callback_pm_deflate(cx, ext, wsi, reason, &priv, in, len);
	if (n)
		return n;
	inst = calloc(1, sizeof *inst);
	if (!inst) {
		lws_extension_callback_pm_deflate(cx, ext, wsi, LWS_EXT_CB_DESTROY, priv, NULL, 0);
		return 1;
	}
	inst->lws_priv = priv;
	*(struct instance **)user = inst;
	if (in)
		*(const struct lws_ext_options **)in = no_options;
	const struct pmd_answer *a = &c->pmd;
	set_option(cx, ext, wsi, priv, "client_max_window_bits", a->server_window);
	/* zlib's inflater takes any window at least the sender's; 9 at least
	 * because lws turns an 8 into 9 for its compressor's sake. */
	set_option(cx, ext, wsi, priv, "server_max_window_bits",
		   a->client_window < 9 ? 9 : a->client_window);
	set_option(cx, ext, wsi, priv, "client_no_context_takeover", a->server_no_takeover);
	set_option(cx, ext, wsi, priv, "server_no_context_takeover", a->client_no_takeover);
	set_option(cx, ext, wsi, priv, "mem_level", DEFLATE_MEM_LEVEL);
	c->deflate = true;
	return 0;
}

const struct lws_extension deflate_extensions[] = {
	{ "permessage-deflate", ext_callback, "permessage-deflate; client_max_window_bits" },
	{ NULL, NULL, NULL }
};

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
