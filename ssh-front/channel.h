/* SPDX-License-Identifier: MIT */
/*
 * One SSH session channel: a console attachment, the console menu, or an
 * exec command (list, attach, who).  Each channel has its own connection
 * to ttyhubd, speaking the broker protocol as a front with the SSH
 * principal (key fingerprint and comment); rights from the access file are
 * enforced here before anything reaches the broker.
 *
 * Flow control both ways: broker output is written to the channel only as
 * far as the client's window allows (and while libssh has nothing pending),
 * and the broker socket is not read meanwhile; keystrokes are consumed from
 * libssh only while the queue to the broker has room, so a fast paste waits
 * in the client's window rather than in our memory.
 */
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "access.h"
#include "escape.h"
#include "obuf.h"
#include "proto.h"
#include "util.h"

struct session;

/*
 * Longest console name the front handles: the broker's names are at most
 * 255 bytes of VM name, ':' and an alias (about 383 bytes).  A longer name is
 * refused, never cut: a cut name could resolve to another console.
 */
#define CHAN_NAME_MAX 512
/*
 * A console the key may not see must look like one that does not exist, in
 * time as well as in words: the two cost the broker and us different work
 * (tens of microseconds, measurable over many tries).  So every "no console
 * named" answer leaves this long after the request that led to it, whatever
 * the work took: far more than either costs, little for a mistyped name.
 */
#define CHAN_UNKNOWN_PAD_USEC (20 * 1000)
/* Room in to_broker that keystrokes never take: requests (release, detach) always fit. */
#define CHAN_CONTROL_RESERVE 2048

enum chan_state {
	CHAN_NEW,       /* open, waiting for pty/shell/exec */
	CHAN_MENU,      /* choosing a console */
	CHAN_ATTACHING, /* attach sent, waiting for the answer */
	CHAN_ATTACHED,
	CHAN_EXEC,      /* a one-shot command in progress */
	CHAN_UNKNOWN,   /* "no console named" is decided, waiting for CHAN_UNKNOWN_PAD_USEC */
	CHAN_CLOSING,
};

struct chan {
	struct session *session;
	ssh_channel ch;                      /* owned */
	struct ssh_channel_callbacks_struct cb;
	enum chan_state state;
	bool pty;
	char term[64];
	unsigned cols, rows;

	int broker_fd;                       /* owned */
	struct watch *broker_io;             /* owned */
	struct frame_reader in;              /* from the broker */
	struct obuf to_broker;               /* keystrokes and requests */
	struct obuf to_client;               /* console bytes and notices for the channel */
	char *spool;                         /* owned: a long table waiting for to_client room */
	size_t spool_len, spool_off;
	bool broker_hello;

	struct escape esc;
	bool at_bol;                         /* last byte to the client ended a line */
	char console[CHAN_NAME_MAX];         /* attached console (canonical name) */
	enum access_right right;             /* the key's right on it */
	json_t *info;                        /* owned: the console whose rights were checked */
	json_t *list;                        /* owned: `list` pieces collected so far */
	bool ro_hinted;
	bool from_username;                  /* the console came from the SSH user name */
	bool keys_held;                      /* libssh holds keystrokes we had no room for */
	uint8_t held[4096];                  /* keystrokes read back from libssh, not yet sent */
	size_t held_len;
	bool writer;
	bool over_limit;                     /* opened past --max-channels: refused */
	int exit_status;
	sd_event_source *menu_timer;         /* owned: closes an idle menu */
	uint64_t asked_usec;                 /* CLOCK_MONOTONIC: the console was asked for */
	sd_event_source *unknown_timer;      /* owned: sends the "no console named" answer */
	char unknown[200];                   /* that console's name, escaped */

	/* Menu and exec state. */
	char line[130];
	size_t line_len;
	json_t *menu;                        /* owned: the consoles offered, by number */
	char exec[CHAN_NAME_MAX + 16];       /* the exec command */
	int want_mode;                       /* USERSPEC_* for the pending attach */
	long want_replay;

	TAILQ_ENTRY(chan) entry;
};

/* over_limit: the session has all its channels; this one only says so and closes. */
ssh_channel chan_open(struct session *s, bool over_limit);
void chan_free(struct chan *c);
/* Move what can move: client window and libssh's buffer permitting. */
void chan_pump(struct chan *c);
/* Say something to the user and close the channel. */
void chan_close(struct chan *c, int status, const char *fmt, ...) _printf_(3, 4);
/*
 * The key's rights changed (reload), or the attach was answered: close if
 * access to the console is gone, give up the writer role if it became ro.
 */
void chan_recheck(struct chan *c);
