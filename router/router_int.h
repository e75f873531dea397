/*
 * router internals: the state of one router, shared by its glue modules
 * (router.c run and tick, door.c accepting, ws.c clients, handshake.c
 * admission, pins.c pinning, edges.c edge links, ops.c admin). A client's
 * way: door -> ws (handshake -> admission, ident) -> pins; a record's way:
 * edges (DELIVER) -> sessions -> ws (write_batch). Every function takes the
 * struct router * explicitly; lws callbacks find it as the context's user
 * data (router_of). Not an API.
 */
#ifndef KWS_ROUTER_INT_H
#define KWS_ROUTER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <uv.h>

#include "admin.h"
#include "admission.h"
#include "link.h"
#include "metrics.h"
#include "pmd.h"
#include "pmdz.h"
#include "recvhook.h"
#include "config.h"
#include "routes.h"
#include "sessions.h"
#include "util.h"

/* Per-connection state, allocated by lws (per_session_data_size) and freed
 * by it after LWS_CALLBACK_CLOSED. */
struct conn {
	struct lws *wsi;
	struct session *s;
	/* On one of the router's connection lists (ws.c), or none: the
	 * keepalive's two, in the order of the client's last sign of life, so
	 * the tick looks only at the due; then the closing list. */
	struct conn *list_prev, *list_next;
	struct conn_list *list_on; /* NULL: on none */
	int64_t ka_alive_ms;       /* the client's last frame (or its upgrade) */
	bool ka_ping_due;          /* write a ping at the next writeable */
	bool ka_hangup;            /* silent for two intervals: hang up */
	int close_code;
	char close_reason[120];
	unsigned char *rx; /* a client message arriving in pieces (NULL otherwise) */
	size_t rxlen, rxcap;
	bool rx_text;
	/* The closing handshake (ws.c): once a Close went out or came in, no
	 * data frame is written, and the TCP connection is shut down
	 * WS_HANGUP_MS later if lws is still waiting for the client's Close
	 * (the router's closing list, in deadline order). */
	bool closing;
	int64_t hang_due_ms;   /* on the closing list: when to hang up */
	struct recvhook rxh;   /* unmasked frames and back-to-back Pings (recvhook.h) */
	bool deflate;          /* permessage-deflate is on (deflate.c set lws up) */
	struct pmd_answer pmd; /* its negotiated parameters (deflate_confirm) */
	struct pmdz *dz;       /* its codec, owned by lws's extension instance (deflate.c) */
	bool flush_listed;     /* on the router's flush list (router_flush_later) */
	/* Records are written by ws.c itself (ws_sock_writev), which needs
	 * recvhook's before_send: false with permessage-deflate or an
	 * unwatched socket (then lws_write, one message at a time). */
	bool direct;
	bool write_failed; /* a direct write failed: hang up at the next writeable */
};

/* A FIFO of connections (the keepalive's and the closing list, ws.c). */
struct conn_list {
	struct conn *head, *tail;
};

struct router {
	const struct router_config *cfg;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct sessions sessions;
	struct routes routes;
	struct link *links; /* [nlinks]; retired slots are reused */
	int nlinks;
	struct resolver *resolver;     /* --edges-dns, or NULL */
	struct ident *ident;           /* who clients are (--auth) */
	struct door *door;             /* accepts clients, hands them to lws (door.h) */
	struct tls_server *tls;        /* --tls-cert/--tls-key, or NULL (tls.h) */
	struct linkauth_secret secret; /* --link-secret: proves the edges and us */
	struct admission_rate rate;    /* handshake rate per source address */
	unsigned char *wbuf;           /* LWS_PRE + WRITE_BATCH_BYTES: batched frames */
	/* Connections whose queue got its first message since the last
	 * ws_flush (ws.c): written directly after the edges' input. */
	struct conn **flush;
	size_t nflush, flush_cap;
	/* Keepalive of our own, not lws's retry_and_idle_policy: lws 4.1 keeps
	 * each connection's ping timer in one sorted list and inserts by walking
	 * it, O(sessions) per ping and pong (issue 13). */
	/* Connections closing (ws.c start_closing), in deadline order: every
	 * one waits WS_HANGUP_MS, so appending keeps the order and one lws
	 * timer serves them all. A timer each made N sessions closing at once
	 * cost O(N^2) in lws's sorted timer list (15,000: 5.5 s of the loop). */
	struct conn_list closing;
	lws_sorted_usec_list_t hang_timer;
	struct conn_list ka_idle;   /* not pinged yet */
	struct conn_list ka_pinged; /* pinged, no answer yet */
	int64_t next_prune_ms;
	/* The event loop (libuv; lws runs on it as a foreign loop): one thread,
	 * epoll, so a wake-up costs what is ready, not what is connected. */
	uv_loop_t loop;
	uv_async_t wake;      /* router_wake(): any thread */
	uv_timer_t tick;      /* every TICK_MS: routes, links, drain, ops */
	uv_check_t tls_check; /* wss: reads plaintext left in TLS connections */
	uv_idle_t tls_idle;   /* keeps poll from blocking while any is left */
	uv_signal_t sigint, sigterm;
	int stop_requested; /* SIGINT/SIGTERM: 1 drains, 2 stops at once */
	bool retry_waiting;
	bool complete;       /* every partition has an owner */
	char id_header[128]; /* lowercase, with ':' as lws wants it */
	int id_header_len;
	/* operations (ops.c) */
	struct admin *admin;
	struct metrics *metrics;
	struct metrics_histogram *delay; /* record timestamp -> WebSocket write */
	bool draining;
	int64_t drain_deadline_ms;
	bool exit_after_drain;
	/* counters */
	uint64_t rejected[ADMISSION_NREASONS];
	uint64_t delivered, delivered_bytes, fenced, duplicates, not_live, slow_closed, upstream,
		upstream_bytes;
	uint64_t resumes, resumes_incomplete, throttles, repins, moves, drained;
	uint64_t text_as_binary; /* --message-type text: records sent binary (not UTF-8) */
	uint64_t short_writes;   /* writes cut inside a frame (ws.c write_batch) */
	size_t nthrottled;       /* sessions throttled now */
	int64_t next_stall_check_ms;
};

/* Makes the loop look at the door, the edge links and the admin endpoint
 * soon (router.c, on_wake). Any thread; many calls before the loop looks
 * are one. */
static inline void router_wake(struct router *r)
{
	uv_async_send(&r->wake);
}

/* The router a connection belongs to (the lws context's user data). */
static inline struct router *router_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/* The session of wsi got a first message in its queue (edges.c): lists its
 * connection for the next ws_flush (ws.h), which writes it directly,
 * without a trip through the event loop, when lws has nothing of its own to
 * send, else in its writeable callback. Once per connection until then. */
static inline void router_flush_later(struct router *r, struct lws *wsi)
{
	struct conn *c = lws_wsi_user(wsi);
	if (c->flush_listed)
		return;
	if (r->nflush == r->flush_cap) {
		r->flush_cap = r->flush_cap ? 2 * r->flush_cap : 256;
		r->flush = xrealloc(r->flush, r->flush_cap * sizeof *r->flush);
	}
	r->flush[r->nflush++] = c;
	c->flush_listed = true;
}

#endif
