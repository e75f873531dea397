/* tls: see tls.h. */
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "util.h"

/* How often tls_server_tick looks at the files. */
#define TLS_RELOAD_CHECK_MS 2000

struct tls_conn {
	SSL *ssl;
	struct tls_server *srv; /* for the handshake-failure counter */
	int handshaken;
};

/* What identifies one version of a file. */
struct file_sig {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct tls_server {
	char *cert, *key;
	SSL_CTX *ctx; /* replaced by tls_server_tick (the door's thread only) */
	struct file_sig sig[2];
	int64_t next_check_ms;
	_Atomic uint64_t reloads, reload_failures, handshake_failures;
};

/* fd -> connection: set and cleared by the thread that owns the socket,
 * handed on with it (door -> lws loop) under the door's lock. */
static _Atomic(struct tls_conn *) *table;
static size_t table_len;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	struct rlimit rl;
	size_t len = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > len)
		len = rl.rlim_cur < (1u << 22) ? (size_t)rl.rlim_cur : (1u << 22);
	table = calloc(len, sizeof *table); /* untouched pages stay unmapped */
	if (!table)
		abort();
	table_len = len;
}

static int sig_of(const char *path, struct file_sig *s)
{
	struct stat st;
	if (stat(path, &st) < 0) /* follows symlinks: the resolved file */
		return -1;
	*s = (struct file_sig){ st.st_dev, st.st_ino, st.st_size, st.st_mtim };
	return 0;
}

static int sig_eq(const struct file_sig *a, const struct file_sig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* ALPN: a WebSocket starts as HTTP/1.1; anything else is not answered. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static void ssl_error(char *err, size_t errlen, const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	snprintf(err, errlen, "%s %s (OpenSSL: %s)", what, path, r ? r : "unknown error");
	ERR_clear_error();
}

/* A context for cert and key, or NULL with a message. */
static SSL_CTX *load_ctx(const char *cert, const char *key, char *err, size_t errlen,
			 enum tls_fault *fault)
{
	const char *paths[2] = { cert, key };
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(paths[i], "r");
		if (!f) {
			*fault = i ? TLS_FAULT_KEY : TLS_FAULT_CERT;
			snprintf(err, errlen, "cannot read %s: %s", paths[i], strerror(errno));
			return NULL;
		}
		fclose(f);
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	*fault = TLS_FAULT_CERT;
	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_error(err, errlen, "no PEM certificate in", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		*fault = TLS_FAULT_KEY;
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			*fault = TLS_FAULT_PAIR;
			ERR_clear_error();
			snprintf(err, errlen, "the key in %s does not match the certificate in %s",
				 key, cert);
		} else {
			ssl_error(err, errlen, "no usable PEM private key in", key);
		}
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*fault = TLS_FAULT_PAIR;
		ERR_clear_error();
		snprintf(err, errlen, "the key in %s does not match the certificate in %s", key,
			 cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

struct tls_server *tls_server_new(const char *cert, const char *key, char *err, size_t errlen,
				  enum tls_fault *fault)
{
	enum tls_fault ignored;
	if (!fault)
		fault = &ignored;
	pthread_once(&table_once, table_init);
	struct file_sig sig[2] = { 0 };
	/* The signatures first: a change between them and the load is seen
	 * at the next look. */
	sig_of(cert, &sig[0]);
	sig_of(key, &sig[1]);
	SSL_CTX *ctx = load_ctx(cert, key, err, errlen, fault);
	if (!ctx)
		return NULL;
	struct tls_server *t = xcalloc(1, sizeof *t);
	t->cert = xstrdup(cert);
	t->key = xstrdup(key);
	t->ctx = ctx;
	memcpy(t->sig, sig, sizeof sig);
	t->next_check_ms = now_mono_ms() + TLS_RELOAD_CHECK_MS;
	return t;
}

void tls_server_free(struct tls_server *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t->cert);
	free(t->key);
	free(t);
}

int tls_server_tick(struct tls_server *t)
{
	int64_t now = now_mono_ms();
	if (!t || now < t->next_check_ms)
		return 0;
	t->next_check_ms = now + TLS_RELOAD_CHECK_MS;
	struct file_sig sig[2];
	if (sig_of(t->cert, &sig[0]) < 0 || sig_of(t->key, &sig[1]) < 0)
		memset(sig, 0, sizeof sig); /* gone for now (mid-swap?): a change */
	if (sig_eq(&sig[0], &t->sig[0]) && sig_eq(&sig[1], &t->sig[1]))
		return 0;
	memcpy(t->sig, sig, sizeof sig);
	char err[512];
	enum tls_fault fault;
	SSL_CTX *ctx = load_ctx(t->cert, t->key, err, sizeof err, &fault);
	if (!ctx) {
		atomic_fetch_add(&t->reload_failures, 1);
		log_error("--tls-cert/--tls-key changed but cannot be used (%s); keeping the "
			  "previous certificate",
			  err);
		return -1;
	}
	SSL_CTX_free(t->ctx); /* connections hold their own reference */
	t->ctx = ctx;
	atomic_fetch_add(&t->reloads, 1);
	log_info("TLS certificate reloaded from %s", t->cert);
	return 1;
}

uint64_t tls_server_reloads(const struct tls_server *t)
{
	return t ? atomic_load(&((struct tls_server *)t)->reloads) : 0;
}

uint64_t tls_server_reload_failures(const struct tls_server *t)
{
	return t ? atomic_load(&((struct tls_server *)t)->reload_failures) : 0;
}

uint64_t tls_server_handshake_failures(const struct tls_server *t)
{
	return t ? atomic_load(&((struct tls_server *)t)->handshake_failures) : 0;
}

int tls_attach(struct tls_server *t, int fd)
{
	if (fd < 0 || (size_t)fd >= table_len)
		return -EBADF;
	struct tls_conn *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->ssl = SSL_new(t->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
		SSL_free(c->ssl);
		free(c);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_accept_state(c->ssl);
	c->srv = t;
	atomic_store_explicit(&table[fd], c, memory_order_release);
	return 0;
}

struct tls_conn *tls_conn_of(int fd)
{
	if (!table || fd < 0 || (size_t)fd >= table_len)
		return NULL;
	return atomic_load_explicit(&table[fd], memory_order_acquire);
}

/* errno for an SSL call's failure; -1. */
static ssize_t failed(struct tls_conn *c, int rc)
{
	int e = SSL_get_error(c->ssl, rc);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0; /* close_notify */
	if (!c->handshaken) {
		atomic_fetch_add(&c->srv->handshake_failures, 1);
		c->handshaken = -1;
	}
	errno = ECONNRESET;
	return -1;
}

ssize_t tls_conn_peek(struct tls_conn *c, void *buf, size_t n)
{
	if (c->handshaken < 0) {
		errno = ECONNRESET;
		return -1;
	}
	if (!c->handshaken) {
		int rc = SSL_do_handshake(c->ssl);
		if (rc != 1)
			return failed(c, rc);
		c->handshaken = 1;
	}
	int rc = SSL_peek(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	return rc > 0 ? rc : failed(c, rc);
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t n)
{
	int rc = SSL_read(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	return rc > 0 ? rc : failed(c, rc);
}

int tls_conn_pending(struct tls_conn *c)
{
	return c->handshaken > 0 && SSL_pending(c->ssl) > 0;
}

ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t n)
{
	if (c->handshaken <= 0) {
		errno = c->handshaken < 0 ? EPIPE : EAGAIN;
		return -1;
	}
	if (!n)
		return 0;
	int rc = SSL_write(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
	if (rc > 0)
		return rc;
	ssize_t r = failed(c, rc);
	if (r == 0 || (r < 0 && errno != EAGAIN))
		errno = EPIPE;
	return -1;
}

void tls_detach(int fd)
{
	if (!table || fd < 0 || (size_t)fd >= table_len)
		return;
	struct tls_conn *c = atomic_exchange_explicit(&table[fd], NULL, memory_order_acq_rel);
	if (!c)
		return;
	if (c->handshaken > 0)
		SSL_shutdown(c->ssl); /* close_notify, best effort (non-blocking) */
	SSL_free(c->ssl);
	ERR_clear_error();
	free(c);
}
