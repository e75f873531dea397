/*
 * cidr: lists of IPv4 and IPv6 address ranges ("10.0.0.0/8,192.168.1.7,::1/128")
 * and the test whether a peer address is inside one of them. The router uses
 * it for the proxies it trusts to set the client id header. Pure: no I/O.
 */
#ifndef KWS_CIDR_H
#define KWS_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network address, host bits zero (4 bytes used for AF_INET) */
	unsigned prefix;  /* 0..32 or 0..128 */
};

struct cidr_list {
	struct cidr *v; /* owned */
	size_t n;
};

/* Parses a comma-separated list of entries, each an address ("192.168.1.7",
 * "::1": a single host) or a network ("10.0.0.0/8", "fd00::/8"). Spaces and
 * tabs around entries are ignored; an empty or all-blank s gives an empty
 * list. An IPv4-mapped IPv6 network with a prefix of at least 96
 * ("::ffff:10.0.0.0/104") is stored as the IPv4 network it names. Refused:
 * empty entries ("a,,b"), a prefix that is not 0..32 (IPv4) or 0..128 (IPv6)
 * in plain decimal, a network with host bits set ("10.0.0.1/8": write
 * 10.0.0.0/8 or 10.0.0.1/32), zone ids, anything inet_pton refuses.
 * Returns 0 and fills *out (which the caller frees with cidr_free), or -1
 * with a message naming the bad entry in err and *out left empty. */
int cidr_parse(const char *s, struct cidr_list *out, char *err, size_t errlen);

/* Whether addr (AF_INET or AF_INET6; NULL or any other family: false) is
 * inside an entry of l. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a
 * dual-stack socket reports IPv4 peers) matches the IPv4 entries. */
bool cidr_match(const struct cidr_list *l, const struct sockaddr *addr);

/* Copies src into dst (dst's previous contents are not freed). */
void cidr_copy(struct cidr_list *dst, const struct cidr_list *src);

/* Frees the entries and empties the list; accepts NULL and empty lists. */
void cidr_free(struct cidr_list *l);

#endif
