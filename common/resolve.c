/* resolve: see resolve.h. */
#include "resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* How long resolver_stop waits for a lookup under way. */
#define RESOLVER_STOP_MS 1000

struct resolver {
	char *host, *port;
	int interval_ms;
	resolver_wake_fn wake;
	void *arg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	char **ready; /* an answer not taken yet, or NULL */
	size_t nready;
	char **last; /* the previous answer, to report only changes */
	size_t nlast;
	bool have_last;
};

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* One lookup: 0 with a sorted, de-duplicated list, or -1 (logged). */
static int lookup(struct resolver *r, char ***out, size_t *n)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
	int rc = getaddrinfo(r->host, r->port, &hints, &res);
	if (rc) {
		log_warn("resolving %s: %s", r->host, gai_strerror(rc));
		return -1;
	}
	size_t cap = 8, k = 0;
	char **v = xmalloc(cap * sizeof *v);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char ip[INET_ADDRSTRLEN], url[64];
		inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof ip);
		snprintf(url, sizeof url, "tcp://%s:%s", ip, r->port);
		if (k == cap)
			v = xrealloc(v, (cap *= 2) * sizeof *v);
		v[k++] = xstrdup(url);
	}
	freeaddrinfo(res);
	qsort(v, k, sizeof *v, cmp);
	size_t j = 0;
	for (size_t i = 0; i < k; i++) {
		if (j && strcmp(v[i], v[j - 1]) == 0)
			free(v[i]);
		else
			v[j++] = v[i];
	}
	*out = v;
	*n = j;
	return 0;
}

static bool same(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

static void *run(void *arg)
{
	struct resolver *r = arg;
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		pthread_mutex_unlock(&r->mu);
		char **v;
		size_t n;
		bool wake = false;
		int rc = lookup(r, &v, &n);
		pthread_mutex_lock(&r->mu);
		if (r->stop) { /* stopped while the lookup ran: nobody to tell */
			if (rc == 0)
				free_list(v, n);
			break;
		}
		if (rc == 0 && (!r->have_last || !same(v, n, r->last, r->nlast))) {
			free_list(r->last, r->nlast);
			r->last = xmalloc((n ? n : 1) * sizeof *r->last);
			for (size_t i = 0; i < n; i++)
				r->last[i] = xstrdup(v[i]);
			r->nlast = n;
			r->have_last = true;
			free_list(r->ready, r->nready);
			r->ready = v;
			r->nready = n;
			wake = true;
		} else if (rc == 0) {
			free_list(v, n);
		}
		if (wake) {
			pthread_mutex_unlock(&r->mu);
			r->wake(r->arg);
			pthread_mutex_lock(&r->mu);
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += r->interval_ms / 1000;
		ts.tv_nsec += (long)(r->interval_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int resolver_split(const char *hostport, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || !colon[1] || (size_t)(colon - hostport) >= hostlen ||
	    strlen(colon + 1) >= portlen)
		return -1;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	snprintf(host, hostlen, "%.*s", (int)(colon - hostport), hostport);
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

struct resolver *resolver_start(const char *host, const char *port, int interval_ms,
				resolver_wake_fn wake, void *arg)
{
	if (!*host || !*port || interval_ms < 10)
		return NULL;
	struct resolver *r = xcalloc(1, sizeof *r);
	r->host = xstrdup(host);
	r->port = xstrdup(port);
	r->interval_ms = interval_ms;
	r->wake = wake;
	r->arg = arg;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (pthread_create(&r->thread, NULL, run, r) != 0) {
		fprintf(stderr, "fatal: pthread_create failed\n");
		abort();
	}
	return r;
}

void resolver_stop(struct resolver *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	/* A lookup stuck on a DNS server that does not answer (glibc: 5 s a
	 * try, twice, per server) must not hold the process's stop: after
	 * RESOLVER_STOP_MS the thread is left to finish on its own. It then
	 * tells nobody (r->stop) and r is not freed (the process is exiting). */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += RESOLVER_STOP_MS / 1000;
	ts.tv_nsec += (long)(RESOLVER_STOP_MS % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	if (pthread_timedjoin_np(r->thread, NULL, &ts) != 0) {
		log_warn("resolving %s: a lookup is still running; not waiting for it", r->host);
		pthread_detach(r->thread);
		return;
	}
	free_list(r->ready, r->nready);
	free_list(r->last, r->nlast);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r->host);
	free(r->port);
	free(r);
}

int resolver_take(struct resolver *r, char ***urls, size_t *n)
{
	pthread_mutex_lock(&r->mu);
	int rc = 0;
	if (r->ready) {
		*urls = r->ready;
		*n = r->nready;
		r->ready = NULL;
		r->nready = 0;
		rc = 1;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}
