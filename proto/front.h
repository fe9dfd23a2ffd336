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
 *
 * Resume (docs/protocol.md "Resume"): front_next_event() keeps where the
 * front is in its console's output (struct front_book: the console as the
 * broker named it, the epoch, the end of the last output frame, the
 * writer's lease).  When the broker goes away (EOF, a broken stream, or
 * `detached` with reason shutdown) the caller closes its fd and calls
 * front_lost(); keystrokes fed meanwhile are held (bounded).  Once a new
 * connection is up, front_reconnect() puts the same struct front on it and
 * queues hello + attach-with-resume; the `attached` that answers it is
 * flagged (front_event.reconnected), the held keystrokes go out if we write
 * again, and front_format() shows the one line the user sees.  front.c
 * never sleeps and never opens anything: front_backoff_*() says how long to
 * wait, the caller owns timers and fds.
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

/* Keystrokes held while the broker is away (front_lost() .. the re-attach). */
#define FRONT_HELD_MAX 4096
/* A console name as `attached` gives it, kept for the re-attach. */
#define FRONT_CONSOLE_MAX 512

/* Where the connection is, for resume. */
enum front_link {
	FRONT_LIVE,     /* connected (or never lost) */
	FRONT_LOST,     /* front_lost(): no connection; keystrokes are held */
	FRONT_RESUMING, /* front_reconnect() queued the re-attach; its answer has not come */
};

/*
 * The resume bookkeeping front_next_event() keeps (front.h's header
 * comment).  Read it; only front.c writes it.
 */
struct front_book {
	char console[FRONT_CONSOLE_MAX]; /* the broker's name from `attached`, or as asked; "" none */
	enum attach_mode mode;           /* as the user asked (front_attach*()) */
	long replay;                     /* as asked */
	bool asked;                      /* an attach was queued: a reconnect re-attaches */
	bool attached;                   /* an `attached` came (on any connection) */
	bool positioned;                 /* epoch and offset are known */
	uint64_t epoch;                  /* from `attached` (or --resume) */
	uint64_t offset;                 /* end of the last output frame, or attached.offset */
	char lease[PROTO_LEASE_STRLEN + 1]; /* the writer's lease, "" none */
	bool writer;                     /* our role, from attached/state */
};

struct front {
	int fd;                  /* borrowed: the caller owns the socket */
	struct frame_reader in;  /* from the broker */
	struct obuf out;         /* requests and keystrokes, bounded */
	struct escape esc;
	json_t *list;            /* owned: `list` pieces joined so far */
	json_t *msg;             /* owned: the message of the last event */
	char err[256];           /* why front_next_event() returned -EBADMSG or -EPROTO */
	bool broken;             /* -EPROTO for a well-framed but forbidden frame: sticky */
	struct front_book book;
	enum front_link link;
	size_t out_rest;         /* bytes of a partly written frame at the queue's head */
	uint8_t held[FRONT_HELD_MAX]; /* keystrokes typed while not LIVE */
	size_t held_len;
	size_t held_over;        /* keystrokes that did not fit in held (discarded, counted) */
};

/* Whom a front speaks for: an SSH key as in authorized_keys, and the client address. */
struct front_principal {
	const char *key;  /* "TYPE BASE64" */
	const char *from; /* "ADDR" */
	/*
	 * A gateway speaking for a user (ttyhub-sshd --gateway; docs/protocol.md
	 * "Gateways"): the user's rights on the gateway as the gateway's ttyhubd
	 * gave them in `authorized` ("grant"), and the comment of the user's
	 * line there.  NULL otherwise: hello then has no such members.
	 */
	const char *grant;
	const char *comment;
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
	FRONT_EV_DATA,       /* an output frame: console bytes [start, end) */
	FRONT_EV_OUTPUT,     /* the answer to front_output() */
	FRONT_EV_WEB_LINK,   /* the answer to front_web_link(): url, console, expires_in */
	FRONT_EV_REDEEMED,   /* the answer to front_redeem(): session, console, access, you */
	FRONT_EV_ACTION_DONE, /* the answer to front_action(): console, action, key */
};

/* How the broker continued a resume attach (attached.resumed). */
enum front_resumed {
	FRONT_RESUMED_NONE,      /* no resume asked, or an older broker */
	FRONT_RESUMED_EXACT,     /* continues exactly at our offset */
	FRONT_RESUMED_GAP,       /* bytes were lost (lost); the broker sent a notice */
	FRONT_RESUMED_RESTARTED, /* the console restarted (new epoch); notice + replay */
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
	/*
	 * AUTHORIZED: the key's line as grant text (NULL from an older broker:
	 * treat as "", nothing) and whether it is a gateway's line.
	 */
	const char *grant;
	bool gateway;
	const char *you;            /* HELLO, AUTHORIZED, REDEEMED */
	const char *url;            /* WEB_LINK: the link to open (it holds the token: never log it) */
	const char *session;        /* REDEEMED: the web session's secret (never log it) */
	uint64_t expires_in;        /* WEB_LINK, REDEEMED: seconds */
	const char *action, *key;   /* ACTION_DONE: "sysrq" ..., sysrq's key (else NULL) */
	/*
	 * DATA: the console offsets [start, end) of the frame (replayed bytes
	 * may differ in number from end - start).  OUTPUT: start and next, data
	 * and len the contents (UTF-8 from the broker, may hold NULs).
	 */
	uint64_t start, end;
	uint64_t epoch;             /* ATTACHED, OUTPUT: 0 when absent or malformed */
	uint64_t lost;              /* ATTACHED (gap), OUTPUT (expired) */
	bool more, expired;         /* OUTPUT */
	enum front_resumed resumed; /* ATTACHED */
	/*
	 * ATTACHED answering front_reconnect()'s attach (or ERROR refusing it):
	 * the front is LIVE again.  keys_sent keystrokes held during the gap
	 * were queued to the broker (we write again), keys_dropped were
	 * discarded (we no longer write, or they overflowed FRONT_HELD_MAX).
	 */
	bool reconnected;
	size_t keys_sent, keys_dropped;
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
/* A keepalive: the broker answers `pong`, which front_next_event() skips. */
int front_ping(struct front *f);
/*
 * Web links (docs/protocol.md "Web links and sessions").  front_web_link():
 * a one-time link to console for whom this connection speaks (ro: narrowed
 * to watching), answered by FRONT_EV_WEB_LINK or an error.  A web front:
 * front_redeem() exchanges a link's token for a session (FRONT_EV_REDEEMED),
 * front_hello_session() speaks for one (instead of front_hello()); from is
 * the browser's address (NULL: none).
 */
int front_web_link(struct front *f, const char *console, bool ro);
int front_redeem(struct front *f, const char *token, const char *from);
int front_hello_session(struct front *f, const char *client, const char *session,
			const char *from);
/*
 * replay: lines, PROTO_REPLAY_ALL or PROTO_REPLAY_DEFAULT.  Records console,
 * mode and replay in f->book for a later re-attach.
 */
int front_attach(struct front *f, const char *console, enum attach_mode mode, long replay);
/*
 * An attach that continues at epoch:offset (`ttyhub attach --resume`, the
 * SSH `+resume=`); lease NULL: none.  Records the point in f->book too, so
 * a reconnect before the answer resumes there.
 */
int front_attach_resume(struct front *f, const char *console, enum attach_mode mode, long replay,
			uint64_t epoch, uint64_t offset, const char *lease);
/* The stored output of a console from start (has_start false: the oldest byte); max 0: default. */
int front_output(struct front *f, const char *console, bool has_start, int64_t start,
		 unsigned max);
/* console NULL: all consoles (list), the attached one (who, break). */
int front_list(struct front *f, const char *console);
int front_who(struct front *f, const char *console);
int front_break(struct front *f, const char *console);
/* A rescue action ("sysrq" with key, "nmi", "reset", "powerdown"); console NULL: attached. */
int front_action(struct front *f, const char *console, const char *action, const char *key);
int front_detach(struct front *f);
int front_resize(struct front *f, unsigned cols, unsigned rows);
/*
 * The request an escape command stands for (detach, take, release, who,
 * replay, break, the rescue actions).  -EOPNOTSUPP for ESCAPE_HELP,
 * ESCAPE_NONE and what front_escape_text() answers, which the front shows
 * itself.
 */
int front_escape_request(struct front *f, enum escape_cmd cmd);
/*
 * What the front shows itself for an escape command instead of asking the
 * broker: the question of ESCAPE_CONFIRM ("reset NAME? [y/N]"), that a
 * reset, powerdown or sysrq was cancelled.  Returns its length (0: none,
 * ask the broker with front_escape_request()).  buf is NUL-terminated.
 */
size_t front_escape_text(const struct front *f, enum escape_cmd cmd, char *buf, size_t size);

/*
 * Feed keystrokes through the escape filter.  Bytes for the console are
 * queued as data when may_write, else dropped (counted in *ret_dropped);
 * the first escape command stops the feed and is stored in *ret_cmd
 * (ESCAPE_NONE if none).  At most what fits in the queue while reserve bytes
 * stay free (so requests always fit) is consumed.  Returns the bytes
 * consumed; the caller acts on the command and feeds the rest.
 *
 * While the front is not LIVE (front_lost() until the re-attach is
 * answered) the console bytes are held instead (when may_write): up to
 * FRONT_HELD_MAX, the rest discarded and counted in *ret_dropped (and in
 * f->held_over, reported with the re-attach).  Escape commands still stop
 * the feed; their requests return -ENOTCONN then (a detach is the caller's
 * to act on: end the session and show front_resume_hint()).
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

/*
 * The broker went away (EOF, -EPROTO, a write error, or `detached` with
 * reason shutdown: front_is_shutdown()).  The caller closes its fd; f keeps
 * its bookkeeping and holds keystrokes from now on.  Unsent keystrokes
 * still queued (whole data frames) move into the held buffer, since the
 * broker never saw them; the reader and the queue are emptied.  Idempotent.
 */
void front_lost(struct front *f);
/*
 * Use f on a new connection fd (borrowed, as in front_init()): the reader
 * and the queue start empty, then hello (client, p as front_hello()) and,
 * when an attach was asked, the attach again, with resume {epoch, offset,
 * lease} once a position is known and mode rw when we were the writer (ro
 * stays ro, a force does not take over again).  The front is RESUMING until
 * the answer: front_next_event() flags it (reconnected) and sends or drops
 * the held keystrokes.  Calls front_lost() first if the caller did not.
 * 0 or a request error (-ENOBUFS, -EINVAL).
 */
int front_reconnect(struct front *f, int fd, const char *client, const struct front_principal *p);
/* The event says the broker is stopping (`detached` with reason shutdown): reconnect. */
bool front_is_shutdown(const struct front_event *e);
/* Drop held keystrokes (the session ends during a gap); returns how many were held or lost. */
size_t front_discard_held(struct front *f);

/*
 * Reconnect back-off, pure: the caller passes CLOCK_MONOTONIC in usec and
 * arms its own timer.  The first attempt is at once, then delays start at
 * FRONT_BACKOFF_MIN_USEC and double up to FRONT_BACKOFF_MAX_USEC; after
 * FRONT_GIVE_UP_USEC since
 * front_backoff_start() front_backoff_next() says give up.
 */
#define FRONT_BACKOFF_MIN_USEC (50 * 1000ULL)
#define FRONT_BACKOFF_MAX_USEC (1000 * 1000ULL)
#define FRONT_GIVE_UP_USEC (60 * 1000 * 1000ULL)
struct front_backoff {
	uint64_t since;  /* when the broker went away */
	uint64_t delay;  /* the next delay */
	unsigned tries;
};
void front_backoff_start(struct front_backoff *b, uint64_t now);
/*
 * The delay before the next connect attempt in *ret_delay (never past the
 * give-up point), and true; false once the give-up window has passed.
 */
bool front_backoff_next(struct front_backoff *b, uint64_t now, uint64_t *ret_delay);
/* The line for giving up, e.g. "ttyhubd did not come back within 60 s; giving up". */
size_t front_give_up_text(char *buf, size_t size);

/*
 * The resume hint after a detach, a give-up or an SSH front's shutdown,
 * without the "[ttyhub] " (front_line() adds it):
 *   FRONT_HINT_CLI: "to continue where you left off: ttyhub attach NAME --resume EPOCH:OFFSET"
 *                   (with " --ro" when the attach was read-only)
 *   FRONT_HINT_SSH: "to continue where you left off: ssh [-p PORT] NAME+resume=EPOCH:OFFSET@HOST"
 *                   (port 0 or 22: no -p; host NULL: "HOST")
 * NAME is the console as the broker named it; words are shell-quoted when
 * needed.  Returns the length written (NUL-terminated), 0 and "" when no
 * position is known (nothing came yet).
 */
enum front_hint_style {
	FRONT_HINT_CLI,
	FRONT_HINT_SSH,
};
size_t front_resume_hint(const struct front *f, enum front_hint_style style, const char *host,
			 unsigned port, char *buf, size_t size);

/* The exit status a detach stands for: 0 when the user asked for it, else 1. */
int front_detach_status(enum detach_reason r);

/*
 * The sentence a user is shown for an event ("attached to ...", a notice's
 * text, "serial break sent", "detached: ...", an error's message, the
 * read-only hint for a `read-only` error), written to buf (NUL-terminated).
 * Returns its length; 0 for events that show no text (DATA, STATE, WHO,
 * LIST, HELLO, AUTHORIZED, OUTPUT, WEB_LINK, REDEEMED).  Broker text is copied as it is:
 * front_line() escapes it.
 *
 * An `attached` that answers front_reconnect() shows no "attached to"
 * text but the one resume line: "broker restarted, nothing lost" when
 * resumed exactly; nothing for a gap or a restarted console (the broker's
 * own notice says what happened); in each case the keystrokes discarded
 * are counted ("N keystrokes typed while ttyhubd was away were discarded:
 * ...").
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
