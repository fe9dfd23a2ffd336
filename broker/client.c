/* SPDX-License-Identifier: MIT */
/*
 * Broker client connection: framing, request dispatch and output
 * (see client.h).  It implements console_attachment_ops for the console it
 * is attached to, and reaches the server only through its client_env.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "client.h"
#include "console.h"
#include "log.h"
#include "message.h"
#include "policy.h"
#include "poller.h"
#include "recording.h"
#include "registry.h"
#include "util.h"
#include "weblink.h"

#define CLIENT_DATA_CHUNK (60 * 1024)
/* An output frame's header: the frame's and the two offsets (frame.h). */
#define CLIENT_OUT_HEADER (FRAME_HEADER + FRAME_OUTPUT_HEADER)
static_assert(CLIENT_DATA_CHUNK + SANITIZE_SLACK <= FRAME_OUTPUT_MAX,
	      "a chunk of output must fit one output frame");
#define CLIENT_LIST_ENVELOPE 256 /* bytes of a list piece besides its entries */

static void client_on_io(struct watch *w, int fd, uint32_t revents, void *userdata);
static const struct console_attachment_ops client_attachment_ops;

int client_new(struct client_env *env, int fd, struct client **ret)
{
	struct client *c;
	struct timespec ts;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->env = env;
	c->fd = fd;
	c->id = ++env->next_id;
	c->att.ops = &client_attachment_ops;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->since_usec = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	snprintf(c->att.label, sizeof(c->att.label), "client %u", c->id);
	snprintf(c->att.audit, sizeof(c->att.audit), "client %u", c->id);
	r = frame_reader_init(&c->in);
	if (r >= 0)
		r = obuf_init(&c->out, CLIENT_OUT_MAX);
	if (r >= 0)
		r = watch_add(env->poller, fd, EPOLLIN, client_on_io, c, &c->io);
	if (r < 0) {
		c->fd = -EBADF; /* the caller still owns fd on failure */
		client_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

struct client *client_free(struct client *c)
{
	if (!c)
		return NULL;
	if (c->att.console)
		console_detach(c->att.console, &c->att, true);
	c->io = watch_free(c->io);
	c->fd = safe_close(c->fd);
	frame_reader_done(&c->in);
	obuf_done(&c->out);
	free(c->list_after);
	if (c->principal)
		principal_done(c->principal);
	free(c->principal);
	free(c);
	return NULL;
}

void client_kill(struct client *c, const char *why)
{
	if (c->dead)
		return;
	log_debug("%s: closing: %s", c->att.label, why);
	/* Best effort, never blocking: the error that explains the close goes out first. */
	if (obuf_len(&c->out) > 0)
		obuf_flush(&c->out, c->fd);
	/*
	 * Only mark it: callers may be iterating a console's clients.  It stays
	 * attached (skipped by every send) until the sweep detaches and frees it.
	 */
	c->dead = true;
	if (c->io)
		watch_disable(c->io);
	c->env->dead(c->env->userdata, c);
}

int client_send(struct client *c, json_t *msg)
{
	int r;

	/* Stopping: `detached` was the last word (client_stop()). */
	if (c->dead || c->stopping)
		return -EPIPE;
	r = proto_put_control(&c->out, msg);
	if (r == -ENOBUFS)
		c->notices_dropped++;
	return r;
}

int client_send_new(struct client *c, json_t *msg)
{
	int r = msg ? client_send(c, msg) : -ENOMEM;

	json_decref(msg);
	return r;
}

void client_notice(struct client *c, const char *text)
{
	client_send_new(c, proto_msg_notice(text));
}

void client_error(struct client *c, const char *code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	client_send_new(c, proto_msg_error(code, text));
}

/*
 * Move ring bytes into the output queue while it has room (leaving
 * CLIENT_CONTROL_RESERVE for notices).  Replay (below sanitize_until) goes
 * through the sanitiser; live bytes go as they are.
 */
static void client_pull(struct client *c)
{
	struct console *con = c->att.console;
	uint64_t tail, head;

	if (!con || c->stopping)
		return;
	tail = ring_tail(&con->ring);
	head = ring_head(&con->ring);
	/*
	 * Skip ahead only when data can follow at once: a client that is not
	 * reading gets one notice with the total when it comes back, not one per
	 * guest write.
	 */
	if (obuf_room(&c->out) <= CLIENT_CONTROL_RESERVE + CLIENT_OUT_HEADER + SANITIZE_SLACK)
		return;
	if (c->att.pos < tail) {
		/*
		 * Land with headroom: at the first line start past tail + ring/8.
		 * Landing exactly on the tail would lose a few bytes (and send a
		 * notice) on every guest write while the client catches up.
		 */
		uint64_t to = MIN(tail + con->ring.cap / 8, head), skip;
		char text[96];
		struct iovec iov[2];
		size_t n = ring_peek(&con->ring, to, 4096, iov);
		const uint8_t *nl = memchr(iov[0].iov_base, '\n', iov[0].iov_len);

		if (nl)
			to += (uint64_t)(nl - (const uint8_t *)iov[0].iov_base) + 1;
		else if (n > iov[0].iov_len && (nl = memchr(iov[1].iov_base, '\n', iov[1].iov_len)))
			to += iov[0].iov_len + (uint64_t)(nl - (const uint8_t *)iov[1].iov_base) + 1;
		skip = to - c->att.pos;
		snprintf(text, sizeof(text), "%llu bytes dropped", (unsigned long long)skip);
		if (client_send_new(c, proto_msg_notice_dropped(text, skip)) >= 0) {
			c->att.pos = to;
			recording_marker(c->att.rec, text); /* the gap is in the recording too */
		}
		if (c->att.pos < tail)
			return; /* no room even for the notice: try again later */
		sanitize_init(&c->att.san);
	}
	if (c->notices_dropped > 0 && obuf_room(&c->out) > CLIENT_CONTROL_RESERVE) {
		char text[96];
		unsigned n = c->notices_dropped;

		c->notices_dropped = 0;
		snprintf(text, sizeof(text), "%u notices dropped (client too slow)", n);
		client_notice(c, text);
	}
	while (c->att.pos < head) {
		size_t room = obuf_room(&c->out);
		size_t want, n, o;
		struct iovec iov[2];
		uint8_t *dst;
		bool replay = c->att.pos < c->att.sanitize_until;

		if (room <= CLIENT_CONTROL_RESERVE + CLIENT_OUT_HEADER + SANITIZE_SLACK)
			break;
		want = MIN(room - CLIENT_CONTROL_RESERVE - CLIENT_OUT_HEADER - SANITIZE_SLACK,
			   (size_t)CLIENT_DATA_CHUNK);
		if (replay)
			want = (size_t)MIN((uint64_t)want, c->att.sanitize_until - c->att.pos);
		n = ring_peek(&con->ring, c->att.pos, want, iov);
		if (n == 0)
			break;
		if (obuf_tail_span(&c->out, CLIENT_OUT_HEADER + n + SANITIZE_SLACK, &dst) <
		    CLIENT_OUT_HEADER + n + SANITIZE_SLACK)
			break; /* cannot happen: room was checked and the span compacts */
		if (replay) {
			o = sanitize_feed(&c->att.san, iov[0].iov_base, iov[0].iov_len,
					  dst + CLIENT_OUT_HEADER);
			o += sanitize_feed(&c->att.san, iov[1].iov_base, iov[1].iov_len,
					   dst + CLIENT_OUT_HEADER + o);
			if (c->att.pos + n == c->att.sanitize_until)
				o += sanitize_finish(&c->att.san, dst + CLIENT_OUT_HEADER + o);
		} else {
			memcpy(dst + CLIENT_OUT_HEADER, iov[0].iov_base, iov[0].iov_len);
			memcpy(dst + CLIENT_OUT_HEADER + iov[0].iov_len, iov[1].iov_base,
			       iov[1].iov_len);
			o = n;
		}
		/*
		 * One O frame per ring range, built in place (zero-copy): replay that
		 * the sanitiser removed entirely still goes, empty, so the offset a
		 * front resumes at advances past it.
		 */
		proto_output_header(dst, c->att.pos, c->att.pos + n, o);
		/* What this client is sent, replay included, is what its recording replays. */
		recording_output(c->att.rec, dst + CLIENT_OUT_HEADER, o);
		obuf_commit(&c->out, CLIENT_OUT_HEADER + o);
		c->att.pos += n;
	}
}

/* -------------------------------------------------------------------------- */
/* Rights (policy.h): what this connection may do on a console */

bool client_is_local_admin(const struct client *c)
{
	/* A web session of a local admin is a front connection: no local admin's eyes. */
	return c->admin && !c->principal && !c->web;
}

enum access_right client_right(const struct client *c, const struct console *con)
{
	const struct access_console ac = console_access(con);
	enum access_right r;

	if (c->principal)
		r = policy_right(*c->env->policy, c->principal, &ac);
	else if (c->web)
		r = ACCESS_RW; /* a local admin's session (the front peer's own rights never count) */
	else
		/* A front that speaks for nobody may only ask whether a key may log in. */
		r = c->admin ? ACCESS_RW : ACCESS_NONE;
	if (c->web_ro && r > ACCESS_RO)
		r = ACCESS_RO;
	return r;
}

bool client_may_break(const struct client *c, const struct console *con)
{
	const struct access_console ac = console_access(con);

	/* A break needs rw: a link narrowed to ro never sends one. */
	if (c->web_ro)
		return false;
	if (c->principal)
		return policy_may_break(*c->env->policy, c->principal, &ac);
	return c->web || c->admin;
}

bool client_may_action(const struct client *c, const struct console *con,
		       enum proto_action action)
{
	const struct access_console ac = console_access(con);

	if (c->web_ro)
		return false;
	if (c->principal)
		return policy_may_action(*c->env->policy, c->principal, &ac, action);
	return c->web || c->admin;
}

/* A console in this client's `list`: only those it may see, with its rights. */
static json_t *client_describe(void *userdata, const struct console *con)
{
	const struct client *c = userdata;
	enum access_right right = client_right(c, con);

	if (right == ACCESS_NONE)
		return NULL;
	return console_list_json(con, right == ACCESS_RW, client_may_break(c, con));
}

/*
 * Queue pieces of a `list` answer while a whole frame fits besides the
 * notice reserve.  Each piece resumes after the last console sent, so consoles
 * added or removed meanwhile cannot make it repeat or skip the others.
 */
static void client_list_more(struct client *c)
{
	while (c->listing && obuf_room(&c->out) >= CLIENT_CONTROL_RESERVE + FRAME_HEADER + FRAME_MAX) {
		const char *last;
		char *after;
		json_t *msg = registry_list_piece(c->env->registry, c->list_after,
						  FRAME_MAX - CLIENT_LIST_ENVELOPE,
						  client_is_local_admin(c), client_describe, c, &last);

		after = msg && last ? strdup(last) : NULL;
		if (!msg || (last && !after) || client_send(c, msg) < 0) {
			json_decref(msg);
			free(after);
			c->listing = false;
			client_error(c, PROTO_E_INTERNAL, "cannot queue the console list");
			return;
		}
		free(c->list_after);
		c->list_after = after;
		c->listing = json_is_true(json_object_get(msg, "more"));
		json_decref(msg);
	}
}

static void client_update_events(struct client *c)
{
	uint32_t ev = (c->att.input_paused ? 0 : EPOLLIN) | (c->att.want_write ? EPOLLOUT : 0);

	if (!c->dead && c->io)
		watch_set_events(c->io, ev);
}

void client_flush(struct client *c)
{
	bool want;

	if (c->dead)
		return;
	for (;;) {
		ssize_t n;

		client_list_more(c);
		client_pull(c);
		if (obuf_len(&c->out) == 0)
			break;
		n = obuf_flush(&c->out, c->fd);
		if (n < 0) {
			client_kill(c, "write failed");
			return;
		}
		if (obuf_len(&c->out) > 0 || n == 0)
			break;
	}
	want = obuf_len(&c->out) > 0;
	if (want != c->att.want_write) {
		c->att.want_write = want;
		client_update_events(c);
	}
	/* Stopping: once `detached` is out, the front sees the end and closes its side. */
	if (c->stopping && !want && !c->shut_wr) {
		c->shut_wr = true;
		if (shutdown(c->fd, SHUT_WR) < 0)
			client_kill(c, "shutdown failed");
	}
}

void client_stop(struct client *c)
{
	if (c->dead || c->stopping)
		return;
	if (c->att.console)
		client_send_new(c, proto_msg_detached(c->att.console->name, DETACH_SHUTDOWN,
						      "ttyhubd is shutting down"));
	/* Only a writer has keys in flight worth waiting for; a watcher may not even read. */
	if (c->att.role != CONSOLE_WRITER) {
		client_kill(c, "ttyhubd is stopping");
		return;
	}
	c->stopping = true;
	client_flush(c);
}

/* -------------------------------------------------------------------------- */
/* Requests */

/*
 * The console a request names (or, without "console", the attached one).
 * A console this client has no right to is answered exactly like one that
 * does not exist: a key learns nothing of consoles it may not see.
 */
static struct console *client_lookup(struct client *c, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "console"));
	struct console *con = NULL;
	char esc[256];
	int r;

	if (!name) {
		if (c->att.console)
			return c->att.console;
		client_error(c, PROTO_E_BAD_REQUEST, "request needs a \"console\" name");
		return NULL;
	}
	/* An ambiguous name lists no candidates: the caller may not see them all. */
	r = registry_lookup(c->env->registry, name, &con);
	if (r >= 0 && client_right(c, con) == ACCESS_NONE)
		r = -ENOENT;
	if (r == -ENOTUNIQ)
		client_error(c, PROTO_E_UNKNOWN_CONSOLE, "'%s' is ambiguous: use VM:ALIAS",
			     log_escape(name, strlen(name), esc, sizeof(esc)));
	else if (r < 0)
		client_error(c, PROTO_E_UNKNOWN_CONSOLE, "no console named '%s'",
			     log_escape(name, strlen(name), esc, sizeof(esc)));
	return r < 0 ? NULL : con;
}

/* All consoles this client may see (in pieces: see client_list_more), or the one named. */
static void client_do_list(struct client *c, json_t *req)
{
	struct console *con;
	json_t *msg;

	if (!json_object_get(req, "console")) {
		if (c->listing) {
			client_error(c, PROTO_E_BUSY, "a console list is already being sent");
			return;
		}
		c->listing = true;
		free(c->list_after);
		c->list_after = NULL;
		return; /* client_flush() sends it */
	}
	con = client_lookup(c, req);
	if (!con)
		return;
	msg = proto_msg_list();
	if (!msg || proto_list_add_console(msg, client_describe(c, con)) < 0 ||
	    client_send(c, msg) < 0)
		client_error(c, PROTO_E_INTERNAL, "cannot queue the console list");
	json_decref(msg);
}

/*
 * attach's "resume": {"epoch": HEX16, "offset": N >= 0, "lease"?: HEX32}.
 * Returns 0 (*ret filled), -EINVAL with the complaint sent.
 */
static int client_parse_resume(struct client *c, json_t *jres, struct console_resume *ret)
{
	json_t *joff = json_object_get(jres, "offset"), *jlease = json_object_get(jres, "lease");

	*ret = (struct console_resume){ 0 };
	if (!json_is_object(jres) ||
	    proto_parse_epoch(json_string_value(json_object_get(jres, "epoch")), &ret->epoch) < 0 ||
	    !json_is_integer(joff) || json_integer_value(joff) < 0) {
		client_error(c, PROTO_E_BAD_REQUEST, "resume needs \"epoch\" (16 hex digits) and "
			     "\"offset\" (a number >= 0)");
		return -EINVAL;
	}
	ret->offset = (uint64_t)json_integer_value(joff);
	if (jlease) {
		if (proto_parse_lease(json_string_value(jlease), ret->lease) < 0) {
			client_error(c, PROTO_E_BAD_REQUEST, "resume's lease must be %d hex digits",
				     PROTO_LEASE_STRLEN);
			return -EINVAL;
		}
		ret->has_lease = true;
	}
	return 0;
}

/*
 * With --record-dir, this attach session is recorded (recording.h) from
 * before `attached`, so the replay is in it too; the console closes it at
 * detach.  A recording that cannot be made is logged and the session goes on.
 */
static void client_record_open(struct client *c, struct console *con)
{
	const struct recording_config *cfg = con->env->record ? *con->env->record : NULL;

	if (!cfg)
		return;
	(void)recording_open(con->env->event, cfg, &(const struct recording_info){
		.console = con->name,
		.vm = con->vm,
		.principal = c->att.label,
		.client_id = c->id,
		.width = c->cols,
		.height = c->rows,
	}, &c->att.rec);
}

static void client_do_attach(struct client *c, json_t *req)
{
	json_t *jmode = json_object_get(req, "mode");
	json_t *jreplay = json_object_get(req, "replay");
	json_t *jres = json_object_get(req, "resume");
	enum attach_mode mode = ATTACH_RW;
	enum access_right right;
	struct console *con;
	struct console_resume resume;
	long replay = *c->env->default_replay;

	if (c->att.console) {
		client_error(c, PROTO_E_ALREADY_ATTACHED, "already attached to %s",
			     c->att.console->name);
		return;
	}
	if (jmode)
		mode = attach_mode_from_string(json_string_value(jmode));
	if (mode < 0) {
		client_error(c, PROTO_E_BAD_REQUEST, "mode must be \"ro\", \"rw\" or \"force\"");
		return;
	}
	if (jreplay && proto_parse_replay(jreplay, &replay) < 0) {
		client_error(c, PROTO_E_BAD_REQUEST,
			     "replay must be a number of lines (0-%ld) or \"all\"", PROTO_REPLAY_MAX);
		return;
	}
	if (jres && client_parse_resume(c, jres, &resume) < 0)
		return;
	con = client_lookup(c, req);
	if (!con)
		return;
	/* Rights before anything else about the console, so nothing leaks past them. */
	right = client_right(c, con);
	if (mode == ATTACH_FORCE && right < ACCESS_RW) {
		client_error(c, PROTO_E_DENIED, "your key may only watch %s", con->name);
		return;
	}
	if (right < ACCESS_RW)
		mode = ATTACH_RO; /* asked to write, may only watch: attached as a watcher */
	if (!con->supported) {
		client_error(c, PROTO_E_UNSUPPORTED, "console %s cannot be attached: %s", con->name,
			     con->reason ? con->reason : "unsupported");
		return;
	}
	c->att.right = right;
	c->att.may_break = client_may_break(c, con);
	client_record_open(c, con);
	console_attach_resume(con, &c->att, mode, replay, jres ? &resume : NULL);
}

/*
 * `output`: ring bytes [start, next) as a JSON string, GCE
 * getSerialPortOutput style (docs/protocol.md).  Rights as for attach: any
 * right on the console (ro) will do; none is answered as no such console.
 */
static void client_do_output(struct client *c, json_t *req)
{
	json_t *jstart = json_object_get(req, "start"), *jmax = json_object_get(req, "max");
	uint64_t tail, head, start, next, lost = 0;
	size_t max = PROTO_OUTPUT_MAX, n;
	struct iovec iov[2];
	struct console *con;
	uint8_t *buf;
	json_t *msg;

	if ((jstart && !json_is_integer(jstart)) ||
	    (jmax && (!json_is_integer(jmax) || json_integer_value(jmax) < 0))) {
		client_error(c, PROTO_E_BAD_REQUEST, "output takes \"start\" (a number, negative: "
			     "the last bytes) and \"max\" (a number >= 0)");
		return;
	}
	con = client_lookup(c, req);
	if (!con)
		return;
	/* Past the lookup's rights check: this console exists for this client. */
	if (jmax && json_integer_value(jmax) > 0)
		max = (size_t)MIN(json_integer_value(jmax), (json_int_t)PROTO_OUTPUT_MAX);
	tail = ring_tail(&con->ring);
	head = ring_head(&con->ring);
	if (!jstart)
		start = tail;
	else if (json_integer_value(jstart) < 0) {
		/* The last -start bytes (all of them if the ring holds fewer). */
		uint64_t back = json_integer_value(jstart) == INT64_MIN
					? UINT64_MAX
					: (uint64_t)-json_integer_value(jstart);

		start = head - MIN(back, head - tail);
	} else
		start = (uint64_t)json_integer_value(jstart);
	if (start < tail) {
		lost = tail - start;
		start = tail;
	}
	start = MIN(start, head);
	buf = malloc(max);
	if (!buf) {
		client_error(c, PROTO_E_INTERNAL, "out of memory");
		return;
	}
	n = ring_peek(&con->ring, start, max, iov);
	memcpy(buf, iov[0].iov_base, iov[0].iov_len);
	memcpy(buf + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	/* Do not end inside a UTF-8 sequence the next answer completes. */
	if (start + n < head)
		n = proto_utf8_cut(buf, n);
	next = start + n;
	msg = proto_msg_output(&(const struct proto_output){
		.console = con->name,
		.epoch = ring_epoch(&con->ring),
		.start = start,
		.next = next,
		.head = head,
		.data = buf,
		.len = n,
		.expired = lost > 0,
		.lost = lost,
	});
	free(buf);
	if (!msg || client_send(c, msg) < 0)
		client_error(c, PROTO_E_INTERNAL, "cannot queue the output answer");
	json_decref(msg);
}

static void client_do_take(struct client *c, json_t *req)
{
	bool force = json_is_true(json_object_get(req, "force"));

	if (c->att.right < ACCESS_RW) {
		client_error(c, PROTO_E_DENIED, "your key may only watch %s", c->att.console->name);
		return;
	}
	if (console_take(c->att.console, &c->att, force) == -EBUSY)
		client_error(c, PROTO_E_BUSY, "%s writes to %s; force to take over",
			     c->att.console->writer->label, c->att.console->name);
}

static void client_do_release(struct client *c, json_t *req)
{
	console_release(c->att.console, &c->att);
}

static void client_do_who(struct client *c, json_t *req)
{
	struct console *con = client_lookup(c, req);
	json_t *msg;

	if (!con)
		return;
	msg = console_who_json(con, client_is_local_admin(c));
	if (!msg || client_send(c, msg) < 0)
		client_error(c, PROTO_E_INTERNAL, "the answer does not fit in a frame");
	json_decref(msg);
}

static void client_do_replay(struct client *c, json_t *req)
{
	struct console *con = c->att.console;
	long lines = 20;

	if (json_object_get(req, "lines") &&
	    proto_parse_replay(json_object_get(req, "lines"), &lines) < 0) {
		client_error(c, PROTO_E_BAD_REQUEST, "lines must be a number or \"all\"");
		return;
	}
	/* Send the last lines again (sanitised); the live stream then resumes at head. */
	console_replay(con, &c->att, lines);
}

static void client_do_break(struct client *c, json_t *req)
{
	struct console *con = client_lookup(c, req);

	if (!con)
		return;
	if (!client_may_break(c, con)) {
		client_error(c, PROTO_E_DENIED, "your key may not send a serial break");
		return;
	}
	c->env->send_break(c->env->userdata, con, c);
}

/*
 * `action`: an unknown action and one the key may not take get the same
 * denial, so a key learns nothing about the actions it lacks.
 */
static void client_do_action(struct client *c, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "action"));
	const char *key = json_string_value(json_object_get(req, "key"));
	enum proto_action action = proto_action_from_string(name);
	struct console *con;
	char esc[64];

	if (!name) {
		client_error(c, PROTO_E_BAD_REQUEST, "action needs an \"action\" string");
		return;
	}
	con = client_lookup(c, req);
	if (!con)
		return;
	if (action < 0 || !client_may_action(c, con, action)) {
		/* Audited: someone tried to reset or NMI a guest they may not. */
		log_escape(name, strlen(name), esc, sizeof(esc));
		log_notice("action %s on %s by %s denied", esc, con->name, c->att.audit);
		client_error(c, PROTO_E_DENIED, "action %s is not available to your key", esc);
		return;
	}
	if (action == PROTO_ACTION_SYSRQ && !proto_sysrq_key_valid(key)) {
		client_error(c, PROTO_E_BAD_REQUEST, "sysrq needs a \"key\": one of %s",
			     PROTO_SYSRQ_KEYS);
		return;
	}
	c->env->send_action(c->env->userdata, con, c, action,
			    action == PROTO_ACTION_SYSRQ ? key[0] : 0);
}

static void client_do_resize(struct client *c, json_t *req)
{
	json_t *cols = json_object_get(req, "cols"), *rows = json_object_get(req, "rows");

	if (!json_is_integer(cols) || !json_is_integer(rows) || json_integer_value(cols) <= 0 ||
	    json_integer_value(cols) > 10000 || json_integer_value(rows) <= 0 ||
	    json_integer_value(rows) > 10000) {
		client_error(c, PROTO_E_BAD_REQUEST, "resize needs cols and rows (1-10000)");
		return;
	}
	c->cols = (unsigned)json_integer_value(cols);
	c->rows = (unsigned)json_integer_value(rows);
	if (c->att.console)
		recording_resize(c->att.rec, c->cols, c->rows);
}

void client_detach(struct client *c, enum detach_reason reason, const char *text)
{
	char name[REGISTRY_NAME_MAX + 1];

	if (!c->att.console)
		return;
	snprintf(name, sizeof(name), "%s", c->att.console->name);
	/* Given up or taken away (not a dropped connection, not a shutdown): no coming back. */
	if (reason == DETACH_REQUESTED || reason == DETACH_REVOKED)
		console_forget_lease(c->att.console, &c->att);
	console_detach(c->att.console, &c->att, true);
	client_send_new(c, proto_msg_detached(name, reason, text));
}

static void client_do_detach(struct client *c, json_t *req)
{
	client_detach(c, DETACH_REQUESTED, "detached on request");
}

/*
 * The SSH key a front speaks for, as {"key": "TYPE BASE64", "from": "ADDR"}.
 * Returns 0 with *ret bound to the current policy, -EBADMSG (malformed) or
 * -EPERM (no access line allows this key from this address), -ENOMEM.
 */
static int client_principal(struct client *c, json_t *key, json_t *from, struct principal *ret)
{
	int r;

	if (!json_is_string(key) || (from && !json_is_string(from)))
		return -EBADMSG;
	r = principal_init(ret, json_string_value(key), json_string_value(from));
	if (r == -ENOMEM)
		return r;
	if (r >= 0)
		r = policy_bind(*c->env->policy, ret);
	if (r < 0) {
		char esc[80];

		log_escape(json_string_value(key), strlen(json_string_value(key)), esc, sizeof(esc));
		log_notice("%s: key not allowed: %s from %s", c->att.audit, esc,
			   from ? json_string_value(from) : "?");
		principal_done(ret);
		return -EPERM;
	}
	return 0;
}

/* The answer to a principal client_principal() refused; what: "principal" or "authorize". */
static void client_principal_error(struct client *c, int r, const char *what)
{
	if (r == -EPERM)
		client_error(c, PROTO_E_DENIED, "key not allowed");
	else if (r == -EBADMSG)
		client_error(c, PROTO_E_BAD_REQUEST, "%s needs \"key\" (\"TYPE BASE64\") and "
			     "\"from\" (an address)", what);
	else
		client_error(c, PROTO_E_INTERNAL, "cannot check the key: %s", strerror(-r));
}

/* Now, on the clock web links and sessions expire by (it runs during suspend). */
static uint64_t client_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * hello's "session" (a front speaking for a web session): the connection
 * speaks for the session's principal (bound to the current policy from the
 * browser's address, "from" or else the one it redeemed from) or local admin,
 * capped at ro if the link was.  Returns 0, or -EPERM with the error sent
 * ("web session expired", or "key not allowed" when from= refuses the
 * address) and the client killed.
 */
static int client_hello_session(struct client *c, json_t *req)
{
	json_t *js = json_object_get(req, "session"), *jfrom = json_object_get(req, "from");
	const struct weblink_entry *e;
	char tag[WEBLINK_TAG_LEN + 1], from[POLICY_FROM_MAX];
	const char *why = NULL;

	if (!c->front)
		why = "only a configured front may speak for a web session";
	else if (json_object_get(req, "principal") || !json_is_string(js) ||
		 (jfrom && !json_is_string(jfrom)))
		why = "hello's session must be a string, without a principal";
	if (why) {
		client_error(c, c->front ? PROTO_E_BAD_REQUEST : PROTO_E_DENIED, "%s", why);
		client_kill(c, "bad web session hello");
		return -EPERM;
	}
	weblink_tag_text(json_string_value(js), tag);
	e = c->env->weblink
		    ? weblink_session_find(c->env->weblink, json_string_value(js), client_now_usec())
		    : NULL;
	if (e && e->grant.principal) {
		_cleanup_free_ struct principal *p = calloc(1, sizeof(*p));
		int r = p ? principal_copy(e->grant.principal, p) : -ENOMEM;

		if (r >= 0 && jfrom) {
			/* Never cut: a cut address could be one that from= admits. */
			if (strlen(json_string_value(jfrom)) >= sizeof(p->from))
				r = -EINVAL;
			else {
				snprintf(p->from, sizeof(p->from), "%s", json_string_value(jfrom));
				p->have_from = true;
			}
		}
		if (r >= 0 && policy_bind(*c->env->policy, p) < 0) {
			log_escape(p->have_from ? p->from : "?", strlen(p->have_from ? p->from : "?"),
				   from, sizeof(from));
			log_notice("%s: web session %s: key %s not allowed from %s", c->att.audit, tag,
				   p->fingerprint, from);
			r = -EPERM;
		}
		if (r < 0) {
			/* The session is fine; its key may not come from there (from=). */
			if (p)
				principal_done(p);
			client_error(c, PROTO_E_DENIED, "key not allowed");
			client_flush(c);
			client_kill(c, "web session key refused");
			return -EPERM;
		} else {
			c->principal = TAKE_PTR(p);
			snprintf(c->att.label, sizeof(c->att.label), "%.70s (web %s)",
				 c->principal->comment, c->principal->fingerprint);
		}
	} else if (e) {
		snprintf(c->web_admin, sizeof(c->web_admin), "%s", e->grant.admin);
		snprintf(c->att.label, sizeof(c->att.label), "local admin %.70s (web)",
			 c->web_admin);
	}
	if (!e) {
		log_notice("%s: web session %s refused (unknown or expired)", c->att.audit, tag);
		client_error(c, PROTO_E_DENIED, "web session expired");
		client_flush(c);
		client_kill(c, "web session refused");
		return -EPERM;
	}
	c->web = true;
	c->web_ro = e->grant.ro;
	snprintf(c->web_console, sizeof(c->web_console), "%s", e->grant.console);
	if (jfrom)
		log_escape(json_string_value(jfrom), strlen(json_string_value(jfrom)), from,
			   sizeof(from));
	snprintf(c->att.audit, sizeof(c->att.audit), "%.110s session %s from %.48s",
		 c->att.label, tag, jfrom ? from : "?");
	log_info("%s: web session connected (%s)", c->att.audit, c->web_ro ? "ro" : "rw");
	return 0;
}

/*
 * The second hello on a gateway's connection (docs/protocol.md "Gateways"):
 * from now on it speaks for the user the gateway names, with the least of
 * the rights the gateway grants, its own line's and the user's line's
 * (policy.h).  Malformed: `bad-request`, and the connection stays the
 * gateway's.  The gateway's principal moves into the user's (->via).
 */
static void client_hello_speak_for(struct client *c, json_t *req)
{
	json_t *v = json_object_get(req, "version"), *jp = json_object_get(req, "principal");
	json_t *jkey = json_object_get(jp, "key"), *jfrom = json_object_get(jp, "from");
	json_t *jgrant = json_object_get(jp, "grant"), *jcomment = json_object_get(jp, "comment");
	_cleanup_free_ struct principal *p = NULL;
	char msg[ACCESS_MSG_MAX], from[POLICY_FROM_MAX], own[64];
	int r;

	if (!json_is_integer(v) || json_integer_value(v) != PROTO_VERSION) {
		client_error(c, PROTO_E_BAD_REQUEST, "unsupported protocol version (want %d)",
			     PROTO_VERSION);
		return;
	}
	/* Rights change with the principal: never under an attachment or a list in progress. */
	if (c->att.console || c->listing) {
		client_error(c, PROTO_E_BAD_REQUEST, "a gateway speaks for a user before it "
			     "attaches or lists");
		return;
	}
	if (!json_is_string(jkey) || (jfrom && !json_is_string(jfrom)) ||
	    (jcomment && !json_is_string(jcomment)) || !json_is_string(jgrant)) {
		client_error(c, PROTO_E_BAD_REQUEST, "a gateway's hello needs a principal with "
			     "\"key\", \"from\" and \"grant\" (strings)");
		return;
	}
	p = calloc(1, sizeof(*p));
	r = p ? principal_speak_for(p, json_string_value(jkey), json_string_value(jfrom),
				    json_string_value(jgrant), json_string_length(jgrant),
				    json_string_value(jcomment), c->principal, msg, sizeof(msg))
	      : -ENOMEM;
	if (r == -EBADMSG) {
		client_error(c, PROTO_E_BAD_REQUEST, "principal's grant: %s", msg);
		return;
	}
	if (r == -EINVAL) {
		client_error(c, PROTO_E_BAD_REQUEST, "principal needs \"key\" (\"TYPE BASE64\") and "
			     "\"from\" (an address)");
		return;
	}
	if (r < 0) {
		client_error(c, PROTO_E_INTERNAL, "cannot check the key: %s", strerror(-r));
		return;
	}
	/* The gateway's own line was checked at its hello and on every reload since. */
	if (policy_bind(*c->env->policy, p) < 0) {
		principal_done(p);
		client_error(c, PROTO_E_DENIED, "key not allowed");
		return;
	}
	log_escape(p->have_from ? p->from : "?", strlen(p->have_from ? p->from : "?"), from,
		   sizeof(from));
	if (p->key)
		snprintf(own, sizeof(own), "; own line %u", p->key->entry->line);
	else
		snprintf(own, sizeof(own), "%s", p->listed ? "; own lines refuse that address" : "");
	log_info("%s: speaks for %s (ssh %s) from %s via gateway %s (ssh %s); grant %.200s%s",
		 c->att.audit, p->comment, p->fingerprint, from, p->via->comment,
		 p->via->fingerprint, p->grant_text[0] ? p->grant_text : "(nothing)", own);
	principal_done(c->principal);
	free(c->principal);
	c->principal = TAKE_PTR(p);
	snprintf(c->att.label, sizeof(c->att.label), "%s", c->principal->label);
	snprintf(c->att.audit, sizeof(c->att.audit), "%.143s from %.50s", c->principal->label,
		 from);
	client_send_new(c, proto_msg_hello(c->att.label, c->principal->fingerprint,
					   c->principal->comment));
}

/*
 * A web session's principal on a gateway's broker, for the gateway to speak
 * for (docs/protocol.md "Gateways"): its key, what its line grants now
 * (narrowed to watching for a --ro link) and the session's console, added
 * to hello's principal p.  A line too long to pass on grants nothing.
 */
static int client_session_principal(struct client *c, json_t *p)
{
	const struct access_entry *e = c->principal->key->entry;
	char grant[ACCESS_GRANT_MAX + 1];
	_cleanup_free_ char *key = NULL;

	if ((c->web_ro ? access_format_grant_ro(e, grant, sizeof(grant))
		       : access_format_grant(e, grant, sizeof(grant))) < 0)
		log_warning("%s: line %u of the access file is too long to pass on as a grant; "
			    "it grants nothing through a gateway", c->att.audit, e->line);
	if (asprintf(&key, "%s %s", e->keytype, e->base64) < 0) {
		key = NULL;
		return -ENOMEM;
	}
	if (!p || json_object_set_new(p, "key", json_string(key)) < 0 ||
	    json_object_set_new(p, "console", json_string(c->web_console)) < 0)
		return -ENOMEM;
	/* JSON holds only UTF-8: a line with other bytes grants nothing through a gateway. */
	if (json_object_set_new(p, "grant", json_string(grant)) < 0 &&
	    json_object_set_new(p, "grant", json_string("")) < 0)
		return -ENOMEM;
	return 0;
}

static void client_do_hello(struct client *c, json_t *req)
{
	json_t *v = json_object_get(req, "version");
	const char *name = json_string_value(json_object_get(req, "client"));
	json_t *jp = json_object_get(req, "principal");
	json_t *msg;
	char esc[96];
	int r;

	if (c->hello) {
		/* Once more, only on a gateway's connection that speaks for nobody yet. */
		if (jp && !json_object_get(req, "session") && c->principal && !c->web &&
		    principal_is_gateway(c->principal))
			client_hello_speak_for(c, req);
		else
			client_error(c, PROTO_E_BAD_REQUEST, "hello was already sent");
		return;
	}
	if (!json_is_integer(v) || json_integer_value(v) != PROTO_VERSION) {
		client_error(c, PROTO_E_BAD_REQUEST, "unsupported protocol version (want %d)",
			     PROTO_VERSION);
		client_kill(c, "protocol version");
		return;
	}
	if (jp && !c->front) {
		client_error(c, PROTO_E_DENIED, "only a configured front may assert a principal");
		client_kill(c, "principal from a non-front peer");
		return;
	}
	if (json_object_get(req, "session")) {
		if (client_hello_session(c, req) < 0)
			return;
	} else if (jp) {
		_cleanup_free_ struct principal *p = calloc(1, sizeof(*p));

		/* json_object_get() of a non-object is NULL: a malformed principal. */
		r = p ? client_principal(c, json_object_get(jp, "key"), json_object_get(jp, "from"), p)
		      : -ENOMEM;
		if (r < 0) {
			client_principal_error(c, r, "principal");
			client_kill(c, "principal refused");
			return;
		}
		c->principal = TAKE_PTR(p);
		/* Admitted as a gateway: a reload that takes the option away revokes it (policy.h). */
		c->principal->gateway = principal_is_gateway(c->principal);
		snprintf(c->att.label, sizeof(c->att.label), "%s", c->principal->label);
		snprintf(c->att.audit, sizeof(c->att.audit), "%.120s from %s", c->principal->label,
			 c->principal->have_from ? c->principal->from : "?");
	} else if (name) {
		log_escape(name, strlen(name), esc, sizeof(esc));
		/* Keep the SO_PEERCRED identity; the client name only adds detail. */
		if (strcmp(esc, "ttyhub") != 0)
			snprintf(c->att.audit + strlen(c->att.audit),
				 sizeof(c->att.audit) - strlen(c->att.audit), " [%s]", esc);
	}
	c->hello = true;
	msg = proto_msg_hello(c->att.label, c->principal ? c->principal->fingerprint : NULL,
			      c->principal ? c->principal->comment : NULL);
	if (msg && c->web && c->principal && c->env->no_consoles &&
	    client_session_principal(c, json_object_get(msg, "principal")) < 0) {
		json_decref(msg);
		msg = proto_msg_error(PROTO_E_INTERNAL, "out of memory");
	}
	client_send_new(c, msg);
}

/* A front asks whether a key may log in from an address; its own principal is unchanged. */
static void client_do_authorize(struct client *c, json_t *req)
{
	char grant[ACCESS_GRANT_MAX + 1];
	struct principal p;
	json_t *msg;
	int r;

	if (!c->front) {
		client_error(c, PROTO_E_DENIED, "only a configured front may authorize a key");
		return;
	}
	/* What a host's keys may do is none of a gateway's business. */
	if (c->principal && (c->principal->via || principal_is_gateway(c->principal))) {
		client_error(c, PROTO_E_DENIED, "a gateway's connection may not authorize a key");
		return;
	}
	r = client_principal(c, json_object_get(req, "key"), json_object_get(req, "from"), &p);
	if (r < 0) {
		client_principal_error(c, r, "authorize");
		return;
	}
	/* Too long a line to pass on as a grant grants nothing through a gateway (never a cut). */
	if (access_format_grant(p.key->entry, grant, sizeof(grant)) < 0)
		log_warning("%s: line %u of the access file is too long to pass on as a grant; "
			    "it grants nothing through a gateway", c->att.audit, p.key->entry->line);
	msg = proto_msg_authorized(p.fingerprint, p.comment, p.label, grant, p.key->entry->gateway);
	if (!msg && grant[0]) {
		/* JSON holds only UTF-8: a line with other bytes grants nothing through a gateway. */
		log_warning("%s: line %u of the access file is not UTF-8; it grants nothing through "
			    "a gateway", c->att.audit, p.key->entry->line);
		msg = proto_msg_authorized(p.fingerprint, p.comment, p.label, "",
					   p.key->entry->gateway);
	}
	client_send_new(c, msg);
	principal_done(&p);
}

/* `ping` (keepalive): `pong`. */
static void client_do_ping(struct client *c, json_t *req)
{
	client_send_new(c, proto_msg_pong());
}

/* "console" percent-encoded for a URL fragment's value: all but RFC 3986 unreserved. */
static void client_url_encode(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in && o + 4 <= size; in++) {
		unsigned char ch = (unsigned char)*in;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~')
			out[o++] = (char)ch;
		else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
}

/* Who a grant speaks for, for logs: the key's label or "local admin USER". */
static const char *client_grant_who(const struct weblink_grant *g, char *buf, size_t size)
{
	if (g->principal)
		snprintf(buf, size, "%s", g->principal->label);
	else
		snprintf(buf, size, "local admin %s", g->admin);
	return buf;
}

/*
 * A web link's console on a gateway's broker (--no-consoles): a console of a
 * host behind the gateway, which only that host knows.  Any name of 1..512
 * printable ASCII bytes is taken as given (the host resolves it and decides
 * the rights when the session is used); a key whose line grants no console
 * learns nothing more than on a host.  NULL with the error sent.
 */
static const char *client_gateway_console(struct client *c, json_t *req)
{
	json_t *jname = json_object_get(req, "console");
	const char *name = json_string_value(jname);
	size_t len = name ? json_string_length(jname) : 0;
	char esc[256];

	if (!name) {
		client_error(c, PROTO_E_BAD_REQUEST, "request needs a \"console\" name");
		return NULL;
	}
	for (size_t i = 0; i < len; i++)
		if (name[i] < 0x20 || name[i] > 0x7e)
			len = 0;
	if (len == 0 || len >= WEBLINK_CONSOLE_MAX ||
	    (c->principal && (!c->principal->key || c->principal->key->entry->n_rules == 0))) {
		client_error(c, PROTO_E_UNKNOWN_CONSOLE, "no console named '%s'",
			     log_escape(name, strlen(name), esc, sizeof(esc)));
		return NULL;
	}
	return name;
}

/*
 * `web-link` {console, ro}: a one-time link for a console this connection
 * may use, for its principal (or local admin), narrowed to ro if asked.
 * Only the link's hash is kept (weblink.h); the log names its tag.
 */
static void client_do_web_link(struct client *c, json_t *req)
{
	json_t *jro = json_object_get(req, "ro");
	struct weblink_grant g = {};
	uint8_t secret[WEBLINK_SECRET_SIZE], hash[WEBLINK_HASH_SIZE];
	char token[WEBLINK_TEXT_LEN + 1], tag[WEBLINK_TAG_LEN + 1];
	char enc[3 * (WEBLINK_CONSOLE_MAX - 1) + 1];
	_cleanup_free_ char *url = NULL;
	struct console *con;
	const char *name;
	int r;

	if (jro && !json_is_boolean(jro)) {
		client_error(c, PROTO_E_BAD_REQUEST, "web-link's ro must be true or false");
		return;
	}
	/* A link would outlive the gateway's say over it (and its rights would be the key's). */
	if (c->principal && (c->principal->via || principal_is_gateway(c->principal))) {
		client_error(c, PROTO_E_DENIED, "web links cannot be minted through a gateway");
		return;
	}
	if (c->web || (!c->principal && !client_is_local_admin(c))) {
		client_error(c, PROTO_E_DENIED, "only a key's connection or a local admin may mint "
			     "a web link");
		return;
	}
	if (!c->env->weblink || !c->env->web_url || !*c->env->web_url) {
		client_error(c, PROTO_E_NOT_AVAILABLE, "ttyhubd has no --web-url: web links are off");
		return;
	}
	if (c->env->no_consoles) {
		name = client_gateway_console(c, req);
		if (!name)
			return;
	} else {
		con = client_lookup(c, req);
		if (!con)
			return;
		name = con->name;
	}
	g.ro = json_is_true(jro);
	snprintf(g.console, sizeof(g.console), "%s", name);
	if (c->principal) {
		g.principal = calloc(1, sizeof(*g.principal));
		r = g.principal ? principal_copy(c->principal, g.principal) : -ENOMEM;
		if (r < 0) {
			free(g.principal);
			client_error(c, PROTO_E_INTERNAL, "cannot mint a web link: %s", strerror(-r));
			return;
		}
	} else
		snprintf(g.admin, sizeof(g.admin), "%s", c->user);
	r = weblink_random(secret);
	if (r >= 0)
		r = weblink_mint(c->env->weblink, secret, &g, client_now_usec());
	weblink_grant_done(&g); /* empty if minted */
	if (r < 0) {
		client_error(c, PROTO_E_INTERNAL, "cannot mint a web link: %s", strerror(-r));
		return;
	}
	weblink_encode(secret, token);
	weblink_hash(secret, hash);
	weblink_tag(hash, tag);
	client_url_encode(name, enc, sizeof(enc));
	if (asprintf(&url, "%s#t=%s&c=%s", *c->env->web_url, token, enc) < 0)
		url = NULL;
	memset(token, 0, sizeof(token));
	memset(secret, 0, sizeof(secret));
	log_info("%s: web link %s for %s (%s), valid %llus", c->att.audit, tag, name,
		 json_is_true(jro) ? "ro" : "rw",
		 (unsigned long long)(c->env->weblink->link_ttl_usec / 1000000));
	if (!url || client_send_new(c, proto_msg_web_link(url, name,
			c->env->weblink->link_ttl_usec / 1000000)) < 0)
		client_error(c, PROTO_E_INTERNAL, "cannot queue the web link");
	if (url)
		memset(url, 0, strlen(url));
}

/*
 * `redeem` {token, from}: a front (no principal, no session) exchanges a
 * link's token for a web session.  Unknown, used and expired tokens get
 * the same answer, so a guesser learns nothing.
 */
static void client_do_redeem(struct client *c, json_t *req)
{
	json_t *jtoken = json_object_get(req, "token"), *jfrom = json_object_get(req, "from");
	uint8_t secret[WEBLINK_SECRET_SIZE];
	char text[WEBLINK_TEXT_LEN + 1], tag[WEBLINK_TAG_LEN + 1], stag[WEBLINK_TAG_LEN + 1];
	char who[POLICY_LABEL_MAX + 16], you[CONSOLE_LABEL_MAX], from[POLICY_FROM_MAX + 8];
	const struct weblink_entry *e;
	struct console *con = NULL;
	bool may_write;
	int r;

	if (!c->front || c->principal || c->web) {
		client_error(c, PROTO_E_DENIED, "only a front may redeem a web link");
		return;
	}
	if (!json_is_string(jtoken) || (jfrom && !json_is_string(jfrom))) {
		client_error(c, PROTO_E_BAD_REQUEST, "redeem needs \"token\" (a string) and "
			     "\"from\" (an address)");
		return;
	}
	log_escape(jfrom ? json_string_value(jfrom) : "?", jfrom ? strlen(json_string_value(jfrom)) : 1,
		   from, sizeof(from));
	weblink_tag_text(json_string_value(jtoken), tag);
	r = weblink_random(secret);
	if (r < 0) {
		client_error(c, PROTO_E_INTERNAL, "cannot make a web session: %s", strerror(-r));
		return;
	}
	e = c->env->weblink ? weblink_redeem(c->env->weblink, json_string_value(jtoken), secret,
					     client_now_usec(), &r)
			    : (r = -EPERM, NULL);
	if (!e) {
		memset(secret, 0, sizeof(secret));
		if (r == -ENOSPC) {
			log_warning("%s: web link %s from %s: too many web sessions", c->att.audit,
				    tag, from);
			client_error(c, PROTO_E_NOT_AVAILABLE, "too many web sessions; try later");
			return;
		}
		log_notice("%s: web link %s from %s refused (used, expired or unknown)",
			   c->att.audit, tag, from);
		client_error(c, PROTO_E_DENIED, "this link is not valid (used, expired or unknown)");
		return;
	}
	weblink_encode(secret, text);
	memset(secret, 0, sizeof(secret));
	weblink_tag(e->hash, stag);
	if (e->grant.principal)
		snprintf(you, sizeof(you), "%.70s (web %s)", e->grant.principal->comment,
			 e->grant.principal->fingerprint);
	else
		snprintf(you, sizeof(you), "local admin %.70s (web)", e->grant.admin);
	/* What it may do there now: the narrowing, then the principal's current right. */
	may_write = !e->grant.ro;
	if (may_write && e->grant.principal && !c->env->no_consoles) {
		may_write = false;
		if (registry_lookup(c->env->registry, e->grant.console, &con) >= 0) {
			const struct access_console ac = console_access(con);

			may_write = policy_right(*c->env->policy, e->grant.principal, &ac) ==
				    ACCESS_RW;
		}
	}
	log_info("%s: web link %s redeemed from %s: web session %s for %s on %s (%s), valid %llus",
		 c->att.audit, tag, from, stag, client_grant_who(&e->grant, who, sizeof(who)),
		 e->grant.console, may_write ? "rw" : "ro",
		 (unsigned long long)weblink_expires_in(e, client_now_usec()));
	if (client_send_new(c, proto_msg_redeemed(text, e->grant.console, may_write,
						  weblink_expires_in(e, client_now_usec()),
						  you)) < 0)
		client_error(c, PROTO_E_INTERNAL, "cannot queue the web session");
	memset(text, 0, sizeof(text));
}

/*
 * Requests by type.  needs_hello: only after `hello`; needs_attach: only
 * while attached (else `not-attached`).  Rights are checked by each handler,
 * which knows the console they concern.
 */
static const struct {
	enum proto_msg type;
	bool needs_hello, needs_attach;
	void (*fn)(struct client *c, json_t *req);
} handlers[] = {
	{ PROTO_HELLO, false, false, client_do_hello },
	{ PROTO_AUTHORIZE, true, false, client_do_authorize },
	{ PROTO_LIST, true, false, client_do_list },
	{ PROTO_ATTACH, true, false, client_do_attach },
	{ PROTO_TAKE, true, true, client_do_take },
	{ PROTO_RELEASE, true, true, client_do_release },
	{ PROTO_WHO, true, false, client_do_who },
	{ PROTO_REPLAY, true, true, client_do_replay },
	{ PROTO_BREAK, true, false, client_do_break },
	{ PROTO_RESIZE, true, false, client_do_resize },
	{ PROTO_DETACH, true, true, client_do_detach },
	{ PROTO_OUTPUT, true, false, client_do_output },
	{ PROTO_WEB_LINK, true, false, client_do_web_link },
	{ PROTO_REDEEM, true, false, client_do_redeem },
	{ PROTO_PING, true, false, client_do_ping },
	{ PROTO_ACTION, true, false, client_do_action },
};

static void client_handle_control(struct client *c, const struct frame *f)
{
	json_t *req = NULL;
	const char *type;
	enum proto_msg m;
	char err[256];

	if (proto_decode_control(f->payload, f->len, &req, &type, err, sizeof(err)) < 0) {
		client_error(c, PROTO_E_BAD_REQUEST, "%s", err);
		return;
	}
	m = proto_msg_from_string(type);
	if (!c->hello && m != PROTO_HELLO) {
		client_error(c, PROTO_E_BAD_REQUEST, "the first request must be \"hello\"");
		client_kill(c, "no hello");
		json_decref(req);
		return;
	}
	for (size_t i = 0; i < ELEMENTSOF(handlers); i++) {
		if (handlers[i].type != m)
			continue;
		if (handlers[i].needs_attach && !c->att.console)
			client_error(c, PROTO_E_NOT_ATTACHED, "not attached to a console");
		else
			handlers[i].fn(c, req);
		json_decref(req);
		return;
	}
	/* Unknown, or a message only the broker sends. */
	client_error(c, PROTO_E_BAD_REQUEST, "unknown request \"%s\"",
		     log_escape(type, strlen(type), err, sizeof(err)));
	json_decref(req);
}

/*
 * The access file changed (server_policy_reload()): bind the principal to
 * the new policy and apply what it says now.  Gone: `revoked` and closed.
 * No right left on the attached console: detached.  Only ro while writing:
 * demoted to a watcher.
 */
void client_policy_changed(struct client *c)
{
	struct console *con = c->att.console;
	enum access_right right;

	if (!c->principal || c->dead)
		return;
	if (policy_bind(*c->env->policy, c->principal) < 0) {
		/* A gateway's connection, speaking for a user or not, goes with its line or option. */
		bool via = c->principal->via || c->principal->gateway;

		log_notice("%s: %s removed from the access file (or from= no longer admits it); "
			   "closing", c->att.audit, via ? "the gateway's key (or its gateway option)"
							: "key");
		client_error(c, PROTO_E_REVOKED, via ? "the gateway's key was removed from the "
			     "access file" : "your key was removed from the access file");
		/* Revoked, not dropped: its writer's lease must not bring anyone back. */
		if (con)
			console_forget_lease(con, &c->att);
		client_flush(c);
		client_kill(c, "key revoked");
		return;
	}
	if (!con)
		return;
	right = client_right(c, con);
	c->att.may_break = client_may_break(c, con);
	if (right == ACCESS_NONE) {
		char text[REGISTRY_NAME_MAX + 64];

		snprintf(text, sizeof(text), "your key no longer has access to %s", con->name);
		log_notice("%s: %s", c->att.audit, text);
		client_detach(c, DETACH_REVOKED, text);
	} else if (right == ACCESS_RO && c->att.right == ACCESS_RW) {
		char text[REGISTRY_NAME_MAX + 64];

		c->att.right = right;
		snprintf(text, sizeof(text), "your key may now only watch %s", con->name);
		console_release(con, &c->att);
		client_notice(c, text);
		log_notice("%s: %s", c->att.audit, text);
	}
	c->att.right = c->att.console ? right : ACCESS_NONE;
	client_flush(c);
}

/* Writer bytes: hand to the console; pause reading when it cannot take them all. */
static bool client_handle_data(struct client *c, const uint8_t *data, size_t len)
{
	size_t n;

	if (!c->att.console) {
		/* Once: a front may still be sending what was typed before the detach. */
		if (!c->att.ro_hint_sent) {
			c->att.ro_hint_sent = true;
			client_error(c, PROTO_E_NOT_ATTACHED, "input while not attached is discarded");
		}
		return true;
	}
	/* c->att.right: a writer demoted by the access file has been released already. */
	if (c->att.role != CONSOLE_WRITER || c->att.right < ACCESS_RW) {
		if (!c->att.ro_hint_sent) {
			c->att.ro_hint_sent = true;
			client_error(c, PROTO_E_READ_ONLY,
				     "you are watching %s read-only; your input is discarded",
				     c->att.console->name);
		}
		return true;
	}
	n = console_input(c->att.console, &c->att, data, len);
	if (n == len)
		return true;
	c->pending = data + n;
	c->pending_len = len - n;
	c->att.input_paused = true;
	client_update_events(c);
	return false;
}

/* Process complete frames; stops early when writer input has to wait. */
static void client_process(struct client *c)
{
	struct frame f;
	int r;

	if (c->pending_len > 0 && !client_handle_data(c, c->pending, c->pending_len))
		return;
	c->pending_len = 0;
	while (!c->dead && (r = frame_reader_next(&c->in, &f)) != 0) {
		if (r < 0) {
			client_error(c, PROTO_E_BAD_FRAME, r == -EMSGSIZE
							     ? "frame larger than %d bytes"
							     : "malformed frame (unknown type %d)",
				     r == -EMSGSIZE ? FRAME_MAX : c->in.buf[c->in.off]);
			client_flush(c);
			client_kill(c, "malformed frame");
			return;
		}
		if (!c->hello && f.type != FRAME_CONTROL) {
			client_error(c, PROTO_E_BAD_REQUEST, "the first request must be \"hello\"");
			client_flush(c);
			client_kill(c, "data before hello");
			return;
		}
		if (f.type == FRAME_OUTPUT) {
			/* Output frames only go to clients: a peer sending one is confused. */
			client_error(c, PROTO_E_BAD_FRAME, "output frames are sent by the broker only");
			client_flush(c);
			client_kill(c, "output frame from a client");
			return;
		}
		if (f.type == FRAME_CONTROL)
			client_handle_control(c, &f);
		else if (!client_handle_data(c, f.payload, f.len))
			break;
	}
	client_flush(c);
}

void client_resume_input(struct client *c)
{
	if (c->dead)
		return;
	if (c->att.role != CONSOLE_WRITER || !c->att.console)
		c->pending_len = 0; /* no longer the writer: drop what was queued */
	c->att.input_paused = false;
	client_process(c);
	if (!c->att.input_paused)
		client_update_events(c);
}

static void client_on_io(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct client *c = userdata;

	if (revents & EPOLLOUT)
		client_flush(c);
	if (!c->dead && (revents & EPOLLIN) && !c->att.input_paused) {
		ssize_t n = frame_reader_fill(&c->in, c->fd);

		if (n < 0) {
			client_kill(c, "read failed");
			return;
		}
		client_process(c);
		if (c->in.eof && !c->dead) {
			client_kill(c, "end of file");
			return;
		}
	}
	if (!c->dead && (revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN))
		client_kill(c, "hang-up");
}

/* -------------------------------------------------------------------------- */
/* The console's view of this client (console_attachment_ops) */

static struct client *client_of(struct console_attachment *a)
{
	return (struct client *)((char *)a - offsetof(struct client, att));
}

static void client_att_notice(struct console_attachment *a, const char *text)
{
	client_notice(client_of(a), text);
}

static void client_att_send(struct console_attachment *a, json_t *msg)
{
	client_send_new(client_of(a), msg);
}

static void client_att_flush(struct console_attachment *a)
{
	client_flush(client_of(a));
}

static void client_att_resume_input(struct console_attachment *a)
{
	client_resume_input(client_of(a));
}

static void client_att_who(const struct console_attachment *a, bool with_local,
			   struct proto_who_client *ret)
{
	const struct client *c = client_of((struct console_attachment *)a);
	/* A local peer's login and pid: for a local admin's eyes only. */
	bool local = with_local && !c->principal;

	ret->id = c->id;
	ret->since = (int64_t)(c->since_usec / 1000000);
	ret->login = local ? c->user : NULL;
	ret->pid = local ? (int)c->pid : -1;
}

static const struct console_attachment_ops client_attachment_ops = {
	.notice = client_att_notice,
	.send = client_att_send,
	.flush = client_att_flush,
	.resume_input = client_att_resume_input,
	.who = client_att_who,
};
