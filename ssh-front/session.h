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
 */
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "userspec.h"

struct sshd;
struct chan;

enum session_state { SESSION_KEX, SESSION_AUTH, SESSION_AUTHED };

struct session {
	struct sshd *sshd;
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
	char user[USERSPEC_USER_MAX + 1]; /* SSH user name as given (validated later) */
	bool user_too_long;           /* longer than user[]: refused, never cut */
	bool over_limit;              /* past --max-sessions-per-key: told so, then closed */
	/* The key last offered and the broker's answer for it (authz.h). */
	char *asked_key;              /* owned: "TYPE BASE64" */
	int asked_answer;             /* 1 allowed, 0 refused (or no answer) */
	/* Once authenticated: the key the session speaks for, as the broker named it. */
	char *key;                    /* owned: "TYPE BASE64", as in authorized_keys */
	char fingerprint[80];         /* SHA256:... */
	char comment[128];            /* escaped */
	char revoked[256];            /* the broker revoked the key: why (closed when set) */
	bool dead;
	TAILQ_HEAD(, chan) chans;
	unsigned n_chans;
	TAILQ_ENTRY(session) entry;
};

/* Takes fd (accepted, non-blocking) in all cases. */
int session_new(struct sshd *d, int fd, const char *addr, struct session **ret);
void session_free(struct session *s);
/* Close the connection (after this dispatch); why is logged. */
void session_close(struct session *s, const char *why);
/*
 * The broker revoked the key (from inside a channel's broker handling):
 * every channel is told why and the session closes, once the channel that
 * heard it is out of its callback (session_update_events()).
 */
void session_revoke(struct session *s, const char *why);
/* Ask for EPOLLOUT if libssh has output pending; carry out a pending revocation. */
void session_update_events(struct session *s);
/*
 * Bytes libssh holds for the kernel: never less than the truth, and more
 * by at most a few bytes per packet sent since its queue was last empty.
 */
size_t session_unsent(struct session *s);
