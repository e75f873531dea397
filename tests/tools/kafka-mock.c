/*
 * kafka-mock: an embedded Kafka cluster (librdkafka's mock cluster) for the
 * quick start and the fault tests. It prints "BOOTSTRAP <host:port,...>" once
 * on stdout, runs until SIGINT or SIGTERM and can take fault-injection
 * commands, one a line, from a control FIFO.
 *
 * The mock brokers listen on 127.0.0.1 with ports the kernel picks; the mock
 * cluster API of librdkafka 2.0.2 has no way to choose the address or port.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "util.h"

#define MAX_BROKERS 64
#define MAX_PARTITIONS 100000
/* Longest control line; a longer one is discarded up to its newline. */
#define CTL_LINE_MAX 512

struct topic_spec {
	char *name;
	int partitions;
};

struct options {
	int brokers;
	struct topic_spec *topics;
	int ntopics;
	const char *port_file;
	const char *control_fifo;
};

struct control {
	int fd;      /* -1 when there is no control FIFO */
	int created; /* we made the FIFO, so we remove it */
	char line[CTL_LINE_MAX];
	size_t len;
	int discarding; /* inside an overlong line */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kafka-mock [--brokers N] [--topic NAME:PARTITIONS]...\n"
		"                  [--port-file PATH] [--control-fifo PATH]\n"
		"\n"
		"Runs librdkafka's mock Kafka cluster on 127.0.0.1 until SIGINT or\n"
		"SIGTERM. Prints one line, \"BOOTSTRAP host:port,...\", on stdout once\n"
		"the brokers listen and the topics exist.\n"
		"\n"
		"  --brokers N              brokers, ids 1..N (default 1, at most %d)\n"
		"  --topic NAME:PARTITIONS  create a topic (replication factor 1);\n"
		"                           may be repeated\n"
		"  --port-file PATH         also write the bootstrap list to PATH\n"
		"                           (atomically; removed again on exit)\n"
		"  --control-fifo PATH      read fault-injection commands from the FIFO\n"
		"                           at PATH (created if missing), one a line:\n"
		"                             broker-down ID     (-1 = all brokers)\n"
		"                             broker-up ID\n"
		"                             broker-rtt ID MS\n"
		"                             leader TOPIC PARTITION ID\n"
		"                           results are logged on stderr\n"
		"  --help                   this text\n"
		"\n"
		"Exit status: 0 after a clean shutdown, 1 on a runtime failure,\n"
		"2 on bad arguments.\n",
		MAX_BROKERS);
}

__attribute__((format(printf, 1, 2), noreturn)) static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("kafka-mock: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'kafka-mock --help'.\n", stderr);
	exit(2);
}

/* Parses a whole decimal int in [min, max]; returns 0 or -1. */
static int parse_int(const char *s, long min, long max, int *out)
{
	char *end;
	long v;

	if (!*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static void parse_topic(struct options *o, const char *arg)
{
	const char *colon = strrchr(arg, ':');
	int parts;

	if (!colon || colon == arg)
		die_usage("--topic wants NAME:PARTITIONS, got '%s'", arg);
	if (parse_int(colon + 1, 1, MAX_PARTITIONS, &parts))
		die_usage("--topic '%s': partition count must be an integer "
			  "from 1 to %d",
			  arg, MAX_PARTITIONS);
	o->topics = xrealloc(o->topics, (size_t)(o->ntopics + 1) * sizeof *o->topics);
	o->topics[o->ntopics].name = xstrndup(arg, (size_t)(colon - arg));
	o->topics[o->ntopics].partitions = parts;
	o->ntopics++;
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic", required_argument, NULL, 't' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "control-fifo", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->brokers = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (parse_int(optarg, 1, MAX_BROKERS, &o->brokers))
				die_usage("--brokers wants an integer from 1 to %d, "
					  "got '%s'",
					  MAX_BROKERS, optarg);
			break;
		case 't':
			parse_topic(o, optarg);
			break;
		case 'p':
			o->port_file = optarg;
			break;
		case 'c':
			o->control_fifo = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			die_usage("option '%s' needs a value", argv[optind - 1]);
			break;
		default:
			die_usage("unknown option '%s'", argv[optind - 1]);
			break;
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
}

static void rk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	enum log_level l = level <= 3   ? LOG_ERROR
			   : level == 4 ? LOG_WARN
			   : level <= 6 ? LOG_INFO
					: LOG_DEBUG;

	/* This handle only hosts the mock cluster; it is meant to have no
	 * bootstrap servers, so that warning would only mislead. */
	if (!strcmp(fac, "CONFWARN") && strstr(buf, "bootstrap.servers"))
		return;
	if (log_enabled(l))
		log_msg(l, "rdkafka %s: %s", fac, buf);
}

/* Writes s and a newline to path through a temporary file and rename(), so
 * a reader never sees a partial file. Returns 0 or -1 (logged). */
static int write_port_file(const char *path, const char *s)
{
	size_t n = strlen(path) + 16;
	char *tmp = xmalloc(n);
	FILE *f;
	int ret = -1;

	snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
	f = fopen(tmp, "w");
	if (!f) {
		log_error("cannot create %s: %s", tmp, strerror(errno));
		goto out_free;
	}
	fprintf(f, "%s\n", s);
	if (fclose(f) != 0) {
		log_error("cannot write %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	if (rename(tmp, path) != 0) {
		log_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out_unlink;
	}
	ret = 0;
	goto out_free;
out_unlink:
	unlink(tmp);
out_free:
	free(tmp);
	return ret;
}

/* Opens (creating if missing) the control FIFO. It is opened read-write so
 * that it never reports end-of-file when a writer closes it. */
static int control_open(struct control *ctl, const char *path)
{
	struct stat st;

	if (mkfifo(path, 0600) == 0) {
		ctl->created = 1;
	} else if (errno != EEXIST) {
		log_error("cannot create FIFO %s: %s", path, strerror(errno));
		return -1;
	}
	ctl->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (ctl->fd < 0) {
		log_error("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(ctl->fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
		log_error("%s exists and is not a FIFO", path);
		return -1;
	}
	return 0;
}

static void control_exec(rd_kafka_mock_cluster_t *mc, char *line)
{
	char *save = NULL;
	char *cmd = strtok_r(line, " \t\r", &save);
	char *a1, *a2, *a3, *extra;
	rd_kafka_resp_err_t err;
	int id, v;

	if (!cmd)
		return;
	a1 = strtok_r(NULL, " \t\r", &save);
	a2 = strtok_r(NULL, " \t\r", &save);
	a3 = strtok_r(NULL, " \t\r", &save);
	extra = strtok_r(NULL, " \t\r", &save);

	if (!strcmp(cmd, "broker-down") || !strcmp(cmd, "broker-up")) {
		if (!a1 || a2 || parse_int(a1, -1, INT_MAX, &id))
			goto bad;
		if (cmd[7] == 'd')
			err = rd_kafka_mock_broker_set_down(mc, id);
		else
			err = rd_kafka_mock_broker_set_up(mc, id);
		log_info("control: %s %d: %s", cmd, id, rd_kafka_err2str(err));
	} else if (!strcmp(cmd, "broker-rtt")) {
		if (!a2 || a3 || parse_int(a1, -1, INT_MAX, &id) || parse_int(a2, 0, INT_MAX, &v))
			goto bad;
		err = rd_kafka_mock_broker_set_rtt(mc, id, v);
		log_info("control: broker-rtt %d %d: %s", id, v, rd_kafka_err2str(err));
	} else if (!strcmp(cmd, "leader")) {
		if (!a3 || extra || parse_int(a2, 0, INT_MAX, &v) ||
		    parse_int(a3, -1, INT_MAX, &id))
			goto bad;
		err = rd_kafka_mock_partition_set_leader(mc, a1, v, id);
		log_info("control: leader %s %d %d: %s", a1, v, id, rd_kafka_err2str(err));
	} else {
		goto bad;
	}
	return;
bad:
	log_error("control: bad command '%s' (want broker-down ID, broker-up ID, "
		  "broker-rtt ID MS or leader TOPIC PARTITION ID)",
		  cmd);
}

/* Reads what the FIFO has and runs each complete line. */
static void control_read(struct control *ctl, rd_kafka_mock_cluster_t *mc)
{
	char buf[1024];
	ssize_t n;

	while ((n = read(ctl->fd, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];

			if (ch == '\n') {
				if (!ctl->discarding) {
					ctl->line[ctl->len] = '\0';
					control_exec(mc, ctl->line);
				}
				ctl->len = 0;
				ctl->discarding = 0;
			} else if (ctl->discarding) {
				continue;
			} else if (ctl->len + 1 >= sizeof ctl->line) {
				log_error("control: line longer than %d bytes "
					  "ignored",
					  CTL_LINE_MAX - 1);
				ctl->discarding = 1;
			} else {
				ctl->line[ctl->len++] = ch;
			}
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_error("control: read: %s", strerror(errno));
}

/* Waits for SIGINT or SIGTERM on sfd while serving the control FIFO.
 * Returns 0 on a signal, -1 on a poll failure. */
static int run(int sfd, struct control *ctl, rd_kafka_mock_cluster_t *mc)
{
	struct pollfd pfd[2] = {
		{ .fd = sfd, .events = POLLIN },
		{ .fd = ctl->fd, .events = POLLIN },
	};
	int nfds = ctl->fd >= 0 ? 2 : 1;

	for (;;) {
		if (poll(pfd, (nfds_t)nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return -1;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				log_info("%s received, shutting down",
					 strsignal((int)si.ssi_signo));
				return 0;
			}
		}
		if (nfds == 2 && pfd[1].revents)
			control_read(ctl, mc);
	}
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct control ctl = { .fd = -1 };
	rd_kafka_t *rk = NULL;
	rd_kafka_mock_cluster_t *mc = NULL;
	rd_kafka_conf_t *conf;
	const char *bootstraps;
	char errstr[512];
	sigset_t sigs;
	int sfd = -1;
	int wrote_port_file = 0;
	int ret = 1;

	log_setup("kafka-mock", LOG_INFO, 0);
	parse_args(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);

	/* Block the stop signals before any thread exists, so every thread
	 * (librdkafka's and the mock cluster's) inherits the mask and the
	 * signals reach only the signalfd. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0) {
		log_error("sigprocmask: %s", strerror(errno));
		goto out;
	}
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}

	if (o.control_fifo && control_open(&ctl, o.control_fifo))
		goto out;

	/* The mock cluster needs an rd_kafka_t for its bookkeeping; this one
	 * has no bootstrap servers and sends nothing. */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, rk_log);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		log_error("rd_kafka_new: %s", errstr);
		goto out;
	}
	mc = rd_kafka_mock_cluster_new(rk, o.brokers);
	if (!mc) {
		log_error("cannot create a mock cluster of %d brokers", o.brokers);
		goto out;
	}
	for (int i = 0; i < o.ntopics; i++) {
		rd_kafka_resp_err_t err =
			rd_kafka_mock_topic_create(mc, o.topics[i].name, o.topics[i].partitions, 1);

		if (err) {
			log_error("cannot create topic %s: %s", o.topics[i].name,
				  rd_kafka_err2str(err));
			goto out;
		}
		log_info("topic %s: %d partitions", o.topics[i].name, o.topics[i].partitions);
	}

	bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
	if (o.port_file) {
		if (write_port_file(o.port_file, bootstraps))
			goto out;
		wrote_port_file = 1;
	}
	printf("BOOTSTRAP %s\n", bootstraps);
	fflush(stdout);
	log_info("%d broker(s) listening at %s", o.brokers, bootstraps);

	if (run(sfd, &ctl, mc) == 0)
		ret = 0;
out:
	if (mc)
		rd_kafka_mock_cluster_destroy(mc);
	if (rk)
		rd_kafka_destroy(rk);
	if (wrote_port_file)
		unlink(o.port_file);
	if (ctl.fd >= 0)
		close(ctl.fd);
	if (ctl.created)
		unlink(o.control_fifo);
	if (sfd >= 0)
		close(sfd);
	for (int i = 0; i < o.ntopics; i++)
		free(o.topics[i].name);
	free(o.topics);
	return ret;
}
