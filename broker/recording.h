/* SPDX-License-Identifier: MIT */
/*
 * Session recordings (--record-dir): one asciicast v2 file (asciicast.h) per
 * attach session, DIR/CONSOLE/YYYYmmddTHHMMSSZ-CLIENTID.cast, where CONSOLE
 * is the console's name made safe for a file name the way console logs do
 * it (conslog_file_name() without ".log").  The console's directory is
 * created (0750) on first use; the file is created O_EXCL|O_NOFOLLOW with
 * mode 0640 (a name that exists gets "-2", "-3" ... before ".cast").
 *
 * What goes in is decided by the owner (client.c and console.c): "o" the
 * output that client was sent, "i" the input that reached the guest while
 * it was attached (from whichever writer typed it; an "m" event "input
 * from LABEL" comes first whenever the typist changes), "m" markers, "r"
 * resizes.  Redaction is asciicast.h's.
 *
 * Bounds and failures.  A file never grows past max_size: the event that
 * would cross it is replaced by a final "m" event "recording truncated at
 * N bytes" (room for it is kept) and nothing more is written.  At most
 * `keep` recordings per console: opening a new one removes the oldest
 * (by the time and client id in their names) until keep - 1 are left.
 *
 * Writing never blocks the console: events are formatted into a bounded
 * buffer (RECORDING_BUFFER) that a timer writes out 100 ms after the first
 * event waiting in it (at once when it runs short of room).  Output that
 * comes within 20 ms of the start of an "o" event still in the buffer
 * joins that event, so a serial port read byte by byte does not cost a
 * line per byte.  A write error (a full disk, say), or a buffer that does not
 * drain because the disk does not keep up, cuts the recording: one log
 * line, a final "m" event saying why (best effort), and nothing more.  A
 * recording that cannot be opened is logged and the session goes on
 * unrecorded (recording_open() fails, the caller keeps NULL).  Every
 * function accepts a NULL recording and does nothing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "asciicast.h"

#define RECORDING_DEFAULT_MAX_SIZE ((size_t)16 << 20)
#define RECORDING_MIN_SIZE ((size_t)4096)
#define RECORDING_DEFAULT_KEEP 100
#define RECORDING_MAX_KEEP 100000
/* Formatted events waiting for the disk, at most. */
#define RECORDING_BUFFER ((size_t)1 << 20)
/* A marker's text is cut at this many bytes. */
#define RECORDING_MARK_MAX 512
/* Room for "YYYYmmddTHHMMSSZ-4294967295-99.cast". */
#define RECORDING_FILE_NAME_MAX 48

struct recording_config {
	const char *dir;  /* absolute; must exist (it is not created) */
	size_t max_size;  /* cap of one file, >= RECORDING_MIN_SIZE */
	unsigned keep;    /* recordings kept per console, 1..RECORDING_MAX_KEEP */
	bool redact;      /* redact input after a password prompt (asciicast.h) */
};

/* Who and what a recording is of (copied as needed; already escaped for display). */
struct recording_info {
	const char *console;   /* console name */
	const char *vm;        /* or NULL */
	const char *principal; /* the attaching client's label */
	unsigned client_id;
	unsigned width, height; /* the client's terminal; 0: 80x24 */
};

struct recording;

/*
 * Start a recording (header written to the buffer).  event: where the
 * buffer is flushed from (NULL: only recording_flush() and
 * recording_free() write, for tests).  Returns 0, -EINVAL (bad config or
 * info), -ENOMEM, or the -errno of the directory or file (logged).
 */
int recording_open(sd_event *event, const struct recording_config *cfg,
		   const struct recording_info *info, struct recording **ret);

/* Output the client was sent ("o"). */
void recording_output(struct recording *r, const void *data, size_t len);
/*
 * Input that reached the guest ("i"), typed by who (a label; "m" when it
 * changes); prompt follows the guest's output for redaction (asciicast.h;
 * NULL: none).
 */
void recording_input(struct recording *r, const char *who, const struct asciicast_prompt *prompt,
		     const void *data, size_t len);
/*
 * A marker ("m"): takeover, break, guest reset, and whatever else must be
 * findable in a recording (rescue actions).  text is cut at
 * RECORDING_MARK_MAX and escaped.
 */
void recording_marker(struct recording *r, const char *text);
void recording_markerf(struct recording *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The client's terminal size changed ("r" COLSxROWS). */
void recording_resize(struct recording *r, unsigned cols, unsigned rows);

/* Write what is buffered now.  Returns 0, or -errno when the recording was cut. */
int recording_flush(struct recording *r);
/* End the recording (what is held back, a redacted line), write it out, close.  NULL ok. */
struct recording *recording_free(struct recording *r);

/* The file, relative to the recording directory ("CONSOLE/NAME.cast"). */
const char *recording_path(const struct recording *r);
/* Bytes formatted so far (what the file holds once flushed). */
uint64_t recording_size(const struct recording *r);

/*
 * Tests only: replace write(2) for the recordings' writes (failure
 * injection), and the clock (CLOCK_MONOTONIC usec).  NULL restores them.
 * Process-wide.
 */
void recording_set_write_fn(ssize_t (*fn)(int fd, const void *buf, size_t len));
void recording_set_clock(uint64_t (*fn)(void));

/* ---- Pure helpers, exposed for tests. ---- */

/*
 * "YYYYmmddTHHMMSSZ-ID.cast" for Unix time t (UTC) and a client id; with
 * seq > 1, "-SEQ" before ".cast".  Returns the length or -EINVAL.
 */
int recording_file_name(int64_t t, unsigned client_id, unsigned seq, char *buf, size_t size);
/*
 * Order of two recording file names: by time, then client id, then seq
 * (numerically).  Returns <0, 0, >0.  Names that do not look like ours are
 * not recordings (recording_is_name()).
 */
int recording_name_compare(const char *a, const char *b);
bool recording_is_name(const char *name);
