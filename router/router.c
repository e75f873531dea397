/* router: see router.h. The edge protocol is in common/PROTOCOL.md. */
#include "router.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "cidr.h"
#include "ident.h"
#include "resolve.h"
#include "router_int.h"
#include "partition.h"
#include "util.h"
#include "wire.h"

#define TICK_US (100 * 1000)
#define WRITES_PER_CALLBACK 16
#define WRITE_BATCH_BYTES (64 * 1024)

static void prune_buckets(void);

static volatile sig_atomic_t stop_requested; /* signals received */
struct router *R; /* the one router of this process (lws callbacks) */

/* The first SIGTERM/SIGINT drains (ops.c), a second one stops at once. */
static void on_signal(int sig)
{
	stop_requested++;
	if (R && R->ctx)
		lws_cancel_service(R->ctx);
}

/* ---- sessions and edges ------------------------------------------------- */

static void send_unsub(struct link *l, uint64_t sid)
{
	if (l->state != LINK_UP)
		return;
	struct wire_unsub u = { .sid = sid };
	wire_buf_reset(&l->out);
	wire_enc_unsub(&l->out, link_next_seq(l), &u);
	link_send(l);
}

/* Pins a WAITING session to its partition's owner, if that link is up. */
static void try_pin(struct session *s)
{
	if (s->state != SESSION_WAITING || s->throttled)
		return;
	int owner = routes_owner(&R->routes, s->partition);
	if (owner == ROUTES_NONE)
		return;
	struct link *l = &R->links[owner];
	if (l->state != LINK_UP)
		return;
	session_pin(s, owner);
	struct wire_sub sub = {
		.sid = s->sid,
		.partition = s->partition,
		.key = { s->id, s->id_len },
		.from_offset = s->next_offset,
	};
	wire_buf_reset(&l->out);
	wire_enc_sub(&l->out, link_next_seq(l), &sub);
	link_send(l);
}

/* Asks lws to close a client with code and reason (done in its writeable
 * callback: STYLE 7, never free inside the callback that found the failure). */
void close_client(struct session *s, int code, const char *reason)
{
	struct lws *wsi = s->conn;
	struct conn *c = lws_wsi_user(wsi);
	if (c->close_code)
		return;
	log_info("closing a session of %s with %d: %s", s->id, code, reason);
	c->close_code = code;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	if (s->edge >= 0)
		send_unsub(&R->links[s->edge], s->sid);
	session_close(s);
	lws_callback_on_writable(wsi);
}

/* A slow client: its queue is half full. Its subscription is dropped at the
 * edge (records still in flight are not queued, and its position stays
 * behind them) until the client has taken most of its queue; then it
 * subscribes again from its position and the edge replays the rest. So a
 * burst never costs a client its connection, and the router holds at most
 * --queue-bytes for it. */
static void throttle(struct session *s)
{
	if (s->edge >= 0)
		send_unsub(&R->links[s->edge], s->sid);
	session_unpin(s);
	s->throttled = true;
	s->last_write_ms = now_mono_ms();
	log_debug("session %llu of %s throttled: %zu bytes queued", (unsigned long long)s->sid,
		  s->id, s->qbytes);
	R->throttles++;
	R->nthrottled++;
}

static void unthrottle(struct session *s)
{
	log_debug("session %llu of %s resumes at offset %lld", (unsigned long long)s->sid, s->id,
		  (long long)s->next_offset);
	s->throttled = false;
	R->nthrottled--;
	try_pin(s);
}

/* Closes throttled clients that took nothing for --stall-timeout-ms. */
static void close_stalled(int64_t now)
{
	size_t b;
	for (struct hnode *n = hmap_iter_first(&R->sessions.by_sid, &b); n;
	     n = hmap_iter_next(&R->sessions.by_sid, n, &b)) {
		struct session *s = hmap_entry(n, struct session, by_sid);
		if (s->throttled && s->state != SESSION_CLOSING &&
		    now - s->last_write_ms >= R->cfg->stall_timeout_ms) {
			R->slow_closed++;
			close_client(s, CLOSE_SLOW_CLIENT,
				     "slow client: not reading; reconnect to resume");
		}
	}
}

/* routes calls this for every partition whose owner changes. */
static void on_moved(void *arg, uint32_t p, int old, int new)
{
	log_info("partition %u: owner %s -> %s", p,
		 old == ROUTES_NONE ? "none" : R->links[old].url,
		 new == ROUTES_NONE ? "none" : R->links[new].url);
	R->moves++;
	for (struct session *s = sessions_in_partition(&R->sessions, p); s; s = s->pnext) {
		if (s->state == SESSION_SUBSCRIBING || s->state == SESSION_LIVE) {
			if (s->edge == new)
				continue;
			send_unsub(&R->links[s->edge], s->sid);
			session_unpin(s);
		}
		try_pin(s);
		if (s->state == SESSION_SUBSCRIBING)
			R->repins++;
	}
	bool complete = routes_complete(&R->routes);
	if (complete != R->complete) {
		R->complete = complete;
		if (complete)
			log_info("all %u partitions have owners", R->routes.partition_count);
		else
			log_warn("partition %u has no owner", p);
	}
}

/* The link lost its connection or its numbering: its partitions pass on. */
static void link_reset(struct link *l)
{
	l->state = LINK_DOWN;
	routes_edge_down(&R->routes, l->index);
}

static void link_restart(struct link *l)
{
	link_reset(l);
	l->resyncs++;
	link_hello(l, R->cfg->router_id, &R->secret);
}

static void on_deliver(struct link *l, const struct wire_msg *m)
{
	struct wire_record r;
	for (uint32_t i = 0; i < m->u.deliver.count; i++) {
		wire_deliver_get(m, i, &r);
		if (routes_owner(&R->routes, r.partition) != l->index) {
			R->fenced += r.nsids;
			continue;
		}
		for (uint32_t j = 0; j < r.nsids; j++) {
			struct session *s = sessions_get(&R->sessions, wire_record_sid(&r, j));
			if (!s || s->edge != l->index) {
				R->fenced++;
				continue;
			}
			bool was_empty = s->qhead == NULL;
			char hdr[48];
			size_t hlen = 0;
			if (s->framed)
				hlen = (size_t)snprintf(hdr, sizeof hdr, "d %u %lld\n", r.partition,
							(long long)r.offset);
			switch (session_offer_prefixed(&R->sessions, s, r.offset, r.timestamp_ms,
						       hdr, hlen,
						       r.value.ptr, r.value.len,
						       (size_t)R->cfg->queue_bytes)) {
			case SESSION_QUEUED:
				R->delivered++;
				R->delivered_bytes += r.value.len;
				if (was_empty)
					lws_callback_on_writable(s->conn);
				if (s->qbytes >= (size_t)R->cfg->queue_bytes / 2)
					throttle(s);
				break;
			case SESSION_DUPLICATE:
				R->duplicates++;
				break;
			case SESSION_NOT_LIVE:
				R->not_live++;
				break;
			case SESSION_OVERFLOW:
				R->slow_closed++;
				close_client(s, CLOSE_SLOW_CLIENT,
					     "slow client: queue limit reached; reconnect to resume");
				break;
			}
		}
	}
}

/* kws.v1: tells the client where its session stands (README, "Positions and
 * resume"): first after its first SUB_ACK, and again whenever a re-pin could
 * not replay everything. */
static void send_status(struct session *s, const struct wire_sub_ack *a)
{
	if (!s->framed || (s->status_sent && a->complete))
		return;
	const char *state;
	int64_t offset;
	if (s->status_sent || s->foreign_position || (s->presented && !a->complete)) {
		state = "incomplete";
		offset = s->presented && !s->status_sent && !s->foreign_position
				 ? s->presented_offset : s->next_offset;
	} else if (s->presented) {
		state = "complete";
		offset = s->presented_offset;
	} else {
		state = "live";
		offset = a->start_offset;
	}
	char line[80];
	int n = snprintf(line, sizeof line, "s %s %u %lld\n", state, s->partition,
			 (long long)offset);
	bool was_empty = s->qhead == NULL;
	session_push(&R->sessions, s, line, (size_t)n);
	s->status_sent = true;
	if (!a->complete || s->foreign_position)
		R->resumes_incomplete++;
	if (was_empty)
		lws_callback_on_writable(s->conn);
}

static void on_sub_ack(struct link *l, const struct wire_sub_ack *a)
{
	struct session *s = sessions_get(&R->sessions, a->sid);
	if (!s || s->edge != l->index || s->state != SESSION_SUBSCRIBING)
		return;
	if (a->status == WIRE_SUB_OK) {
		session_acked(s, a->start_offset);
		send_status(s, a);
	} else {
		/* Not the owner (any more): wait for the routes to settle. */
		session_unpin(s);
		R->retry_waiting = true;
	}
}

static void on_up_err(const struct wire_up_err *e)
{
	struct session *s = sessions_get(&R->sessions, e->sid);
	if (!s)
		return;
	char reason[110];
	snprintf(reason, sizeof reason, "upstream: %.*s", (int)e->reason.len, e->reason.ptr);
	close_client(s, e->code == WIRE_UP_DISABLED ? CLOSE_UPSTREAM_DISABLED : CLOSE_UPSTREAM_FAILED,
		     reason);
}

static void on_edge_msg(struct link *l, const void *buf, size_t len)
{
	struct wire_msg m;
	int rc = wire_decode(&m, buf, len);
	if (rc == -WIRE_EUNKNOWN) {
		l->unknown++;
		if (l->state == LINK_UP && !link_check_seq(l, &m))
			link_restart(l);
		return;
	}
	if (rc == -WIRE_EVERSION) {
		/* Not usable: hang up; the dialer retries with back-off, so a
		 * later deploy with matching versions is picked up. */
		l->malformed++;
		log_error("edge %s speaks another protocol version; not using it", l->url);
		link_reset(l);
		chan_close(l->ch);
		return;
	}
	if (rc < 0) {
		l->malformed++;
		if (!l->warned)
			log_warn("edge %s: dropped message: %s; restarting the link (logged once per link)",
				 l->url, wire_strerror(rc));
		l->warned = true;
		link_restart(l);
		return;
	}
	if (m.type == WIRE_CHALLENGE) {
		/* Outside the numbering; only the first one per connection counts. */
		if (!l->have_nonce) {
			memcpy(l->edge_nonce, m.u.challenge.nonce.ptr, LINKAUTH_NONCE);
			l->have_nonce = true;
			if (linkauth_enabled(&R->secret))
				link_hello(l, R->cfg->router_id, &R->secret);
		}
		goto out_free;
	}
	if (m.type == WIRE_EDGE_HELLO) {
		if (l->state != LINK_HELLO_SENT || m.u.edge_hello.hello_seq != l->hello_seq)
			goto out_free; /* a reply to an earlier HELLO */
		if (!link_edge_authentic(l, &R->secret, &m.u.edge_hello)) {
			l->auth_failures++;
			log_error("edge %s failed authentication (--link-secret): hanging up", l->url);
			link_reset(l);
			chan_close(l->ch);
			goto out_free;
		}
		link_check_seq(l, &m);
		const struct wire_edge_hello *h = &m.u.edge_hello;
		free(l->edge_id);
		l->edge_id = xstrndup(h->edge_id.ptr, h->edge_id.len);
		l->upstream = h->upstream;
		link_reset(l);
		l->state = LINK_UP;
		log_info("edge %s is %s: %u of %u partitions, epoch %llu", l->url, l->edge_id,
			 h->assign.count, h->assign.partition_count,
			 (unsigned long long)h->assign.epoch);
		routes_assign(&R->routes, l->index, h->assign.epoch, h->assign.partition_count,
			      h->assign.partitions, h->assign.count, now_mono_ms());
		goto out_free;
	}
	if (l->state != LINK_UP)
		goto out_free;
	if (!link_check_seq(l, &m)) {
		log_warn("edge %s: gap in numbering; restarting the link", l->url);
		link_restart(l);
		goto out_free;
	}
	switch (m.type) {
	case WIRE_ASSIGN:
		if (routes_assign(&R->routes, l->index, m.u.assign.epoch, m.u.assign.partition_count,
				  m.u.assign.partitions, m.u.assign.count, now_mono_ms()) < 0)
			log_warn("edge %s: stale assignment epoch %llu ignored", l->url,
				 (unsigned long long)m.u.assign.epoch);
		break;
	case WIRE_DELIVER:
		on_deliver(l, &m);
		break;
	case WIRE_SUB_ACK:
		on_sub_ack(l, &m.u.sub_ack);
		break;
	case WIRE_UP_ERR:
		on_up_err(&m.u.up_err);
		break;
	case WIRE_RESYNC:
		log_warn("edge %s asked to resync: %.*s", l->url, (int)m.u.resync.reason.len,
			 m.u.resync.reason.ptr);
		link_restart(l);
		break;
	default:
		log_warn("edge %s: unexpected message type %u", l->url, m.type);
		break;
	}
out_free:
	wire_msg_free(&m);
}

/* Takes what the edge sent, up to a batch; asks for another turn if more is
 * waiting, so clients get their turn in between. */
static void drain_link(struct link *l)
{
	for (int i = 0; i < 1024; i++) {
		const void *buf;
		size_t len;
		bool connected;
		int rc = link_recv(l, &buf, &len, &connected);
		if (connected) {
			log_info("edge %s: connected (%s)", l->url, chan_peer(l->ch));
			/* With a secret, HELLO waits for the edge's CHALLENGE. */
			if (!linkauth_enabled(&R->secret))
				link_hello(l, R->cfg->router_id, &R->secret);
			continue;
		}
		if (rc < 0) {
			link_reset(l);
			return;
		}
		if (rc == 0)
			return;
		on_edge_msg(l, buf, len);
	}
	lws_cancel_service(R->ctx);
}

/* Called on nng's (and the resolver's) threads: only wakes the lws loop. */
static void wake_from_nng(void *arg)
{
	struct router *r = arg;
	lws_cancel_service(r->ctx);
}

/* Adds a link to the edge at url, in a free slot if there is one. */
static int add_link(const char *url, bool from_dns)
{
	int i = 0;
	while (i < R->nlinks && !R->links[i].retired)
		i++;
	if (i == R->nlinks) {
		R->links = xrealloc(R->links, (size_t)(R->nlinks + 1) * sizeof *R->links);
		memset(&R->links[i], 0, sizeof *R->links);
		R->nlinks++;
		if (routes_add_edge(&R->routes) != i)
			abort(); /* links and routes are indexed alike */
	}
	char err[256];
	if (link_open(&R->links[i], i, url, wake_from_nng, R, err, sizeof err) < 0) {
		log_error("edge %s", err);
		link_close(&R->links[i]);
		R->links[i].retired = true;
		return -1;
	}
	R->links[i].from_dns = from_dns;
	log_info("edge %s added%s", url, from_dns ? " (found in DNS)" : "");
	return i;
}

/* Drops the link of an edge that vanished: its partitions pass on. */
static void retire_link(int i)
{
	struct link *l = &R->links[i];
	log_info("edge %s removed (gone from DNS)", l->url);
	link_reset(l);
	link_close(l);
	l->index = i;
	l->retired = true;
}

/* Applies a new DNS answer: links to new edges, drops vanished ones. */
static void apply_dns(void)
{
	char **urls;
	size_t n;
	if (!R->resolver || !resolver_take(R->resolver, &urls, &n))
		return;
	for (int i = 0; i < R->nlinks; i++) {
		struct link *l = &R->links[i];
		if (l->retired || !l->from_dns)
			continue;
		bool found = false;
		for (size_t k = 0; k < n && !found; k++)
			found = strcmp(urls[k], l->url) == 0;
		if (!found)
			retire_link(i);
	}
	for (size_t k = 0; k < n; k++) {
		bool known = false;
		for (int i = 0; i < R->nlinks && !known; i++)
			known = !R->links[i].retired && strcmp(R->links[i].url, urls[k]) == 0;
		if (!known)
			add_link(urls[k], true);
		free(urls[k]);
	}
	free(urls);
	lws_cancel_service(R->ctx); /* new links may have news */
}

static void drain_links(void)
{
	apply_dns();
	for (int i = 0; i < R->nlinks; i++)
		if (!R->links[i].retired)
			drain_link(&R->links[i]);
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
	drain_links();
	int64_t now = now_mono_ms();
	routes_tick(&R->routes, now);
	for (int i = 0; linkauth_enabled(&R->secret) && i < R->nlinks; i++) {
		struct link *l = &R->links[i];
		if (!l->retired && l->ch && !l->have_nonce && now - l->connected_ms > 10000) {
			log_error("edge %s sent no CHALLENGE within 10 s: hanging up", l->url);
			chan_close(l->ch);
			l->connected_ms = now;
		}
	}
	if (now >= R->next_prune_ms) {
		R->next_prune_ms = now + 5000;
		prune_buckets();
	}
	if (R->nthrottled && now >= R->next_stall_check_ms) {
		R->next_stall_check_ms = now + 1000;
		close_stalled(now);
	}
	if (R->retry_waiting) {
		R->retry_waiting = false;
		size_t b;
		for (struct hnode *n = hmap_iter_first(&R->sessions.by_sid, &b); n;
		     n = hmap_iter_next(&R->sessions.by_sid, n, &b))
			try_pin(hmap_entry(n, struct session, by_sid));
	}
	ops_tick(R);
	lws_sul_schedule(R->ctx, 0, &R->tick, on_tick, TICK_US);
}

/* ---- clients -------------------------------------------------------------- */

/* Refuses an upgrade with an HTTP status and a reason in the body. */
const char *const reject_reason_names[REJECT_NREASONS] = {
	"missing_id", "empty_id", "long_id", "bad_id", "bad_path", "not_ready",
	"bad_position", "draining", "auth", "origin", "limit", "other",
};

static int reject(struct lws *wsi, enum reject_reason why, unsigned int status,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int reject(struct lws *wsi, enum reject_reason why, unsigned int status,
		  const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	R->rejected[why]++;
	log_debug("handshake refused: %u %s", status, msg);
	lws_return_http_status(wsi, status, msg);
	return -1;
}

/* Copies a header into buf (NUL-terminated); NULL if absent or too long. */
static const char *header(struct lws *wsi, enum lws_token_indexes h, char *buf, int cap)
{
	int n = lws_hdr_total_length(wsi, h);
	if (n <= 0 || n >= cap || lws_hdr_copy(wsi, buf, cap, h) < 0)
		return NULL;
	return buf;
}

/* Origin allow-list (browsers send Origin; other clients usually do not). */
static bool origin_allowed(struct lws *wsi)
{
	if (!R->cfg->allowed_origins.count)
		return true;
	char o[512];
	if (!header(wsi, WSI_TOKEN_ORIGIN, o, sizeof o))
		return lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0;
	for (size_t i = 0; i < R->cfg->allowed_origins.count; i++)
		if (strcasecmp(o, R->cfg->allowed_origins.items[i]) == 0)
			return true;
	return false;
}

/* Who the client is (ident.c decides, by --auth). Returns the id's length
 * with the id in id[], or -1 after refusing the handshake. */
static int identify(struct lws *wsi, char *id, size_t cap)
{
	char idh[4096], auth[IDENT_MAX_TOKEN + 32], protos[IDENT_MAX_TOKEN + 256],
		qtok[IDENT_MAX_TOKEN + 16], why[160];
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;
	struct ident_input in = { 0 };
	int n = lws_hdr_custom_length(wsi, R->id_header, R->id_header_len);
	if (n >= 0 && n < (int)sizeof idh &&
	    lws_hdr_custom_copy(wsi, idh, sizeof idh, R->id_header, R->id_header_len) == n) {
		in.id_header = idh;
		in.id_len = (size_t)n;
	} else if (n >= (int)sizeof idh) {
		return reject(wsi, REJECT_LONG_ID, 400, "%s is too long", R->cfg->id_header);
	}
	in.authorization = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth);
	in.subprotocols = header(wsi, WSI_TOKEN_PROTOCOL, protos, sizeof protos);
	/* lws 4.1.6 matches the name as a prefix of "name=value" and returns
	 * what follows it: the name must carry its '='. */
	in.query_token = lws_get_urlarg_by_name(wsi, "access_token=", qtok, sizeof qtok);
	if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&peer, &plen) == 0)
		in.peer = (struct sockaddr *)&peer;
	size_t len;
	int rc = ident_check(R->ident, &in, now_wall_ms() / 1000, id, cap, &len, why, sizeof why);
	if (rc < 0) {
		enum reject_reason rr = rc == IDENT_ENOID ? REJECT_NO_ID
				       : rc == IDENT_EBADID ? REJECT_BAD_ID : REJECT_AUTH;
		if (rc == IDENT_ENOID || rc == IDENT_EBADID)
			return reject(wsi, rr, 400, "%s", why);
		return reject(wsi, rr, (unsigned int)ident_http_status(rc), "%s", why);
	}
	return (int)len;
}

/* A token bucket per source address: at most --handshakes-per-ip a second,
 * bursts of twice that. */
struct ip_bucket {
	struct hnode node;
	uint8_t addr[16];
	double tokens;
	int64_t at_ms;
};

static bool rate_ok(struct lws *wsi)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	uint8_t key[16] = { 0 };
	if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl) != 0)
		return true;
	if (ss.ss_family == AF_INET)
		memcpy(key, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	else if (ss.ss_family == AF_INET6)
		memcpy(key, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	uint64_t h = hash_bytes(key, sizeof key);
	struct ip_bucket *b = NULL;
	for (struct hnode *n = hmap_first(&R->buckets, h); n && !b; n = hmap_next(n)) {
		struct ip_bucket *x = hmap_entry(n, struct ip_bucket, node);
		if (memcmp(x->addr, key, sizeof key) == 0)
			b = x;
	}
	int64_t now = now_mono_ms();
	double rate = (double)R->cfg->handshakes_per_ip, burst = 2 * rate;
	if (!b) {
		b = xcalloc(1, sizeof *b);
		memcpy(b->addr, key, sizeof key);
		b->tokens = burst;
		b->at_ms = now;
		hmap_insert(&R->buckets, &b->node, h);
	}
	b->tokens += (double)(now - b->at_ms) * rate / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst;
	b->at_ms = now;
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

/* Forgets source addresses whose buckets are full again (every few seconds). */
static void prune_buckets(void)
{
	size_t bk, n = 0, cap = 0;
	struct ip_bucket **old = NULL;
	int64_t now = now_mono_ms();
	for (struct hnode *it = hmap_iter_first(&R->buckets, &bk); it;
	     it = hmap_iter_next(&R->buckets, it, &bk)) {
		struct ip_bucket *b = hmap_entry(it, struct ip_bucket, node);
		if (now - b->at_ms > 10000) {
			if (n == cap)
				old = xrealloc(old, (cap = cap ? cap * 2 : 64) * sizeof *old);
			old[n++] = b;
		}
	}
	for (size_t i = 0; i < n; i++) {
		hmap_remove(&R->buckets, &old[i]->node);
		free(old[i]);
	}
	free(old);
}

/* Parses "<partition>:<offset>"; 0 or -1. */
static int parse_position(const char *s, uint32_t *p, int64_t *off)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long pp = strtoul(s, &end, 10);
	if (errno || *end != ':' || pp >= WIRE_MAX_PARTITIONS || end[1] < '0' || end[1] > '9')
		return -1;
	long long oo = strtoll(end + 1, &end, 10);
	if (errno || *end || oo < 0)
		return -1;
	*p = (uint32_t)pp;
	*off = oo;
	return 0;
}

/* The position a client presented (X-Kws-Position header, or the query
 * parameter position=): 1 found, 0 none, -1 malformed. */
static int read_position(struct lws *wsi, uint32_t *p, int64_t *off)
{
	char buf[64];
	int n = lws_hdr_custom_length(wsi, "x-kws-position:", 15);
	if (n >= (int)sizeof buf)
		return -1;
	if (n > 0) {
		if (lws_hdr_custom_copy(wsi, buf, sizeof buf, "x-kws-position:", 15) != n)
			return -1;
		return parse_position(buf, p, off) < 0 ? -1 : 1;
	}
	const char *v = lws_get_urlarg_by_name(wsi, "position=", buf, sizeof buf);
	if (!v)
		return 0;
	return parse_position(v, p, off) < 0 ? -1 : 1;
}

static int check_handshake(struct lws *wsi)
{
	char uri[512], id[4096];
	if (R->draining)
		return reject(wsi, REJECT_DRAINING, 503,
			      "this router is draining; connect to another one");
	if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
		return reject(wsi, REJECT_BAD_PATH, 400, "no request path");
	char *q = strchr(uri, '?');
	if (q)
		*q = '\0';
	if (strcmp(uri, "/ws") != 0)
		return reject(wsi, REJECT_BAD_PATH, 404, "no WebSocket endpoint at %.200s; use /ws", uri);
	if (!rate_ok(wsi))
		return reject(wsi, REJECT_LIMIT, 429, "too many handshakes from this address; slow down");
	if (!origin_allowed(wsi))
		return reject(wsi, REJECT_ORIGIN, 403, "this Origin is not allowed");
	if (R->sessions.count >= (size_t)R->cfg->max_connections)
		return reject(wsi, REJECT_LIMIT, 503, "this router is full; connect to another one");
	int n = identify(wsi, id, sizeof id);
	if (n < 0)
		return -1;
	if (sessions_for_client(&R->sessions, id, (size_t)n, NULL, NULL) >=
	    (size_t)R->cfg->max_sessions_per_id)
		return reject(wsi, REJECT_LIMIT, 429, "too many sessions for this client id");
	uint32_t pp;
	int64_t po;
	if (read_position(wsi, &pp, &po) < 0)
		return reject(wsi, REJECT_BAD_POSITION, 400, "malformed position: want <partition>:<offset>, e.g. 3:1234");
	if (!R->routes.partition_count)
		return reject(wsi, REJECT_NOT_READY, 503,
			      "no edge has reported the partitions yet; retry shortly");
	/* Keep the verified id for ESTABLISHED (freed there, or at WSI_DESTROY). */
	lws_set_opaque_user_data(wsi, xstrndup(id, (size_t)n));
	return 0;
}

static int client_established(struct lws *wsi, struct conn *c)
{
	char *id = lws_get_opaque_user_data(wsi);
	lws_set_opaque_user_data(wsi, NULL);
	if (!id || !R->routes.partition_count) {
		free(id);
		return -1; /* checked in the handshake; cannot happen */
	}
	int n = (int)strlen(id);
	int32_t p = partition_for_key(R->cfg->partitioner, id, (size_t)n,
				      (int32_t)R->routes.partition_count);
	c->s = sessions_create(&R->sessions, id, (size_t)n, (uint32_t)p, wsi);
	const struct lws_protocols *proto = lws_get_protocol(wsi);
	c->s->framed = proto && strcmp(proto->name, "kws.v1") == 0;
	uint32_t pp;
	int64_t po;
	if (read_position(wsi, &pp, &po) == 1) {
		R->resumes++;
		c->s->presented = true;
		c->s->presented_offset = po;
		if (pp == (uint32_t)p)
			c->s->next_offset = po;
		else
			c->s->foreign_position = true; /* the partition count changed */
	}
	log_debug("session %llu for %s in partition %d",
		  (unsigned long long)c->s->sid, c->s->id, p);
	free(id);
	try_pin(c->s);
	return 0;
}

/* A whole client message: hand it to the owning edge. */
static void client_message(struct conn *c)
{
	struct session *s = c->s;
	if (s->state != SESSION_SUBSCRIBING && s->state != SESSION_LIVE) {
		close_client(s, 1013, "no edge owns this client's partition right now; reconnect");
		return;
	}
	struct link *l = &R->links[s->edge];
	if (!l->upstream) {
		close_client(s, CLOSE_UPSTREAM_DISABLED,
			     "upstream messages are disabled (no inbound topic)");
		return;
	}
	struct wire_up u = {
		.sid = s->sid,
		.partition = s->partition,
		.key = { s->id, s->id_len },
		.data = { (const char *)c->rx, (uint32_t)c->rxlen },
		.text = c->rx_text,
	};
	wire_buf_reset(&l->out);
	wire_enc_up(&l->out, link_next_seq(l), &u);
	link_send(l);
	R->upstream++;
	R->upstream_bytes += c->rxlen;
}

static int client_receive(struct lws *wsi, struct conn *c, const void *in, size_t len)
{
	if (!c->s || c->close_code)
		return 0;
	if (lws_is_first_fragment(wsi)) {
		c->rxlen = 0;
		c->rx_text = !lws_frame_is_binary(wsi);
	}
	size_t remaining = lws_remaining_packet_payload(wsi);
	if (c->rxlen + len + remaining > (size_t)R->cfg->max_frame_bytes) {
		lws_close_reason(wsi, CLOSE_TOO_BIG, (unsigned char *)"message too big", 15);
		return -1;
	}
	if (!c->rx)
		c->rx = xmalloc((size_t)R->cfg->max_frame_bytes);
	memcpy(c->rx + c->rxlen, in, len);
	c->rxlen += len;
	if (lws_is_final_fragment(wsi) && remaining == 0)
		client_message(c);
	return 0;
}

/* Writes the session's oldest queued messages: as many as fit in one
 * WRITE_BATCH_BYTES write, framed here (server frames are unmasked: FIN and
 * opcode, the length in 7, 16 or 64 bits, the payload), so one send() carries
 * many messages. A single message goes through lws_write as usual. Returns 0,
 * or -1 if the connection failed. */
static int write_batch(struct lws *wsi, struct session *s, int64_t now_wall)
{
	unsigned char op = R->cfg->text ? 0x1 : 0x2;
	struct outmsg *m = session_peek(s);
	if (!m->next || m->len > WRITE_BATCH_BYTES / 2) {
		int n = lws_write(wsi, m->data + LWS_PRE, m->len,
				  R->cfg->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
		if (n < (int)m->len)
			return -1;
		if (m->timestamp_ms >= 0)
			metrics_observe(R->delay, (double)(now_wall - m->timestamp_ms) / 1000.0);
		session_pop_free(s);
		return 0;
	}
	size_t len = 0;
	unsigned char *out = R->wbuf + LWS_PRE;
	while ((m = session_peek(s)) && len + 10 + m->len <= WRITE_BATCH_BYTES) {
		out[len++] = 0x80 | op;
		if (m->len < 126) {
			out[len++] = (unsigned char)m->len;
		} else if (m->len < 65536) {
			out[len++] = 126;
			out[len++] = (unsigned char)(m->len >> 8);
			out[len++] = (unsigned char)m->len;
		} else {
			out[len++] = 127;
			for (int k = 7; k >= 0; k--)
				out[len++] = (unsigned char)((uint64_t)m->len >> (8 * k));
		}
		memcpy(out + len, m->data + LWS_PRE, m->len);
		len += m->len;
		if (m->timestamp_ms >= 0)
			metrics_observe(R->delay, (double)(now_wall - m->timestamp_ms) / 1000.0);
		session_pop_free(s);
	}
	int n = lws_write(wsi, out, len, LWS_WRITE_RAW);
	return n < (int)len ? -1 : 0;
}

static int client_writeable(struct lws *wsi, struct conn *c)
{
	if (c->close_code) {
		lws_close_reason(wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)c->close_reason, strlen(c->close_reason));
		return -1;
	}
	if (!c->s)
		return 0;
	struct session *s = c->s;
	int64_t now_wall = now_wall_ms();
	for (int i = 0; i < WRITES_PER_CALLBACK && session_peek(s); i++) {
		if (write_batch(wsi, s, now_wall) < 0)
			return -1;
		if (lws_send_pipe_choked(wsi))
			break;
	}
	if (s->throttled) {
		s->last_write_ms = now_mono_ms();
		if (s->qbytes <= (size_t)R->cfg->queue_bytes / 8)
			unthrottle(s);
	}
	if (session_peek(s))
		lws_callback_on_writable(wsi);
	return 0;
}

static void client_closed(struct conn *c)
{
	if (c->s) {
		if (c->s->throttled)
			R->nthrottled--;
		if (c->s->edge >= 0 && c->s->state != SESSION_CLOSING)
			send_unsub(&R->links[c->s->edge], c->s->sid);
		sessions_delete(&R->sessions, c->s);
		c->s = NULL;
	}
	free(c->rx);
	c->rx = NULL;
}

static int cb_client(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		     size_t len)
{
	struct conn *c = user;
	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return check_handshake(wsi);
	case LWS_CALLBACK_ESTABLISHED: {
		/* Records go out as soon as they are written (no Nagle delay). */
		int one = 1;
		setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
		memset(c, 0, sizeof *c);
		return client_established(wsi, c);
	case LWS_CALLBACK_RECEIVE:
		return client_receive(wsi, c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return client_writeable(wsi, c);
	case LWS_CALLBACK_CLOSED:
		client_closed(c);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/* A handshake that passed the filter but never got established. */
		free(lws_get_opaque_user_data(wsi));
		lws_set_opaque_user_data(wsi, NULL);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (R) {
			drain_links();
			if (R->admin)
				admin_run_pending(R->admin);
		}
		return 0;
	case LWS_CALLBACK_HTTP: {
		/* A plain HTTP request, not an upgrade. */
		const char *path = in ? in : "";
		int code = strcmp(path, "/ws") == 0 ? 426 : 404;
		const char *msg = code == 426 ? "this endpoint needs a WebSocket upgrade"
					      : "not found; WebSockets are served on /ws";
		if (lws_return_http_status(wsi, (unsigned int)code, msg))
			return -1;
		return lws_http_transaction_completed(wsi);
	}
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	/* No subprotocol: bare values. */
	{ "kws", cb_client, sizeof(struct conn), 0, 0, NULL, 0 },
	/* kws.v1: positions and resume (README). */
	{ "kws.v1", cb_client, sizeof(struct conn), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_msg(level == LLL_ERR ? LOG_ERROR : level == LLL_WARN ? LOG_WARN : LOG_DEBUG,
		"lws: %.*s", (int)n, line);
}

/* Builds the identity checker from the settings (README, "Trust"). */
static int setup_ident(struct router *r)
{
	const struct router_config *cfg = r->cfg;
	struct ident_config ic = {
		.mode = (enum ident_mode)cfg->auth_mode,
		.id_header = cfg->id_header,
		.max_id_bytes = cfg->max_id_bytes,
		.key_files = cfg->jwt_keys,
		.claim = cfg->jwt_claim,
		.leeway_s = cfg->jwt_leeway_s,
		.issuer = cfg->jwt_issuer,
		.audience = cfg->jwt_audience,
		.token_in_id_header = cfg->token_in_id_header,
		.token_in_query = cfg->token_in_query,
	};
	char err[300];
	if (*cfg->trusted_proxies &&
	    cidr_parse(cfg->trusted_proxies, &ic.proxies, err, sizeof err) < 0) {
		log_error("--trusted-proxies (ROUTER_TRUSTED_PROXIES): %s", err);
		return -1;
	}
	r->ident = ident_new(&ic, err, sizeof err);
	cidr_free(&ic.proxies);
	if (!r->ident) {
		log_error("identity (--auth %s): %s", ident_mode_name(ic.mode), err);
		return -1;
	}
	if (ic.mode == IDENT_NONE)
		log_warn("*** --auth none: the %s header is trusted as sent, so any client can "
			 "read any other client's messages. For local runs only. ***",
			 cfg->id_header);
	else if (ic.mode == IDENT_JWT)
		log_info("identity: JWT, %zu keys, id from claim %s", ident_key_count(r->ident),
			 cfg->jwt_claim);
	else
		log_info("identity: the %s header from %s only", cfg->id_header,
			 cfg->trusted_proxies);
	return 0;
}

int router_run(const struct router_config *cfg)
{
	struct router r = { .cfg = cfg };
	int rc = 1;
	R = &r;
	sessions_init(&r.sessions, LWS_PRE);
	routes_init(&r.routes, 0, cfg->handover_ms, on_moved, &r);
	r.wbuf = xmalloc(LWS_PRE + WRITE_BATCH_BYTES);
	int hl = snprintf(r.id_header, sizeof r.id_header - 1, "%s:", cfg->id_header);
	for (int i = 0; i < hl; i++)
		r.id_header[i] = (char)(r.id_header[i] >= 'A' && r.id_header[i] <= 'Z'
						? r.id_header[i] + 32 : r.id_header[i]);
	r.id_header_len = hl;

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR | LLL_WARN | (log_enabled(LOG_DEBUG) ? LLL_NOTICE : 0),
			  lws_log);

	if (setup_ident(&r) < 0)
		goto out;
	char serr[300];
	if (linkauth_load_secret(cfg->link_secret, &r.secret, serr, sizeof serr) < 0) {
		log_error("--link-secret (ROUTER_LINK_SECRET): %s", serr);
		goto out;
	}
	if (!linkauth_enabled(&r.secret))
		log_warn("no --link-secret: the links to the edges are not authenticated");
	lws_retry_bo_t retry = {
		.secs_since_valid_ping = (uint16_t)cfg->ping_interval_s,
		.secs_since_valid_hangup = (uint16_t)(2 * cfg->ping_interval_s),
	};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.timeout_secs = (unsigned int)cfg->handshake_timeout_s;
	info.max_http_header_data = (unsigned short)cfg->max_header_bytes;
	info.retry_and_idle_policy = &retry;
	info.port = (int)cfg->port;
	info.iface = *cfg->listen_host ? cfg->listen_host : NULL;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6 |
		       LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.vhost_name = "router";
	r.ctx = lws_create_context(&info);
	if (!r.ctx) {
		log_error("cannot create the WebSocket context");
		goto out;
	}
	r.vh = lws_create_vhost(r.ctx, &info);
	if (!r.vh) {
		log_error("cannot listen on %s:%ld", *cfg->listen_host ? cfg->listen_host : "*",
			  cfg->port);
		goto out;
	}
	for (size_t i = 0; i < cfg->edges.count; i++)
		if (add_link(cfg->edges.items[i], false) < 0)
			goto out;
	if (*cfg->edges_dns) {
		char host[256], port[16];
		if (resolver_split(cfg->edges_dns, host, sizeof host, port, sizeof port) < 0) {
			log_error("--edges-dns: '%s' is not host:port", cfg->edges_dns);
			goto out;
		}
		r.resolver = resolver_start(host, port, (int)cfg->dns_interval_ms, wake_from_nng, &r);
	}
	lws_sul_schedule(r.ctx, 0, &r.tick, on_tick, TICK_US);
	log_info("router %s: WebSockets on %s:%ld/ws, client id from %s, partitioner %s, %d edges",
		 cfg->router_id, *cfg->listen_host ? cfg->listen_host : "*", cfg->port,
		 cfg->id_header, partitioner_name(cfg->partitioner), r.nlinks);
	if (*cfg->edges_dns)
		log_info("edges: every address of %s, resolved every %ld ms", cfg->edges_dns,
			 cfg->dns_interval_ms);

	if (ops_start(&r) < 0)
		goto out;
	while (stop_requested < 2 && !ops_drained(&r)) {
		if (stop_requested && !r.draining)
			ops_drain(&r, cfg->drain_timeout_ms, true);
		if (lws_service(r.ctx, 0) < 0)
			break;
	}
	log_info("router %s: stopping (%zu sessions, delivered %llu, fenced %llu, duplicates %llu)",
		 cfg->router_id, r.sessions.count, (unsigned long long)r.delivered,
		 (unsigned long long)r.fenced, (unsigned long long)r.duplicates);
	rc = 0;
out:
	/* Links and the resolver first: their threads wake the lws context. */
	resolver_stop(r.resolver);
	for (int i = 0; i < r.nlinks; i++)
		if (!r.links[i].retired)
			link_close(&r.links[i]);
	if (r.ctx)
		lws_context_destroy(r.ctx); /* closes clients: CLOSED frees their sessions */
	ops_stop(&r);
	free(r.links);
	routes_free(&r.routes);
	ident_free(r.ident);
	free(r.wbuf);
	linkauth_secret_free(&r.secret);
	{
		size_t bk;
		struct hnode *it;
		while (r.buckets.buckets && (it = hmap_iter_first(&r.buckets, &bk))) {
			hmap_remove(&r.buckets, it);
			free(hmap_entry(it, struct ip_bucket, node));
		}
		hmap_free(&r.buckets);
	}
	sessions_free(&r.sessions);
	R = NULL;
	return rc;
}
