/* SPDX-License-Identifier: MIT */
/*
 * One connection to the broker socket: a CLI, or one SSH channel of
 * ttyhub-sshd.  It speaks the framed protocol (proto.h), is attached to at
 * most one console, and keeps its own cursor into that console's ring.
 *
 * Output: control frames and console data are queued in a bounded obuf;
 * console data is pulled from the ring only while there is room, so a slow
 * client costs at most the obuf and lags on its cursor.  When the ring has
 * overwritten what it has not read, the cursor jumps to the oldest byte
 * still held and the client gets "N bytes dropped".
 *
 * Clients are never freed inside a loop over clients: client_kill() marks
 * them dead and the server frees them from a defer source.
 *
 * Rights: requests are dispatched through one table (client.c) and each
 * handler checks what this connection may do on the console it names
 * (client_right()): a local admin everything, a front speaking for an SSH
 * key what the access file gives that key (policy.h), a bare front nothing,
 * a front speaking for a web session (weblink.h) what its key or local admin
 * may, capped at ro when its link was narrowed, and a gateway speaking for a
 * user (its second hello) the least of the gateway's grant, the gateway's
 * line and the user's own line (policy.h).
 *
 * Attachment: a client is attached through the struct console_attachment it
 * embeds (cl->att, console.h), whose operations it implements; the console
 * never sees a struct client.  The server is reached only through the
 * struct client_env it fills (the registry, the policy, the dead list, the
 * break path), so neither console.h nor client.h needs server.h.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "access.h"
#include "console.h"
#include "obuf.h"
#include "policy.h"
#include "frame-reader.h"
#include "proto.h"
#include "weblink.h"

struct client;
struct poller;
struct registry;

#define CLIENT_OUT_MAX (192 * 1024)
#define CLIENT_CONTROL_RESERVE (32 * 1024) /* obuf room kept free of data for notices */

/*
 * What every client of the daemon shares (the server fills it and keeps it
 * for as long as any client lives).  The policy and the default replay are
 * read through pointers: a reload (SIGHUP) is seen by every client at once.
 */
struct client_env {
	struct poller *poller;            /* every client socket is watched here */
	struct registry *registry;        /* console lookups and `list` */
	struct policy *const *policy;     /* the access file as last loaded (never NULL) */
	const long *default_replay;       /* lines, or PROTO_REPLAY_ALL */
	/*
	 * A gateway's broker (--no-consoles): a web link names a console of a
	 * host behind the gateway, taken as given; the host decides the rights
	 * when the session is used (docs/protocol.md "Gateways").
	 */
	bool no_consoles;
	unsigned next_id;                 /* the last id given to a client */
	/*
	 * Called once when a client is killed: it is still attached and must be
	 * freed (client_free()) after the current dispatch, never from here.
	 */
	void (*dead)(void *userdata, struct client *c);
	/*
	 * A serial break to con on behalf of c, which may send one there
	 * (client_may_break()); the callee checks the rest, rate-limits, asks the
	 * console's source and answers c (break-sent or an error).
	 */
	void (*send_break)(void *userdata, struct console *con, struct client *c);
	/*
	 * A rescue action on con on behalf of c, which may take it there
	 * (client_may_action()); key: sysrq's key (valid), else 0.  The callee
	 * rate-limits, asks the source and answers c (action-done or an error).
	 */
	void (*send_action)(void *userdata, struct console *con, struct client *c,
			    enum proto_action action, char key);
	void *userdata;
	/*
	 * Web links and sessions (weblink.h; NULL: none), and where users reach
	 * ttyhub-webd (--web-url; *web_url NULL: links are off).  Read through
	 * pointers, as the policy: a reload changes the URL for every client.
	 */
	struct weblink *weblink;
	char *const *web_url;
};

struct client {
	struct client_env *env; /* borrowed: outlives every client */
	unsigned id;
	int fd;               /* owned */
	struct watch *io;     /* owned */
	uid_t uid;
	pid_t pid;
	bool front;           /* a trusted front (may assert a principal) */
	bool admin;           /* root, our uid or the admin group */
	bool front_slot;      /* counted against max_clients (else an admin slot) */
	/*
	 * The SSH key a front speaks for (hello's principal), owned, or NULL.
	 * With one, every right comes from the access file (policy.h); without,
	 * a local admin may do everything and a bare front nothing.
	 */
	struct principal *principal;
	/*
	 * A front speaking for a web session (hello's "session"): for its
	 * principal, or for the local admin web_admin names (no principal), with
	 * rights capped at ro by web_ro.  Never a local admin's own rights.
	 */
	bool web;
	bool web_ro;
	char web_admin[WEBLINK_ADMIN_MAX]; /* "" unless the session is a local admin's */
	char web_console[WEBLINK_CONSOLE_MAX]; /* the session's link's console */
	bool hello;           /* hello received */
	bool dead;
	/*
	 * ttyhubd is stopping and this is a writer (client_stop()): told
	 * `detached` (shutdown), sent nothing more, its end shut for writing once
	 * that went out; the keys it had already sent are still read and delivered.
	 */
	bool stopping;
	bool shut_wr;
	/*
	 * Who this is is att.label and att.audit: label is what other clients
	 * see (notices, who, writer): "local admin" for a local peer, never its
	 * user name or pid.  audit adds those, for logs and local admins.
	 */
	char user[72];        /* the local peer's user name or "uid N" */
	uint64_t since_usec;

	struct frame_reader in;
	const uint8_t *pending; /* unsent writer bytes inside in.buf */
	size_t pending_len;

	struct obuf out;
	unsigned notices_dropped;
	bool listing;           /* a `list` answer is being sent in pieces */
	char *list_after;       /* owned: the next piece starts after this console->order */

	/*
	 * Attachment: att.console (or NULL), role, rights, cursor; names in
	 * att.label and att.audit; want_write and input_paused kept here.
	 */
	struct console_attachment att;
	unsigned cols, rows;

	TAILQ_ENTRY(client) server_entry; /* the server's live or dead list */
};

/* env is borrowed and must outlive the client; the client takes the next id from it. */
int client_new(struct client_env *env, int fd, struct client **ret);
struct client *client_free(struct client *c);
/* Close this client after the current dispatch. */
void client_kill(struct client *c, const char *why);
/*
 * ttyhubd is stopping: tell c `detached` (shutdown).  A watcher is closed at
 * once; a writer is sent nothing more but read until it closes, so that
 * every key it typed before it heard of the stop reaches the guest (the
 * front reconnects to the next ttyhubd and resumes).
 */
void client_stop(struct client *c);

/* Queue a control message (steals nothing; caller keeps msg). */
int client_send(struct client *c, json_t *msg);
/* The same, taking msg (a builder's result; NULL counts as out of memory). */
int client_send_new(struct client *c, json_t *msg);
void client_notice(struct client *c, const char *text);
void client_error(struct client *c, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Pull ring data and write what the socket takes. */
void client_flush(struct client *c);
/* The console accepted the input we were waiting on. */
void client_resume_input(struct client *c);

/* Detach from the console with a `detached` {reason, text} (nothing if not attached). */
void client_detach(struct client *c, enum detach_reason reason, const char *text);

/*
 * Rights: a local admin (no principal) may do everything, a bare front
 * nothing; a web session what its principal (or local admin) may, capped at
 * ro when narrowed.
 */
bool client_is_local_admin(const struct client *c);
enum access_right client_right(const struct client *c, const struct console *con);
bool client_may_break(const struct client *c, const struct console *con);
/* Whether c may take a rescue action on con: its right for it (policy.h) and rw. */
bool client_may_action(const struct client *c, const struct console *con,
		       enum proto_action action);
/* The server loaded a new access file: rebind, revoke, detach or demote (see client.c). */
void client_policy_changed(struct client *c);
