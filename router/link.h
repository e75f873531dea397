/*
 * link: the router's connection to one edge: a chan (framed messages over a
 * TCP stream) that a chan_dialer re-establishes whenever it ends, plus the
 * link's numbering (PROTOCOL.md, "Numbering") and state. nng signals news on
 * its own threads through the wake callback; everything else runs on the
 * router's loop.
 */
#ifndef KWS_LINK_H
#define KWS_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "chan.h"
#include "linkauth.h"
#include "wire.h"

enum link_state {
	LINK_DOWN = 0,   /* not connected */
	LINK_HELLO_SENT, /* HELLO sent, its EDGE_HELLO not received yet */
	LINK_UP,         /* EDGE_HELLO received: subscriptions may be sent */
};
const char *link_state_name(enum link_state s);

/* Bounds of one link (PROTOCOL.md, "Transport"). */
#define LINK_MAX_QUEUE (64u * 1024 * 1024)

struct link {
	int index;
	char *url;
	struct chan_dialer *dialer;
	struct chan *ch;       /* NULL while disconnected */
	enum link_state state;
	uint64_t hello_seq;    /* seq of the latest HELLO (never reused) */
	uint64_t tx_seq;
	uint64_t rx_expect;
	char *edge_id;
	bool upstream;
	bool warned;           /* a bad message was logged on this link */
	bool retired;          /* its edge vanished from DNS: the slot is free */
	bool from_dns;         /* found by --edges-dns (else from --edges) */
	bool have_nonce;       /* the edge's CHALLENGE arrived on this connection */
	uint8_t edge_nonce[LINKAUTH_NONCE];
	uint8_t router_nonce[LINKAUTH_NONCE]; /* of our latest HELLO */
	int64_t connected_ms;
	uint64_t auth_failures;
	struct wire_buf out;
	chan_wake_fn wake;
	void *wake_arg;
	/* counters */
	uint64_t connects, received, gaps, malformed, unknown, resyncs;
};

/* Starts dialing url in the background; wake(arg) is called from nng's
 * threads when the link has news. 0, or -1 with a message in err. */
int link_open(struct link *l, int index, const char *url, chan_wake_fn wake, void *arg,
	      char *err, size_t errlen);
void link_close(struct link *l);

/* Sends the message encoded in l->out (with seq link_next_seq()). Returns 0,
 * or -1 if the link is down or its queue overflowed (it then closes, and the
 * router sees the end in link_recv()). */
int link_send(struct link *l);
uint64_t link_next_seq(struct link *l);

/* Restarts the numbering and sends HELLO (on connect, and after a gap); with
 * a secret, the HELLO carries our proof over the edge's nonce. */
int link_hello(struct link *l, const char *router_id, const struct linkauth_secret *secret);
/* With a secret: is the EDGE_HELLO's proof right for this connection? */
bool link_edge_authentic(const struct link *l, const struct linkauth_secret *secret,
			 const struct wire_edge_hello *h);

/* Takes the next message from the edge: 1 with buf/len set, 0 when none is
 * waiting, -1 when the connection ended (the link is then DOWN and redialing;
 * the caller drops the edge's routes). Also picks up a new connection: then
 * *connected is set and the caller says HELLO. */
int link_recv(struct link *l, const void **buf, size_t *len, bool *connected);

/* Checks a received message's number: true if it is the expected one (and
 * advances), false on a gap. */
bool link_check_seq(struct link *l, const struct wire_msg *m);

#endif
