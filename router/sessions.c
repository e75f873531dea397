/* sessions: see sessions.h. */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *sessions_state_name(enum session_state s)
{
	switch (s) {
	case SESSION_WAITING:
		return "waiting";
	case SESSION_SUBSCRIBING:
		return "subscribing";
	case SESSION_LIVE:
		return "live";
	case SESSION_CLOSING:
		return "closing";
	}
	return "?";
}

void sessions_init(struct sessions *t)
{
	memset(t, 0, sizeof *t);
	hmap_init(&t->by_sid);
	hmap_init(&t->by_client);
	t->next_sid = 1;
}

static void msg_free(struct outmsg *m)
{
	recbuf_unref(m->body);
	free(m);
}

/* Frees the queue; keep_started: except a head message cut by a short
 * write (qsent > 0), whose frame must be finished. */
static void queue_drop(struct session *s, bool keep_started)
{
	struct outmsg *m = s->qhead;
	struct outmsg *kept = NULL;
	if (m && keep_started && s->qsent) {
		kept = m;
		m = m->next;
		kept->next = NULL;
	}
	while (m) {
		struct outmsg *next = m->next;
		msg_free(m);
		m = next;
	}
	s->qhead = kept;
	s->qtail = kept ? &kept->next : &s->qhead;
	s->qbytes = kept ? kept->cost : 0;
	s->qcount = kept ? 1 : 0;
	if (!kept)
		s->qsent = 0;
}

void sessions_free(struct sessions *t)
{
	size_t b;
	struct hnode *n;
	while (t->by_sid.buckets && (n = hmap_iter_first(&t->by_sid, &b)))
		sessions_delete(t, hmap_entry(n, struct session, by_sid));
	hmap_free(&t->by_sid);
	hmap_free(&t->by_client);
	free(t->part);
	t->part = NULL;
	t->nparts = 0;
}

struct session *sessions_create(struct sessions *t, const char *id, size_t idlen,
				uint32_t partition, void *conn)
{
	struct session *s = xcalloc(1, sizeof *s + idlen + 1);
	s->sid = t->next_sid++;
	s->state = SESSION_WAITING;
	s->partition = partition;
	s->edge = -1;
	s->next_offset = -1;
	s->qtail = &s->qhead;
	s->conn = conn;
	s->id_len = (uint32_t)idlen;
	memcpy(s->id, id, idlen);
	hmap_insert(&t->by_sid, &s->by_sid, hmap_hash_u64(s->sid));
	hmap_insert(&t->by_client, &s->by_client, hmap_hash_bytes(id, idlen));
	if (partition >= t->nparts) {
		uint32_t n = partition + 1;
		t->part = xrealloc(t->part, n * sizeof *t->part);
		memset(t->part + t->nparts, 0, (n - t->nparts) * sizeof *t->part);
		t->nparts = n;
	}
	s->pnext = t->part[partition];
	if (s->pnext)
		s->pnext->pprev = s;
	t->part[partition] = s;
	t->count++;
	return s;
}

void sessions_delete(struct sessions *t, struct session *s)
{
	if (!s)
		return;
	hmap_remove(&t->by_sid, &s->by_sid);
	hmap_remove(&t->by_client, &s->by_client);
	if (s->pprev)
		s->pprev->pnext = s->pnext;
	else
		t->part[s->partition] = s->pnext;
	if (s->pnext)
		s->pnext->pprev = s->pprev;
	queue_drop(s, false);
	free(s);
	t->count--;
}

struct session *sessions_get(const struct sessions *t, uint64_t sid)
{
	for (struct hnode *n = hmap_first(&t->by_sid, hmap_hash_u64(sid)); n; n = hmap_next(n)) {
		struct session *s = hmap_entry(n, struct session, by_sid);
		if (s->sid == sid)
			return s;
	}
	return NULL;
}

struct session *sessions_in_partition(const struct sessions *t, uint32_t p)
{
	return p < t->nparts ? t->part[p] : NULL;
}

size_t sessions_for_client(const struct sessions *t, const char *id, size_t idlen,
			   void (*fn)(struct session *s, void *arg), void *arg)
{
	/* Collect first: fn may delete sessions, and a delete may rehash. */
	size_t k = 0, cap = 0;
	struct session **found = NULL;
	for (struct hnode *n = hmap_first(&t->by_client, hmap_hash_bytes(id, idlen)); n;
	     n = hmap_next(n)) {
		struct session *s = hmap_entry(n, struct session, by_client);
		if (s->id_len != idlen || memcmp(s->id, id, idlen) != 0)
			continue;
		if (k == cap) {
			cap = cap ? cap * 2 : 8;
			found = xrealloc(found, cap * sizeof *found);
		}
		found[k++] = s;
	}
	for (size_t i = 0; fn && i < k; i++)
		fn(found[i], arg);
	free(found);
	return k;
}

int sessions_pin(struct session *s, int edge)
{
	if (s->state != SESSION_WAITING)
		return -1;
	s->edge = edge;
	s->state = SESSION_SUBSCRIBING;
	return 0;
}

int sessions_acked(struct session *s, int64_t start_offset)
{
	if (s->state != SESSION_SUBSCRIBING)
		return -1;
	s->state = SESSION_LIVE;
	/* A live start: the first record at or after start_offset is new. A
	 * start below the session's position: the position was past the
	 * partition's end (the topic was recreated, or the position was made
	 * up; PROTOCOL.md, SUB_ACK), and the records from the real end on are
	 * new, not duplicates. */
	if (start_offset >= 0 && (s->next_offset < 0 || start_offset < s->next_offset))
		s->next_offset = start_offset;
	return 0;
}

int sessions_unpin(struct session *s)
{
	if (s->state != SESSION_SUBSCRIBING && s->state != SESSION_LIVE)
		return -1;
	s->state = SESSION_WAITING;
	s->edge = -1;
	return 0;
}

void sessions_close(struct session *s)
{
	s->state = SESSION_CLOSING;
	queue_drop(s, true);
}

size_t sessions_msg_cost(size_t hlen, const struct recbuf *body)
{
	return sizeof(struct outmsg) + hlen + (body ? recbuf_cost(body) : 0);
}

static void enqueue(struct session *s, int64_t offset, int64_t ts, const void *head, size_t hlen,
		    struct recbuf *body)
{
	struct outmsg *m = xmalloc(sizeof *m + hlen);
	m->next = NULL;
	m->body = body ? recbuf_ref(body) : NULL;
	m->hlen = (uint32_t)hlen;
	m->len = (uint32_t)(hlen + (body ? body->len : 0));
	m->cost = (uint32_t)sessions_msg_cost(hlen, body);
	m->opcode = 0;
	m->offset = offset;
	m->timestamp_ms = ts;
	if (hlen)
		memcpy(m->head, head, hlen);
	*s->qtail = m;
	s->qtail = &m->next;
	s->qbytes += m->cost;
	s->qcount++;
}

enum session_offer sessions_offer_prefixed(struct sessions *t, struct session *s, int64_t offset,
					   int64_t timestamp_ms, const void *prefix, size_t plen,
					   struct recbuf *body, size_t max_bytes)
{
	(void)t;
	if (s->state != SESSION_LIVE)
		return SESSION_NOT_LIVE;
	if (s->next_offset >= 0 && offset < s->next_offset)
		return SESSION_DUPLICATE;
	if (s->qbytes + sessions_msg_cost(plen, body) > max_bytes)
		return SESSION_OVERFLOW;
	enqueue(s, offset, timestamp_ms, prefix, plen, body);
	s->next_offset = offset + 1;
	return SESSION_QUEUED;
}

enum session_offer sessions_offer(struct sessions *t, struct session *s, int64_t offset,
				  const void *data, size_t len, size_t max_bytes)
{
	struct recbuf *b = recbuf_new(data, len);
	enum session_offer o = sessions_offer_prefixed(t, s, offset, -1, NULL, 0, b, max_bytes);
	recbuf_unref(b);
	return o;
}

void sessions_push(struct sessions *t, struct session *s, const void *data, size_t len)
{
	(void)t;
	if (s->state != SESSION_CLOSING)
		enqueue(s, -1, -1, data, len, NULL);
}

struct outmsg *sessions_peek(struct session *s)
{
	return s->qhead;
}

void sessions_pop_free(struct session *s)
{
	struct outmsg *m = s->qhead;
	if (!m)
		return;
	s->qhead = m->next;
	if (!s->qhead)
		s->qtail = &s->qhead;
	s->qbytes -= m->cost;
	s->qcount--;
	s->qsent = 0;
	msg_free(m);
}
