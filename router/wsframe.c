/* wsframe: see wsframe.h. */
#include "wsframe.h"

size_t wsframe_header(unsigned char *out, unsigned opcode, uint64_t len)
{
	size_t n = 0;
	out[n++] = (unsigned char)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		out[n++] = (unsigned char)len;
	} else if (len < 65536) {
		out[n++] = 126;
		out[n++] = (unsigned char)(len >> 8);
		out[n++] = (unsigned char)len;
	} else {
		out[n++] = 127;
		for (int k = 7; k >= 0; k--)
			out[n++] = (unsigned char)(len >> (8 * k));
	}
	return n;
}

size_t wsframe_header_len(uint64_t len)
{
	return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

bool wsframe_utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above U+10FFFF */
		} else {
			return false; /* a continuation byte, 0xc0, 0xc1 or 0xf5.. */
		}
		if (len - i <= n)
			return false; /* truncated */
		if (p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
		i += n + 1;
	}
	return true;
}
