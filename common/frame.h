/*
 * frame: the link's framing, shared by both of its ends (common/chan.c on
 * nng's threads at the edge, router/loopchan.c on the router's libuv loop):
 * each message is a 4-byte big-endian length, then that many bytes
 * (PROTOCOL.md, "Framing"). A struct frame is one message, as queued to be
 * sent or as received; a received one is read straight into its own
 * allocation, which the owner may keep instead of copying from it.
 */
#ifndef KWS_FRAME_H
#define KWS_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct frame {
	struct frame *next;
	uint32_t len;
	char *body;  /* to send: the len bytes, data + 4 or taken */
	char data[]; /* received: the frame's bytes; to send: the 4-byte
		      * header, then the bytes unless they were taken */
};

/* A message to send: len bytes copied from buf, or, with take (malloc'ed),
 * take itself, which the frame then owns. */
struct frame *frame_out(const void *buf, size_t len, void *take);
/* Why a message of len bytes may not join a send queue of queued bytes
 * (its close reason), or NULL if it may. too_slow names the peer. */
const char *frame_refusal(size_t len, size_t max_msg, size_t queued, size_t max_queue,
			  const char *too_slow);
/* Frees a frame and what it took; accepts NULL. */
void frame_free(struct frame *f);
/* Frees a list of frames linked by next. */
void frame_list_free(struct frame *f);

/* Receiving: bytes are read into the rest of cur when a frame is being
 * filled, else into the spill; between reads either cur is being filled and
 * the spill is empty, or cur is NULL and the spill holds less than a
 * header. */
struct frame_reader {
	char *spill;
	size_t spill_len;
	struct frame *cur; /* the frame being read, cur_have bytes of it in */
	size_t cur_have;
};

/* Takes n bytes read into cur: calls done(arg, cur) once it is whole. */
void frame_read_cur(struct frame_reader *r, size_t n, void (*done)(void *arg, struct frame *f),
		    void *arg);
/* Takes n bytes read into the spill: every whole frame there goes to
 * done(arg, f), and the one it holds only the start of becomes cur (its
 * rest is to be read straight into it). NULL, or why the stream is bad
 * (a header of 0 or over max bytes). */
const char *frame_read_spill(struct frame_reader *r, size_t n, size_t max,
			     void (*done)(void *arg, struct frame *f), void *arg);

#endif
