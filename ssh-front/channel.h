/* SPDX-License-Identifier: MIT */
/*
 * One SSH session channel: a console attachment, the console menu (menu.h),
 * or an exec command (exec.h).  Each channel has its own connection to
 * ttyhubd (proto/front.h), whose hello speaks for the session's SSH key and
 * client address: ttyhubd lists only the consoles the key may use and
 * decides every attach, take and break.  The channel only shows what it
 * answered, trimmed to what SSH users may see (view.h).
 *
 * When that connection ends while a console is attached (the broker
 * stopped: EOF, or `detached` for `shutdown`), the SSH channel stays open:
 * the channel connects again with back-off, says hello for the same key and
 * attaches with a resume point (epoch, offset, writer lease), so the user
 * sees one line and the output goes on where it stopped.  Keystrokes typed
 * meanwhile are held (bounded) by the front library and sent after, or
 * refused with a notice; the escape's detach works during the gap.  After
 * CHAN_GIVE_UP_USEC without a broker the channel ends, saying so.  A
 * detach the user asked for, and ttyhub-sshd stopping, print the resume
 * hint: "ssh -p PORT NAME+resume=EPOCH:OFFSET@HOST" (userspec.h) continues
 * from there in a new SSH session.
 *
 * Flow control both ways: broker output is written to the channel only as
 * far as the client's window allows (and while libssh has nothing pending),
 * and the broker socket is not read meanwhile; keystrokes are consumed from
 * libssh only while the queue to the broker has room, so a fast paste waits
 * in the client's window rather than in our memory.
 *
 * A session whose key is a gateway's (chan_env.gateway) may ask for the
 * `ttyhub-broker` subsystem instead: the channel then only carries a raw
 * relay to ttyhubd (relay.h), and no text of ours ever enters it.
 *
 * A channel knows its session only through what the session gave it (a
 * chan_env with its chan_ops: audit lines, libssh's unsent bytes, events to
 * update, a revocation, "this channel is done"); the menu (menu.h) and the
 * exec commands (exec.h) know nothing of channels: the channel feeds them
 * and acts on what they decide.
 */
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "escape.h"
#include "exec.h"
#include "front.h"
#include "menu.h"
#include "obuf.h"
#include "poller.h"
#include "proto.h"
#include "relay.h"
#include "util.h"

struct chan;
struct gateway;

/*
 * Longest console name the front handles: the broker's names are at most
 * 255 bytes of VM name, ':' and an alias (about 383 bytes).  A longer name is
 * refused, never cut: a cut name could resolve to another console.
 */
#define CHAN_NAME_MAX 512
/*
 * A console the key may not see must look like one that does not exist, in
 * time as well as in words: the two may cost the broker different work
 * (tens of microseconds, measurable over many tries).  So every "no console
 * named" answer leaves this long after the request that led to it, whatever
 * the work took: far more than either costs, little for a mistyped name.
 */
#define CHAN_UNKNOWN_PAD_USEC (20 * 1000)
/* Room in the queue to the broker that keystrokes never take: requests always fit. */
#define CHAN_CONTROL_RESERVE 2048

/* The daemon's settings a channel reads, each time it needs one (a reload changes them). */
struct chan_config {
	const char *broker;       /* the ttyhubd socket */
	struct gateway *gateway;  /* on a gateway: consoles are the hosts' (gateway.h), else NULL */
	unsigned menu_timeout_s;  /* an idle console menu closes */
};

/* What a channel asks of its owner, the SSH session (userdata: chan_env.userdata). */
struct chan_ops {
	/* One audit line: event and details (already escaped where they need it). */
	void (*audit)(void *userdata, const char *event, const char *detail);
	/* Bytes the SSH connection holds for the kernel (see session.h). */
	size_t (*unsent)(void *userdata);
	/* The channel ran outside the session's own callbacks: it updates its events. */
	void (*update_events)(void *userdata);
	/* The broker revoked the key: the whole session ends, saying why. */
	void (*revoke)(void *userdata, const char *why);
	/* The channel is done: the owner unlinks and frees it (chan_free()). */
	void (*finished)(void *userdata, struct chan *c);
};

/* What every channel of a session is made with; borrowed, outlives them. */
struct chan_env {
	sd_event *event;
	struct poller *poller;
	const struct chan_config *config;
	struct front_principal principal; /* the session's key and address: hello says them */
	const char *user;                 /* the SSH user name; NULL if too long (refused) */
	const char *host;                 /* the address the client reached (NULL: unknown) */
	unsigned port;                    /* and its port (0: unknown) */
	bool gateway;                     /* the key is a gateway's: it may open the relay */
	const struct chan_ops *ops;
	void *userdata;
};

enum chan_state {
	CHAN_NEW,       /* open, waiting for pty/shell/exec */
	CHAN_MENU,      /* choosing a console */
	CHAN_ATTACHING, /* attach sent, waiting for the answer (reattach: after a lost broker) */
	CHAN_ATTACHED,
	CHAN_RECONNECTING, /* was attached, the broker went away: connecting again (channel.c) */
	CHAN_EXEC,      /* a one-shot command in progress */
	CHAN_UNKNOWN,   /* "no console named" is decided, waiting for CHAN_UNKNOWN_PAD_USEC */
	CHAN_RELAY,     /* the ttyhub-broker subsystem: bytes relayed to ttyhubd (relay.h) */
	CHAN_CLOSING,
};

struct chan {
	const struct chan_env *env;
	ssh_channel ch;                      /* owned */
	struct ssh_channel_callbacks_struct cb;
	enum chan_state state;
	bool pty;
	char term[64];
	unsigned cols, rows;

	int broker_fd;                       /* owned */
	struct watch *broker_io;             /* owned */
	struct front front;                  /* the broker connection (borrows broker_fd) */
	struct obuf to_client;               /* console bytes and notices for the channel */
	char *spool;                         /* owned: a long table waiting for to_client room */
	size_t spool_len, spool_off;

	bool at_bol;                         /* last byte to the client ended a line */
	char console[CHAN_NAME_MAX];         /* asked for, then attached (canonical name) */
	enum attach_mode access;             /* the broker's verdict for the key on it */
	bool ro_hinted;
	bool from_username;                  /* the console came from the SSH user name */
	bool keys_held;                      /* libssh holds keystrokes we had no room for */
	uint8_t held[4096];                  /* keystrokes read back from libssh, not yet sent */
	size_t held_len;
	bool writer;
	bool detach_asked;                   /* the user's detach is on its way to the broker */
	char refused[160];                   /* over a limit: said, then closed ("" if not) */
	int exit_status;
	uint64_t asked_usec;                 /* CLOCK_MONOTONIC: the console was asked for */
	sd_event_source *unknown_timer;      /* owned: sends the "no console named" answer */
	char unknown[200];                   /* that console's name, escaped */

	/* The broker went away while attached (CHAN_RECONNECTING, or CHAN_ATTACHING + reattach). */
	bool reattach;                       /* the attach in flight resumes a lost connection */
	bool gap;                            /* between the loss and the re-attach */
	bool gap_over_said;                  /* told that keystrokes overflow the held buffer */
	struct front_backoff backoff;        /* since the loss */
	sd_event_source *retry_timer;        /* owned: the next connection attempt, or giving up */

	struct menu menu;                    /* CHAN_MENU */
	sd_event_source *menu_timer;         /* owned: closes an idle menu */
	struct exec exec;                    /* CHAN_EXEC: the command */
	struct relay *relay;                 /* owned: CHAN_RELAY (kept while closing) */

	TAILQ_ENTRY(chan) entry;             /* in the owner's list */
};

/*
 * A new session channel on ssh (env is borrowed).  refused: NULL, or why
 * the session takes no more channels; this one only says so and closes.
 */
int chan_new(const struct chan_env *env, ssh_session ssh, const char *refused, struct chan **ret);
/* Returns NULL, for `c = chan_free(c)`. */
struct chan *chan_free(struct chan *c);
/* Move what can move: client window and libssh's buffer permitting.  May free c (finished). */
void chan_pump(struct chan *c);
/*
 * ttyhub-sshd stops: an attached (or reconnecting) channel writes the
 * resume hint, any channel says why it ends, then closes (chan_pump()
 * finishes it once the client has the words).
 */
void chan_shutdown(struct chan *c);
/* Say something to the user and close the channel. */
void chan_close(struct chan *c, int status, const char *fmt, ...) _printf_(3, 4);
