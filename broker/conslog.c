/* SPDX-License-Identifier: MIT */
/*
 * Console logs (see conslog.h).  State of one log: the open directory and
 * file, the file's size and where its last incomplete line starts
 * (line_off), and whether the output is in the middle of a line (for
 * timestamps and markers).  Every append goes through conslog_emit(), which
 * asks the pure planner conslog_plan() how much fits and when to rotate, so
 * the cap and the line rules live in one place.
 *
 * Rotation: NAME.log.(N-1) -> NAME.log.N ... NAME.log -> NAME.log.1 with
 * renameat() (which replaces the oldest), then a new NAME.log is created and
 * the incomplete last line of the old file, if any, is copied into it and cut
 * off the old file with ftruncate().  The old file is still open, so this
 * works even if someone deleted it.  With backups = 0 the incomplete line is
 * moved to the start of the same file, which is then truncated.
 *
 * Errors: conslog_suspend() closes both fds, logs once per outage and sets
 * the next retry time; conslog_ready() reopens when it is due.  An outage
 * ends at the first complete write after a reopen (conslog_resumed()), so a
 * disk that is still full after a successful reopen stays quiet.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include <openssl/sha.h>
#include "conslog.h"
#include "log.h"
#include "util.h"

struct conslog {
	char *dir;                        /* owned */
	char *path;                       /* owned; "DIR/NAME.log", for messages */
	char name[CONSLOG_FILE_NAME_MAX]; /* "NAME.log" */
	int dir_fd;                       /* owned; -EBADF during an outage */
	int fd;                           /* owned; -EBADF during an outage */
	uint64_t size;                    /* bytes in the current file */
	uint64_t line_off;                /* start of its last incomplete line (== size: none) */
	bool midline;                     /* the output ends in the middle of a line */
	size_t max_size;
	unsigned backups;
	bool timestamps;
	uint64_t retry_usec;
	bool failing;      /* in an outage, and it has been logged */
	uint64_t dropped;  /* guest bytes not logged in this outage */
	uint64_t retry_at; /* CLOCK_MONOTONIC usec of the next reopen attempt */
};

static ssize_t (*conslog_write_fn)(int fd, const void *buf, size_t len) = write;

void conslog_set_write_fn(ssize_t (*fn)(int fd, const void *buf, size_t len))
{
	conslog_write_fn = fn ? fn : write;
}

/* ---- Pure helpers ---- */

static bool conslog_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Whether the n bytes at s end in "-" and CONSLOG_HASH_HEX lowercase hex digits, as hashed
 * names do. */
static bool conslog_looks_hashed(const char *s, size_t n)
{
	if (n < CONSLOG_HASH_HEX + 1 || s[n - CONSLOG_HASH_HEX - 1] != '-')
		return false;
	for (size_t i = n - CONSLOG_HASH_HEX; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int conslog_file_name(const char *console_name, char *buf, size_t bufsz)
{
	size_t n = strlen(console_name), o = 0;
	bool hash = n > CONSLOG_NAME_BASE_MAX;
	uint8_t md[SHA256_DIGEST_LENGTH];

	if (n == 0)
		return -EINVAL;
	if (bufsz < CONSLOG_FILE_NAME_MAX)
		return -ENOBUFS;
	for (size_t i = 0; i < n && i < CONSLOG_NAME_BASE_MAX; i++) {
		char c = console_name[i];

		if (!conslog_char_ok(c) || (i == 0 && c == '.')) {
			hash = true;
			c = '_';
		}
		buf[o++] = c;
	}
	/* A kept name that looks hashed ("x-0123...") gets a hash too, so no clean name can
	 * take the file of a name that was changed. */
	if (!hash && conslog_looks_hashed(buf, o))
		hash = true;
	if (hash) {
		/* SHA-256, not a fast hash: whoever chooses a VM name must not be able to find
		 * one whose file is another console's. */
		SHA256((const unsigned char *)console_name, n, md);
		buf[o++] = '-';
		for (size_t i = 0; i < CONSLOG_HASH_HEX / 2; i++)
			o += (size_t)snprintf(buf + o, bufsz - o, "%02x", md[i]);
	}
	memcpy(buf + o, ".log", 5);
	return (int)(o + 4);
}

int conslog_format_time(const struct timespec *ts, char *buf, size_t bufsz)
{
	struct tm tm;
	int n;

	if (bufsz < CONSLOG_TIME_LEN + 1 || !gmtime_r(&ts->tv_sec, &tm))
		return -EINVAL;
	if (tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return -EINVAL;
	n = snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     (long)(ts->tv_nsec / 1000000) % 1000);
	if (n != CONSLOG_TIME_LEN)
		return -EINVAL;
	return n;
}

size_t conslog_format(const void *in, size_t len, bool *midline, const char *prefix, size_t plen,
		      void *out, size_t outsz, size_t *ret_outlen)
{
	const uint8_t *p = in;
	uint8_t *q = out;
	bool mid = *midline;
	size_t i = 0, o = 0;

	while (i < len) {
		const uint8_t *nl;
		size_t n;

		if (!mid) {
			if (o + plen + 1 > outsz)
				break;
			memcpy(q + o, prefix, plen);
			o += plen;
			mid = true;
		}
		n = MIN(len - i, outsz - o);
		if (n == 0)
			break;
		nl = memchr(p + i, '\n', n);
		if (nl) {
			n = (size_t)(nl - (p + i)) + 1;
			mid = false;
		}
		memcpy(q + o, p + i, n);
		o += n;
		i += n;
	}
	*midline = mid;
	*ret_outlen = o;
	return i;
}

void conslog_plan(uint64_t size, uint64_t line_off, size_t max_size, const void *data, size_t len,
		  struct conslog_step *ret)
{
	uint64_t room;
	const uint8_t *nl;

	*ret = (struct conslog_step){ .take = len };
	if (size + len <= max_size)
		return;
	ret->rotate = true;
	/* room < len here: size + len > max_size. */
	room = size < max_size ? max_size - size : 0;

	/* Fill up to the last complete line that fits. */
	nl = room > 0 ? memrchr(data, '\n', (size_t)room) : NULL;
	if (nl) {
		ret->take = (size_t)(nl - (const uint8_t *)data) + 1;
		return;
	}

	/*
	 * The line in progress does not end within this file: move its start
	 * (or nothing, at a line boundary) into the next file, unless it
	 * started at the top of this file (or is as long as a file anyway),
	 * which makes it longer than max_size: cut it here.
	 */
	ret->take = 0;
	if (line_off > 0 && size - line_off < max_size) {
		ret->carry = size - line_off;
		return;
	}
	ret->take = (size_t)room;
}

/* ---- I/O ---- */

static uint64_t now_usec(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* "NAME.log.N" for any unsigned N. */
#define BACKUP_NAME_MAX (CONSLOG_FILE_NAME_MAX + 11)

static void backup_name(const struct conslog *l, unsigned i, char *buf, size_t bufsz)
{
	if (i == 0)
		snprintf(buf, bufsz, "%s", l->name);
	else
		snprintf(buf, bufsz, "%s.%u", l->name, i);
}

/* Start of the incomplete last line of fd (size bytes), looking back at most limit bytes. */
static uint64_t file_line_start(int fd, uint64_t size, uint64_t limit)
{
	uint8_t buf[4096];
	uint64_t end = size, stop = size > limit ? size - limit : 0;

	while (end > stop) {
		size_t n = (size_t)MIN((uint64_t)sizeof(buf), end - stop);
		const uint8_t *nl;

		if (pread(fd, buf, n, (off_t)(end - n)) != (ssize_t)n)
			return size; /* unknown: treat the file as ending at a line boundary */
		nl = memrchr(buf, '\n', n);
		if (nl)
			return end - n + (uint64_t)(nl - buf) + 1;
		end -= n;
	}
	return stop;
}

static int file_open(int dir_fd, const char *name, uint64_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	fd = openat(dir_fd, name,
		    O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
		    0640);
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	if (st.st_nlink > 1)
		return -EMLINK; /* a hard link planted to make us write elsewhere */
	*ret_size = (uint64_t)st.st_size;
	return TAKE_FD(fd);
}

static int conslog_reopen(struct conslog *l)
{
	_cleanup_close_ int dir_fd = -EBADF;
	uint64_t size;
	int fd;

	dir_fd = open(l->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0)
		return negative_errno();
	fd = file_open(dir_fd, l->name, &size);
	if (fd < 0)
		return fd;
	l->dir_fd = TAKE_FD(dir_fd);
	l->fd = fd;
	l->size = size;
	l->line_off = file_line_start(fd, size, l->max_size);
	l->midline = l->line_off < size;
	return 0;
}

static void conslog_close(struct conslog *l)
{
	l->fd = safe_close(l->fd);
	l->dir_fd = safe_close(l->dir_fd);
}

static void conslog_suspend(struct conslog *l, int error, uint64_t lost)
{
	conslog_close(l);
	l->dropped += lost;
	l->retry_at = now_usec(CLOCK_MONOTONIC) + l->retry_usec;
	if (l->failing)
		log_debug_errno(error, "Console log %s: still failing", l->path);
	else
		log_error_errno(error,
				"Console log %s: cannot log, dropping output (retry every %g s)",
				l->path, (double)l->retry_usec / 1e6);
	l->failing = true;
}

static void conslog_resumed(struct conslog *l)
{
	if (!l->failing)
		return;
	log_info("Console log %s: logging resumed, %" PRIu64 " bytes not logged", l->path,
		 l->dropped);
	l->failing = false;
	l->dropped = 0;
}

/* Append to the current file; updates size/line_off/midline for what was written. */
static int conslog_append(struct conslog *l, const uint8_t *p, size_t len, size_t *ret_done)
{
	size_t done = 0;
	int r = 0;

	while (done < len) {
		ssize_t k = conslog_write_fn(l->fd, p + done, len - done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = negative_errno();
			break;
		}
		if (k == 0) {
			r = -EIO;
			break;
		}
		done += (size_t)k;
	}
	if (done > 0) {
		const uint8_t *nl = memrchr(p, '\n', done);

		if (nl)
			l->line_off = l->size + (uint64_t)(nl - p) + 1;
		l->size += done;
		l->midline = p[done - 1] != '\n';
	}
	*ret_done = done;
	return r;
}

/* Copy len bytes at from in src to dst: appended (append) or at offset to. */
static int copy_range(int src, uint64_t from, int dst, uint64_t to, uint64_t len, bool append)
{
	uint8_t buf[8192];

	while (len > 0) {
		size_t n = (size_t)MIN((uint64_t)sizeof(buf), len);
		ssize_t k = pread(src, buf, n, (off_t)from);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return negative_errno();
		if (k == 0)
			return -EIO; /* the file shrank under us */
		for (size_t w = 0; w < (size_t)k;) {
			ssize_t m = append ? conslog_write_fn(dst, buf + w, (size_t)k - w)
					   : pwrite(dst, buf + w, (size_t)k - w, (off_t)(to + w));

			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0)
				return negative_errno();
			if (m == 0)
				return -EIO;
			w += (size_t)m;
		}
		from += (uint64_t)k;
		to += (uint64_t)k;
		len -= (uint64_t)k;
	}
	return 0;
}

static int conslog_restart_in_place(struct conslog *l, uint64_t carry)
{
	int flags = fcntl(l->fd, F_GETFL), r = 0;

	if (carry > 0) {
		/* pwrite() ignores the offset with O_APPEND on Linux: drop it meanwhile. */
		if (flags < 0 || fcntl(l->fd, F_SETFL, flags & ~O_APPEND) < 0)
			return negative_errno();
		r = copy_range(l->fd, l->size - carry, l->fd, 0, carry, false);
		if (fcntl(l->fd, F_SETFL, flags) < 0 && r >= 0)
			r = negative_errno();
		if (r < 0)
			return r;
	}
	if (ftruncate(l->fd, (off_t)carry) < 0)
		return negative_errno();
	l->size = carry;
	l->line_off = 0;
	return 0;
}

static int conslog_rotate(struct conslog *l, uint64_t carry)
{
	char from[BACKUP_NAME_MAX], to[BACKUP_NAME_MAX];
	uint64_t size;
	int fd, r;

	if (l->backups == 0)
		return conslog_restart_in_place(l, carry);

	for (unsigned i = l->backups; i > 0; i--) {
		backup_name(l, i - 1, from, sizeof(from));
		backup_name(l, i, to, sizeof(to));
		/* A missing file is fine: fewer backups so far, or removed by hand. */
		if (renameat(l->dir_fd, from, l->dir_fd, to) < 0 && errno != ENOENT)
			return negative_errno();
	}
	fd = file_open(l->dir_fd, l->name, &size);
	if (fd < 0)
		return fd;
	if (carry > 0) {
		r = copy_range(l->fd, l->size - carry, fd, 0, carry, true);
		if (r < 0) {
			safe_close(fd);
			return r;
		}
		if (ftruncate(l->fd, (off_t)(l->size - carry)) < 0)
			log_debug_errno(errno, "Console log %s.1: cannot cut the moved line",
					l->path);
	}
	safe_close(l->fd);
	l->fd = fd;
	/* size is 0 unless someone created the file between rename and open. */
	l->line_off = size;
	l->size = size + carry;
	return 0;
}

/* Write formatted bytes under the cap, rotating as needed. */
static int conslog_emit(struct conslog *l, const void *data, size_t len, size_t *ret_done)
{
	const uint8_t *p = data;
	size_t done = 0;
	int r = 0;

	while (done < len) {
		struct conslog_step st;

		conslog_plan(l->size, l->line_off, l->max_size, p + done, len - done, &st);
		if (st.take > 0) {
			size_t n;

			r = conslog_append(l, p + done, st.take, &n);
			done += n;
			if (r < 0)
				break;
		}
		if (st.rotate) {
			r = conslog_rotate(l, st.carry);
			if (r < 0)
				break;
		}
	}
	*ret_done = done;
	return r;
}

static int conslog_emit_mark(struct conslog *l, const char *text)
{
	char esc[CONSLOG_MARK_MAX], now[CONSLOG_TIME_LEN + 1] = "", line[CONSLOG_MARK_MAX + 64];
	struct timespec ts;
	size_t done;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	conslog_format_time(&ts, now, sizeof(now));
	log_escape(text, strlen(text), esc, sizeof(esc));
	/* A fresh file after a cut line needs no line break first. */
	n = snprintf(line, sizeof(line), "%s[ttyhub] %s %s\n",
		     l->midline && l->size > 0 ? "\n" : "", now, esc);
	return conslog_emit(l, line, (size_t)MIN(n, (int)sizeof(line) - 1), &done);
}

/* Whether the file is open; reopens when an outage's retry is due. */
static bool conslog_ready(struct conslog *l)
{
	uint64_t now;
	int r;

	if (l->fd >= 0)
		return true;
	now = now_usec(CLOCK_MONOTONIC);
	if (now < l->retry_at)
		return false;
	l->retry_at = now + l->retry_usec;
	r = conslog_reopen(l);
	if (r < 0) {
		log_debug_errno(r, "Console log %s: still cannot open", l->path);
		return false;
	}
	if (l->dropped > 0) {
		char text[64];

		snprintf(text, sizeof(text), "%" PRIu64 " bytes not logged", l->dropped);
		r = conslog_emit_mark(l, text);
		if (r < 0) {
			conslog_suspend(l, r, 0);
			return false;
		}
		conslog_resumed(l);
	}
	return true;
}

int conslog_open(const struct conslog_config *cfg, const char *console_name,
		 struct conslog **ret)
{
	char name[BACKUP_NAME_MAX];
	struct conslog *l;
	int r;

	if (!cfg->dir || !cfg->dir[0] || cfg->max_size < CONSLOG_MIN_SIZE ||
	    cfg->max_size > SSIZE_MAX || cfg->backups > CONSLOG_MAX_BACKUPS)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	*l = (struct conslog){
		.dir_fd = -EBADF,
		.fd = -EBADF,
		.max_size = cfg->max_size,
		.backups = cfg->backups,
		.timestamps = cfg->timestamps,
		.retry_usec = cfg->retry_usec > 0 ? cfg->retry_usec : CONSLOG_DEFAULT_RETRY_USEC,
	};
	r = conslog_file_name(console_name, l->name, sizeof(l->name));
	if (r < 0)
		goto fail;
	l->dir = strdup(cfg->dir);
	if (!l->dir || asprintf(&l->path, "%s/%s", cfg->dir, l->name) < 0) {
		l->path = NULL;
		r = -ENOMEM;
		goto fail;
	}

	r = conslog_reopen(l);
	if (r < 0) {
		conslog_suspend(l, r, 0);
		*ret = l;
		return 0;
	}
	/* Drop backups beyond the configured count (the sequence has no gaps). */
	for (unsigned i = l->backups + 1; i <= CONSLOG_MAX_BACKUPS; i++) {
		backup_name(l, i, name, sizeof(name));
		if (unlinkat(l->dir_fd, name, 0) < 0)
			break;
	}
	*ret = l;
	return 0;
fail:
	conslog_free(l);
	return r;
}

struct conslog *conslog_free(struct conslog *l)
{
	if (!l)
		return NULL;
	conslog_close(l);
	free(l->dir);
	free(l->path);
	free(l);
	return NULL;
}

const char *conslog_name(const struct conslog *l)
{
	return l->name;
}

void conslog_write(struct conslog *l, const void *data, size_t len)
{
	char prefix[CONSLOG_TIME_LEN + 2] = "";
	const uint8_t *p = data;
	struct timespec ts;
	size_t done;
	int r;

	if (!l || len == 0)
		return;
	if (!conslog_ready(l)) {
		l->dropped += len;
		return;
	}
	if (!l->timestamps) {
		r = conslog_emit(l, p, len, &done);
		if (r < 0)
			conslog_suspend(l, r, len - done);
		else
			conslog_resumed(l);
		return;
	}

	clock_gettime(CLOCK_REALTIME, &ts);
	if (conslog_format_time(&ts, prefix, sizeof(prefix)) < 0)
		memset(prefix, '?', CONSLOG_TIME_LEN);
	prefix[CONSLOG_TIME_LEN] = ' ';
	while (len > 0) {
		uint8_t buf[16384];
		bool mid = l->midline, mid_start = l->midline;
		size_t used, outlen;

		used = conslog_format(p, len, &mid, prefix, CONSLOG_TIME_LEN + 1, buf, sizeof(buf),
				      &outlen);
		r = conslog_emit(l, buf, outlen, &done);
		if (r < 0) {
			/* Count the input bytes whose output was not completely written. */
			size_t ok = conslog_format(p, used, &mid_start, prefix,
						   CONSLOG_TIME_LEN + 1, buf, done, &outlen);

			conslog_suspend(l, r, len - ok);
			return;
		}
		p += used;
		len -= used;
	}
	conslog_resumed(l);
}

void conslog_markf(struct conslog *l, const char *fmt, ...)
{
	char text[CONSLOG_MARK_MAX + 1];
	va_list ap;

	if (!l)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	conslog_mark(l, text);
}

void conslog_mark(struct conslog *l, const char *text)
{
	int r;

	if (!l || !conslog_ready(l))
		return;
	r = conslog_emit_mark(l, text);
	if (r < 0)
		conslog_suspend(l, r, 0);
	else
		conslog_resumed(l);
}
