/* consumer: see consumer.h. */
#include "consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brake.h"
#include "kconf.h"
#include "refill.h"
#include "stages.h"
#include "util.h"
#include "wire.h"

/* Sampled records (stages.h) handed to the routers' batches since the last
 * flush: marked 'L' when the batches go to the links. */
#define STAGED_MAX 256

struct staged {
	uint32_t partition;
	int64_t offset;
};

struct consumer {
	const struct edge_config *cfg;
	rd_kafka_t *rk;
	rd_kafka_queue_t *cq;
	int fd[2]; /* consumer queue io-event pipe */
	struct subs *subs;
	struct routers *routers;
	struct watch *watch;
	consumer_revoke_fn on_revoke;
	void *arg;
	struct consumer_part *parts;
	bool *kick; /* per partition: owned through a rebalance callback, see kick_unmoved */
	bool kick_pending;
	struct refill refill; /* librdkafka's fetcher woken after a full queue */
	bool restore_pending; /* store every owned offset again next poll */
	uint32_t partition_count;
	uint64_t epoch;
	bool draining;
	bool closing;
	int64_t kafka_ok_ms;
	uint64_t records;
	struct staged staged[STAGED_MAX];
	uint32_t nstaged;
	struct brake brake;        /* held back for a slow router (brake.h) */
	enum brake_verdict warned; /* the release last logged, BRAKE_OFF: none */
};

/* The batches went to the links: marks the sampled records in them. */
static void staged_sent(struct consumer *c)
{
	int64_t now = c->nstaged ? stages_now_us() : 0;
	for (uint32_t i = 0; i < c->nstaged; i++)
		stages_mark('L', c->staged[i].partition, c->staged[i].offset, now, -1);
	c->nstaged = 0;
}

/* Each owned partition's share of --tail-bytes. */
static size_t tail_budget(const struct consumer *c)
{
	uint32_t owned = 0;
	for (uint32_t p = 0; p < c->partition_count; p++)
		owned += c->parts[p].owned;
	return (size_t)c->cfg->tail_bytes / (owned ? owned : 1);
}

static void grow_parts(struct consumer *c, uint32_t n)
{
	if (n <= c->partition_count)
		return;
	c->parts = xrealloc(c->parts, n * sizeof *c->parts);
	c->kick = xrealloc(c->kick, n * sizeof *c->kick);
	for (uint32_t p = c->partition_count; p < n; p++) {
		c->parts[p] = (struct consumer_part){ .owned = false, .next_offset = -1 };
		c->kick[p] = false;
		tail_init(&c->parts[p].tail);
	}
	c->partition_count = n;
}

/* Tells every router the new assignment, after what was already batched. */
static void broadcast_assign(struct consumer *c)
{
	uint32_t *owned = xcalloc(c->partition_count ? c->partition_count : 1, sizeof *owned);
	uint32_t n = 0;
	for (uint32_t p = 0; p < c->partition_count; p++)
		if (c->parts[p].owned)
			owned[n++] = p;
	routers_assign(c->routers, c->epoch, c->partition_count, owned, n);
	free(owned);
}

bool consumer_sync_metadata(struct consumer *c)
{
	uint32_t n;
	int64_t ok_ms;
	if (!watch_partitions(c->watch, &n, &ok_ms))
		return false;
	c->kafka_ok_ms = ok_ms;
	if (n > c->partition_count) {
		log_info("topic %s has %u partitions", c->cfg->topic, n);
		bool had = c->partition_count > 0;
		grow_parts(c, n);
		if (had) {
			c->epoch++;
			broadcast_assign(c);
		}
	}
	return true;
}

/* Sets the offset each newly assigned partition starts at: its committed
 * offset, or for a group that never committed, the live end. Explicit, so the
 * edge knows its live point before the first record arrives. The live end
 * comes from the watch thread (librdkafka 2.0.2 may never return from a
 * watermark query), waited for at most --metadata-timeout-ms. */
static void start_offsets(struct consumer *c, rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_resp_err_t err =
		rd_kafka_committed(c->rk, parts, (int)c->cfg->metadata_timeout_ms);
	if (err)
		log_warn("committed offsets: %s; starting at the live end", rd_kafka_err2str(err));
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &parts->elems[i];
		if (!err && tp->offset >= 0)
			continue;
		int64_t lo = -1, hi = -1, asked = now_mono_ms();
		watch_request(c->watch, (uint32_t)tp->partition);
		if (!watch_wait(c->watch, (uint32_t)tp->partition, asked,
				(int)c->cfg->metadata_timeout_ms, &lo, &hi))
			log_warn("watermarks of partition %d: no answer", tp->partition);
		tp->offset = hi >= 0 ? hi : RD_KAFKA_OFFSET_END;
	}
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct consumer *c = opaque;
	bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *error = NULL;
	rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;

	for (int i = 0; i < parts->cnt; i++)
		if (parts->elems[i].partition >= 0)
			grow_parts(c, (uint32_t)parts->elems[i].partition + 1);
	/* librdkafka paused every partition still owned while this callback
	 * was pending (see kick_unmoved): the ones this change leaves alone
	 * need a kick once it is done. */
	for (uint32_t p = 0; p < c->partition_count; p++)
		if (c->parts[p].owned && c->parts[p].next_offset >= 0) {
			c->kick[p] = true;
			c->kick_pending = true;
		}

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		start_offsets(c, parts);
		if (cooperative)
			error = rd_kafka_incremental_assign(rk, parts);
		else
			aerr = rd_kafka_assign(rk, parts);
		for (int i = 0; i < parts->cnt; i++) {
			struct consumer_part *p = &c->parts[parts->elems[i].partition];
			p->owned = true;
			p->next_offset = parts->elems[i].offset;
			p->stored = p->next_offset;
			tail_reset(&p->tail, p->next_offset);
		}
		c->epoch++;
		broadcast_assign(c);
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		/* Stop and tell the routers first, then let Kafka hand them on:
		 * the routers see the revoke before the next owner's claim. */
		routers_flush(c->routers);
		for (int i = 0; i < parts->cnt; i++) {
			uint32_t p = (uint32_t)parts->elems[i].partition;
			c->kick[p] = false;
			c->parts[p].owned = false;
			c->parts[p].next_offset = -1;
			c->on_revoke(c->arg, p);
			tail_free(&c->parts[p].tail);
			subs_remove_partition(c->subs, p);
		}
		c->epoch++;
		broadcast_assign(c);
		if (cooperative)
			error = rd_kafka_incremental_unassign(rk, parts);
		else
			aerr = rd_kafka_assign(rk, NULL);
	} else {
		log_error("rebalance error: %s", rd_kafka_err2str(err));
		rd_kafka_assign(rk, NULL);
	}
	if (error) {
		log_error("incremental (un)assign: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	if (aerr)
		log_error("(un)assign: %s", rd_kafka_err2str(aerr));
}

/* Keeps the record in the partition's tail and adds it to the batch of every
 * router with live sessions for its key. */
static void deliver(struct consumer *c, const rd_kafka_message_t *m)
{
	uint32_t p = (uint32_t)m->partition;
	if (p >= c->partition_count || !c->parts[p].owned)
		return; /* a late message of a revoked partition */
	struct consumer_part *pt = &c->parts[p];
	c->records++;
	rd_kafka_timestamp_type_t tstype;
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
		ts = -1;
	bool staged = stages_want(m->offset);
	if (staged)
		stages_mark('K', p, m->offset, stages_now_us(), ts);
	tail_append(&pt->tail, m->offset, ts, m->key, m->key_len, m->payload, m->len,
		    m->payload == NULL, tail_budget(c));
	pt->next_offset = m->offset + 1;
	if (!m->key_len)
		return;
	const struct subs_key *k = subs_lookup(c->subs, m->key, m->key_len);
	if (!k)
		return;

	struct wire_record r = {
		.partition = p,
		.offset = m->offset,
		.timestamp_ms = ts,
		.value = { m->payload, (uint32_t)m->len },
		.value_null = m->payload == NULL,
	};
	uint64_t sids_stack[64];
	uint64_t *sids = sids_stack;
	if (k->n > 64)
		sids = xmalloc(k->n * sizeof *sids);

	/* v[] is sorted by link ("pipe" in subs): each run is one router. */
	for (uint32_t i = 0; i < k->n;) {
		uint32_t pipe = k->v[i]->pipe, n = 0;
		for (; i < k->n && k->v[i]->pipe == pipe; i++) {
			const struct sub *x = k->v[i];
			if (x->partition == p && !x->paused && x->replay == SUB_LIVE)
				sids[n++] = x->sid;
		}
		if (n)
			routers_deliver(c->routers, pipe, &r, sids, n);
	}
	if (sids != sids_stack)
		free(sids);
	if (staged) {
		if (c->nstaged == STAGED_MAX)
			staged_sent(c); /* an early mark beats none */
		c->staged[c->nstaged++] = (struct staged){ p, m->offset };
	}
}

/* Stores, for the next commit, the offsets of everything handed to the
 * routers' connections: a restarted group resumes after them. */
static void store_offsets(struct consumer *c)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	for (uint32_t p = 0; p < c->partition_count; p++) {
		struct consumer_part *pt = &c->parts[p];
		if (!pt->owned || pt->next_offset < 0 || pt->next_offset == pt->stored)
			continue;
		if (!l)
			l = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_add(l, c->cfg->topic, (int32_t)p)->offset =
			pt->next_offset;
		pt->stored = pt->next_offset;
	}
	if (!l)
		return;
	rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
	if (err)
		log_debug("offsets_store: %s", rd_kafka_err2str(err));
	rd_kafka_topic_partition_list_destroy(l);
}

/* librdkafka 2.0.2 pauses every assigned partition while a rebalance
 * callback is pending (rd_kafka_assignment_pause, "incremental rebalance")
 * and resumes them when the callback has (un)assigned. The pause drops what
 * was fetched, and when the fetcher looked at its partitions during the
 * pause its fetch list went empty: the resume does not wake it, so its
 * broker thread sleeps until its next I/O or its fixed 1 s wait
 * (rd_kafka_max_block_ms), and partitions that did not move stop for up to
 * a second (tests/bench README, "d"). A seek to an absolute offset sets the
 * partition's fetch state active, and that wakes the broker thread. So,
 * once the batch that served the callback is handed out, every partition
 * owned through the change is sought to the offset after the last record
 * handed out: nothing is skipped or repeated, fetching resumes at once.
 * Asynchronous (timeout 0): never blocks the loop. */
static void kick_unmoved(struct consumer *c)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	c->kick_pending = false;
	for (uint32_t p = 0; p < c->partition_count; p++) {
		if (!c->kick[p])
			continue;
		c->kick[p] = false;
		struct consumer_part *pt = &c->parts[p];
		if (!pt->owned || pt->next_offset < 0)
			continue;
		if (!l)
			l = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_add(l, c->cfg->topic, (int32_t)p)->offset =
			refill_seek_offset(c->rk, c->cfg->topic, (int32_t)p, pt->next_offset);
		/* A seek may forget the stored offset: store it again now and
		 * at the next poll, when librdkafka has served the seek. */
		pt->stored = -1;
		c->restore_pending = true;
	}
	if (!l)
		return;
	rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, l, 0);
	if (error) {
		log_warn("resuming unmoved partitions: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Whether an owned partition has records its last fetch response promised
 * and the edge has not had yet (the cached high watermark: no request). */
static bool any_lagging(void *arg)
{
	struct consumer *c = arg;
	for (uint32_t p = 0; p < c->partition_count; p++)
		if (c->parts[p].owned && consumer_lag(c, p) > 0)
			return true;
	return false;
}

/* The local queue is empty, and librdkafka 2.0.2's fetcher may be asleep for
 * up to a second (refill.h): the queue may have been full since it was last
 * empty, or nothing came for a while though Kafka has more. Every owned
 * partition is sought to the offset after its last record handed out
 * (kick_unmoved), which wakes it. */
static void refill_if_starved(struct consumer *c)
{
	if (c->closing || c->draining)
		return;
	int64_t len = (int64_t)rd_kafka_queue_length(c->cq);
	if (!refill_due(&c->refill, len) &&
	    !refill_idle_due(&c->refill, len, now_mono_ms(), any_lagging, c))
		return;
	for (uint32_t p = 0; p < c->partition_count; p++)
		if (c->parts[p].owned)
			c->kick[p] = true;
	kick_unmoved(c);
}

static void drain_fd(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof buf) == (ssize_t)sizeof buf)
		;
}

/* Whether to take no records now: a router's link is backlogged and its
 * router reads (brake.h). */
static bool held(struct consumer *c)
{
	uint64_t tx;
	bool deep = routers_backlogged(c->routers, &tx);
	enum brake_verdict v = brake_check(&c->brake, deep, tx, now_mono_ms());
	if (v == BRAKE_HOLD || v == BRAKE_OFF) {
		if (v == BRAKE_OFF)
			c->warned = BRAKE_OFF;
		return v == BRAKE_HOLD;
	}
	if (c->warned != v) {
		c->warned = v;
		if (v == BRAKE_STALLED)
			log_warn(
				"consumer: a router's link has had over 16 MiB queued and took "
				"nothing for %d ms: consuming on (held again if it reads); the link "
				"is closed if its queue fills",
				BRAKE_STALL_MS);
		else
			log_warn(
				"consumer: a router's link has had over 16 MiB queued for %d ms: "
				"consuming on (rebalances wait behind a hold); the link is closed if "
				"its queue fills",
				BRAKE_MAX_MS);
	}
	return false;
}

void consumer_poll(struct consumer *c)
{
	drain_fd(c->fd[0]);
	if (c->restore_pending) {
		c->restore_pending = false;
		for (uint32_t p = 0; p < c->partition_count; p++)
			c->parts[p].stored = -1;
	}
	rd_kafka_message_t *msgs[512];
	ssize_t n;
	bool hold = false;
	do {
		if ((hold = held(c)))
			break;
		refill_seen(&c->refill, (int64_t)rd_kafka_queue_length(c->cq), 512);
		n = rd_kafka_consume_batch_queue(c->cq, 0, msgs, 512);
		int64_t now = n ? now_mono_ms() : 0;
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *m = msgs[i];
			refill_record(&c->refill, m->key_len + m->len, now);
			if (!m->err)
				deliver(c, m);
			else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				log_warn("consumer: %s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
		}
	} while (n == 512);
	if (c->kick_pending && !c->closing && !c->draining)
		kick_unmoved(c);
	routers_flush(c->routers);
	if (!hold) /* a held queue is not a starved fetcher */
		refill_if_starved(c);
	staged_sent(c);
	store_offsets(c);
	consumer_sync_metadata(c);
}

int consumer_fd(const struct consumer *c)
{
	return c->fd[0];
}

bool consumer_holding(struct consumer *c)
{
	return held(c);
}

struct consumer *consumer_new(const struct edge_config *cfg, const char *client_id,
			      struct subs *subs, struct routers *routers, struct watch *watch,
			      consumer_revoke_fn on_revoke, void *arg)
{
	char err[512];
	struct consumer *c = xcalloc(1, sizeof *c);
	c->cfg = cfg;
	c->subs = subs;
	c->routers = routers;
	c->watch = watch;
	c->on_revoke = on_revoke;
	c->arg = arg;
	c->fd[0] = c->fd[1] = -1;
	c->kafka_ok_ms = now_mono_ms();
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *defaults[][2] = {
		{ "group.id", cfg->group },
		{ "partition.assignment.strategy", "cooperative-sticky" },
		/* Start offsets are set explicitly (start_offsets); this applies only
		 * when a position fell out of retention: keep what is left. */
		{ "auto.offset.reset", "earliest" },
		{ "enable.partition.eof", "false" },
		{ "enable.auto.offset.store", "false" },
		{ "fetch.wait.max.ms", "100" },
		/* A killed edge's partitions wait this long before they move
		 * (librdkafka's default, 45 s, is a long outage for its clients);
		 * a restarted static member must be back within it to get its
		 * partitions without a rebalance. README, "Why these defaults". */
		{ "session.timeout.ms", "8000" },
		{ "heartbeat.interval.ms", "1000" },
	};
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
		if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, sizeof err))
			goto out_bad_conf;
	if (*cfg->instance_id &&
	    rd_kafka_conf_set(conf, "group.instance.id", cfg->instance_id, err, sizeof err))
		goto out_bad_conf;
	if (kconf_apply(cfg, client_id, conf, err, sizeof err) < 0)
		goto out_bad_conf;
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_opaque(conf, c);
	refill_init(&c->refill, conf);
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!c->rk) {
		log_error("kafka consumer: %s", err);
		goto out_free;
	}
	rd_kafka_poll_set_consumer(c->rk);
	c->cq = rd_kafka_queue_get_consumer(c->rk);
	if (pipe2(c->fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		log_error("pipe: %s", strerror(errno));
		goto out_free;
	}
	rd_kafka_queue_io_event_enable(c->cq, c->fd[1], "1", 1);
	return c;
out_bad_conf:
	log_error("kafka configuration: %s", err);
	rd_kafka_conf_destroy(conf);
out_free:
	consumer_free(c);
	return NULL;
}

void consumer_free(struct consumer *c)
{
	if (!c)
		return;
	if (c->cq)
		rd_kafka_queue_destroy(c->cq);
	/* The group was left by consumer_close, or is being left behind. */
	if (c->rk)
		rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	for (uint32_t p = 0; p < c->partition_count; p++)
		tail_free(&c->parts[p].tail);
	free(c->parts);
	free(c->kick);
	for (int i = 0; i < 2; i++)
		if (c->fd[i] >= 0)
			close(c->fd[i]);
	free(c);
}

void consumer_close(struct consumer *c)
{
	if (c->closing)
		return;
	c->closing = true;
	/* Leave the group cleanly, in librdkafka's background: the revoke
	 * arrives on the consumer queue and tells the routers. */
	rd_kafka_error_t *error = rd_kafka_consumer_close_queue(c->rk, c->cq);
	if (error) {
		log_error("leaving the group: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
}

bool consumer_closed(struct consumer *c)
{
	return c->closing && rd_kafka_consumer_closed(c->rk);
}

int consumer_subscribe(struct consumer *c)
{
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, c->cfg->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		log_error("subscribe to %s: %s", c->cfg->topic, rd_kafka_err2str(err));
		return -1;
	}
	return 0;
}

void consumer_drain(struct consumer *c)
{
	if (c->draining || c->closing)
		return;
	c->draining = true;
	/* Unsubscribing revokes every partition (the rebalance callback tells
	 * the routers at once) and the group gives them to the other edges;
	 * this edge stays a member with nothing assigned. */
	rd_kafka_resp_err_t err = rd_kafka_unsubscribe(c->rk);
	if (err)
		log_error("drain: unsubscribe: %s", rd_kafka_err2str(err));
	else
		log_info("draining: handing every partition to the other edges");
}

uint32_t consumer_partition_count(const struct consumer *c)
{
	return c->partition_count;
}

const struct consumer_part *consumer_part(const struct consumer *c, uint32_t p)
{
	return &c->parts[p];
}

void consumer_get_stats(const struct consumer *c, struct consumer_stats *st)
{
	uint32_t owned = 0;
	for (uint32_t p = 0; p < c->partition_count; p++)
		owned += c->parts[p].owned;
	char *id = rd_kafka_memberid(c->rk);
	bool member = id && *id;
	if (id)
		rd_kafka_mem_free(c->rk, id);
	*st = (struct consumer_stats){ .epoch = c->epoch,
				       .records = c->records,
				       .refills_full = c->refill.full,
				       .refills_idle = c->refill.idle,
				       .owned = owned,
				       .draining = c->draining,
				       .closing = c->closing,
				       .joined = member || c->epoch > 0,
				       .kafka_ok_ms = c->kafka_ok_ms };
}

int64_t consumer_high_watermark(const struct consumer *c, uint32_t p)
{
	int64_t lo, hi;
	if (rd_kafka_get_watermark_offsets(c->rk, c->cfg->topic, (int32_t)p, &lo, &hi) || hi < 0)
		return -1;
	return hi;
}

int64_t consumer_lag(const struct consumer *c, uint32_t p)
{
	int64_t hi;
	if (p >= c->partition_count || (hi = consumer_high_watermark(c, p)) < 0 ||
	    c->parts[p].next_offset < 0)
		return -1;
	return hi > c->parts[p].next_offset ? hi - c->parts[p].next_offset : 0;
}
