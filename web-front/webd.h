/* SPDX-License-Identifier: MIT */
/*
 * ttyhub-webd's HTTP side: libmicrohttpd in epoll mode, its epoll fd driven
 * from sd-event (an io source plus a timer armed from MHD_get_timeout()),
 * on one listening socket (systemd's, or bound from --listen).  With TLS
 * webd accepts itself and tlsproxy.c hands libmicrohttpd the plaintext.
 *
 * Routes: GET / and /index.html, GET /static/NAME (a fixed list of files in
 * --static-dir), POST /api/session (the token exchange: `redeem` at the
 * broker, then the session cookie), GET /api/consoles (the broker's list for
 * the session), GET /ws (the WebSocket upgrade, handed to wsconn.c).  Every
 * response carries the same security headers; the cookie and the token are
 * never logged (a SHA-256 prefix is).
 *
 * Broker requests of the API run on connections of their own (call.c)
 * while the HTTP connection is suspended.  ttyhubd decides every right:
 * webd only checks that requests come from its own page (Origin, Host).
 */
#pragma once

#include <microhttpd.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "tlsproxy.h"
#include "wsconn.h"

#define WEBD_COOKIE_TLS "__Host-ttyhub"
#define WEBD_COOKIE_PLAIN "ttyhub"
/* Request headers in all (431 past it). */
#define WEBD_HEADER_MAX 8192
#define WEBD_HANDSHAKE_S 10

struct webd_config {
	const char *listen;
	const char *tls_cert;
	const char *tls_key;
	const char *broker;
	const char *static_dir;
	char **origins;       /* normalised (webreq.h); the loopback ones are added by webd */
	size_t n_origins;
	unsigned max_ws_per_session;
	unsigned max_ws_per_addr;
	unsigned ping_s;
};

struct req;

struct webd {
	sd_event *event;
	struct MHD_Daemon *mhd;
	sd_event_source *mhd_io, *mhd_timer;
	struct webd_config config;
	bool tls;
	bool loopback;
	int listen_fd;         /* owned until MHD takes it */
	char **origins;        /* owned: config's and the implied loopback ones */
	size_t n_origins;
	sd_event_source *listen_io; /* TLS: webd accepts (tlsproxy.h); else libmicrohttpd does */
	struct tlsproxy_env tlsp;
	struct wsconn_env ws;   /* the open WebSockets */
	TAILQ_HEAD(, req) pending; /* suspended on a broker call */
};

/* Bind or adopt the listener, start libmicrohttpd.  0 or -errno (logged). */
int webd_init(struct webd *d, sd_event *e, const struct webd_config *config);
void webd_done(struct webd *d);
/* Run libmicrohttpd's work now and re-arm its timer (after resuming a connection). */
void webd_kick(struct webd *d);
/* "N WebSockets" for STATUS=. */
unsigned webd_n_conns(const struct webd *d);
