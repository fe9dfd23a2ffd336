/* SPDX-License-Identifier: MIT */
/*
 * QMP wire format, pure (no I/O, no logging; fuzzable).
 *
 * QEMU writes one JSON object per line, each terminated by CRLF
 * (docs/interop/qmp-spec.rst).  Three pieces:
 *
 *  - struct qmp_splitter cuts the byte stream into lines.  It grows its
 *    buffer on demand up to a fixed limit; a line longer than that is an
 *    error after which the stream cannot be trusted (drop the connection).
 *    Both "\r\n" and a bare "\n" end a line; empty lines are skipped.
 *
 *  - qmp_msg_parse() decodes one line with jansson and classifies it as a
 *    greeting {"QMP": {"version": {"qemu": {...}}, "capabilities": [...]}},
 *    a success {"return": ANY, "id"?: ANY}, a failure
 *    {"error": {"class": STR, "desc": STR}, "id"?: ANY} or an event
 *    {"event": STR, "data"?: OBJ, "timestamp": {"seconds", "microseconds"}}.
 *
 *  - qmp_encode_command() writes {"execute": CMD, "arguments": ARGS,
 *    "id": N} plus CRLF, ASCII only.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest message accepted from the server, excluding the line terminator. */
#define QMP_MSG_MAX (1024 * 1024)

struct qmp_splitter {
	char *buf;    /* owned; grows up to max + 2 bytes */
	size_t cap;   /* allocated bytes */
	size_t max;   /* longest line accepted, without terminator */
	size_t start; /* first byte not yet returned as a line */
	size_t len;   /* bytes held, counted from buf */
	size_t scan;  /* bytes from start already known to hold no '\n' */
	int error;    /* sticky: 0, -EMSGSIZE or -ENOMEM */
};

/* max = 0 means QMP_MSG_MAX.  Nothing is allocated until the first feed. */
void qmp_splitter_init(struct qmp_splitter *s, size_t max);
void qmp_splitter_done(struct qmp_splitter *s);

/*
 * Append up to len bytes; returns how many were taken (all of them unless
 * the buffer is at its limit or memory ran out).  Lines returned earlier by
 * qmp_splitter_next() become invalid.  When fewer than len bytes are taken,
 * call qmp_splitter_next() until it returns <= 0, then feed the rest; if it
 * returns 0 and nothing more can be taken, memory ran out (-ENOMEM is also
 * reported by the next call to qmp_splitter_next()).
 */
size_t qmp_splitter_feed(struct qmp_splitter *s, const void *data, size_t len);

/*
 * Return the next complete line (without its "\r\n" or "\n") in *ret and
 * *ret_len.  The line is NUL-terminated in place and stays valid until the
 * next feed.  Returns 1 with a line, 0 if no complete line is buffered,
 * -EMSGSIZE if the pending line is longer than the limit, -ENOMEM if the
 * buffer could not grow.  After an error the splitter stays in error.
 */
int qmp_splitter_next(struct qmp_splitter *s, const char **ret, size_t *ret_len);

/* Bytes of an unfinished line held (to tell EOF mid-message from a clean EOF). */
size_t qmp_splitter_pending(const struct qmp_splitter *s);

enum qmp_msg_type {
	QMP_MSG_GREETING,
	QMP_MSG_RETURN,
	QMP_MSG_ERROR,
	QMP_MSG_EVENT,
};

struct qmp_msg {
	enum qmp_msg_type type;
	json_t *root; /* owned: the whole message; every pointer below borrows from it */
	json_t *id;   /* RETURN/ERROR: the "id" member, NULL if absent */
	union {
		struct {
			int major, minor, micro;
			json_t *capabilities; /* array, NULL if absent */
		} greeting;
		json_t *ret; /* RETURN: the "return" value (any JSON type) */
		struct {
			const char *class;
			const char *desc;
		} error;
		struct {
			const char *name;
			json_t *data; /* object, NULL if absent */
			int64_t seconds, microseconds;
		} event;
	};
};

/*
 * Decode and classify one line.  Returns 0 and fills *ret (release it with
 * qmp_msg_done()), or:
 *   -EBADMSG   not valid JSON (or not UTF-8, or nested too deeply);
 *   -EPROTO    valid JSON that is not an object, or an object of none of the
 *              four shapes above (a known key with a wrong type, several
 *              keys at once, a missing mandatory member);
 * with a one-line explanation in err (size errsz, may be NULL/0).  Integers
 * above INT64_MAX (QEMU's uint64 values) are accepted as reals.
 */
int qmp_msg_parse(const char *line, size_t len, struct qmp_msg *ret, char *err, size_t errsz);
void qmp_msg_done(struct qmp_msg *m);

/*
 * The message's id as an unsigned integer: 0 and *ret if it is a JSON
 * integer >= 0 (or an integral real), -ENOENT if there is no id, -EINVAL
 * for any other id (a string, a negative number...).
 */
int qmp_msg_id(const struct qmp_msg *m, uint64_t *ret);

const char *qmp_msg_type_to_string(enum qmp_msg_type t);

/*
 * Encode a command line: {"execute": cmd, "arguments": args, "id": id}
 * and "\r\n".  args is borrowed and may be NULL (the member is omitted);
 * it must be an object.  id must be <= INT64_MAX.  Returns 0 with a
 * malloc()ed, NUL-terminated string in *ret and its length (terminator
 * included, NUL excluded) in *ret_len, or -EINVAL (bad arguments), -ENOMEM,
 * -EMSGSIZE (longer than QMP_MSG_MAX).
 */
int qmp_encode_command(const char *cmd, const json_t *args, uint64_t id, char **ret,
		       size_t *ret_len);
