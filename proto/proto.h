/* SPDX-License-Identifier: MIT */
/*
 * The broker protocol on top of frame.h, shared by ttyhubd and every front
 * (the ttyhub CLI, ttyhub-sshd, later a web front).
 *
 * Control frames carry one JSON object with a string member "type".
 * Client -> broker: hello, authorize, list, attach, take, release, who,
 * replay, break, resize, detach, output, web-link, redeem, ping, action.
 * Broker -> client: hello, authorized, list, attached, state, who,
 * break-sent, detached, notice, error, output, web-link, redeemed, pong,
 * action-done.  Data frames (D) carry the writer's keystrokes to the
 * broker; output frames (O) carry console output with its ring offsets to
 * clients (frame.h).  The member lists are documented in docs/protocol.md (a unit test
 * keeps it in step with enum proto_msg); message.h builds every message.
 * Frames are read from a stream with frame-reader.h.
 */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "obuf.h"

#define PROTO_VERSION 1

/*
 * Every message type on the wire, both directions.  The dispatch table of
 * ttyhubd and docs/protocol.md's tables follow this list (a unit test checks
 * the document names every one).
 */
enum proto_msg {
	PROTO_HELLO,
	PROTO_AUTHORIZE,
	PROTO_AUTHORIZED,
	PROTO_LIST,
	PROTO_ATTACH,
	PROTO_ATTACHED,
	PROTO_TAKE,
	PROTO_RELEASE,
	PROTO_STATE,
	PROTO_WHO,
	PROTO_REPLAY,
	PROTO_BREAK,
	PROTO_BREAK_SENT,
	PROTO_RESIZE,
	PROTO_DETACH,
	PROTO_DETACHED,
	PROTO_NOTICE,
	PROTO_ERROR,
	PROTO_OUTPUT,
	PROTO_WEB_LINK,
	PROTO_REDEEM,
	PROTO_REDEEMED,
	PROTO_PING,
	PROTO_PONG,
	PROTO_ACTION,
	PROTO_ACTION_DONE,
	_PROTO_MSG_MAX,
	_PROTO_MSG_INVALID = -EINVAL,
};

/* The wire "type" name ("hello", "break-sent", ...); NULL if m is out of range. */
const char *proto_msg_to_string(enum proto_msg m);
/* _PROTO_MSG_INVALID for an unknown name or NULL. */
enum proto_msg proto_msg_from_string(const char *s);

/* How a client attaches: watch, write if free, or take the writer role. */
enum attach_mode {
	ATTACH_RO,
	ATTACH_RW,
	ATTACH_FORCE,
	_ATTACH_MODE_MAX,
	_ATTACH_MODE_INVALID = -EINVAL,
};

/* "ro", "rw", "force"; NULL if out of range. */
const char *attach_mode_to_string(enum attach_mode m);
enum attach_mode attach_mode_from_string(const char *s);

/* Why a client stopped being attached (the "reason" member of "detached"). */
enum detach_reason {
	DETACH_REQUESTED,
	DETACH_CONSOLE_GONE,
	DETACH_SHUTDOWN,
	DETACH_REVOKED,
	_DETACH_REASON_MAX,
	_DETACH_REASON_INVALID = -EINVAL,
};

/* "requested", "console-gone", "shutdown", "revoked"; NULL if out of range. */
const char *detach_reason_to_string(enum detach_reason r);
enum detach_reason detach_reason_from_string(const char *s);

/*
 * Rescue actions (the "action" member of `action`): sysrq (a serial break
 * followed by KEY), nmi, reset and powerdown.  Each has its own right in the
 * access file (sysrq, nmi, power).
 */
enum proto_action {
	PROTO_ACTION_SYSRQ,
	PROTO_ACTION_NMI,
	PROTO_ACTION_RESET,
	PROTO_ACTION_POWERDOWN,
	_PROTO_ACTION_MAX,
	_PROTO_ACTION_INVALID = -EINVAL,
};

/* "sysrq", "nmi", "reset", "powerdown"; NULL if out of range. */
const char *proto_action_to_string(enum proto_action a);
/* _PROTO_ACTION_INVALID for an unknown name or NULL. */
enum proto_action proto_action_from_string(const char *s);
/* The Linux SysRq keys ttyhub sends (one of them, lower case). */
#define PROTO_SYSRQ_KEYS "0123456789abcdefghijklmnopqrstuvwxyz"
/* Whether s is exactly one character of PROTO_SYSRQ_KEYS.  Pure. */
bool proto_sysrq_key_valid(const char *s);

/* Replay amounts: lines of scrollback sent on attach. */
#define PROTO_REPLAY_ALL (-1L)	   /* "all" */
#define PROTO_REPLAY_DEFAULT (-2L) /* not given: the broker's --replay default */
#define PROTO_REPLAY_MAX 1000000L

/*
 * Parse a replay amount as users type it (CLI, config file, SSH user name):
 * "all" or decimal digits only (no sign, no blanks) 0..PROTO_REPLAY_MAX.
 * Returns 0 with *ret set, -EINVAL if s is not of that form (or NULL), or
 * -ERANGE for digits above PROTO_REPLAY_MAX.  Pure.
 */
int proto_parse_replay_str(const char *s, long *ret);

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
#define PROTO_E_REVOKED "revoked"

/* Every code above, NULL-terminated (docs/protocol.md must list each; a unit test checks). */
extern const char *const proto_error_codes[];

/* Append msg as a control frame. Returns 0, -ENOBUFS (no room) or -EMSGSIZE. */
int proto_put_control(struct obuf *out, json_t *msg);
/* Append data frames (split at FRAME_MAX). All or nothing: 0 or -ENOBUFS. */
int proto_put_data(struct obuf *out, const void *data, size_t len);
/*
 * Append one output frame (frame.h) for console bytes [start, end) carried
 * as data (len <= FRAME_OUTPUT_MAX).  0, -ENOBUFS (no room), -EMSGSIZE, or
 * -EINVAL for end < start.
 */
int proto_put_output(struct obuf *out, uint64_t start, uint64_t end, const void *data,
		     size_t len);
/*
 * Write an output frame's header (FRAME_HEADER + FRAME_OUTPUT_HEADER bytes)
 * for len bytes that follow it, for a caller that builds the frame in place.
 */
void proto_output_header(uint8_t *hdr, uint64_t start, uint64_t end, size_t len);
/*
 * Split an output frame's payload.  -EBADMSG when it is not an output
 * frame, is shorter than FRAME_OUTPUT_HEADER, or has end < start.  Whether
 * the data is end - start bytes is not checked (replay may differ).  Pure.
 */
int proto_parse_output(const struct frame *f, uint64_t *ret_start, uint64_t *ret_end,
		       const uint8_t **ret_data, size_t *ret_len);

/*
 * A console epoch on the wire: exactly 16 lowercase hex digits, never
 * "0000000000000000".  buf must hold PROTO_EPOCH_STRLEN + 1 bytes.
 */
#define PROTO_EPOCH_STRLEN 16
void proto_epoch_to_string(uint64_t epoch, char buf[PROTO_EPOCH_STRLEN + 1]);
/* -EINVAL unless s is 16 hex digits (either case) and not all zero.  Pure. */
int proto_parse_epoch(const char *s, uint64_t *ret);
/*
 * A resume point as users type it: "EPOCH:OFFSET" (16 hex digits, a colon,
 * decimal digits up to INT64_MAX).  -EINVAL otherwise, -ERANGE for a too
 * big offset.  Pure.
 */
int proto_parse_resume_str(const char *s, uint64_t *ret_epoch, uint64_t *ret_offset);

/* The writer's lease: 32 lowercase hex digits on the wire (opaque to fronts). */
#define PROTO_LEASE_STRLEN 32
#define PROTO_LEASE_SIZE (PROTO_LEASE_STRLEN / 2)
/* buf must hold PROTO_LEASE_STRLEN + 1 bytes. */
void proto_lease_to_string(const uint8_t lease[PROTO_LEASE_SIZE],
			   char buf[PROTO_LEASE_STRLEN + 1]);
/* -EINVAL unless s is exactly 32 hex digits (either case).  Pure. */
int proto_parse_lease(const char *s, uint8_t ret[PROTO_LEASE_SIZE]);

/* `output` answers at most this many ring bytes (the default and the cap of "max"). */
#define PROTO_OUTPUT_MAX 8192

/*
 * UTF-8 for the `output` answer's contents, which is a JSON string.  Pure.
 * proto_utf8_repair() copies len bytes to out (capacity >= 3 * len) with
 * every byte that is not part of a well-formed sequence (RFC 3629: no
 * overlongs, surrogates or code points past U+10FFFF), and every NUL (a
 * JSON decoder refuses \u0000 unless allowed), replaced by U+FFFD;
 * returns the bytes written.  proto_utf8_cut() returns len, or less so that
 * the bytes do not end inside a sequence that may be completed by what
 * follows (never 0 when len > 0: a lone prefix is kept and repaired).
 */
size_t proto_utf8_repair(const uint8_t *in, size_t len, char *out);
size_t proto_utf8_cut(const uint8_t *in, size_t len);

/*
 * Decode a control payload: a JSON object with a string "type".  Returns 0
 * with a new reference in *ret and the type in *ret_type (valid while *ret
 * lives), or -EBADMSG with a message in err (size errsz).
 */
int proto_decode_control(const uint8_t *payload, size_t len, json_t **ret, const char **ret_type,
			 char *err, size_t errsz);

/*
 * Replay argument of a request: a JSON integer 0..PROTO_REPLAY_MAX or the
 * string "all" (PROTO_REPLAY_ALL).  -EINVAL otherwise.
 */
int proto_parse_replay(const json_t *v, long *ret);
