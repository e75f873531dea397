/*
 * check_linkauth: unit tests of common/linkauth.c: known-answer tests of both
 * proofs, that every input changes a proof, domain separation, the
 * constant-time check, nonces, and loading the secret from a file or an
 * environment variable.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linkauth.h"

/*
 * Known answers, computed independently of linkauth.c with Python's hmac
 * module (and the first cross-checked with `openssl dgst -sha256 -hmac
 * 0123456789abcdef` over the same bytes written to a file):
 *
 *   import hmac, hashlib
 *   key = b"0123456789abcdef"
 *   ne, nr = bytes(range(0, 16)), bytes(range(16, 32))
 *   H = lambda m: hmac.new(key, m, hashlib.sha256).hexdigest()
 *   H(b"kws-router-v1" + ne + nr + b"r1")                          # ROUTER
 *   H(b"kws-router-v1" + ne + nr)                                  # ROUTER_NOID
 *   H(b"kws-edge-v1" + nr + ne + b"e1" + (1).to_bytes(8, "big"))   # EDGE_1
 *   H(b"kws-edge-v1" + nr + ne + b"e1"
 *     + (0x0102030405060708).to_bytes(8, "big"))                   # EDGE_BIG
 *
 * These are also the vectors of PROTOCOL.md, "Authentication".
 */
static const char KEY[] = "0123456789abcdef";
static const char ROUTER[] = "b37da07d7e4438277d4e6fe7eb6b9779664d3da0d7bba59f989d438577f040f7";
static const char ROUTER_NOID[] =
	"6ca0d2e1fe27bf9c947b0dcc03f1b126f3aa1107732f94ebe85aa85e15404777";
static const char EDGE_1[] = "89fa7db3a2fd5d3a8f597ed34d2baa01ef616b77876c7198a2fe6e5ea7cf86b1";
static const char EDGE_BIG[] = "a2c4f6c845d755b701783c9fae7bb7c49eb16bd9d14e2ff170eb2c90035df553";

static uint8_t ne[LINKAUTH_NONCE], nr[LINKAUTH_NONCE];
static struct linkauth_secret key;
static char tmpdir[64];

static void unhex(const char *hex, uint8_t out[LINKAUTH_MAC])
{
	ck_assert_uint_eq(strlen(hex), 2 * LINKAUTH_MAC);
	for (int i = 0; i < LINKAUTH_MAC; i++) {
		unsigned v;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void setup(void)
{
	for (int i = 0; i < LINKAUTH_NONCE; i++) {
		ne[i] = (uint8_t)i;
		nr[i] = (uint8_t)(16 + i);
	}
	key.len = strlen(KEY);
	key.key = malloc(key.len);
	memcpy(key.key, KEY, key.len);
	strcpy(tmpdir, "/tmp/check_linkauth.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];

	linkauth_secret_free(&key);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* Proofs. */

START_TEST(kat_router)
{
	uint8_t got[LINKAUTH_MAC], want[LINKAUTH_MAC];

	linkauth_router_proof(&key, ne, nr, "r1", 2, got);
	unhex(ROUTER, want);
	ck_assert_mem_eq(got, want, LINKAUTH_MAC);
	ck_assert(linkauth_check(got, sizeof(got), want));

	/* an empty router_id (allowed on the wire); the pointer is not read */
	linkauth_router_proof(&key, ne, nr, NULL, 0, got);
	unhex(ROUTER_NOID, want);
	ck_assert_mem_eq(got, want, LINKAUTH_MAC);
}
END_TEST

START_TEST(kat_edge)
{
	uint8_t got[LINKAUTH_MAC], want[LINKAUTH_MAC];

	linkauth_edge_proof(&key, nr, ne, "e1", 2, 1, got);
	unhex(EDGE_1, want);
	ck_assert_mem_eq(got, want, LINKAUTH_MAC);

	/* hello_seq is big-endian */
	linkauth_edge_proof(&key, nr, ne, "e1", 2, 0x0102030405060708ull, got);
	unhex(EDGE_BIG, want);
	ck_assert_mem_eq(got, want, LINKAUTH_MAC);
}
END_TEST

/* The proofs of the inputs below, one per change of one input. */
enum { P_BASE, P_NE, P_NR, P_SWAP, P_ID, P_IDLEN, P_SEQ, P_KEY, P_KEYLEN, NPROOFS };

static void proofs(bool edge, uint8_t out[NPROOFS][LINKAUTH_MAC])
{
	struct linkauth_secret other = { (uint8_t *)"0123456789abcdeg", 16 };
	struct linkauth_secret longer = { (uint8_t *)"0123456789abcdef0", 17 };
	uint8_t ne2[LINKAUTH_NONCE], nr2[LINKAUTH_NONCE];

	memcpy(ne2, ne, sizeof(ne));
	memcpy(nr2, nr, sizeof(nr));
	ne2[15] ^= 0x80;
	nr2[0] ^= 0x01;
#define P(i, s, a, b, id, len, seq)                                         \
	do {                                                                \
		if (edge)                                                   \
			linkauth_edge_proof(s, a, b, id, len, seq, out[i]); \
		else                                                        \
			linkauth_router_proof(s, b, a, id, len, out[i]);    \
	} while (0)
	/* (router proofs take edge_nonce first: a is nr, b is ne for both) */
	P(P_BASE, &key, nr, ne, "id-1", 4, 7);
	P(P_NE, &key, nr, ne2, "id-1", 4, 7);
	P(P_NR, &key, nr2, ne, "id-1", 4, 7);
	P(P_SWAP, &key, ne, nr, "id-1", 4, 7);
	P(P_ID, &key, nr, ne, "id-2", 4, 7);
	P(P_IDLEN, &key, nr, ne, "id-1", 3, 7);
	P(P_SEQ, &key, nr, ne, "id-1", 4, edge ? 8 : 7);
	P(P_KEY, &other, nr, ne, "id-1", 4, 7);
	P(P_KEYLEN, &longer, nr, ne, "id-1", 4, 7);
#undef P
}

START_TEST(every_input_counts)
{
	/* Changing any one input (a nonce, their order, the id, its length,
	 * hello_seq, the secret) changes the proof; the same inputs give the
	 * same proof. */
	uint8_t p[NPROOFS][LINKAUTH_MAC], again[NPROOFS][LINKAUTH_MAC];
	bool edge = _i;

	proofs(edge, p);
	proofs(edge, again);
	ck_assert_mem_eq(p, again, sizeof(p));
	for (int i = 0; i < NPROOFS; i++) {
		for (int j = 0; j < i; j++) {
			if (!edge && (i == P_SEQ || j == P_SEQ) && (i == P_BASE || j == P_BASE))
				continue; /* the router proof has no hello_seq */
			ck_assert_msg(memcmp(p[i], p[j], LINKAUTH_MAC) != 0,
				      "%s proofs %d and %d are equal", edge ? "edge" : "router", i,
				      j);
		}
	}
}
END_TEST

START_TEST(domain_separation)
{
	/* The same nonces (in either order) and id give different router and
	 * edge proofs, whatever hello_seq, so neither can stand for the other
	 * (a reflected proof fails). Also when the router's id is the edge's id
	 * with the 8 bytes of hello_seq appended, i.e. the same bytes after the
	 * label. */
	static const char id_seq[] = "e1\0\0\0\0\0\0\0\x01";
	uint8_t r[LINKAUTH_MAC], e[LINKAUTH_MAC];

	linkauth_router_proof(&key, ne, nr, "e1", 2, r);
	for (uint64_t seq = 0; seq < 4; seq++) {
		linkauth_edge_proof(&key, nr, ne, "e1", 2, seq, e);
		ck_assert(memcmp(r, e, LINKAUTH_MAC) != 0);
		linkauth_edge_proof(&key, ne, nr, "e1", 2, seq, e);
		ck_assert(memcmp(r, e, LINKAUTH_MAC) != 0);
	}
	linkauth_router_proof(&key, nr, ne, id_seq, 10, r);
	linkauth_edge_proof(&key, nr, ne, "e1", 2, 1, e);
	ck_assert(memcmp(r, e, LINKAUTH_MAC) != 0);
	ck_assert(!linkauth_check(r, sizeof(r), e));
}
END_TEST

START_TEST(check)
{
	uint8_t want[LINKAUTH_MAC], got[LINKAUTH_MAC + 1];

	unhex(ROUTER, want);
	memcpy(got, want, LINKAUTH_MAC);
	got[LINKAUTH_MAC] = 0;
	ck_assert(linkauth_check(got, LINKAUTH_MAC, want));
	/* the wrong length, even with the right bytes in front */
	ck_assert(!linkauth_check(got, LINKAUTH_MAC - 1, want));
	ck_assert(!linkauth_check(got, LINKAUTH_MAC + 1, want));
	ck_assert(!linkauth_check(got, 0, want));
	ck_assert(!linkauth_check(NULL, 0, want));
	ck_assert(!linkauth_check(NULL, LINKAUTH_MAC, want));
	/* every single flipped bit */
	for (int bit = 0; bit < 8 * LINKAUTH_MAC; bit++) {
		got[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_msg(!linkauth_check(got, LINKAUTH_MAC, want), "bit %d", bit);
		got[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	ck_assert(linkauth_check(got, LINKAUTH_MAC, want));
}
END_TEST

START_TEST(nonce)
{
	static const uint8_t zero[LINKAUTH_NONCE];
	uint8_t a[LINKAUTH_NONCE + 1], b[LINKAUTH_NONCE];

	a[LINKAUTH_NONCE] = 0xa5;
	linkauth_nonce(a);
	linkauth_nonce(b);
	ck_assert_uint_eq(a[LINKAUTH_NONCE], 0xa5); /* writes exactly 16 bytes */
	ck_assert(memcmp(a, b, LINKAUTH_NONCE) != 0);
	ck_assert(memcmp(a, zero, LINKAUTH_NONCE) != 0);
}
END_TEST

START_TEST(proof_without_secret_aborts)
{
	/* Making a proof with no secret is a programming error: it aborts
	 * rather than MAC with an empty key. Run in a child of our own, so that
	 * it works without Check's fork mode (under valgrind) too. */
	struct linkauth_secret none = { 0 };
	uint8_t out[LINKAUTH_MAC];
	int status = 0;
	pid_t pid;

	ck_assert(!linkauth_enabled(&none));
	ck_assert(!linkauth_enabled(NULL));
	ck_assert(linkauth_enabled(&key));
	for (int edge = 0; edge <= 1; edge++) {
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int fd = open("/dev/null", O_WRONLY);

			if (fd >= 0)
				dup2(fd, 2);
			if (edge)
				linkauth_edge_proof(&none, nr, ne, "e", 1, 1, out);
			else
				linkauth_router_proof(&none, ne, nr, "r", 1, out);
			_exit(0);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFSIGNALED(status));
		ck_assert_int_eq(WTERMSIG(status), SIGABRT);
	}
}
END_TEST

/* Loading the secret. */

/* Writes n bytes to tmpdir/name; returns "file:" + its path (static). */
static const char *secret_file(const char *name, const void *p, size_t n)
{
	static char spec[256];
	FILE *f;

	snprintf(spec, sizeof(spec), "file:%s/%s", tmpdir, name);
	f = fopen(spec + 5, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
	return spec;
}

/* Loads spec, which must succeed with exactly the secret want[0..n). */
static void load_ok(const char *spec, const void *want, size_t n)
{
	struct linkauth_secret s;
	char err[256] = "";

	memset(&s, 0x5a, sizeof(s));
	ck_assert_msg(linkauth_load_secret(spec, &s, err, sizeof(err)) == 0, "%s: %s", spec, err);
	ck_assert(linkauth_enabled(&s));
	ck_assert_uint_eq(s.len, n);
	ck_assert_mem_eq(s.key, want, n);
	linkauth_secret_free(&s);
	ck_assert(!linkauth_enabled(&s));
	ck_assert_ptr_null(s.key);
	linkauth_secret_free(&s); /* idempotent */
}

/* Loads spec, which must fail with -want_errno and a message containing
 * `names`; *out is "none" then. */
static void load_err(const char *spec, int want_errno, const char *names)
{
	struct linkauth_secret s;
	char err[512] = "";

	memset(&s, 0x5a, sizeof(s));
	ck_assert_int_eq(linkauth_load_secret(spec, &s, err, sizeof(err)), -want_errno);
	ck_assert(!linkauth_enabled(&s));
	ck_assert_ptr_null(s.key);
	ck_assert_msg(strstr(err, names) != NULL, "\"%s\" does not name \"%s\"", err, names);
	linkauth_secret_free(&s);
}

START_TEST(load_none)
{
	struct linkauth_secret s;
	char err[64] = "";

	memset(&s, 0x5a, sizeof(s));
	ck_assert_int_eq(linkauth_load_secret("", &s, err, sizeof(err)), 0);
	ck_assert(!linkauth_enabled(&s));
	ck_assert_ptr_null(s.key);
	memset(&s, 0x5a, sizeof(s));
	ck_assert_int_eq(linkauth_load_secret(NULL, &s, err, sizeof(err)), 0);
	ck_assert(!linkauth_enabled(&s));
	linkauth_secret_free(&s);
	linkauth_secret_free(NULL);
}
END_TEST

START_TEST(load_file)
{
	static const char bin[] = "\0\x01\x02\n\xff secret with a NUL\r";
	char *big = malloc(LINKAUTH_MAX_SECRET + 2);
	struct linkauth_secret s;
	uint8_t got[LINKAUTH_MAC], want[LINKAUTH_MAC];
	char err[256];
	const char *spec;

	/* exactly 16 bytes, with and without the trailing newline */
	load_ok(secret_file("plain", KEY, 16), KEY, 16);
	load_ok(secret_file("nl", "0123456789abcdef\n", 17), KEY, 16);
	/* only one newline is stripped; "\r" is kept (it is a byte like any other) */
	load_ok(secret_file("nlnl", "0123456789abcdef\n\n", 18), "0123456789abcdef\n", 17);
	load_ok(secret_file("crlf", "0123456789abcdef\r\n", 18), "0123456789abcdef\r", 17);
	/* any bytes */
	load_ok(secret_file("bin", bin, sizeof(bin) - 1), bin, sizeof(bin) - 1);
	/* the largest, also with its newline */
	memset(big, 'x', LINKAUTH_MAX_SECRET + 1);
	load_ok(secret_file("max", big, LINKAUTH_MAX_SECRET), big, LINKAUTH_MAX_SECRET);
	big[LINKAUTH_MAX_SECRET] = '\n';
	load_ok(secret_file("maxnl", big, LINKAUTH_MAX_SECRET + 1), big, LINKAUTH_MAX_SECRET);

	/* a secret from a file gives the known answer */
	spec = secret_file("kat", "0123456789abcdef\n", 17);
	ck_assert_int_eq(linkauth_load_secret(spec, &s, err, sizeof(err)), 0);
	linkauth_router_proof(&s, ne, nr, "r1", 2, got);
	unhex(ROUTER, want);
	ck_assert_mem_eq(got, want, LINKAUTH_MAC);
	linkauth_secret_free(&s);

	/* too short: 15 bytes, also once the newline is stripped; empty */
	load_err(secret_file("short", KEY, 15), EINVAL, "/short");
	load_err(secret_file("shortnl", "0123456789abcde\n", 16), EINVAL, "/shortnl");
	load_err(secret_file("empty", "", 0), EINVAL, "/empty");
	load_err(secret_file("nlonly", "\n", 1), EINVAL, "/nlonly");
	/* too long */
	big[LINKAUTH_MAX_SECRET] = 'x';
	load_err(secret_file("long", big, LINKAUTH_MAX_SECRET + 1), EINVAL, "/long");
	big[LINKAUTH_MAX_SECRET + 1] = '\n';
	load_err(secret_file("longnl", big, LINKAUTH_MAX_SECRET + 2), EINVAL, "/longnl");
	load_err("file:/dev/zero", EINVAL, "/dev/zero");
	/* missing, a directory, no path */
	load_err("file:/nonexistent/kws-secret", ENOENT, "/nonexistent/kws-secret");
	load_err("file:/", EISDIR, "file /");
	load_err("file:", EINVAL, "file:PATH");
	free(big);
}
END_TEST

START_TEST(load_env)
{
	static const char name[] = "CHECK_LINKAUTH_SECRET";
	struct linkauth_secret s;
	char err[256];

	ck_assert_int_eq(setenv(name, KEY, 1), 0);
	load_ok("env:CHECK_LINKAUTH_SECRET", KEY, 16);
	ck_assert_int_eq(setenv(name, "0123456789abcdef\n", 1), 0);
	load_ok("env:CHECK_LINKAUTH_SECRET", KEY, 16);
	ck_assert_int_eq(linkauth_load_secret("env:CHECK_LINKAUTH_SECRET", &s, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(s.len, 16);
	linkauth_secret_free(&s);

	ck_assert_int_eq(setenv(name, "0123456789abcde", 1), 0);
	load_err("env:CHECK_LINKAUTH_SECRET", EINVAL, name);
	ck_assert_int_eq(setenv(name, "", 1), 0);
	load_err("env:CHECK_LINKAUTH_SECRET", EINVAL, name);
	ck_assert_int_eq(unsetenv(name), 0);
	load_err("env:CHECK_LINKAUTH_SECRET", ENOENT, name);
	load_err("env:", EINVAL, "env:NAME");
}
END_TEST

START_TEST(load_bad_spec)
{
	/* Anything else is refused, and the message does not repeat it: it may
	 * be the secret itself, put there by mistake. */
	static const char *const bad[] = {
		"0123456789abcdef-the-secret", "File:/etc/x", "files:/x", "ENV:X",
		"value:0123456789abcdef",      " file:/x",    "secret:x",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct linkauth_secret s;
		char err[256] = "";

		ck_assert_int_eq(linkauth_load_secret(bad[i], &s, err, sizeof(err)), -EINVAL);
		ck_assert(!linkauth_enabled(&s));
		ck_assert(strstr(err, bad[i]) == NULL);
		ck_assert(err[0] != '\0');
	}
}
END_TEST

static Suite *linkauth_suite(void)
{
	Suite *s = suite_create("linkauth");
	TCase *tc;

	tc = tcase_create("proofs");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, kat_router);
	tcase_add_test(tc, kat_edge);
	tcase_add_loop_test(tc, every_input_counts, 0, 2);
	tcase_add_test(tc, domain_separation);
	tcase_add_test(tc, check);
	tcase_add_test(tc, nonce);
	tcase_add_test(tc, proof_without_secret_aborts);
	suite_add_tcase(s, tc);

	tc = tcase_create("secret");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, load_none);
	tcase_add_test(tc, load_file);
	tcase_add_test(tc, load_env);
	tcase_add_test(tc, load_bad_spec);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(linkauth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
