/* SPDX-License-Identifier: MIT */
/*
 * One SSH connection to ttyhub-sshd.  Each session has its own non-blocking
 * libssh session and a private ssh_event used as a pump: a poller watch on
 * the session's socket calls ssh_event_dopoll(ev, 0), which runs libssh's
 * callbacks, and EPOLLOUT is asked for only while libssh has output
 * pending.  Timers (login grace, keepalive) are sd-event timers.
 *
 * libssh 0.10 sends at most once per poll round and reports output pending
 * after every send, so "pending" says little about how much is queued.
 * Its byte counters do: session_unsent() bounds the bytes it has packed but
 * the kernel has not taken, so channels can keep it busy without letting
 * its queue grow without bound.
 *
 * Authentication is public key only.  Whether a key may log in is ttyhubd's
 * answer (authz.h), asked once per key offered: a probe for a key the broker
 * refuses is refused at once, and the signature round reuses the answer.
 * After max_auth_tries refusals the connection is closed.  The session then
 * speaks for that key: every channel's broker connection says hello with
 * it, and ttyhubd decides each right.
 *
 * Gateways (docs/protocol.md "Gateways"): the broker's answer also says
 * whether the key's line is a gateway's; only such a session's channels may
 * open the `ttyhub-broker` subsystem (relay.h).  On a gateway
 * (session_config.gateway) the channels' principal also carries what the
 * gateway's ttyhubd granted the user and the comment of the user's line, so
 * that the gateway speaks for the user with them on every host.
 *
 * A session knows its daemon only through what the daemon gave it (a
 * session_env with its session_ops), and gives each channel a chan_env
 * (channel.h) that answers for it: audit lines name the session's key,
 * address and user.
 */
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "channel.h"
#include "poller.h"
#include "userspec.h"

struct authz;
struct session;

/* The daemon's settings a session reads, each time it needs one (a reload changes them). */
struct session_config {
	unsigned login_grace_s;
	unsigned max_auth_tries;
	unsigned keepalive_s;
	unsigned max_sessions_per_key; /* authenticated sessions of one key */
	unsigned max_channels;
	bool gateway;                  /* ttyhub-sshd --gateway: principals carry grant + comment */
	struct chan_config chan;       /* what its channels read */
};

/* Channels a gateway key's session may have (--max-channels if higher): users it forwards. */
#define SESSION_GATEWAY_MAX_CHANNELS 4096

/* What a session asks of its owner, the daemon (userdata: session_env.userdata). */
struct session_ops {
	/* s authenticated: it no longer counts as unauthenticated. */
	void (*authenticated)(void *userdata, struct session *s);
	/* Other live sessions of s's key that count against max_sessions_per_key. */
	unsigned (*count_key)(void *userdata, const struct session *s);
	/* s closed: the owner frees it (session_free()) later, never from this call. */
	void (*closed)(void *userdata, struct session *s);
};

/* What every session is made with; borrowed, outlives them. */
struct session_env {
	sd_event *event;
	struct poller *poller;
	ssh_bind bind;                       /* accepts connections: holds the host key */
	struct authz *authz;                 /* asks ttyhubd whether a key may log in */
	const struct session_config *config;
	const struct session_ops *ops;
	void *userdata;
};

enum session_state { SESSION_KEX, SESSION_AUTH, SESSION_AUTHED };

struct session {
	const struct session_env *env;
	ssh_session ssh;              /* owned; owns the socket */
	ssh_event pump;               /* owned */
	struct ssh_server_callbacks_struct cb;
	struct watch *io;             /* owned */
	sd_event_source *grace;       /* owned */
	sd_event_source *keepalive;   /* owned */
	struct ssh_counter_struct sent;   /* bytes libssh gave the kernel */
	struct ssh_counter_struct packed; /* packets libssh built, and their payload */
	uint64_t unsent_slack;            /* over-estimate when last known empty */
	enum session_state state;
	unsigned auth_failures;
	uint64_t accepted_usec;
	char addr[64];                /* client address, text */
	char local[64];               /* the address the client reached us at, text */
	unsigned local_port;          /* and its port (0: unknown) */
	char user[USERSPEC_USER_MAX + 1]; /* SSH user name as given (validated later) */
	bool user_too_long;           /* longer than user[]: refused, never cut */
	bool over_limit;              /* past --max-sessions-per-key: told so, then closed */
	/* The key last offered and the broker's answer for it (authz.h). */
	char *asked_key;              /* owned: "TYPE BASE64" */
	int asked_answer;             /* 1 allowed, 0 refused (or no answer) */
	char *grant;                  /* owned: what the key's line grants ("" none), as asked */
	char line_comment[128];       /* the line's comment, not escaped ("" none), as asked */
	bool gateway_key;             /* the line is a gateway's (`gateway`), as asked */
	/* Once authenticated: the key the session speaks for, as the broker named it. */
	char *key;                    /* owned: "TYPE BASE64", as in authorized_keys */
	char fingerprint[80];         /* SHA256:... */
	char comment[128];            /* escaped */
	char revoked[256];            /* the broker revoked the key: why (closed when set) */
	bool dead;
	bool linger;                  /* shutting down: wait for the client to leave first */
	struct chan_env chan_env;     /* its channels' (complete once authenticated) */
	TAILQ_HEAD(, chan) chans;
	unsigned n_chans;
	TAILQ_ENTRY(session) entry;   /* in the owner's lists */
};

/*
 * Start the key exchange on fd (accepted, non-blocking); env is borrowed.
 * Takes fd in all cases (closed on failure), unlike most constructors of
 * the tree: from ssh_bind_accept_fd() on, libssh holds fd and closes it when
 * its session is freed, or itself on a read or write error, with no call to
 * give it back; keeping a duplicate for the caller meanwhile would hold two
 * descriptors per connection being admitted (preauth_flood counts them).
 */
int session_new(const struct session_env *env, int fd, const char *addr, struct session **ret);
/* Returns NULL, for `s = session_free(s)`. */
struct session *session_free(struct session *s);
/* Close the connection (after this dispatch); why is logged. */
void session_close(struct session *s, const char *why);
/*
 * ttyhub-sshd stops: every channel says so (an attached one with its resume
 * hint, channel.h) and closes.  The session stays until its owner frees it;
 * session_drain() moves what is left meanwhile.
 */
void session_shutdown(struct session *s);
/*
 * During a shutdown, after poll() said the socket is ready (or not): run
 * libssh's loop once without waiting and pump the channels.  Returns true
 * while the session still has channels or output for the client, and
 * until the client leaves when it had a channel: OpenSSH exits at once on a
 * disconnect message, before it has written out the channel data that came
 * just before it (the last words would be lost).
 */
bool session_drain(struct session *s);
