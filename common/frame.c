/* frame: see frame.h. */
#include "frame.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct frame *frame_out(const void *buf, size_t len, void *take)
{
	struct frame *f = xmalloc(sizeof *f + 4 + (take ? 0 : len));
	f->next = NULL;
	f->len = (uint32_t)len;
	uint32_t n = htonl((uint32_t)len);
	memcpy(f->data, &n, 4);
	if (take) {
		f->body = take;
	} else {
		f->body = f->data + 4;
		memcpy(f->body, buf, len);
	}
	return f;
}

const char *frame_refusal(size_t len, size_t max_msg, size_t queued, size_t max_queue,
			  const char *too_slow)
{
	if (len == 0)
		return "empty message (the wire has no empty frames)";
	if (len > max_msg)
		return "message over the size limit";
	if (queued + 4 + len > max_queue)
		return too_slow;
	return NULL;
}

void frame_free(struct frame *f)
{
	if (f && f->body && f->body != f->data + 4)
		free(f->body);
	free(f);
}

void frame_list_free(struct frame *f)
{
	while (f) {
		struct frame *next = f->next;
		frame_free(f);
		f = next;
	}
}

void frame_read_cur(struct frame_reader *r, size_t n, void (*done)(void *arg, struct frame *f),
		    void *arg)
{
	r->cur_have += n;
	if (r->cur_have == r->cur->len) {
		struct frame *f = r->cur;
		r->cur = NULL;
		done(arg, f);
	}
}

const char *frame_read_spill(struct frame_reader *r, size_t n, size_t max,
			     void (*done)(void *arg, struct frame *f), void *arg)
{
	r->spill_len += n;
	size_t off = 0;
	while (r->spill_len - off >= 4) {
		uint32_t len;
		memcpy(&len, r->spill + off, 4);
		len = ntohl(len);
		if (len == 0 || len > max)
			return len ? "frame over the size limit" : "empty frame";
		struct frame *f = xmalloc(sizeof *f + len);
		f->next = NULL;
		f->len = len;
		f->body = NULL;
		size_t have = r->spill_len - off - 4;
		if (have > len)
			have = len;
		memcpy(f->data, r->spill + off + 4, have);
		off += 4 + have;
		if (have < len) { /* the rest is read straight into it */
			r->cur = f;
			r->cur_have = have;
			break;
		}
		done(arg, f);
	}
	memmove(r->spill, r->spill + off, r->spill_len - off);
	r->spill_len -= off;
	return NULL;
}
