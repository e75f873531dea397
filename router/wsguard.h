/*
 * wsguard: follows the frames a WebSocket client sends (RFC 6455 5.2) from
 * their headers alone, for what lws 4.1.6 does not do: it accepts unmasked
 * client frames (5.1 says fail the connection), and it keeps one Pong
 * pending, dropping every Ping that arrives in the same read (5.5.2 wants
 * a Pong for each). Pure; recvhook.c feeds it what a client socket holds
 * and lets lws read only what it allows.
 */
#ifndef KWS_WSGUARD_H
#define KWS_WSGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A client's stream position: zero-initialise it at the first byte after
 * the opening handshake. */
struct wsguard {
	uint8_t hdr[14]; /* the current frame's header so far */
	uint8_t hlen;    /* bytes in hdr */
	uint8_t need;    /* the header's full length once known, else 0 */
	uint64_t left;   /* payload bytes of the current frame still to come */
	bool ping;       /* the current frame is a Ping */
	bool failed;     /* an unmasked frame was seen: nothing more passes */
	uint64_t frames; /* frames passed whole (their last byte returned) */
};

enum wsguard_verdict {
	WSGUARD_GO,       /* all of it may be read */
	WSGUARD_PING,     /* read up to the end of a Ping; the rest after its Pong */
	WSGUARD_UNMASKED, /* an unmasked frame starts here: fail with 1002 */
};

/* Scans p[0..len), the next bytes of the client's stream (len > 0), and
 * returns how many of them lws may read now, with the verdict in *v: all of
 * them (WSGUARD_GO); those up to the end of the first whole Ping
 * (WSGUARD_PING), so that lws answers it before it reads the next one; or
 * those before the header of an unmasked frame (WSGUARD_UNMASKED; possibly
 * 0, and from then on every call returns 0 with that verdict). The state
 * advances by exactly the bytes returned (except after UNMASKED), so the
 * rest is scanned again next time. */
size_t wsguard_scan(struct wsguard *g, const uint8_t *p, size_t len, enum wsguard_verdict *v);

#endif
