/* SPDX-License-Identifier: MIT */
/*
 * One SSH session channel: a console attachment, the console menu (menu.h),
 * or an exec command (exec.h).  Each channel has its own connection to
 * ttyhubd (proto/front.h), whose hello speaks for the session's SSH key and
 * client address: ttyhubd lists only the consoles the key may use and
 * decides every attach, take and break.  The channel only shows what it
 * answered, trimmed to what SSH users may see (view.h).
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
#include <stdio.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "escape.h"
#include "front.h"
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
 * time as well as in words: the two may cost the broker different work
 * (tens of microseconds, measurable over many tries).  So every "no console
 * named" answer leaves this long after the request that led to it, whatever
 * the work took: far more than either costs, little for a mistyped name.
 */
#define CHAN_UNKNOWN_PAD_USEC (20 * 1000)
/* Room in the queue to the broker that keystrokes never take: requests always fit. */
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
	bool over_limit;                     /* opened past --max-channels: refused */
	int exit_status;
	uint64_t asked_usec;                 /* CLOCK_MONOTONIC: the console was asked for */
	sd_event_source *unknown_timer;      /* owned: sends the "no console named" answer */
	char unknown[200];                   /* that console's name, escaped */

	/* Menu state (menu.c). */
	sd_event_source *menu_timer;         /* owned: closes an idle menu */
	char line[130];
	size_t line_len;
	json_t *menu;                        /* owned: the consoles offered, by number */
	/* Exec state (exec.c). */
	char exec[CHAN_NAME_MAX + 16];       /* the exec command */

	TAILQ_ENTRY(chan) entry;
};

/* over_limit: the session has all its channels; this one only says so and closes. */
ssh_channel chan_open(struct session *s, bool over_limit);
void chan_free(struct chan *c);
/* Move what can move: client window and libssh's buffer permitting. */
void chan_pump(struct chan *c);
/* Say something to the user and close the channel. */
void chan_close(struct chan *c, int status, const char *fmt, ...) _printf_(3, 4);

/* For menu.c and exec.c. */

/* "\r\n" for a pty, else "\n". */
const char *chan_eol(const struct chan *c);
/* Text for the user (already safe); dropped when the client does not read. */
void chan_say(struct chan *c, const char *text, size_t len);
/* A "[ttyhub] ..." line. */
void chan_notice(struct chan *c, const char *fmt, ...) _printf_(2, 3);
/*
 * A table for the user, printed by print (eol as the channel wants).  One
 * longer than the client queue is fed in as the client reads; the channel
 * closes only once it has all gone out.
 */
void chan_print(struct chan *c, void (*print)(FILE *, json_t *, const char *), json_t *msg);
/*
 * Check a request's queueing (0 or a front_*() error): one that could not
 * be built (a name that is not UTF-8) or queued closes the channel, since
 * waiting for an answer that never comes would hold the broker connection
 * for nothing.  Returns true if it was queued.
 */
bool chan_sent(struct chan *c, int r);
/* Connect to the broker and say hello for the session's key; closes the channel on failure. */
int chan_connect_broker(struct chan *c);
/* The request naming a console arrived now: a "no console named" answer waits from here. */
void chan_asked(struct chan *c);
/* Attach to name (the broker decides; mode ATTACH_RW is the default "write if free"). */
void chan_start_attach(struct chan *c, const char *name, enum attach_mode mode, long replay);
/* Answer "no console named NAME", padded to CHAN_UNKNOWN_PAD_USEC after chan_asked(). */
void chan_unknown(struct chan *c, const char *name);
