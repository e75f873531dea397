/*
 * pmd: the router's answer to a client's permessage-deflate offers (RFC
 * 7692). Parses a Sec-WebSocket-Extensions request header (RFC 6455 9.1:
 * offers separated by ",", parameters by ";", values a token or a
 * quoted-string), takes the first permessage-deflate offer the router can
 * accept, and says what to answer and how to set up the compressor and the
 * inflater. Pure (no lws, no zlib); deflate.c applies it.
 */
#ifndef KWS_PMD_H
#define KWS_PMD_H

#include <stdbool.h>
#include <stddef.h>

/* What the router allows (its configuration). */
struct pmd_limits {
	int server_window;       /* the most window bits of the router's compressor, 9..15 */
	int client_window;       /* the most the router lets a client compress with, 8..15 */
	bool server_no_takeover; /* the router drops its compressor's context after
				  * each message even if the client did not ask */
};

/* The negotiated parameters of one connection (all zero: none). */
struct pmd_answer {
	unsigned char server_window; /* the router's compressor: window bits, 9..15 */
	unsigned char client_window; /* what the client may compress with, 8..15: the
				      * router's inflater needs that window */
	bool server_no_takeover;     /* the router resets its compressor after a message */
	bool client_no_takeover;     /* the client resets its compressor after a message */
	bool say_server_window;      /* answer server_max_window_bits (it was offered) */
	bool say_client_window;      /* answer client_max_window_bits (it was offered) */
};

/* Looks at the permessage-deflate offers in header (the request's
 * Sec-WebSocket-Extensions value, NUL-terminated) in order and answers the
 * first acceptable one into *out. An offer is declined, and the next one
 * looked at, if it has an unknown or repeated parameter, a parameter with a
 * missing, malformed or out-of-range value (window bits: 8..15 without
 * leading zeros), or server_max_window_bits=8 (zlib's raw deflate has no
 * 256-byte window: the router cannot compress within it). Returns 1 if an
 * offer was accepted, 0 if none was (or there was none, or the header is
 * malformed: the connection then goes on without compression). */
int pmd_negotiate(const char *header, const struct pmd_limits *lim, struct pmd_answer *out);

/* Writes the answer's parameters as they follow "permessage-deflate" in
 * the response header ("; server_no_context_takeover; ...;
 * client_max_window_bits=10", or "" if none) into buf[0..len), NUL-terminated.
 * Returns their length, or -1 if buf is too small (PMD_PARAMS_MAX fits). */
int pmd_format(const struct pmd_answer *a, char *buf, size_t len);
#define PMD_PARAMS_MAX 128

#endif
