/* SPDX-License-Identifier: MIT */
/*
 * Console logs: one append-only file per console in the log directory,
 * capped on every write and rotated like virtlogd (NAME.log, NAME.log.1 ...
 * NAME.log.N, the oldest dropped).  The disk use of one console's logs never
 * exceeds max_size * (backups + 1): the current file never grows past
 * max_size, and a rotation removes the oldest file before the new one gets
 * any byte.
 *
 * Rotation keeps whole lines.  The current file is filled up to the last
 * complete line that fits; a line that is still incomplete when the file is
 * full is moved into the new file.  Only a line longer than max_size (counted
 * from the start of a file) is cut, at exactly max_size.
 *
 * Optional timestamps prefix every line with "YYYY-MM-DDTHH:MM:SS.mmmZ "
 * (UTC, the time the line's first byte was logged); the cap counts them.
 * Markers ("[ttyhub] <UTC time> text") always stand on their own line.
 *
 * Logging never fails or stalls the console.  Any error (full disk,
 * read-only or missing directory, I/O error) is logged ONCE with log_error()
 * naming the file and the reason; from then on bytes are dropped and
 * counted, and at most once per retry interval (30 s by default, monotonic
 * clock) the next write reopens the directory and the file.  The first write
 * that works again logs "logging resumed" and is preceded in the file by a
 * "[ttyhub] <time> N bytes not logged" marker.  This also holds for a
 * failure at conslog_open(): it still returns a usable object that drops.
 *
 * Files are reached through a directory fd opened O_DIRECTORY|O_NOFOLLOW;
 * the log file is opened O_APPEND|O_NOFOLLOW (mode 0640) and must be a
 * regular file with a single link.  A restart continues the same file: its
 * size comes from fstat(), and an unfinished last line is still moved whole
 * at the next rotation.  Backups beyond the configured count (left by a
 * larger earlier setting) are removed at open.  The fd is not shared.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define CONSLOG_DEFAULT_MAX_SIZE ((size_t)2 << 20)
#define CONSLOG_DEFAULT_BACKUPS 3
#define CONSLOG_MIN_SIZE ((size_t)4096)
#define CONSLOG_MAX_BACKUPS 99
#define CONSLOG_DEFAULT_RETRY_USEC (30 * UINT64_C(1000000))

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
#define CONSLOG_TIME_LEN 24
/* Longest base name kept from a console name before a hash is appended. */
#define CONSLOG_NAME_BASE_MAX 64
/* Size of a buffer for a file name from conslog_file_name() (with NUL). */
/* Hex digits of the name's hash (the first 64 bits of its SHA-256). */
#define CONSLOG_HASH_HEX 16
#define CONSLOG_FILE_NAME_MAX (CONSLOG_NAME_BASE_MAX + 1 + CONSLOG_HASH_HEX + 4 + 1)
/* Markers longer than this (after escaping) are cut and end in "...". */
#define CONSLOG_MARK_MAX 512

struct conslog_config {
	const char *dir;     /* log directory; must exist (it is not created) */
	size_t max_size;     /* cap of one file, >= CONSLOG_MIN_SIZE */
	unsigned backups;    /* rotated files kept, <= CONSLOG_MAX_BACKUPS; 0: restart in place */
	bool timestamps;     /* prefix every line with a UTC timestamp */
	uint64_t retry_usec; /* retry interval after an error; 0: CONSLOG_DEFAULT_RETRY_USEC */
};

struct conslog;

/*
 * Open (or create) the log of console_name in cfg->dir.  Returns 0 and an
 * object in *ret, also when the file cannot be opened now (that is logged
 * once and retried later, see above).  Returns -EINVAL for a bad config or
 * an empty console name, -ENOMEM.  cfg is copied.
 */
int conslog_open(const struct conslog_config *cfg, const char *console_name,
		 struct conslog **ret);

/* Log guest output.  Never fails; l may be NULL (logging off). */
void conslog_write(struct conslog *l, const void *data, size_t len);

/*
 * Log a marker line "[ttyhub] <time> text" (for attach, detach, takeover,
 * break, guest reset ...).  text is escaped (one marker = one line) and cut
 * at CONSLOG_MARK_MAX.  Never fails; l may be NULL.
 */
void conslog_mark(struct conslog *l, const char *text);

/* conslog_mark() with printf-style formatting (the text is cut at CONSLOG_MARK_MAX). */
void conslog_markf(struct conslog *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Accepts NULL; returns NULL. */
struct conslog *conslog_free(struct conslog *l);

/* Current file name relative to the log directory ("vm_serial0.log"). */
const char *conslog_name(const struct conslog *l);

/*
 * Tests only: replace write(2) for the log's appends (failure injection).
 * NULL restores write(2).  Process-wide.
 */
void conslog_set_write_fn(ssize_t (*fn)(int fd, const void *buf, size_t len));

/* ---- Pure helpers (no I/O), exposed for tests. ---- */

/*
 * File name for a console: [A-Za-z0-9._-] are kept, anything else becomes
 * '_', a leading '.' becomes '_', then ".log" is appended ("web-01" ->
 * "web-01.log").  When any byte had to be replaced (':' included: "a_b:c"
 * and "a:b_c" must not share a file), the name is longer than
 * CONSLOG_NAME_BASE_MAX (kept up to that length), or a kept name itself
 * ends in "-" and 16 hex digits, then "-" and the first 64 bits of the
 * full name's SHA-256 in hex are added before ".log" ("vm:serial0" ->
 * "vm_serial0-XXXXXXXXXXXXXXXX.log"): finding another name with the same
 * file takes 2^64 tries.  Never contains '/', never starts with '.'.
 * Returns the length, -EINVAL (empty name) or -ENOBUFS (bufsz <
 * CONSLOG_FILE_NAME_MAX).
 */
int conslog_file_name(const char *console_name, char *buf, size_t bufsz);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" for ts (UTC).  bufsz >= CONSLOG_TIME_LEN + 1.
 * Returns the length, or -EINVAL (buffer too small, or an unrepresentable time). */
int conslog_format_time(const struct timespec *ts, char *buf, size_t bufsz);

/*
 * Copy input to out, inserting prefix (plen bytes) at the start of every
 * line.  *midline says whether the output is in the middle of a line on
 * entry, and is updated.  Stops when out is full; a prefix is only written
 * together with at least one input byte.  Returns the input bytes consumed
 * (all of them whose output fits entirely in outsz); *ret_outlen gets the
 * output length.
 */
size_t conslog_format(const void *in, size_t len, bool *midline, const char *prefix, size_t plen,
		      void *out, size_t outsz, size_t *ret_outlen);

/*
 * One placement step for len bytes about to be appended to a file that holds
 * size bytes, whose last incomplete line starts at line_off (line_off ==
 * size: the file ends at a line boundary).  Append take bytes of the data;
 * then, if rotate, start a new file and move the last carry bytes of the old
 * one (an incomplete line) into it.  Repeat with the rest of the data.
 */
struct conslog_step {
	size_t take;
	bool rotate;
	uint64_t carry;
};

void conslog_plan(uint64_t size, uint64_t line_off, size_t max_size, const void *data, size_t len,
		  struct conslog_step *ret);
