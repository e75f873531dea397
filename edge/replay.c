/*
 * replay: serves subscriptions whose position is behind the live point, so a
 * session re-pinned after a partition moved, or a client that resumes, gets
 * every record it missed, once and in order, before its live records.
 *
 * From memory when the partition's tail covers the position; otherwise a
 * second consumer, outside the group, reads the partition from Kafka starting
 * at the lowest position owed (one job per partition, shared by all its
 * sessions) until it reaches what the tail covers; the tail then supplies the
 * rest up to the live point, and the sessions go live. Sessions that ask for a
 * position behind a running job wait for its next round. Everything runs on
 * the edge's loop thread.
 *
 * The replay consumer uses librdkafka's per-partition start/stop API, not
 * assign(): in librdkafka 2.0.2, changing an assignment while an earlier
 * change is still stopping a partition can send two FETCH_STOPs for it and
 * abort the process (rd_kafka_assignment_partition_stopped: Assertion
 * `rktp->rktp_started' failed; upstream issue 5573), and replay jobs start
 * and stop often.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay.h"

#include "kconf.h"
#include "position.h"
#include "util.h"

struct replay_job {
	uint32_t partition;
	int64_t pos;       /* next offset to read */
	int64_t wait_from; /* lowest position of SUB_JOB_WAIT sessions, -1 none */
	int64_t started_ms;
};

/* Router links a pass of the tail left behind, tracked per partition; a
 * pass that meets more stops giving to any link (all wait for the next). */
#define TAIL_HELD_MAX 32

/* Replay state of one partition. */
struct replay_part {
	struct replay_job *job; /* a replay from Kafka in progress, or NULL */
	int64_t tail_due;       /* lowest position owed from the tail, -1 none */
	bool tail_new;          /* sessions joined SUB_TAIL since the last pass */
	/* links the last pass left behind (deep send queues), held[0..nheld);
	 * nheld > TAIL_HELD_MAX: more than that, every link was */
	uint32_t held[TAIL_HELD_MAX];
	uint32_t nheld;
};

/* A SUB waiting for the watch's answer (its sub is SUB_PENDING). */
struct pending_sub {
	uint32_t link;
	uint64_t sid;
	uint32_t partition;
	int64_t asked_ms;
};

struct replay {
	const struct edge_config *cfg;
	struct consumer *consumer;
	struct routers *routers;
	struct subs *subs;
	struct watch *watch;
	struct pending_sub *pending;
	size_t npending, pending_cap;
	/* a consumer outside the group */
	rd_kafka_t *rk;
	rd_kafka_queue_t *rq;
	rd_kafka_topic_t *rtopic;
	int fd[2];
	struct replay_part *parts;
	uint32_t nparts;
	struct replay_stats st;
};

int replay_fd(const struct replay *rp)
{
	return rp->fd[0];
}

/* Partition p's state, grown to the consumer's partition count. */
static struct replay_part *part(struct replay *rp, uint32_t p)
{
	if (p >= rp->nparts) {
		uint32_t n = consumer_partition_count(rp->consumer);
		if (n <= p)
			n = p + 1;
		rp->parts = xrealloc(rp->parts, n * sizeof *rp->parts);
		for (uint32_t i = rp->nparts; i < n; i++)
			rp->parts[i] = (struct replay_part){ .tail_due = -1 };
		rp->nparts = n;
	}
	return &rp->parts[p];
}

struct replay *replay_new(const struct edge_config *cfg, const char *client_id,
			  struct consumer *consumer, struct routers *routers, struct subs *subs,
			  struct watch *watch)
{
	char err[512];
	struct replay *rp = xcalloc(1, sizeof *rp);
	rp->cfg = cfg;
	rp->consumer = consumer;
	rp->routers = routers;
	rp->subs = subs;
	rp->watch = watch;
	rp->fd[0] = rp->fd[1] = -1;
	/* No group, never commits. */
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err) ||
	    kconf_apply(cfg, client_id, conf, err, sizeof err) < 0) {
		log_error("kafka configuration: %s", err);
		rd_kafka_conf_destroy(conf);
		goto out_free;
	}
	rp->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!rp->rk) {
		log_error("kafka replay consumer: %s", err);
		goto out_free;
	}
	rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
	if (rd_kafka_topic_conf_set(tconf, "auto.offset.reset", "earliest", err, sizeof err)) {
		log_error("kafka replay consumer: %s", err);
		rd_kafka_topic_conf_destroy(tconf);
		goto out_free;
	}
	rp->rtopic = rd_kafka_topic_new(rp->rk, cfg->topic, tconf);
	rp->rq = rd_kafka_queue_new(rp->rk);
	if (pipe2(rp->fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		log_error("pipe: %s", strerror(errno));
		goto out_free;
	}
	rd_kafka_queue_io_event_enable(rp->rq, rp->fd[1], "1", 1);
	return rp;
out_free:
	replay_free(rp);
	return NULL;
}

void replay_free(struct replay *rp)
{
	if (!rp)
		return;
	for (uint32_t p = 0; p < rp->nparts; p++) {
		if (rp->parts[p].job)
			rd_kafka_consume_stop(rp->rtopic, (int32_t)p);
		free(rp->parts[p].job);
	}
	free(rp->parts);
	free(rp->pending);
	if (rp->rq)
		rd_kafka_queue_destroy(rp->rq);
	if (rp->rtopic)
		rd_kafka_topic_destroy(rp->rtopic);
	if (rp->rk)
		rd_kafka_destroy(rp->rk);
	for (int i = 0; i < 2; i++)
		if (rp->fd[i] >= 0)
			close(rp->fd[i]);
	free(rp);
}

/* Starts (or restarts) reading partition p at offset pos. */
static void fetch_start(struct replay *rp, uint32_t p, int64_t pos, bool running)
{
	if (running)
		rd_kafka_consume_stop(rp->rtopic, (int32_t)p);
	if (rd_kafka_consume_start_queue(rp->rtopic, (int32_t)p, pos, rp->rq) < 0)
		log_error("replay of partition %u from %lld: %s", p, (long long)pos,
			  rd_kafka_err2str(rd_kafka_last_error()));
}

static void fetch_stop(struct replay *rp, uint32_t p)
{
	if (rd_kafka_consume_stop(rp->rtopic, (int32_t)p) < 0)
		log_warn("stopping the replay of partition %u: %s", p,
			 rd_kafka_err2str(rd_kafka_last_error()));
}

/* Hands one record to every session of its key in partition p that is in
 * replay state `state` and still owed it. */
static void offer(struct replay *rp, uint32_t p, uint8_t state, int64_t offset, int64_t ts,
		  const void *key, size_t key_len, const void *value, size_t value_len,
		  bool value_null)
{
	const struct subs_key *k = subs_lookup(rp->subs, key, key_len);
	if (!k)
		return;
	struct wire_record r = {
		.partition = p,
		.offset = offset,
		.timestamp_ms = ts,
		.value = { value, (uint32_t)value_len },
		.value_null = value_null,
	};
	for (uint32_t i = 0; i < k->n; i++) {
		struct sub *x = k->v[i];
		if (x->partition != p || x->replay != state || offset < x->replay_next)
			continue;
		if (routers_deliver(rp->routers, x->pipe, &r, &x->sid, 1) < 0)
			continue;
		x->replay_next = offset + 1;
		rp->st.records++;
	}
}

/* A walk over the sessions of one partition in one replay state:
 *	struct walk w = { 0 };
 *	for (struct sub *x; (x = walk_next(rp, p, state, &w));)
 * A session met may change state; none may be added or removed. */
struct walk {
	struct hnode *it;
	size_t b;
	bool started;
};

static struct sub *walk_next(struct replay *rp, uint32_t p, uint8_t state, struct walk *w)
{
	for (;;) {
		w->it = w->started ? hmap_iter_next(&rp->subs->by_id, w->it, &w->b)
				   : hmap_iter_first(&rp->subs->by_id, &w->b);
		w->started = true;
		if (!w->it)
			return NULL;
		struct sub *x = hmap_entry(w->it, struct sub, node);
		if (x->partition == p && x->replay == state)
			return x;
	}
}

/* Sessions of partition p in state `from_state` move to `to_state`;
 * returns how many. */
static size_t move_subs(struct replay *rp, uint32_t p, uint8_t from_state, uint8_t to_state)
{
	size_t n = 0;
	struct walk w = { 0 };
	for (struct sub *x; (x = walk_next(rp, p, from_state, &w)); n++)
		x->replay = to_state;
	return n;
}

static void replay_start(struct replay *rp, struct sub *x, int64_t from);

static bool link_held(const struct replay_part *pt, uint32_t link)
{
	if (pt->nheld > TAIL_HELD_MAX)
		return true;
	for (uint32_t i = 0; i < pt->nheld; i++)
		if (pt->held[i] == link)
			return true;
	return false;
}

/* Hands a record of the tail to the sessions of its key in partition p that
 * are in SUB_TAIL and owed it, except on links this pass holds back: a link
 * whose send queue is deep (routers_link_deep) is held for the rest of the
 * pass, so each of its sessions stops at a record and misses none. */
static void offer_tail(struct replay *rp, uint32_t p, struct replay_part *pt,
		       const struct tail_rec *tr)
{
	const struct subs_key *k = subs_lookup(rp->subs, tr->data, tr->key_len);
	if (!k)
		return;
	struct wire_record r = {
		.partition = p,
		.offset = tr->offset,
		.timestamp_ms = tr->timestamp_ms,
		.value = { tr->data + tr->key_len, tr->value_len },
		.value_null = tr->value_null,
	};
	for (uint32_t i = 0; i < k->n; i++) {
		struct sub *x = k->v[i];
		if (x->partition != p || x->replay != SUB_TAIL || tr->offset < x->replay_next ||
		    link_held(pt, x->pipe))
			continue;
		if (routers_link_deep(rp->routers, x->pipe)) {
			if (pt->nheld < TAIL_HELD_MAX)
				pt->held[pt->nheld] = x->pipe;
			pt->nheld++;
			rp->st.tail_holds++;
			continue;
		}
		if (routers_deliver(rp->routers, x->pipe, &r, &x->sid, 1) < 0)
			continue;
		x->replay_next = tr->offset + 1;
		rp->st.records++;
	}
}

/* Before a pass: sessions of partition p in SUB_TAIL that are owed records
 * the tail no longer holds (it moved on while their link was held back) are
 * replayed from Kafka instead. Returns the lowest position the others are
 * owed, -1 if none is. */
static int64_t tail_owed(struct replay *rp, uint32_t p, const struct tail *t)
{
	int64_t from = -1;
	struct walk w = { 0 };
	for (struct sub *x; (x = walk_next(rp, p, SUB_TAIL, &w));) {
		if (!tail_covers(t, x->replay_next))
			replay_start(rp, x, x->replay_next); /* from Kafka: not SUB_TAIL now */
		else if (from < 0 || x->replay_next < from)
			from = x->replay_next;
	}
	return from;
}

/*
 * One pass of the tail for the sessions of partition p in SUB_TAIL, each
 * from the position it is owed, in offset order; then they go live (from
 * here on they get records as they are consumed), except those on links the
 * pass held back. Those stay in SUB_TAIL, and another pass serves them once
 * their link is back to its low mark (tail_pass_due). Sessions resuming at
 * once (a router restarted, its clients came back) can be owed more than a
 * link's send queue holds (64 MiB, and the tail alone is 64 MiB by
 * default): given at once it filled the queue, and the edge closed the link.
 */
static void tail_pass(struct replay *rp, uint32_t p)
{
	struct replay_part *pt = part(rp, p);
	const struct tail *t = &consumer_part(rp->consumer, p)->tail;
	pt->tail_due = -1;
	pt->tail_new = false;
	pt->nheld = 0;
	int64_t from = tail_owed(rp, p, t);
	if (from < 0)
		return;
	for (size_t i = tail_find(t, from); i < t->count; i++)
		offer_tail(rp, p, pt, tail_at(t, i));
	struct walk w = { 0 };
	for (struct sub *x; (x = walk_next(rp, p, SUB_TAIL, &w));) {
		if (!link_held(pt, x->pipe))
			x->replay = SUB_LIVE;
		else if (pt->tail_due < 0 || x->replay_next < pt->tail_due)
			pt->tail_due = x->replay_next;
	}
}

/* Whether partition p's tail owes sessions a pass now: new ones came, or a
 * link the last pass held back is no longer deep (or gone). */
static bool tail_pass_due(struct replay *rp, const struct replay_part *pt)
{
	if (pt->tail_due < 0)
		return false;
	if (pt->tail_new || pt->nheld == 0 || pt->nheld > TAIL_HELD_MAX)
		return true;
	for (uint32_t i = 0; i < pt->nheld; i++)
		if (!routers_link_deep(rp->routers, pt->held[i]))
			return true;
	return false;
}

/* Serves a subscription whose position `from` is behind the live point:
 * from the tail when it covers it, else from Kafka; live records wait until
 * it has caught up (x->replay). */
static void replay_start(struct replay *rp, struct sub *x, int64_t from)
{
	const struct consumer_part *cp = consumer_part(rp->consumer, x->partition);
	struct replay_part *pt = part(rp, x->partition);
	x->replay_next = from;
	struct replay_job *j = pt->job;
	if (tail_covers(&cp->tail, from)) {
		/* Served after this turn's messages, in one pass for all. */
		x->replay = SUB_TAIL;
		if (pt->tail_due < 0 || from < pt->tail_due)
			pt->tail_due = from;
		pt->tail_new = true;
		rp->st.from_memory++;
		return;
	}
	rp->st.from_kafka++;
	if (j && from >= j->pos) {
		x->replay = SUB_JOB;
		return;
	}
	if (j) {
		x->replay = SUB_JOB_WAIT;
		if (j->wait_from < 0 || from < j->wait_from)
			j->wait_from = from;
		return;
	}
	j = xcalloc(1, sizeof *j);
	j->partition = x->partition;
	j->pos = from;
	j->wait_from = -1;
	j->started_ms = now_mono_ms();
	pt->job = j;
	x->replay = SUB_JOB;
	log_info("partition %u: replaying from offset %lld (live at %lld) from Kafka", x->partition,
		 (long long)from, (long long)cp->next_offset);
	fetch_start(rp, x->partition, from, false);
}

/* Answers x's SUB with Kafka's watermarks lo and hi (-1 unknown) and the
 * live point as it is now (position.h), and starts its replay if it needs
 * one. */
static void answer(struct replay *rp, struct sub *x, int64_t from, int64_t lo, int64_t hi)
{
	int64_t live = consumer_part(rp->consumer, x->partition)->next_offset;
	struct position_plan pl = position_plan(from, live, lo, hi);
	if (pl.beyond_end) {
		rp->st.beyond_end++;
		log_warn("partition %u: a position %lld is past the partition's end %lld (topic "
			 "recreated?); serving from the end",
			 x->partition, (long long)from, (long long)pl.start);
	}
	routers_sub_ack(rp->routers, x->pipe, x->sid, WIRE_SUB_OK, pl.start, pl.complete);
	if (pl.replay_from >= 0) {
		replay_start(rp, x, pl.replay_from);
	} else {
		x->replay = SUB_LIVE;
		x->replay_next = pl.start;
	}
}

void replay_sub(struct replay *rp, uint32_t link, const struct wire_sub *s)
{
	if (s->partition >= consumer_partition_count(rp->consumer) ||
	    s->from_offset < WIRE_OFFSET_LIVE) {
		routers_sub_ack(rp->routers, link, s->sid, WIRE_SUB_BAD, -1, false);
		return;
	}
	const struct consumer_part *cp = consumer_part(rp->consumer, s->partition);
	if (!cp->owned) {
		routers_sub_ack(rp->routers, link, s->sid, WIRE_SUB_NOT_OWNER, -1, false);
		return;
	}
	struct sub *x = subs_add(rp->subs, link, s->sid, s->partition, s->key.ptr, s->key.len);
	int64_t from = s->from_offset, live = cp->next_offset;
	if (!position_needs_watermarks(from, live,
				       consumer_high_watermark(rp->consumer, s->partition))) {
		answer(rp, x, from, -1, -1);
		return;
	}
	/* Behind the live point, a low watermark asked less than a second ago
	 * will do (is the position still in Kafka?); past it, only an answer
	 * asked after this SUB tells whether it is past the partition's end. */
	int64_t lo, hi, asked, now = now_mono_ms();
	if (from < live && watch_watermarks(rp->watch, s->partition, &lo, &hi, &asked) &&
	    now - asked < 1000) {
		answer(rp, x, from, lo, hi);
		return;
	}
	x->replay = SUB_PENDING;
	x->replay_next = from;
	if (rp->npending == rp->pending_cap) {
		rp->pending_cap = rp->pending_cap ? 2 * rp->pending_cap : 16;
		rp->pending = xrealloc(rp->pending, rp->pending_cap * sizeof *rp->pending);
	}
	rp->pending[rp->npending++] = (struct pending_sub){
		.link = link, .sid = s->sid, .partition = s->partition, .asked_ms = now
	};
	watch_request(rp->watch, s->partition);
}

/* Answers the SUBs whose watermarks came, or that waited too long. */
static void answer_pending(struct replay *rp)
{
	int64_t now = now_mono_ms();
	size_t k = 0;
	for (size_t i = 0; i < rp->npending; i++) {
		struct pending_sub *ps = &rp->pending[i];
		struct sub *x = subs_get(rp->subs, ps->link, ps->sid);
		if (!x || x->replay != SUB_PENDING || x->partition != ps->partition)
			continue; /* unsubscribed, replaced, or its partition revoked */
		int64_t lo, hi, asked;
		if (watch_watermarks(rp->watch, ps->partition, &lo, &hi, &asked) &&
		    asked >= ps->asked_ms) {
			answer(rp, x, x->replay_next, lo, hi);
		} else if (now - ps->asked_ms >= rp->cfg->metadata_timeout_ms) {
			rp->st.unanswered++;
			log_warn("partition %u: no watermarks from Kafka within %ld ms; answering "
				 "a subscription without them",
				 ps->partition, rp->cfg->metadata_timeout_ms);
			answer(rp, x, x->replay_next, -1, -1);
		} else {
			rp->pending[k++] = *ps;
		}
	}
	rp->npending = k;
}

void replay_drop(struct replay *rp, uint32_t p)
{
	struct replay_part *pt = part(rp, p);
	pt->tail_due = -1;
	pt->tail_new = false;
	pt->nheld = 0;
	if (!pt->job)
		return;
	fetch_stop(rp, p);
	free(pt->job);
	pt->job = NULL;
}

/* The job caught up with the tail (or gave up): its sessions are owed the
 * rest from the tail (a pass this turn, tail_pass), and sessions waiting
 * behind it start a new round. */
static void finish_job(struct replay *rp, struct replay_job *j, bool timed_out)
{
	const struct consumer_part *cp = consumer_part(rp->consumer, j->partition);
	struct replay_part *pt = part(rp, j->partition);
	int64_t from = j->pos;
	if (timed_out) {
		rp->st.timeouts++;
		log_error("partition %u: replay from Kafka timed out at offset %lld; records up to "
			  "%lld may be missing for its sessions",
			  j->partition, (long long)j->pos, (long long)cp->tail.cover_from);
		from = cp->tail.cover_from;
	}
	/* The job gave its sessions everything before `from` (or gave up on
	 * it): each is owed from there on. */
	struct walk w = { 0 };
	for (struct sub *x; (x = walk_next(rp, j->partition, SUB_JOB, &w));) {
		if (from < 0) { /* gave up, and the tail holds nothing */
			x->replay = SUB_LIVE;
			continue;
		}
		x->replay = SUB_TAIL;
		if (x->replay_next < from)
			x->replay_next = from;
		if (pt->tail_due < 0 || x->replay_next < pt->tail_due)
			pt->tail_due = x->replay_next;
		pt->tail_new = true;
	}
	if (j->wait_from >= 0) {
		move_subs(rp, j->partition, SUB_JOB_WAIT, SUB_JOB);
		j->pos = j->wait_from;
		j->wait_from = -1;
		j->started_ms = now_mono_ms();
		fetch_start(rp, j->partition, j->pos, true);
	} else {
		fetch_stop(rp, j->partition);
		pt->job = NULL;
		free(j);
	}
}

static void on_replay_message(struct replay *rp, const rd_kafka_message_t *m)
{
	if (m->partition < 0 || (uint32_t)m->partition >= rp->nparts)
		return;
	struct replay_job *j = rp->parts[m->partition].job;
	if (!j)
		return;
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (m->offset > j->pos)
			j->pos = m->offset; /* nothing more in Kafka yet */
		return;
	}
	if (m->err) {
		log_warn("replay consumer: %s", rd_kafka_message_errstr(m));
		return;
	}
	if (m->offset < j->pos)
		return; /* read before the job moved on */
	rd_kafka_timestamp_type_t tstype;
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	if (m->key_len)
		offer(rp, (uint32_t)m->partition, SUB_JOB, m->offset,
		      tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts, m->key, m->key_len,
		      m->payload, m->len, m->payload == NULL);
	j->pos = m->offset + 1;
}

void replay_poll(struct replay *rp)
{
	char buf[64];
	while (read(rp->fd[0], buf, sizeof buf) > 0)
		;
	rd_kafka_message_t *msgs[256];
	ssize_t n = 0;
	do {
		/* Not while a router's link is backlogged (brake.h): the
		 * records wait in the replay consumer's queue, and librdkafka
		 * stops fetching when that is full. */
		if (consumer_holding(rp->consumer))
			break;
		n = rd_kafka_consume_batch_queue(rp->rq, 0, msgs, 256);
		for (ssize_t i = 0; i < n; i++) {
			on_replay_message(rp, msgs[i]);
			rd_kafka_message_destroy(msgs[i]);
		}
	} while (n == 256);

	if (rp->npending)
		answer_pending(rp);
	int64_t now = now_mono_ms();
	for (uint32_t p = 0; p < rp->nparts; p++) {
		struct replay_part *pt = &rp->parts[p];
		const struct consumer_part *cp = consumer_part(rp->consumer, p);
		struct replay_job *j = pt->job;
		if (j && cp->owned && cp->tail.cover_from >= 0 && j->pos >= cp->tail.cover_from)
			finish_job(rp, j, false);
		else if (j && now - j->started_ms > rp->cfg->replay_timeout_ms)
			finish_job(rp, j, true);
		if (tail_pass_due(rp, pt))
			tail_pass(rp, p);
	}
}

void replay_get_stats(const struct replay *rp, struct replay_stats *st)
{
	*st = rp->st;
}

bool replay_running(const struct replay *rp, uint32_t p)
{
	return p < rp->nparts && rp->parts[p].job != NULL;
}
