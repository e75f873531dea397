/*
 * ops: the edge's admin endpoint (README, "Operating it"): health and
 * readiness probes, Prometheus metrics, the assignment as JSON, and drain
 * (hand every partition to the other edges while the routers keep their
 * clients' sockets open). Handlers run on the edge's loop (ADMIN_ON_LOOP).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge_int.h"
#include "util.h"

/* Records the edge has not handed out yet: the high watermark librdkafka last
 * saw minus the next offset. -1 when unknown. */
static int64_t lag(struct edge *e, uint32_t p)
{
	int64_t lo, hi;
	if (rd_kafka_get_watermark_offsets(e->consumer, e->cfg->topic, (int32_t)p, &lo, &hi) ||
	    hi < 0 || e->parts[p].next_offset < 0)
		return -1;
	return hi > e->parts[p].next_offset ? hi - e->parts[p].next_offset : 0;
}

static void collect(void *arg, struct metrics_writer *w)
{
	struct edge *e = arg;
	uint32_t owned = 0;
	size_t tail_bytes = 0;
	for (uint32_t p = 0; p < e->partition_count; p++) {
		owned += e->parts[p].owned;
		tail_bytes += e->parts[p].tail.bytes;
	}
	metrics_write_family(w, "kws_edge_partitions_owned", "Partitions assigned to this edge",
			     METRICS_GAUGE);
	metrics_write_sample(w, owned);
	metrics_write_family(w, "kws_edge_consumer_lag", "Records of a partition not handed out yet",
			     METRICS_GAUGE);
	for (uint32_t p = 0; p < e->partition_count; p++) {
		int64_t l = e->parts[p].owned ? lag(e, p) : -1;
		if (l < 0)
			continue;
		char pb[16];
		snprintf(pb, sizeof pb, "%u", p);
		metrics_write_sample(w, (double)l, "topic", e->cfg->topic, "partition", pb);
	}
	metrics_write_family(w, "kws_edge_records_total", "Records consumed from the delivery topic",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)e->records);
	metrics_write_family(w, "kws_edge_deliveries_total",
			     "Record copies sent to router sessions", METRICS_COUNTER);
	metrics_write_sample(w, (double)e->delivered);
	metrics_write_family(w, "kws_edge_rebalances_total", "Assignment changes (epochs)",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)e->epoch);
	metrics_write_family(w, "kws_edge_replays_total", "Subscriptions replayed, by source",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)e->replays_memory, "source", "memory");
	metrics_write_sample(w, (double)e->replays_kafka, "source", "kafka");
	metrics_write_family(w, "kws_edge_replayed_records_total", "Records sent by replays",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)e->replayed_records);
	metrics_write_family(w, "kws_edge_replay_timeouts_total", "Replays from Kafka abandoned",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)e->replay_timeouts);
	metrics_write_family(w, "kws_edge_routers", "Connected routers", METRICS_GAUGE);
	metrics_write_sample(w, (double)e->nlinks);
	metrics_write_family(w, "kws_edge_subscriptions", "Router sessions subscribed here",
			     METRICS_GAUGE);
	metrics_write_sample(w, (double)e->subs.count);
	metrics_write_family(w, "kws_edge_tail_bytes", "Bytes of recent records kept for replays",
			     METRICS_GAUGE);
	metrics_write_sample(w, (double)tail_bytes);
	metrics_write_family(w, "kws_edge_link_errors_total", "Router link problems, by kind",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)e->dropped_send, "kind", "send_refused");
	metrics_write_sample(w, (double)e->malformed, "kind", "malformed");
	metrics_write_sample(w, (double)e->gaps, "kind", "gap");
	metrics_write_sample(w, (double)e->unknown, "kind", "unknown_type");
	metrics_write_sample(w, (double)e->auth_failures, "kind", "auth_failed");
	metrics_write_family(w, "kws_edge_draining", "1 while the edge drains", METRICS_GAUGE);
	metrics_write_sample(w, e->draining ? 1 : 0);
}

static void h_metrics(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct edge *e = arg;
	char *out;
	size_t len;
	metrics_render(e->metrics, &out, &len);
	admin_response_text(resp, 200, METRICS_CONTENT_TYPE, out, len);
	free(out);
}

/* Joined the group: it has a member id. An edge the group gives no
 * partitions (more edges than partitions) is still ready: a standby. */
static bool joined(struct edge *e)
{
	char *id = rd_kafka_memberid(e->consumer);
	bool ok = id && *id;
	if (id)
		rd_kafka_mem_free(e->consumer, id);
	return ok || e->epoch > 0;
}

static void h_readyz(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct edge *e = arg;
	const char *why = NULL;
	if (e->draining)
		why = "draining";
	else if (!joined(e))
		why = "not a member of the consumer group yet";
	else if (now_mono_ms() - e->kafka_ok_ms > 30000)
		why = "Kafka unreachable for more than 30 s";
	if (why)
		admin_response_json(resp, 503, json_pack("{s:b,s:s}", "ready", 0, "reason", why));
	else
		admin_response_json(resp, 200, json_pack("{s:b}", "ready", 1));
}

static void h_assignment(void *arg, const struct admin_request *req,
			 struct admin_response *resp)
{
	struct edge *e = arg;
	json_t *parts = json_array(), *routers = json_array();
	for (uint32_t p = 0; p < e->partition_count; p++) {
		struct part *pt = &e->parts[p];
		if (!pt->owned)
			continue;
		int64_t l = lag(e, p);
		json_array_append_new(
			parts, json_pack("{s:i,s:I,s:o,s:I,s:I,s:b}", "partition", (json_int_t)p,
					 "next_offset", (json_int_t)pt->next_offset, "lag",
					 l >= 0 ? json_integer(l) : json_null(), "tail_records",
					 (json_int_t)pt->tail.count, "tail_bytes",
					 (json_int_t)pt->tail.bytes, "replaying", pt->job != NULL));
	}
	for (size_t i = 0; i < e->nlinks; i++) {
		struct router_link *l = e->links[i];
		json_array_append_new(routers,
				      json_pack("{s:o,s:s,s:b}", "router",
						l->router_id ? json_string(l->router_id) : json_null(),
						"address", chan_peer(l->ch), "hello", l->hello));
	}
	admin_response_json(resp, 200,
			    json_pack("{s:s,s:s,s:s,s:I,s:i,s:o,s:o,s:I,s:b}", "edge", e->edge_id,
				      "topic", e->cfg->topic, "group", e->cfg->group, "epoch",
				      (json_int_t)e->epoch, "partition_count",
				      (json_int_t)e->partition_count, "partitions", parts, "routers",
				      routers, "subscriptions", (json_int_t)e->subs.count,
				      "draining", e->draining));
}

static void h_drain(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct edge *e = arg;
	edge_drain(e);
	admin_response_json(resp, 202, json_pack("{s:b}", "draining", 1));
}

static void wake(void *arg)
{
	struct edge *e = arg;
	uint64_t one = 1;
	if (write(e->wake_fd, &one, sizeof one) < 0)
		return; /* a wake-up is pending anyway */
}

int ops_start(struct edge *e)
{
	e->metrics = metrics_new();
	metrics_collect(e->metrics, collect, e);
	e->kafka_ok_ms = now_mono_ms();
	if (!*e->cfg->admin_listen)
		return 0;
	struct admin_config ac = { .token = e->cfg->admin_token, .wake = wake, .wake_arg = e };
	char err[256];
	e->admin = admin_start(e->cfg->admin_listen, &ac, err, sizeof err);
	if (!e->admin) {
		log_error("admin endpoint: %s", err);
		return -1;
	}
	admin_route(e->admin, "GET", "/readyz", h_readyz, e, ADMIN_ON_LOOP);
	admin_route(e->admin, "GET", "/metrics", h_metrics, e, ADMIN_ON_LOOP);
	admin_route(e->admin, "GET", "/api/v1/assignment", h_assignment, e, ADMIN_ON_LOOP);
	admin_route(e->admin, "POST", "/api/v1/drain", h_drain, e,
		    ADMIN_ON_LOOP | ADMIN_NEEDS_TOKEN);
	log_info("admin endpoint on %s (port %d)", e->cfg->admin_listen, admin_port(e->admin));
	return 0;
}

void ops_tick(struct edge *e)
{
	if (!e->admin)
		return;
	admin_loop_alive(e->admin);
	admin_run_pending(e->admin);
}

void ops_stop(struct edge *e)
{
	admin_stop(e->admin);
	e->admin = NULL;
	metrics_free(e->metrics);
	e->metrics = NULL;
}
