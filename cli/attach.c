/* SPDX-License-Identifier: MIT */
/*
 * `ttyhub attach` (see attach.h).  One poll loop over the terminal, the
 * broker socket and a signalfd.  The terminal is put in raw mode only once
 * the broker has accepted the attach, and restored on every way out,
 * including SIGTERM, SIGHUP and SIGINT.  Keystrokes pass through the shared
 * escape parser; everything that is not an escape command is sent to the
 * broker as data, with backpressure: stdin is not read while the outgoing
 * queue is full.
 *
 * When the broker goes away (EOF, a broken stream, `detached` with reason
 * shutdown) the session stays: the socket is closed, the front holds the
 * keystrokes typed meanwhile (front_lost()), and connects are retried with
 * front.h's back-off (the poll timeout is the timer).  A connect that
 * works gets front_reconnect()'s hello + attach-with-resume; its answer
 * shows the one resume line.  The escape detach still works in the gap.
 * After a detach, a signal, or when the broker stays away for
 * FRONT_GIVE_UP_USEC, the resume hint says how to continue.
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
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "escape.h"
#include "front.h"
#include "listing.h"
#include "log.h"
#include "util.h"

/* Room in the queue that keystrokes never take: requests (detach, take) always fit. */
#define CONTROL_RESERVE 2048

struct session {
	struct front *f;
	const struct attach_opts *opts;
	bool raw;
	struct termios saved;
	bool at_bol;     /* last byte written to the terminal ended a line */
	bool attached;
	bool stdin_eof;
	bool done;
	bool hint;       /* show the resume hint when the session ends */
	int status;      /* enum attach_status */
	/* The broker went away: f is not LIVE; retry at next_try until backoff gives up. */
	bool gap;
	bool overflow_told;      /* the user was told keystrokes no longer fit */
	struct front_backoff backoff;
	uint64_t next_try;       /* CLOCK_MONOTONIC usec; 0: a connection is up */
};

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

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

	/* reset and powerdown ask y/N on a terminal (escape.h). */
	s->f->esc.confirm = isatty(STDIN_FILENO);
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
	out_write(line, front_line(text, s->at_bol, s->raw, line, sizeof(line)));
	s->at_bol = true;
}

/* End the session with an enum attach_status. */
static void session_end(struct session *s, int status)
{
	s->done = true;
	s->status = status;
}

/* End it where the user may want to come back: the resume hint follows. */
static void session_leave(struct session *s, int status)
{
	session_end(s, status);
	s->hint = true;
}

/* Give up on the broker: the line, what became of the held keys, and the hint. */
static void session_give_up(struct session *s)
{
	char text[128];

	front_give_up_text(text, sizeof(text));
	term_notice(s, "%s", text);
	if (front_discard_held(s->f) > 0)
		term_notice(s, "the keystrokes typed meanwhile were not delivered");
	session_leave(s, ATTACH_ENDED);
}

/* The next try after a failed one: back off, or give up once the window has passed. */
static void session_schedule(struct session *s)
{
	uint64_t now = now_usec(), delay;

	if (!front_backoff_next(&s->backoff, now, &delay)) {
		session_give_up(s);
		return;
	}
	s->next_try = now + delay;
}

/*
 * The broker is away: close the connection and hold keystrokes.  The first
 * try is at once (a restart may already be done); a connection that broke
 * again before the re-attach was answered backs off, in the first window.
 */
static void session_lost(struct session *s)
{
	s->f->fd = safe_close(s->f->fd);
	front_lost(s->f);
	if (s->gap) {
		session_schedule(s);
		return;
	}
	s->gap = true;
	front_backoff_start(&s->backoff, now_usec());
	s->next_try = now_usec();
}

/* Time to try the broker again: connect and queue the re-attach, or schedule the next try. */
static void session_retry(struct session *s)
{
	int fd = front_connect(s->opts->broker, true);

	/* ENOENT, ECONNREFUSED (nobody listens yet), EAGAIN (backlog full): later. */
	if (fd < 0) {
		session_schedule(s);
		return;
	}
	if (front_reconnect(s->f, fd, "ttyhub", NULL) < 0) {
		close(fd); /* not reached: an empty queue takes two requests */
		session_schedule(s);
		return;
	}
	s->next_try = 0;
}

/* The poll timeout: until the next try, or the give-up point while a connect waits. */
static int session_timeout(const struct session *s)
{
	uint64_t now = now_usec(), at;

	if (!s->gap)
		return -1;
	at = s->next_try ? s->next_try : s->backoff.since + FRONT_GIVE_UP_USEC;
	if (at <= now)
		return 0;
	return (int)MIN((at - now + 999) / 1000, (uint64_t)INT32_MAX);
}

/* The gap outlived the give-up window on a connection nobody answers. */
static void session_check_give_up(struct session *s)
{
	if (s->gap && !s->done && !s->next_try &&
	    now_usec() - s->backoff.since >= FRONT_GIVE_UP_USEC)
		session_give_up(s);
}

static void send_resize(struct session *s)
{
	struct winsize ws;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0)
		(void)front_resize(s->f, ws.ws_col, ws.ws_row); /* a lost resize is harmless */
}

static void print_help(struct session *s)
{
	char buf[1024];

	escape_format_help(&s->f->esc, buf, sizeof(buf));
	if (!s->at_bol)
		out_write("\r\n", 2);
	out_write(buf, strlen(buf));
	s->at_bol = true;
}

static void do_escape(struct session *s, enum escape_cmd cmd)
{
	char text[600];
	int r;

	if (cmd == ESCAPE_HELP) {
		print_help(s);
		return;
	}
	if (cmd == ESCAPE_NONE)
		return;
	if (front_escape_text(s->f, cmd, text, sizeof(text)) > 0) {
		term_notice(s, "%s", text); /* a question (y/N), or what was cancelled */
		return;
	}
	r = front_escape_request(s->f, cmd);
	if (r == -ENOTCONN && cmd == ESCAPE_DETACH) {
		/* The broker is away: nothing to tell it; the hint says how to come back. */
		term_notice(s, "detached while ttyhubd was away");
		if (front_discard_held(s->f) > 0)
			term_notice(s, "the keystrokes typed meanwhile were not delivered");
		session_leave(s, ATTACH_DETACHED);
	} else if (r == -ENOTCONN)
		term_notice(s, "ttyhubd is away; try again once it is back");
	else if (r < 0)
		term_notice(s, "too many requests queued for the broker");
}

static void handle_stdin(struct session *s)
{
	uint8_t buf[4096];
	ssize_t n;
	size_t off = 0;

	n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* End of input (not a terminal): leave cleanly. */
		s->stdin_eof = true;
		if (s->gap)
			do_escape(s, ESCAPE_DETACH);
		else
			(void)front_detach(s->f); /* CONTROL_RESERVE keeps room for it */
		return;
	}
	while (off < (size_t)n && !s->done) {
		enum escape_cmd cmd;
		size_t dropped, used;

		/* The broker discards a watcher's input and says so: send it all. */
		used = front_keys(s->f, buf + off, (size_t)n - off, true, CONTROL_RESERVE, &dropped,
				  &cmd);
		if (used == 0 && cmd == ESCAPE_NONE)
			break; /* no room: stdin is polled only with room, so not reached */
		off += used;
		if (dropped > 0 && !s->overflow_told) {
			/* Only while the broker is away: the hold is full. */
			term_notice(s, "ttyhubd is away and %d KiB of keystrokes are held: "
				    "further ones are discarded", FRONT_HELD_MAX / 1024);
			s->overflow_told = true;
		}
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

/* A [ttyhub] line for the event, if it shows any. */
static void show_event(struct session *s, const struct front_event *e)
{
	char line[1300];
	size_t n = front_format(s->f, e, s->at_bol, s->raw, line, sizeof(line));

	if (n > 0) {
		out_write(line, n);
		s->at_bol = true;
	}
}

static void show_attached(struct session *s, const struct front_event *e)
{
	const char *state = json_string_value(json_object_get(e->msg, "state"));
	const char *status = json_string_value(json_object_get(e->msg, "status"));

	if (e->reconnected) {
		/* The one line (front_format()); the broker's notice for a gap or a restart. */
		s->gap = false;
		s->overflow_told = false;
		show_event(s, e);
		send_resize(s);
		return;
	}
	s->attached = true;
	term_raw(s);
	show_event(s, e);
	if (state && strcmp(state, "connected") != 0)
		term_notice(s, "console is %s: %s", state, status ? status : "");
	send_resize(s);
}

/* An error before the attach was accepted ends the command, on stderr. */
static void show_refusal(struct session *s, const struct front_event *e)
{
	const char *text = e->text ? e->text : "error";
	char esc[600];

	/* Broker text can carry domain-XML bytes (C1 controls): escape it. */
	fprintf(stderr, "ttyhub: %s\n", log_sanitize(text, strlen(text), esc, sizeof(esc)));
	session_end(s, ATTACH_ENDED);
}

static void handle_event(struct session *s, const struct front_event *e)
{
	switch (e->type) {
	case FRONT_EV_DATA:
		term_data(s, e->data, e->len);
		break;
	case FRONT_EV_ATTACHED:
		show_attached(s, e);
		break;
	case FRONT_EV_WHO:
		show_who(s, e->msg);
		break;
	case FRONT_EV_DETACHED:
		if (front_is_shutdown(e) && s->attached) {
			session_lost(s); /* it comes back: reconnect quietly */
			break;
		}
		show_event(s, e);
		if (e->reason == DETACH_REQUESTED)
			session_leave(s, ATTACH_DETACHED);
		else
			session_end(s, front_detach_status(e->reason) == 0 ? ATTACH_DETACHED
									  : ATTACH_ENDED);
		break;
	case FRONT_EV_ERROR:
		if (!s->attached)
			show_refusal(s, e);
		else
			show_event(s, e);
		if (e->reconnected) {
			/* The re-attach was refused: the session cannot go on. */
			s->gap = false;
			if (e->keys_dropped > 0)
				term_notice(s, "%zu keystrokes typed while ttyhubd was away were "
					    "discarded", e->keys_dropped);
			session_end(s, ATTACH_ENDED);
		}
		break;
	case FRONT_EV_NOTICE:
	case FRONT_EV_BREAK_SENT:
		show_event(s, e);
		break;
	case FRONT_EV_OUTPUT:    /* not asked for here */
	case FRONT_EV_STATE:     /* the notices that come with it say what changed */
	case FRONT_EV_LIST:
	case FRONT_EV_HELLO:
	case FRONT_EV_AUTHORIZED:
	case FRONT_EV_WEB_LINK:
	case FRONT_EV_REDEEMED:
	case FRONT_EV_ACTION_DONE: /* the broker's notice to everyone attached says it */
		break;
	}
}

static int handle_socket(struct session *s)
{
	struct front_event e;
	ssize_t n;
	int r;

	n = front_fill(s->f);
	if (n < 0)
		return (int)n;
	while (!s->done && s->f->fd >= 0 && (r = front_next_event(s->f, &e)) != 0) {
		if (r == -EBADMSG)
			term_notice(s, "bad message from the broker: %s", s->f->err);
		else if (r < 0)
			return r;
		else
			handle_event(s, &e);
	}
	if (s->f->fd >= 0 && front_eof(s->f) && !s->done) {
		if (s->attached) {
			session_lost(s); /* ttyhubd stopped or crashed: it may come back */
			return 0;
		}
		term_notice(s, "the broker closed the connection");
		session_end(s, ATTACH_ENDED);
	}
	return 0;
}

/* A connection that broke: reconnect once attached, else the command ends. */
static void session_broken(struct session *s, const char *what, int err)
{
	if (s->attached) {
		session_lost(s);
		return;
	}
	term_notice(s, "%s: %s", what, strerror(-err));
	session_end(s, ATTACH_ENDED);
}

static void show_hint(struct session *s)
{
	char text[1200];

	if (front_resume_hint(s->f, FRONT_HINT_CLI, NULL, 0, text, sizeof(text)) > 0)
		term_notice(s, "%s", text);
}

int attach_run(struct front *f, const struct attach_opts *o)
{
	struct session s = { .f = f, .opts = o, .at_bol = true };
	sigset_t mask;
	int sfd, r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	if (o->resume)
		r = front_attach_resume(f, o->console, o->mode, o->replay, o->epoch, o->offset,
					NULL);
	else
		r = front_attach(f, o->console, o->mode, o->replay);
	if (r == -EINVAL || r == -ENAMETOOLONG) {
		fprintf(stderr, "ttyhub: %s: console names must be UTF-8 and shorter than %d "
				"bytes\n", o->console, FRONT_CONSOLE_MAX);
		session_end(&s, ATTACH_ENDED);
	} else if (r < 0) {
		if (sfd >= 0)
			close(sfd);
		return r;
	}

	while (!s.done) {
		/* In the gap keystrokes go to the front's hold: stdin stays open for them. */
		struct pollfd p[3] = {
			{ .fd = s.attached && !s.stdin_eof &&
					(s.gap || obuf_room(&f->out) > 8192) ? STDIN_FILENO : -1,
			  .events = POLLIN },
			{ .fd = f->fd, .events = POLLIN | (front_pending(f) ? POLLOUT : 0) },
			{ .fd = sfd, .events = POLLIN },
		};
		int n = poll(p, 3, session_timeout(&s));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (s.gap && s.next_try && now_usec() >= s.next_try) {
			session_retry(&s);
			continue; /* poll the new connection */
		}
		session_check_give_up(&s);
		if (p[2].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGWINCH)
					send_resize(&s);
				else {
					term_notice(&s, "%s: detaching", strsignal((int)si.ssi_signo));
					session_leave(&s, ATTACH_ENDED);
				}
			}
		}
		if (!s.done && p[0].revents & (POLLIN | POLLHUP | POLLERR))
			handle_stdin(&s);
		/* A write error is read as EOF or an error below; reading first keeps what came. */
		if (!s.done && f->fd >= 0 && p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = handle_socket(&s);
			if (r < 0)
				session_broken(&s, "broken connection to the broker", r);
		}
		if (!s.done && f->fd >= 0 && front_pending(f) && (r = (int)front_flush(f)) < 0)
			session_broken(&s, "lost the connection to the broker", r);
	}
	if (s.hint)
		show_hint(&s);
	term_restore(&s);
	restore_on_exit = NULL;
	if (sfd >= 0)
		close(sfd);
	return s.status;
}
