/*
 * peer: one end of a router<->edge link as the protocol sees it
 * (common/PROTOCOL.md): the numbering of each direction, the handshake
 * (CHALLENGE, HELLO, EDGE_HELLO with its echo and, with a link secret, the
 * HMAC proofs of common/linkauth.h), the decode-error policy (unknown type,
 * other version, malformed, gap -> HELLO or RESYNC) and sending (peer_send
 * numbers and encodes a message). The router and the edge keep one per link
 * and see only application messages and a few events. Pure over a transport
 * (struct peer_io: a chan in the programs, a fake in the tests), wire and
 * linkauth: no lws, no rdkafka, no loop.
 */
#ifndef KWS_PEER_H
#define KWS_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "linkauth.h"
#include "wire.h"

enum peer_role {
	PEER_ROUTER, /* dials; sends HELLO, checks EDGE_HELLO */
	PEER_EDGE,   /* accepts; sends CHALLENGE and EDGE_HELLO, checks HELLO */
};

enum peer_state {
	PEER_DOWN = 0,   /* no connection (router: or waiting for CHALLENGE) */
	PEER_HELLO_SENT, /* router: HELLO sent, its EDGE_HELLO not received */
	PEER_UP,         /* numbering running: application messages flow */
	PEER_WAIT_HELLO, /* edge: connected, no HELLO passed yet */
	PEER_DESYNCED,   /* edge: gap seen, RESYNC sent; waiting for HELLO */
};
#define PEER_NSTATES 5
/* "down", "hello-sent", "up", "wait-hello", "desynced". */
const char *peer_state_name(enum peer_state s);

/* The transport under a peer. send queues one whole message (copied) and
 * returns 0 or a negative error (the transport is then closing); close
 * closes the connection; set_recv_max raises the largest frame accepted
 * (the edge does it once a HELLO has passed). */
struct peer_io {
	int (*send)(void *arg, const void *buf, size_t len);
	void (*close)(void *arg);
	void (*set_recv_max)(void *arg, size_t max);
	const char *(*address)(void *arg); /* for logs */
	void *arg;
	/* Optional: as send, but takes buf (malloc'ed) on 0; on failure the
	 * caller still owns it. A DELIVER batch goes this way, uncopied. */
	int (*send_take)(void *arg, void *buf, size_t len);
};

struct peer_stats {
	uint64_t gaps;          /* messages out of numbering */
	uint64_t malformed;     /* did not decode (other version included) */
	uint64_t unknown;       /* of a type this side does not know */
	uint64_t auth_failures; /* a HELLO / EDGE_HELLO without the right proof */
	uint64_t resyncs;       /* router: HELLOs after a gap; edge: RESYNCs sent */
	uint64_t send_failed;   /* sends the transport refused */
};

/* One link's protocol state. Fields are read-only outside peer.c. It holds
 * no pointer into itself, so it may be moved (e.g. in a realloc'd array)
 * while no call is running. */
struct peer {
	enum peer_role role;
	enum peer_state state;
	const struct linkauth_secret *secret; /* borrowed; none: no authentication */
	const char *self_id; /* borrowed: router_id / edge_id, sent in the hellos */
	char name[128];      /* for logs: "edge tcp://...", "router link 3" */
	struct peer_io io;   /* io.send NULL: not connected */
	uint64_t tx_seq;     /* last number sent */
	uint64_t rx_expect;  /* number expected next */
	uint64_t hello_seq;  /* router: of its latest HELLO; edge: of the HELLO answered */
	uint64_t hellos;     /* edge: HELLOs passed on this connection */
	bool have_nonce;     /* router: the CHALLENGE arrived on this connection */
	bool warned;         /* a bad message was logged (once per peer) */
	uint8_t edge_nonce[LINKAUTH_NONCE];   /* the CHALLENGE's */
	uint8_t router_nonce[LINKAUTH_NONCE]; /* of the latest HELLO */
	char *peer_id;         /* the other side's router_id / edge_id from its latest
				* hello (kept across reconnects), NULL before */
	struct wire_buf out;   /* a message being sent */
	struct wire_buf batch; /* edge: the DELIVER being built, when batch_open */
	bool batch_open;
	struct peer_stats st;
};

/* Initialises p (not connected). secret and self_id are borrowed and must
 * outlive p. A router's HELLO numbers start at a random multiple of 2^16, so
 * that no earlier run's HELLO is mistaken for a new one. */
void peer_init(struct peer *p, enum peer_role role, const struct linkauth_secret *secret,
	       const char *self_id, const char *name);
/* Frees what p holds. Accepts a zeroed or freed peer. */
void peer_free(struct peer *p);

/* A new connection over io (copied; its arg must live until peer_detach):
 * the numbering starts afresh. The edge sends CHALLENGE; the router sends
 * HELLO at once without a secret, else when the CHALLENGE comes. Returns 0,
 * or a negative error from the first send. */
int peer_attach(struct peer *p, const struct peer_io *io);
/* The same over a chan (borrowed: it must outlive the attachment). */
int peer_attach_chan(struct peer *p, struct chan *ch);
/* The connection ended: p is DOWN, an open batch is dropped. */
void peer_detach(struct peer *p);
/* Closes the connection (the transport reports the end later). */
void peer_close(struct peer *p);

/* What peer_recv leaves to the caller. */
enum peer_event {
	PEER_NONE = 0, /* nothing: handled by the protocol, or ignored */
	PEER_MSG,      /* an application message in *m (after the numbering
			* check): handle it, then wire_msg_free(m) */
	PEER_HELLO,    /* the handshake passed. Edge: *m is the HELLO; drop the
			* link's subscriptions and answer with peer_send(EDGE_HELLO).
			* Router: *m is the matching, authentic EDGE_HELLO; the link
			* is UP; take its assignment. Then wire_msg_free(m). */
	PEER_RESYNC,   /* the numbering was lost (gap, malformed message, RESYNC
			* from the edge). Router: a new HELLO went out; forget the
			* edge's partitions. Edge: RESYNC went out (once until
			* HELLO); forget the link's subscriptions. */
	PEER_CLOSED,   /* the policy closed the connection (failed
			* authentication; router: other version). Router: forget
			* the edge's partitions. */
};

/* Handles one received frame buf[0..len) (which must outlive *m): decodes
 * it and applies the numbering, handshake and error policy. Returns the
 * event; *m needs wire_msg_free only after PEER_MSG and PEER_HELLO. */
enum peer_event peer_recv(struct peer *p, const void *buf, size_t len, struct wire_msg *m);

/* Numbers, encodes and sends m (its seq is ignored): every type but DELIVER
 * (see peer_deliver). HELLO (router) gets a new HELLO seq, our id and, with a
 * secret, a fresh nonce and our proof; EDGE_HELLO (edge) gets seq 1, our id,
 * the echo of the HELLO answered and our proof; CHALLENGE gets seq 0 and the
 * connection's nonce (fields of m that the peer fills are ignored). An open
 * DELIVER batch is sent first, so records batched earlier come first.
 * Returns 0, -ENOTCONN when not connected, -EINVAL for DELIVER or an unknown
 * type, or the transport's error (then counted in st.send_failed). */
int peer_send(struct peer *p, const struct wire_msg *m);

/* Edge: adds record rec for sids[0..n) to the link's DELIVER batch, and
 * sends the batch once it holds batch_bytes or more. Returns 0, or
 * -ENOTCONN when no HELLO has passed on this connection (nothing is added). */
int peer_deliver(struct peer *p, const struct wire_record *rec, const uint64_t *sids, uint32_t n,
		 size_t batch_bytes);
/* Sends the open DELIVER batch, if any. 0 or the send's error. */
int peer_flush(struct peer *p);

#endif
