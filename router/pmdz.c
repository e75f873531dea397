/* pmdz: see pmdz.h. */
#include "pmdz.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char trailer[4] = { 0x00, 0x00, 0xff, 0xff };

void pmdz_init(struct pmdz *z, int tx_window, int rx_window, int mem_level, int level,
	       bool tx_no_takeover, bool rx_no_takeover, size_t max_message, size_t tx_headroom)
{
	memset(z, 0, sizeof *z);
	z->tx_window = tx_window;
	z->rx_window = rx_window;
	z->mem_level = mem_level;
	z->level = level;
	z->tx_no_takeover = tx_no_takeover;
	z->rx_no_takeover = rx_no_takeover;
	z->max_message = max_message;
	z->tx_headroom = tx_headroom;
}

void pmdz_free(struct pmdz *z)
{
	if (z->rx_init)
		inflateEnd(&z->rx);
	if (z->tx_init)
		deflateEnd(&z->tx);
	free(z->rbuf);
	free(z->tbuf);
	z->rx_init = z->tx_init = false;
	z->rbuf = z->tbuf = NULL;
	z->rcap = z->tcap = 0;
	z->rx_total = 0;
	z->rx_ended = false;
}

/* Makes *buf at least need bytes (doubling), keeping its contents.
 * Returns 0 or -1 (out of memory: *buf unchanged). */
static int grow(unsigned char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 1024;
	while (n < need)
		n *= 2;
	unsigned char *b = realloc(*buf, n);
	if (!b)
		return -1;
	*buf = b;
	*cap = n;
	return 0;
}

int pmdz_inflate(struct pmdz *z, const unsigned char *in, size_t len, bool fin, unsigned char **out,
		 size_t *out_len)
{
	if (!z->rx_init) {
		memset(&z->rx, 0, sizeof z->rx);
		if (inflateInit2(&z->rx, -z->rx_window) != Z_OK)
			return -1;
		z->rx_init = true;
	}
	/* At most this much more output for this message: the limit plus one
	 * byte, so the caller sees that it was passed. */
	size_t limit = z->max_message + 1;
	size_t room = z->rx_total < limit ? limit - z->rx_total : 0;
	size_t used = 0;
	bool trailer_given = false;
	z->rx.next_in = (unsigned char *)in;
	z->rx.avail_in = (uInt)len;
	for (;;) {
		if (z->rx.avail_in == 0) {
			if (!fin || trailer_given || z->rx_ended)
				break;
			z->rx.next_in = (unsigned char *)trailer;
			z->rx.avail_in = sizeof trailer;
			trailer_given = true;
		}
		if (z->rx_ended || used >= room) {
			/* Past a final block, or past the limit: input dropped. */
			z->rx.avail_in = 0;
			continue;
		}
		size_t want = len * 2 + 256;
		if (want > room - used)
			want = room - used;
		/* +1: a writable byte after the output (lws writes a NUL). */
		if (grow(&z->rbuf, &z->rcap, used + want + 1) < 0)
			return -1;
		size_t avail = z->rcap - used - 1;
		if (avail > room - used)
			avail = room - used;
		z->rx.next_out = z->rbuf + used;
		z->rx.avail_out = (uInt)avail;
		int rc = inflate(&z->rx, Z_SYNC_FLUSH);
		used += avail - z->rx.avail_out;
		if (rc == Z_STREAM_END) {
			z->rx_ended = true;
		} else if (rc == Z_BUF_ERROR) {
			/* No progress possible: only if the output is full
			 * (loop to grow it) or the input is used up. */
			if (z->rx.avail_out && z->rx.avail_in)
				return -1;
		} else if (rc != Z_OK) {
			return -1;
		}
	}
	if (!z->rbuf && grow(&z->rbuf, &z->rcap, 1) < 0)
		return -1;
	z->rbuf[used] = 0;
	*out = z->rbuf;
	*out_len = used;
	z->rx_total += used;
	if (fin) {
		z->rx_total = 0;
		/* A final deflate block ends the stream: the next message
		 * starts a new one whatever the takeover setting. */
		if (z->rx_no_takeover || z->rx_ended) {
			inflateEnd(&z->rx);
			z->rx_init = false;
		}
		z->rx_ended = false;
	}
	return 0;
}

int pmdz_deflate(struct pmdz *z, const unsigned char *in, size_t len, bool fin, unsigned char **out,
		 size_t *out_len)
{
	if (!z->tx_init) {
		memset(&z->tx, 0, sizeof z->tx);
		if (deflateInit2(&z->tx, z->level, Z_DEFLATED, -z->tx_window, z->mem_level,
				 Z_DEFAULT_STRATEGY) != Z_OK)
			return -1;
		z->tx_init = true;
	}
	size_t h = z->tx_headroom, used = 0;
	z->tx.next_in = (unsigned char *)in;
	z->tx.avail_in = (uInt)len;
	for (;;) {
		/* deflateBound is for a whole stream; a little more covers
		 * the flush's empty stored block. */
		size_t want = deflateBound(&z->tx, z->tx.avail_in) + 16;
		if (grow(&z->tbuf, &z->tcap, h + used + want) < 0)
			return -1;
		size_t avail = z->tcap - h - used;
		z->tx.next_out = z->tbuf + h + used;
		z->tx.avail_out = (uInt)avail;
		int rc = deflate(&z->tx, fin ? Z_SYNC_FLUSH : Z_NO_FLUSH);
		used += avail - z->tx.avail_out;
		if (rc == Z_BUF_ERROR)
			break; /* nothing to do (no input, flushed already) */
		if (rc != Z_OK)
			return -1;
		if (z->tx.avail_in == 0 && z->tx.avail_out != 0)
			break;
	}
	unsigned char *o = z->tbuf + h;
	if (fin) {
		if (used >= 4 && memcmp(o + used - 4, trailer, 4) == 0)
			used -= 4;
		if (used == 0)
			o[used++] = 0x00;
		if (z->tx_no_takeover) {
			deflateEnd(&z->tx);
			z->tx_init = false;
		}
	}
	*out = o;
	*out_len = used;
	return 0;
}

void pmdz_trim(struct pmdz *z)
{
	if (z->rcap > PMDZ_KEEP_BYTES) {
		free(z->rbuf);
		z->rbuf = NULL;
		z->rcap = 0;
	}
	if (z->tcap > PMDZ_KEEP_BYTES + z->tx_headroom) {
		free(z->tbuf);
		z->tbuf = NULL;
		z->tcap = 0;
	}
}
