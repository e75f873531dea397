/*
 * ops: the edge's admin endpoint (README, "Operating it"): health and
 * readiness probes, Prometheus metrics, the assignment as JSON, and drain
 * (hand every partition to the other edges while the routers keep their
 * clients' sockets open). Handlers run on the edge's loop (ADMIN_ON_LOOP).
 */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "metrics.h"
#include "util.h"

struct ops {
	struct ops_source src;
	struct admin *admin;
	struct metrics *metrics;
};

static void collect(void *arg, struct metrics_writer *w)
{
	struct ops *o = arg;
	const struct consumer *c = o->src.consumer;
	struct consumer_stats cs;
	struct routers_stats rs;
	struct replay_stats ps;
	consumer_get_stats(c, &cs);
	routers_get_stats(o->src.routers, &rs);
	replay_get_stats(o->src.replay, &ps);
	uint32_t count = consumer_partition_count(c);
	size_t tail_bytes = 0;
	for (uint32_t p = 0; p < count; p++)
		tail_bytes += consumer_part(c, p)->tail.bytes;
	metrics_write_family(w, "kws_edge_partitions_owned", "Partitions assigned to this edge",
			     METRICS_GAUGE);
	metrics_write_sample(w, cs.owned);
	metrics_write_family(w, "kws_edge_consumer_lag",
			     "Records of a partition not handed out yet", METRICS_GAUGE);
	for (uint32_t p = 0; p < count; p++) {
		int64_t l = consumer_part(c, p)->owned ? consumer_lag(c, p) : -1;
		if (l < 0)
			continue;
		char pb[16];
		snprintf(pb, sizeof pb, "%u", p);
		metrics_write_sample(w, (double)l, "topic", o->src.cfg->topic, "partition", pb);
	}
	metrics_write_family(w, "kws_edge_records_total",
			     "Records consumed from the delivery topic", METRICS_COUNTER);
	metrics_write_sample(w, (double)cs.records);
	metrics_write_family(
		w, "kws_edge_fetch_refills_total",
		"Fetches woken where librdkafka 2.0.2 would sleep up to 1 s: the local "
		"queue was full and is empty (reason full), or nothing came though "
		"Kafka had more (reason idle)",
		METRICS_COUNTER);
	metrics_write_sample(w, (double)cs.refills_full, "reason", "full");
	metrics_write_sample(w, (double)cs.refills_idle, "reason", "idle");
	metrics_write_family(w, "kws_edge_deliveries_total",
			     "Record copies sent to router sessions", METRICS_COUNTER);
	metrics_write_sample(w, (double)rs.delivered);
	metrics_write_family(w, "kws_edge_rebalances_total", "Assignment changes (epochs)",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)cs.epoch);
	metrics_write_family(w, "kws_edge_replays_total", "Subscriptions replayed, by source",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)ps.from_memory, "source", "memory");
	metrics_write_sample(w, (double)ps.from_kafka, "source", "kafka");
	metrics_write_family(w, "kws_edge_replayed_records_total", "Records sent by replays",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)ps.records);
	metrics_write_family(w, "kws_edge_replay_timeouts_total", "Replays from Kafka abandoned",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)ps.timeouts);
	metrics_write_family(w, "kws_edge_replay_tail_holds_total",
			     "Times a replay from the tail held a router link's sessions back "
			     "until its send queue was down to 4 MiB",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)ps.tail_holds);
	metrics_write_family(w, "kws_edge_positions_beyond_end_total",
			     "Subscriptions whose position was past the partition's end",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)ps.beyond_end);
	metrics_write_family(w, "kws_edge_subs_without_watermarks_total",
			     "Subscriptions answered without Kafka's watermarks (Kafka too slow)",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)ps.unanswered);
	metrics_write_family(w, "kws_edge_routers", "Connected routers", METRICS_GAUGE);
	metrics_write_sample(w, (double)rs.links);
	metrics_write_family(w, "kws_edge_subscriptions", "Router sessions subscribed here",
			     METRICS_GAUGE);
	metrics_write_sample(w, (double)o->src.subs->count);
	metrics_write_family(w, "kws_edge_tail_bytes", "Bytes of recent records kept for replays",
			     METRICS_GAUGE);
	metrics_write_sample(w, (double)tail_bytes);
	metrics_write_family(w, "kws_edge_link_errors_total", "Router link problems, by kind",
			     METRICS_COUNTER);
	metrics_write_sample(w, (double)rs.dropped_send, "kind", "send_refused");
	metrics_write_sample(w, (double)rs.malformed, "kind", "malformed");
	metrics_write_sample(w, (double)rs.gaps, "kind", "gap");
	metrics_write_sample(w, (double)rs.unknown, "kind", "unknown_type");
	metrics_write_sample(w, (double)rs.auth_failures, "kind", "auth_failed");
	metrics_write_sample(w, (double)rs.hello_timeouts, "kind", "hello_timeout");
	metrics_write_sample(w, (double)rs.refused, "kind", "refused_too_many");
	metrics_write_sample(w, (double)rs.preauth_closed, "kind", "closed_before_hello");
	metrics_write_family(
		w, "kws_edge_link_backlogged_total",
		"Times a router link's send queue passed 16 MiB: the edge held Kafka's "
		"records back until it was down to 4 MiB",
		METRICS_COUNTER);
	metrics_write_sample(w, (double)rs.deep);
	metrics_write_family(w, "kws_edge_routers_unauthenticated",
			     "Router links that have not said HELLO yet", METRICS_GAUGE);
	metrics_write_sample(w, (double)rs.preauth);
	metrics_write_family(w, "kws_edge_draining", "1 while the edge drains", METRICS_GAUGE);
	metrics_write_sample(w, cs.draining ? 1 : 0);
}

static void h_metrics(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct ops *o = arg;
	char *out;
	size_t len;
	metrics_render(o->metrics, &out, &len);
	admin_response_text(resp, 200, METRICS_CONTENT_TYPE, out, len);
	free(out);
}

/* Ready once a member of the group: an edge the group gives no partitions
 * (more edges than partitions) is still ready, a standby. */
static void h_readyz(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct ops *o = arg;
	struct consumer_stats cs;
	consumer_get_stats(o->src.consumer, &cs);
	const char *why = NULL;
	if (cs.closing)
		why = "stopping";
	else if (cs.draining)
		why = "draining";
	else if (!cs.joined)
		why = "not a member of the consumer group yet";
	else if (now_mono_ms() - cs.kafka_ok_ms > 30000)
		why = "Kafka unreachable for more than 30 s";
	admin_response_ready(resp, why);
}

static void h_assignment(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct ops *o = arg;
	const struct consumer *c = o->src.consumer;
	struct consumer_stats cs;
	struct routers_stats rs;
	consumer_get_stats(c, &cs);
	routers_get_stats(o->src.routers, &rs);
	json_t *parts = json_array(), *routers = json_array();
	uint32_t count = consumer_partition_count(c);
	for (uint32_t p = 0; p < count; p++) {
		const struct consumer_part *pt = consumer_part(c, p);
		if (!pt->owned)
			continue;
		int64_t l = consumer_lag(c, p);
		json_array_append_new(
			parts, json_pack("{s:i,s:I,s:o,s:I,s:I,s:b}", "partition", (json_int_t)p,
					 "next_offset", (json_int_t)pt->next_offset, "lag",
					 l >= 0 ? json_integer(l) : json_null(), "tail_records",
					 (json_int_t)pt->tail.count, "tail_bytes",
					 (json_int_t)pt->tail.bytes, "replaying",
					 replay_running(o->src.replay, p)));
	}
	for (size_t i = 0; i < rs.links; i++) {
		struct routers_link_info li;
		routers_link_info(o->src.routers, i, &li);
		json_array_append_new(
			routers, json_pack("{s:o,s:s,s:b}", "router",
					   li.router_id ? json_string(li.router_id) : json_null(),
					   "address", li.address, "hello", li.hello));
	}
	admin_response_json(resp, 200,
			    json_pack("{s:s,s:s,s:s,s:I,s:i,s:o,s:o,s:I,s:b}", "edge",
				      o->src.edge_id, "topic", o->src.cfg->topic, "group",
				      o->src.cfg->group, "epoch", (json_int_t)cs.epoch,
				      "partition_count", (json_int_t)count, "partitions", parts,
				      "routers", routers, "subscriptions",
				      (json_int_t)o->src.subs->count, "draining", cs.draining));
}

static void h_drain(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct ops *o = arg;
	consumer_drain(o->src.consumer);
	admin_response_json(resp, 202, json_pack("{s:b}", "draining", 1));
}

struct ops *ops_start(const struct ops_source *src)
{
	struct ops *o = xcalloc(1, sizeof *o);
	o->src = *src;
	o->metrics = metrics_new();
	metrics_collect(o->metrics, collect, o);
	if (!*src->cfg->admin_listen)
		return o;
	struct admin_config ac = { .token = src->cfg->admin_token,
				   .wake = src->wake,
				   .wake_arg = src->wake_arg };
	char err[256];
	o->admin = admin_start(src->cfg->admin_listen, &ac, err, sizeof err);
	if (!o->admin) {
		log_error("admin endpoint: %s", err);
		ops_stop(o);
		return NULL;
	}
	admin_route(o->admin, "GET", "/readyz", h_readyz, o, ADMIN_ON_LOOP);
	admin_route(o->admin, "GET", "/metrics", h_metrics, o, ADMIN_ON_LOOP);
	admin_route(o->admin, "GET", "/api/v1/assignment", h_assignment, o, ADMIN_ON_LOOP);
	admin_route(o->admin, "POST", "/api/v1/drain", h_drain, o,
		    ADMIN_ON_LOOP | ADMIN_NEEDS_TOKEN);
	log_info("admin endpoint on %s (port %d)", src->cfg->admin_listen, admin_port(o->admin));
	return o;
}

void ops_tick(struct ops *o)
{
	if (!o->admin)
		return;
	admin_loop_alive(o->admin);
	admin_run_pending(o->admin);
}

void ops_stop(struct ops *o)
{
	if (!o)
		return;
	admin_stop(o->admin);
	metrics_free(o->metrics);
	free(o);
}
