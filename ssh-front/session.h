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
 * Authentication is public key only, decided with the keyring when libssh
 * has verified the signature; a probe for a key we would refuse is refused
 * at once.  After max_auth_tries refusals the connection is closed.
 */
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "access.h"
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
	/* Authenticated key: a copy of its access entry's identity and rights. */
	const struct access_entry *key; /* points into sshd->keyring; updated on reload */
	char fingerprint[80];         /* SHA256:... */
	char comment[128];            /* escaped */
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
/* Tell every channel, then close. */
void session_revoke(struct session *s, const char *why);
/* Re-check rights after the keyring changed; closes channels that lost access. */
void session_recheck(struct session *s);
/* Ask for EPOLLOUT if libssh has output pending. */
void session_update_events(struct session *s);
/*
 * Bytes libssh holds for the kernel: never less than the truth, and more
 * by at most a few bytes per packet sent since its queue was last empty.
 */
size_t session_unsent(struct session *s);
