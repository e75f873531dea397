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
