/*
 * link: the router's connection to one edge: an nng pair1 socket that dials
 * the edge and redials on its own, the link's numbering (PROTOCOL.md,
 * "Numbering") and its state. nng reports pipe changes on its own threads;
 * link records them atomically and calls wake(), and the router's loop then
 * calls link_poll_pipe() on its own thread.
 */
#ifndef KWS_LINK_H
#define KWS_LINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "wire.h"

enum link_state {
	LINK_DOWN = 0,   /* no pipe */
	LINK_HELLO_SENT, /* HELLO sent on the current pipe, no EDGE_HELLO yet */
	LINK_UP,         /* EDGE_HELLO received: subscriptions may be sent */
};
const char *link_state_name(enum link_state s);

struct link {
	int index;
	char *url;
	nng_socket sock;
	nng_dialer dialer;
	int recv_fd;             /* readable while a message waits (NNG_OPT_RECVFD) */
	_Atomic uint32_t pipe_now; /* set by nng's thread: current pipe, 0 none */
	uint32_t pipe;           /* the pipe the router works with */
	enum link_state state;
	uint64_t tx_seq;
	uint64_t rx_expect;
	char *edge_id;
	bool upstream;
	bool warned; /* a bad message was logged on this link */
	struct wire_buf out;
	void (*wake)(void *arg);
	void *wake_arg;
	/* counters */
	uint64_t sent, send_failed, received, gaps, malformed, unknown, resyncs;
};

/* Opens the socket and starts dialing url in the background. wake(arg) is
 * called from nng's threads whenever the pipe changes. 0 or -1 (logged). */
int link_open(struct link *l, int index, const char *url, void (*wake)(void *), void *arg);
void link_close(struct link *l);

/* Sends the message in l->out (encoded by the caller with seq link_next_seq()).
 * Returns 0, or -1 if the transport refused it: the link then restarts with
 * HELLO, which resubscribes its sessions. */
int link_send(struct link *l);
uint64_t link_next_seq(struct link *l);

/* Starts the link on a new pipe: resets numbering and sends HELLO. */
int link_hello(struct link *l, const char *router_id);

/* Checks a received message's number: true if it is the expected one
 * (and advances), false on a gap. EDGE_HELLO restarts the numbering. */
bool link_check_seq(struct link *l, const struct wire_msg *m);

#endif
