/* SPDX-License-Identifier: MIT */
/*
 * The broker protocol on top of frame.h, shared by ttyhubd and every front
 * (the ttyhub CLI, ttyhub-sshd, later a web front).
 *
 * Control frames carry one JSON object with a string member "type".
 * Client -> broker: hello, list, attach, take, release, who, replay, break,
 * resize, detach.  Broker -> client: hello, list, attached, who, detached,
 * notice, state, error.  Data frames carry console bytes in both directions
 * (client -> broker only from the writer).  The member lists are documented
 * in docs/protocol.md.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "obuf.h"

#define PROTO_VERSION 1

/* Stable machine-readable error codes (the "code" member of error frames). */
#define PROTO_E_BAD_FRAME "bad-frame"
#define PROTO_E_BAD_REQUEST "bad-request"
#define PROTO_E_DENIED "denied"
#define PROTO_E_UNKNOWN_CONSOLE "unknown-console"
#define PROTO_E_UNSUPPORTED "unsupported"
#define PROTO_E_NOT_ATTACHED "not-attached"
#define PROTO_E_ALREADY_ATTACHED "already-attached"
#define PROTO_E_BUSY "busy"
#define PROTO_E_READ_ONLY "read-only"
#define PROTO_E_NOT_AVAILABLE "not-available"
#define PROTO_E_INTERNAL "internal"

/* Append msg as a control frame. Returns 0, -ENOBUFS (no room) or -EMSGSIZE. */
int proto_put_control(struct obuf *out, json_t *msg);
/* Append data frames (split at FRAME_MAX). All or nothing: 0 or -ENOBUFS. */
int proto_put_data(struct obuf *out, const void *data, size_t len);

/*
 * Decode a control payload: a JSON object with a string "type".  Returns 0
 * with a new reference in *ret and the type in *ret_type (valid while *ret
 * lives), or -EBADMSG with a message in err (size errsz).
 */
int proto_decode_control(const uint8_t *payload, size_t len, json_t **ret, const char **ret_type,
			 char *err, size_t errsz);

/* Replay argument: a JSON integer >= 0 or the string "all" (-1). -EINVAL otherwise. */
int proto_parse_replay(const json_t *v, long *ret);

/*
 * Buffered frame reader for a stream fd, with room for exactly one maximal
 * frame.  frame_reader_fill() reads what is available (non-blocking fds
 * return 0 with nothing read); frame_reader_next() yields complete frames,
 * whose payload stays valid until the next fill.
 */
struct frame_reader {
	uint8_t *buf; /* owned, FRAME_HEADER + FRAME_MAX bytes */
	size_t len;   /* bytes held */
	size_t off;   /* start of the first unparsed byte */
	bool eof;
};

int frame_reader_init(struct frame_reader *r);
void frame_reader_done(struct frame_reader *r);
/* Returns bytes read (0 if none available), or -errno. Sets r->eof on EOF. */
ssize_t frame_reader_fill(struct frame_reader *r, int fd);
/* 1 with *ret, 0 if no complete frame is buffered, or -EBADMSG/-EMSGSIZE. */
int frame_reader_next(struct frame_reader *r, struct frame *ret);

/* Shared by the fronts (CLI, ssh-front). */
#include "escape.h"

/*
 * The request an escape command stands for (detach, take, release, who,
 * replay, break), or NULL for commands a front handles itself (help).
 */
json_t *proto_escape_request(enum escape_cmd cmd);

/*
 * A "[ttyhub] TEXT" line for the user's terminal: TEXT is escaped again
 * (defence in depth), a line break goes first unless the cursor is at the
 * start of a line, and lines end in CRLF (raw terminal) or LF.  Returns
 * the length written to buf (always NUL-terminated).
 */
size_t proto_notice_line(const char *text, bool at_bol, bool crlf, char *buf, size_t size);

/* The status line for an "attached" answer, e.g. "attached to vm:serial0 read-only; ...". */
void proto_attached_text(json_t *attached, const uint8_t prefix[2], char *buf, size_t size);

/* The hint shown to a watcher whose keystrokes were discarded. */
void proto_readonly_hint(const uint8_t prefix[2], char *buf, size_t size);
