/*
 * recvhook: puts a wsguard between lws 4.1.6 and the sockets of established
 * WebSocket clients. lws reads a plain (non-TLS) client socket with recv();
 * this module defines recv() for the process (the executable's definition
 * comes before libc's for every library), and for a watched socket peeks
 * at what is there, asks the guard how much lws may read, and reads only
 * that: so lws never parses an unmasked frame, and reads one Ping at a time
 * (with poll() level-triggered, the rest stays readable and lws, which
 * serves POLLOUT before POLLIN, writes the Pong first). Any other socket and
 * any call with flags go straight to libc.
 *
 * A TLS socket (tls.h: the door attached one) is read and written through
 * its TLS connection: recv() returns plaintext (peeked, scanned by the
 * guard when watched, then taken), send() goes through SSL_write, close()
 * frees the TLS connection first. So the door and lws see plaintext with
 * their usual calls.
 */
#ifndef KWS_RECVHOOK_H
#define KWS_RECVHOOK_H

#include "wsguard.h"

/* One watched socket; lives in the caller's per-connection state. */
struct recvhook {
	struct wsguard guard;
	/* Called once, on the lws thread inside lws's read, when the client
	 * sent an unmasked frame: ask lws to close with 1002 (do not free). */
	void (*on_unmasked)(void *arg);
	/* Optional (set after recvhook_watch): called by send() before any
	 * bytes lws writes to the socket (its Pong, Ping, Close, buffered
	 * rest), with arg. The router writes its own frames beside lws
	 * (ws_sock_writev) and finishes one a short write cut here, so lws's
	 * bytes never land inside it. Returns 0 when lws may write now, or
	 * -1 (send() then fails with EAGAIN and lws keeps its bytes for the
	 * next POLLOUT). */
	int (*before_send)(void *arg);
	/* Optional (set after recvhook_watch): called with arg when recv()
	 * lets lws read the end of one or more of the client's frames: the
	 * client is alive (any frame, an empty Pong too, which lws 4.1.6
	 * reports to no callback). */
	void (*on_frame)(void *arg);
	void *arg;
	int fd;
};

/* Starts watching fd with h (zeroes h's guard; h must stay valid until
 * recvhook_unwatch). Call on the lws thread, after the opening handshake.
 * Returns 0, or -1 if fd is out of the table's range (RLIMIT_NOFILE at the
 * first call): then that socket is not guarded. */
int recvhook_watch(struct recvhook *h, int fd, void (*on_unmasked)(void *arg), void *arg);
/* Stops watching h's socket (before lws closes it). Accepts a never-watched h. */
void recvhook_unwatch(struct recvhook *h);

/* Called (on the reading thread) when plaintext is left inside a TLS
 * socket's connection after a recv(): the socket may not become readable
 * again for it, so the caller must arrange another read. NULL: none. */
extern void (*recvhook_tls_pending)(int fd);

#endif
