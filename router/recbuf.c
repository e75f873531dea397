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
	b->data = b->own;
	b->frame = NULL;
	b->fprev = b->fnext = NULL;
	if (len)
		memcpy(b->own, data, len);
	return b;
}

struct recbuf *recbuf_ref(struct recbuf *b)
{
	b->refs++;
	return b;
}

/* Gives every live recbuf of f a copy of its own and frees f with its
 * memory. */
static void frame_release(struct recbuf_frame *f)
{
	for (struct recbuf *b = f->list, *next; b; b = next) {
		next = b->fnext;
		unsigned char *copy = xmalloc(b->len);
		memcpy(copy, b->data, b->len);
		b->data = copy;
		b->frame = NULL;
		b->fprev = b->fnext = NULL;
	}
	if (f->release && f->mem)
		f->release(f->mem);
	free(f);
}

/* Releases a closed frame when nothing (or too little) of it is queued. */
static void frame_check(struct recbuf_frame *f)
{
	if (!f->open && (!f->list || f->live * RECBUF_KEEP_DIV < f->size))
		frame_release(f);
}

void recbuf_unref(struct recbuf *b)
{
	if (!b || --b->refs > 0)
		return;
	struct recbuf_frame *f = b->frame;
	if (f) {
		if (b->fprev)
			b->fprev->fnext = b->fnext;
		else
			f->list = b->fnext;
		if (b->fnext)
			b->fnext->fprev = b->fprev;
		f->live -= b->len;
		frame_check(f);
	} else if (b->data != b->own) {
		free(b->data); /* copied out of a released frame */
	}
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

struct recbuf_frame *recbuf_frame_new(void)
{
	struct recbuf_frame *f = xcalloc(1, sizeof *f);
	f->open = true;
	return f;
}

struct recbuf *recbuf_in_frame(struct recbuf_frame *f, const void *data, size_t len)
{
	struct recbuf *b = xmalloc(sizeof *b);
	b->refs = 1;
	b->len = (uint32_t)len;
	b->utf8 = -1;
	b->data = (unsigned char *)data;
	b->frame = f;
	b->fprev = NULL;
	b->fnext = f->list;
	if (f->list)
		f->list->fprev = b;
	f->list = b;
	f->live += len;
	return b;
}

void recbuf_frame_close(struct recbuf_frame *f, void *mem, size_t size, void (*release)(void *mem))
{
	if (!f) {
		if (release && mem)
			release(mem);
		return;
	}
	f->mem = mem;
	f->size = size;
	f->release = release;
	f->open = false;
	if (!mem)
		frame_release(f); /* nothing to keep: its recbufs get copies now */
	else
		frame_check(f);
}
