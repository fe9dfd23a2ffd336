/* SPDX-License-Identifier: MIT */
/*
 * Every protocol message, built in one place (docs/protocol.md lists their
 * members).  Broker answers are proto_msg_*(), front requests proto_req_*();
 * nobody else writes json_pack() for a message on the wire, so a member
 * added or renamed here is added or renamed everywhere.
 *
 * The builders take plain fields, never a broker or front object: proto/
 * depends on common/ only, and every front (CLI, SSH, later web) shares
 * them.  Each returns a new reference, or NULL when out of memory; callers
 * treat NULL like a message that could not be queued.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

/* One console as `list` describes it (NULL strings become JSON null, "" for the required ones). */
struct proto_console {
	const char *name, *vm, *uuid, *alias, *device, *target, *backend, *path;
	bool primary;
	const char *state, *status;
	const char *writer;   /* label of the writer, or NULL */
	unsigned watchers;
	const char *origin;   /* the source that defined it (file path, URI, "--console option") */
	const char *vm_state; /* or NULL/"" when unknown */
	int guest_open;       /* 1/0, -1 unknown */
	bool may_write;       /* "access": "rw" or "ro" for the asking client */
	bool may_break;       /* "break": may send a serial break */
};

/* The answer to `attach`. */
struct proto_attached {
	const char *console, *vm, *uuid;
	bool writer;              /* this client's role */
	const char *writer_label; /* or NULL: nobody writes */
	unsigned clients;
	const char *state, *status;
	const char *previous;     /* the writer a force attach took over from, or NULL */
	const char *vm_state;     /* or NULL/"" */
	int guest_open;           /* 1/0, -1 unknown */
	bool may_write, may_break;
	/*
	 * Where this client's stream stands (docs/protocol.md "Resume"): the
	 * console's epoch (0: no member), the ring position its output continues
	 * from, and the ring's oldest and next byte.
	 */
	uint64_t epoch, offset, tail, head;
	const char *resumed;      /* "exact", "gap", "restarted", or NULL: no resume asked */
	uint64_t lost;            /* bytes lost, only with resumed "gap" */
	const char *lease;        /* the writer's lease (PROTO_LEASE_STRLEN hex), or NULL */
};

/* One client of a `who` answer; login and pid only for local admins' eyes. */
struct proto_who_client {
	unsigned id;
	const char *user; /* its public label */
	bool writer;
	int64_t since;    /* seconds since the epoch */
	const char *login; /* or NULL */
	int pid;           /* < 0: not shown */
};

/* ---- Broker -> client ---- */

/* principal_fingerprint NULL: no "principal" member. */
json_t *proto_msg_hello(const char *you, const char *principal_fingerprint,
			const char *principal_comment);
/*
 * grant: the line's consoles= and break as grant text (access.h; "" grants
 * nothing); gateway: the line has the `gateway` option.
 */
json_t *proto_msg_authorized(const char *fingerprint, const char *comment, const char *you,
			     const char *grant, bool gateway);
/* The answer to `ping` (keepalive). */
json_t *proto_msg_pong(void);
/* An empty list piece: fill it with proto_list_add_*(). */
json_t *proto_msg_list(void);
json_t *proto_console_object(const struct proto_console *c);
/* Append (stealing obj) to a list piece; -ENOMEM. */
int proto_list_add_console(json_t *list, json_t *obj);
json_t *proto_list_error(const char *origin, const char *message);
int proto_list_add_error(json_t *list, json_t *err);
void proto_list_set_more(json_t *list, bool more);
json_t *proto_msg_attached(const struct proto_attached *a);
/*
 * may_write: "access" ("rw"/"ro"), what the client may have now (it changes on a demotion).
 * lease: the writer's new lease, given to the writer only (NULL: no member).
 */
json_t *proto_msg_state(const char *console, bool writer, const char *writer_label,
			unsigned clients, bool may_write, const char *lease);
/* An empty `who` answer: fill it with proto_who_add(). */
json_t *proto_msg_who(const char *console);
int proto_who_add(json_t *who, const struct proto_who_client *c);
json_t *proto_msg_break_sent(const char *console);
/* A rescue action was carried out; key: sysrq's key, else NULL (no member). */
json_t *proto_msg_action_done(const char *console, enum proto_action action, const char *key);
json_t *proto_msg_detached(const char *console, enum detach_reason reason, const char *text);
json_t *proto_msg_notice(const char *text);
/* "N bytes dropped" with the count as a member. */
json_t *proto_msg_notice_dropped(const char *text, uint64_t dropped);
/* A resume that came too late: "N bytes of output were lost ..." with the count as "lost". */
json_t *proto_msg_notice_lost(const char *text, uint64_t lost);

/* The answer to `output`: ring bytes [start, next) of a console. */
struct proto_output {
	const char *console;
	uint64_t epoch;
	uint64_t start, next, head;
	const uint8_t *data; /* next - start bytes, any bytes: made valid UTF-8 here */
	size_t len;
	bool expired;        /* the start asked for was older than the oldest byte kept */
	uint64_t lost;       /* with expired: how many bytes */
};
json_t *proto_msg_output(const struct proto_output *o);
json_t *proto_msg_error(const char *code, const char *message);
/* The answer to `web-link`: the link to open, its console and seconds left to redeem it. */
json_t *proto_msg_web_link(const char *url, const char *console, uint64_t expires_in);
/* The answer to `redeem`: the web session's secret, what it grants and for how long. */
json_t *proto_msg_redeemed(const char *session, const char *console, bool may_write,
			   uint64_t expires_in, const char *you);

/* ---- Client -> broker ---- */

/*
 * key ("TYPE BASE64") NULL: no principal; from is the client's address.
 * A gateway speaking for a user (docs/protocol.md "Gateways") adds grant
 * (the user's grant text) and comment; NULL: no such member.
 */
json_t *proto_req_hello(const char *client, const char *key, const char *from, const char *grant,
			const char *comment);
/* A keepalive: the broker answers `pong`. */
json_t *proto_req_ping(void);
json_t *proto_req_authorize(const char *key, const char *from);
/*
 * A front's hello for a web session (instead of a principal); from is the
 * browser's address (NULL: none).
 */
json_t *proto_req_hello_session(const char *client, const char *session, const char *from);
/* Mint a one-time web link for console (ro: narrowed to watching). */
json_t *proto_req_web_link(const char *console, bool ro);
/* A front exchanges a link's token for a web session; from is the browser's address. */
json_t *proto_req_redeem(const char *token, const char *from);
/* console NULL: every console. */
json_t *proto_req_list(const char *console);
/* replay PROTO_REPLAY_DEFAULT: no member (the broker's default). */
json_t *proto_req_attach(const char *console, enum attach_mode mode, long replay);
/* Where a front left a console: attach continues there (docs/protocol.md "Resume"). */
struct proto_resume {
	uint64_t epoch;
	uint64_t offset;
	const char *lease; /* the writer's lease string as the broker gave it, or NULL */
};
/* proto_req_attach() with a "resume" member (r NULL: none). */
json_t *proto_req_attach_resume(const char *console, enum attach_mode mode, long replay,
				const struct proto_resume *r);
/*
 * Stored output of a console (GCE getSerialPortOutput style): from start
 * (has_start false: the oldest byte; negative: the last -start bytes), at
 * most max bytes (0: the broker's default).
 */
json_t *proto_req_output(const char *console, bool has_start, int64_t start, unsigned max);
json_t *proto_req_take(bool force);
json_t *proto_req_release(void);
/* console NULL: the attached one. */
json_t *proto_req_who(const char *console);
json_t *proto_req_replay(long lines);
json_t *proto_req_break(const char *console);
/* A rescue action; console NULL: the attached one; key: sysrq's key, else NULL. */
json_t *proto_req_action(const char *console, const char *action, const char *key);
json_t *proto_req_resize(unsigned cols, unsigned rows);
json_t *proto_req_detach(void);
