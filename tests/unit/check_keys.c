/* Unit tests for router/keys.c: what a key file is (HMAC secret, PEM or DER
 * public key, refused certificates, private keys, small RSA, other curves),
 * key ids, directories, and loading errors. Uses the test-only keys in
 * tests/unit/keys (see its README); DER forms are made here with libcrypto. */
#include "keys.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testjwt.h"
#include "token.h"
#include "util.h"

static struct keys KS;
static char err[512];

static void teardown(void)
{
	keys_free(&KS);
}

/* Expects keys_add(path) to fail with code and an error holding want1 and
 * want2 (unless NULL). */
static void add_fails(const char *path, int code, const char *want1, const char *want2)
{
	int r;

	err[0] = '\0';
	r = keys_add(&KS, path, err, sizeof err);
	ck_assert_msg(r == code, "%s: got %d (%s), want %d", path, r, err, code);
	ck_assert_msg(strstr(err, want1) && (!want2 || strstr(err, want2)),
		      "error \"%s\" lacks \"%s\" / \"%s\"", err, want1, want2 ? want2 : "");
}

/* A temporary file holding data[0..n), named name inside a fresh directory
 * (so that the kid is name without extension). Returns its path. */
static char tmpdir[64];
static char tmpfile_path[256];

static const char *tmp_key(const char *name, const void *data, size_t n)
{
	FILE *f;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/check_keys.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(tmpfile_path, sizeof tmpfile_path, "%s/%s", tmpdir, name);
	f = fopen(tmpfile_path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	fclose(f);
	return tmpfile_path;
}

static void tmp_gone(void)
{
	unlink(tmpfile_path);
	rmdir(tmpdir);
}

/* The DER of a PEM test file: its public key (what = 'p'), certificate
 * ('c') or private key ('k'). */
static unsigned char *der_of(const char *rel, char what, size_t *n)
{
	size_t len;
	unsigned char *pem = tj_slurp(rel, &len), *der = NULL;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	int r = -1;

	if (what == 'c') {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

		ck_assert_ptr_nonnull(x);
		r = i2d_X509(x, &der);
		X509_free(x);
	} else {
		EVP_PKEY *pk = what == 'p' ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)
					   : PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);

		ck_assert_ptr_nonnull(pk);
		r = what == 'p' ? i2d_PUBKEY(pk, &der) : i2d_PrivateKey(pk, &der);
		EVP_PKEY_free(pk);
	}
	ck_assert_int_gt(r, 0);
	BIO_free(bio);
	free(pem);
	*n = (size_t)r;
	return der;
}

/* ---- loading --------------------------------------------------------- */

START_TEST(directory_in_name_order)
{
	static const struct {
		const char *kid;
		enum keys_type type;
	} want[] = {
		{ "ec-a", KEYS_EC },   { "hs-a", KEYS_HMAC }, { "hs-b", KEYS_HMAC },
		{ "rsa-a", KEYS_RSA }, { "rsa-b", KEYS_RSA },
	};
	size_t len;
	unsigned char *secret = tj_slurp("verify/hs-a.secret", &len), *pem;

	ck_assert_int_eq(keys_add(&KS, tj_path("verify"), err, sizeof err), 0);
	ck_assert_uint_eq(KS.n, 5);
	for (size_t i = 0; i < KS.n; i++) {
		ck_assert_str_eq(KS.v[i].kid, want[i].kid);
		ck_assert_int_eq(KS.v[i].type, want[i].type);
		ck_assert_ptr_nonnull(strstr(KS.v[i].file, want[i].kid));
	}
	/* A secret is kept byte for byte; a public key as the PEM of
	 * `openssl pkey -pubout`, which is what the file holds. */
	ck_assert_uint_eq(KS.v[1].len, len);
	ck_assert_mem_eq(KS.v[1].data, secret, len);
	free(secret);
	pem = tj_slurp("verify/rsa-a.pem", &len);
	ck_assert_uint_eq(KS.v[3].len, len);
	ck_assert_mem_eq(KS.v[3].data, pem, len);
	free(pem);
	ck_assert_str_eq(keys_type_name(KEYS_EC), "EC");
	ck_assert_str_eq(keys_type_name(KEYS_HMAC), "HMAC");
	ck_assert_str_eq(keys_type_name(KEYS_RSA), "RSA");
}
END_TEST

START_TEST(kid_from_file_name)
{
	static const char secret[] = "0123456789abcdef0123456789abcdef";

	ck_assert_int_eq(keys_add(&KS, tmp_key("2024-06.v2.secret", secret, 32), err, sizeof err),
			 0);
	ck_assert_str_eq(KS.v[0].kid, "2024-06.v2");
	tmp_gone();
	ck_assert_int_eq(keys_add(&KS, tmp_key("plain", secret, 32), err, sizeof err), 0);
	ck_assert_str_eq(KS.v[1].kid, "plain");
	tmp_gone();
	/* The same kid again, from another directory. */
	add_fails(tmp_key("plain.key", secret, 32), -EEXIST, "same key id \"plain\"", NULL);
	tmp_gone();
	ck_assert_uint_eq(KS.n, 2);
}
END_TEST

/* ---- what a file is -------------------------------------------------- */

START_TEST(der_public_keys)
{
	size_t n, pemlen, outlen;
	unsigned char *der, *pem, *out = NULL;
	enum keys_type type;
	char why[192] = "";
	char *tok;
	json_t *claims = NULL;
	struct token_rules rules = { .leeway_s = 30 };

	/* A DER public key is the same key as its PEM. */
	der = der_of("verify/rsa-a.pem", 'p', &n);
	ck_assert_int_eq(keys_parse(der, n, &type, &out, &outlen, why, sizeof why), 0);
	ck_assert_int_eq(type, KEYS_RSA);
	pem = tj_slurp("verify/rsa-a.pem", &pemlen);
	ck_assert_uint_eq(outlen, pemlen);
	ck_assert_mem_eq(out, pem, pemlen);
	free(pem);
	free(out);
	/* Loaded from a file, it verifies what the private key signed. */
	ck_assert_int_eq(keys_add(&KS, tmp_key("rsa-der.der", der, n), err, sizeof err), 0);
	tmp_gone();
	OPENSSL_free(der);
	tok = tj_sign_kid("rsa-a", "rsa-der", tj_claims(""));
	ck_assert_int_eq(
		token_verify(&KS, &rules, tok, strlen(tok), TJ_NOW, &claims, why, sizeof why), 0);
	ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "user-42");
	json_decref(claims);
	free(tok);
	/* EC too. */
	der = der_of("verify/ec-a.pem", 'p', &n);
	ck_assert_int_eq(keys_parse(der, n, &type, &out, &outlen, why, sizeof why), 0);
	ck_assert_int_eq(type, KEYS_EC);
	free(out);
	/* A DER key with a byte more (a newline, say) is not a secret
	 * either: its bytes are public. */
	{
		unsigned char *more = xmalloc(n + 1);

		memcpy(more, der, n);
		more[n] = '\n';
		ck_assert_int_eq(keys_parse(more, n + 1, &type, &out, &outlen, why, sizeof why),
				 -EINVAL);
		ck_assert_str_eq(why, "a DER public key followed by 1 stray byte");
		free(more);
	}
	OPENSSL_free(der);
}
END_TEST

START_TEST(der_refused)
{
	static const struct {
		const char *file;
		char what;
		const char *why;
	} bad[] = {
		{ "bad/rsa-1024.pem", 'p', "RSA key of 1024 bits; RS256 needs at least 2048" },
		{ "bad/ec-p384.pem", 'p', "not on curve P-256" },
		{ "bad/cert.pem", 'c', "DER certificate" },
		{ "bad/private.pem", 'k', "DER private key" },
		{ "sign/ec-a.pem", 'k', "DER private key" },
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t n, outlen;
		unsigned char *der = der_of(bad[i].file, bad[i].what, &n), *out = NULL;
		enum keys_type type;
		char why[192] = "";

		/* Each is longer than an HMAC secret needs: without the DER
		 * check its public bytes would become a secret. */
		ck_assert_uint_ge(n, KEYS_HMAC_MIN_BYTES);
		ck_assert_int_eq(keys_parse(der, n, &type, &out, &outlen, why, sizeof why),
				 -EINVAL);
		ck_assert_msg(strstr(why, bad[i].why), "%s: \"%s\" lacks \"%s\"", bad[i].file, why,
			      bad[i].why);
		ck_assert_ptr_null(out);
		OPENSSL_free(der);
	}
}
END_TEST

START_TEST(secrets_and_pem_edges)
{
	static const char pem_junk[] = "\n  -----BEGIN PUBLIC KEY-----\nMII*not base64*\n"
				       "-----END PUBLIC KEY-----\n";
	static const char pem_rsa_private[] = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n";
	static const char pem_empty[] = "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n";
	static const char pem_not_spki[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n"
					   "-----END PUBLIC KEY-----\n";
	unsigned char secret[KEYS_HMAC_MIN_BYTES], *out = NULL;
	size_t outlen = 0;
	enum keys_type type;
	char why[192] = "";

	memset(secret, 0x30, sizeof secret);
	ck_assert_int_eq(keys_parse(secret, sizeof secret, &type, &out, &outlen, why, sizeof why),
			 0);
	ck_assert_int_eq(type, KEYS_HMAC);
	ck_assert_uint_eq(outlen, sizeof secret);
	ck_assert_mem_eq(out, secret, sizeof secret);
	free(out);
	out = NULL;
	ck_assert_int_eq(
		keys_parse(secret, sizeof secret - 1, &type, &out, &outlen, why, sizeof why),
		-EINVAL);
	ck_assert_str_eq(why, "HMAC secret of 31 bytes; HS256 needs at least 32");
	ck_assert_int_eq(keys_parse((const unsigned char *)pem_junk, sizeof pem_junk - 1, &type,
				    &out, &outlen, why, sizeof why),
			 -EINVAL);
	ck_assert_str_eq(why, "bad base64 in PEM");
	ck_assert_int_eq(keys_parse((const unsigned char *)pem_empty, sizeof pem_empty - 1, &type,
				    &out, &outlen, why, sizeof why),
			 -EINVAL);
	ck_assert_str_eq(why, "malformed PEM");
	ck_assert_int_eq(keys_parse((const unsigned char *)pem_not_spki, sizeof pem_not_spki - 1,
				    &type, &out, &outlen, why, sizeof why),
			 -EINVAL);
	ck_assert_str_eq(why, "malformed public key");
	ck_assert_int_eq(keys_parse((const unsigned char *)pem_rsa_private,
				    sizeof pem_rsa_private - 1, &type, &out, &outlen, why,
				    sizeof why),
			 -EINVAL);
	ck_assert_str_eq(why, "PEM but not a public key (it holds \"RSA PRIVATE KEY\"; want "
			      "-----BEGIN PUBLIC KEY-----, as `openssl pkey -pubout` writes)");
	ck_assert_ptr_null(out);
}
END_TEST

/* ---- errors ---------------------------------------------------------- */

START_TEST(bad_key_files)
{
	static const struct {
		const char *file, *why;
		int code;
	} bad[] = {
		{ "bad/rsa-1024.pem", "RSA key of 1024 bits; RS256 needs at least 2048", -EINVAL },
		{ "bad/ec-p384.pem", "not on curve P-256", -EINVAL },
		{ "bad/private.pem", "PEM but not a public key", -EINVAL },
		{ "bad/cert.pem", "PEM but not a public key", -EINVAL },
		{ "bad/truncated.pem", "PEM without -----END PUBLIC KEY-----", -EINVAL },
		{ "bad/short.secret", "HMAC secret of 16 bytes; HS256 needs at least 32", -EINVAL },
		{ "bad/missing.pem", "No such file or directory", -ENOENT },
		{ "other", "PEM but not a public key",
		  -EINVAL }, /* other/ec-x.key, a private key */
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		add_fails(tj_path(bad[i].file), bad[i].code, bad[i].file, bad[i].why);
		keys_free(&KS);
	}
	/* Duplicate kids across the list. */
	ck_assert_int_eq(keys_add(&KS, tj_path("verify"), err, sizeof err), 0);
	add_fails(tj_path("verify/hs-a.secret"), -EEXIST, "same key id \"hs-a\"", NULL);
	ck_assert_uint_eq(KS.n, 5);
	keys_free(&KS);
	ck_assert_uint_eq(KS.n, 0);
	keys_free(&KS);
	/* A directory without key files (only a dot file). */
	{
		char dir[] = "/tmp/check_keys.XXXXXX", *dot;

		ck_assert_ptr_nonnull(mkdtemp(dir));
		if (asprintf(&dot, "%s/.x", dir) < 0)
			abort();
		fclose(fopen(dot, "w"));
		add_fails(dir, -ENOENT, "has no key files", dir);
		unlink(dot);
		free(dot);
		rmdir(dir);
	}
	/* An empty file and an oversized one. */
	{
		char f[] = "/tmp/check_keys.XXXXXX";
		int fd = mkstemp(f);
		char *junk = xcalloc(1, 70000);

		ck_assert_int_ge(fd, 0);
		add_fails(f, -EINVAL, f, "empty");
		ck_assert_int_eq(write(fd, junk, 70000), 70000);
		add_fails(f, -EINVAL, f, "over 65536 bytes");
		close(fd);
		unlink(f);
		free(junk);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("keys");
	SRunner *sr;
	int failed;

	tj_find_keys("check_keys");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, directory_in_name_order);
	tcase_add_test(tc, kid_from_file_name);
	tcase_add_test(tc, der_public_keys);
	tcase_add_test(tc, der_refused);
	tcase_add_test(tc, secrets_and_pem_edges);
	tcase_add_test(tc, bad_key_files);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
