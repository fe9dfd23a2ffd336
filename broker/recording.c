/* SPDX-License-Identifier: MIT */
/*
 * Session recordings (see recording.h): the files, the bounded buffer that
 * keeps the console from ever waiting for the disk, the cap and the
 * rotation.  The format itself is asciicast.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "asciicast.h"
#include "conslog.h"
#include "log.h"
#include "obuf.h"
#include "recording.h"
#include "util.h"

/* Data formatted per event at most (longer chunks are split; the stream holds cut characters). */
#define RECORDING_CHUNK ((size_t)16 * 1024)
/* Buffer room kept for the final marker of a cut recording. */
#define RECORDING_RESERVE ((size_t)ASCIICAST_EVENTS_SIZE(RECORDING_MARK_MAX + 64))
/*
 * Output within this long after an "o" event began goes into that event
 * while it is still in the buffer: a serial port that delivers a byte per
 * read would otherwise cost a line per byte.  Replay timing stays within it.
 */
#define RECORDING_MERGE_USEC (20 * UINT64_C(1000))
/* The buffer goes to the disk this long after the first event waiting in it. */
#define RECORDING_FLUSH_USEC (100 * UINT64_C(1000))
/* File room kept for the "truncated" marker. */
#define RECORDING_TRUNC_RESERVE ((size_t)160)
#define RECORDING_LABEL_MAX 256
#define RECORDING_PATH_MAX (CONSLOG_FILE_NAME_MAX + RECORDING_FILE_NAME_MAX + 2)

struct recording {
	int fd;                    /* owned */
	sd_event_source *flusher;  /* owned: timer, armed while the buffer holds data */
	bool flush_armed;
	bool o_open;               /* the buffer ends with an "o" event that may grow */
	uint64_t o_t;              /* when that event began */
	struct asciicast cast;
	struct obuf buf;
	uint64_t start_usec;
	uint64_t size;             /* bytes formatted, header included */
	uint64_t max_size;
	bool done;                 /* truncated or cut: nothing more is added */
	char who[RECORDING_LABEL_MAX]; /* the last typist ("" none yet) */
	char path[RECORDING_PATH_MAX];
};

static ssize_t (*recording_write_fn)(int fd, const void *buf, size_t len) = write;
static uint64_t (*recording_clock_fn)(void);

void recording_set_write_fn(ssize_t (*fn)(int fd, const void *buf, size_t len))
{
	recording_write_fn = fn ? fn : write;
}

void recording_set_clock(uint64_t (*fn)(void))
{
	recording_clock_fn = fn;
}

static uint64_t recording_now(void)
{
	struct timespec ts;

	if (recording_clock_fn)
		return recording_clock_fn();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t recording_t(const struct recording *r)
{
	uint64_t now = recording_now();

	return now > r->start_usec ? now - r->start_usec : 0;
}

/* ---- names ---------------------------------------------------------------- */

int recording_file_name(int64_t t, unsigned client_id, unsigned seq, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	int n;

	if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
		return -EINVAL;
	n = snprintf(buf, size, "%04d%02d%02dT%02d%02d%02dZ-%u", tm.tm_year + 1900, tm.tm_mon + 1,
		     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, client_id);
	if (n > 0 && seq > 1 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, "-%u", seq);
	if (n > 0 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, ".cast");
	return n < 0 || (size_t)n >= size ? -EINVAL : n;
}

static bool recording_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* The id and seq of a name recording_is_name() accepted. */
static void recording_name_numbers(const char *name, unsigned long long *id,
				   unsigned long long *seq)
{
	char *end;

	*id = strtoull(name + 17, &end, 10);
	*seq = *end == '-' ? strtoull(end + 1, NULL, 10) : 1;
}

bool recording_is_name(const char *name)
{
	size_t len = strlen(name), i = 17, k;

	if (len < 23 || !recording_digits(name, 8) || name[8] != 'T' ||
	    !recording_digits(name + 9, 6) || name[15] != 'Z' || name[16] != '-' ||
	    strcmp(name + len - 5, ".cast") != 0)
		return false;
	for (int part = 0; part < 2; part++) {
		for (k = i; k < len - 5 && name[k] >= '0' && name[k] <= '9'; k++)
			;
		if (k == i || k - i > 10)
			return false;
		if (k == len - 5)
			return true;
		if (part == 1 || name[k] != '-')
			return false;
		i = k + 1;
	}
	return false;
}

int recording_name_compare(const char *a, const char *b)
{
	unsigned long long ia, sa, ib, sb;
	int c = strncmp(a, b, 16);

	if (c != 0)
		return c;
	recording_name_numbers(a, &ia, &sa);
	recording_name_numbers(b, &ib, &sb);
	if (ia != ib)
		return ia < ib ? -1 : 1;
	return sa < sb ? -1 : sa > sb;
}

static int recording_name_qsort(const void *a, const void *b)
{
	return recording_name_compare(*(char *const *)a, *(char *const *)b);
}

/* Remove the oldest recordings in dir_fd until at most `leave` are left. */
static void recording_prune(int dir_fd, unsigned leave, const char *sub)
{
	_cleanup_free_ char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0 || !(d = fdopendir(fd))) {
		safe_close(fd);
		log_warning_errno(errno, "recordings of %s: cannot list them", sub);
		return;
	}
	while ((de = readdir(d))) {
		if (!recording_is_name(de->d_name))
			continue;
		if (n == cap) {
			char **nn = reallocarray(names, cap ? 2 * cap : 64, sizeof(*names));

			if (!nn)
				break;
			names = nn;
			cap = cap ? 2 * cap : 64;
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			break;
		n++;
	}
	if (n > leave) {
		qsort(names, n, sizeof(*names), recording_name_qsort);
		for (size_t i = 0; i < n - leave; i++)
			if (unlinkat(dir_fd, names[i], 0) < 0 && errno != ENOENT)
				log_warning_errno(errno, "recordings of %s: cannot remove %s", sub,
						  names[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	closedir(d);
}

/* ---- writing -------------------------------------------------------------- */

static int recording_on_flush(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct recording *r = userdata;

	r->flush_armed = false;
	(void)recording_flush(r);
	return 0;
}

/* Have the buffer written soon (once per RECORDING_FLUSH_USEC at most). */
static void recording_schedule(struct recording *r)
{
	if (!r->flusher || r->flush_armed)
		return;
	if (sd_event_source_set_time_relative(r->flusher, RECORDING_FLUSH_USEC) >= 0 &&
	    sd_event_source_set_enabled(r->flusher, SD_EVENT_ONESHOT) >= 0)
		r->flush_armed = true;
}

/* Nothing more goes in; say why in the file (best effort) and in the log, once. */
static void recording_cut(struct recording *r, int err, const char *why)
{
	char ev[ASCIICAST_EVENTS_SIZE(RECORDING_MARK_MAX)];
	char text[RECORDING_MARK_MAX];
	size_t n;

	if (r->done)
		return;
	r->done = true;
	log_warning_errno(err, "recording %s cut: %s", r->path, why);
	if (err != 0)
		snprintf(text, sizeof(text), "recording cut: %s: %s", why, strerror(err));
	else
		snprintf(text, sizeof(text), "recording cut: %s", why);
	n = asciicast_event(recording_t(r), 'm', text, ev);
	if (err != 0) {
		/* The buffer will not go out: the marker alone, if the disk takes it. */
		obuf_consume(&r->buf, obuf_len(&r->buf));
		(void)!recording_write_fn(r->fd, ev, n);
		return;
	}
	if (obuf_append(&r->buf, ev, n) >= 0)
		r->size += n;
	r->o_open = false;
	recording_schedule(r);
}

int recording_flush(struct recording *r)
{
	if (!r)
		return 0;
	while (obuf_len(&r->buf) > 0) {
		const uint8_t *p = obuf_data(&r->buf);
		ssize_t n = recording_write_fn(r->fd, p, obuf_len(&r->buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			int err = n < 0 ? errno : ENOSPC; /* 0 bytes for a regular file: no room */

			recording_cut(r, err, "cannot write");
			return -err;
		}
		obuf_consume(&r->buf, (size_t)n);
		r->o_open = false; /* what is written stays as it is */
	}
	return 0;
}

/*
 * Room for need bytes of formatted events at the end of the buffer, minus
 * the cut marker's reserve.  Flushes once when short; a buffer the disk
 * still does not drain cuts the recording.  Returns the span or NULL.
 */
static uint8_t *recording_span(struct recording *r, size_t need)
{
	uint8_t *span;

	if (r->done)
		return NULL;
	if (obuf_room(&r->buf) < need + RECORDING_RESERVE) {
		if (recording_flush(r) < 0)
			return NULL;
		if (obuf_room(&r->buf) < need + RECORDING_RESERVE) {
			recording_cut(r, 0, "the disk does not keep up");
			return NULL;
		}
	}
	if (obuf_tail_span(&r->buf, need, &span) < need)
		return NULL; /* cannot happen: the room was checked and the span compacts */
	return span;
}

/*
 * n bytes were formatted into span: keep them unless they would take the
 * file past max_size, which ends it with the "truncated" marker instead.
 */
static void recording_commit(struct recording *r, uint8_t *span, size_t n)
{
	if (n == 0)
		return;
	/* (SIZE_MAX: the caller found the cap crossed already) */
	if (n == SIZE_MAX || r->size + n + RECORDING_TRUNC_RESERVE > r->max_size) {
		char text[96];

		snprintf(text, sizeof(text), "recording truncated at %" PRIu64 " bytes", r->size);
		n = asciicast_event(recording_t(r), 'm', text, (char *)span);
		r->done = true;
		log_info("recording %s truncated at %" PRIu64 " bytes", r->path, r->size);
	}
	obuf_commit(&r->buf, n);
	r->size += n;
	r->o_open = false;
	recording_schedule(r);
}

/*
 * The data of span (at the end of the buffer, right after the close of the
 * "o" event that may grow) continues that event: the close is dropped and
 * the event's rest written over it.  Returns false when it cannot (then
 * nothing changed).
 */
static bool recording_output_more(struct recording *r, uint8_t *span, const void *data,
				  size_t len)
{
	uint8_t *at = span - ASCIICAST_CLOSE_LEN;
	size_t n;

	if (!r->o_open || recording_t(r) - r->o_t >= RECORDING_MERGE_USEC ||
	    obuf_len(&r->buf) < ASCIICAST_CLOSE_LEN ||
	    memcmp(at, ASCIICAST_CLOSE, ASCIICAST_CLOSE_LEN) != 0)
		return false;
	/* The close is the buffer's last bytes (span follows them): take it back. */
	r->buf.len -= ASCIICAST_CLOSE_LEN;
	r->size -= ASCIICAST_CLOSE_LEN;
	n = asciicast_output_more(&r->cast, data, len, (char *)at);
	if (r->size + n + RECORDING_TRUNC_RESERVE > r->max_size) {
		/* Close it as it was and end the file (recording_commit() says so). */
		memcpy(at, ASCIICAST_CLOSE, ASCIICAST_CLOSE_LEN);
		obuf_commit(&r->buf, ASCIICAST_CLOSE_LEN);
		r->size += ASCIICAST_CLOSE_LEN;
		recording_commit(r, span, SIZE_MAX);
		return true;
	}
	obuf_commit(&r->buf, n);
	r->size += n;
	recording_schedule(r);
	return true;
}

void recording_output(struct recording *r, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (r && len > 0 && !r->done) {
		size_t k = MIN(len, RECORDING_CHUNK), n;
		uint8_t *span = recording_span(r, ASCIICAST_EVENTS_SIZE(k));

		if (!span)
			return;
		if (!recording_output_more(r, span, p, k)) {
			uint64_t t = recording_t(r);

			n = asciicast_output(&r->cast, t, p, k, (char *)span);
			recording_commit(r, span, n);
			/* An event that can grow (recording_output_more()), unless it was the last. */
			r->o_open = n > 0 && !r->done;
			r->o_t = t;
		}
		p += k;
		len -= k;
	}
}

void recording_input(struct recording *r, const char *who, const struct asciicast_prompt *prompt,
		     const void *data, size_t len)
{
	const uint8_t *p = data;

	if (!r || r->done || len == 0)
		return;
	if (who && strncmp(who, r->who, sizeof(r->who) - 1) != 0) {
		snprintf(r->who, sizeof(r->who), "%s", who);
		recording_markerf(r, "input from %s", who);
	}
	while (len > 0 && !r->done) {
		size_t k = MIN(len, RECORDING_CHUNK);
		uint8_t *span = recording_span(r, ASCIICAST_EVENTS_SIZE(k));

		if (!span)
			return;
		recording_commit(r, span, asciicast_input(&r->cast, recording_t(r), prompt, p, k,
							  (char *)span));
		p += k;
		len -= k;
	}
}

void recording_marker(struct recording *r, const char *text)
{
	char cut[RECORDING_MARK_MAX + 1];
	uint8_t *span;

	if (!r || r->done)
		return;
	snprintf(cut, sizeof(cut), "%s", text);
	span = recording_span(r, ASCIICAST_EVENTS_SIZE(strlen(cut)));
	if (span)
		recording_commit(r, span, asciicast_event(recording_t(r), 'm', cut, (char *)span));
}

void recording_markerf(struct recording *r, const char *fmt, ...)
{
	char text[RECORDING_MARK_MAX + 1];
	va_list ap;

	if (!r || r->done)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	recording_marker(r, text);
}

void recording_resize(struct recording *r, unsigned cols, unsigned rows)
{
	char text[32];
	uint8_t *span;

	if (!r || r->done)
		return;
	snprintf(text, sizeof(text), "%ux%u", cols, rows);
	span = recording_span(r, ASCIICAST_EVENTS_SIZE(strlen(text)));
	if (span)
		recording_commit(r, span, asciicast_event(recording_t(r), 'r', text, (char *)span));
}

/* ---- open and close ------------------------------------------------------- */

/* Create the file: NAME.cast, else NAME-2.cast ... (a restart reuses client ids). */
static int recording_create(struct recording *r, int sub_fd, const char *sub,
			    const struct recording_info *info, int64_t now)
{
	char name[RECORDING_FILE_NAME_MAX];

	for (unsigned seq = 1; seq <= 99; seq++) {
		int fd;

		if (recording_file_name(now, info->client_id, seq, name, sizeof(name)) < 0)
			return -EINVAL;
		fd = openat(sub_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0640);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0)
			return -errno;
		/* Whatever the umask: the mode the documentation promises. */
		(void)fchmod(fd, 0640);
		r->fd = fd;
		snprintf(r->path, sizeof(r->path), "%s/%s", sub, name);
		return 0;
	}
	return -EEXIST;
}

int recording_open(sd_event *event, const struct recording_config *cfg,
		   const struct recording_info *info, struct recording **ret)
{
	char sub[CONSLOG_FILE_NAME_MAX], hdr[4096];
	_cleanup_close_ int dir_fd = -EBADF, sub_fd = -EBADF;
	struct recording *r;
	struct timespec ts;
	int n;

	*ret = NULL;
	if (!cfg || !cfg->dir || cfg->max_size < RECORDING_MIN_SIZE || cfg->keep == 0 ||
	    cfg->keep > RECORDING_MAX_KEEP || !info || !info->console)
		return -EINVAL;
	n = conslog_file_name(info->console, sub, sizeof(sub));
	if (n < 0)
		return n;
	sub[n - 4] = '\0'; /* without ".log" */
	dir_fd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0)
		return log_warning_errno(errno, "recording of %s: cannot open %s", info->console,
					 cfg->dir);
	if (mkdirat(dir_fd, sub, 0750) < 0 && errno != EEXIST)
		return log_warning_errno(errno, "recording of %s: cannot create %s/%s",
					 info->console, cfg->dir, sub);
	sub_fd = openat(dir_fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub_fd < 0)
		return log_warning_errno(errno, "recording of %s: cannot open %s/%s",
					 info->console, cfg->dir, sub);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = -EBADF;
	r->max_size = cfg->max_size;
	asciicast_init(&r->cast, cfg->redact);
	recording_prune(sub_fd, cfg->keep - 1, sub);
	clock_gettime(CLOCK_REALTIME, &ts);
	n = recording_create(r, sub_fd, sub, info, (int64_t)ts.tv_sec);
	if (n < 0) {
		log_warning_errno(-n, "recording of %s: cannot create a file in %s/%s",
				  info->console, cfg->dir, sub);
		recording_free(r);
		return n;
	}
	n = obuf_init(&r->buf, RECORDING_BUFFER);
	if (n >= 0 && event) {
		n = sd_event_add_time_relative(event, &r->flusher, CLOCK_MONOTONIC,
					       RECORDING_FLUSH_USEC, 0, recording_on_flush, r);
		if (n >= 0)
			n = sd_event_source_set_enabled(r->flusher, SD_EVENT_OFF);
	}
	if (n < 0) {
		recording_free(r);
		return n;
	}
	r->start_usec = recording_now();
	n = asciicast_header(&(const struct asciicast_header){
		.width = info->width ? info->width : 80,
		.height = info->height ? info->height : 24,
		.timestamp = (int64_t)ts.tv_sec,
		.title = info->console,
		.console = info->console,
		.vm = info->vm,
		.principal = info->principal,
	}, hdr, sizeof(hdr));
	if (n < 0 || obuf_append(&r->buf, hdr, (size_t)n) < 0) {
		recording_free(r);
		return -EINVAL;
	}
	r->size = (uint64_t)n;
	recording_schedule(r);
	log_info("recording %s to %s/%s", info->console, cfg->dir, r->path);
	*ret = r;
	return 0;
}

struct recording *recording_free(struct recording *r)
{
	if (!r)
		return NULL;
	if (r->fd >= 0 && !r->done && r->buf.buf) {
		uint8_t *span = recording_span(r, ASCIICAST_EVENTS_SIZE(0));

		if (span)
			recording_commit(r, span, asciicast_finish(&r->cast, recording_t(r),
								   (char *)span));
	}
	if (r->fd >= 0 && r->buf.buf) {
		(void)recording_flush(r);
		log_info("recording %s ended (%" PRIu64 " bytes)", r->path, r->size);
	}
	r->flusher = sd_event_source_disable_unref(r->flusher);
	obuf_done(&r->buf);
	r->fd = safe_close(r->fd);
	free(r);
	return NULL;
}

const char *recording_path(const struct recording *r)
{
	return r ? r->path : NULL;
}

uint64_t recording_size(const struct recording *r)
{
	return r ? r->size : 0;
}
