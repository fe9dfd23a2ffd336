/* SPDX-License-Identifier: MIT */
/*
 * The gateway's connections to its hosts (ttyhub-sshd --gateway): one
 * persistent libssh client session per host of the hosts file (hosts.h),
 * authenticated with the gateway's own key (--gateway-key), checked against
 * the host key pinned in the hosts file, kept alive, and re-established
 * with back-off when it drops.
 *
 * Over a session the gateway opens *streams*: SSH channels with the
 * subsystem "ttyhub-broker", which the host's ttyhub-sshd offers to
 * gateway keys only and joins to its ttyhubd (docs/protocol.md
 * "Gateways").  A stream is handed to its user as one end of a socketpair
 * (the caller owns that fd), so everything that speaks the broker protocol
 * over an fd (proto/front.h) speaks it to a host the same way; this module
 * pumps bytes between the other end and the SSH channel, bounded both ways
 * (flow control through the SSH window and the socket buffers).
 *
 * Liveness: every host session keeps one stream of its own as a control
 * stream and sends `ping` on it every keepalive interval when nothing else
 * came from the host; keepalive_count intervals without a byte from the
 * host mean the link is dead: the session is torn down (every stream's fd
 * gets EOF), the host is DOWN with why "no answer for N s", and it is
 * connected again with back-off (1 s doubling to 30 s).
 *
 * Event-driven on sd-event through the poller; never blocks (except that
 * libssh resolves a DNS name in the hosts file with getaddrinfo(): numeric
 * addresses never wait).
 *
 * Every stream is one SSH channel of the host's one session: the host's
 * ttyhub-sshd --max-channels (default 10) bounds the streams open at once
 * to a host, the control stream included.  A host's refusal of the control
 * stream's subsystem makes it DOWN with a why that says so.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "hosts.h"
#include "poller.h"

#define UPSTREAM_SUBSYSTEM "ttyhub-broker"
/* The SSH user name the gateway logs in to hosts with (hosts ignore it). */
#define UPSTREAM_USER "ttyhub-gateway"

struct upstream;

/* A zero member takes its default. */
struct upstream_config {
	const char *key_path;     /* the gateway's private key (OpenSSH format) */
	unsigned keepalive_s;     /* ping interval (default 10) */
	unsigned keepalive_count; /* intervals without a byte from the host: dead (default 3) */
	unsigned connect_timeout_s; /* TCP connect + key exchange + auth (default 10) */
	const char *user;         /* the SSH user name; NULL: UPSTREAM_USER (tests against
				     OpenSSH's sshd need a real one) */
};

enum upstream_state {
	UPSTREAM_CONNECTING, /* first attempt (or a retry) in progress */
	UPSTREAM_UP,         /* authenticated; streams open at once */
	UPSTREAM_DOWN,       /* failed or lost: why says why; retried with back-off */
};

/*
 * Start connecting to every host of hosts (borrowed; it must outlive u).
 * Loads the key (an unreadable or malformed key is an error: -errno with
 * a one-line log).
 */
int upstream_new(sd_event *e, struct poller *p, const struct upstream_config *cfg,
		 const struct hosts_file *hosts, struct upstream **ret);
/* Closes every session and stream (their fds get EOF).  Returns NULL. */
struct upstream *upstream_free(struct upstream *u);

/* The index of the host named name, or -ENOENT. */
int upstream_find(const struct upstream *u, const char *name);
size_t upstream_n_hosts(const struct upstream *u);
const char *upstream_host_name(const struct upstream *u, size_t i);
/*
 * The host's state; *ret_why (may be NULL) is the reason it is DOWN, e.g.
 * "connection refused", "no answer for 30 s", "host key does not match the
 * pinned key (offered SHA256:..., pinned SHA256:...)", "key refused by the
 * host"; "" otherwise.  Valid until the next event loop iteration.
 */
enum upstream_state upstream_host_state(const struct upstream *u, size_t i, const char **ret_why);

/*
 * A new stream to host i.  *ret_fd: our end of a non-blocking socketpair,
 * owned by the caller (closing it closes the SSH channel).  Bytes written
 * to it before the channel is open wait (bounded by the socket buffer); if
 * the channel cannot be opened, or the host is lost later, the fd reads
 * EOF.  A host that is DOWN: -EHOSTUNREACH at once (upstream_host_state()
 * says why).  A CONNECTING host: the stream waits for the session
 * (at most connect_timeout_s, then EOF).  Other -errno: out of resources.
 */
int upstream_open_stream(struct upstream *u, size_t i, int *ret_fd);

/* Streams open now to host i (for tests, the bench and the log). */
size_t upstream_n_streams(const struct upstream *u, size_t i);
/* Connection attempts made to host i so far, the first included (for tests). */
unsigned upstream_host_attempts(const struct upstream *u, size_t i);
