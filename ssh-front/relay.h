/* SPDX-License-Identifier: MIT */
/*
 * The `ttyhub-broker` SSH subsystem: a gateway's stream to this host's
 * ttyhubd (docs/protocol.md "Gateways").  A gateway (ttyhub-sshd
 * --gateway) opens one SSH channel per user stream to the host, with its
 * own key, and asks for this subsystem; the channel (channel.c) accepts
 * only when the key's access line has the `gateway` option.  The relay
 * then connects to ttyhubd, queues a `hello` for the gateway key from the
 * gateway's address (built by the front library, exactly as a channel's),
 * and from then on moves raw bytes both ways: it reads no frame and
 * processes no escape, so the gateway speaks the broker protocol itself
 * (its second, speak-for hello; attach; resume) and ttyhubd decides every
 * right for the principal the gateway speaks for.
 *
 * Bounded both ways, as channel.c is: broker bytes wait in to_client and
 * are written to the channel only as far as the client's window allows
 * and while libssh holds less than RELAY_UNSENT_MAX for the kernel; the
 * broker socket is not read while to_client is full.  Channel bytes are
 * taken from libssh only while to_broker has room; the rest stays in
 * libssh, whose window stops the gateway.
 *
 * Ends: the gateway's EOF is passed on (the queue is flushed, then the
 * broker's side is shut for writing) and the relay goes on until ttyhubd
 * closes; ttyhubd closing (or failing) makes the relay hand the gateway what
 * it had sent, then done (the channel sends EOF and closes); the channel
 * closing frees the relay, which closes the broker connection at once.
 *
 * Since the relay reads no frame it never hears a revocation: ttyhubd
 * closes a revoked gateway key's connections itself (ending their relays)
 * and refuses the hello of any new one, and a line that lost the `gateway`
 * option can no longer speak for anyone; the SSH session, which decided
 * "gateway key" at login, stays until it ends or a console channel of it
 * hears the revocation.
 *
 * The relay borrows the libssh channel and owns the broker socket.  It
 * knows its channel only through relay_ops: libssh's unsent bytes, and a
 * wake-up when the broker socket is ready (the owner then pumps the relay
 * and updates its session's events).
 */
#pragma once

#include <libssh/libssh.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "front.h"
#include "obuf.h"
#include "poller.h"

#define RELAY_SUBSYSTEM "ttyhub-broker"
/* Bytes from ttyhubd waiting for the gateway's window. */
#define RELAY_TO_CLIENT_MAX (128 * 1024)
/* Bytes from the gateway waiting for ttyhubd (the hello included). */
#define RELAY_TO_BROKER_MAX (64 * 1024)

/* What the relay asks of its owner, the channel (userdata: relay_new()'s). */
struct relay_ops {
	/* Bytes the SSH connection holds for the kernel (session.h). */
	size_t (*unsent)(void *userdata);
	/* The broker socket is ready: the owner calls relay_pump() and updates its events. */
	void (*wake)(void *userdata);
};

struct relay {
	ssh_channel ch;            /* borrowed: the channel's */
	int fd;                    /* owned: the connection to ttyhubd */
	struct watch *io;          /* owned */
	struct obuf to_client;     /* from ttyhubd, for the channel */
	struct obuf to_broker;     /* from the channel (after the hello), for ttyhubd */
	uint8_t held[4096];        /* read back from libssh, not yet in to_broker */
	size_t held_len;
	bool client_held;          /* libssh holds channel bytes we had no room for */
	bool client_eof;           /* the gateway sent EOF */
	bool broker_shut;          /* ... and it was passed on (shutdown(SHUT_WR)) */
	bool broker_eof;           /* ended: ttyhubd closed, or a socket or the channel failed */
	bool hup;                  /* the broker socket reported a hang-up or an error */
	uint64_t up;               /* bytes taken from the channel */
	uint64_t down;             /* bytes written to the channel */
	char why[160];             /* why the stream ended ("" while it has not) */
	const struct relay_ops *ops;
	void *userdata;
};

/*
 * Connect to the broker socket and queue the hello for p (key and from
 * only: the gateway's own hello); watch the socket on poller.  ch is
 * borrowed and must outlive the relay.  0 or -errno (nothing to free).
 */
int relay_new(const char *broker, struct poller *poller, ssh_channel ch,
	      const struct front_principal *p, const struct relay_ops *ops, void *userdata,
	      struct relay **ret);
/* Closes the broker connection.  Returns NULL, for `r = relay_free(r)`. */
struct relay *relay_free(struct relay *r);
/* Channel data (libssh's data callback): returns how much was taken; libssh keeps the rest. */
size_t relay_from_client(struct relay *r, const void *data, size_t len);
/* The gateway sent EOF: passed on once what it sent has gone to the broker. */
void relay_client_eof(struct relay *r);
/* Move what can move, both ways (may run libssh's packet loop; never frees anything). */
void relay_pump(struct relay *r);
/* The broker's side ended and the channel has everything it sent: close the channel. */
bool relay_done(const struct relay *r);
/* Remember why the stream ends (the first reason given wins), for the audit line. */
void relay_set_why(struct relay *r, const char *why);
