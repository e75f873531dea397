/* linkauth: see linkauth.h and PROTOCOL.md, "Authentication". */
#include "linkauth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util.h"
#include "wire.h"

_Static_assert(LINKAUTH_NONCE == WIRE_NONCE_BYTES, "nonce size differs from the wire's");
_Static_assert(LINKAUTH_MAC == WIRE_AUTH_BYTES, "proof size differs from the wire's");

/* Domain-separation labels: the ASCII bytes, no terminator. They differ at
 * byte 4 ('r' against 'e'), so no input of one proof is an input of the
 * other. */
static const char router_label[] = "kws-router-v1";
static const char edge_label[] = "kws-edge-v1";

/* Keeps s[0..n) (less one trailing "\n") as the secret in *out, or fails
 * with a message naming `what` (e.g. "file /run/secret"). */
static int take_secret(const char *what, const char *s, size_t n, struct linkauth_secret *out,
		       char *err, size_t errlen)
{
	if (n > 0 && s[n - 1] == '\n')
		n--;
	if (n < LINKAUTH_MIN_SECRET || n > LINKAUTH_MAX_SECRET) {
		snprintf(err, errlen, "link secret from %s: %zu bytes, must be %d..%d", what, n,
			 LINKAUTH_MIN_SECRET, LINKAUTH_MAX_SECRET);
		return -EINVAL;
	}
	out->key = xmalloc(n);
	memcpy(out->key, s, n);
	out->len = n;
	return 0;
}

/* Reads the secret file at path into *out. */
static int load_file(const char *path, struct linkauth_secret *out, char *err, size_t errlen)
{
	/* One byte for a trailing newline, one to notice a file too long. */
	char buf[LINKAUTH_MAX_SECRET + 2];
	char what[64 + 4096];
	size_t n = 0;
	ssize_t r;
	int fd, rc;

	snprintf(what, sizeof(what), "file %s", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "link secret %s: %s", what, strerror(-rc));
		return rc;
	}
	while (n < sizeof(buf)) {
		r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "link secret %s: %s", what, strerror(-rc));
			goto out_close;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	rc = take_secret(what, buf, n, out, err, errlen);
out_close:
	close(fd);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

int linkauth_load_secret(const char *spec, struct linkauth_secret *out, char *err, size_t errlen)
{
	char what[64 + 256];
	const char *v;

	memset(out, 0, sizeof(*out));
	if (!spec || !*spec)
		return 0;
	if (strncmp(spec, "file:", 5) == 0 && spec[5])
		return load_file(spec + 5, out, err, errlen);
	if (strncmp(spec, "env:", 4) == 0 && spec[4]) {
		snprintf(what, sizeof(what), "environment variable %.256s", spec + 4);
		v = getenv(spec + 4);
		if (!v) {
			snprintf(err, errlen, "link secret from %s: not set", what);
			return -ENOENT;
		}
		return take_secret(what, v, strlen(v), out, err, errlen);
	}
	/* Not quoted: it may be the secret itself, given by mistake. */
	snprintf(err, errlen,
		 "link secret: expected \"file:PATH\" or \"env:NAME\" "
		 "(the secret itself is never given as a value)");
	return -EINVAL;
}

void linkauth_secret_free(struct linkauth_secret *s)
{
	if (!s)
		return;
	if (s->key) {
		OPENSSL_cleanse(s->key, s->len);
		free(s->key);
	}
	s->key = NULL;
	s->len = 0;
}

bool linkauth_enabled(const struct linkauth_secret *s)
{
	return s && s->len > 0;
}

void linkauth_nonce(uint8_t out[LINKAUTH_NONCE])
{
	size_t n = 0;
	ssize_t r;

	while (n < LINKAUTH_NONCE) {
		r = getrandom(out + n, LINKAUTH_NONCE - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "fatal: getrandom failed\n");
			abort();
		}
		n += (size_t)r;
	}
}

/* out = HMAC-SHA256(key, label || a || b || id[0..len) || tail[0..ntail)). */
static void proof(const struct linkauth_secret *s, const char *label, const uint8_t *a,
		  const uint8_t *b, const char *id, size_t len, const uint8_t *tail, size_t ntail,
		  uint8_t out[LINKAUTH_MAC])
{
	size_t nlabel = strlen(label);
	size_t n = nlabel + 2 * LINKAUTH_NONCE + len + ntail;
	unsigned char *msg, *p;
	unsigned int outlen = 0;

	if (!linkauth_enabled(s)) {
		/* A programming error: never make a proof with an empty key. */
		fprintf(stderr, "fatal: linkauth proof without a secret\n");
		abort();
	}
	p = msg = xmalloc(n);
	memcpy(p, label, nlabel);
	p += nlabel;
	memcpy(p, a, LINKAUTH_NONCE);
	p += LINKAUTH_NONCE;
	memcpy(p, b, LINKAUTH_NONCE);
	p += LINKAUTH_NONCE;
	if (len)
		memcpy(p, id, len);
	p += len;
	if (ntail)
		memcpy(p, tail, ntail);
	if (!HMAC(EVP_sha256(), s->key, (int)s->len, msg, n, out, &outlen) ||
	    outlen != LINKAUTH_MAC) {
		/* Not something a peer can cause (libcrypto is broken). */
		fprintf(stderr, "fatal: HMAC-SHA256 failed\n");
		abort();
	}
	free(msg);
}

void linkauth_router_proof(const struct linkauth_secret *s,
			   const uint8_t edge_nonce[LINKAUTH_NONCE],
			   const uint8_t router_nonce[LINKAUTH_NONCE], const char *router_id,
			   size_t len, uint8_t out[LINKAUTH_MAC])
{
	proof(s, router_label, edge_nonce, router_nonce, router_id, len, NULL, 0, out);
}

void linkauth_edge_proof(const struct linkauth_secret *s,
			 const uint8_t router_nonce[LINKAUTH_NONCE],
			 const uint8_t edge_nonce[LINKAUTH_NONCE], const char *edge_id, size_t len,
			 uint64_t hello_seq, uint8_t out[LINKAUTH_MAC])
{
	uint8_t seq[8];

	for (int i = 7; i >= 0; i--) {
		seq[i] = (uint8_t)(hello_seq & 0xff);
		hello_seq >>= 8;
	}
	proof(s, edge_label, router_nonce, edge_nonce, edge_id, len, seq, sizeof(seq), out);
}

bool linkauth_check(const uint8_t *got, size_t got_len, const uint8_t want[LINKAUTH_MAC])
{
	/* The length is not secret (the field is 0 or 32 bytes on the wire). */
	if (!got || got_len != LINKAUTH_MAC)
		return false;
	return CRYPTO_memcmp(got, want, LINKAUTH_MAC) == 0;
}
