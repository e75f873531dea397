/* edge: see edge.h. The protocol is in common/PROTOCOL.md. */
#include "edge.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <nng/nng.h>

#include "chan.h"

#include "edge_int.h"
#include "util.h"
#include "wire.h"

/* Bound of the send queue to one router (PROTOCOL.md, "Transport"). */
#define EDGE_LINK_MAX_QUEUE (64u * 1024 * 1024)

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
}

/* ---- router links ------------------------------------------------------- */

struct router_link *link_find(struct edge *e, uint32_t id)
{
	for (size_t i = 0; i < e->nlinks; i++)
		if (e->links[i]->id == id)
			return e->links[i];
	return NULL;
}

/* Called on nng's threads: only wakes the loop. */
static void wake_loop(void *arg)
{
	struct edge *e = arg;
	uint64_t one = 1;
	if (write(e->wake_fd, &one, sizeof one) < 0)
		return; /* the counter is full: a wake-up is pending anyway */
}

static void send_raw(struct edge *e, struct router_link *l, const void *buf, size_t len);

static void link_new(struct edge *e, nng_stream *s)
{
	struct router_link *l = xcalloc(1, sizeof *l);
	l->id = ++e->next_link_id;
	l->ch = chan_new(s, WIRE_MAX_MSG_BYTES, EDGE_LINK_MAX_QUEUE, wake_loop, e);
	wire_buf_init(&l->batch);
	e->links = xrealloc(e->links, (e->nlinks + 1) * sizeof *e->links);
	e->links[e->nlinks++] = l;
	log_info("router connected from %s (link %u)", chan_peer(l->ch), l->id);
	/* The first message, outside the numbering: our nonce for this
	 * connection, which the router's proof must cover (PROTOCOL.md). */
	linkauth_nonce(l->nonce);
	struct wire_challenge c = { .nonce = { (const char *)l->nonce, LINKAUTH_NONCE } };
	wire_buf_reset(&e->out);
	wire_enc_challenge(&e->out, 0, &c);
	send_raw(e, l, e->out.data, e->out.len);
}

static void link_destroy(struct edge *e, size_t i)
{
	struct router_link *l = e->links[i];
	size_t n = subs_remove_pipe(&e->subs, l->id);
	log_info("router %s (link %u) left: %s; dropped %zu subscriptions",
		 l->router_id ? l->router_id : "?", l->id, chan_error(l->ch), n);
	chan_free(l->ch);
	wire_buf_free(&l->batch);
	free(l->router_id);
	free(l);
	e->links[i] = e->links[--e->nlinks];
}

/* Queues buf[0..len) for a router. A router too slow to take it is
 * disconnected (the queue is bounded); it reconnects and resubscribes. */
static void send_raw(struct edge *e, struct router_link *l, const void *buf, size_t len)
{
	if (chan_send(l->ch, buf, len) < 0)
		e->dropped_send++;
}

void flush_batch(struct edge *e, struct router_link *l)
{
	if (!l->batch_open)
		return;
	wire_enc_deliver_end(&l->batch, ++l->tx_seq);
	send_raw(e, l, l->batch.data, l->batch.len);
	l->batch_open = false;
}

static void flush_all(struct edge *e)
{
	for (size_t i = 0; i < e->nlinks; i++)
		flush_batch(e, e->links[i]);
}

/* Builds the current assignment into the caller's array. */
static uint32_t owned_list(const struct edge *e, uint32_t *out)
{
	uint32_t n = 0;
	for (uint32_t p = 0; p < e->partition_count; p++)
		if (e->parts[p].owned)
			out[n++] = p;
	return n;
}

static void send_edge_hello(struct edge *e, struct router_link *l)
{
	uint32_t *owned = xcalloc(e->partition_count ? e->partition_count : 1, sizeof *owned);
	struct wire_edge_hello h = {
		.edge_id = { e->edge_id, (uint32_t)strlen(e->edge_id) },
		.upstream = e->producer != NULL,
		.hello_seq = l->hello_seq,
		.assign = { .epoch = e->epoch, .partition_count = e->partition_count,
			    .count = owned_list(e, owned), .partitions = owned },
	};
	uint8_t proof[LINKAUTH_MAC];
	if (linkauth_enabled(&e->secret)) {
		linkauth_edge_proof(&e->secret, l->router_nonce, l->nonce, e->edge_id,
				    strlen(e->edge_id), l->hello_seq, proof);
		h.auth = (struct wire_bytes){ (const char *)proof, LINKAUTH_MAC };
	}
	l->tx_seq = 1;
	wire_buf_reset(&e->out);
	wire_enc_edge_hello(&e->out, l->tx_seq, &h);
	send_raw(e, l, e->out.data, e->out.len);
	free(owned);
}

/* Tells every router the new assignment, after what was already batched. */
static void broadcast_assign(struct edge *e)
{
	uint32_t *owned = xcalloc(e->partition_count ? e->partition_count : 1, sizeof *owned);
	struct wire_assignment a = { .epoch = e->epoch, .partition_count = e->partition_count,
				     .count = owned_list(e, owned), .partitions = owned };
	flush_all(e);
	for (size_t i = 0; i < e->nlinks; i++) {
		struct router_link *l = e->links[i];
		if (!l->hello)
			continue;
		wire_buf_reset(&e->out);
		wire_enc_assign(&e->out, ++l->tx_seq, &a);
		send_raw(e, l, e->out.data, e->out.len);
	}
	log_info("assignment epoch %llu: %u of %u partitions", (unsigned long long)e->epoch,
		 a.count, e->partition_count);
	free(owned);
}

/* ---- Kafka ---------------------------------------------------------------- */

/* Each owned partition's share of --tail-bytes. */
static size_t tail_budget(const struct edge *e)
{
	uint32_t owned = 0;
	for (uint32_t p = 0; p < e->partition_count; p++)
		owned += e->parts[p].owned;
	return (size_t)e->cfg->tail_bytes / (owned ? owned : 1);
}

static void grow_parts(struct edge *e, uint32_t n)
{
	if (n <= e->partition_count)
		return;
	e->parts = xrealloc(e->parts, n * sizeof *e->parts);
	for (uint32_t p = e->partition_count; p < n; p++) {
		e->parts[p] = (struct part){ .owned = false, .next_offset = -1, .low = -1,
					     .tail_due = -1 };
		tail_init(&e->parts[p].tail);
	}
	e->partition_count = n;
}

/* Learns the delivery topic's partition count; 0 or -1 (logged). */
static int refresh_metadata(struct edge *e)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *t = rd_kafka_topic_new(e->consumer, e->cfg->topic, NULL);
	rd_kafka_resp_err_t err = rd_kafka_metadata(e->consumer, 0, t, &md,
						    (int)e->cfg->metadata_timeout_ms);
	rd_kafka_topic_destroy(t);
	if (err) {
		log_warn("metadata for topic %s: %s", e->cfg->topic, rd_kafka_err2str(err));
		return -1;
	}
	int rc = -1;
	e->kafka_ok_ms = now_mono_ms();
	if (md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0) {
		uint32_t n = (uint32_t)md->topics[0].partition_cnt;
		if (n != e->partition_count)
			log_info("topic %s has %u partitions", e->cfg->topic, n);
		if (n > e->partition_count && e->partition_count) {
			grow_parts(e, n);
			e->epoch++;
			broadcast_assign(e);
		}
		grow_parts(e, n);
		rc = 0;
	} else {
		log_warn("topic %s: %s", e->cfg->topic,
			 md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not found");
	}
	rd_kafka_metadata_destroy(md);
	return rc;
}

/* Sets the offset each newly assigned partition starts at: its committed
 * offset, or for a group that never committed, the live end. Explicit, so the
 * edge knows its live point before the first record arrives. */
static void start_offsets(struct edge *e, rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_resp_err_t err = rd_kafka_committed(e->consumer, parts,
						     (int)e->cfg->metadata_timeout_ms);
	if (err)
		log_warn("committed offsets: %s; starting at the live end", rd_kafka_err2str(err));
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &parts->elems[i];
		if (!err && tp->offset >= 0)
			continue;
		int64_t lo = -1, hi = -1;
		rd_kafka_resp_err_t werr = rd_kafka_query_watermark_offsets(
			e->consumer, tp->topic, tp->partition, &lo, &hi,
			(int)e->cfg->metadata_timeout_ms);
		tp->offset = werr ? RD_KAFKA_OFFSET_END : hi;
		if (werr)
			log_warn("watermarks of partition %d: %s", tp->partition,
				 rd_kafka_err2str(werr));
	}
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct edge *e = opaque;
	bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *error = NULL;
	rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;

	for (int i = 0; i < parts->cnt; i++)
		if (parts->elems[i].partition >= 0)
			grow_parts(e, (uint32_t)parts->elems[i].partition + 1);

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		start_offsets(e, parts);
		if (cooperative)
			error = rd_kafka_incremental_assign(rk, parts);
		else
			aerr = rd_kafka_assign(rk, parts);
		for (int i = 0; i < parts->cnt; i++) {
			struct part *p = &e->parts[parts->elems[i].partition];
			p->owned = true;
			p->next_offset = parts->elems[i].offset;
			p->stored = p->next_offset;
			tail_reset(&p->tail, p->next_offset);
		}
		e->epoch++;
		broadcast_assign(e);
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		/* Stop and tell the routers first, then let Kafka hand them on:
		 * the routers see the revoke before the next owner's claim. */
		flush_all(e);
		for (int i = 0; i < parts->cnt; i++) {
			uint32_t p = (uint32_t)parts->elems[i].partition;
			e->parts[p].owned = false;
			e->parts[p].next_offset = -1;
			replay_drop(e, p);
			tail_free(&e->parts[p].tail);
			subs_remove_partition(&e->subs, p);
		}
		e->epoch++;
		broadcast_assign(e);
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

void batch_record(struct edge *e, struct router_link *l, const struct wire_record *r,
		  const uint64_t *sids, uint32_t n)
{
	if (!l->batch_open) {
		wire_buf_reset(&l->batch);
		wire_enc_deliver_begin(&l->batch);
		l->batch_open = true;
	}
	wire_enc_deliver_record(&l->batch, r, sids, n);
	e->delivered += n;
	if (l->batch.len >= (size_t)e->cfg->batch_bytes)
		flush_batch(e, l);
}

/* Keeps the record in the partition's tail and adds it to the batch of every
 * router with live sessions for its key. */
static void deliver(struct edge *e, const rd_kafka_message_t *m)
{
	uint32_t p = (uint32_t)m->partition;
	if (p >= e->partition_count || !e->parts[p].owned)
		return; /* a late message of a revoked partition */
	struct part *pt = &e->parts[p];
	e->records++;
	rd_kafka_timestamp_type_t tstype;
	int64_t ts = rd_kafka_message_timestamp(m, &tstype);
	if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
		ts = -1;
	tail_append(&pt->tail, m->offset, ts, m->key, m->key_len, m->payload, m->len,
		    m->payload == NULL, tail_budget(e));
	pt->next_offset = m->offset + 1;
	if (!m->key_len)
		return;
	const struct subs_key *k = subs_lookup(&e->subs, m->key, m->key_len);
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
		struct router_link *l = link_find(e, pipe);
		if (n && l && l->hello)
			batch_record(e, l, &r, sids, n);
	}
	if (sids != sids_stack)
		free(sids);
}

/* Stores, for the next commit, the offsets of everything handed to the
 * routers' connections: a restarted group resumes after them. */
static void store_offsets(struct edge *e)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	for (uint32_t p = 0; p < e->partition_count; p++) {
		struct part *pt = &e->parts[p];
		if (!pt->owned || pt->next_offset < 0 || pt->next_offset == pt->stored)
			continue;
		if (!l)
			l = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_add(l, e->cfg->topic, (int32_t)p)->offset =
			pt->next_offset;
		pt->stored = pt->next_offset;
	}
	if (!l)
		return;
	rd_kafka_resp_err_t err = rd_kafka_offsets_store(e->consumer, l);
	if (err)
		log_debug("offsets_store: %s", rd_kafka_err2str(err));
	rd_kafka_topic_partition_list_destroy(l);
}

static void consume(struct edge *e)
{
	rd_kafka_message_t *msgs[512];
	ssize_t n;
	do {
		n = rd_kafka_consume_batch_queue(e->cq, 0, msgs, 512);
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *m = msgs[i];
			if (!m->err)
				deliver(e, m);
			else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				log_warn("consumer: %s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
		}
	} while (n == 512);
	flush_all(e);
	store_offsets(e);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct edge *e = opaque;
	struct up_ctx *c = m->_private;
	if (m->err && c) {
		struct router_link *l = link_find(e, c->link);
		if (l && l->hello) {
			const char *reason = rd_kafka_err2str(m->err);
			struct wire_up_err ue = { .sid = c->sid, .code = WIRE_UP_FAILED,
						  .reason = { reason, (uint32_t)strlen(reason) } };
			wire_buf_reset(&e->out);
			wire_enc_up_err(&e->out, ++l->tx_seq, &ue);
			send_raw(e, l, e->out.data, e->out.len);
		}
		log_warn("upstream produce failed: %s", rd_kafka_err2str(m->err));
	}
	free(c);
}

/* Applies the shared settings and the user's key=value properties. */
static int apply_props(const struct edge_config *cfg, rd_kafka_conf_t *conf, char *err,
		       size_t errlen)
{
	if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->bootstrap, err, errlen))
		return -1;
	for (size_t i = 0; i < cfg->kafka_props.count; i++) {
		const char *kv = cfg->kafka_props.items[i];
		const char *eq = strchr(kv, '=');
		if (!eq) {
			snprintf(err, errlen, "--kafka-prop '%s' is not key=value", kv);
			return -1;
		}
		char *key = xstrndup(kv, (size_t)(eq - kv));
		rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, key, eq + 1, err, errlen);
		free(key);
		if (r != RD_KAFKA_CONF_OK)
			return -1;
	}
	return 0;
}

static int kafka_open(struct edge *e)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *defaults[][2] = {
		{ "group.id", e->cfg->group },
		{ "partition.assignment.strategy", "cooperative-sticky" },
		/* Start offsets are set explicitly (start_offsets); this applies only
		 * when a position fell out of retention: keep what is left. */
		{ "auto.offset.reset", "earliest" },
		{ "enable.partition.eof", "false" },
		{ "enable.auto.offset.store", "false" },
		{ "fetch.wait.max.ms", "100" },
		{ "client.id", e->edge_id },
	};
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
		if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, sizeof err))
			goto out_bad_conf;
	if (*e->cfg->instance_id &&
	    rd_kafka_conf_set(conf, "group.instance.id", e->cfg->instance_id, err, sizeof err))
		goto out_bad_conf;
	if (apply_props(e->cfg, conf, err, sizeof err) < 0)
		goto out_bad_conf;
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_opaque(conf, e);
	e->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!e->consumer) {
		log_error("kafka consumer: %s", err);
		return -1;
	}
	rd_kafka_poll_set_consumer(e->consumer);
	e->cq = rd_kafka_queue_get_consumer(e->consumer);
	if (pipe2(e->kafka_fd, O_NONBLOCK | O_CLOEXEC) < 0) {
		log_error("pipe: %s", strerror(errno));
		return -1;
	}
	rd_kafka_queue_io_event_enable(e->cq, e->kafka_fd[1], "1", 1);

	/* The replay consumer: no group, never commits. */
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "client.id", e->edge_id, err, sizeof err) ||
	    apply_props(e->cfg, conf, err, sizeof err) < 0)
		goto out_bad_conf;
	if (replay_open(e, conf) < 0)
		return -1;

	if (*e->cfg->inbound_topic) {
		conf = rd_kafka_conf_new();
		if (rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err) ||
		    rd_kafka_conf_set(conf, "client.id", e->edge_id, err, sizeof err) ||
		    apply_props(e->cfg, conf, err, sizeof err) < 0)
			goto out_bad_conf;
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
		rd_kafka_conf_set_opaque(conf, e);
		e->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
		if (!e->producer) {
			log_error("kafka producer: %s", err);
			return -1;
		}
		e->inbound = rd_kafka_topic_new(e->producer, e->cfg->inbound_topic, NULL);
	}
	return 0;
out_bad_conf:
	log_error("kafka configuration: %s", err);
	rd_kafka_conf_destroy(conf);
	return -1;
}

/* ---- router messages --------------------------------------------------- */

static void send_sub_ack(struct edge *e, struct router_link *l, uint64_t sid, uint32_t status,
			 int64_t start, bool complete)
{
	struct wire_sub_ack a = { .sid = sid, .status = status, .start_offset = start,
				  .complete = complete };
	flush_batch(e, l); /* keep order: records already batched come first */
	wire_buf_reset(&e->out);
	wire_enc_sub_ack(&e->out, ++l->tx_seq, &a);
	send_raw(e, l, e->out.data, e->out.len);
}

/* A router session subscribes to its key: live from here, after replaying
 * what it missed since its position (PROTOCOL.md, SUB). */
static void on_sub(struct edge *e, struct router_link *l, const struct wire_sub *s)
{
	if (s->partition >= e->partition_count || s->from_offset < WIRE_OFFSET_LIVE) {
		send_sub_ack(e, l, s->sid, WIRE_SUB_BAD, -1, false);
		return;
	}
	struct part *pt = &e->parts[s->partition];
	if (!pt->owned) {
		send_sub_ack(e, l, s->sid, WIRE_SUB_NOT_OWNER, -1, false);
		return;
	}
	struct sub *x = subs_add(&e->subs, l->id, s->sid, s->partition, s->key.ptr, s->key.len);
	int64_t live = pt->next_offset;
	if (s->from_offset < 0 || live < 0 || s->from_offset >= live) {
		send_sub_ack(e, l, s->sid, WIRE_SUB_OK, live, true);
		return;
	}
	/* Behind the live point: complete unless Kafka no longer has it. */
	int64_t low = replay_low(e, s->partition);
	send_sub_ack(e, l, s->sid, WIRE_SUB_OK, live, low < 0 || s->from_offset >= low);
	replay_start(e, x, s->from_offset);
}

static void up_error(struct edge *e, struct router_link *l, uint64_t sid, uint32_t code,
		     const char *reason)
{
	struct wire_up_err ue = { .sid = sid, .code = code,
				  .reason = { reason, (uint32_t)strlen(reason) } };
	wire_buf_reset(&e->out);
	wire_enc_up_err(&e->out, ++l->tx_seq, &ue);
	send_raw(e, l, e->out.data, e->out.len);
}

static void on_up(struct edge *e, struct router_link *l, const struct wire_up *u)
{
	if (!e->producer) {
		up_error(e, l, u->sid, WIRE_UP_DISABLED, "no inbound topic is configured");
		return;
	}
	struct up_ctx *c = xmalloc(sizeof *c);
	c->link = l->id;
	c->sid = u->sid;
	if (rd_kafka_produce(e->inbound, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
			     (void *)u->data.ptr, u->data.len, u->key.ptr, u->key.len, c) < 0) {
		free(c);
		up_error(e, l, u->sid, WIRE_UP_FAILED, rd_kafka_err2str(rd_kafka_last_error()));
	}
}

/* With a secret, a HELLO must carry the router's proof over our nonce. */
static bool router_authentic(struct edge *e, struct router_link *l, const struct wire_hello *h)
{
	if (!linkauth_enabled(&e->secret))
		return true;
	if (h->router_nonce.len != LINKAUTH_NONCE)
		return false;
	uint8_t want[LINKAUTH_MAC];
	linkauth_router_proof(&e->secret, l->nonce, (const uint8_t *)h->router_nonce.ptr,
			      h->router_id.ptr, h->router_id.len, want);
	return linkauth_check((const uint8_t *)h->auth.ptr, h->auth.len, want);
}

static void on_router_msg(struct edge *e, struct router_link *l, const void *buf, size_t len)
{
	struct wire_msg m;
	int rc = wire_decode(&m, buf, len);
	uint32_t pipe = l->id;
	if (rc == -WIRE_EUNKNOWN) {
		/* A newer router's message: it still takes part in the numbering. */
		e->unknown++;
		log_debug("router link %u: unknown message type %u", pipe, m.type);
		if (!l->hello || l->desynced)
			return;
		if (m.seq == l->rx_expect) {
			l->rx_expect++;
			return;
		}
		e->gaps++;
		goto out_resync;
	}
	if (rc == -WIRE_EVERSION) {
		/* Another protocol version: ignore the pipe until a HELLO of ours. */
		e->malformed++;
		if (!l->warned)
			log_error("router link %u speaks another protocol version; ignoring it", pipe);
		l->warned = true;
		return;
	}
	if (rc < 0) {
		e->malformed++;
		if (!l->warned)
			log_warn("router link %u: dropped message: %s (logged once per link)", pipe,
				 wire_strerror(rc));
		l->warned = true;
		goto out_resync;
	}
	if (m.type == WIRE_HELLO && !router_authentic(e, l, &m.u.hello)) {
		e->auth_failures++;
		log_error("router at %s failed authentication (--link-secret): disconnecting it",
			  chan_peer(l->ch));
		chan_close(l->ch);
		goto out_free;
	}
	if (m.type == WIRE_HELLO) {
		size_t n = subs_remove_pipe(&e->subs, pipe);
		if (m.u.hello.router_nonce.len == LINKAUTH_NONCE)
			memcpy(l->router_nonce, m.u.hello.router_nonce.ptr, LINKAUTH_NONCE);
		free(l->router_id);
		l->router_id = xstrndup(m.u.hello.router_id.ptr, m.u.hello.router_id.len);
		l->hello = true;
		l->desynced = false;
		l->batch_open = false;
		l->rx_expect = m.seq + 1;
		l->hello_seq = m.seq;
		log_info("router %s said hello (link %u)%s", l->router_id, pipe,
			 n ? ", its earlier subscriptions dropped" : "");
		send_edge_hello(e, l);
		goto out_free;
	}
	if (!l->hello || l->desynced)
		goto out_free; /* waiting for HELLO */
	if (m.seq != l->rx_expect) {
		e->gaps++;
		log_warn("router %s: gap in numbering (got %llu, expected %llu)", l->router_id,
			 (unsigned long long)m.seq, (unsigned long long)l->rx_expect);
		wire_msg_free(&m);
		goto out_resync;
	}
	l->rx_expect++;
	switch (m.type) {
	case WIRE_SUB:
		on_sub(e, l, &m.u.sub);
		break;
	case WIRE_UNSUB:
		subs_remove(&e->subs, pipe, m.u.unsub.sid);
		break;
	case WIRE_UP:
		on_up(e, l, &m.u.up);
		break;
	case WIRE_FLOW: {
		struct sub *x = subs_get(&e->subs, pipe, m.u.flow.sid);
		if (x)
			x->paused = m.u.flow.paused;
		break;
	}
	default:
		log_warn("router %s: unexpected message type %u", l->router_id, m.type);
		break;
	}
out_free:
	wire_msg_free(&m);
	return;
out_resync:
	if (l->hello && !l->desynced) {
		struct wire_resync r = { .reason = { "gap or malformed message", 24 } };
		l->desynced = true;
		subs_remove_pipe(&e->subs, pipe);
		flush_batch(e, l);
		wire_buf_reset(&e->out);
		wire_enc_resync(&e->out, ++l->tx_seq, &r);
		send_raw(e, l, e->out.data, e->out.len);
	}
}

/* Takes new connections and what routers sent; drops ended links. */
static void drain_links(struct edge *e)
{
	uint64_t v;
	if (read(e->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
		log_debug("eventfd read: %s", strerror(errno));
	nng_stream *s;
	while ((s = chan_listener_take(e->listener)))
		link_new(e, s);
	for (size_t i = 0; i < e->nlinks;) {
		struct router_link *l = e->links[i];
		const void *buf;
		size_t len;
		int rc = 0;
		for (int k = 0; k < 4096 && (rc = chan_recv(l->ch, &buf, &len)) > 0; k++)
			on_router_msg(e, l, buf, len);
		if (rc < 0) {
			link_destroy(e, i);
			continue;
		}
		if (rc > 0)
			wake_loop(e); /* more is waiting: come back after Kafka */
		i++;
	}
	flush_all(e);
}

void edge_drain(struct edge *e)
{
	if (e->draining)
		return;
	e->draining = true;
	/* Unsubscribing revokes every partition (the rebalance callback tells
	 * the routers at once) and the group gives them to the other edges;
	 * this edge stays a member with nothing assigned. */
	rd_kafka_resp_err_t err = rd_kafka_unsubscribe(e->consumer);
	if (err)
		log_error("drain: unsubscribe: %s", rd_kafka_err2str(err));
	else
		log_info("draining: handing every partition to the other edges");
}

static void drain_fd(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof buf) == (ssize_t)sizeof buf)
		;
}

int edge_run(const struct edge_config *cfg)
{
	struct edge *e = xcalloc(1, sizeof *e);
	int rc = 1;
	e->cfg = cfg;
	e->kafka_fd[0] = e->kafka_fd[1] = -1;
	e->replay_fd[0] = e->replay_fd[1] = -1;
	subs_init(&e->subs);
	wire_buf_init(&e->out);
	if (*cfg->edge_id) {
		snprintf(e->edge_id, sizeof e->edge_id, "%s", cfg->edge_id);
	} else {
		char host[128] = "edge";
		gethostname(host, sizeof host - 1);
		snprintf(e->edge_id, sizeof e->edge_id, "%s:%d", host, (int)getpid());
	}
	e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->listener = NULL;

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	char serr[300];
	if (linkauth_load_secret(cfg->link_secret, &e->secret, serr, sizeof serr) < 0) {
		log_error("--link-secret (EDGE_LINK_SECRET): %s", serr);
		goto out;
	}
	if (!linkauth_enabled(&e->secret))
		log_warn("no --link-secret: any process that reaches %s can subscribe here",
			 cfg->listen);
	if (kafka_open(e) < 0)
		goto out;
	char lerr[300];
	e->listener = chan_listener_new(cfg->listen, wake_loop, e, lerr, sizeof lerr);
	if (!e->listener) {
		log_error("%s", lerr);
		goto out;
	}

	/* The partition count first: routers need it to place clients. */
	while (!stop_requested && refresh_metadata(e) < 0)
		usleep(500 * 1000);
	if (stop_requested)
		goto out_ok;
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, cfg->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(e->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		log_error("subscribe to %s: %s", cfg->topic, rd_kafka_err2str(err));
		goto out;
	}
	log_info("edge %s: listening on %s, group %s, topic %s, upstream %s", e->edge_id,
		 cfg->listen, cfg->group, cfg->topic,
		 *cfg->inbound_topic ? cfg->inbound_topic : "disabled");
	e->next_metadata_ms = now_mono_ms() + 10000;
	if (ops_start(e) < 0)
		goto out;

	struct pollfd fds[3] = {
		{ .fd = e->kafka_fd[0], .events = POLLIN },
		{ .fd = e->wake_fd, .events = POLLIN },
		{ .fd = replay_fd(e), .events = POLLIN },
	};
	while (!stop_requested) {
		int n = poll(fds, 3, 100);
		if (n < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			goto out;
		}
		if (fds[1].revents & POLLIN)
			drain_links(e);
		if (fds[0].revents & POLLIN)
			drain_fd(e->kafka_fd[0]);
		/* Replays before new records: what a session is owed comes
		 * first, and the tail does not move under a pending replay. */
		replay_poll(e);
		/* Always serve the consumer queue: rebalances and records. */
		consume(e);
		if (e->producer)
			rd_kafka_poll(e->producer, 0);
		if (now_mono_ms() >= e->next_metadata_ms) {
			refresh_metadata(e);
			e->next_metadata_ms = now_mono_ms() + 10000;
		}
		ops_tick(e);
	}
out_ok:
	log_info("edge %s: stopping (records %llu, delivered %llu, send drops %llu)", e->edge_id,
		 (unsigned long long)e->records, (unsigned long long)e->delivered,
		 (unsigned long long)e->dropped_send);
	rc = 0;
out:
	ops_stop(e);
	if (e->consumer) {
		/* Leave the group cleanly: the revoke callback tells the routers. */
		rd_kafka_consumer_close(e->consumer);
		flush_all(e);
	}
	if (e->producer) {
		rd_kafka_flush(e->producer, 5000);
		rd_kafka_topic_destroy(e->inbound);
		rd_kafka_destroy(e->producer);
	}
	replay_close(e);
	if (e->cq)
		rd_kafka_queue_destroy(e->cq);
	if (e->consumer)
		rd_kafka_destroy(e->consumer);
	chan_listener_free(e->listener);
	while (e->nlinks)
		link_destroy(e, e->nlinks - 1);
	free(e->links);
	subs_free(&e->subs);
	linkauth_secret_free(&e->secret);
	wire_buf_free(&e->out);
	for (uint32_t p = 0; p < e->partition_count; p++)
		tail_free(&e->parts[p].tail);
	free(e->parts);
	for (int i = 0; i < 2; i++)
		if (e->kafka_fd[i] >= 0)
			close(e->kafka_fd[i]);
	if (e->wake_fd >= 0)
		close(e->wake_fd);
	free(e);
	return rc;
}
