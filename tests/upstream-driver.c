/* SPDX-License-Identifier: MIT */
/*
 * Test helper: drives ssh-front/upstream.c (the gateway's sessions to its
 * hosts) from tests/integration/test_upstream.py.
 *
 *   upstream-driver HOSTS_FILE KEY [--keepalive S] [--count N] [--timeout S] [--user NAME]
 *
 * Commands, one per line on stdin:
 *   open HOST ID     a new stream to HOST, called ID -> "opened ID" | "refused ID ERRNO WHY"
 *   send ID TEXT     TEXT and a newline into the stream
 *   bulk ID N        N bytes (byte i is i % 251) into the stream, as fast as it takes them
 *   quiet ID         stop printing "data" for ID; count its bytes and check the bulk
 *                    pattern instead -> "got ID N OK|BAD" at its EOF or on "count ID"
 *   count ID         -> "got ID N OK|BAD"
 *   shut ID          shut down our writing side (the host gets EOF)
 *   close ID         close our end
 *   streams HOST     -> "streams HOST N"
 *   attempts HOST    -> "attempts HOST N" (connection attempts so far)
 *   state HOST       -> "state HOST up|connecting|down WHY"
 * Events on stdout: "state HOST STATE WHY" whenever a host's state or why
 * changes (polled every 50 ms), "data ID HEX" for bytes a stream read,
 * "eof ID" when a stream reads EOF.  EOF on stdin ends it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hosts.h"
#include "log.h"
#include "poller.h"
#include "upstream.h"
#include "util.h"

#define DRIVER_MAX_STREAMS 1024
#define DRIVER_ID_MAX 32
#define DRIVER_LINE_MAX 4096

struct drv_stream {
	char id[DRIVER_ID_MAX];
	int fd;
	struct watch *w;
	struct driver *d;
	size_t bulk_left, bulk_sent; /* bulk: still to write, written */
	bool quiet;                  /* count and check instead of printing */
	size_t got;
	bool bad;
};

struct driver {
	sd_event *event;
	struct poller *poller;
	struct upstream *up;
	struct watch *in;
	char line[DRIVER_LINE_MAX];
	size_t line_len;
	struct drv_stream streams[DRIVER_MAX_STREAMS];
	char (*last)[300]; /* per host: the last state line printed */
};

static void say(const char *fmt, ...) _printf_(1, 2);
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *state_name(enum upstream_state s)
{
	return s == UPSTREAM_UP ? "up" : s == UPSTREAM_CONNECTING ? "connecting" : "down";
}

static void state_line(struct driver *d, size_t i, char *buf, size_t size)
{
	const char *why = NULL;
	enum upstream_state s = upstream_host_state(d->up, i, &why);

	snprintf(buf, size, "state %s %s %s", upstream_host_name(d->up, i), state_name(s), why);
}

static int on_poll(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct driver *d = userdata;

	for (size_t i = 0; i < upstream_n_hosts(d->up); i++) {
		char buf[300];

		state_line(d, i, buf, sizeof(buf));
		if (strcmp(buf, d->last[i]) != 0) {
			snprintf(d->last[i], sizeof(d->last[i]), "%s", buf);
			say("%s", buf);
		}
	}
	sd_event_source_set_time_relative(es, 50000);
	return 0;
}

static struct drv_stream *find_stream(struct driver *d, const char *id)
{
	for (size_t i = 0; i < DRIVER_MAX_STREAMS; i++)
		if (d->streams[i].fd >= 0 && strcmp(d->streams[i].id, id) == 0)
			return &d->streams[i];
	return NULL;
}

static void stream_close(struct drv_stream *s)
{
	s->w = watch_free(s->w);
	s->fd = safe_close(s->fd);
	s->bulk_left = s->bulk_sent = s->got = 0;
	s->quiet = s->bad = false;
}

static void stream_events(struct drv_stream *s)
{
	watch_set_events(s->w, EPOLLIN | (s->bulk_left ? EPOLLOUT : 0));
}

static void stream_bulk(struct drv_stream *s)
{
	unsigned char buf[8192];

	while (s->bulk_left) {
		size_t n = MIN(sizeof(buf), s->bulk_left);
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char)((s->bulk_sent + i) % 251);
		/* The stream may be gone (the host was lost): EPIPE, not SIGPIPE. */
		w = send(s->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w <= 0)
			break;
		s->bulk_sent += (size_t)w;
		s->bulk_left -= (size_t)w;
	}
	stream_events(s);
}

static void on_stream(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct drv_stream *s = userdata;
	unsigned char buf[4096];
	char hex[sizeof(buf) * 2 + 1];
	ssize_t n;

	if (revents & EPOLLOUT)
		stream_bulk(s);
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		if (s->quiet)
			say("got %s %zu %s", s->id, s->got, s->bad ? "BAD" : "OK");
		say("eof %s", s->id);
		stream_close(s);
		return;
	}
	if (s->quiet) {
		for (ssize_t i = 0; i < n; i++)
			s->bad = s->bad || buf[i] != (unsigned char)((s->got + (size_t)i) % 251);
		s->got += (size_t)n;
		return;
	}
	for (ssize_t i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", buf[i]);
	say("data %s %s", s->id, hex);
}

static void command(struct driver *d, char *line)
{
	char *verb = strtok(line, " "), *arg = strtok(NULL, " "), *rest = strtok(NULL, "");
	struct drv_stream *s;
	int h, r;

	if (!verb || !arg)
		return;
	if (strcmp(verb, "open") == 0 || strcmp(verb, "streams") == 0 ||
	    strcmp(verb, "state") == 0 || strcmp(verb, "attempts") == 0) {
		h = upstream_find(d->up, arg);
		if (h < 0) {
			say("unknown %s", arg);
			return;
		}
		if (strcmp(verb, "streams") == 0) {
			say("streams %s %zu", arg, upstream_n_streams(d->up, (size_t)h));
		} else if (strcmp(verb, "attempts") == 0) {
			say("attempts %s %u", arg, upstream_host_attempts(d->up, (size_t)h));
		} else if (strcmp(verb, "state") == 0) {
			char buf[300];

			state_line(d, (size_t)h, buf, sizeof(buf));
			say("%s", buf);
		} else {
			int fd = -EBADF;

			if (!rest || strlen(rest) >= DRIVER_ID_MAX || find_stream(d, rest))
				return;
			s = NULL;
			for (size_t i = 0; i < DRIVER_MAX_STREAMS && !s; i++)
				if (d->streams[i].fd < 0)
					s = &d->streams[i];
			if (!s) {
				say("refused %s EMFILE driver full", rest);
				return;
			}
			r = upstream_open_stream(d->up, (size_t)h, &fd);
			if (r < 0) {
				const char *why = NULL;

				upstream_host_state(d->up, (size_t)h, &why);
				say("refused %s %d %s", rest, -r, why);
				return;
			}
			snprintf(s->id, sizeof(s->id), "%s", rest);
			s->fd = fd;
			s->d = d;
			if (watch_add(d->poller, fd, EPOLLIN, on_stream, s, &s->w) < 0)
				stream_close(s);
			say("opened %s", rest);
		}
		return;
	}
	s = find_stream(d, arg);
	if (!s) {
		say("nostream %s", arg);
		return;
	}
	if (strcmp(verb, "send") == 0) {
		char buf[DRIVER_LINE_MAX + 1];
		size_t n = (size_t)snprintf(buf, sizeof(buf), "%s\n", rest ? rest : "");

		/* Test lines are short: the socket buffer always has room. */
		if (send(s->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n)
			say("short-write %s", arg);
	} else if (strcmp(verb, "bulk") == 0) {
		s->bulk_left += rest ? strtoul(rest, NULL, 10) : 0;
		stream_bulk(s);
	} else if (strcmp(verb, "quiet") == 0) {
		s->quiet = true;
	} else if (strcmp(verb, "count") == 0) {
		say("got %s %zu %s", s->id, s->got, s->bad ? "BAD" : "OK");
	} else if (strcmp(verb, "shut") == 0) {
		shutdown(s->fd, SHUT_WR);
	} else if (strcmp(verb, "close") == 0) {
		stream_close(s);
		say("closed %s", arg);
	}
}

static void on_stdin(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct driver *d = userdata;
	ssize_t n = read(fd, d->line + d->line_len, sizeof(d->line) - 1 - d->line_len);
	char *nl;

	if (n <= 0) {
		if (n < 0 && errno == EINTR)
			return;
		sd_event_exit(d->event, 0);
		d->in = watch_free(d->in);
		return;
	}
	d->line_len += (size_t)n;
	d->line[d->line_len] = '\0';
	while ((nl = strchr(d->line, '\n'))) {
		size_t used = (size_t)(nl - d->line) + 1;

		*nl = '\0';
		command(d, d->line);
		memmove(d->line, d->line + used, d->line_len - used);
		d->line_len -= used;
		d->line[d->line_len] = '\0';
	}
	if (d->line_len == sizeof(d->line) - 1)
		d->line_len = 0; /* an overlong line: dropped */
}

static int read_file(const char *path, char **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f)
		return negative_errno();
	buf = malloc(HOSTS_MAX_SIZE + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, HOSTS_MAX_SIZE + 1, f);
	fclose(f);
	*ret = buf;
	*ret_len = n;
	return 0;
}

int main(int argc, char **argv)
{
	struct upstream_config cfg = { .keepalive_s = 10, .keepalive_count = 3,
				       .connect_timeout_s = 10 };
	struct hosts_file *hosts = NULL;
	struct driver d = { 0 };
	sd_event_source *poll_src = NULL;
	char *text = NULL;
	size_t len = 0;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: upstream-driver HOSTS_FILE KEY [--keepalive S] [--count N] "
				"[--timeout S] [--user NAME]\n");
		return 2;
	}
	cfg.key_path = argv[2];
	for (int i = 3; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--keepalive") == 0)
			cfg.keepalive_s = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--count") == 0)
			cfg.keepalive_count = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--timeout") == 0)
			cfg.connect_timeout_s = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--user") == 0)
			cfg.user = argv[i + 1];
	}
	log_set_ident("upstream-driver");
	for (size_t i = 0; i < DRIVER_MAX_STREAMS; i++)
		d.streams[i].fd = -EBADF;
	r = read_file(argv[1], &text, &len);
	if (r < 0) {
		fprintf(stderr, "cannot read %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	r = hosts_parse(text, len, &hosts);
	free(text);
	if (r < 0) {
		fprintf(stderr, "cannot parse %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	for (size_t i = 0; i < hosts->n_errors; i++)
		fprintf(stderr, "%s:%u: %s\n", argv[1], hosts->errors[i].line,
			hosts->errors[i].message);
	if (sd_event_default(&d.event) < 0 || poller_new(d.event, &d.poller) < 0)
		return 1;
	r = upstream_new(d.event, d.poller, &cfg, hosts, &d.up);
	if (r < 0) {
		fprintf(stderr, "upstream_new: %s\n", strerror(-r));
		return 1;
	}
	d.last = calloc(MAX(upstream_n_hosts(d.up), (size_t)1), sizeof(*d.last));
	if (!d.last || watch_add(d.poller, STDIN_FILENO, EPOLLIN, on_stdin, &d, &d.in) < 0 ||
	    sd_event_add_time_relative(d.event, &poll_src, CLOCK_MONOTONIC, 0, 0, on_poll, &d) <
		    0)
		return 1;
	sd_event_source_set_enabled(poll_src, SD_EVENT_ON);
	say("ready");
	r = sd_event_loop(d.event);

	for (size_t i = 0; i < DRIVER_MAX_STREAMS; i++)
		stream_close(&d.streams[i]);
	d.in = watch_free(d.in);
	poll_src = sd_event_source_disable_unref(poll_src);
	d.up = upstream_free(d.up);
	d.poller = poller_free(d.poller);
	sd_event_unref(d.event);
	hosts_file_free(hosts);
	free(d.last);
	return r < 0 ? 1 : 0;
}
