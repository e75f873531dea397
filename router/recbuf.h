/*
 * recbuf: one received record's value, reference-counted, shared by every
 * session queue that holds the record, and written to each client socket
 * from the same memory (ws.c). A value either has its own copy or points
 * into the link message it arrived in (a recbuf_frame), kept while its
 * records are queued. Pure; single-threaded (the router's loop).
 */
#ifndef KWS_RECBUF_H
#define KWS_RECBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values shorter than this are copied (recbuf_new) rather than pointed to
 * in their frame: a short copy costs less than keeping a frame alive. */
#define RECBUF_REF_MIN 1024u

/*
 * One received link message whose bytes recbufs point into. The frame's
 * memory is kept while its recbufs live, with one rule that bounds what it
 * keeps (README, "How records are written"): once the value bytes of its
 * live recbufs fall below a quarter of its size (RECBUF_KEEP_DIV), those
 * recbufs get copies of their own and the frame is released. So a frame
 * never keeps more than 4x the value bytes the session queues are charged
 * for, however few records of it are still queued.
 */
#define RECBUF_KEEP_DIV 4u
struct recbuf_frame {
	void *mem; /* given to release when the frame goes (NULL until closed) */
	void (*release)(void *mem);
	size_t size;         /* bytes the frame's memory holds allocated */
	size_t live;         /* value bytes of its live recbufs */
	struct recbuf *list; /* its live recbufs */
	bool open;           /* not closed yet: neither released nor compacted */
};

struct recbuf {
	uint32_t refs;
	uint32_t len;
	int8_t utf8;                  /* -1 not checked yet, 0 not valid UTF-8, 1 valid */
	unsigned char *data;          /* the value: own[], a frame's bytes, or a copy */
	struct recbuf_frame *frame;   /* the frame data points into, or NULL */
	struct recbuf *fprev, *fnext; /* in frame->list */
	unsigned char own[];
};

/* A buffer holding a copy of data[0..len) with one reference, the caller's.
 * Aborts on out-of-memory (xmalloc). */
struct recbuf *recbuf_new(const void *data, size_t len);
/* Takes another reference to b and returns b. */
struct recbuf *recbuf_ref(struct recbuf *b);
/* Drops one reference; the last one frees b (and may release or compact
 * its frame, see struct recbuf_frame). Accepts NULL. */
void recbuf_unref(struct recbuf *b);
/* The bytes b keeps allocated (header and data), what a queue holding it is
 * charged. */
size_t recbuf_cost(const struct recbuf *b);
/* True if b's data is valid UTF-8 (wsframe_utf8_valid), checked once per
 * buffer whatever the number of sessions that ask. */
bool recbuf_utf8(struct recbuf *b);

/* An open frame (its memory and size are given when it is closed). */
struct recbuf_frame *recbuf_frame_new(void);
/* A buffer with one reference, the caller's, whose value is data[0..len)
 * inside f's memory (not copied). f must be open; data must stay valid
 * until f is closed, and after that as long as recbuf_frame_close's mem. */
struct recbuf *recbuf_in_frame(struct recbuf_frame *f, const void *data, size_t len);
/* Closes f once its recbufs are made: mem (the memory they point into,
 * size bytes allocated, which f now owns; may be NULL if f has no recbufs)
 * is released with
 * release(mem) at once if no recbuf of f lives or they hold less than a
 * quarter of its size (then they are copied first), else when that happens
 * later. f itself is freed with its memory. Accepts NULL (then releases mem).
 * With mem NULL (the memory could not be kept), f's recbufs get copies at
 * once. */
void recbuf_frame_close(struct recbuf_frame *f, void *mem, size_t size, void (*release)(void *mem));

#endif
