/* SPDX-License-Identifier: MIT */
/*
 * `ttyhub attach` (see attach.h).  One poll loop over the terminal, the
 * broker socket and a signalfd.  The terminal is put in raw mode only once
 * the broker has accepted the attach, and restored on every way out,
 * including SIGTERM, SIGHUP and SIGINT.  Keystrokes pass through the shared
 * escape parser; everything that is not an escape command is sent to the
 * broker as data, with backpressure: stdin is not read while the outgoing
 * queue is full.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "attach.h"
#include "escape.h"
#include "listing.h"
#include "log.h"
#include "util.h"

#define OUT_MAX (256 * 1024)

struct session {
	int fd;
	struct frame_reader *in;
	struct obuf out;
	struct escape esc;
	const struct attach_opts *opts;
	bool raw;
	struct termios saved;
	bool at_bol;     /* last byte written to the terminal ended a line */
	bool attached;
	bool writer;
	bool stdin_eof;
	bool done;
	int status;
};

static struct session *restore_on_exit;

static void term_restore(struct session *s)
{
	if (s->raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &s->saved);
		s->raw = false;
	}
}

static void term_restore_atexit(void)
{
	if (restore_on_exit)
		term_restore(restore_on_exit);
}

static void term_raw(struct session *s)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &s->saved) < 0)
		return;
	t = s->saved;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0) {
		s->raw = true;
		restore_on_exit = s;
		atexit(term_restore_atexit);
	}
}

static void out_write(const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EAGAIN) {
				struct pollfd pfd = { .fd = STDOUT_FILENO, .events = POLLOUT };

				poll(&pfd, 1, 1000);
				continue;
			}
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void term_data(struct session *s, const uint8_t *data, size_t len)
{
	if (len == 0)
		return;
	out_write(data, len);
	s->at_bol = data[len - 1] == '\n';
}

/* A "[ttyhub] ..." line of its own. */
static void term_notice(struct session *s, const char *fmt, ...) _printf_(2, 3);
static void term_notice(struct session *s, const char *fmt, ...)
{
	char text[1024], line[1300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	out_write(line, proto_notice_line(text, s->at_bol, s->raw, line, sizeof(line)));
	s->at_bol = true;
}

static int send_json(struct session *s, json_t *msg)
{
	int r = msg ? proto_put_control(&s->out, msg) : -ENOMEM;

	json_decref(msg);
	return r;
}

static void send_resize(struct session *s)
{
	struct winsize ws;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0)
		send_json(s, json_pack("{s:s, s:i, s:i}", "type", "resize", "cols", ws.ws_col,
				       "rows", ws.ws_row));
}

static void print_help(struct session *s)
{
	char buf[1024];

	escape_format_help(&s->esc, buf, sizeof(buf));
	if (!s->at_bol)
		out_write("\r\n", 2);
	out_write(buf, strlen(buf));
	s->at_bol = true;
}

static void do_escape(struct session *s, enum escape_cmd cmd)
{
	if (cmd == ESCAPE_HELP)
		print_help(s);
	else if (cmd != ESCAPE_NONE)
		send_json(s, proto_escape_request(cmd));
}

static void handle_stdin(struct session *s)
{
	uint8_t buf[4096], data[sizeof(buf) + 2];
	ssize_t n;
	size_t off = 0;

	n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* End of input (not a terminal): leave cleanly. */
		s->stdin_eof = true;
		send_json(s, json_pack("{s:s}", "type", "detach"));
		return;
	}
	while (off < (size_t)n) {
		enum escape_cmd cmd;
		size_t outlen;

		off += escape_feed(&s->esc, buf + off, (size_t)n - off, data, &outlen, &cmd);
		if (outlen > 0)
			proto_put_data(&s->out, data, outlen);
		do_escape(s, cmd);
	}
}

static void show_who(struct session *s, json_t *msg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	fprintf(f, "%s", s->at_bol ? "" : "\r\n");
	listing_print_who(f, msg, s->raw ? "\r\n" : "\n");
	fclose(f);
	out_write(buf, len);
	s->at_bol = true;
	free(buf);
}

static void show_attached(struct session *s, json_t *msg)
{
	const char *role = json_string_value(json_object_get(msg, "role"));
	const char *state = json_string_value(json_object_get(msg, "state"));
	const char *status = json_string_value(json_object_get(msg, "status"));
	char text[512];

	s->attached = true;
	s->writer = role && strcmp(role, "writer") == 0;
	term_raw(s);
	proto_attached_text(msg, s->esc.prefix, text, sizeof(text));
	term_notice(s, "%s", text);
	if (state && strcmp(state, "connected") != 0)
		term_notice(s, "console is %s: %s", state, status ? status : "");
	send_resize(s);
}

static void handle_control(struct session *s, const struct frame *f)
{
	json_t *msg;
	const char *type;
	char err[256];

	if (proto_decode_control(f->payload, f->len, &msg, &type, err, sizeof(err)) < 0) {
		term_notice(s, "bad message from the broker: %s", err);
		return;
	}
	if (strcmp(type, "attached") == 0)
		show_attached(s, msg);
	else if (strcmp(type, "notice") == 0)
		term_notice(s, "%s", json_string_value(json_object_get(msg, "text")));
	else if (strcmp(type, "state") == 0) {
		const char *role = json_string_value(json_object_get(msg, "role"));

		s->writer = role && strcmp(role, "writer") == 0;
	} else if (strcmp(type, "who") == 0)
		show_who(s, msg);
	else if (strcmp(type, "break-sent") == 0)
		term_notice(s, "serial break sent");
	else if (strcmp(type, "detached") == 0) {
		const char *reason = json_string_value(json_object_get(msg, "reason"));
		const char *text = json_string_value(json_object_get(msg, "text"));

		term_notice(s, "detached: %s", text ? text : reason ? reason : "");
		s->done = true;
		s->status = detach_reason_from_string(reason) == DETACH_REQUESTED ? 0 : 1;
	} else if (strcmp(type, "error") == 0) {
		const char *code = json_string_value(json_object_get(msg, "code"));
		const char *text = json_string_value(json_object_get(msg, "message"));

		if (!s->attached) {
			char esc[600];

			/* Broker text can carry domain-XML bytes (C1 controls): escape it. */
			if (!text)
				text = "error";
			fprintf(stderr, "ttyhub: %s\n",
				log_sanitize(text, strlen(text), esc, sizeof(esc)));
			s->done = true;
			s->status = 1;
		} else if (code && strcmp(code, PROTO_E_READ_ONLY) == 0) {
			char hint[256];

			proto_readonly_hint(s->esc.prefix, hint, sizeof(hint));
			term_notice(s, "%s", hint);
		}
		else
			term_notice(s, "%s", text ? text : "error");
	}
	json_decref(msg);
}

static int handle_socket(struct session *s)
{
	struct frame f;
	ssize_t n;
	int r;

	n = frame_reader_fill(s->in, s->fd);
	if (n < 0)
		return (int)n;
	while ((r = frame_reader_next(s->in, &f)) > 0 && !s->done) {
		if (f.type == FRAME_DATA)
			term_data(s, f.payload, f.len);
		else
			handle_control(s, &f);
	}
	if (r < 0)
		return r;
	if (s->in->eof && !s->done) {
		term_notice(s, "the broker closed the connection");
		s->done = true;
		s->status = 1;
	}
	return 0;
}

int attach_run(int fd, struct frame_reader *in, const struct attach_opts *o)
{
	struct session s = { .fd = fd, .in = in, .opts = o, .at_bol = true };
	sigset_t mask;
	int sfd, r;
	json_t *req;

	if (obuf_init(&s.out, OUT_MAX) < 0)
		return 1;
	escape_init(&s.esc, o->prefix[0], o->prefix[1]);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	req = json_pack("{s:s, s:s, s:s}", "type", "attach", "console", o->console, "mode",
			o->mode);
	if (req && o->replay >= 0)
		json_object_set_new(req, "replay", json_integer(o->replay));
	else if (req && o->replay == -1)
		json_object_set_new(req, "replay", json_string("all"));
	send_json(&s, req);

	while (!s.done) {
		struct pollfd p[3] = {
			{ .fd = s.attached && !s.stdin_eof && obuf_room(&s.out) > 8192
					? STDIN_FILENO : -1, .events = POLLIN },
			{ .fd = fd, .events = POLLIN | (obuf_len(&s.out) ? POLLOUT : 0) },
			{ .fd = sfd, .events = POLLIN },
		};

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[2].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGWINCH)
					send_resize(&s);
				else {
					term_notice(&s, "%s: detaching", strsignal((int)si.ssi_signo));
					s.done = true;
					s.status = 1;
				}
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			handle_stdin(&s);
		if (p[1].revents & POLLOUT || obuf_len(&s.out)) {
			if (obuf_flush(&s.out, fd) < 0) {
				term_notice(&s, "lost the connection to the broker");
				s.done = true;
				s.status = 1;
			}
		}
		if (!s.done && p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = handle_socket(&s);
			if (r < 0) {
				term_notice(&s, "broken connection to the broker: %s", strerror(-r));
				s.done = true;
				s.status = 1;
			}
		}
	}
	term_restore(&s);
	restore_on_exit = NULL;
	if (sfd >= 0)
		close(sfd);
	obuf_done(&s.out);
	return s.status;
}
