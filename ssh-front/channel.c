/* SPDX-License-Identifier: MIT */
/*
 * SSH session channels (see channel.h).
 *
 * Nothing here runs libssh calls that wait, and a channel is never freed
 * inside a libssh callback: callbacks only record what happened; the pump,
 * called after each ssh_event_dopoll() and on broker events, does the rest.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "channel.h"
#include "fileio.h"
#include "listing.h"
#include "log.h"
#include "session.h"
#include "sshd.h"
#include "userspec.h"
#include "util.h"

#define TO_CLIENT_MAX (128 * 1024)
#define TO_BROKER_MAX (32 * 1024)
#define MENU_MAX 64
#define CLIENT_WRITE_CHUNK (128 * 1024)
#define UNSENT_MAX (256 * 1024)

static void chan_on_broker(struct watch *w, int fd, uint32_t revents, void *userdata);
static void chan_send(struct chan *c, json_t *msg);

/*
 * What SSH users may learn of the host: consoles, not sockets.  Clients are
 * shown as their SSH principal's comment, anyone else as "local admin";
 * notices lose absolute paths.  Everything not on these lists is dropped.
 */
static void chan_label(const char *label, char *buf, size_t size)
{
	const char *ssh = NULL, *p;
	size_t len = label ? strlen(label) : 0;

	for (p = label ? strstr(label, " (ssh ") : NULL; p; p = strstr(p + 1, " (ssh "))
		ssh = p;
	if (ssh && len > 0 && label[len - 1] == ')')
		snprintf(buf, size, "%.*s", (int)(ssh - label), label);
	else
		snprintf(buf, size, "local admin");
}

static bool chan_path_start(const char *text, const char *p)
{
	return *p == '/' && (p == text || strchr(" (:='\"", p[-1]));
}

/* Append n bytes of t to out (bounded by size, NUL kept room for). */
static size_t chan_put(char *out, size_t o, size_t size, const char *t, size_t n)
{
	n = MIN(n, size - 1 - o);
	memcpy(out + o, t, n);
	return o + n;
}

/* Free text from the broker (notices, errors): local clients and paths made anonymous. */
static void chan_scrub(const char *in, char *out, size_t size)
{
	static const char local[] = " (local, pid ";
	const char *p = in ? in : "";
	size_t o = 0;

	if (size == 0)
		return;
	while (*p && o + 1 < size) {
		const char *l = strstr(p, local), *q, *start;

		for (q = p; *q && (!l || q < l) && !chan_path_start(in, q); q++)
			;
		if (*q == '/' && (!l || q < l)) {
			o = chan_put(out, o, size, p, (size_t)(q - p));
			o = chan_put(out, o, size, "[path]", 6);
			p = q + strcspn(q, " )'\",;");
		} else if (l) {
			/* "NAME (local, pid N)" or "uid N (local, pid N)", then maybe " [client]" */
			for (start = l; start > p && start[-1] != ' '; start--)
				;
			if (start - p >= 4 && strncmp(start - 4, "uid ", 4) == 0)
				start -= 4;
			o = chan_put(out, o, size, p, (size_t)(start - p));
			o = chan_put(out, o, size, "local admin", 11);
			q = strchr(l + 1, ')');
			p = q ? q + 1 : l + strlen(l);
			if (p[0] == ' ' && p[1] == '[' && strchr(p, ']'))
				p = strchr(p, ']') + 1;
		} else {
			o = chan_put(out, o, size, p, strlen(p));
			break;
		}
	}
	out[o] = '\0';
}

/* One console as SSH users see it. */
static json_t *chan_view_console(json_t *con, const char *access)
{
	static const char *const keep[] = { "name", "vm", "uuid", "alias", "device", "target",
					    "state", "watchers" };
	const char *writer = json_string_value(json_object_get(con, "writer"));
	json_t *o = json_object();
	char label[256];

	if (!o)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
		json_t *v = json_object_get(con, keep[i]);

		if (v && (json_is_string(v) || json_is_integer(v) || json_is_null(v)))
			json_object_set(o, keep[i], v);
	}
	json_object_set_new(o, "access", json_string(access));
	if (writer)
		chan_label(writer, label, sizeof(label));
	json_object_set_new(o, "writer", writer ? json_string(label) : json_null());
	return o;
}

/* A `who` answer as SSH users see it: role, principal comment, since. */
static json_t *chan_view_who(json_t *who)
{
	json_t *clients = json_array(), *cl;
	size_t i;

	json_array_foreach(json_object_get(who, "clients"), i, cl) {
		const char *user = json_string_value(json_object_get(cl, "user"));
		const char *role = json_string_value(json_object_get(cl, "role"));
		char label[256];

		chan_label(user, label, sizeof(label));
		json_array_append_new(clients, json_pack("{s:s, s:s, s:O?}", "role",
							 role ? role : "?", "user", label, "since",
							 json_object_get(cl, "since")));
	}
	return json_pack("{s:s, s:o}", "type", "who", "clients", clients);
}

static const char *chan_eol(const struct chan *c)
{
	return c->pty ? "\r\n" : "\n";
}

/* Text for the user (already safe); bounded by to_client. */
static void chan_say(struct chan *c, const char *text, size_t len)
{
	if (len == 0)
		return;
	if (obuf_append(&c->to_client, text, len) < 0)
		return; /* the client is not reading: drop the text, never grow */
	c->at_bol = text[len - 1] == '\n';
}

static void chan_notice(struct chan *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void chan_notice(struct chan *c, const char *fmt, ...)
{
	char text[1024], line[1300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	chan_say(c, line, proto_notice_line(text, c->at_bol, c->pty, line, sizeof(line)));
}

/*
 * A request to the broker.  One that cannot be built (a name that is not
 * UTF-8) or queued closes the channel: waiting for an answer that never
 * comes would hold the broker connection for nothing.  Keystrokes leave
 * CHAN_CONTROL_RESERVE free, so release and detach always fit.
 */
static void chan_send(struct chan *c, json_t *msg)
{
	if (c->state == CHAN_CLOSING || c->broker_fd < 0) {
		json_decref(msg);
		return;
	}
	if (!msg)
		chan_close(c, 1, "cannot make the request (names must be UTF-8)");
	else if (proto_put_control(&c->to_broker, msg) < 0)
		chan_close(c, 1, "too many requests queued for the console broker");
	json_decref(msg);
}

/* A request that may be dropped when the queue is full (a window size). */
static void chan_send_optional(struct chan *c, json_t *msg)
{
	if (msg && c->broker_fd >= 0 && c->state != CHAN_CLOSING &&
	    obuf_room(&c->to_broker) > CHAN_CONTROL_RESERVE)
		proto_put_control(&c->to_broker, msg);
	json_decref(msg);
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
	}
	if (c->state == CHAN_ATTACHED)
		sshd_audit(c->session, "detach", "console=%s", c->console);
	c->exit_status = status;
	c->state = CHAN_CLOSING;
	c->menu_timer = sd_event_source_disable_unref(c->menu_timer);
	c->unknown_timer = sd_event_source_disable_unref(c->unknown_timer);
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
	if (obuf_len(&c->to_broker) > 0)
		(void)obuf_flush(&c->to_broker, c->broker_fd);
	c->broker_io = watch_free(c->broker_io);
	c->broker_fd = safe_close(c->broker_fd);
	obuf_consume(&c->to_broker, obuf_len(&c->to_broker));
}

/*
 * The right of this key on a console: rules see its VM name, UUID and alias,
 * each by the pattern's form (access.h), so a name means one thing.
 */
static enum access_right chan_right(const struct chan *c, json_t *console)
{
	const struct access_console con = {
		.vm = json_string_value(json_object_get(console, "vm")),
		.uuid = json_string_value(json_object_get(console, "uuid")),
		.alias = json_string_value(json_object_get(console, "alias")),
	};

	if (!c->session->key || !con.vm)
		return ACCESS_NONE;
	return access_check(c->session->key, &con);
}

/* The list, keeping only consoles this key may use, and of those what SSH users may see. */
static json_t *chan_filter(const struct chan *c, json_t *consoles)
{
	json_t *out = json_array(), *con;
	size_t i;

	json_array_foreach(consoles, i, con) {
		enum access_right r = chan_right(c, con);

		if (r == ACCESS_NONE)
			continue;
		json_array_append_new(out, chan_view_console(con, r == ACCESS_RW ? "rw" : "ro"));
	}
	return out;
}

static int chan_connect_broker(struct chan *c)
{
	const char *path = c->session->sshd->config.broker;
	struct session *s = c->session;
	char user[sizeof(s->user) * 4];
	int fd, r;

	fd = unix_connect(path, true);
	if (fd < 0)
		return log_error_errno(fd, "cannot reach ttyhubd at %s", path);
	c->broker_fd = fd;
	r = watch_add(s->sshd->poller, fd, EPOLLIN | EPOLLOUT, chan_on_broker, c, &c->broker_io);
	if (r < 0)
		return r;
	/* The SSH user name is any bytes; JSON strings must be UTF-8. */
	log_escape(s->user, strlen(s->user), user, sizeof(user));
	chan_send(c, json_pack("{s:s, s:i, s:s, s:{s:s, s:s, s:s}}", "type", "hello", "version",
			       PROTO_VERSION, "client", "ttyhub-sshd", "principal", "fingerprint",
			       s->fingerprint, "comment", s->comment, "user", user));
	return 0;
}

/* The request naming a console arrived now: a "no console named" answer waits from here. */
static void chan_asked(struct chan *c)
{
	if (sd_event_now(c->session->sshd->event, CLOCK_MONOTONIC, &c->asked_usec) < 0)
		c->asked_usec = 0; /* chan_unknown() pads from its own time */
}

/* Begin attaching: resolve the name first, so rights are checked on the real console. */
static void chan_start_attach(struct chan *c, const char *name, int mode, long replay)
{
	if (strlen(name) >= sizeof(c->console)) {
		chan_close(c, 1, "console name too long (at most %zu bytes)", sizeof(c->console) - 1);
		return;
	}
	snprintf(c->console, sizeof(c->console), "%s", name);
	chan_asked(c);
	c->want_mode = mode;
	c->want_replay = replay;
	c->state = CHAN_ATTACHING;
	chan_send(c, json_pack("{s:s, s:s}", "type", "list", "console", name));
}

/* The held "no console named" answer, now that its time has come. */
static void chan_unknown_answer(struct chan *c)
{
	if (c->from_username && c->pty) {
		/* "ssh console@host": a user name that is no console opens the menu. */
		chan_notice(c, "no console named '%s'; choose one:", c->unknown);
		c->from_username = false;
		c->state = CHAN_MENU;
		chan_send(c, json_pack("{s:s}", "type", "list"));
		return;
	}
	chan_close(c, 1, "no console named '%s'", c->unknown);
}

static int chan_on_unknown_timer(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct chan *c = userdata;
	struct session *s = c->session;

	if (c->state == CHAN_UNKNOWN) {
		chan_unknown_answer(c);
		chan_pump(c); /* may free c */
		session_update_events(s);
	}
	return 0;
}

/*
 * The same words whether the console does not exist or the key may not see
 * it, and at the same time: held until CHAN_UNKNOWN_PAD_USEC after the
 * request (channel.h).  Meanwhile the channel is in CHAN_UNKNOWN: keystrokes
 * are discarded, and a close of the channel frees the timer with it.
 */
static void chan_unknown(struct chan *c, const char *name)
{
	sd_event *e = c->session->sshd->event;
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

static void chan_attach_resolved(struct chan *c, json_t *list)
{
	json_t *con = json_array_get(json_object_get(list, "consoles"), 0);
	const char *mode = "rw", *name;
	char wanted[sizeof(c->console)];
	json_t *req;

	snprintf(wanted, sizeof(wanted), "%s", c->console);
	c->right = con ? chan_right(c, con) : ACCESS_NONE;
	if (c->right == ACCESS_NONE) {
		chan_unknown(c, wanted);
		return;
	}
	name = json_string_value(json_object_get(con, "name"));
	if (!name || strlen(name) >= sizeof(c->console)) {
		chan_close(c, 1, "console name too long (at most %zu bytes)", sizeof(c->console) - 1);
		return;
	}
	json_decref(c->info);
	c->info = json_incref(con);
	snprintf(c->console, sizeof(c->console), "%s", name);
	if (c->want_mode == USERSPEC_FORCE && c->right < ACCESS_RW) {
		chan_close(c, 1, "your key may only watch %s", c->console);
		return;
	}
	if (c->want_mode == USERSPEC_RO || c->right < ACCESS_RW)
		mode = "ro";
	else if (c->want_mode == USERSPEC_FORCE)
		mode = "force";
	req = json_pack("{s:s, s:s, s:s}", "type", "attach", "console", c->console, "mode", mode);
	if (req && c->want_replay >= 0)
		json_object_set_new(req, "replay", json_integer(c->want_replay));
	else if (req && c->want_replay == -1)
		json_object_set_new(req, "replay", json_string("all"));
	chan_send(c, req);
}

static int chan_on_menu_timeout(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct chan *c = userdata;
	struct session *s = c->session;

	if (c->state == CHAN_MENU) {
		chan_close(c, 1, "no console chosen in %u seconds; closing",
			   s->sshd->config.menu_timeout_s);
		chan_pump(c); /* may free c */
		session_update_events(s);
	}
	return 0;
}

/* (Re)start the menu's idle timer. */
static void chan_menu_touch(struct chan *c)
{
	uint64_t usec = (uint64_t)c->session->sshd->config.menu_timeout_s * 1000000;

	if (!c->menu_timer) {
		if (sd_event_add_time_relative(c->session->sshd->event, &c->menu_timer,
					       CLOCK_MONOTONIC, usec, 0, chan_on_menu_timeout, c) < 0)
			chan_close(c, 1, "cannot show the menu (out of resources)");
		return;
	}
	sd_event_source_set_time_relative(c->menu_timer, usec);
	sd_event_source_set_enabled(c->menu_timer, SD_EVENT_ONESHOT);
}

static void chan_show_menu(struct chan *c, json_t *list)
{
	json_t *allowed = chan_filter(c, json_object_get(list, "consoles")), *con;
	char line[CHAN_NAME_MAX + 128];
	size_t i;

	json_decref(c->menu);
	c->menu = NULL;
	if (json_array_size(allowed) == 0) {
		json_decref(allowed);
		chan_close(c, 1, "no consoles are available to your key");
		return;
	}
	snprintf(line, sizeof(line), "ttyhub: consoles you may use:%s", chan_eol(c));
	chan_say(c, line, strlen(line));
	while (json_array_size(allowed) > MENU_MAX)
		json_array_remove(allowed, MENU_MAX);
	json_array_foreach(allowed, i, con) {
		const char *name = json_string_value(json_object_get(con, "name"));
		char esc[CHAN_NAME_MAX];

		snprintf(line, sizeof(line), "  %2zu) %-28s %-10s %s%s", i + 1,
			 log_sanitize(name ? name : "?", name ? strlen(name) : 1, esc, sizeof(esc)),
			 json_string_value(json_object_get(con, "state")),
			 json_string_value(json_object_get(con, "access")), chan_eol(c));
		chan_say(c, line, strlen(line));
	}
	c->menu = allowed;
	snprintf(line, sizeof(line), "Select a console (number or name, q to quit): ");
	chan_say(c, line, strlen(line));
	c->state = CHAN_MENU;
	c->line_len = 0;
	chan_menu_touch(c);
}

/*
 * A table for the user.  One longer than the client queue (a list of many
 * consoles) is kept aside and fed in as the client reads; the channel closes
 * only once it has all gone out.
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

static void print_who(FILE *f, json_t *who, const char *eol)
{
	json_t *view = chan_view_who(who);

	listing_print_who(f, view, eol);
	json_decref(view);
}

/* JSON for programs: "\n" whatever the terminal. */
static void print_json(FILE *f, json_t *o, const char *eol)
{
	json_dumpf(o, f, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	fputc('\n', f);
}

/* exec "list [--json]" and "who NAME" answers. */
static void chan_exec_reply(struct chan *c, const char *type, json_t *msg)
{
	if (strcmp(c->exec, "list --json") == 0 && strcmp(type, "list") == 0) {
		json_t *allowed = chan_filter(c, json_object_get(msg, "consoles"));
		json_t *out = json_pack("{s:o}", "consoles", allowed);

		if (out)
			chan_print(c, print_json, out);
		json_decref(out);
		chan_close(c, 0, NULL);
	} else if (strcmp(c->exec, "list") == 0 && strcmp(type, "list") == 0) {
		json_t *allowed = chan_filter(c, json_object_get(msg, "consoles"));

		chan_print(c, listing_print_front_consoles, allowed);
		json_decref(allowed);
		chan_close(c, 0, NULL);
	} else if (strncmp(c->exec, "who ", 4) == 0 && strcmp(type, "list") == 0) {
		json_t *con = json_array_get(json_object_get(msg, "consoles"), 0);

		if (!con || chan_right(c, con) == ACCESS_NONE) {
			chan_unknown(c, c->exec + 4);
			return;
		}
		chan_send(c, json_pack("{s:s, s:s}", "type", "who", "console",
				       json_string_value(json_object_get(con, "name"))));
	} else if (strcmp(type, "who") == 0) {
		chan_print(c, print_who, msg);
		chan_close(c, 0, NULL);
	}
}

static void chan_handle_error(struct chan *c, json_t *msg)
{
	const char *code = json_string_value(json_object_get(msg, "code"));
	const char *raw = json_string_value(json_object_get(msg, "message"));
	char text[1024];

	if (!code || !raw)
		return;
	chan_scrub(raw, text, sizeof(text));
	if (strcmp(code, PROTO_E_UNKNOWN_CONSOLE) == 0 && c->state != CHAN_ATTACHED) {
		chan_unknown(c, c->state == CHAN_EXEC && strncmp(c->exec, "who ", 4) == 0
					? c->exec + 4 : c->console);
	} else if (strcmp(code, PROTO_E_READ_ONLY) == 0) {
		char hint[256];

		if (c->right < ACCESS_RW)
			chan_notice(c, "read-only: your key may only watch %s; input is discarded",
				    c->console);
		else {
			proto_readonly_hint(c->esc.prefix, hint, sizeof(hint));
			chan_notice(c, "%s", hint);
		}
	} else if (c->state == CHAN_ATTACHED)
		chan_notice(c, "%s", text);
	else
		chan_close(c, 1, "%s", text);
}

/* Same string member in both, or absent from the answer. */
static bool chan_same(json_t *answer, json_t *checked, const char *key)
{
	json_t *a = json_object_get(answer, key);

	return !a || json_equal(a, json_object_get(checked, key));
}

/*
 * The attach was answered.  It must be the console whose rights were
 * checked (c->info): otherwise the user would type into a console chosen by
 * the broker's name resolution, not by the access file.
 */
static void chan_attached(struct chan *c, json_t *msg)
{
	const char *role = json_string_value(json_object_get(msg, "role"));
	const char *state = json_string_value(json_object_get(msg, "state"));
	const char *writer = json_string_value(json_object_get(msg, "writer"));
	json_t *view;
	char text[1024], label[256];

	if (!c->info || !json_is_string(json_object_get(msg, "console")) ||
	    !chan_same(msg, c->info, "vm") || !chan_same(msg, c->info, "uuid") ||
	    strcmp(json_string_value(json_object_get(msg, "console")), c->console) != 0) {
		chan_send(c, json_pack("{s:s}", "type", "detach"));
		log_warning("ttyhubd attached another console than %s; detached", c->console);
		chan_close(c, 1, "attach failed: the console broker attached another console "
			   "than the one checked; detached");
		return;
	}
	c->state = CHAN_ATTACHED;
	c->writer = role && strcmp(role, "writer") == 0;
	/* The text shows the writer: as SSH users may see it. */
	view = json_deep_copy(msg);
	if (view && writer) {
		chan_label(writer, label, sizeof(label));
		json_object_set_new(view, "writer", json_string(label));
	}
	proto_attached_text(view ? view : msg, c->esc.prefix, text, sizeof(text));
	json_decref(view);
	chan_notice(c, "%s", text);
	if (strcmp(state ?: "", "connected"))
		chan_notice(c, "console is %s", state ?: "?");
	sshd_audit(c->session, "attach", "console=%s role=%s", c->console,
		   c->writer ? "writer" : "watcher");
	if (c->pty && c->cols && c->rows)
		chan_send_optional(c, json_pack("{s:s, s:i, s:i}", "type", "resize", "cols",
						(int)c->cols, "rows", (int)c->rows));
	/* Rights may have changed while attaching (a reload). */
	chan_recheck(c);
}

static void chan_handle_control(struct chan *c, const struct frame *f)
{
	json_t *msg;
	const char *type;
	char err[256];

	if (proto_decode_control(f->payload, f->len, &msg, &type, err, sizeof(err)) < 0) {
		chan_close(c, 1, "bad message from the console broker: %s", err);
		return;
	}
	if (strcmp(type, "list") == 0) {
		/* Long lists come in pieces: act on the whole. */
		int r = listing_collect(&c->list, msg);

		json_decref(msg);
		if (r < 0)
			chan_close(c, 1, "bad console list from the console broker: %s", strerror(-r));
		if (r != 0)
			return;
		msg = c->list;
		c->list = NULL;
		type = "list"; /* the piece it pointed into is gone */
	}
	if (strcmp(type, "hello") == 0)
		c->broker_hello = true;
	else if (strcmp(type, "error") == 0)
		chan_handle_error(c, msg);
	else if (strcmp(type, "notice") == 0) {
		char text[1024];

		chan_scrub(json_string_value(json_object_get(msg, "text")), text, sizeof(text));
		chan_notice(c, "%s", text);
	} else if (c->state == CHAN_ATTACHING && strcmp(type, "attached") == 0)
		chan_attached(c, msg);
	else if (c->state == CHAN_EXEC)
		chan_exec_reply(c, type, msg);
	else if (c->state == CHAN_MENU && strcmp(type, "list") == 0)
		chan_show_menu(c, msg);
	else if (c->state == CHAN_ATTACHING && strcmp(type, "list") == 0)
		chan_attach_resolved(c, msg);
	else if (strcmp(type, "state") == 0) {
		const char *role = json_string_value(json_object_get(msg, "role"));
		bool writer = role && strcmp(role, "writer") == 0;

		if (writer && !c->writer)
			sshd_audit(c->session, "takeover", "console=%s", c->console);
		c->writer = writer;
		/* A take sent before a reload made the key watch-only. */
		if (writer && c->right < ACCESS_RW)
			chan_send(c, json_pack("{s:s}", "type", "release"));
	} else if (strcmp(type, "who") == 0)
		chan_print(c, print_who, msg);
	else if (strcmp(type, "detached") == 0) {
		const char *reason = json_string_value(json_object_get(msg, "reason"));
		char text[512];

		chan_scrub(reason, text, sizeof(text));
		chan_close(c, reason && strcmp(reason, "detached on request") == 0 ? 0 : 1,
			   "detached: %s", text);
	}
	json_decref(msg);
}

/* Handle buffered broker frames while there is room for what they produce. */
static void chan_process_broker(struct chan *c)
{
	while (c->state != CHAN_CLOSING && obuf_room(&c->to_client) >= FRAME_MAX + 2048) {
		struct frame f;
		int r = frame_reader_next(&c->in, &f);

		if (r == 0)
			break;
		if (r < 0) {
			chan_close(c, 1, "malformed data from the console broker");
			return;
		}
		if (f.type == FRAME_DATA) {
			obuf_append(&c->to_client, f.payload, f.len);
			if (f.len > 0)
				c->at_bol = f.payload[f.len - 1] == '\n';
		} else
			chan_handle_control(c, &f);
	}
}

static void chan_on_broker(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct chan *c = userdata;
	struct session *s = c->session; /* the pump may free c */

	if (revents & EPOLLIN) {
		ssize_t n = frame_reader_fill(&c->in, fd);

		if (n < 0 || c->in.eof) {
			chan_process_broker(c);
			chan_close(c, 1, "lost the connection to the console broker");
		}
	}
	if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN))
		chan_close(c, 1, "lost the connection to the console broker");
	chan_pump(c);
	session_update_events(s);
}

/* Keystrokes of an attached user: escape commands, rights, then to the broker. */
static size_t chan_keys(struct chan *c, const uint8_t *data, size_t len)
{
	size_t used = 0;

	while (used < len && obuf_room(&c->to_broker) > 2 * FRAME_HEADER + CHAN_CONTROL_RESERVE) {
		size_t room = obuf_room(&c->to_broker) - 2 * FRAME_HEADER - CHAN_CONTROL_RESERVE;
		size_t n = MIN(len - used, room), outlen;
		uint8_t out[4096 + 2];
		enum escape_cmd cmd;

		n = MIN(n, (size_t)4096);
		used += escape_feed(&c->esc, data + used, n, out, &outlen, &cmd);
		/* A watch-only key's keystrokes never leave this process. */
		if (outlen > 0 && c->right >= ACCESS_RW)
			proto_put_data(&c->to_broker, out, outlen);
		else if (outlen > 0 && !c->ro_hinted) {
			c->ro_hinted = true;
			chan_notice(c, "read-only: your key may only watch %s; input is discarded",
				    c->console);
		}
		if ((cmd == ESCAPE_FORCE || cmd == ESCAPE_ATTACH_RW) && c->right < ACCESS_RW)
			chan_notice(c, "your key may only watch %s", c->console);
		else if (cmd == ESCAPE_BREAK && (!c->session->key->brk || c->right < ACCESS_RW))
			/* A break is input to the guest (SysRq, kgdb): it needs write access too. */
			chan_notice(c, "your key may not send a serial break");
		else if (cmd == ESCAPE_HELP) {
			char help[1024];

			escape_format_help(&c->esc, help, sizeof(help));
			if (!c->at_bol)
				chan_say(c, "\r\n", 2);
			chan_say(c, help, strlen(help));
		} else if (cmd != ESCAPE_NONE)
			chan_send(c, proto_escape_request(cmd));
	}
	return used;
}

static const char *chan_menu_name(const struct chan *c, size_t i)
{
	return json_string_value(json_object_get(json_array_get(c->menu, i), "name")) ?: "";
}

/* Menu line editing; the client's terminal is raw, so we echo. */
static size_t chan_menu_keys(struct chan *c, const uint8_t *data, size_t len)
{
	if (len > 0 && c->state == CHAN_MENU)
		chan_menu_touch(c);
	for (size_t i = 0; i < len && c->state == CHAN_MENU; i++) {
		uint8_t ch = data[i];
		size_t n_menu = json_array_size(c->menu);

		if (ch == '\r' || ch == '\n') {
			unsigned long n;
			char *end;

			chan_say(c, "\r\n", 2);
			c->line[c->line_len] = '\0';
			n = strtoul(c->line, &end, 10);
			if (strcmp(c->line, "q") == 0)
				chan_close(c, 0, NULL);
			else if (*end == '\0' && end != c->line && n >= 1 && n <= n_menu)
				chan_start_attach(c, chan_menu_name(c, n - 1), USERSPEC_RW, -2);
			else {
				for (size_t k = 0; k < n_menu; k++)
					if (strcmp(c->line, chan_menu_name(c, k)) == 0) {
						chan_start_attach(c, chan_menu_name(c, k), USERSPEC_RW, -2);
						break;
					}
				if (c->state == CHAN_MENU) {
					const char *again = "No such choice. Number or name (q to quit): ";

					chan_say(c, again, strlen(again));
					c->line_len = 0;
				}
			}
		} else if (ch == 0x03 || ch == 0x04)
			chan_close(c, 0, NULL);
		else if ((ch == 0x7f || ch == 0x08) && c->line_len > 0) {
			c->line_len--;
			chan_say(c, "\b \b", 3);
		} else if (ch >= 0x20 && ch < 0x7f && c->line_len < sizeof(c->line) - 1) {
			c->line[c->line_len++] = (char)ch;
			chan_say(c, (const char *)&ch, 1);
		}
	}
	return len;
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

	if (c->state == CHAN_MENU)
		return (int)chan_menu_keys(c, data, len);
	if (c->state == CHAN_ATTACHED) {
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

static void chan_on_close(ssh_session ssh, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;

	if (c->state == CHAN_ATTACHED)
		sshd_audit(c->session, "detach", "console=%s reason=client-closed", c->console);
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
	if (c->state == CHAN_ATTACHED)
		chan_send_optional(c, json_pack("{s:s, s:i, s:i}", "type", "resize", "cols", cols,
						"rows", rows));
	return 0;
}

/* Over a limit: say which, and close. */
static bool chan_refused(struct chan *c)
{
	const struct sshd_config *cfg = &c->session->sshd->config;

	if (c->session->over_limit)
		chan_close(c, 1, "too many sessions with your key (at most %u); closing",
			   cfg->max_sessions_per_key);
	else if (c->over_limit)
		chan_close(c, 1, "too many channels in this session (at most %u); closing",
			   cfg->max_channels);
	else
		return false;
	return true;
}

static int chan_on_shell(ssh_session ssh, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;
	struct userspec us;

	if (c->state != CHAN_NEW)
		return 1;
	if (chan_refused(c))
		return 0;
	if (c->session->user_too_long) {
		chan_close(c, 1, "user name too long (at most %d bytes)", USERSPEC_USER_MAX);
		return 0;
	}
	if (chan_connect_broker(c) < 0) {
		chan_close(c, 1, "the console broker is not reachable");
		return 0;
	}
	if (userspec_parse(c->session->user, &us) == 0) {
		c->from_username = true;
		chan_start_attach(c, us.console, us.mode, us.replay);
	}
	else {
		c->state = CHAN_MENU;
		chan_send(c, json_pack("{s:s}", "type", "list"));
	}
	return 0;
}

/* exec: "list [--json]", "attach NAME [--ro|--force]", "who NAME". */
static int chan_on_exec(ssh_session ssh, ssh_channel ch, const char *command, void *userdata)
{
	struct chan *c = userdata;
	char cmd[CHAN_NAME_MAX + 64], *argv[5], *save = NULL;
	int argc = 0;

	if (c->state != CHAN_NEW)
		return 1;
	if (chan_refused(c))
		return 0;
	if (command && strlen(command) >= sizeof(cmd)) {
		/* Never cut: a cut name could name another console. */
		chan_close(c, 2, "command too long (at most %zu bytes)", sizeof(cmd) - 1);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "%s", command ? command : "");
	for (char *t = strtok_r(cmd, " \t", &save); t && argc < 5; t = strtok_r(NULL, " \t", &save))
		argv[argc++] = t;
	if (chan_connect_broker(c) < 0) {
		chan_close(c, 1, "the console broker is not reachable");
		return 0;
	}
	if (argc == 1 && strcmp(argv[0], "list") == 0) {
		snprintf(c->exec, sizeof(c->exec), "list");
		c->state = CHAN_EXEC;
		chan_send(c, json_pack("{s:s}", "type", "list"));
	} else if (argc == 2 && strcmp(argv[0], "list") == 0 && strcmp(argv[1], "--json") == 0) {
		snprintf(c->exec, sizeof(c->exec), "list --json");
		c->state = CHAN_EXEC;
		chan_send(c, json_pack("{s:s}", "type", "list"));
	} else if (argc == 2 && strcmp(argv[0], "who") == 0) {
		snprintf(c->exec, sizeof(c->exec), "who %s", argv[1]);
		chan_asked(c);
		c->state = CHAN_EXEC;
		chan_send(c, json_pack("{s:s, s:s}", "type", "list", "console", argv[1]));
	} else if (argc >= 2 && argc <= 3 && strcmp(argv[0], "attach") == 0 &&
		   (argc == 2 || strcmp(argv[2], "--ro") == 0 || strcmp(argv[2], "--force") == 0)) {
		int mode = argc == 2 ? USERSPEC_RW
				     : strcmp(argv[2], "--ro") == 0 ? USERSPEC_RO : USERSPEC_FORCE;

		chan_start_attach(c, argv[1], mode, -2);
	} else
		chan_close(c, 2, "unknown command; try: list [--json] | attach NAME [--ro|--force] | "
			   "who NAME");
	return 0;
}

static int chan_on_refuse(ssh_session ssh, ssh_channel ch, const char *what, void *userdata)
{
	return 1; /* subsystems (sftp) are refused */
}

static int chan_on_env(ssh_session ssh, ssh_channel ch, const char *name, const char *value,
		       void *userdata)
{
	return 1;
}

ssh_channel chan_open(struct session *s, bool over_limit)
{
	struct chan *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->session = s;
	c->over_limit = over_limit;
	c->broker_fd = -EBADF;
	c->at_bol = true;
	c->exit_status = 0;
	escape_init(&c->esc, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
	if (frame_reader_init(&c->in) < 0 || obuf_init(&c->to_client, TO_CLIENT_MAX) < 0 ||
	    obuf_init(&c->to_broker, TO_BROKER_MAX) < 0)
		goto fail;
	c->ch = ssh_channel_new(s->ssh);
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
		.channel_subsystem_request_function = chan_on_refuse,
		.channel_env_request_function = chan_on_env,
	};
	ssh_callbacks_init(&c->cb);
	ssh_set_channel_callbacks(c->ch, &c->cb);
	TAILQ_INSERT_TAIL(&s->chans, c, entry);
	s->n_chans++;
	return c->ch;
fail:
	frame_reader_done(&c->in);
	obuf_done(&c->to_client);
	obuf_done(&c->to_broker);
	free(c);
	return NULL;
}

void chan_free(struct chan *c)
{
	if (!c)
		return;
	if (c->state == CHAN_ATTACHED)
		sshd_audit(c->session, "detach", "console=%s reason=session-closed", c->console);
	c->broker_io = watch_free(c->broker_io);
	c->broker_fd = safe_close(c->broker_fd);
	c->menu_timer = sd_event_source_disable_unref(c->menu_timer);
	c->unknown_timer = sd_event_source_disable_unref(c->unknown_timer);
	json_decref(c->menu);
	if (c->ch) {
		ssh_remove_channel_callbacks(c->ch, &c->cb);
		ssh_channel_free(c->ch);
	}
	frame_reader_done(&c->in);
	obuf_done(&c->to_client);
	obuf_done(&c->to_broker);
	json_decref(c->list);
	json_decref(c->info);
	free(c->spool);
	free(c);
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

		if (n == 0 || session_unsent(c->session) >= UNSENT_MAX)
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
	while (c->state == CHAN_ATTACHED && ssh_channel_is_open(c->ch)) {
		if (c->held_len == 0) {
			int n;

			if (!c->keys_held || obuf_room(&c->to_broker) <= sizeof(c->held) + 2048)
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
	struct session *s = c->session;

	if (c->exit_status >= 0 && ssh_channel_is_open(c->ch)) {
		ssh_channel_request_send_exit_status(c->ch, c->exit_status);
		ssh_channel_send_eof(c->ch);
		ssh_channel_close(c->ch);
	}
	TAILQ_REMOVE(&s->chans, c, entry);
	s->n_chans--;
	chan_free(c);
}

void chan_pump(struct chan *c)
{
	uint32_t ev;

	chan_process_broker(c);
	if (obuf_len(&c->to_broker) > 0 && c->broker_fd >= 0) {
		if (obuf_flush(&c->to_broker, c->broker_fd) < 0)
			chan_close(c, 1, "lost the connection to the console broker");
	}
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
		     (obuf_len(&c->to_broker) > 0 ? EPOLLOUT : 0);
		watch_set_events(c->broker_io, ev);
	}
}

void chan_recheck(struct chan *c)
{
	enum access_right r;

	/* Attaching: the rights were checked on c->info, the answer may still come. */
	if ((c->state != CHAN_ATTACHED && c->state != CHAN_ATTACHING) || !c->info)
		return;
	r = chan_right(c, c->info);
	if (r == ACCESS_NONE) {
		chan_send(c, json_pack("{s:s}", "type", "detach"));
		chan_close(c, 1, "your key no longer has access to %s; closing", c->console);
		return;
	}
	if (r < ACCESS_RW && (c->right == ACCESS_RW || c->writer)) {
		if (c->state == CHAN_ATTACHED && c->writer)
			chan_send(c, json_pack("{s:s}", "type", "release"));
		if (c->right == ACCESS_RW)
			chan_notice(c, "your key may now only watch %s", c->console);
	}
	c->right = r;
}
