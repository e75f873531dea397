/* Unit tests for common/conf.c: precedence (flag, environment, default), the
 * value syntaxes of each type, the error messages and the --help text. */
#include "conf.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The destinations of the test tables; reset before every test. */
static const char *g_name;
static long g_port;
static long g_buf;
static bool g_verbose;
static int g_color;
static struct conf_list g_peers;
static long g_count;
static const char *g_token;
static long g_raw;

static const char *const colors[] = { "red", "green", "blue", NULL };

static const struct conf_opt opts[] = {
	{ "name", "KWSTEST_NAME", CONF_STR, &g_name, "default-name", "Name of the thing." },
	{ "port", "KWSTEST_PORT", CONF_INT, &g_port, "8080", "Port to listen on.", 0, 1, 65535 },
	{ "buf", "KWSTEST_BUF", CONF_SIZE, &g_buf, "64KiB", "Buffer size.", 0, 1024, 1L << 30 },
	{ "verbose", "KWSTEST_VERBOSE", CONF_BOOL, &g_verbose, "false", "Verbose logs." },
	{ "color", "KWSTEST_COLOR", CONF_CHOICE, &g_color, "green", "Colour of the thing.", 0, 0, 0,
	  colors },
	{ "peer", "KWSTEST_PEERS", CONF_LIST, &g_peers, NULL, "A peer URL." },
	{ "count", NULL, CONF_INT, &g_count, "3", "Has no environment variable." },
	{ "raw", "KWSTEST_RAW", CONF_SIZE, &g_raw, "0", "A size without bounds." },
	{ 0 },
};

/* Settings with value checks, as the router's and the edge's tables have. */
static struct conf_list g_edges;
static const char *g_listen, *g_dns, *g_url;

static const struct conf_opt addr_opts[] = {
	{ "edges", "KWSTEST_EDGES", CONF_LIST, &g_edges, NULL, "An edge.", 0, 0, 0, NULL,
	  conf_check_tcp_url },
	{ "listen", "KWSTEST_LISTEN", CONF_STR, &g_listen, "0.0.0.0:8080", "Where.", 0, 0, 0, NULL,
	  conf_check_listen },
	{ "edges-dns", "KWSTEST_EDGES_DNS", CONF_STR, &g_dns, "", "A name.", 0, 0, 0, NULL,
	  conf_check_host_port },
	{ "url", "KWSTEST_URL", CONF_STR, &g_url, "tcp://0.0.0.0:7100", "Ours.", 0, 0, 0, NULL,
	  conf_check_tcp_url },
	{ 0 },
};

static const struct conf_opt req_opts[] = {
	{ "token", "KWSTEST_TOKEN", CONF_STR, &g_token, NULL, "Secret token.", CONF_REQUIRED },
	{ "name", "KWSTEST_NAME", CONF_STR, &g_name, "default-name", "Name of the thing." },
	{ 0 },
};

static const char *const env_names[] = {
	"KWSTEST_NAME",  "KWSTEST_PORT",   "KWSTEST_BUF",       "KWSTEST_VERBOSE",
	"KWSTEST_COLOR", "KWSTEST_PEERS",  "KWSTEST_TOKEN",     "KWSTEST_RAW",
	"KWSTEST_EDGES", "KWSTEST_LISTEN", "KWSTEST_EDGES_DNS", "KWSTEST_URL",
};

static char err[512];
static char *out_text;
static size_t out_len;

static void setup(void)
{
	for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
		unsetenv(env_names[i]);
	g_name = NULL;
	g_port = -7;
	g_buf = -7;
	g_verbose = false;
	g_color = -7;
	memset(&g_peers, 0, sizeof g_peers);
	g_count = -7;
	g_token = NULL;
	g_raw = -7;
	memset(&g_edges, 0, sizeof g_edges);
	g_listen = g_dns = g_url = NULL;
	memset(err, 0, sizeof err);
	out_text = NULL;
	out_len = 0;
}

static void teardown(void)
{
	conf_list_free(&g_peers);
	conf_list_free(&g_edges);
	free(out_text);
	out_text = NULL;
	for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
		unsetenv(env_names[i]);
}

/* Runs conf_parse on table t with argv = {"prog", args..., NULL}; --help text
 * goes to out_text. */
static int parse_with(const struct conf_opt *t, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = (char *)"prog";
	for (; args[argc - 1]; argc++) {
		ck_assert_int_lt(argc, 31);
		argv[argc] = (char *)args[argc - 1];
	}
	argv[argc] = NULL;
	free(out_text);
	out_text = NULL;
	FILE *f = open_memstream(&out_text, &out_len);
	ck_assert_ptr_nonnull(f);
	memset(err, 0, sizeof err);
	int rc = conf_parse(t, argc, argv, f, "Test summary line.", err, sizeof err);
	fclose(f);
	return rc;
}

#define PARSE(...) parse_with(opts, (const char *const[]){ __VA_ARGS__, NULL })
#define PARSE0() parse_with(opts, (const char *const[]){ NULL })
#define PARSE_REQ(...) parse_with(req_opts, (const char *const[]){ __VA_ARGS__, NULL })
#define PARSE_REQ0() parse_with(req_opts, (const char *const[]){ NULL })
#define PARSE_ADDR(...) parse_with(addr_opts, (const char *const[]){ __VA_ARGS__, NULL })
#define PARSE_ADDR0() parse_with(addr_opts, (const char *const[]){ NULL })

#define assert_err_has(s) \
	ck_assert_msg(strstr(err, (s)) != NULL, "error '%s' does not mention '%s'", err, (s))
#define assert_out_has(s)                                       \
	ck_assert_msg(out_text &&strstr(out_text, (s)) != NULL, \
		      "usage does not contain '%s':\n%s", (s), out_text ? out_text : "(null)")

/* ---- precedence ---- */

START_TEST(test_defaults)
{
	ck_assert_int_eq(PARSE0(), 0);
	ck_assert_str_eq(err, "");
	ck_assert_ptr_nonnull(g_name);
	ck_assert_str_eq(g_name, "default-name");
	ck_assert_int_eq(g_port, 8080);
	ck_assert_int_eq(g_buf, 65536);
	ck_assert(!g_verbose);
	ck_assert_int_eq(g_color, 1);
	ck_assert_uint_eq(g_peers.count, 0);
	ck_assert_int_eq(g_count, 3);
	ck_assert_int_eq(g_raw, 0);
}
END_TEST

START_TEST(test_env_beats_default)
{
	setenv("KWSTEST_NAME", "env-name", 1);
	setenv("KWSTEST_PORT", "9090", 1);
	setenv("KWSTEST_BUF", "1MiB", 1);
	setenv("KWSTEST_VERBOSE", "yes", 1);
	setenv("KWSTEST_COLOR", "blue", 1);
	ck_assert_int_eq(PARSE0(), 0);
	ck_assert_str_eq(g_name, "env-name");
	ck_assert_int_eq(g_port, 9090);
	ck_assert_int_eq(g_buf, 1048576);
	ck_assert(g_verbose);
	ck_assert_int_eq(g_color, 2);
	/* Untouched settings keep their defaults. */
	ck_assert_int_eq(g_count, 3);
}
END_TEST

START_TEST(test_flag_beats_env)
{
	setenv("KWSTEST_NAME", "env-name", 1);
	setenv("KWSTEST_PORT", "9090", 1);
	setenv("KWSTEST_VERBOSE", "true", 1);
	setenv("KWSTEST_COLOR", "blue", 1);
	ck_assert_int_eq(
		PARSE("--name=flag-name", "--port", "7070", "--verbose=off", "--color", "red"), 0);
	ck_assert_str_eq(g_name, "flag-name");
	ck_assert_int_eq(g_port, 7070);
	ck_assert(!g_verbose);
	ck_assert_int_eq(g_color, 0);
}
END_TEST

START_TEST(test_bad_env_ignored_when_flag_given)
{
	/* The flag decides, so a bad variable for the same setting does not matter. */
	setenv("KWSTEST_PORT", "not-a-number", 1);
	ck_assert_int_eq(PARSE("--port=1234"), 0);
	ck_assert_int_eq(g_port, 1234);
}
END_TEST

START_TEST(test_equals_and_separate_value)
{
	ck_assert_int_eq(PARSE("--name=alpha", "--port", "1234", "--buf", "2K", "--count=11"), 0);
	ck_assert_str_eq(g_name, "alpha");
	ck_assert_int_eq(g_port, 1234);
	ck_assert_int_eq(g_buf, 2048);
	ck_assert_int_eq(g_count, 11);

	ck_assert_int_eq(PARSE("--name", "beta", "--port=4321"), 0);
	ck_assert_str_eq(g_name, "beta");
	ck_assert_int_eq(g_port, 4321);

	/* A value may contain '='. */
	ck_assert_int_eq(PARSE("--name=a=b"), 0);
	ck_assert_str_eq(g_name, "a=b");
}
END_TEST

START_TEST(test_missing_value)
{
	ck_assert_int_eq(PARSE("--port"), -1);
	assert_err_has("--port");
}
END_TEST

/* ---- bool ---- */

START_TEST(test_bool_bare_flag)
{
	ck_assert_int_eq(PARSE("--verbose"), 0);
	ck_assert(g_verbose);
	/* A bare flag also beats the environment. */
	setenv("KWSTEST_VERBOSE", "false", 1);
	g_verbose = false;
	ck_assert_int_eq(PARSE("--verbose"), 0);
	ck_assert(g_verbose);
}
END_TEST

START_TEST(test_bool_values)
{
	static const struct {
		const char *s;
		bool v;
	} cases[] = {
		{ "true", true },   { "1", true },  { "yes", true }, { "on", true },
		{ "false", false }, { "0", false }, { "no", false }, { "off", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char flag[32];
		snprintf(flag, sizeof flag, "--verbose=%s", cases[i].s);
		g_verbose = !cases[i].v;
		ck_assert_int_eq(PARSE(flag), 0);
		ck_assert_msg(g_verbose == cases[i].v, "%s", flag);

		setenv("KWSTEST_VERBOSE", cases[i].s, 1);
		g_verbose = !cases[i].v;
		ck_assert_int_eq(PARSE0(), 0);
		ck_assert_msg(g_verbose == cases[i].v, "KWSTEST_VERBOSE=%s", cases[i].s);
		unsetenv("KWSTEST_VERBOSE");
	}
}
END_TEST

START_TEST(test_bool_bad)
{
	ck_assert_int_eq(PARSE("--verbose=maybe"), -1);
	assert_err_has("--verbose");
	assert_err_has("KWSTEST_VERBOSE");
	assert_err_has("maybe");

	setenv("KWSTEST_VERBOSE", "perhaps", 1);
	ck_assert_int_eq(PARSE0(), -1);
	assert_err_has("--verbose");
	assert_err_has("KWSTEST_VERBOSE");
	assert_err_has("perhaps");
}
END_TEST

/* ---- sizes ---- */

START_TEST(test_size_suffixes)
{
	static const struct {
		const char *s;
		long v;
	} cases[] = {
		{ "0", 0 },
		{ "65536", 65536 },
		{ "64K", 64L * 1024 },
		{ "64KiB", 64L * 1024 },
		{ "1M", 1024L * 1024 },
		{ "1MiB", 1024L * 1024 },
		{ "3G", 3L * 1024 * 1024 * 1024 },
		{ "2GiB", 2L * 1024 * 1024 * 1024 },
		{ "9223372036854775807", LONG_MAX },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long v = -12345;
		ck_assert_msg(conf_parse_size(cases[i].s, &v) == 0, "'%s' rejected", cases[i].s);
		ck_assert_msg(v == cases[i].v, "'%s' gave %ld, want %ld", cases[i].s, v,
			      cases[i].v);
	}
}
END_TEST

START_TEST(test_size_rejects)
{
	static const char *const bad[] = {
		"-1",
		"-0",
		"1X",
		"",
		"K",
		"12 K",
		"1KiBx",
		"1.5M",
		"9223372036854775808", /* LONG_MAX + 1 */
		"99999999999999999999999",
		"8589934592G",       /* 2^33 GiB = 2^63 */
		"9007199254740992K", /* 2^53 KiB = 2^63 */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long v = 0;
		ck_assert_msg(conf_parse_size(bad[i], &v) == -1, "'%s' accepted as %ld", bad[i], v);
	}
}
END_TEST

/* regression test: failed until conf_parse_size (common/conf.c) rejects a sign after leading
 * blanks: strtol skips the blanks, so only a '-' in the first byte is caught. */
START_TEST(test_size_rejects_negative_after_blank)
{
	long v = 0;
	ck_assert_msg(conf_parse_size(" -1", &v) == -1, "' -1' accepted as %ld", v);
	/* Through the table, for a size without bounds. */
	setenv("KWSTEST_RAW", " -5", 1);
	int rc = PARSE0();
	ck_assert_msg(rc == -1, "KWSTEST_RAW=' -5' accepted as %ld", g_raw);
	assert_err_has("--raw");
}
END_TEST

START_TEST(test_size_in_table)
{
	ck_assert_int_eq(PARSE("--buf=1M"), 0);
	ck_assert_int_eq(g_buf, 1048576);
	ck_assert_int_eq(PARSE("--buf", "64KiB", "--raw=5G"), 0);
	ck_assert_int_eq(g_buf, 65536);
	ck_assert_int_eq(g_raw, 5L << 30);
	setenv("KWSTEST_RAW", "2GiB", 1);
	ck_assert_int_eq(PARSE0(), 0);
	ck_assert_int_eq(g_raw, 2L << 30);
	ck_assert_int_eq(PARSE("--buf=1X"), -1);
	assert_err_has("--buf");
	assert_err_has("KWSTEST_BUF");
	assert_err_has("1X");
	ck_assert_int_eq(PARSE("--buf=-1"), -1);
	assert_err_has("--buf");
	ck_assert_int_eq(PARSE("--raw="), -1);
	assert_err_has("--raw");
}
END_TEST

START_TEST(test_size_range)
{
	ck_assert_int_eq(PARSE("--buf=1GiB"), 0);
	ck_assert_int_eq(g_buf, 1L << 30);
	ck_assert_int_eq(PARSE("--buf=1K"), 0);
	ck_assert_int_eq(g_buf, 1024);
	ck_assert_int_eq(PARSE("--buf=1023"), -1);
	assert_err_has("--buf");
	assert_err_has("KWSTEST_BUF");
	setenv("KWSTEST_BUF", "2GiB", 1);
	ck_assert_int_eq(PARSE0(), -1);
	assert_err_has("--buf");
	assert_err_has("KWSTEST_BUF");
}
END_TEST

/* ---- ints ---- */

START_TEST(test_int_range)
{
	ck_assert_int_eq(PARSE("--port=1"), 0);
	ck_assert_int_eq(g_port, 1);
	ck_assert_int_eq(PARSE("--port=65535"), 0);
	ck_assert_int_eq(g_port, 65535);

	ck_assert_int_eq(PARSE("--port=0"), -1);
	assert_err_has("--port");
	assert_err_has("KWSTEST_PORT");
	ck_assert_int_eq(PARSE("--port=65536"), -1);
	assert_err_has("--port");
	assert_err_has("KWSTEST_PORT");
	assert_err_has("65536");

	setenv("KWSTEST_PORT", "70000", 1);
	ck_assert_int_eq(PARSE0(), -1);
	assert_err_has("--port");
	assert_err_has("KWSTEST_PORT");
	assert_err_has("70000");
}
END_TEST

START_TEST(test_int_unbounded_and_bad)
{
	/* --count has no bounds (max == min). */
	ck_assert_int_eq(PARSE("--count=-40"), 0);
	ck_assert_int_eq(g_count, -40);
	ck_assert_int_eq(PARSE("--count=123456789012"), 0);
	ck_assert_int_eq(g_count, 123456789012L);

	ck_assert_int_eq(PARSE("--port=12abc"), -1);
	assert_err_has("--port");
	assert_err_has("12abc");
	ck_assert_int_eq(PARSE("--port="), -1);
	assert_err_has("--port");
	ck_assert_int_eq(PARSE("--count=99999999999999999999999"), -1);
	assert_err_has("--count");
}
END_TEST

/* ---- choices ---- */

START_TEST(test_choice)
{
	ck_assert_int_eq(PARSE("--color=red"), 0);
	ck_assert_int_eq(g_color, 0);
	ck_assert_int_eq(PARSE("--color", "blue"), 0);
	ck_assert_int_eq(g_color, 2);

	ck_assert_int_eq(PARSE("--color=purple"), -1);
	assert_err_has("--color");
	assert_err_has("KWSTEST_COLOR");
	assert_err_has("purple");
	assert_err_has("red");
	assert_err_has("green");
	assert_err_has("blue");

	setenv("KWSTEST_COLOR", "Red", 1); /* case matters */
	ck_assert_int_eq(PARSE0(), -1);
	assert_err_has("KWSTEST_COLOR");
	assert_err_has("red");
	assert_err_has("blue");
}
END_TEST

/* ---- required ---- */

START_TEST(test_required)
{
	ck_assert_int_eq(PARSE_REQ0(), -1);
	assert_err_has("--token");
	assert_err_has("KWSTEST_TOKEN");

	ck_assert_int_eq(PARSE_REQ("--token=abc"), 0);
	ck_assert_str_eq(g_token, "abc");

	setenv("KWSTEST_TOKEN", "from-env", 1);
	ck_assert_int_eq(PARSE_REQ0(), 0);
	ck_assert_str_eq(g_token, "from-env");
	ck_assert_str_eq(g_name, "default-name");
}
END_TEST

/* ---- bad command lines ---- */

START_TEST(test_unknown_flag)
{
	ck_assert_int_eq(PARSE("--nope=1"), -1);
	assert_err_has("--nope");
	ck_assert_int_eq(PARSE("--port=80", "--portx", "1"), -1);
	assert_err_has("--portx");
	/* A prefix of a flag is not that flag. */
	ck_assert_int_eq(PARSE("--por=80"), -1);
	assert_err_has("--por");
}
END_TEST

START_TEST(test_positional)
{
	ck_assert_int_eq(PARSE("stray"), -1);
	assert_err_has("stray");
	ck_assert_int_eq(PARSE("--port=80", "-x"), -1);
	assert_err_has("-x");
	/* A bare bool flag does not take the next argument as its value. */
	ck_assert_int_eq(PARSE("--verbose", "extra"), -1);
	assert_err_has("extra");
}
END_TEST

/* ---- help ---- */

START_TEST(test_help)
{
	ck_assert_int_eq(PARSE("--help"), 1);
	ck_assert_ptr_nonnull(out_text);
	assert_out_has("prog");
	assert_out_has("Test summary line.");
	for (const struct conf_opt *o = opts; o->name; o++) {
		char flag[64];
		snprintf(flag, sizeof flag, "--%s", o->name);
		assert_out_has(flag);
		assert_out_has(o->help);
		if (o->env)
			assert_out_has(o->env);
		if (o->def)
			assert_out_has(o->def);
	}
	assert_out_has("red");
	assert_out_has("green");
	assert_out_has("blue");
	assert_out_has("--help");
}
END_TEST

START_TEST(test_help_wins_over_later_args)
{
	/* --help stops parsing: nothing after it is looked at. */
	ck_assert_int_eq(PARSE("--port=80", "--help", "--nope"), 1);
	assert_out_has("--port");
}
END_TEST

START_TEST(test_help_required)
{
	/* --help works although a required setting is missing. */
	ck_assert_int_eq(PARSE_REQ("--help"), 1);
	assert_out_has("--token");
	assert_out_has("KWSTEST_TOKEN");
	assert_out_has("Required");
	assert_out_has("default-name");
}
END_TEST

START_TEST(test_usage_direct)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	conf_usage(f, "myprog", "Does things.", opts);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "myprog"));
	ck_assert_ptr_nonnull(strstr(buf, "Does things."));
	ck_assert_ptr_nonnull(strstr(buf, "--peer"));
	ck_assert_ptr_nonnull(strstr(buf, "KWSTEST_PEERS"));
	ck_assert_ptr_nonnull(strstr(buf, "64KiB"));
	free(buf);
}
END_TEST

/* ---- lists ---- */

START_TEST(test_list_flags)
{
	ck_assert_int_eq(
		PARSE("--peer", "tcp://a:1", "--port=5", "--peer=tcp://b:2", "--peer", "c"), 0);
	ck_assert_uint_eq(g_peers.count, 3);
	ck_assert_str_eq(g_peers.items[0], "tcp://a:1");
	ck_assert_str_eq(g_peers.items[1], "tcp://b:2");
	ck_assert_str_eq(g_peers.items[2], "c");
	conf_list_free(&g_peers);
	ck_assert_uint_eq(g_peers.count, 0);
	ck_assert_ptr_null(g_peers.items);
}
END_TEST

/* regression test: failed until conf_list_free frees the copy conf_parse splits the variable in
 * (common/conf.c, the xstrdup in the CONF_LIST environment branch): nothing
 * owns that copy, so valgrind reports it definitely lost and, in an ASan
 * build, LeakSanitizer makes this test exit early. */
START_TEST(test_list_env)
{
	setenv("KWSTEST_PEERS", "tcp://x:1,tcp://y:2,z", 1);
	ck_assert_int_eq(PARSE0(), 0);
	ck_assert_uint_eq(g_peers.count, 3);
	ck_assert_str_eq(g_peers.items[0], "tcp://x:1");
	ck_assert_str_eq(g_peers.items[1], "tcp://y:2");
	ck_assert_str_eq(g_peers.items[2], "z");
	/* The items do not point into the environment: changing it later does
	 * not change them. */
	setenv("KWSTEST_PEERS", "changed-changed-changed", 1);
	ck_assert_str_eq(g_peers.items[0], "tcp://x:1");
	conf_list_free(&g_peers);
	ck_assert_uint_eq(g_peers.count, 0);
}
END_TEST

START_TEST(test_list_flag_beats_env)
{
	setenv("KWSTEST_PEERS", "tcp://x:1,tcp://y:2", 1);
	ck_assert_int_eq(PARSE("--peer=only"), 0);
	ck_assert_uint_eq(g_peers.count, 1);
	ck_assert_str_eq(g_peers.items[0], "only");
}
END_TEST

/* ---- addresses (issue 14: errors a user meets) ---- */

/* Asserts that check(v) refuses v with a reason containing want. */
static void assert_refused(int (*check)(const char *, char *, size_t), const char *v,
			   const char *want)
{
	char why[256] = "";
	ck_assert_msg(check(v, why, sizeof why) < 0, "'%s' was accepted", v);
	ck_assert_msg(strstr(why, want) != NULL, "'%s': reason '%s' does not say '%s'", v, why,
		      want);
}

START_TEST(test_host_port_split)
{
	char host[64], why[200];
	long port = -1;
	ck_assert_int_eq(conf_parse_host_port("0.0.0.0:8080", true, host, sizeof host, &port, why,
					      sizeof why),
			 0);
	ck_assert_str_eq(host, "0.0.0.0");
	ck_assert_int_eq(port, 8080);
	ck_assert_int_eq(
		conf_parse_host_port("8081", false, host, sizeof host, &port, why, sizeof why), 0);
	ck_assert_str_eq(host, "");
	ck_assert_int_eq(port, 8081);
	ck_assert_int_eq(conf_parse_host_port("edges.kws.svc:1", true, host, sizeof host, &port,
					      why, sizeof why),
			 0);
	ck_assert_str_eq(host, "edges.kws.svc");
	ck_assert_int_eq(port, 1);
	ck_assert_int_eq(
		conf_parse_host_port("h:65535", true, host, sizeof host, &port, why, sizeof why),
		0);
	ck_assert_int_eq(port, 65535);
	/* A port alone where a host is needed. */
	ck_assert_int_lt(
		conf_parse_host_port("8080", true, host, sizeof host, &port, why, sizeof why), 0);
	ck_assert_msg(strstr(why, "HOST:PORT"), "%s", why);
	/* A host too long for the buffer is refused, not cut. */
	ck_assert_int_lt(conf_parse_host_port("abcdefgh:80", true, host, 8, &port, why, sizeof why),
			 0);
}
END_TEST

START_TEST(test_tcp_url_check)
{
	char why[256] = "";
	ck_assert_int_eq(conf_check_tcp_url("tcp://127.0.0.1:7101", why, sizeof why), 0);
	ck_assert_int_eq(conf_check_tcp_url("tcp://edge-0.edges.kws.svc:7100", why, sizeof why), 0);
	ck_assert_int_eq(conf_check_tcp_url("tcp://[::1]:7100", why, sizeof why), 0);
	/* host:port without the scheme: the message shows the URL meant. */
	assert_refused(conf_check_tcp_url, "127.0.0.1:7101",
		       "expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:7101");
	/* A bare port (the edge's --listen 7100). */
	assert_refused(conf_check_tcp_url, "7100", "e.g. tcp://0.0.0.0:7100");
	assert_refused(conf_check_tcp_url, "edge-1", "e.g. tcp://edge-1:7100");
	assert_refused(conf_check_tcp_url, "tcp://a:99999",
		       "the port 99999 is not within 1..65535");
	assert_refused(conf_check_tcp_url, "tcp://a:0", "not within 1..65535");
	assert_refused(conf_check_tcp_url, "tcp://a:1234567", "not within 1..65535");
	assert_refused(conf_check_tcp_url, "tcp://a:1 ", "blank");
	assert_refused(conf_check_tcp_url, " tcp://a:1", "blank");
	assert_refused(conf_check_tcp_url, "tcp://a:1\t", "blank");
	assert_refused(conf_check_tcp_url, "tcp://a:1,tcp://b:2", "comma");
	assert_refused(conf_check_tcp_url, "tcp://a", "expected tcp://HOST:PORT");
	assert_refused(conf_check_tcp_url, "tcp://:7100", "expected tcp://HOST:PORT");
	assert_refused(conf_check_tcp_url, "tcp://a:", "not a number");
	assert_refused(conf_check_tcp_url, "tcp://a:+80", "not a number");
	assert_refused(conf_check_tcp_url, "ws://a:80", "the scheme must be tcp://");
	assert_refused(conf_check_tcp_url, "", "empty");
}
END_TEST

START_TEST(test_listen_and_dns_checks)
{
	char why[256] = "";
	ck_assert_int_eq(conf_check_listen("8080", why, sizeof why), 0);
	ck_assert_int_eq(conf_check_listen("127.0.0.1:8080", why, sizeof why), 0);
	assert_refused(conf_check_listen, "99999", "not within 1..65535");
	assert_refused(conf_check_listen, "8080 ", "blank");
	assert_refused(conf_check_listen, ":8080", "no host");
	assert_refused(conf_check_listen, "", "not a number");
	assert_refused(conf_check_listen, "http://0.0.0.0:8080", "without a scheme");

	ck_assert_int_eq(conf_check_host_port("", why, sizeof why), 0); /* off */
	ck_assert_int_eq(conf_check_host_port("edges.kws.svc:7100", why, sizeof why), 0);
	assert_refused(conf_check_host_port, "edges.kws.svc", "HOST:PORT");
	assert_refused(conf_check_host_port, "tcp://edges:7100", "without a scheme");
	assert_refused(conf_check_host_port, "edges:70000", "not within 1..65535");
}
END_TEST

START_TEST(test_checked_settings_in_table)
{
	ck_assert_int_eq(PARSE_ADDR("--edges", "tcp://a:1", "--edges", "tcp://b:2"), 0);
	ck_assert_uint_eq(g_edges.count, 2);
	ck_assert_str_eq(g_listen, "0.0.0.0:8080"); /* defaults pass their check */
	ck_assert_str_eq(g_dns, "");
	ck_assert_str_eq(g_url, "tcp://0.0.0.0:7100");
	conf_list_free(&g_edges);

	/* Each refusal names the flag, its variable, the value and the fix. */
	ck_assert_int_eq(PARSE_ADDR("--edges", "127.0.0.1:7101"), -1);
	assert_err_has("--edges (KWSTEST_EDGES): '127.0.0.1:7101' from flag: expected "
		       "tcp://HOST:PORT, e.g. tcp://127.0.0.1:7101");
	ck_assert_int_eq(PARSE_ADDR("--url=7100"), -1);
	assert_err_has("--url (KWSTEST_URL): '7100' from flag: expected tcp://HOST:PORT");
	ck_assert_int_eq(PARSE_ADDR("--listen", "8080 "), -1);
	assert_err_has("--listen (KWSTEST_LISTEN): '8080 ' from flag");
	ck_assert_int_eq(PARSE_ADDR("--edges-dns", "edges"), -1);
	assert_err_has("--edges-dns (KWSTEST_EDGES_DNS)");
	setenv("KWSTEST_LISTEN", "0.0.0.0:99999", 1);
	ck_assert_int_eq(PARSE_ADDR0(), -1);
	assert_err_has("--listen (KWSTEST_LISTEN): '0.0.0.0:99999' from environment: the port "
		       "99999 is not within 1..65535");
}
END_TEST

/* regression test: failed until a checked list refused a flag value with a
 * comma: --edges "tcp://a:1,tcp://b:2" was one edge that never connected. */
START_TEST(test_list_flag_with_comma)
{
	ck_assert_int_eq(PARSE_ADDR("--edges", "tcp://a:1,tcp://b:2"), -1);
	assert_err_has("--edges (KWSTEST_EDGES): 'tcp://a:1,tcp://b:2' from flag holds a comma: "
		       "give --edges once per value, or set KWSTEST_EDGES to the "
		       "comma-separated list");
	/* The variable is the comma-separated form. */
	setenv("KWSTEST_EDGES", "tcp://a:1,tcp://b:2", 1);
	ck_assert_int_eq(PARSE_ADDR0(), 0);
	ck_assert_uint_eq(g_edges.count, 2);
	/* An unchecked list (e.g. librdkafka properties) keeps commas. */
	ck_assert_int_eq(PARSE("--peer", "bootstrap.servers=a:1,b:2"), 0);
	ck_assert_str_eq(g_peers.items[0], "bootstrap.servers=a:1,b:2");
}
END_TEST

START_TEST(test_list_env_blanks_and_checks)
{
	/* Blanks around the commas separate; empty items are skipped. */
	setenv("KWSTEST_EDGES", " tcp://a:1, tcp://b:2 ,,tcp://c:3 ", 1);
	ck_assert_int_eq(PARSE_ADDR0(), 0);
	ck_assert_uint_eq(g_edges.count, 3);
	ck_assert_str_eq(g_edges.items[0], "tcp://a:1");
	ck_assert_str_eq(g_edges.items[1], "tcp://b:2");
	ck_assert_str_eq(g_edges.items[2], "tcp://c:3");
	conf_list_free(&g_edges);
	/* Each item of the variable is checked. */
	setenv("KWSTEST_EDGES", "tcp://a:1,b:2", 1);
	ck_assert_int_eq(PARSE_ADDR0(), -1);
	assert_err_has("--edges (KWSTEST_EDGES): 'b:2' from environment: expected tcp://HOST:PORT, "
		       "e.g. tcp://b:2");
}
END_TEST

START_TEST(test_try_bind)
{
	char why[200] = "";
	/* A port someone listens on is reported in use. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	long port = ntohs(sa.sin_port);
	ck_assert_int_eq(conf_try_bind("127.0.0.1", port, why, sizeof why), -1);
	ck_assert_msg(strstr(why, "address in use"), "%s", why);
	ck_assert_int_eq(conf_try_bind("", port, why, sizeof why), -1); /* every address */
	ck_assert_int_eq(conf_try_bind("localhost", port, why, sizeof why), -1);
	close(fd);
	/* Free again (and the check itself leaves nothing bound). */
	ck_assert_int_eq(conf_try_bind("127.0.0.1", port, why, sizeof why), 0);
	ck_assert_int_eq(conf_try_bind("127.0.0.1", port, why, sizeof why), 0);
	/* An address this machine does not have. */
	ck_assert_int_eq(conf_try_bind("192.0.2.1", port, why, sizeof why), -1);
	ck_assert_msg(strstr(why, "assign"), "%s", why);
	/* A name that does not resolve (perhaps an interface): not checked. */
	ck_assert_int_eq(conf_try_bind("no-such-host.invalid", port, why, sizeof why), 0);
}
END_TEST

static Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *prec = tcase_create("precedence");
	TCase *types = tcase_create("types");
	TCase *errs = tcase_create("errors");
	TCase *help = tcase_create("help");
	TCase *list = tcase_create("list");
	TCase *all[] = { prec, types, errs, help, list };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		tcase_add_checked_fixture(all[i], setup, teardown);

	tcase_add_test(prec, test_defaults);
	tcase_add_test(prec, test_env_beats_default);
	tcase_add_test(prec, test_flag_beats_env);
	tcase_add_test(prec, test_bad_env_ignored_when_flag_given);
	tcase_add_test(prec, test_equals_and_separate_value);
	suite_add_tcase(s, prec);

	tcase_add_test(types, test_bool_bare_flag);
	tcase_add_test(types, test_bool_values);
	tcase_add_test(types, test_size_suffixes);
	tcase_add_test(types, test_size_rejects);
	tcase_add_test(types, test_size_rejects_negative_after_blank);
	tcase_add_test(types, test_size_in_table);
	tcase_add_test(types, test_choice);
	tcase_add_test(types, test_int_unbounded_and_bad);
	suite_add_tcase(s, types);

	tcase_add_test(errs, test_missing_value);
	tcase_add_test(errs, test_bool_bad);
	tcase_add_test(errs, test_size_range);
	tcase_add_test(errs, test_int_range);
	tcase_add_test(errs, test_required);
	tcase_add_test(errs, test_unknown_flag);
	tcase_add_test(errs, test_positional);
	suite_add_tcase(s, errs);

	tcase_add_test(help, test_help);
	tcase_add_test(help, test_help_wins_over_later_args);
	tcase_add_test(help, test_help_required);
	tcase_add_test(help, test_usage_direct);
	suite_add_tcase(s, help);

	tcase_add_test(list, test_list_flags);
	tcase_add_test(list, test_list_env);
	tcase_add_test(list, test_list_flag_beats_env);
	suite_add_tcase(s, list);

	TCase *addr = tcase_create("addresses");
	tcase_add_checked_fixture(addr, setup, teardown);
	tcase_add_test(addr, test_host_port_split);
	tcase_add_test(addr, test_tcp_url_check);
	tcase_add_test(addr, test_listen_and_dns_checks);
	tcase_add_test(addr, test_checked_settings_in_table);
	tcase_add_test(addr, test_list_flag_with_comma);
	tcase_add_test(addr, test_list_env_blanks_and_checks);
	tcase_add_test(addr, test_try_bind);
	suite_add_tcase(s, addr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
