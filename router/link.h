/*
 * link: the router's connection to one edge: a loopchan (framed messages
 * over TCP, read and written on the router's loop, dialed again whenever
 * the connection ends) and the link's protocol state (common/peer.h:
 * numbering, handshake, error policy). Everything runs on the router's loop.
 */
#ifndef KWS_LINK_H
#define KWS_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "linkauth.h"
#include "loopchan.h"
#include "peer.h"

/* Bounds of one link (PROTOCOL.md, "Transport"). */
#define LINK_MAX_QUEUE (64u * 1024 * 1024)

struct link {
	int index;
	char *url;
	struct loopchan *conn; /* dials, and redials after every end */
	bool connected;        /* a connection is attached to the peer */
	struct peer peer;      /* the protocol: state (PEER_UP: subscriptions may
				* be sent), edge id, error counts; peer_send */
	bool upstream;         /* the edge accepts UP (from its EDGE_HELLO) */
	bool retired;          /* its edge vanished from DNS: the slot is free */
	bool from_dns;         /* found by --edges-dns (else from --edges) */
	int64_t connected_ms;
	/* counters */
	uint64_t connects, received;
};

/* Starts dialing url on loop; news(arg) is called on the loop when the link
 * has news. router_id and secret are borrowed (they go into every HELLO) and
 * must outlive the link. 0, or -1 with a message in err. The link may be
 * moved (the router's array of links grows) between calls. */
int link_open(struct link *l, uv_loop_t *loop, int index, const char *url, const char *router_id,
	      const struct linkauth_secret *secret, loopchan_news_fn news, void *arg, char *err,
	      size_t errlen);
void link_close(struct link *l);

/* Takes the next frame from the edge: 1 with buf/len set (hand it to
 * peer_recv), 0 when none is waiting, -1 when the connection ended (the
 * link is then DOWN and redialing; the caller drops the edge's routes).
 * Also picks up a new connection: then *connected is set and the peer has
 * started the handshake (HELLO at once, or after the CHALLENGE with a
 * secret). */
int link_recv(struct link *l, const void **buf, size_t *len, bool *connected);

#endif
