/*
 * keys: the router's JWT verification keys, read once at start from files and
 * directories: HMAC secrets, and RSA / EC P-256 public keys that libcrypto
 * reads (PEM or DER) and classifies. Each key has an id (kid) taken from its
 * file name. No network, no lws; only file reads in keys_add.
 */
#ifndef KWS_KEYS_H
#define KWS_KEYS_H

#include <stddef.h>

/* Key files are at most this long. */
#define KEYS_FILE_MAX (64 * 1024)
/* The shortest HMAC secret (HS256 wants a key as long as its hash). */
#define KEYS_HMAC_MIN_BYTES 32
/* The smallest RSA modulus accepted, in bits. */
#define KEYS_RSA_MIN_BITS 2048

enum keys_type {
	KEYS_HMAC, /* a secret, used byte for byte (HS256) */
	KEYS_RSA,  /* an RSA public key of at least KEYS_RSA_MIN_BITS (RS256) */
	KEYS_EC,   /* an EC public key on P-256 (ES256) */
};

struct keys_key {
	enum keys_type type;
	char *kid;           /* the file name without its last extension */
	char *file;          /* the path it was read from, for messages */
	unsigned char *data; /* the HMAC secret, or the public key as PEM */
	size_t len;
	struct evp_pkey_st *pk; /* RSA and EC: the public key, parsed once (token.c) */
};

/* A set of keys; zero-initialised it is empty. The set owns every key and
 * its bytes. */
struct keys {
	struct keys_key *v;
	size_t n;
};

/*
 * Classifies the bytes of one key file (pure: no I/O). A file that starts,
 * after blank space, with "-----BEGIN " is PEM and must hold a
 * "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo, as `openssl pkey
 * -pubout` writes). A file that is, as a whole, a DER SubjectPublicKeyInfo
 * (`openssl pkey -pubout -outform DER`) is that public key; a whole DER
 * certificate or private key is refused (its bytes must not become an HMAC
 * secret: a certificate is public). Any other file is an HMAC secret of at
 * least KEYS_HMAC_MIN_BYTES, used byte for byte (a trailing newline is part
 * of it). Public keys must be RSA of at least KEYS_RSA_MIN_BITS bits or EC
 * on P-256.
 *
 * Returns 0 with *type and *out (malloc'ed, *outlen bytes: the secret, or the
 * public key re-encoded as PEM; the caller wipes and frees it), or -EINVAL
 * with a reason in why[0..whylen) ("RSA key of 1024 bits; RS256 needs at
 * least 2048").
 */
int keys_parse(const unsigned char *data, size_t len, enum keys_type *type, unsigned char **out,
	       size_t *outlen, char *why, size_t whylen);

/*
 * Adds the keys at path to ks: a file is one key; a directory contributes
 * each regular file in it (symlinks followed, as in a Kubernetes secret
 * volume) whose name does not start with '.', in name order, and must have
 * at least one. Files are at most KEYS_FILE_MAX bytes and are classified by
 * keys_parse. A key's id is its file name without the last extension
 * (keys/2024-06.pem has kid "2024-06"); two keys with the same id are an
 * error. Rotation: add the new key, let issuers sign with it, then remove
 * the old one (keys are read at start; restart to change them).
 *
 * Returns 0, or a negative errno (-ENOENT and the like for a file that
 * cannot be read, -EINVAL for a file that is not an accepted key, -EEXIST
 * for a repeated key id) with a message in err naming the file. On error ks
 * keeps the keys it had before the failing file (keys_free frees them).
 */
int keys_add(struct keys *ks, const char *path, char *err, size_t errlen);

/* Wipes and frees every key of ks and empties it; accepts an empty set. */
void keys_free(struct keys *ks);

/* "HMAC", "RSA" or "EC". */
const char *keys_type_name(enum keys_type t);

#endif
