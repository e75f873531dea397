/*
 * door: the router's front door for client connections. On its own thread
 * it accepts on --listen, reads each request head within bounds (at most
 * max_head bytes, within timeout_ms, at most max_waiting connections at
 * once), rewrites it (admission_rewrite_head) and queues (socket, head) for
 * the lws loop, which adopts the socket with the head as already read
 * (lws_adopt_socket_vhost_readbuf). It exists because lws 4.1.6 drops a
 * handshake whose Sec-WebSocket-Protocol list is 128 bytes or more (so no
 * browser can offer a real token there) without an HTTP answer, and keeps
 * only the first of repeated unknown headers. What the door refuses itself
 * (a head too large, too slow, or not HTTP; too many connections waiting,
 * in all or from one address) gets a plain-text answer (a slow one: none)
 * With cfg.tls, the door also terminates TLS: the handshake and the head
 * go through the TLS connection that recvhook's recv() finds (tls.h).
 * and is counted in door_refused. When accept() runs out of descriptors it
 * pauses accepting; its warnings are rate-limited.
 */
#ifndef KWS_ROUTER_DOOR_H
#define KWS_ROUTER_DOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admission.h"

struct door;
struct tls_server;

/* A connection whose head has arrived: the socket (non-blocking) and what
 * was read, with the head rewritten (buf[0..len)). The taker owns both. */
struct door_guest {
	struct door_guest *next;
	int fd;
	size_t len;
	char buf[];
};

struct door_config {
	const char *host; /* "" or NULL: every interface */
	long port;
	size_t max_head;             /* the longest request head accepted (--max-header-bytes) */
	int timeout_ms;              /* the head must arrive within this (--handshake-timeout-s) */
	size_t max_waiting;          /* connections whose head is still arriving */
	size_t max_waiting_per_addr; /* of those, from one source address (0: no cap);
				      * beyond: 429 at accept, counted as ADMISSION_LIMIT */
	const char *id_header;       /* e.g. "X-Client-Id" (duplicates are marked) */
	bool reuseport;              /* SO_REUSEPORT: several workers listen on the port and
				      * the kernel spreads connections (router --workers) */
	struct tls_server *tls;      /* wss only (tls.h; its reload runs on the door's
				      * thread), or NULL: plain ws */
	void (*wake)(void *arg);     /* called on the door's thread when guests wait */
	void *wake_arg;
};

/* Listens and starts the door's thread. Returns the door, or NULL with a
 * message in err (the address cannot be bound). cfg's strings must outlive
 * the door. */
struct door *door_start(const struct door_config *cfg, char *err, size_t errlen);
/* Stops the thread, closes the listening socket and every connection not
 * taken yet, frees the door. Accepts NULL. */
void door_stop(struct door *d);

/* Takes every guest that arrived (a list, oldest first; NULL if none). Any
 * thread. The caller owns the guests (free() each; close or hand on fd). */
struct door_guest *door_take(struct door *d);

/* How many times accept() failed for want of descriptors or memory (each
 * pauses accepts for 100 ms instead of spinning). Any thread. */
uint64_t door_accept_errors(const struct door *d);

/* How many connections the door refused for why (ADMISSION_TOO_LARGE,
 * ADMISSION_TIMEOUT, ADMISSION_BAD_REQUEST, ADMISSION_LIMIT). Any thread. */
uint64_t door_refused(const struct door *d, enum admission_reason why);

#endif
