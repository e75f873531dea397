/*
 * resolve: finds every edge behind one DNS name (a Kubernetes headless
 * Service resolves to one address per ready pod), again every interval, on
 * its own thread (getaddrinfo blocks). The owner's loop takes each new answer
 * as a sorted list of "tcp://ip:port" URLs.
 */
#ifndef KWS_RESOLVE_H
#define KWS_RESOLVE_H

#include <stddef.h>

typedef void (*resolver_wake_fn)(void *arg);

struct resolver;

/* Starts resolving host (IPv4) every interval_ms; port is appended to each
 * address. wake(arg) is called from the resolver's thread when an answer
 * that differs from the previous one is ready. NULL on a bad argument. */
struct resolver *resolver_start(const char *host, const char *port, int interval_ms,
				resolver_wake_fn wake, void *arg);
void resolver_stop(struct resolver *r);

/* If a new answer is ready: returns 1 and hands over urls[0..*n) (sorted;
 * the caller frees each string and the array). Else 0. A failed lookup is
 * never an answer: the last good one stands. */
int resolver_take(struct resolver *r, char ***urls, size_t *n);

/* Splits "host:port" into its parts (copies into host and port). 0 or -1. */
int resolver_split(const char *hostport, char *host, size_t hostlen, char *port, size_t portlen);

#endif
