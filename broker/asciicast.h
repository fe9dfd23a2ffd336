/* SPDX-License-Identifier: MIT */
/*
 * asciicast v2 lines for session recordings (recording.h writes them).
 * Pure: everything here formats into a buffer the caller gives; no I/O, no
 * clock (times are passed in).
 *
 * A recording is a header line, then one JSON array per event:
 *
 *   {"version": 2, "width": 80, "height": 24, "timestamp": 1764950000,
 *    "title": "...", "env": {"TERM": "..."},
 *    "console": "vm:serial0", "vm": "vm", "principal": "alice (ssh SHA256:...)"}
 *   [0.000000, "o", "output the client was sent"]
 *   [1.250000, "m", "input from alice (ssh SHA256:...)"]
 *   [1.250001, "i", "ls\r"]
 *   [2.000000, "r", "100x30"]
 *
 * console, vm and principal are ttyhub's own header members (asciinema
 * ignores members it does not know).  t is seconds since the recording
 * started, printed with microsecond precision.
 *
 * Event data is always valid UTF-8 in a JSON string: bytes that are not
 * part of a well-formed sequence become U+FFFD, and a sequence cut at the
 * end of a chunk is held back (at most 3 bytes per stream) and completed by
 * the next chunk of the same stream, so a character is never split across
 * two events.  Control bytes are escaped (\r, \n, \t, \b, \f, \uXXXX).
 *
 * Password redaction (on unless asked otherwise): while the guest's output
 * so far ends with a line that looks like a password prompt (it holds
 * "password", "passphrase" or the word "PIN", case-insensitive, and ends
 * with ':' and optional spaces; escape sequences and other control bytes do
 * not count, and a CR or LF ends an unfinished escape sequence, so that no
 * garbage before a prompt can hide it: struct asciicast_prompt follows that), the next input is not
 * recorded as typed: everything up to and including the next CR or LF (and
 * an LF right after a CR) becomes ONE "i" event "[redacted]" followed by
 * that line end.  A redacted line that never ends is written as
 * "[redacted]" by asciicast_finish().  Output that arrives while a line is
 * being redacted (echoed asterisks, say) does not end the redaction; only
 * the line end does, and one prompt redacts one line (the next is redacted
 * only after the guest printed a prompt again).  Whether the output ends
 * with a prompt is the caller's to say (asciicast_input()'s prompt): the
 * console follows its guest's whole output, so that every recording of it
 * agrees, also one whose client lags behind.  Input typed ahead, before the
 * prompt came, is not redacted.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What replaces a redacted input line. */
#define ASCIICAST_REDACTED "[redacted]"
/* Bytes of the current output line kept for prompt detection. */
#define ASCIICAST_PROMPT_TAIL 80
/* The longest "[t, "x", "" ]\n" around an event's data (t up to 2^64 usec). */
#define ASCIICAST_EVENT_OVERHEAD 48
/*
 * Buffer size that holds any one call's events for len bytes of data: each
 * byte escapes to at most 6 ("\u001b"), 3 held-back bytes come first, and
 * redacted input adds a second event (asciicast_finish() up to three).
 */
#define ASCIICAST_EVENTS_SIZE(len) (6 * ((size_t)(len) + 3) + 3 * ASCIICAST_EVENT_OVERHEAD + 32)

struct asciicast_header {
	unsigned width, height;
	int64_t timestamp;     /* Unix time in seconds */
	const char *title;     /* or NULL */
	const char *term;      /* env.TERM, or NULL: no env */
	const char *console;   /* ttyhub's own members, or NULL */
	const char *vm;
	const char *principal;
};

/* One direction's bytes held back because they end inside a UTF-8 sequence. */
struct asciicast_utf8 {
	uint8_t held[3];
	uint8_t n;
};

/* Follows output to say whether it ends with a password prompt (see above). */
struct asciicast_prompt {
	/* The current output line, lower-cased, without escape sequences and controls. */
	char line[ASCIICAST_PROMPT_TAIL];
	size_t line_len;
	uint8_t esc;             /* escape-sequence state (asciicast.c) */
	uint64_t seen;           /* bytes fed: tells one prompt from the next */
};

struct asciicast {
	bool redact;             /* redaction on */
	struct asciicast_utf8 out, in;
	bool redacting;          /* inside a redacted input line */
	bool redacted_any;       /* that line already swallowed bytes */
	bool answered;           /* a line was redacted for the prompt at answered_at */
	uint64_t answered_at;    /* its asciicast_prompt.seen: one prompt, one redacted line */
};

void asciicast_init(struct asciicast *a, bool redact);

/* Start following output (nothing seen: no prompt). */
void asciicast_prompt_init(struct asciicast_prompt *p);
/* More output. */
void asciicast_prompt_feed(struct asciicast_prompt *p, const void *data, size_t len);
/* Does the output so far end with a password prompt? */
bool asciicast_prompt_now(const struct asciicast_prompt *p);

/*
 * The header line (with its newline).  Returns its length, or -ENOBUFS
 * when it does not fit in size (a buffer of 4096 holds any header whose
 * strings are at most 600 bytes together).
 */
int asciicast_header(const struct asciicast_header *h, char *out, size_t size);

/*
 * Guest output the client was sent, as an "o" event (none when the data
 * only completes nothing: all of it held back).  out must hold
 * ASCIICAST_EVENTS_SIZE(len).  Returns the bytes written.
 */
size_t asciicast_output(struct asciicast *a, uint64_t t_usec, const void *data, size_t len,
			char *out);

/*
 * More output for the "o" event that ended the caller's last line, when the
 * caller prefers one event to many tiny ones (a serial port that delivers
 * byte by byte): the caller removes that event's close ("\"]\n",
 * ASCIICAST_CLOSE_LEN bytes) and out gets the data's rest of the string and
 * a new close (at least that).  out must hold ASCIICAST_EVENTS_SIZE(len).
 */
#define ASCIICAST_CLOSE "\"]\n"
#define ASCIICAST_CLOSE_LEN 3
size_t asciicast_output_more(struct asciicast *a, const void *data, size_t len, char *out);

/*
 * Input that reached the guest, as "i" events.  prompt follows the guest's
 * output (NULL: no redaction): if it ends with a password prompt that no
 * line was redacted for yet, a redacted line starts (see above).  out must
 * hold ASCIICAST_EVENTS_SIZE(len).  Returns the bytes written.
 */
size_t asciicast_input(struct asciicast *a, uint64_t t_usec,
		       const struct asciicast_prompt *prompt, const void *data, size_t len,
		       char *out);

/*
 * A marker ("m") or a resize ("r", text "COLSxROWS"): type is 'm' or 'r'.
 * text is made valid UTF-8 and escaped.  out must hold
 * ASCIICAST_EVENTS_SIZE(strlen(text)).  Returns the bytes written.
 */
size_t asciicast_event(uint64_t t_usec, char type, const char *text, char *out);

/*
 * End of the recording: what is still held back (incomplete sequences, as
 * U+FFFD) and a redacted line that never ended.  out must hold
 * ASCIICAST_EVENTS_SIZE(0).  Returns the bytes written.
 */
size_t asciicast_finish(struct asciicast *a, uint64_t t_usec, char *out);

/*
 * Helpers, exposed for tests.  asciicast_escape() writes data as the inside
 * of a JSON string (valid UTF-8, controls escaped; at most 6 bytes per
 * input byte) and returns the length.  asciicast_is_prompt() says whether
 * a (lower-cased) line looks like a password prompt.
 */
size_t asciicast_escape(const uint8_t *data, size_t len, char *out);
bool asciicast_is_prompt(const char *line, size_t len);
