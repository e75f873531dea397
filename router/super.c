/* super: see super.h. */
#include "super.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>

#include "admin.h"
#include "fanin.h"
#include "metrics.h"
#include "status_html.h"
#include "util.h"
#include "workcount.h"

/* A worker that dies is started again after a back-off: BACKOFF_MIN_MS,
 * doubled for each death within STABLE_MS of its start, up to
 * BACKOFF_MAX_MS. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 10000
/* After the second signal, workers still there this long are killed. */
#define STOP_NOW_MS 3000
/* A worker's private admin answer must come within this. */
#define WORKER_TIMEOUT_S 10
/* The largest worker answer read (a client list of many sessions). */
#define WORKER_MAX_ANSWER (64u << 20)

struct worker {
	pid_t pid;   /* 0: not running */
	int pipe_fd; /* its report of the admin port; -1 once read */
	char rbuf[32];
	size_t rlen;
	int port;     /* its private admin port; 0: not reported (yet), or none */
	bool up;      /* it reported since its latest start */
	bool ever_up; /* it reported once since the supervisor started */
	int64_t started_ms, restart_at_ms;
	int backoff_ms;
	int status; /* its last wait status */
};

struct super {
	const struct router_config *cfg;
	char **argv;
	int n;
	struct worker w[SUPER_MAX_WORKERS];
	pthread_mutex_t lock; /* w[].port and the counters, read by admin threads */
	uint64_t restarts;
	sigset_t oldmask;
	struct admin *admin;
	int stopping; /* signals received */
	int64_t kill_at_ms;
	bool failed;            /* a worker exited other than 0 during the stop */
	int exit_code;          /* a worker's first start failed with this; 0: none */
	char drain_target[256]; /* the admin drain asked for (path?query), under lock;
				 * "": none. A worker started later drains too. */
};

/* ---- pure parts ------------------------------------------------------------ */

int super_worker_parse(const char *s, int *index, int *n, int *fd)
{
	int i, k, f, used = 0;
	if (!s || sscanf(s, "%d/%d/%d%n", &i, &k, &f, &used) != 3 || s[used] || k < 1 ||
	    k > SUPER_MAX_WORKERS || i < 0 || i >= k || f < 0)
		return -EINVAL;
	*index = i;
	*n = k;
	*fd = f;
	return 0;
}

int super_default_workers(long max_connections)
{
	cpu_set_t set;
	int cpus = 1, limit = 0;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		cpus = CPU_COUNT(&set);
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
	if (f) {
		char line[128];
		if (fgets(line, sizeof line, f))
			limit = workcount_cpu_max_parse(line);
		fclose(f);
	}
	struct rlimit rl;
	long nofile = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
		nofile = (long)rl.rlim_max;
	return workcount_pick(cpus, limit, max_connections, nofile, SUPER_MAX_WORKERS);
}

/* ---- workers --------------------------------------------------------------- */

/* Starts worker i: this binary again, with SUPER_WORKER_ENV. 0 or -1 (logged;
 * retried after its back-off). */
static int spawn(struct super *s, int i)
{
	struct worker *w = &s->w[i];
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_error("worker %d: pipe: %s", i, strerror(errno));
		return -1;
	}
	char envv[64];
	snprintf(envv, sizeof envv, "%d/%d/3", i, s->n);
	pid_t pid = fork();
	if (pid < 0) {
		log_error("worker %d: fork: %s", i, strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* The child: only async-signal-safe calls until exec. Its own
		 * process group, so a terminal's Ctrl-C reaches the supervisor
		 * only (which forwards it: drain once, not twice); it stops if
		 * the supervisor dies. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (p[1] != 3 && dup2(p[1], 3) < 0)
			_exit(127);
		fcntl(3, F_SETFD, 0);
		close_range(4, ~0u, 0);
		/* SIGINT and SIGTERM stay blocked through exec until the
		 * worker's loop handles them (router.c): one forwarded during
		 * its start-up waits instead of killing it. */
		sigset_t mask = s->oldmask;
		sigaddset(&mask, SIGINT);
		sigaddset(&mask, SIGTERM);
		sigprocmask(SIG_SETMASK, &mask, NULL);
		setenv(SUPER_WORKER_ENV, envv, 1);
		execv("/proc/self/exe", s->argv);
		_exit(127);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	pthread_mutex_lock(&s->lock);
	w->pid = pid;
	w->pipe_fd = p[0];
	w->rlen = 0;
	w->port = 0;
	w->started_ms = now_mono_ms();
	pthread_mutex_unlock(&s->lock);
	log_info("worker %d: started, pid %d", i, (int)pid);
	return 0;
}

static void worker_close_pipe(struct worker *w)
{
	if (w->pipe_fd >= 0)
		close(w->pipe_fd);
	w->pipe_fd = -1;
}

struct answer {
	int status; /* 0: no answer */
	char *body; /* malloc'ed, NUL-terminated */
	size_t len;
};

static int ask(int port, const char *method, const char *target, const char *token,
	       struct answer *out);

/* Reads worker i's report: "ADMIN <port>\n". A worker started while the
 * router drains (admin API) is told to drain as well. */
static void read_report(struct super *s, int i)
{
	struct worker *w = &s->w[i];
	ssize_t k = read(w->pipe_fd, w->rbuf + w->rlen, sizeof w->rbuf - 1 - w->rlen);
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (k <= 0) {
		worker_close_pipe(w);
		return;
	}
	w->rlen += (size_t)k;
	w->rbuf[w->rlen] = 0;
	int port;
	if (strchr(w->rbuf, '\n') && sscanf(w->rbuf, "ADMIN %d", &port) == 1 && port >= 0 &&
	    port < 65536) {
		pthread_mutex_lock(&s->lock);
		w->port = port;
		w->up = w->ever_up = true;
		pthread_mutex_unlock(&s->lock);
		if (port)
			log_info("worker %d: ready for the admin endpoint (private port %d)", i,
				 port);
		else
			log_info("worker %d: up", i);
		worker_close_pipe(w);
		char target[sizeof s->drain_target];
		pthread_mutex_lock(&s->lock);
		memcpy(target, s->drain_target, sizeof target);
		pthread_mutex_unlock(&s->lock);
		struct answer a;
		if (port && *target) {
			int rc = ask(port, "POST", target, s->cfg->admin_token, &a);
			log_info("worker %d: the router is draining: so does it (%d)", i,
				 rc < 0 ? rc : a.status);
			free(a.body);
		}
	} else if (w->rlen == sizeof w->rbuf - 1) {
		worker_close_pipe(w);
	}
}

static void signal_workers(struct super *s, int sig)
{
	for (int i = 0; i < s->n; i++)
		if (s->w[i].pid)
			kill(s->w[i].pid, sig);
}

/* Collects every worker that ended; schedules restarts unless stopping. */
static void reap(struct super *s)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (int i = 0; i < s->n; i++) {
			struct worker *w = &s->w[i];
			if (w->pid != pid)
				continue;
			int64_t now = now_mono_ms();
			bool was_up = w->up;
			pthread_mutex_lock(&s->lock);
			w->pid = 0;
			w->port = 0;
			w->up = false;
			w->status = st;
			pthread_mutex_unlock(&s->lock);
			worker_close_pipe(w);
			char how[64];
			if (WIFEXITED(st))
				snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
			else
				snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(st));
			if (s->stopping) {
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
					s->failed = true;
				log_info("worker %d (pid %d) %s", i, (int)pid, how);
				break;
			}
			if (!w->ever_up && !was_up) {
				/* Its first start failed: a setting only the router
				 * checks (a key file, the link secret), not a crash.
				 * Stop as a single router would, with its status. */
				log_error("worker %d (pid %d) %s before it was up: stopping the "
					  "router",
					  i, (int)pid, how);
				s->stopping = 2;
				s->kill_at_ms = now + STOP_NOW_MS;
				s->exit_code =
					WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : 1;
				signal_workers(s, SIGTERM);
				break;
			}
			if (now - w->started_ms >= STABLE_MS || !w->backoff_ms)
				w->backoff_ms = BACKOFF_MIN_MS;
			else
				w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS
							? BACKOFF_MAX_MS
							: w->backoff_ms * 2;
			w->restart_at_ms = now + w->backoff_ms;
			pthread_mutex_lock(&s->lock);
			s->restarts++;
			pthread_mutex_unlock(&s->lock);
			log_warn("worker %d (pid %d) %s after %lld ms: restarting it in %d ms", i,
				 (int)pid, how, (long long)(now - w->started_ms), w->backoff_ms);
			break;
		}
	}
}

static void on_signal(struct super *s, int sig)
{
	s->stopping++;
	if (s->stopping == 1) {
		log_info("signal %d: draining the %d workers", sig, s->n);
		s->kill_at_ms = now_mono_ms() + s->cfg->drain_timeout_ms + 5000;
	} else {
		log_info("signal %d: stopping the workers now", sig);
		s->kill_at_ms = now_mono_ms() + STOP_NOW_MS;
	}
	signal_workers(s, SIGTERM);
}

/* ---- the workers' private admin endpoints ----------------------------------- */

static void answer_free(struct answer *a)
{
	free(a->body);
	*a = (struct answer){ 0 };
}

/* Asks the admin endpoint on 127.0.0.1:port. 0 with *out filled, or a
 * negative errno (no answer). */
static int ask(int port, const char *method, const char *target, const char *token,
	       struct answer *out)
{
	*out = (struct answer){ 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = WORKER_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = 0;
	char *req = NULL, *buf = NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		rc = -errno;
		goto out;
	}
	int n = asprintf(&req,
			 "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
			 "Content-Length: 0\r\n%s%s%s\r\n",
			 method, target, port, token ? "Authorization: Bearer " : "",
			 token ? token : "", token ? "\r\n" : "");
	if (n < 0) {
		rc = -ENOMEM;
		goto out;
	}
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		rc = -EIO;
		goto out;
	}
	size_t len = 0, cap = 16384;
	buf = xmalloc(cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap >= WORKER_MAX_ANSWER) {
				rc = -E2BIG;
				goto out;
			}
			cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t k = recv(fd, buf + len, cap - len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	buf[len] = 0;
	char *body = strstr(buf, "\r\n\r\n");
	int status;
	if (!body || sscanf(buf, "HTTP/%*s %d", &status) != 1) {
		rc = -EPROTO;
		goto out;
	}
	body += 4;
	out->status = status;
	out->len = len - (size_t)(body - buf);
	out->body = xmalloc(out->len + 1);
	memcpy(out->body, body, out->len + 1);
out:
	free(req);
	free(buf);
	close(fd);
	return rc;
}

/* Asks every worker (the same request); answers[i].status is 0 for a worker
 * that is not up or did not answer. Returns how many answered. */
static int ask_all(struct super *s, const struct admin_request *req, bool with_token,
		   struct answer *answers)
{
	int ports[SUPER_MAX_WORKERS], got = 0;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->n; i++)
		ports[i] = s->w[i].port;
	pthread_mutex_unlock(&s->lock);
	char *target = NULL;
	if (asprintf(&target, "%s%s%s", req->path, *req->query ? "?" : "", req->query) < 0)
		return 0;
	for (int i = 0; i < s->n; i++) {
		answers[i] = (struct answer){ 0 };
		if (ports[i] && ask(ports[i], req->method, target,
				    with_token ? s->cfg->admin_token : NULL, &answers[i]) == 0)
			got++;
	}
	free(target);
	return got;
}

static void answers_free(struct super *s, struct answer *answers)
{
	for (int i = 0; i < s->n; i++)
		answer_free(&answers[i]);
}

static json_t *answer_json(const struct answer *a)
{
	return a->status ? json_loadb(a->body, a->len, 0, NULL) : NULL;
}

static void no_worker(struct admin_response *resp)
{
	admin_response_error(resp, 503, "unavailable", "no worker is up");
}

/* ---- the public admin endpoint ---------------------------------------------- */

static void h_readyz(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct super *s = arg;
	struct answer a[SUPER_MAX_WORKERS];
	ask_all(s, req, false, a);
	char why[300] = "";
	if (s->stopping)
		snprintf(why, sizeof why, "draining");
	for (int i = 0; i < s->n && !*why; i++) {
		if (!a[i].status) {
			snprintf(why, sizeof why, "worker %d is not up", i);
		} else if (a[i].status != 200) {
			json_t *j = answer_json(&a[i]);
			const char *r = j ? json_string_value(json_object_get(j, "reason")) : NULL;
			snprintf(why, sizeof why, "worker %d: %s", i, r ? r : "not ready");
			json_decref(j);
		}
	}
	answers_free(s, a);
	if (*why)
		admin_response_json(resp, 503, json_pack("{s:b,s:s}", "ready", 0, "reason", why));
	else
		admin_response_json(resp, 200, json_pack("{s:b,s:i}", "ready", 1, "workers", s->n));
}

static void h_metrics(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct super *s = arg;
	struct answer a[SUPER_MAX_WORKERS];
	ask_all(s, req, false, a);
	const char *texts[SUPER_MAX_WORKERS + 1];
	size_t lens[SUPER_MAX_WORKERS + 1];
	int up = 0;
	for (int i = 0; i < s->n; i++) {
		bool ok = a[i].status == 200;
		texts[i] = ok ? a[i].body : NULL;
		lens[i] = ok ? a[i].len : 0;
		up += ok;
	}
	/* The supervisor's own families. */
	pthread_mutex_lock(&s->lock);
	uint64_t restarts = s->restarts;
	pthread_mutex_unlock(&s->lock);
	char *own = NULL;
	int ol = asprintf(&own,
			  "# HELP kws_router_workers Worker processes (--workers), by state\n"
			  "# TYPE kws_router_workers gauge\n"
			  "kws_router_workers{state=\"up\"} %d\n"
			  "kws_router_workers{state=\"down\"} %d\n"
			  "# HELP kws_router_worker_restarts_total Workers started again after "
			  "they died\n"
			  "# TYPE kws_router_worker_restarts_total counter\n"
			  "kws_router_worker_restarts_total %llu\n",
			  up, s->n - up, (unsigned long long)restarts);
	texts[s->n] = ol > 0 ? own : NULL;
	lens[s->n] = ol > 0 ? (size_t)ol : 0;
	/* Gauges every worker has the same value of: the largest, not the sum. */
	static const char *const same[] = { "kws_router_partitions", "kws_router_draining", NULL };
	size_t len;
	char *out = fanin_metrics(texts, lens, (size_t)s->n + 1, same, &len);
	admin_response_text(resp, 200, METRICS_CONTENT_TYPE, out, len);
	free(out);
	free(own);
	answers_free(s, a);
}

/* The first worker's answer as it is (the partition map and the edges are
 * the same in every worker). */
static void h_first(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct super *s = arg;
	struct answer a[SUPER_MAX_WORKERS];
	ask_all(s, req, false, a);
	int i = 0;
	while (i < s->n && !a[i].status)
		i++;
	if (i == s->n)
		no_worker(resp);
	else
		admin_response_text(resp, a[i].status, "application/json", a[i].body, a[i].len);
	answers_free(s, a);
}

/* Sums the integer fields sum_fields of every worker's JSON answer into the
 * first answer; ORs the booleans or_fields; concatenates the arrays
 * cat_fields. Returns the merged answer (its status in *status), or NULL
 * with resp filled: a worker's error answer (not 2xx) as it is, or 503 if
 * no worker answered. */
static json_t *merge_json(struct super *s, struct answer *a, struct admin_response *resp,
			  const char *const *sum_fields, const char *const *or_fields,
			  const char *const *cat_fields, int *status)
{
	json_t *acc = NULL;
	for (int i = 0; i < s->n; i++) {
		if (!a[i].status)
			continue;
		if (a[i].status / 100 != 2) {
			json_decref(acc);
			admin_response_text(resp, a[i].status, "application/json", a[i].body,
					    a[i].len);
			return NULL;
		}
		json_t *j = answer_json(&a[i]);
		if (!j)
			continue;
		if (!acc) {
			acc = j;
			*status = a[i].status;
			continue;
		}
		for (const char *const *f = sum_fields; f && *f; f++)
			json_object_set_new(
				acc, *f,
				json_integer(json_integer_value(json_object_get(acc, *f)) +
					     json_integer_value(json_object_get(j, *f))));
		for (const char *const *f = or_fields; f && *f; f++)
			json_object_set_new(acc, *f,
					    json_boolean(json_is_true(json_object_get(acc, *f)) ||
							 json_is_true(json_object_get(j, *f))));
		for (const char *const *f = cat_fields; f && *f; f++) {
			json_t *arr = json_object_get(acc, *f);
			if (json_is_array(arr))
				json_array_extend(arr, json_object_get(j, *f));
		}
		json_decref(j);
	}
	if (!acc)
		no_worker(resp);
	return acc;
}

static void h_stats(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct super *s = arg;
	struct answer a[SUPER_MAX_WORKERS];
	ask_all(s, req, false, a);
	static const char *const sum[] = { "sessions", "delivered", "throttled", NULL };
	static const char *const any[] = { "draining", NULL };
	int status;
	json_t *j = merge_json(s, a, resp, sum, any, NULL, &status);
	if (j) {
		/* The router's own name, not a worker's. */
		json_object_set_new(j, "router", json_string(s->cfg->router_id));
		json_object_set_new(j, "workers", json_integer(s->n));
		admin_response_json(resp, status, j);
	}
	answers_free(s, a);
}

static void h_client(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct super *s = arg;
	struct answer a[SUPER_MAX_WORKERS];
	bool post = strcmp(req->method, "POST") == 0;
	ask_all(s, req, post, a);
	static const char *const sum[] = { "disconnected", NULL };
	static const char *const cat[] = { "sessions", NULL };
	int status;
	json_t *j = merge_json(s, a, resp, post ? sum : NULL, NULL, post ? NULL : cat, &status);
	if (j)
		admin_response_json(resp, status, j);
	answers_free(s, a);
}

static void h_drain(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct super *s = arg;
	struct answer a[SUPER_MAX_WORKERS];
	ask_all(s, req, true, a);
	static const char *const sum[] = { "sessions", NULL };
	int status;
	json_t *j = merge_json(s, a, resp, sum, NULL, NULL, &status);
	if (j) {
		pthread_mutex_lock(&s->lock);
		snprintf(s->drain_target, sizeof s->drain_target, "%s%s%s", req->path,
			 *req->query ? "?" : "", req->query);
		pthread_mutex_unlock(&s->lock);
		admin_response_json(resp, status, j);
	}
	answers_free(s, a);
}

static int admin_open(struct super *s)
{
	const struct router_config *cfg = s->cfg;
	if (!*cfg->admin_listen)
		return 0;
	struct admin_config ac = { .token = cfg->admin_token };
	char err[256];
	s->admin = admin_start(cfg->admin_listen, &ac, err, sizeof err);
	if (!s->admin) {
		log_error("admin endpoint: %s", err);
		return -1;
	}
	const unsigned T = ADMIN_NEEDS_TOKEN;
	admin_route(s->admin, "GET", "/readyz", h_readyz, s, 0);
	admin_route(s->admin, "GET", "/metrics", h_metrics, s, 0);
	admin_route(s->admin, "GET", "/api/v1/partitions", h_first, s, 0);
	admin_route(s->admin, "GET", "/api/v1/edges", h_first, s, 0);
	admin_route(s->admin, "GET", "/api/v1/stats", h_stats, s, 0);
	admin_route(s->admin, "GET", "/api/v1/clients/", h_client, s, 0);
	admin_route(s->admin, "POST", "/api/v1/clients/", h_client, s, T);
	admin_route(s->admin, "POST", "/api/v1/drain", h_drain, s, T);
	admin_route_static(s->admin, "/", "text/html; charset=utf-8", status_html,
			   sizeof status_html - 1);
	if (!cfg->admin_token || !*cfg->admin_token)
		log_warn("no admin token (--admin-token): disconnect and drain are refused");
	log_info("admin endpoint on %s (port %d), for %d workers", cfg->admin_listen,
		 admin_port(s->admin), s->n);
	return 0;
}

/* ---- run ------------------------------------------------------------------- */

int super_run(const struct router_config *cfg, int n, char **argv)
{
	static struct super s; /* the admin threads keep a pointer */
	s = (struct super){ .cfg = cfg, .argv = argv, .n = n };
	pthread_mutex_init(&s.lock, NULL);
	for (int i = 0; i < n; i++)
		s.w[i].pipe_fd = -1;
	/* Signals arrive on the signalfd; block them before any thread starts
	 * (threads inherit the mask), the workers get the old mask back. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, &s.oldmask);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), rc = 1;
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	if (admin_open(&s) < 0)
		goto out;
	log_info("router %s: %d workers on %s:%ld (SO_REUSEPORT)", cfg->router_id, n,
		 *cfg->listen_host ? cfg->listen_host : "*", cfg->port);
	for (int i = 0; i < n; i++)
		if (spawn(&s, i) < 0) {
			s.w[i].backoff_ms = BACKOFF_MIN_MS;
			s.w[i].restart_at_ms = now_mono_ms() + BACKOFF_MIN_MS;
		}
	for (;;) {
		int64_t now = now_mono_ms();
		int alive = 0;
		for (int i = 0; i < n; i++) {
			struct worker *w = &s.w[i];
			if (!w->pid && !s.stopping && w->restart_at_ms && now >= w->restart_at_ms) {
				w->restart_at_ms = 0;
				if (spawn(&s, i) < 0)
					w->restart_at_ms = now + BACKOFF_MAX_MS;
			}
			alive += w->pid != 0;
		}
		if (s.stopping && !alive)
			break;
		if (s.stopping && now >= s.kill_at_ms) {
			log_warn("workers still running after the stop deadline: killing them");
			signal_workers(&s, SIGKILL);
			s.failed = true;
			s.kill_at_ms = now + 1000;
		}
		if (s.admin)
			admin_loop_alive(s.admin);
		struct pollfd pf[SUPER_MAX_WORKERS + 1];
		int idx[SUPER_MAX_WORKERS + 1], np = 0;
		pf[np] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		idx[np++] = -1;
		for (int i = 0; i < n; i++)
			if (s.w[i].pipe_fd >= 0) {
				pf[np] = (struct pollfd){ .fd = s.w[i].pipe_fd, .events = POLLIN };
				idx[np++] = i;
			}
		if (poll(pf, (nfds_t)np, 100) <= 0)
			continue;
		for (int k = 1; k < np; k++)
			if (pf[k].revents)
				read_report(&s, idx[k]);
		if (pf[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				if (si.ssi_signo == SIGCHLD)
					reap(&s);
				else
					on_signal(&s, (int)si.ssi_signo);
			}
			reap(&s);
		}
	}
	log_info("router %s: every worker stopped (%llu restarts)", cfg->router_id,
		 (unsigned long long)s.restarts);
	rc = s.exit_code ? s.exit_code : s.failed ? 1 : 0;
out:
	admin_stop(s.admin);
	s.admin = NULL;
	if (sfd >= 0)
		close(sfd);
	/* Workers left behind (a failed start): stop them. */
	for (int i = 0; i < n; i++) {
		if (s.w[i].pid) {
			kill(s.w[i].pid, SIGKILL);
			waitpid(s.w[i].pid, NULL, 0);
		}
		worker_close_pipe(&s.w[i]);
	}
	pthread_mutex_destroy(&s.lock);
	return rc;
}
