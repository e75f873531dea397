/*
 * recbuf: one received record's value, reference-counted, shared by every
 * session queue that holds the record, and written to each client socket
 * from the same memory (ws.c). Pure; single-threaded (the router's loop).
 */
#ifndef KWS_RECBUF_H
#define KWS_RECBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct recbuf {
	uint32_t refs;
	uint32_t len;
	int8_t utf8; /* -1 not checked yet, 0 not valid UTF-8, 1 valid */
	unsigned char data[];
};

/* A buffer holding a copy of data[0..len) with one reference, the caller's.
 * Aborts on out-of-memory (xmalloc). */
struct recbuf *recbuf_new(const void *data, size_t len);
/* Takes another reference to b and returns b. */
struct recbuf *recbuf_ref(struct recbuf *b);
/* Drops one reference; the last one frees b. Accepts NULL. */
void recbuf_unref(struct recbuf *b);
/* The bytes b keeps allocated (header and data), what a queue holding it is
 * charged. */
size_t recbuf_cost(const struct recbuf *b);
/* True if b's data is valid UTF-8 (wsframe_utf8_valid), checked once per
 * buffer whatever the number of sessions that ask. */
bool recbuf_utf8(struct recbuf *b);

#endif
