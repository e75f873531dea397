/*
 * pmdz: the permessage-deflate codec (RFC 7692 7.2) of one connection, on
 * zlib's raw deflate. Pure (zlib only, no lws): deflate.c feeds it what
 * lws reads and writes.
 *
 * Every call takes all of its input and returns all of its output at
 * once, in a buffer the codec owns and grows (bounded: see max_message),
 * so nothing is left pending between calls: no input pointer into a
 * caller's buffer is kept, and no "more output later" state exists (lws
 * 4.1.6's own codec keeps both, and loses or misplaces bytes with them,
 * README "Compression").
 *
 * The zlib streams are set up at the first message of each direction and,
 * with no_context_takeover on that side, freed after each message. The
 * output buffers live for one message: pmdz_trim frees those larger than
 * PMDZ_KEEP_BYTES, 0 (a malloc per message costs far less than its
 * compression, and 1 to 3 KiB per idle session add up).
 */
#ifndef KWS_PMDZ_H
#define KWS_PMDZ_H

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>

#define PMDZ_KEEP_BYTES 0

struct pmdz {
	/* Settings (pmdz_init). */
	int tx_window;       /* the compressor's window bits, 9..15 */
	int rx_window;       /* the inflater's window bits, 8..15 */
	int mem_level;       /* zlib memLevel of the compressor, 1..9 */
	int level;           /* zlib compression level, 0..9 */
	bool tx_no_takeover; /* reset the compressor after each message */
	bool rx_no_takeover; /* reset the inflater after each message */
	size_t max_message;  /* inflate at most this many bytes (+1) per message */
	size_t tx_headroom;  /* bytes kept free in front of the compressed output */

	/* State. */
	z_stream rx, tx;
	bool rx_init, tx_init;
	bool rx_ended;       /* the message had a final deflate block: rest ignored */
	size_t rx_total;     /* bytes inflated of the current message */
	unsigned char *rbuf; /* inflated output of the last call */
	size_t rcap;
	unsigned char *tbuf; /* tx_headroom, then the compressed output */
	size_t tcap;
};

/* Sets z's settings and zeroes its state (nothing is allocated). */
void pmdz_init(struct pmdz *z, int tx_window, int rx_window, int mem_level, int level,
	       bool tx_no_takeover, bool rx_no_takeover, size_t max_message, size_t tx_headroom);

/* Frees z's zlib streams and buffers; z can be used again (as after
 * pmdz_init). Accepts a zeroed z. */
void pmdz_free(struct pmdz *z);

/* Inflates in[0..len), the next compressed bytes of a message, and, if fin
 * (they are its last), the 00 00 FF FF that the sender removed (RFC 7692
 * 7.2.2). On success *out points to the inflated bytes (valid until the
 * next call; one writable byte follows them), *out_len is their count, and
 * 0 is returned. Output stops once the message exceeds max_message: then
 * *out_len makes the message max_message + 1 bytes long at most, the rest
 * is dropped, and the caller is expected to refuse the message (1009).
 * Returns -1 on corrupt input (1007) or out of memory. */
int pmdz_inflate(struct pmdz *z, const unsigned char *in, size_t len, bool fin, unsigned char **out,
		 size_t *out_len);

/* Compresses in[0..len), the next bytes of a message; if fin, they are its
 * last: the output is flushed and ends without 00 00 FF FF (an empty
 * message is the single byte 00, RFC 7692 7.2.3.6). On success *out
 * points to the compressed bytes, with tx_headroom writable bytes before
 * them (valid until the next call), *out_len is their count, and 0 is
 * returned; -1 if zlib fails or out of memory. */
int pmdz_deflate(struct pmdz *z, const unsigned char *in, size_t len, bool fin, unsigned char **out,
		 size_t *out_len);

/* Frees an output buffer larger than PMDZ_KEEP_BYTES (call when the
 * output of the last calls is no longer used: after a whole message). */
void pmdz_trim(struct pmdz *z);

#endif
