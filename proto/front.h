/* SPDX-License-Identifier: MIT */
/*
 * A connection to ttyhubd as a front (the ttyhub CLI, ttyhub-sshd, later a
 * web front): the requests a front sends, the escape-prefix keystroke
 * filter, the broker's frames decoded into typed events, and the text a
 * user is shown for them.
 *
 * Event-loop agnostic and non-blocking: the caller owns the socket and
 * waits on it however it likes (poll, sd-event, the poller).  struct front
 * only borrows the fd: front_fill() reads what is available, front_flush()
 * writes what the socket takes, requests are queued in a bounded obuf, and
 * front_next_event() hands out one event per call.  The front decides no
 * rights: the broker answers every request for the principal the front
 * speaks for (docs/protocol.md), and events carry what it said.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "escape.h"
#include "obuf.h"
#include "frame-reader.h"
#include "proto.h"

struct front {
	int fd;                  /* borrowed: the caller owns the socket */
	struct frame_reader in;  /* from the broker */
	struct obuf out;         /* requests and keystrokes, bounded */
	struct escape esc;
	json_t *list;            /* owned: `list` pieces joined so far */
	json_t *msg;             /* owned: the message of the last event */
	char err[256];           /* why front_next_event() returned -EBADMSG */
};

/* Whom a front speaks for: an SSH key as in authorized_keys, and the client address. */
struct front_principal {
	const char *key;  /* "TYPE BASE64" */
	const char *from; /* "ADDR" */
};

enum front_event_type {
	FRONT_EV_HELLO,
	FRONT_EV_AUTHORIZED,
	FRONT_EV_ATTACHED,
	FRONT_EV_STATE,
	FRONT_EV_NOTICE,
	FRONT_EV_WHO,
	FRONT_EV_LIST,       /* complete: the pieces joined */
	FRONT_EV_BREAK_SENT,
	FRONT_EV_DETACHED,
	FRONT_EV_ERROR,
	FRONT_EV_DATA,
};

/*
 * One decoded event.  Pointers are borrowed: msg and the strings live until
 * the next front_next_event() or front_done(), data until the next
 * front_fill().  Absent string members are NULL.
 */
struct front_event {
	enum front_event_type type;
	json_t *msg;                /* the whole message (NULL for DATA) */
	const uint8_t *data;        /* DATA */
	size_t len;
	const char *console;        /* ATTACHED, STATE, WHO, BREAK_SENT, DETACHED */
	const char *text;           /* NOTICE text, ERROR message, DETACHED text */
	const char *code;           /* ERROR */
	enum detach_reason reason;  /* DETACHED; _DETACH_REASON_INVALID if unknown */
	bool writer;                /* ATTACHED, STATE: our role is writer */
	/*
	 * ATTACHED, and STATE when it has the member: the broker's verdict for
	 * the principal.  ATTACH_RW when it says nothing (a local admin, an older
	 * broker): the broker discards a watcher's input anyway.
	 */
	enum attach_mode access;
	bool may_break;             /* ATTACHED: the "break" member */
	const char *fingerprint;    /* AUTHORIZED */
	const char *comment;        /* AUTHORIZED */
	const char *you;            /* HELLO, AUTHORIZED */
};

/* Connect to the broker's UNIX socket.  Returns the fd (the caller's) or -errno. */
int front_connect(const char *path, bool nonblock);

/* out_max bounds the queue to the broker (requests are small; keystrokes wait for room). */
int front_init(struct front *f, int fd, size_t out_max, const uint8_t prefix[2]);
void front_done(struct front *f);

/*
 * Requests, queued in f->out: 0, -ENOBUFS (queue full), -EMSGSIZE, or
 * -EINVAL when an argument cannot go on the wire (not UTF-8).
 * client is the front's name ("ttyhub", "ttyhub-sshd"); p may be NULL.
 */
int front_hello(struct front *f, const char *client, const struct front_principal *p);
int front_authorize(struct front *f, const struct front_principal *p);
/* replay: lines, PROTO_REPLAY_ALL or PROTO_REPLAY_DEFAULT. */
int front_attach(struct front *f, const char *console, enum attach_mode mode, long replay);
/* console NULL: all consoles (list), the attached one (who, break). */
int front_list(struct front *f, const char *console);
int front_who(struct front *f, const char *console);
int front_break(struct front *f, const char *console);
int front_detach(struct front *f);
int front_resize(struct front *f, unsigned cols, unsigned rows);
/*
 * The request an escape command stands for (detach, take, release, who,
 * replay, break).  -EOPNOTSUPP for ESCAPE_HELP and ESCAPE_NONE, which the
 * front shows itself.
 */
int front_escape_request(struct front *f, enum escape_cmd cmd);

/*
 * Feed keystrokes through the escape filter.  Bytes for the console are
 * queued as data when may_write, else dropped (counted in *ret_dropped);
 * the first escape command stops the feed and is stored in *ret_cmd
 * (ESCAPE_NONE if none).  At most what fits in the queue while reserve bytes
 * stay free (so requests always fit) is consumed.  Returns the bytes
 * consumed; the caller acts on the command and feeds the rest.
 */
size_t front_keys(struct front *f, const uint8_t *data, size_t len, bool may_write, size_t reserve,
		  size_t *ret_dropped, enum escape_cmd *ret_cmd);

/* Read what the socket has (0 if nothing) or -errno; front_eof() after the broker closed. */
ssize_t front_fill(struct front *f);
static inline bool front_eof(const struct front *f)
{
	return f->in.eof;
}
/* Write what the socket takes: bytes left queued, or -errno. */
ssize_t front_flush(struct front *f);
static inline size_t front_pending(const struct front *f)
{
	return obuf_len(&f->out);
}

/*
 * The next event from what front_fill() read: 1 with *ret, 0 when no
 * complete event is buffered, -EBADMSG for a control frame that is no
 * message or a list that cannot be joined (f->err says why; the stream
 * goes on), -EPROTO when the frame stream itself is broken (the connection
 * is useless).  Messages of types a front does not know are skipped.
 */
int front_next_event(struct front *f, struct front_event *ret);

/* The exit status a detach stands for: 0 when the user asked for it, else 1. */
int front_detach_status(enum detach_reason r);

/*
 * The sentence a user is shown for an event ("attached to ...", a notice's
 * text, "serial break sent", "detached: ...", an error's message, the
 * read-only hint for a `read-only` error), written to buf (NUL-terminated).
 * Returns its length; 0 for events that show no text (DATA, STATE, WHO,
 * LIST, HELLO, AUTHORIZED).  Broker text is copied as it is: front_line()
 * escapes it.
 */
size_t front_event_text(const struct front *f, const struct front_event *e, char *buf,
			size_t size);

/*
 * A "[ttyhub] TEXT" line for the user's terminal: TEXT is escaped again
 * (defence in depth), a line break goes first unless the cursor is at the
 * start of a line, and lines end in CRLF (raw terminal) or LF.  Returns
 * the length written to buf (always NUL-terminated).
 */
size_t front_line(const char *text, bool at_bol, bool crlf, char *buf, size_t size);

/* front_event_text() as a front_line(); 0 (and "") for events that show no text. */
size_t front_format(const struct front *f, const struct front_event *e, bool at_bol, bool crlf,
		    char *buf, size_t size);

/* The status line for an "attached" answer, e.g. "attached to vm:serial0 read-only; ...". */
void front_attached_text(json_t *attached, const uint8_t prefix[2], char *buf, size_t size);

/* The hint shown to a watcher whose keystrokes were discarded. */
void front_readonly_hint(const uint8_t prefix[2], char *buf, size_t size);
