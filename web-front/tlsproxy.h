/* SPDX-License-Identifier: MIT */
/*
 * TLS in front of libmicrohttpd: webd accepts, GnuTLS does the handshake
 * and the records, and the plaintext goes to libmicrohttpd over a
 * socketpair (MHD_add_connection(), with the client's real address).
 *
 * Why not libmicrohttpd's own TLS: in 0.9.75 an upgraded TLS connection is
 * relayed by libmicrohttpd through a buffer cut from the connection's
 * memory pool, which the request has used up by then, so WebSocket traffic
 * crawls through its 8-byte emergency buffer (4 bytes per TLS record).
 * Here each direction has a TLSPROXY_BUF buffer and WebSockets get the
 * plaintext socket itself.
 *
 * A proxy owns its network socket, its end of the socketpair and its
 * GnuTLS session; it frees itself when either side is done.  The
 * handshake must finish within handshake_usec.
 */
#pragma once

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#define TLSPROXY_BUF (16 * 1024)

struct tlsproxy;
TAILQ_HEAD(tlsproxy_list, tlsproxy);

struct tlsproxy_env {
	sd_event *event;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	uint64_t handshake_usec;
	/* The handshake is done: hand the plaintext fd (taken) to the HTTP server. */
	int (*hand_over)(void *userdata, int fd, const struct sockaddr *peer, socklen_t len);
	void *userdata;
	struct tlsproxy_list proxies;
	unsigned n_proxies;
};

/*
 * Load the certificate chain and key (PEM) and the priorities (TLS 1.2 and
 * 1.3, AEAD ciphers, ECDHE).  0 or -errno (logged).
 */
int tlsproxy_env_init(struct tlsproxy_env *env, const char *cert, const char *key);
void tlsproxy_env_done(struct tlsproxy_env *env);

/* An accepted connection (fd taken).  0 or -errno (fd closed). */
int tlsproxy_new(struct tlsproxy_env *env, int fd, const struct sockaddr *peer, socklen_t len);
struct tlsproxy *tlsproxy_free(struct tlsproxy *p);
