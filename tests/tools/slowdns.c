/*
 * slowdns: an LD_PRELOAD shim for fault injection in tests. getaddrinfo()
 * of a name ending in ".slow-dns.test" waits 60 s, as behind a DNS server
 * that does not answer, then fails with EAI_AGAIN; any other name goes to
 * the C library's getaddrinfo. Used by tests/integration/test_stop_bounded.py.
 */
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>

#define SLOW_SUFFIX ".slow-dns.test"
#define SLOW_SECONDS 60

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
			      struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	size_t n = node ? strlen(node) : 0, k = sizeof SLOW_SUFFIX - 1;
	if (n >= k && strcmp(node + n - k, SLOW_SUFFIX) == 0) {
		sleep(SLOW_SECONDS);
		return EAI_AGAIN;
	}
	getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	return real ? real(node, service, hints, res) : EAI_FAIL;
}
