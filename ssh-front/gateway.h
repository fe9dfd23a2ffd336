/* SPDX-License-Identifier: MIT */
/*
 * ttyhub-sshd as a gateway (--gateway HOSTS_FILE): the consoles its users
 * see are those of the hosts in the hosts file (hosts.h), each reached
 * through an upstream stream (upstream.h) to that host's ttyhub-sshd.
 *
 * A channel does not know it is on a gateway: it connects to "the broker"
 * with gateway_connect() instead of the broker socket, and gets one end of
 * a socketpair whose other end a gateway connection (struct gwconn, in
 * gateway.c) serves in the broker protocol (docs/protocol.md):
 *
 * - `hello` is answered here; the principal it names (the user's key and
 *   address, and the grant the gateway's own ttyhubd gave the key) is what
 *   every host is told, in the second `hello` a gateway sends for its users
 *   (docs/protocol.md "Gateways").  Hosts decide every right.
 * - `list` asks every host at once (a stream each) and answers with the
 *   merged list: names qualified "HOST/NAME" (gwlist.h), each console with
 *   its `host`, and `hosts` saying which answered.  A host that does not
 *   answer within --gateway-timeout is "unreachable" and never holds up the
 *   rest.  Each host's answer for a principal is kept for
 *   GATEWAY_CACHE_USEC, for the next list or name.
 * - A request that names a console (`attach`, `list NAME`, `who`, `break`,
 *   `output`) binds the connection to the console's host: a stream is
 *   opened there, the user's hello sent, the request forwarded with the
 *   host's own name for the console, and from then on frames pass both
 *   ways unchanged, except that console names coming back are qualified.
 *   Output offsets, notices, takeovers and resume all work end to end.
 * - When the stream to the host ends while attached (the host or the link
 *   went away), the user is told and the connection closes: the channel
 *   reconnects as after a broker restart, and its resuming attach opens a
 *   new stream (nothing lost or repeated, or the give-up line after 60 s).
 *
 * Web links and sessions (docs/protocol.md "Gateways") are the gateway's
 * own ttyhubd's (--broker), which holds the gateway's access file: a
 * channel's `web-link` is minted there for the channel's key, and with
 * --gateway-socket ttyhub-webd connects here as to a broker
 * (gateway_serve_fd()): its `redeem` goes to that ttyhubd, and a session's
 * hello is answered there with the key, grant and console to speak for, so
 * a browser's WebSocket is served like a channel, on that console only.
 * The socket admits root, our own uid and --gateway-socket-user (SO_PEERCRED):
 * whoever connects may present any session it holds.
 */
#pragma once

#include <systemd/sd-event.h>

#include <stdbool.h>
#include <sys/types.h>

#include "poller.h"

#define GATEWAY_CACHE_USEC (2 * 1000 * 1000ULL)

struct gateway;

struct gateway_config {
	const char *hosts_path;  /* the hosts file */
	const char *key_path;    /* the gateway's private key */
	unsigned keepalive_s;    /* upstream keepalive interval (3 missed: dead) */
	unsigned timeout_ms;     /* per-host deadline of a list */
	const char *const *broker; /* the gateway's own ttyhubd (read at each use: a reload) */
	const char *socket_path; /* --gateway-socket, or NULL */
	uid_t socket_uid;        /* --gateway-socket-user, or (uid_t)-1 */
};

/* Load the hosts file and start connecting to every host.  0 or -errno (logged). */
int gateway_new(sd_event *e, struct poller *p, const struct gateway_config *cfg,
		struct gateway **ret);
/* Closes every gateway connection (their channels see EOF).  Returns NULL. */
struct gateway *gateway_free(struct gateway *g);

/* A new connection, as to a broker: the caller's end of it (non-blocking), or -errno. */
int gateway_connect(struct gateway *g);
/* Serve fd (taken, even on error) in the broker protocol, as gateway_connect()'s.  0 or -errno. */
int gateway_serve_fd(struct gateway *g, int fd, bool from_socket);
