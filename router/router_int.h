/*
 * router internals shared by router.c (lws callbacks, sessions and edges)
 * and ops.c (the admin endpoint: health, metrics, the JSON API, drain). Not
 * an API.
 */
#ifndef KWS_ROUTER_INT_H
#define KWS_ROUTER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "admin.h"
#include "link.h"
#include "metrics.h"
#include "router.h"
#include "routes.h"
#include "sessions.h"

/* Why a handshake was refused (metrics label). */
enum reject_reason {
	REJECT_NO_ID, REJECT_EMPTY_ID, REJECT_LONG_ID, REJECT_BAD_ID, REJECT_BAD_PATH,
	REJECT_NOT_READY, REJECT_BAD_POSITION, REJECT_DRAINING, REJECT_AUTH, REJECT_ORIGIN,
	REJECT_LIMIT, REJECT_OTHER, REJECT_NREASONS
};
extern const char *const reject_reason_names[REJECT_NREASONS];

/* Per-connection state, allocated by lws (per_session_data_size) and freed
 * by it after LWS_CALLBACK_CLOSED. */
struct conn {
	struct session *s;
	int close_code;
	char close_reason[120];
	unsigned char *rx; /* a client message being reassembled */
	size_t rxlen;
	bool rx_text;
};

struct router {
	const struct router_config *cfg;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	struct sessions sessions;
	struct routes routes;
	struct link *links; /* [nlinks]; retired slots are reused */
	int nlinks;
	struct resolver *resolver; /* --edges-dns, or NULL */
	struct ident *ident;       /* who clients are (--auth) */
	struct linkauth_secret secret; /* --link-secret: proves the edges and us */
	struct hmap buckets;       /* handshake rate per source address */
	unsigned char *wbuf;       /* LWS_PRE + WRITE_BATCH_BYTES: batched frames */
	int64_t next_prune_ms;
	lws_sorted_usec_list_t tick;
	bool retry_waiting;
	bool complete; /* every partition has an owner */
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
	uint64_t rejected[REJECT_NREASONS];
	uint64_t delivered, delivered_bytes, fenced, duplicates, not_live, slow_closed, upstream,
		upstream_bytes;
	uint64_t resumes, resumes_incomplete, throttles, repins, moves, drained;
	size_t nthrottled; /* sessions throttled now */
	int64_t next_stall_check_ms;
};

extern struct router *R;

/* router.c */
/* Closes a client with code and reason, in its next writeable callback. */
void close_client(struct session *s, int code, const char *reason);

/* ops.c */
/* Starts the admin endpoint (if --admin-listen is not empty) and registers
 * the metrics. 0 or -1 (logged). */
int ops_start(struct router *r);
void ops_stop(struct router *r);
/* Every loop turn / tick: runs admin handlers, advances a drain. */
void ops_tick(struct router *r);
/* Starts draining: no new clients, sessions closed with 1012 over deadline_ms. */
void ops_drain(struct router *r, int64_t deadline_ms, bool then_exit);
/* True once a drain that should end the process has closed every session
 * (or passed its deadline). */
bool ops_drained(struct router *r);

#endif
