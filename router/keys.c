/* keys: see keys.h. libcrypto reads the public keys (PEM_read_bio,
 * d2i_PUBKEY) and says what they are; what remains here is the choice of
 * what a file is, the limits, and the key ids. */
#include "keys.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static const char pem_begin[] = "-----BEGIN ";
static const char pubkey_name[] = "PUBLIC KEY";

const char *keys_type_name(enum keys_type t)
{
	switch (t) {
	case KEYS_HMAC:
		return "HMAC";
	case KEYS_RSA:
		return "RSA";
	case KEYS_EC:
		return "EC";
	}
	return "?";
}

/* ---- classifying ----------------------------------------------------- */

/* The type of a public key that RS256 or ES256 may use; -EINVAL with why
 * for any other. */
static int pkey_type(EVP_PKEY *pk, enum keys_type *type, char *why, size_t whylen)
{
	char group[64];
	int bits;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(pk);
		if (bits < KEYS_RSA_MIN_BITS) {
			snprintf(why, whylen, "RSA key of %d bits; RS256 needs at least %d", bits,
				 KEYS_RSA_MIN_BITS);
			return -EINVAL;
		}
		*type = KEYS_RSA;
		return 0;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pk, group, sizeof group, NULL) != 1 ||
		    strcmp(group, SN_X9_62_prime256v1) != 0) {
			snprintf(why, whylen, "EC key not on curve P-256; ES256 needs P-256");
			return -EINVAL;
		}
		*type = KEYS_EC;
		return 0;
	}
	snprintf(why, whylen, "public key neither RSA nor EC (RS256 or ES256)");
	return -EINVAL;
}

/* The public key of a DER SubjectPublicKeyInfo that is all of der[0..n),
 * or NULL. */
static EVP_PKEY *der_pubkey(const unsigned char *der, size_t n)
{
	const unsigned char *p = der;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)n);

	if (pk && p != der + n) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	ERR_clear_error();
	return pk;
}

/* Classifies pk (see pkey_type) and writes it out as PEM for libjwt. Frees
 * pk. */
static int pubkey_out(EVP_PKEY *pk, enum keys_type *type, unsigned char **out, size_t *outlen,
		      char *why, size_t whylen)
{
	BIO *bio = NULL;
	BUF_MEM *mem;
	int r;

	if ((r = pkey_type(pk, type, why, whylen)) < 0)
		goto out;
	if (!(bio = BIO_new(BIO_s_mem())) || PEM_write_bio_PUBKEY(bio, pk) != 1)
		abort(); /* out of memory */
	BIO_get_mem_ptr(bio, &mem);
	*out = xmalloc(mem->length);
	memcpy(*out, mem->data, mem->length);
	*outlen = mem->length;
out:
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return r;
}

/* Whether der[0..n) starts with something that is not a key to verify with
 * but must not become an HMAC secret either (its bytes are public, or it is
 * a mistake): a DER public key with bytes after it, a certificate or a
 * private key. Names it in why. A random secret never parses as one. */
static bool der_not_a_key(const unsigned char *der, size_t n, char *why, size_t whylen)
{
	const unsigned char *p = der;
	EVP_PKEY *pk;
	X509 *cert;
	bool found = true;

	if ((pk = d2i_PUBKEY(NULL, &p, (long)n))) {
		size_t extra = n - (size_t)(p - der);

		snprintf(why, whylen, "a DER public key followed by %zu stray byte%s", extra,
			 extra == 1 ? "" : "s");
	} else if ((p = der, cert = d2i_X509(NULL, &p, (long)n))) {
		X509_free(cert);
		snprintf(why, whylen,
			 "a DER certificate, not a key; give its public key "
			 "(openssl x509 -pubkey -noout)");
	} else if ((p = der, pk = d2i_AutoPrivateKey(NULL, &p, (long)n))) {
		snprintf(why, whylen,
			 "a DER private key; give its public key (openssl pkey -pubout)");
	} else {
		found = false;
	}
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return found;
}

/* The name of a PEM file's first block ("PUBLIC KEY" for "-----BEGIN PUBLIC
 * KEY-----"), copied into name; s starts at "-----BEGIN ". */
static void pem_name(const char *s, size_t len, char *name, size_t cap)
{
	size_t i = sizeof pem_begin - 1, n = 0;

	while (i < len && s[i] != '-' && s[i] != '\n' && s[i] != '\r' && n + 1 < cap)
		name[n++] = s[i++];
	name[n] = '\0';
}

static int pem(const char *s, size_t len, enum keys_type *type, unsigned char **out, size_t *outlen,
	       char *why, size_t whylen)
{
	char want[64], *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long derlen = 0;
	EVP_PKEY *pk;
	BIO *bio;
	int r = -EINVAL;

	pem_name(s, len, want, sizeof want);
	if (strcmp(want, pubkey_name) != 0) {
		snprintf(why, whylen,
			 "PEM but not a public key (it holds \"%.40s\"; want "
			 "-----BEGIN %s-----, as `openssl pkey -pubout` writes)",
			 want, pubkey_name);
		return -EINVAL;
	}
	if (!(bio = BIO_new_mem_buf(s, (int)len)))
		abort();
	ERR_clear_error();
	if (PEM_read_bio(bio, &name, &header, &der, &derlen) != 1) {
		unsigned long e = ERR_peek_last_error();

		int reason = ERR_GET_LIB(e) == ERR_LIB_PEM ? ERR_GET_REASON(e) : 0;

		if (reason == PEM_R_BAD_BASE64_DECODE)
			snprintf(why, whylen, "bad base64 in PEM");
		else if (reason == PEM_R_BAD_END_LINE)
			snprintf(why, whylen, "PEM without -----END %s-----", pubkey_name);
		else
			snprintf(why, whylen, "malformed PEM");
		goto out;
	}
	if (!(pk = der_pubkey(der, (size_t)derlen))) {
		snprintf(why, whylen, "malformed public key");
		goto out;
	}
	r = pubkey_out(pk, type, out, outlen, why, whylen);
out:
	ERR_clear_error();
	BIO_free(bio);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	return r;
}

int keys_parse(const unsigned char *data, size_t len, enum keys_type *type, unsigned char **out,
	       size_t *outlen, char *why, size_t whylen)
{
	const char *s = (const char *)data;
	EVP_PKEY *pk;
	size_t i = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	if (len - i >= sizeof pem_begin - 1 && memcmp(s + i, pem_begin, sizeof pem_begin - 1) == 0)
		return pem(s + i, len - i, type, out, outlen, why, whylen);
	/* A DER public key: parsed only when it is the whole file, so that a
	 * random secret is never taken for one. */
	if ((pk = der_pubkey(data, len)))
		return pubkey_out(pk, type, out, outlen, why, whylen);
	if (der_not_a_key(data, len, why, whylen))
		return -EINVAL;
	if (len < KEYS_HMAC_MIN_BYTES) {
		snprintf(why, whylen, "HMAC secret of %zu bytes; HS256 needs at least %d", len,
			 KEYS_HMAC_MIN_BYTES);
		return -EINVAL;
	}
	*type = KEYS_HMAC;
	*out = xmalloc(len);
	memcpy(*out, data, len);
	*outlen = len;
	return 0;
}

/* ---- loading --------------------------------------------------------- */

static int read_file(const char *path, unsigned char **data, size_t *len, char *why, size_t whylen)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;
	int r = -EINVAL;

	if (!f) {
		r = -errno;
		snprintf(why, whylen, "%s", strerror(errno));
		return r;
	}
	buf = xmalloc(KEYS_FILE_MAX + 1);
	n = fread(buf, 1, KEYS_FILE_MAX + 1, f);
	if (ferror(f)) {
		r = -EIO;
		snprintf(why, whylen, "read error");
		goto out_free;
	}
	if (n > KEYS_FILE_MAX) {
		snprintf(why, whylen, "over %d bytes: not a key", KEYS_FILE_MAX);
		goto out_free;
	}
	if (n == 0) {
		snprintf(why, whylen, "empty");
		goto out_free;
	}
	fclose(f);
	*data = buf;
	*len = n;
	return 0;
out_free:
	explicit_bzero(buf, KEYS_FILE_MAX + 1);
	free(buf);
	fclose(f);
	return r;
}

static void key_wipe(struct keys_key *k)
{
	EVP_PKEY_free(k->pk);
	if (k->data) {
		explicit_bzero(k->data, k->len);
		free(k->data);
	}
	free(k->kid);
	free(k->file);
}

static int add_file(struct keys *ks, const char *path, char *err, size_t errlen)
{
	char why[192];
	const char *base = strrchr(path, '/'), *dot;
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	struct keys_key k = { 0 };
	int r;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	r = read_file(path, &raw, &rawlen, why, sizeof why);
	if (r == 0)
		r = keys_parse(raw, rawlen, &k.type, &k.data, &k.len, why, sizeof why);
	if (raw) {
		explicit_bzero(raw, rawlen);
		free(raw);
	}
	if (r < 0) {
		snprintf(err, errlen, "key file %s: %s", path, why);
		goto out_wipe;
	}
	if (k.type != KEYS_HMAC) {
		/* Parsed once here: OpenSSL 3's decoders take about 0.4 ms a
		 * key, which a token's check paid each time when the PEM went
		 * to libjwt (tests/bench/README.md, "Workers"). */
		BIO *bio = BIO_new_mem_buf(k.data, (int)k.len);
		k.pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (!k.pk) {
			snprintf(err, errlen, "key file %s: cannot read its public key", path);
			r = -EINVAL;
			goto out_wipe;
		}
	}
	k.kid = dot && dot != base ? xstrndup(base, (size_t)(dot - base)) : xstrdup(base);
	if (k.kid[0] == '\0') {
		snprintf(err, errlen,
			 "key file %s: no key id (its name without extension is empty)", path);
		r = -EINVAL;
		goto out_wipe;
	}
	for (size_t i = 0; i < ks->n; i++) {
		if (strcmp(ks->v[i].kid, k.kid) == 0) {
			snprintf(err, errlen, "key files %s and %s have the same key id \"%s\"",
				 ks->v[i].file, path, k.kid);
			r = -EEXIST;
			goto out_wipe;
		}
	}
	k.file = xstrdup(path);
	ks->v = xrealloc(ks->v, (ks->n + 1) * sizeof *ks->v);
	ks->v[ks->n++] = k;
	return 0;
out_wipe:
	key_wipe(&k);
	return r;
}

static int visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int keys_add(struct keys *ks, const char *path, char *err, size_t errlen)
{
	struct dirent **names = NULL;
	struct stat st;
	int n, r = 0, regular = 0;

	if (stat(path, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return r;
	}
	if (!S_ISDIR(st.st_mode))
		return add_file(ks, path, err, errlen);
	n = scandir(path, &names, visible, alphasort);
	if (n < 0) {
		r = -errno;
		snprintf(err, errlen, "key directory %s: %s", path, strerror(errno));
		return r;
	}
	for (int i = 0; i < n; i++) {
		char *file = NULL;

		if (r == 0) {
			if (asprintf(&file, "%s/%s", path, names[i]->d_name) < 0)
				abort();
			if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
				regular++;
				r = add_file(ks, file, err, errlen);
			}
			free(file);
		}
		free(names[i]);
	}
	free(names);
	if (r == 0 && regular == 0) {
		snprintf(err, errlen, "key directory %s has no key files", path);
		r = -ENOENT;
	}
	return r;
}

void keys_free(struct keys *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		key_wipe(&ks->v[i]);
	free(ks->v);
	ks->v = NULL;
	ks->n = 0;
}
