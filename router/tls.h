/*
 * tls: wss on the client port, terminated by the router itself (not by lws:
 * the front door must read and rewrite every request head, and recvhook
 * must see every byte a client sends; both would be bypassed if lws held
 * the TLS session). A tls_server holds the certificate and key (--tls-cert,
 * --tls-key) in an OpenSSL context: at least TLS 1.2, ALPN "http/1.1"
 * chosen when offered, no renegotiation, no session tickets or cache. It
 * re-reads the files when they change (tls_server_tick, every 2 s: the
 * resolved files' inode, mtime and size, so a Kubernetes secret mount's
 * atomic ..data swap is seen); new handshakes use the new pair, existing
 * connections keep theirs, a broken new pair is logged and the old one kept.
 *
 * Each client socket gets a tls_conn, found by its descriptor
 * (tls_conn_of): recvhook's recv()/send()/close() interposers route a TLS
 * socket's bytes through it, so the door, lws and the guard read and write
 * plaintext with recv()/send() as on a plain socket.
 */
#ifndef KWS_ROUTER_TLS_H
#define KWS_ROUTER_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tls_server;
struct tls_conn;

/* Which of the two files a load failed on. */
enum tls_fault { TLS_FAULT_CERT, TLS_FAULT_KEY, TLS_FAULT_PAIR /* key not the cert's */ };

/* Loads cert (PEM chain) and key (PEM). Returns the server, or NULL with a
 * message in err naming the file and what is wrong (unreadable, not PEM,
 * key not matching the certificate) and, if fault is not NULL, which file
 * in *fault. The paths are copied. */
struct tls_server *tls_server_new(const char *cert, const char *key, char *err, size_t errlen,
				  enum tls_fault *fault);
/* Frees the server (connections keep their own reference). Accepts NULL. */
void tls_server_free(struct tls_server *t);
/* Reloads the pair if the files changed since the last look, at most every
 * 2 s (call often, from one thread: the door's). Returns 1 if reloaded, 0
 * if nothing changed or not yet time, -1 if the new pair is broken (logged,
 * the old one kept, tried again when the files change again). */
int tls_server_tick(struct tls_server *t);
/* Counters, any thread: pairs reloaded, reloads that failed, handshakes
 * that failed (not TLS, old protocol version, no shared cipher, ...). */
uint64_t tls_server_reloads(const struct tls_server *t);
uint64_t tls_server_reload_failures(const struct tls_server *t);
uint64_t tls_server_handshake_failures(const struct tls_server *t);

/* Makes fd (a non-blocking accepted socket) a TLS server connection: its
 * handshake runs inside the first recv() calls. Call on the thread that
 * owns fd. Returns 0, or -ENOMEM / -EBADF (fd beyond the table). */
int tls_attach(struct tls_server *t, int fd);

/* The TLS connection of fd, or NULL. Any thread (for a socket it owns). */
struct tls_conn *tls_conn_of(int fd);
/* Drives the handshake, then peeks up to n bytes of plaintext into buf
 * without consuming them. Returns the count, 0 at the peer's close_notify
 * or EOF, -1 with errno EAGAIN (nothing yet) or ECONNRESET (failed). */
ssize_t tls_conn_peek(struct tls_conn *c, void *buf, size_t n);
/* Consumes n bytes that tls_conn_peek returned. Returns n or -1. */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t n);
/* Whether plaintext is left inside c (readable without the socket being). */
int tls_conn_pending(struct tls_conn *c);
/* Writes up to n bytes (partial writes allowed). Returns the count, or -1
 * with errno EAGAIN or EPIPE. */
ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t n);
/* Forgets fd's connection: close_notify (best effort) and free. Call just
 * before closing fd. Accepts a descriptor without one. */
void tls_detach(int fd);

#endif
