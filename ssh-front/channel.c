/* SPDX-License-Identifier: MIT */
/*
 * SSH session channels (see channel.h): the libssh channel callbacks, the
 * broker connection and its events, flow control both ways, keystrokes of
 * an attached user, and the "no console named" answer.
 *
 * Nothing here runs libssh calls that wait, and a channel is never freed
 * inside a libssh callback: callbacks only record what happened; the pump,
 * called after each ssh_event_dopoll() and on broker events, does the rest.
 * A pump from one of the channel's own event sources (broker socket,
 * timers) ends with chan_ops.update_events, since libssh may have output.
 */
#include <errno.h>
#include <libssh/server.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "gateway.h"
#include "listing.h"
#include "log.h"
#include "message.h"
#include "userspec.h"
#include "util.h"
#include "view.h"

#define TO_CLIENT_MAX (128 * 1024)
#define TO_BROKER_MAX (32 * 1024)
#define CLIENT_WRITE_CHUNK (128 * 1024)
#define UNSENT_MAX (256 * 1024)

_Static_assert(EXEC_COMMAND_MAX > CHAN_NAME_MAX, "an exec command holds any console name");

static void chan_on_broker(struct watch *w, int fd, uint32_t revents, void *userdata);
static void chan_start_menu(struct chan *c);

/* One audit line, through the session (it adds who and from where). */
static void chan_audit(struct chan *c, const char *event, const char *fmt, ...) _printf_(3, 4);
static void chan_audit(struct chan *c, const char *event, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	c->env->ops->audit(c->env->userdata, event, detail);
}

/* "\r\n" for a pty, else "\n". */
static const char *chan_eol(const struct chan *c)
{
	return c->pty ? "\r\n" : "\n";
}

/* Text for the user (already safe); dropped when the client does not read. */
static void chan_say(struct chan *c, const char *text, size_t len)
{
	if (len == 0 || c->relay)
		return; /* a relay carries the broker's bytes only */
	if (obuf_append(&c->to_client, text, len) < 0)
		return; /* the client is not reading: drop the text, never grow */
	c->at_bol = text[len - 1] == '\n';
}

/* A "[ttyhub] ..." line. */
static void chan_notice(struct chan *c, const char *fmt, ...) _printf_(2, 3);
static void chan_notice(struct chan *c, const char *fmt, ...)
{
	char text[1024], line[1300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	chan_say(c, line, front_line(text, c->at_bol, c->pty, line, sizeof(line)));
}

/* Broker text (notices, errors) as SSH users may see it, as a notice. */
static void chan_notice_scrubbed(struct chan *c, const char *raw)
{
	char text[1024];

	view_scrub(raw, text, sizeof(text));
	chan_notice(c, "%s", text);
}

static bool chan_may_send(const struct chan *c)
{
	return c->state != CHAN_CLOSING && c->broker_fd >= 0;
}

/*
 * Check a request's queueing (0 or a front_*() error): one that could not
 * be built (a name that is not UTF-8) or queued closes the channel, since
 * waiting for an answer that never comes would hold the broker connection
 * for nothing.  Returns true if it was queued.
 */
static bool chan_sent(struct chan *c, int r)
{
	if (r == -EINVAL)
		chan_close(c, 1, "cannot make the request (names must be UTF-8)");
	else if (r < 0)
		chan_close(c, 1, "too many requests queued for the console broker");
	return r >= 0;
}

/*
 * A request that may be dropped when the queue is full (a window size).
 * Keystrokes leave CHAN_CONTROL_RESERVE free, so release and detach always fit.
 */
static void chan_send_resize(struct chan *c)
{
	if (chan_may_send(c) && c->state == CHAN_ATTACHED && c->pty && c->cols && c->rows &&
	    obuf_room(&c->front.out) > CHAN_CONTROL_RESERVE)
		(void)front_resize(&c->front, c->cols, c->rows);
}

void chan_close(struct chan *c, int status, const char *fmt, ...)
{
	if (c->state == CHAN_CLOSING)
		return;
	if (fmt) {
		char text[1024];
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(text, sizeof(text), fmt, ap);
		va_end(ap);
		chan_notice(c, "%s", text);
		if (c->relay)
			relay_set_why(c->relay, text); /* the audit line says it; the relay cannot */
	}
	if (c->state == CHAN_ATTACHED || c->state == CHAN_RECONNECTING || c->reattach)
		chan_audit(c, "detach", "console=%s", c->console);
	c->exit_status = status;
	c->state = CHAN_CLOSING;
	c->menu_timer = sd_event_source_disable_unref(c->menu_timer);
	c->unknown_timer = sd_event_source_disable_unref(c->unknown_timer);
	c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
}

/*
 * Give the broker connection back as soon as the channel is closing: what
 * is still queued for the broker gets one try, the client's last notices
 * need no broker.  A client that never reads them holds no broker slot.
 */
static void chan_release_broker(struct chan *c)
{
	if (c->broker_fd < 0)
		return;
	(void)front_flush(&c->front);
	c->broker_io = watch_free(c->broker_io);
	c->broker_fd = safe_close(c->broker_fd);
	c->front.fd = -EBADF;
	obuf_consume(&c->front.out, obuf_len(&c->front.out));
}

/* Forget the broker connection without a word to it (it is gone, or going). */
static void chan_drop_broker(struct chan *c)
{
	c->broker_io = watch_free(c->broker_io);
	c->broker_fd = safe_close(c->broker_fd);
	c->front.fd = -EBADF;
}

/* Connect to the broker and watch the socket; the channel's front uses it.  0 or -errno. */
static int chan_open_broker(struct chan *c)
{
	int fd, r;

	/* On a gateway, "the broker" is the gateway's connection to its hosts (gateway.h). */
	fd = c->env->config->gateway ? gateway_connect(c->env->config->gateway)
				     : front_connect(c->env->config->broker, true);
	if (fd < 0)
		return fd;
	r = watch_add(c->env->poller, fd, EPOLLIN | EPOLLOUT, chan_on_broker, c, &c->broker_io);
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	c->broker_fd = fd;
	c->front.fd = fd;
	return 0;
}

/* Connect to the broker and say hello for the session's key; closes the channel on failure. */
static int chan_connect_broker(struct chan *c)
{
	int r = chan_open_broker(c);

	if (r < 0) {
		log_error_errno(r, "cannot reach ttyhubd at %s", c->env->config->broker);
		chan_close(c, 1, "the console broker is not reachable");
		return r;
	}
	/* ttyhubd decides every right of this key, from this address. */
	r = front_hello(&c->front, "ttyhub-sshd", &c->env->principal);
	return chan_sent(c, r) ? 0 : -ENOBUFS;
}

/*
 * Reconnecting.  The broker went away while the channel was attached: the
 * SSH channel stays, the broker connection is dropped (front_lost(): the
 * front keeps its place and holds keystrokes), and a timer tries again
 * with the front library's back-off (50 ms doubling to 1 s), so a broker
 * that restarts in milliseconds is back at once and one that is down for
 * long costs a connect() a second.  A connection that is accepted gets the
 * hello and the resuming attach (front_reconnect(); CHAN_ATTACHING with
 * reattach); the timer then waits for the give-up time, since a broker
 * that accepts (or a socket the service manager holds, which queues
 * connections while the broker starts) may still never answer.  A
 * reattach that loses its connection again goes back to waiting.  After
 * FRONT_GIVE_UP_USEC the channel ends with a line saying so, and the hint.
 */
static int chan_on_retry(sd_event_source *es, uint64_t usec, void *userdata);

static uint64_t chan_now(const struct chan *c)
{
	uint64_t now = 0;

	(void)sd_event_now(c->env->event, CLOCK_MONOTONIC, &now);
	return now;
}

/* Arm the retry timer for at (CLOCK_MONOTONIC), or close the channel if it cannot be. */
static void chan_retry_at(struct chan *c, uint64_t at)
{
	int r;

	if (c->retry_timer) {
		r = sd_event_source_set_time(c->retry_timer, at);
		if (r >= 0)
			r = sd_event_source_set_enabled(c->retry_timer, SD_EVENT_ONESHOT);
	} else
		r = sd_event_add_time(c->env->event, &c->retry_timer, CLOCK_MONOTONIC, at,
				      1000, chan_on_retry, c);
	if (r < 0)
		chan_close(c, 1, "lost the connection to the console broker (cannot retry: %s)",
			   strerror(-r));
}

/* May this channel reconnect and resume?  Only an attached console. */
static bool chan_may_reconnect(const struct chan *c)
{
	return (c->state == CHAN_ATTACHED || c->state == CHAN_RECONNECTING ||
		(c->state == CHAN_ATTACHING && c->reattach)) &&
	       c->front.book.attached;
}

/* The resume hint (front.h) as a line, if the front knows where we are. */
static void chan_hint(struct chan *c)
{
	char hint[2 * FRONT_CONSOLE_MAX + 800];

	if (front_resume_hint(&c->front, FRONT_HINT_SSH, c->env->host, c->env->port, hint,
			      sizeof(hint)) > 0)
		chan_notice(c, "%s", hint);
}

/* The end of a gap that did not end in a re-attach: keystrokes held are said, not kept. */
static void chan_gap_end(struct chan *c)
{
	size_t held;

	if (!c->gap)
		return;
	c->gap = false;
	held = front_discard_held(&c->front);
	if (held > 0)
		chan_notice(c, "%zu keystrokes typed while ttyhubd was away were discarded", held);
}

/* Wait for the next attempt, or give up. */
static void chan_retry_later(struct chan *c)
{
	uint64_t delay;

	if (front_backoff_next(&c->backoff, chan_now(c), &delay))
		chan_retry_at(c, chan_now(c) + delay);
	else
		chan_retry_at(c, chan_now(c)); /* chan_on_retry() gives up */
}

/*
 * The broker connection ended (EOF, an error, `detached` for `shutdown`):
 * reconnect if the channel may, else close saying so.
 */
static void chan_broker_lost(struct chan *c)
{
	if (c->state == CHAN_CLOSING)
		return;
	if (c->detach_asked && c->state == CHAN_ATTACHED) {
		/* The user left just as the broker did: that detach must not turn into a resume. */
		chan_drop_broker(c);
		chan_hint(c);
		chan_close(c, 0, "detached");
		return;
	}
	if (!chan_may_reconnect(c)) {
		chan_close(c, 1, "lost the connection to the console broker");
		return;
	}
	chan_drop_broker(c);
	front_lost(&c->front);
	if (!c->gap) {
		c->gap = true;
		c->gap_over_said = false;
		front_backoff_start(&c->backoff, chan_now(c));
		log_info("channel on %s: the console broker went away; reconnecting", c->console);
	}
	c->state = CHAN_RECONNECTING;
	c->reattach = false;
	chan_retry_later(c);
}

/* One connection attempt: on success, hello and the resuming attach go out. */
static void chan_reconnect(struct chan *c)
{
	uint64_t since = c->backoff.since;
	int r;

	r = chan_open_broker(c);
	if (r < 0) {
		/* Not there yet (refused, no socket, a full backlog): wait longer each time. */
		chan_retry_later(c);
		return;
	}
	r = front_reconnect(&c->front, c->broker_fd, "ttyhub-sshd", &c->env->principal);
	if (!chan_sent(c, r))
		return;
	c->state = CHAN_ATTACHING;
	c->reattach = true;
	chan_retry_at(c, since + FRONT_GIVE_UP_USEC);
}

static int chan_on_retry(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct chan *c = userdata;
	const struct chan_env *env = c->env; /* the pump may free c */

	if (c->state != CHAN_RECONNECTING && !(c->state == CHAN_ATTACHING && c->reattach))
		return 0;
	if (chan_now(c) - c->backoff.since >= FRONT_GIVE_UP_USEC) {
		char text[256];

		log_warning("channel on %s: the console broker did not come back (%u attempts); "
			    "closing", c->console, c->backoff.tries);
		chan_drop_broker(c);
		chan_gap_end(c);
		front_give_up_text(text, sizeof(text));
		chan_notice(c, "%s", text);
		chan_hint(c);
		chan_close(c, 1, NULL);
	} else if (c->state == CHAN_RECONNECTING)
		chan_reconnect(c);
	chan_pump(c);
	env->ops->update_events(env->userdata);
	return 0;
}

/* The request naming a console arrived now: a "no console named" answer waits from here. */
static void chan_asked(struct chan *c)
{
	if (sd_event_now(c->env->event, CLOCK_MONOTONIC, &c->asked_usec) < 0)
		c->asked_usec = 0; /* chan_unknown() pads from its own time */
}

/*
 * Attach to name (the broker decides; mode ATTACH_RW is the default "write
 * if free"), continuing from resume if not NULL (+resume=: no lease, a new
 * SSH session is a new client).
 */
static void chan_start_attach(struct chan *c, const char *name, enum attach_mode mode, long replay,
			      const struct proto_resume *resume)
{
	if (strlen(name) >= sizeof(c->console)) {
		chan_close(c, 1, "console name too long (at most %zu bytes)", sizeof(c->console) - 1);
		return;
	}
	snprintf(c->console, sizeof(c->console), "%s", name);
	chan_asked(c);
	c->state = CHAN_ATTACHING;
	chan_sent(c, resume ? front_attach_resume(&c->front, name, mode, replay, resume->epoch,
						  resume->offset, NULL)
			    : front_attach(&c->front, name, mode, replay));
}

/* The held "no console named" answer, now that its time has come. */
static void chan_unknown_answer(struct chan *c)
{
	if (c->from_username && c->pty) {
		/* "ssh console@host": a user name that is no console opens the menu. */
		chan_notice(c, "no console named '%s'; choose one:", c->unknown);
		c->from_username = false;
		chan_start_menu(c);
		return;
	}
	chan_close(c, 1, "no console named '%s'", c->unknown);
}

static int chan_on_unknown_timer(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct chan *c = userdata;
	const struct chan_env *env = c->env; /* the pump may free c */

	if (c->state == CHAN_UNKNOWN) {
		chan_unknown_answer(c);
		chan_pump(c);
		env->ops->update_events(env->userdata);
	}
	return 0;
}

/*
 * The same words whether the console does not exist or the key may not see
 * it (ttyhubd answers both alike), and at the same time: held until
 * CHAN_UNKNOWN_PAD_USEC after the request (channel.h).  Meanwhile the
 * channel is in CHAN_UNKNOWN: keystrokes are discarded, and a close of the
 * channel frees the timer with it.
 */
static void chan_unknown(struct chan *c, const char *name)
{
	sd_event *e = c->env->event;
	uint64_t now = 0, at;

	if (c->state == CHAN_UNKNOWN || c->state == CHAN_CLOSING)
		return; /* already answering */
	log_escape(name, strlen(name), c->unknown, sizeof(c->unknown));
	(void)sd_event_now(e, CLOCK_MONOTONIC, &now);
	at = (c->asked_usec ? c->asked_usec : now) + CHAN_UNKNOWN_PAD_USEC;
	c->unknown_timer = sd_event_source_disable_unref(c->unknown_timer);
	/* Accuracy 1 µs: sd-event's default (0) lets a timer slip by up to 250 ms. */
	if (sd_event_add_time(e, &c->unknown_timer, CLOCK_MONOTONIC, at, 1, chan_on_unknown_timer,
			      c) < 0) {
		/* Out of resources: answer now rather than never; this says nothing of the name. */
		chan_unknown_answer(c);
		return;
	}
	c->state = CHAN_UNKNOWN;
}

/*
 * A table for the user, printed by print (eol as the channel wants).  One
 * longer than the client queue is fed in as the client reads; the channel
 * closes only once it has all gone out.
 */
static void chan_print(struct chan *c, void (*print)(FILE *, json_t *, const char *), json_t *msg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	print(f, msg, chan_eol(c));
	fclose(f);
	if (len > 0 && !c->spool && obuf_room(&c->to_client) < len) {
		c->spool = buf;
		c->spool_len = len;
		c->spool_off = 0;
		c->at_bol = buf[len - 1] == '\n';
		return;
	}
	chan_say(c, buf, len);
	free(buf);
}

static void chan_print_who(FILE *f, json_t *who, const char *eol)
{
	json_t *view = view_who(who);

	listing_print_who(f, view, eol);
	json_decref(view);
}

/* The console menu (menu.h): the channel asks for the list, times it out, and acts on it. */

static void chan_menu_say(void *userdata, const char *text, size_t len)
{
	chan_say(userdata, text, len);
}

static void chan_menu_close(void *userdata, int status, const char *text)
{
	if (text)
		chan_close(userdata, status, "%s", text);
	else
		chan_close(userdata, status, NULL);
}

static void chan_menu_choose(void *userdata, const char *name)
{
	chan_start_attach(userdata, name, ATTACH_RW, PROTO_REPLAY_DEFAULT, NULL);
}

static const struct menu_ops chan_menu_ops = {
	.say = chan_menu_say,
	.close = chan_menu_close,
	.choose = chan_menu_choose,
};

static int chan_on_menu_timeout(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct chan *c = userdata;
	const struct chan_env *env = c->env; /* the pump may free c */

	if (c->state == CHAN_MENU) {
		chan_close(c, 1, "no console chosen in %u seconds; closing",
			   env->config->menu_timeout_s);
		chan_pump(c);
		env->ops->update_events(env->userdata);
	}
	return 0;
}

/* (Re)start the menu's idle timer. */
static void chan_menu_touch(struct chan *c)
{
	uint64_t usec = (uint64_t)c->env->config->menu_timeout_s * 1000000;

	if (!c->menu_timer) {
		if (sd_event_add_time_relative(c->env->event, &c->menu_timer, CLOCK_MONOTONIC, usec,
					       0, chan_on_menu_timeout, c) < 0)
			chan_close(c, 1, "cannot show the menu (out of resources)");
		return;
	}
	sd_event_source_set_time_relative(c->menu_timer, usec);
	sd_event_source_set_enabled(c->menu_timer, SD_EVENT_ONESHOT);
}

/* Ask the broker for the list; the menu shows it when it comes. */
static void chan_start_menu(struct chan *c)
{
	c->state = CHAN_MENU;
	chan_sent(c, front_list(&c->front, NULL));
}

static void chan_show_menu(struct chan *c, json_t *list)
{
	menu_show(&c->menu, list, chan_eol(c));
	if (c->state == CHAN_MENU)
		chan_menu_touch(c);
}

/* An exec command (exec.h): the broker is asked, its answer printed. */
static void chan_start_exec(struct chan *c, const char *command)
{
	int r = exec_parse(command, &c->exec);

	if (r == -E2BIG) {
		/* Never cut: a cut name could name another console. */
		chan_close(c, 2, "command too long (at most %d bytes)", EXEC_COMMAND_MAX - 1);
		return;
	}
	if (chan_connect_broker(c) < 0)
		return;
	if (r < 0) {
		chan_close(c, 2, "unknown command; try: list [--json] | attach NAME [--ro|--force] | "
			   "who NAME | web-link NAME [--ro] | sysrq NAME KEY | nmi NAME | "
			   "reset NAME | powerdown NAME");
		return;
	}
	switch (c->exec.verb) {
	case EXEC_LIST:
	case EXEC_LIST_JSON:
		c->state = CHAN_EXEC;
		chan_sent(c, front_list(&c->front, NULL));
		break;
	case EXEC_WHO:
		chan_asked(c);
		c->state = CHAN_EXEC;
		chan_sent(c, front_who(&c->front, c->exec.name));
		break;
	case EXEC_ATTACH:
		chan_start_attach(c, c->exec.name, c->exec.mode, PROTO_REPLAY_DEFAULT, NULL);
		break;
	case EXEC_WEB_LINK:
		chan_asked(c);
		c->state = CHAN_EXEC;
		chan_sent(c, front_web_link(&c->front, c->exec.name, c->exec.mode == ATTACH_RO));
		break;
	case EXEC_ACTION:
		chan_asked(c);
		c->state = CHAN_EXEC;
		chan_sent(c, front_action(&c->front, c->exec.name,
					  proto_action_to_string(c->exec.action),
					  c->exec.key[0] ? c->exec.key : NULL));
		break;
	}
}

/* A LIST or WHO for a channel in CHAN_EXEC: the answer, then the end. */
static void chan_exec_reply(struct chan *c, const struct front_event *e)
{
	exec_print_fn *print = exec_printer(&c->exec, e->type);

	if (!print)
		return;
	chan_print(c, print, e->msg);
	chan_close(c, 0, NULL);
}

static void chan_on_error(struct chan *c, const struct front_event *e)
{
	if (!e->code || !e->text)
		return;
	if (c->state == CHAN_ATTACHING && c->reattach && strcmp(e->code, PROTO_E_REVOKED) != 0) {
		/* The restarted broker will not have us back (the console is gone, say). */
		char text[1024];

		view_scrub(e->text, text, sizeof(text));
		chan_close(c, 1, "cannot resume after the console broker restarted: %s", text);
		return;
	}
	if (strcmp(e->code, PROTO_E_REVOKED) == 0) {
		/* The key left the access file: the whole SSH session ends, saying why. */
		char why[256];

		view_scrub(e->text, why, sizeof(why));
		chan_close(c, 1, "%s; closing", why);
		c->env->ops->revoke(c->env->userdata, why);
	} else if (strcmp(e->code, PROTO_E_UNKNOWN_CONSOLE) == 0 && c->state != CHAN_ATTACHED) {
		/* who and web-link name a console without attaching; everything else attaches. */
		bool who = c->state == CHAN_EXEC &&
			   (c->exec.verb == EXEC_WHO || c->exec.verb == EXEC_WEB_LINK ||
			    c->exec.verb == EXEC_ACTION);

		chan_unknown(c, who ? c->exec.name : c->console);
	} else if (strcmp(e->code, PROTO_E_READ_ONLY) == 0) {
		char hint[256];

		if (c->access == ATTACH_RO)
			chan_notice(c, "read-only: your key may only watch %s; input is discarded",
				    c->console);
		else {
			front_readonly_hint(c->front.esc.prefix, hint, sizeof(hint));
			chan_notice(c, "%s", hint);
		}
	} else if (c->state == CHAN_ATTACHED)
		chan_notice_scrubbed(c, e->text);
	else {
		char text[1024];

		view_scrub(e->text, text, sizeof(text));
		chan_close(c, 1, "%s", text);
	}
}

/*
 * Back after a lost broker: one line says how it went (nothing lost, the
 * bytes lost, or the console restarted; the broker's notices, if any, come
 * as NOTICE events of their own and the front library tells which to
 * show), and the keystrokes held during the gap go out or are refused.
 */
static void chan_on_reattached(struct chan *c, const struct front_event *e)
{
	uint64_t gap = chan_now(c) - c->backoff.since;
	char line[1300];

	c->reattach = false;
	c->gap = false;
	c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
	log_info("channel on %s: resumed after %llu ms (%u attempts)", c->console,
		 (unsigned long long)(gap / 1000), c->backoff.tries);
	chan_audit(c, "reattach", "console=%s role=%s", c->console,
		   c->writer ? "writer" : "watcher");
	/* "broker restarted, nothing lost" (or only the keystrokes it could not keep). */
	chan_say(c, line, front_format(&c->front, e, c->at_bol, c->pty, line, sizeof(line)));
	chan_send_resize(c);
}

/* The broker attached us, to the console it resolved the name to and with the key's rights. */
static void chan_on_attached(struct chan *c, const struct front_event *e)
{
	const char *state = json_string_value(json_object_get(e->msg, "state"));
	const char *writer = json_string_value(json_object_get(e->msg, "writer"));
	json_t *view;
	char text[1024], label[256];

	if (!e->console || strlen(e->console) >= sizeof(c->console)) {
		(void)front_detach(&c->front);
		chan_close(c, 1, "console name too long (at most %zu bytes)", sizeof(c->console) - 1);
		return;
	}
	snprintf(c->console, sizeof(c->console), "%s", e->console);
	c->state = CHAN_ATTACHED;
	c->writer = e->writer;
	c->access = e->access;
	if (c->reattach) {
		chan_on_reattached(c, e);
		return;
	}
	/* The text shows the writer: as SSH users may see it. */
	view = json_deep_copy(e->msg);
	if (view && writer) {
		view_label(writer, label, sizeof(label));
		json_object_set_new(view, "writer", json_string(label));
	}
	front_attached_text(view ? view : e->msg, c->front.esc.prefix, text, sizeof(text));
	json_decref(view);
	chan_notice(c, "%s", text);
	if (strcmp(state ?: "", "connected"))
		chan_notice(c, "console is %s", state ?: "?");
	chan_audit(c, "attach", "console=%s role=%s", c->console,
		   c->writer ? "writer" : "watcher");
	chan_send_resize(c);
}

static void chan_on_state(struct chan *c, const struct front_event *e)
{
	if (e->writer && !c->writer)
		chan_audit(c, "takeover", "console=%s", c->console);
	c->writer = e->writer;
	/* A demotion (the key became watch-only) says so when the broker tells. */
	if (json_object_get(e->msg, "access"))
		c->access = e->access;
}

static void chan_event(struct chan *c, const struct front_event *e)
{
	char text[512];

	switch (e->type) {
	case FRONT_EV_DATA:
		obuf_append(&c->to_client, e->data, e->len);
		if (e->len > 0)
			c->at_bol = e->data[e->len - 1] == '\n';
		break;
	case FRONT_EV_ERROR:
		chan_on_error(c, e);
		break;
	case FRONT_EV_NOTICE:
		chan_notice_scrubbed(c, e->text);
		break;
	case FRONT_EV_ATTACHED:
		if (c->state == CHAN_ATTACHING)
			chan_on_attached(c, e);
		break;
	case FRONT_EV_STATE:
		chan_on_state(c, e);
		break;
	case FRONT_EV_LIST:
		if (c->state == CHAN_MENU)
			chan_show_menu(c, e->msg);
		else if (c->state == CHAN_EXEC)
			chan_exec_reply(c, e);
		break;
	case FRONT_EV_WEB_LINK:
		if (c->state == CHAN_EXEC)
			chan_exec_reply(c, e);
		break;
	case FRONT_EV_WHO:
		if (c->state == CHAN_EXEC)
			chan_exec_reply(c, e);
		else
			chan_print(c, chan_print_who, e->msg);
		break;
	case FRONT_EV_DETACHED:
		if (e->reason == DETACH_SHUTDOWN && chan_may_reconnect(c)) {
			/* The broker stops; its successor takes us back (chan_broker_lost()). */
			chan_broker_lost(c);
			break;
		}
		view_scrub(e->text, text, sizeof(text));
		if (e->reason == DETACH_REQUESTED && c->state == CHAN_ATTACHED)
			chan_hint(c);
		chan_close(c, front_detach_status(e->reason), "detached: %s", text);
		break;
	case FRONT_EV_ACTION_DONE:
		if (c->state == CHAN_EXEC)
			chan_exec_reply(c, e);
		break;
	case FRONT_EV_BREAK_SENT: /* the broker's notice to everyone attached says it */
	case FRONT_EV_OUTPUT:     /* not asked for by an SSH channel (yet) */
	case FRONT_EV_HELLO:
	case FRONT_EV_AUTHORIZED:
	case FRONT_EV_REDEEMED:   /* a web front's answer; never asked for here */
		break;
	}
}

/* Handle buffered broker frames while there is room for what they produce. */
static void chan_process_broker(struct chan *c)
{
	while (c->state != CHAN_CLOSING && c->broker_fd >= 0 &&
	       obuf_room(&c->to_client) >= FRAME_MAX + 2048) {
		struct front_event e;
		int r = front_next_event(&c->front, &e);

		if (r == 0)
			break;
		if (r == -EBADMSG) {
			chan_close(c, 1, "bad message from the console broker: %s", c->front.err);
			return;
		}
		if (r < 0) {
			chan_close(c, 1, "malformed data from the console broker");
			return;
		}
		chan_event(c, &e);
	}
}

static void chan_on_broker(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct chan *c = userdata;
	const struct chan_env *env = c->env; /* the pump may free c */

	if (revents & EPOLLIN) {
		ssize_t n = front_fill(&c->front);

		if (n < 0 || front_eof(&c->front)) {
			/* What came before the end is the user's: shown, and counted in the offset. */
			chan_process_broker(c);
			if (c->broker_fd >= 0)
				chan_broker_lost(c);
		}
	}
	if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN) && c->broker_fd >= 0)
		chan_broker_lost(c);
	chan_pump(c);
	env->ops->update_events(env->userdata);
}

/* Keystrokes go to the front: attached, or in a gap (held there, see channel.h). */
static bool chan_keys_flow(const struct chan *c)
{
	return c->state == CHAN_ATTACHED || c->state == CHAN_RECONNECTING ||
	       (c->state == CHAN_ATTACHING && c->reattach);
}

/*
 * An escape command typed while the broker is away: a detach ends the
 * session with the resume hint, help is ours to show, the rest need a
 * broker.
 */
static void chan_gap_escape(struct chan *c, enum escape_cmd cmd)
{
	if (cmd == ESCAPE_DETACH) {
		chan_drop_broker(c);
		chan_gap_end(c);
		chan_hint(c);
		chan_close(c, 0, "detached (while reconnecting to the console broker)");
		return;
	}
	chan_notice(c, "not while reconnecting to the console broker; only detach works now");
}

/*
 * Rescue actions by escape (escape.h): reset and powerdown ask y/N in an
 * interactive session (a pty); the question and a cancel are ours to show.
 */
static bool chan_escape_local(struct chan *c, enum escape_cmd cmd)
{
	char text[600];

	if (front_escape_text(&c->front, cmd, text, sizeof(text)) == 0)
		return false;
	chan_notice(c, "%s", text);
	return true;
}

/*
 * Keystrokes of an attached user: escape commands, then to the broker.  A
 * watch-only key's keystrokes never leave this process (the broker would
 * discard them too); its escape commands go to the broker, which refuses
 * what the key may not do (take, break) in words the user sees.
 * During a gap the front holds them (FRONT_HELD_MAX) and escape commands
 * are ours (chan_gap_escape()).
 */
static size_t chan_keys(struct chan *c, const uint8_t *data, size_t len)
{
	size_t used = 0;

	c->front.esc.confirm = c->pty; /* reset and powerdown ask y/N on a terminal */
	while (used < len && chan_keys_flow(c)) {
		bool gap = c->state != CHAN_ATTACHED;
		enum escape_cmd cmd;
		size_t dropped, n;

		n = front_keys(&c->front, data + used, len - used, c->access == ATTACH_RW,
			       CHAN_CONTROL_RESERVE, &dropped, &cmd);
		used += n;
		if (dropped > 0 && gap && c->access == ATTACH_RW) {
			/* Held for the re-attach up to FRONT_HELD_MAX; the re-attach counts the rest. */
			if (!c->gap_over_said) {
				c->gap_over_said = true;
				chan_notice(c, "the console broker is away; keystrokes past %u bytes "
					    "are discarded", FRONT_HELD_MAX);
			}
		} else if (dropped > 0 && !c->ro_hinted) {
			c->ro_hinted = true;
			chan_notice(c, "read-only: your key may only watch %s; input is discarded",
				    c->console);
		}
		if (cmd == ESCAPE_HELP) {
			char help[1024];

			escape_format_help(&c->front.esc, help, sizeof(help));
			if (!c->at_bol)
				chan_say(c, "\r\n", 2);
			chan_say(c, help, strlen(help));
		} else if (cmd != ESCAPE_NONE && gap)
			chan_gap_escape(c, cmd);
		else if (cmd != ESCAPE_NONE && chan_escape_local(c, cmd))
			; /* a y/N question, or what was cancelled */
		else if (cmd != ESCAPE_NONE) {
			c->detach_asked |= cmd == ESCAPE_DETACH;
			chan_sent(c, front_escape_request(&c->front, cmd));
		} else if (n == 0)
			break; /* no room: libssh keeps the rest */
	}
	return used;
}

/* Send what waits in c->held (see chan_resume_keys); true once none is left. */
static bool chan_send_held(struct chan *c)
{
	size_t used = chan_keys(c, c->held, c->held_len);

	c->held_len -= used;
	memmove(c->held, c->held + used, c->held_len);
	return c->held_len == 0;
}

static int chan_on_data(ssh_session ssh, ssh_channel ch, void *data, uint32_t len, int is_stderr,
			void *userdata)
{
	struct chan *c = userdata;

	if (c->state == CHAN_MENU) {
		if (len > 0)
			chan_menu_touch(c);
		if (c->state == CHAN_MENU)
			menu_keys(&c->menu, data, len);
		return (int)len;
	}
	if (c->state == CHAN_RELAY)
		return (int)relay_from_client(c->relay, data, len);
	if (chan_keys_flow(c)) {
		size_t used = 0;

		/* Older keystrokes first (see chan_resume_keys). */
		if (chan_send_held(c))
			used = chan_keys(c, data, len);
		/* libssh keeps the rest; chan_resume_keys() takes it when there is room. */
		c->keys_held = used < len;
		return (int)used;
	}
	return (int)len; /* typed before a console is attached: discarded */
}

static void chan_on_eof(ssh_session ssh, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;

	if (c->state == CHAN_RELAY)
		relay_client_eof(c->relay); /* a console channel ignores EOF, as before */
}

static void chan_on_close(ssh_session ssh, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;

	if (c->relay)
		relay_set_why(c->relay, "the gateway closed the channel");
	if (c->state == CHAN_ATTACHED || c->state == CHAN_RECONNECTING || c->reattach)
		chan_audit(c, "detach", "console=%s reason=client-closed", c->console);
	c->state = CHAN_CLOSING;
	c->exit_status = -1; /* nothing more to tell the client */
}

static int chan_on_pty(ssh_session ssh, ssh_channel ch, const char *term, int cols, int rows,
		       int px, int py, void *userdata)
{
	struct chan *c = userdata;

	c->pty = true;
	snprintf(c->term, sizeof(c->term), "%s", term ? term : "");
	c->cols = cols > 0 && cols <= 10000 ? (unsigned)cols : 80;
	c->rows = rows > 0 && rows <= 10000 ? (unsigned)rows : 24;
	return 0;
}

static int chan_on_resize(ssh_session ssh, ssh_channel ch, int cols, int rows, int px, int py,
			  void *userdata)
{
	struct chan *c = userdata;

	if (cols <= 0 || rows <= 0 || cols > 10000 || rows > 10000)
		return 0;
	c->cols = (unsigned)cols;
	c->rows = (unsigned)rows;
	chan_send_resize(c);
	return 0;
}

/* Over a limit: say which, and close. */
static bool chan_refused(struct chan *c)
{
	if (!c->refused[0])
		return false;
	chan_close(c, 1, "%s", c->refused);
	return true;
}

static int chan_on_shell(ssh_session ssh, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;
	struct userspec us;
	int r;

	if (c->state != CHAN_NEW)
		return 1;
	if (chan_refused(c))
		return 0;
	if (!c->env->user) {
		chan_close(c, 1, "user name too long (at most %d bytes)", USERSPEC_USER_MAX);
		return 0;
	}
	r = userspec_parse(c->env->user, &us);
	if (r == -EBADMSG) {
		/* A resume point was meant: the menu would start over without a word. */
		chan_close(c, 1, "%s", userspec_resume_error());
		return 0;
	}
	if (chan_connect_broker(c) < 0)
		return 0;
	if (r == 0) {
		const struct proto_resume resume = { .epoch = us.epoch, .offset = us.offset };

		c->from_username = true;
		chan_start_attach(c, us.console, us.mode, us.replay, us.resume ? &resume : NULL);
	} else
		chan_start_menu(c);
	return 0;
}

/* exec: "list [--json]", "attach NAME [--ro|--force]", "who NAME", "web-link NAME [--ro]". */
static int chan_on_exec(ssh_session ssh, ssh_channel ch, const char *command, void *userdata)
{
	struct chan *c = userdata;

	if (c->state != CHAN_NEW)
		return 1;
	if (!chan_refused(c))
		chan_start_exec(c, command);
	return 0;
}

/* The relay's wake-up (relay.h): its broker socket is ready. */
static void chan_on_relay(void *userdata)
{
	struct chan *c = userdata;
	const struct chan_env *env = c->env; /* the pump may free c */

	chan_pump(c);
	env->ops->update_events(env->userdata);
}

static size_t chan_relay_unsent(void *userdata)
{
	struct chan *c = userdata;

	return c->env->ops->unsent(c->env->userdata);
}

static const struct relay_ops chan_relay_ops = {
	.unsent = chan_relay_unsent,
	.wake = chan_on_relay,
};

/*
 * The ttyhub-broker subsystem (relay.h), for a gateway's key only; every
 * other subsystem (sftp) is refused.  Returns 0 to accept.
 */
static int chan_on_subsystem(ssh_session ssh, ssh_channel ch, const char *name, void *userdata)
{
	struct chan *c = userdata;
	const char *why = NULL;
	int r;

	if (c->state != CHAN_NEW || !streq_opt(name, RELAY_SUBSYSTEM))
		return 1;
	if (!c->env->gateway)
		why = "not a gateway key";
	else if (c->refused[0])
		why = c->refused;
	else {
		r = relay_new(c->env->config->broker, c->env->poller, c->ch, &c->env->principal,
			      &chan_relay_ops, c, &c->relay);
		if (r < 0) {
			log_error_errno(r, "cannot reach ttyhubd at %s", c->env->config->broker);
			why = "the console broker is not reachable";
		}
	}
	if (why) {
		chan_audit(c, "gateway-stream-refused", "reason=\"%s\"", why);
		return 1;
	}
	c->state = CHAN_RELAY;
	chan_audit(c, "gateway-stream-open", "subsystem=%s", RELAY_SUBSYSTEM);
	return 0;
}

static int chan_on_env(ssh_session ssh, ssh_channel ch, const char *name, const char *value,
		       void *userdata)
{
	return 1;
}

int chan_new(const struct chan_env *env, ssh_session ssh, const char *refused, struct chan **ret)
{
	struct chan *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->env = env;
	c->broker_fd = -EBADF;
	c->at_bol = true;
	c->exit_status = 0;
	c->access = ATTACH_RO; /* until the broker says more */
	snprintf(c->refused, sizeof(c->refused), "%s", refused ?: "");
	menu_init(&c->menu, &chan_menu_ops, c);
	if (front_init(&c->front, -EBADF, TO_BROKER_MAX, NULL) < 0) {
		free(c);
		return -ENOMEM;
	}
	if (obuf_init(&c->to_client, TO_CLIENT_MAX) < 0)
		goto fail;
	c->ch = ssh_channel_new(ssh);
	if (!c->ch)
		goto fail;
	c->cb = (struct ssh_channel_callbacks_struct){
		.userdata = c,
		.channel_data_function = chan_on_data,
		.channel_close_function = chan_on_close,
		.channel_pty_request_function = chan_on_pty,
		.channel_pty_window_change_function = chan_on_resize,
		.channel_shell_request_function = chan_on_shell,
		.channel_exec_request_function = chan_on_exec,
		.channel_subsystem_request_function = chan_on_subsystem,
		.channel_eof_function = chan_on_eof,
		.channel_env_request_function = chan_on_env,
	};
	ssh_callbacks_init(&c->cb);
	ssh_set_channel_callbacks(c->ch, &c->cb);
	*ret = c;
	return 0;
fail:
	chan_free(c);
	return -ENOMEM;
}

struct chan *chan_free(struct chan *c)
{
	if (!c)
		return NULL;
	if (c->state == CHAN_ATTACHED || c->state == CHAN_RECONNECTING || c->reattach)
		chan_audit(c, "detach", "console=%s reason=session-closed", c->console);
	if (c->relay) {
		relay_set_why(c->relay, "the SSH session closed");
		chan_audit(c, "gateway-stream-close", "reason=\"%s\" up=%llu down=%llu",
			   c->relay->why, (unsigned long long)c->relay->up,
			   (unsigned long long)c->relay->down);
		c->relay = relay_free(c->relay);
	}
	c->broker_io = watch_free(c->broker_io);
	c->broker_fd = safe_close(c->broker_fd);
	c->menu_timer = sd_event_source_disable_unref(c->menu_timer);
	c->unknown_timer = sd_event_source_disable_unref(c->unknown_timer);
	c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
	menu_done(&c->menu);
	if (c->ch) {
		ssh_remove_channel_callbacks(c->ch, &c->cb);
		ssh_channel_free(c->ch);
	}
	front_done(&c->front);
	obuf_done(&c->to_client);
	free(c->spool);
	free(c);
	return NULL;
}

/*
 * Write what the client's window takes, while libssh holds less than
 * UNSENT_MAX for the kernel: it sends its whole queue in one go on the next
 * poll round, so a round moves up to that much instead of one write.
 */
static void chan_flush_client(struct chan *c)
{
	for (;;) {
		uint32_t window;

		if (c->spool) {
			size_t take = MIN(obuf_room(&c->to_client), c->spool_len - c->spool_off);

			obuf_append(&c->to_client, c->spool + c->spool_off, take);
			c->spool_off += take;
			if (c->spool_off == c->spool_len) {
				free(c->spool);
				c->spool = NULL;
			}
		}
		if (obuf_len(&c->to_client) == 0 || !ssh_channel_is_open(c->ch))
			return;
		window = ssh_channel_window_size(c->ch);
		size_t n = MIN(obuf_len(&c->to_client), (size_t)MIN(window, CLIENT_WRITE_CHUNK));
		int w;

		if (n == 0 || c->env->ops->unsent(c->env->userdata) >= UNSENT_MAX)
			return;
		w = ssh_channel_write(c->ch, obuf_data(&c->to_client), (uint32_t)n);
		if (w <= 0) {
			if (w < 0)
				c->state = CHAN_CLOSING;
			return;
		}
		obuf_consume(&c->to_client, (size_t)w);
	}
}

/*
 * Keystrokes libssh kept because our queue was full: take them now.  Only
 * when there are some: reading runs libssh's packet loop, which also
 * flushes (and forgets) its pending output state.  That loop may call
 * chan_on_data() with the oldest bytes first, so what the read returns
 * comes after them and may no longer fit: it waits in c->held, ahead of
 * anything newer.
 */
static void chan_resume_keys(struct chan *c)
{
	while (chan_keys_flow(c) && ssh_channel_is_open(c->ch)) {
		if (c->held_len == 0) {
			int n;

			if (!c->keys_held || obuf_room(&c->front.out) <= sizeof(c->held) + 2048)
				return;
			n = ssh_channel_read_nonblocking(c->ch, c->held, sizeof(c->held), 0);
			if (n <= 0) {
				c->keys_held = n < 0;
				return;
			}
			c->held_len = (size_t)n;
		}
		if (!chan_send_held(c))
			return; /* still no room */
	}
}

static void chan_finish(struct chan *c)
{
	if (c->exit_status >= 0 && ssh_channel_is_open(c->ch)) {
		ssh_channel_request_send_exit_status(c->ch, c->exit_status);
		ssh_channel_send_eof(c->ch);
		ssh_channel_close(c->ch);
	}
	c->env->ops->finished(c->env->userdata, c); /* frees c */
}

void chan_shutdown(struct chan *c)
{
	if (c->state == CHAN_CLOSING)
		return;
	if (c->state == CHAN_ATTACHED || c->state == CHAN_RECONNECTING || c->reattach) {
		chan_notice(c, "ttyhub-sshd is stopping");
		chan_hint(c);
		chan_close(c, 1, NULL);
	} else
		chan_close(c, 1, "ttyhub-sshd is stopping");
}

void chan_pump(struct chan *c)
{
	uint32_t ev;

	if (c->state == CHAN_RELAY) {
		relay_pump(c->relay);
		if (relay_done(c->relay) || !ssh_channel_is_open(c->ch))
			chan_close(c, 0, NULL);
	}
	chan_process_broker(c);
	if (c->broker_fd >= 0 && front_flush(&c->front) < 0)
		chan_broker_lost(c);
	if (c->state == CHAN_CLOSING)
		chan_release_broker(c);
	chan_resume_keys(c);
	/* Last: after anything above that may have run libssh's loop. */
	chan_flush_client(c);
	if (c->state == CHAN_CLOSING && ((obuf_len(&c->to_client) == 0 && !c->spool) ||
					 c->exit_status < 0 ||
					 !ssh_channel_is_open(c->ch))) {
		chan_finish(c);
		return;
	}
	if (c->broker_io) {
		ev = (obuf_room(&c->to_client) >= FRAME_MAX + 2048 ? EPOLLIN : 0) |
		     (front_pending(&c->front) > 0 ? EPOLLOUT : 0);
		watch_set_events(c->broker_io, ev);
	}
}

