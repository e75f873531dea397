/* wsguard: see wsguard.h. */
#include "wsguard.h"

#define OP_PING 0x9

/* The header is complete: start its payload. */
static void header_done(struct wsguard *g)
{
	uint8_t l7 = g->hdr[1] & 0x7f;
	uint64_t n = l7;
	if (l7 == 126) {
		n = ((uint64_t)g->hdr[2] << 8) | g->hdr[3];
	} else if (l7 == 127) {
		n = 0;
		for (int k = 2; k < 10; k++)
			n = (n << 8) | g->hdr[k];
	}
	g->left = n;
	g->ping = (g->hdr[0] & 0x0f) == OP_PING;
	g->hlen = 0;
	g->need = 0;
}

size_t wsguard_scan(struct wsguard *g, const uint8_t *p, size_t len, enum wsguard_verdict *v)
{
	*v = WSGUARD_GO;
	if (g->failed) {
		*v = WSGUARD_UNMASKED;
		return 0;
	}
	size_t i = 0;
	size_t hdr_from = SIZE_MAX; /* where in p the current header began, if in p */
	while (i < len) {
		if (g->left) {
			uint64_t k = len - i < g->left ? len - i : g->left;
			g->left -= k;
			i += (size_t)k;
			if (g->left)
				continue;
			g->frames++;
			if (g->ping) {
				g->ping = false;
				*v = WSGUARD_PING;
				return i;
			}
			continue;
		}
		if (g->hlen == 0)
			hdr_from = i;
		uint8_t b = p[i++];
		g->hdr[g->hlen++] = b;
		if (g->hlen == 2) {
			if (!(b & 0x80)) {
				g->failed = true;
				*v = WSGUARD_UNMASKED;
				/* A header begun in an earlier read is lws's already. */
				return hdr_from == SIZE_MAX ? 0 : hdr_from;
			}
			uint8_t l7 = b & 0x7f;
			g->need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4);
		}
		if (g->need && g->hlen == g->need) {
			header_done(g);
			if (g->left)
				continue;
			g->frames++; /* no payload */
			if (g->ping) {
				g->ping = false;
				*v = WSGUARD_PING;
				return i;
			}
		}
	}
	return i;
}
