/*
 * config: the router's settings (filled by main.c from flags and variables)
 * and the close codes a client may see. Every module of the router reads
 * them; none of it needs router.c for that.
 */
#ifndef KWS_ROUTER_CONFIG_H
#define KWS_ROUTER_CONFIG_H

#include <stdbool.h>

#include "conf.h"
#include "partition.h"

/* Close codes a client may see (README, "Close codes"). */
#define CLOSE_GOING_AWAY 1001        /* the router is shutting down */
#define CLOSE_TOO_BIG 1009           /* a client frame over --max-frame-bytes */
#define CLOSE_UPSTREAM_DISABLED 4001 /* the edge has no inbound topic */
#define CLOSE_UPSTREAM_FAILED 4002   /* producing the frame to Kafka failed */
#define CLOSE_UPSTREAM_NO_TOPIC 4003 /* the inbound topic does not exist: no retry */
#define CLOSE_SLOW_CLIENT 4008       /* it stopped reading (or its queue overflowed); resume */

struct router_config {
	const char *listen_host; /* "" = all interfaces */
	long port;
	struct conf_list edges; /* edge URLs, tcp://host:port */
	const char *edges_dns;  /* host:port resolving to every edge; "" none */
	long dns_interval_ms;
	const char *id_header;    /* e.g. "X-Client-Id" */
	int partitioner;          /* enum partitioner */
	bool text;                /* send records as text messages */
	bool deflate;             /* accept permessage-deflate (RFC 7692) when offered */
	bool deflate_no_takeover; /* and reset the compressor after each message (deflate.c) */
	const char *tls_cert;     /* wss: PEM certificate chain, or "" (plain ws) */
	const char *tls_key;      /* wss: PEM private key, or "" */
	long max_id_bytes;
	long max_frame_bytes;
	long queue_bytes;
	long handover_ms;
	long stall_timeout_ms; /* a throttled client that takes nothing this long is closed */
	const char *router_id;
	const char *admin_listen; /* host:port of the admin endpoint; "" disables it */
	const char *admin_token;  /* bearer token for mutating admin calls */
	const char *link_secret;  /* "file:PATH" or "env:NAME"; "" none */
	long drain_timeout_ms;    /* SIGTERM: close sessions over this long, then exit */
	/* identity (README, "Trust") */
	int auth_mode;               /* enum ident_mode */
	const char *trusted_proxies; /* CIDRs for header-from-proxies */
	struct conf_list jwt_keys;
	const char *jwt_claim, *jwt_issuer, *jwt_audience;
	long jwt_leeway_s;
	bool token_in_id_header, token_in_query;
	const char *token_cookie;         /* cookie that may carry the token (jwt); "" none */
	struct conf_list allowed_origins; /* empty: any Origin */
	/* limits */
	long max_connections; /* sessions on this router */
	long max_sessions_per_id;
	long handshakes_per_ip;         /* per second, per source address */
	long handshakes_waiting_per_ip; /* heads still arriving from one address (the door) */
	long handshake_timeout_s;
	long ping_interval_s; /* idle clients are pinged; no pong: closed */
	long max_header_bytes;
	/* --workers (super.h): set in a worker process only */
	bool reuseport; /* share the client port with the other workers (SO_REUSEPORT) */
	int report_fd;  /* >= 0: write "ADMIN <port>\n" there once the router is up (port
			 * 0: no admin endpoint), then close it (the supervisor's channel) */
};

#endif
