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

#include "edge_int.h"
#include "util.h"

struct replay_job {
	uint32_t partition;
	int64_t pos;         /* next offset to read */
	int64_t wait_from;   /* lowest position of SUB_JOB_WAIT sessions, -1 none */
	int64_t started_ms;
};

int replay_fd(const struct edge *e)
{
	return e->replay_fd[0];
}

int replay_open(struct edge *e, rd_kafka_conf_t *conf)
{
	char err[512];
	e->replay_fd[0] = e->replay_fd[1] = -1;
	e->replayer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!e->replayer) {
		log_error("kafka replay consumer: %s", err);
		return -1;
	}
	rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
	if (rd_kafka_topic_conf_set(tconf, "auto.offset.reset", "earliest", err, sizeof err)) {
		log_error("kafka replay consumer: %s", err);
		rd_kafka_topic_conf_destroy(tconf);
		return -1;
	}
	e->rtopic = rd_kafka_topic_new(e->replayer, e->cfg->topic, tconf);
	e->rq = rd_kafka_queue_new(e->replayer);
	if (pipe2(e->replay_fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		log_error("pipe: %s", strerror(errno));
		return -1;
	}
	rd_kafka_queue_io_event_enable(e->rq, e->replay_fd[1], "1", 1);
	return 0;
}

void replay_close(struct edge *e)
{
	for (uint32_t p = 0; p < e->partition_count; p++) {
		if (e->parts[p].job)
			rd_kafka_consume_stop(e->rtopic, (int32_t)p);
		free(e->parts[p].job);
		e->parts[p].job = NULL;
	}
	if (e->rq)
		rd_kafka_queue_destroy(e->rq);
	if (e->rtopic)
		rd_kafka_topic_destroy(e->rtopic);
	if (e->replayer)
		rd_kafka_destroy(e->replayer);
	for (int i = 0; i < 2; i++)
		if (e->replay_fd[i] >= 0)
			close(e->replay_fd[i]);
}

/* Starts (or restarts) reading partition p at offset pos. */
static void fetch_start(struct edge *e, uint32_t p, int64_t pos, bool running)
{
	if (running)
		rd_kafka_consume_stop(e->rtopic, (int32_t)p);
	if (rd_kafka_consume_start_queue(e->rtopic, (int32_t)p, pos, e->rq) < 0)
		log_error("replay of partition %u from %lld: %s", p, (long long)pos,
			  rd_kafka_err2str(rd_kafka_last_error()));
}

static void fetch_stop(struct edge *e, uint32_t p)
{
	if (rd_kafka_consume_stop(e->rtopic, (int32_t)p) < 0)
		log_warn("stopping the replay of partition %u: %s", p,
			 rd_kafka_err2str(rd_kafka_last_error()));
}

int64_t replay_low(struct edge *e, uint32_t p)
{
	struct part *pt = &e->parts[p];
	int64_t now = now_mono_ms();
	if (pt->low >= 0 && now - pt->low_at_ms < 1000)
		return pt->low;
	int64_t lo = -1, hi = -1;
	rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
		e->consumer, e->cfg->topic, (int32_t)p, &lo, &hi, (int)e->cfg->metadata_timeout_ms);
	if (err) {
		log_warn("watermarks of partition %u: %s", p, rd_kafka_err2str(err));
		return -1;
	}
	pt->low = lo;
	pt->low_at_ms = now;
	return lo;
}

/* Hands one record to every session of its key in partition p that is in
 * replay state `state` and still owed it. */
static void offer(struct edge *e, uint32_t p, uint8_t state, int64_t offset, int64_t ts,
		  const void *key, size_t key_len, const void *value, size_t value_len,
		  bool value_null)
{
	const struct subs_key *k = subs_lookup(&e->subs, key, key_len);
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
		struct router_link *l = link_find(e, x->pipe);
		if (!l || !l->hello)
			continue;
		batch_record(e, l, &r, &x->sid, 1);
		x->replay_next = offset + 1;
		e->replayed_records++;
	}
}

/* Sessions of partition p in state `from_state` move to `to_state`;
 * returns how many. */
static size_t move_subs(struct edge *e, uint32_t p, uint8_t from_state, uint8_t to_state)
{
	size_t n = 0, b;
	for (struct hnode *it = hmap_iter_first(&e->subs.by_id, &b); it;
	     it = hmap_iter_next(&e->subs.by_id, it, &b)) {
		struct sub *x = hmap_entry(it, struct sub, node);
		if (x->partition == p && x->replay == from_state) {
			x->replay = to_state;
			n++;
		}
	}
	return n;
}

/* Replays the tail from offset `from` to the sessions in `state`, then
 * makes them live: from here on they get records as they are consumed. */
static void finish_from_tail(struct edge *e, uint32_t p, uint8_t state, int64_t from)
{
	const struct tail *t = &e->parts[p].tail;
	for (size_t i = tail_find(t, from); i < t->count; i++) {
		const struct tail_rec *r = tail_at(t, i);
		offer(e, p, state, r->offset, r->timestamp_ms, r->data, r->key_len,
		      r->data + r->key_len, r->value_len, r->value_null);
	}
	move_subs(e, p, state, SUB_LIVE);
}

void replay_start(struct edge *e, struct sub *x, int64_t from)
{
	struct part *pt = &e->parts[x->partition];
	x->replay_next = from;
	struct replay_job *j = pt->job;
	if (tail_covers(&pt->tail, from)) {
		/* Served after this turn's messages, in one pass for all. */
		x->replay = SUB_TAIL;
		if (pt->tail_due < 0 || from < pt->tail_due)
			pt->tail_due = from;
		e->replays_memory++;
		return;
	}
	e->replays_kafka++;
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
	log_info("partition %u: replaying from offset %lld (live at %lld) from Kafka",
		 x->partition, (long long)from, (long long)pt->next_offset);
	fetch_start(e, x->partition, from, false);
}

void replay_drop(struct edge *e, uint32_t p)
{
	struct part *pt = &e->parts[p];
	pt->tail_due = -1;
	if (!pt->job)
		return;
	fetch_stop(e, p);
	free(pt->job);
	pt->job = NULL;
}

/* The job caught up with the tail (or gave up): its sessions get the rest
 * from the tail and go live; sessions waiting behind it start a new round. */
static void finish_job(struct edge *e, struct replay_job *j, bool timed_out)
{
	struct part *pt = &e->parts[j->partition];
	int64_t from = j->pos;
	if (timed_out) {
		e->replay_timeouts++;
		log_error("partition %u: replay from Kafka timed out at offset %lld; records up to "
			  "%lld may be missing for its sessions",
			  j->partition, (long long)j->pos, (long long)pt->tail.cover_from);
		from = pt->tail.cover_from;
	}
	finish_from_tail(e, j->partition, SUB_JOB, from);
	if (j->wait_from >= 0) {
		move_subs(e, j->partition, SUB_JOB_WAIT, SUB_JOB);
		j->pos = j->wait_from;
		j->wait_from = -1;
		j->started_ms = now_mono_ms();
		fetch_start(e, j->partition, j->pos, true);
	} else {
		fetch_stop(e, j->partition);
		pt->job = NULL;
		free(j);
	}
}

static void on_replay_message(struct edge *e, const rd_kafka_message_t *m)
{
	if (m->partition < 0 || (uint32_t)m->partition >= e->partition_count)
		return;
	struct replay_job *j = e->parts[m->partition].job;
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
		offer(e, (uint32_t)m->partition, SUB_JOB, m->offset,
		      tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts, m->key, m->key_len,
		      m->payload, m->len, m->payload == NULL);
	j->pos = m->offset + 1;
}

void replay_poll(struct edge *e)
{
	char buf[64];
	while (read(e->replay_fd[0], buf, sizeof buf) > 0)
		;
	rd_kafka_message_t *msgs[256];
	ssize_t n;
	do {
		n = rd_kafka_consume_batch_queue(e->rq, 0, msgs, 256);
		for (ssize_t i = 0; i < n; i++) {
			on_replay_message(e, msgs[i]);
			rd_kafka_message_destroy(msgs[i]);
		}
	} while (n == 256);

	int64_t now = now_mono_ms();
	for (uint32_t p = 0; p < e->partition_count; p++) {
		struct part *pt = &e->parts[p];
		struct replay_job *j = pt->job;
		if (j && pt->owned && pt->tail.cover_from >= 0 && j->pos >= pt->tail.cover_from)
			finish_job(e, j, false);
		else if (j && now - j->started_ms > e->cfg->replay_timeout_ms)
			finish_job(e, j, true);
		if (pt->tail_due >= 0) {
			int64_t from = pt->tail_due;
			pt->tail_due = -1;
			finish_from_tail(e, p, SUB_TAIL, from);
		}
	}
}
