/* recbuf: see recbuf.h. */
#include "recbuf.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wsframe.h"

struct recbuf *recbuf_new(const void *data, size_t len)
{
	struct recbuf *b = xmalloc(sizeof *b + len);
	b->refs = 1;
	b->len = (uint32_t)len;
	b->utf8 = -1;
	if (len)
		memcpy(b->data, data, len);
	return b;
}

struct recbuf *recbuf_ref(struct recbuf *b)
{
	b->refs++;
	return b;
}

void recbuf_unref(struct recbuf *b)
{
	if (b && --b->refs == 0)
		free(b);
}

size_t recbuf_cost(const struct recbuf *b)
{
	return sizeof *b + b->len;
}

bool recbuf_utf8(struct recbuf *b)
{
	if (b->utf8 < 0)
		b->utf8 = wsframe_utf8_valid(b->data, b->len) ? 1 : 0;
	return b->utf8 == 1;
}
