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
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "access.h"
#include "obuf.h"
#include "policy.h"
#include "proto.h"
#include "sanitize.h"

struct console;
struct server;

#define CLIENT_OUT_MAX (192 * 1024)
#define CLIENT_CONTROL_RESERVE (32 * 1024) /* obuf room kept free of data for notices */

enum client_role { CLIENT_WATCHER, CLIENT_WRITER };

struct client {
	struct server *server;
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
	bool hello;           /* hello received */
	bool dead;
	/*
	 * Who this is, already escaped for display.  label is what other clients
	 * see (notices, who, writer): "local admin" for a local peer, never its
	 * user name or pid.  audit adds those, for logs and local admins.
	 */
	char label[160];
	char audit[200];
	char user[72];        /* the local peer's user name or "uid N" */
	uint64_t since_usec;

	struct frame_reader in;
	bool input_paused;     /* writer waiting for the guest to take input */
	const uint8_t *pending; /* unsent writer bytes inside in.buf */
	size_t pending_len;

	struct obuf out;
	bool want_write;
	unsigned notices_dropped;
	bool listing;           /* a `list` answer is being sent in pieces */
	char *list_after;       /* owned: the next piece starts after this console->order */

	/* Attachment. */
	struct console *console;
	enum client_role role;
	enum access_right right; /* on the attached console, as of attach or the last reload */
	bool may_break;
	uint64_t pos;           /* next ring byte to send */
	uint64_t sanitize_until; /* bytes before this are replay: sanitised */
	struct sanitizer san;
	bool ro_hint_sent;      /* "your input is discarded" said (read-only, or detached) */
	unsigned cols, rows;

	TAILQ_ENTRY(client) server_entry;
	TAILQ_ENTRY(client) console_entry;
};

int client_new(struct server *s, int fd, struct client **ret);
void client_free(struct client *c);
/* Close this client after the current dispatch. */
void client_kill(struct client *c, const char *why);

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

/* Rights: a local admin (no principal) may do everything, a bare front nothing. */
bool client_is_local_admin(const struct client *c);
enum access_right client_right(const struct client *c, const struct console *con);
bool client_may_break(const struct client *c, const struct console *con);
/* The server loaded a new access file: rebind, revoke, detach or demote (see client.c). */
void client_policy_changed(struct client *c);
