/* SPDX-License-Identifier: MIT */
/*
 * A connection to ttyhubd as a front (see front.h).  Requests are built by
 * message.h's proto_req_*() and queued here; broker messages are decoded
 * once into struct front_event, so every front switches over the same
 * events.  The resume bookkeeping (struct front_book) is updated here as
 * the events go out, so every front resumes the same way; the gap between
 * front_lost() and the re-attach's answer is a small state machine
 * (enum front_link) that holds keystrokes and refuses requests.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "front.h"
#include "listing.h"
#include "log.h"
#include "message.h"
#include "util.h"

int front_connect(const char *path, bool nonblock)
{
	return unix_connect(path, nonblock);
}

int front_init(struct front *f, int fd, size_t out_max, const uint8_t prefix[2])
{
	int r;

	*f = (struct front){ .fd = fd, .link = FRONT_LIVE };
	f->book.mode = ATTACH_RW;
	f->book.replay = PROTO_REPLAY_DEFAULT;
	escape_init(&f->esc, prefix ? prefix[0] : ESCAPE_DEFAULT_PREFIX0,
		    prefix ? prefix[1] : ESCAPE_DEFAULT_PREFIX1);
	r = frame_reader_init(&f->in);
	if (r < 0)
		return r;
	r = obuf_init(&f->out, out_max);
	if (r < 0) {
		frame_reader_done(&f->in);
		return r;
	}
	return 0;
}

void front_done(struct front *f)
{
	frame_reader_done(&f->in);
	obuf_done(&f->out);
	json_decref(f->list);
	json_decref(f->msg);
	*f = (struct front){ .fd = -EBADF };
}

/* Lines the replay escape command asks for. */
#define FRONT_REPLAY_LINES 20

/* Queue msg (a new reference, or NULL when it could not be built) and drop it. */
static int front_queue(struct front *f, json_t *msg)
{
	int r;

	if (!msg)
		return -EINVAL; /* jansson refuses strings that are not UTF-8 */
	r = proto_put_control(&f->out, msg);
	json_decref(msg);
	return r;
}

/* A request of the user's: none while the broker is away (it would precede the re-attach). */
static int front_put(struct front *f, json_t *msg)
{
	if (f->link != FRONT_LIVE) {
		json_decref(msg);
		return -ENOTCONN;
	}
	return front_queue(f, msg);
}

/* Copy s into a bounded book field; false (field untouched) when it does not fit. */
static bool front_copy(char *dst, size_t size, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!s || n >= size)
		return false;
	memcpy(dst, s, n + 1);
	return true;
}

int front_hello(struct front *f, const char *client, const struct front_principal *p)
{
	return front_put(f, proto_req_hello(client, p ? p->key : NULL, p ? p->from : NULL,
					    p ? p->grant : NULL, p ? p->comment : NULL));
}

int front_authorize(struct front *f, const struct front_principal *p)
{
	return front_put(f, proto_req_authorize(p->key, p->from));
}

int front_ping(struct front *f)
{
	return front_put(f, proto_req_ping());
}

int front_web_link(struct front *f, const char *console, bool ro)
{
	return front_put(f, proto_req_web_link(console, ro));
}

int front_redeem(struct front *f, const char *token, const char *from)
{
	return front_put(f, proto_req_redeem(token, from));
}

int front_hello_session(struct front *f, const char *client, const char *session,
			const char *from)
{
	return front_put(f, proto_req_hello_session(client, session, from));
}

/* Remember what was asked, for a re-attach; a new attach starts a new position. */
static void front_book_asked(struct front *f, const char *console, enum attach_mode mode,
			     long replay)
{
	struct front_book *b = &f->book;

	*b = (struct front_book){ .mode = mode, .replay = replay, .asked = true };
	(void)front_copy(b->console, sizeof(b->console), console); /* checked by the caller */
}

int front_attach(struct front *f, const char *console, enum attach_mode mode, long replay)
{
	int r;

	if (!attach_mode_to_string(mode) || !console)
		return -EINVAL;
	if (strlen(console) >= FRONT_CONSOLE_MAX)
		return -ENAMETOOLONG;
	r = front_put(f, proto_req_attach(console, mode, replay));
	if (r < 0)
		return r;
	front_book_asked(f, console, mode, replay);
	return 0;
}

int front_attach_resume(struct front *f, const char *console, enum attach_mode mode, long replay,
			uint64_t epoch, uint64_t offset, const char *lease)
{
	const struct proto_resume res = { .epoch = epoch, .offset = offset, .lease = lease };
	int r;

	if (!attach_mode_to_string(mode) || !console || epoch == 0 || offset > INT64_MAX)
		return -EINVAL;
	if (strlen(console) >= FRONT_CONSOLE_MAX || (lease && strlen(lease) > PROTO_LEASE_STRLEN))
		return -ENAMETOOLONG;
	r = front_put(f, proto_req_attach_resume(console, mode, replay, &res));
	if (r < 0)
		return r;
	front_book_asked(f, console, mode, replay);
	f->book.positioned = true;
	f->book.epoch = epoch;
	f->book.offset = offset;
	if (lease)
		(void)front_copy(f->book.lease, sizeof(f->book.lease), lease);
	return 0;
}

int front_output(struct front *f, const char *console, bool has_start, int64_t start,
		 unsigned max)
{
	return front_put(f, proto_req_output(console, has_start, start, max));
}

int front_list(struct front *f, const char *console)
{
	return front_put(f, proto_req_list(console));
}

int front_who(struct front *f, const char *console)
{
	return front_put(f, proto_req_who(console));
}

int front_break(struct front *f, const char *console)
{
	return front_put(f, proto_req_break(console));
}

int front_action(struct front *f, const char *console, const char *action, const char *key)
{
	return front_put(f, proto_req_action(console, action, key));
}

int front_detach(struct front *f)
{
	return front_put(f, proto_req_detach());
}

int front_resize(struct front *f, unsigned cols, unsigned rows)
{
	return front_put(f, proto_req_resize(cols, rows));
}

int front_escape_request(struct front *f, enum escape_cmd cmd)
{
	switch (cmd) {
	case ESCAPE_DETACH:
		return front_detach(f);
	case ESCAPE_FORCE:
	case ESCAPE_ATTACH_RW:
		return front_put(f, proto_req_take(cmd == ESCAPE_FORCE));
	case ESCAPE_SPY:
		return front_put(f, proto_req_release());
	case ESCAPE_WHO:
		return front_who(f, NULL);
	case ESCAPE_REPLAY:
		return front_put(f, proto_req_replay(FRONT_REPLAY_LINES));
	case ESCAPE_BREAK:
		return front_break(f, NULL);
	case ESCAPE_SYSRQ:
		if (!f->esc.arg)
			break; /* cancelled: front_escape_text() says so */
		return front_action(f, NULL, "sysrq", (const char[]){ (char)f->esc.arg, '\0' });
	case ESCAPE_NMI:
		return front_action(f, NULL, "nmi", NULL);
	case ESCAPE_RESET:
		return front_action(f, NULL, "reset", NULL);
	case ESCAPE_POWERDOWN:
		return front_action(f, NULL, "powerdown", NULL);
	case ESCAPE_CONFIRM:
	case ESCAPE_CANCEL:
	case ESCAPE_HELP:
	case ESCAPE_NONE:
		break;
	}
	return -EOPNOTSUPP;
}

size_t front_escape_text(const struct front *f, enum escape_cmd cmd, char *buf, size_t size)
{
	const char *what = f->esc.arg == ESCAPE_RESET ? "reset" : "powerdown";
	const char *name = f->book.console[0] ? f->book.console : "this console";
	char esc[FRONT_CONSOLE_MAX * 4];
	int n;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	/* The name came from the broker or the user: shown escaped. */
	log_sanitize(name, strlen(name), esc, sizeof(esc));
	if (cmd == ESCAPE_CONFIRM)
		n = snprintf(buf, size, "%s %s? [y/N]", what, esc);
	else if (cmd == ESCAPE_CANCEL)
		n = snprintf(buf, size, "%s cancelled", what);
	else if (cmd == ESCAPE_SYSRQ && !f->esc.arg)
		n = snprintf(buf, size, "sysrq cancelled: the key must be one of 0-9, a-z");
	else
		return 0;
	return n < 0 ? 0 : MIN((size_t)n, size - 1);
}

/* front_keys() while the broker is away: into the held buffer, the overflow counted. */
static size_t front_hold(struct front *f, const uint8_t *data, size_t len, bool may_write,
			 size_t *ret_dropped, enum escape_cmd *ret_cmd)
{
	size_t used = 0;

	while (used < len && *ret_cmd == ESCAPE_NONE) {
		uint8_t out[4096 + 2];
		size_t n = MIN(len - used, sizeof(out) - 2), outlen, keep;

		used += escape_feed(&f->esc, data + used, n, out, &outlen, ret_cmd);
		if (!may_write) {
			*ret_dropped += outlen;
			continue;
		}
		keep = MIN(outlen, sizeof(f->held) - f->held_len);
		memcpy(f->held + f->held_len, out, keep);
		f->held_len += keep;
		f->held_over += outlen - keep;
		*ret_dropped += outlen - keep;
	}
	return used;
}

size_t front_keys(struct front *f, const uint8_t *data, size_t len, bool may_write, size_t reserve,
		  size_t *ret_dropped, enum escape_cmd *ret_cmd)
{
	size_t used = 0;

	*ret_cmd = ESCAPE_NONE;
	*ret_dropped = 0;
	if (f->link != FRONT_LIVE)
		return front_hold(f, data, len, may_write, ret_dropped, ret_cmd);
	/* Each chunk may release two held prefix bytes and needs one frame header. */
	while (used < len && *ret_cmd == ESCAPE_NONE &&
	       obuf_room(&f->out) > FRAME_HEADER + 2 + reserve) {
		uint8_t out[4096 + 2];
		size_t n = MIN(MIN(len - used, obuf_room(&f->out) - FRAME_HEADER - 2 - reserve),
			       sizeof(out) - 2);
		size_t outlen;

		used += escape_feed(&f->esc, data + used, n, out, &outlen, ret_cmd);
		if (outlen == 0)
			continue;
		if (may_write)
			(void)proto_put_data(&f->out, out, outlen); /* fits: room was checked */
		else
			*ret_dropped += outlen;
	}
	return used;
}

ssize_t front_fill(struct front *f)
{
	return frame_reader_fill(&f->in, f->fd);
}

/*
 * Keep f->out_rest, the unsent tail of a frame the socket took only part
 * of, so front_lost() knows where whole frames start.  p and len are the
 * queue before the flush that wrote n bytes: consuming leaves the bytes in
 * place and nothing is appended meanwhile, so the headers are still there.
 */
static void front_track(struct front *f, const uint8_t *p, size_t len, size_t n)
{
	size_t pos;

	if (n < f->out_rest) {
		f->out_rest -= n;
		return;
	}
	pos = f->out_rest;
	while (pos < n && pos + FRAME_HEADER <= len) {
		/* The queue holds whole frames from pos on: read the length. */
		size_t plen = (size_t)p[pos + 1] << 24 | (size_t)p[pos + 2] << 16 |
			      (size_t)p[pos + 3] << 8 | p[pos + 4];

		pos += FRAME_HEADER + plen;
	}
	f->out_rest = pos > n ? pos - n : 0;
}

ssize_t front_flush(struct front *f)
{
	const uint8_t *p;
	size_t len;
	ssize_t n;

	if (obuf_len(&f->out) == 0)
		return 0;
	p = obuf_data(&f->out);
	len = obuf_len(&f->out);
	n = obuf_flush(&f->out, f->fd);
	/* obuf_flush() may have written some before an error: count what left the queue. */
	front_track(f, p, len, len - obuf_len(&f->out));
	if (n < 0)
		return n;
	return (ssize_t)obuf_len(&f->out);
}

/* Append keystrokes to the held buffer; what does not fit is counted. */
static void front_hold_bytes(struct front *f, const uint8_t *data, size_t len)
{
	size_t keep = MIN(len, sizeof(f->held) - f->held_len);

	memcpy(f->held + f->held_len, data, keep);
	f->held_len += keep;
	f->held_over += len - keep;
}

void front_lost(struct front *f)
{
	const uint8_t *p = obuf_data(&f->out);
	size_t len = obuf_len(&f->out), pos = f->out_rest;

	/*
	 * Whole data frames still queued never reached the broker: hold their
	 * keystrokes again.  (A frame the socket took part of is incomplete on
	 * the broker's side, which drops it with the connection; its head is
	 * gone from the queue, so it cannot be rebuilt.)
	 */
	while (pos < len) {
		struct frame fr;
		int r = frame_parse(p + pos, len - pos, &fr);

		if (r <= 0)
			break; /* not reached: the queue holds the frames we built */
		if (fr.type == FRAME_DATA)
			front_hold_bytes(f, fr.payload, fr.len);
		pos += (size_t)r;
	}
	obuf_consume(&f->out, len);
	f->out_rest = 0;
	f->in.len = f->in.off = 0;
	f->in.eof = false;
	f->broken = false;
	json_decref(f->list);
	f->list = NULL;
	f->fd = -EBADF;
	f->link = FRONT_LOST;
}

int front_reconnect(struct front *f, int fd, const char *client, const struct front_principal *p)
{
	const struct front_book *b = &f->book;
	enum attach_mode mode;
	int r;

	if (f->link != FRONT_LOST)
		front_lost(f);
	f->fd = fd;
	r = front_queue(f, proto_req_hello(client, p ? p->key : NULL, p ? p->from : NULL,
					   p ? p->grant : NULL, p ? p->comment : NULL));
	if (r < 0)
		return r;
	if (!b->asked) {
		f->link = FRONT_LIVE;
		return 0;
	}
	/* Write again if we wrote (the lease proves it); never take over by force again. */
	mode = b->writer ? ATTACH_RW : b->mode == ATTACH_FORCE ? ATTACH_RW : b->mode;
	if (b->positioned) {
		const struct proto_resume res = {
			.epoch = b->epoch,
			.offset = b->offset,
			.lease = b->lease[0] ? b->lease : NULL,
		};

		r = front_queue(f, proto_req_attach_resume(b->console, mode, b->replay, &res));
	} else
		r = front_queue(f, proto_req_attach(b->console, mode, b->replay));
	if (r < 0)
		return r;
	f->link = FRONT_RESUMING;
	return 0;
}

bool front_is_shutdown(const struct front_event *e)
{
	return e->type == FRONT_EV_DETACHED && e->reason == DETACH_SHUTDOWN;
}

size_t front_discard_held(struct front *f)
{
	size_t n = f->held_len + f->held_over;

	f->held_len = f->held_over = 0;
	return n;
}

void front_backoff_start(struct front_backoff *b, uint64_t now)
{
	/*
	 * The first attempt at once: under systemd the broker's listening socket
	 * outlives the process, so a connect now waits in its queue for the next
	 * ttyhubd instead of 50 ms here.
	 */
	*b = (struct front_backoff){ .since = now, .delay = 0 };
}

bool front_backoff_next(struct front_backoff *b, uint64_t now, uint64_t *ret_delay)
{
	uint64_t left;

	if (now < b->since)
		now = b->since; /* a clock that is not monotonic: count from the start */
	if (now - b->since >= FRONT_GIVE_UP_USEC)
		return false;
	left = b->since + FRONT_GIVE_UP_USEC - now;
	*ret_delay = MIN(b->delay, left);
	b->delay = b->delay ? MIN(b->delay * 2, FRONT_BACKOFF_MAX_USEC) : FRONT_BACKOFF_MIN_USEC;
	b->tries++;
	return true;
}

size_t front_give_up_text(char *buf, size_t size)
{
	int n;

	if (size == 0)
		return 0;
	n = snprintf(buf, size, "ttyhubd did not come back within %llu s; giving up",
		     (unsigned long long)(FRONT_GIVE_UP_USEC / 1000000));
	return n < 0 ? 0 : MIN((size_t)n, size - 1);
}

/* s as one shell word: as it is when every byte is harmless, else in single quotes. */
static void front_shell_word(const char *s, char *buf, size_t size)
{
	size_t o = 0;
	bool plain = *s != '\0';

	for (const char *c = s; *c; c++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			    "._-+=:@,/%", *c))
			plain = false;
	if (plain) {
		snprintf(buf, size, "%s", s);
		return;
	}
	if (size < 3) {
		if (size > 0)
			buf[0] = '\0';
		return;
	}
	buf[o++] = '\'';
	for (const char *c = s; *c && o + 5 < size; c++) {
		if (*c == '\'') {
			memcpy(buf + o, "'\\''", 4);
			o += 4;
		} else
			buf[o++] = *c;
	}
	buf[o++] = '\'';
	buf[o] = '\0';
}

size_t front_resume_hint(const struct front *f, enum front_hint_style style, const char *host,
			 unsigned port, char *buf, size_t size)
{
	const struct front_book *b = &f->book;
	char epoch[PROTO_EPOCH_STRLEN + 1], word[2 * FRONT_CONSOLE_MAX + 600], p[16] = "";
	char user[FRONT_CONSOLE_MAX + 64 + 256];
	int n;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	if (!b->positioned || !b->console[0])
		return 0;
	proto_epoch_to_string(b->epoch, epoch);
	if (style == FRONT_HINT_SSH) {
		snprintf(user, sizeof(user), "%s%s+resume=%s:%" PRIu64 "@%s", b->console,
			 b->mode == ATTACH_RO ? "+ro" : "", epoch, b->offset, host ? host : "HOST");
		front_shell_word(user, word, sizeof(word));
		if (port != 0 && port != 22)
			snprintf(p, sizeof(p), "-p %u ", port);
		n = snprintf(buf, size, "to continue where you left off: ssh %s%s", p, word);
	} else {
		front_shell_word(b->console, word, sizeof(word));
		n = snprintf(buf, size,
			     "to continue where you left off: ttyhub attach %s --resume %s:%" PRIu64
			     "%s",
			     word, epoch, b->offset, b->mode == ATTACH_RO ? " --ro" : "");
	}
	return n < 0 ? 0 : MIN((size_t)n, size - 1);
}

static const char *front_str(json_t *msg, const char *key)
{
	return json_string_value(json_object_get(msg, key));
}

/* The broker's verdict in an `access` member; rw when absent (see front.h). */
static enum attach_mode front_access(json_t *msg)
{
	return streq_opt(front_str(msg, "access"), "ro") ? ATTACH_RO : ATTACH_RW;
}

/* A non-negative integer member; 0 when absent or of another type. */
static uint64_t front_uint(json_t *msg, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(msg, key));

	return v > 0 ? (uint64_t)v : 0;
}

/* The "epoch" member; 0 when absent or not an epoch. */
static uint64_t front_epoch(json_t *msg)
{
	uint64_t epoch;

	return proto_parse_epoch(front_str(msg, "epoch"), &epoch) < 0 ? 0 : epoch;
}

static enum front_resumed front_resumed(const char *s)
{
	if (streq_opt(s, "exact"))
		return FRONT_RESUMED_EXACT;
	if (streq_opt(s, "gap"))
		return FRONT_RESUMED_GAP;
	if (streq_opt(s, "restarted"))
		return FRONT_RESUMED_RESTARTED;
	return FRONT_RESUMED_NONE;
}

/* A lease as the broker spells it (32 hex digits); anything else is not kept. */
static const char *front_lease(json_t *msg)
{
	const char *s = front_str(msg, "lease");

	if (!s || strlen(s) != PROTO_LEASE_STRLEN || strspn(s, "0123456789abcdefABCDEF") !=
	    PROTO_LEASE_STRLEN)
		return NULL;
	return s;
}

/* Fill *e from a decoded message; false for a type a front does not act on. */
static bool front_decode(json_t *msg, const char *type, struct front_event *e)
{
	const char *role = front_str(msg, "role");

	*e = (struct front_event){ .msg = msg, .console = front_str(msg, "console"),
				   .reason = _DETACH_REASON_INVALID, .access = ATTACH_RW };
	e->writer = streq_opt(role, "writer");
	switch (proto_msg_from_string(type)) {
	case PROTO_HELLO:
		e->type = FRONT_EV_HELLO;
		e->you = front_str(msg, "you");
		return true;
	case PROTO_AUTHORIZED:
		e->type = FRONT_EV_AUTHORIZED;
		e->fingerprint = front_str(msg, "fingerprint");
		e->comment = front_str(msg, "comment");
		e->you = front_str(msg, "you");
		e->grant = front_str(msg, "grant");
		e->gateway = json_is_true(json_object_get(msg, "gateway"));
		return true;
	case PROTO_ATTACHED:
		e->type = FRONT_EV_ATTACHED;
		e->access = front_access(msg);
		e->may_break = json_is_true(json_object_get(msg, "break"));
		e->epoch = front_epoch(msg);
		e->end = front_uint(msg, "offset");
		e->lost = front_uint(msg, "lost");
		e->resumed = front_resumed(front_str(msg, "resumed"));
		return true;
	case PROTO_STATE:
		e->type = FRONT_EV_STATE;
		e->access = front_access(msg);
		return true;
	case PROTO_NOTICE:
		e->type = FRONT_EV_NOTICE;
		e->text = front_str(msg, "text");
		return true;
	case PROTO_WHO:
		e->type = FRONT_EV_WHO;
		return true;
	case PROTO_LIST:
		e->type = FRONT_EV_LIST;
		return true;
	case PROTO_BREAK_SENT:
		e->type = FRONT_EV_BREAK_SENT;
		return true;
	case PROTO_ACTION_DONE:
		e->type = FRONT_EV_ACTION_DONE;
		/* Shown on terminals: only the names and keys we know. */
		e->action = front_str(msg, "action");
		if (proto_action_from_string(e->action) < 0)
			e->action = NULL;
		e->key = front_str(msg, "key");
		if (!proto_sysrq_key_valid(e->key))
			e->key = NULL;
		return true;
	case PROTO_DETACHED:
		e->type = FRONT_EV_DETACHED;
		e->reason = detach_reason_from_string(front_str(msg, "reason"));
		e->text = front_str(msg, "text");
		return true;
	case PROTO_ERROR:
		e->type = FRONT_EV_ERROR;
		e->code = front_str(msg, "code");
		e->text = front_str(msg, "message");
		return true;
	case PROTO_WEB_LINK:
		e->type = FRONT_EV_WEB_LINK;
		e->url = front_str(msg, "url");
		e->expires_in = front_uint(msg, "expires_in");
		return true;
	case PROTO_REDEEMED:
		e->type = FRONT_EV_REDEEMED;
		e->session = front_str(msg, "session");
		e->access = front_access(msg);
		e->you = front_str(msg, "you");
		e->expires_in = front_uint(msg, "expires_in");
		return true;
	case PROTO_OUTPUT:
		e->type = FRONT_EV_OUTPUT;
		e->data = (const uint8_t *)front_str(msg, "contents");
		e->len = json_string_length(json_object_get(msg, "contents"));
		e->start = front_uint(msg, "start");
		e->end = front_uint(msg, "next");
		e->epoch = front_epoch(msg);
		e->more = json_is_true(json_object_get(msg, "more"));
		e->expired = json_is_true(json_object_get(msg, "expired"));
		e->lost = front_uint(msg, "lost");
		return true;
	default:
		return false; /* requests echoed back, or a newer broker's messages */
	}
}

/*
 * The re-attach was answered (attached, or an error refusing it): live
 * again.  The held keystrokes go out if we write, else they are dropped;
 * either way the event counts them.
 */
static void front_resumed_live(struct front *f, struct front_event *e)
{
	e->reconnected = true;
	f->link = FRONT_LIVE;
	if (e->type == FRONT_EV_ATTACHED && e->writer && f->held_len > 0 &&
	    proto_put_data(&f->out, f->held, f->held_len) == 0)
		e->keys_sent = f->held_len;
	else
		e->keys_dropped = f->held_len;
	e->keys_dropped += f->held_over;
	f->held_len = f->held_over = 0;
}

/* The bookkeeping a control event changes (front.h, struct front_book). */
static void front_book_event(struct front *f, struct front_event *e)
{
	struct front_book *b = &f->book;
	const char *lease = front_lease(e->msg);

	switch (e->type) {
	case FRONT_EV_ATTACHED:
		b->attached = true;
		(void)front_copy(b->console, sizeof(b->console), e->console);
		if (e->epoch != 0) {
			b->epoch = e->epoch;
			b->offset = e->end;
			b->positioned = true;
		}
		b->writer = e->writer;
		/* The broker gives the lease to the writer only: no lease, none kept. */
		if (!front_copy(b->lease, sizeof(b->lease), e->writer ? lease : NULL))
			b->lease[0] = '\0';
		if (f->link == FRONT_RESUMING)
			front_resumed_live(f, e);
		break;
	case FRONT_EV_STATE:
		b->writer = e->writer;
		if (!e->writer)
			b->lease[0] = '\0';
		else if (lease)
			(void)front_copy(b->lease, sizeof(b->lease), lease);
		break;
	case FRONT_EV_DETACHED:
		/* A requested detach ends the lease on the broker's side too. */
		if (e->reason == DETACH_REQUESTED) {
			b->lease[0] = '\0';
			b->writer = false;
		}
		break;
	case FRONT_EV_ERROR:
		if (f->link == FRONT_RESUMING)
			front_resumed_live(f, e);
		break;
	default:
		break;
	}
}

int front_next_event(struct front *f, struct front_event *ret)
{
	json_decref(f->msg);
	f->msg = NULL;
	for (;;) {
		struct frame fr;
		const char *type;
		json_t *msg;
		int r;

		if (f->broken)
			return -EPROTO; /* f->err still says why */
		r = frame_reader_next(&f->in, &fr);
		if (r == 0)
			return 0;
		if (r < 0) {
			snprintf(f->err, sizeof(f->err), "malformed frame");
			return -EPROTO;
		}
		if (fr.type == FRAME_DATA) {
			/* D is the writer's keystrokes, client -> broker only: a broken peer. */
			snprintf(f->err, sizeof(f->err), "data frame from the broker");
			f->broken = true;
			return -EPROTO;
		}
		if (fr.type == FRAME_OUTPUT) {
			uint64_t start, end;
			const uint8_t *data;
			size_t len;

			if (proto_parse_output(&fr, &start, &end, &data, &len) < 0) {
				snprintf(f->err, sizeof(f->err), "malformed output frame");
				return -EBADMSG;
			}
			*ret = (struct front_event){ .type = FRONT_EV_DATA, .data = data, .len = len,
						     .start = start, .end = end,
						     .reason = _DETACH_REASON_INVALID,
						     .access = ATTACH_RW };
			/* Resume where this frame ends (an empty one still advances). */
			f->book.offset = end;
			return 1;
		}
		if (proto_decode_control(fr.payload, fr.len, &msg, &type, f->err,
					 sizeof(f->err)) < 0)
			return -EBADMSG;
		if (proto_msg_from_string(type) == PROTO_LIST) {
			/* Long lists come in pieces: one event for the whole. */
			r = listing_collect(&f->list, msg);
			json_decref(msg);
			if (r < 0) {
				snprintf(f->err, sizeof(f->err), "bad console list: %s",
					 strerror(-r));
				return -EBADMSG;
			}
			if (r > 0)
				continue;
			msg = TAKE_PTR(f->list);
			type = "list"; /* the piece it pointed into is gone */
		}
		if (!front_decode(msg, type, ret)) {
			json_decref(msg);
			continue;
		}
		f->msg = msg;
		front_book_event(f, ret);
		return 1;
	}
}

int front_detach_status(enum detach_reason r)
{
	return r == DETACH_REQUESTED ? 0 : 1;
}

size_t front_line(const char *text, bool at_bol, bool crlf, char *buf, size_t size)
{
	char esc[1024];
	const char *eol = crlf ? "\r\n" : "\n";
	int n;

	if (size == 0)
		return 0;
	log_sanitize(text ? text : "", text ? strlen(text) : 0, esc, sizeof(esc));
	n = snprintf(buf, size, "%s[ttyhub] %s%s", at_bol ? "" : eol, esc, eol);
	if (n < 0) {
		buf[0] = '\0';
		return 0;
	}
	return MIN((size_t)n, size - 1);
}

/* "Ctrl-E c" for the default prefix. */
static void front_prefix_name(const uint8_t prefix[2], char *buf, size_t size)
{
	if (prefix[0] < 0x20)
		snprintf(buf, size, "Ctrl-%c %c", prefix[0] + '@', prefix[1]);
	else
		snprintf(buf, size, "%c %c", prefix[0], prefix[1]);
}

void front_attached_text(json_t *attached, const uint8_t prefix[2], char *buf, size_t size)
{
	const char *console = front_str(attached, "console");
	const char *role = front_str(attached, "role");
	const char *writer = front_str(attached, "writer");
	const char *vm = front_str(attached, "vm_state");
	json_t *open = json_object_get(attached, "guest_open");
	long long n = json_integer_value(json_object_get(attached, "clients"));
	char key[16], st[160];

	front_prefix_name(prefix, key, sizeof(key));
	if (!console)
		console = "?";
	/* One-line status: VM state, whether the guest listens, how many are attached. */
	snprintf(st, sizeof(st), "%s%s%s%s%lld attached", vm ? "VM " : "", vm ? vm : "",
		 vm ? ", " : "",
		 json_is_false(open) ? "guest has not opened this port, " : "", n);
	if (streq_opt(role, "writer"))
		snprintf(buf, size, "attached to %s read-write (%s); %s ? for help", console, st, key);
	else if (writer)
		snprintf(buf, size, "attached to %s read-only (%s); %s writes (%s f to take over)",
			 console, st, writer, key);
	else
		snprintf(buf, size, "attached to %s read-only (%s); nobody writes (%s a to write)",
			 console, st, key);
}

void front_readonly_hint(const uint8_t prefix[2], char *buf, size_t size)
{
	char key[16];

	front_prefix_name(prefix, key, sizeof(key));
	snprintf(buf, size, "read-only: your input is discarded; %s f takes write access, "
		 "%s a takes it if free", key, key);
}

/* The one line after a re-attach (front.h, front_event_text()). */
static size_t front_resume_text(const struct front_event *e, char *buf, size_t size)
{
	char keys[160] = "";
	int n;

	if (e->keys_dropped > 0)
		snprintf(keys, sizeof(keys), "%zu keystrokes typed while ttyhubd was away were "
			 "discarded (%s)", e->keys_dropped,
			 e->writer ? "more than the 4 KiB held" : "you no longer write");
	switch (e->resumed) {
	case FRONT_RESUMED_EXACT:
		n = snprintf(buf, size, "broker restarted, nothing lost%s%s",
			     keys[0] ? "; but " : "", keys);
		break;
	case FRONT_RESUMED_GAP:
	case FRONT_RESUMED_RESTARTED:
		/* The broker's notice right after says what was lost. */
		n = snprintf(buf, size, "%s", keys);
		break;
	default:
		/* A broker that does not resume: it replayed as for a new attach. */
		n = snprintf(buf, size, "broker restarted; reattached (it could not resume: output "
			     "may repeat)%s%s", keys[0] ? "; " : "", keys);
		break;
	}
	return n < 0 ? 0 : MIN((size_t)n, size - 1);
}

size_t front_event_text(const struct front *f, const struct front_event *e, char *buf,
			size_t size)
{
	int n = 0;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	switch (e->type) {
	case FRONT_EV_ATTACHED:
		if (e->reconnected)
			return front_resume_text(e, buf, size);
		front_attached_text(e->msg, f->esc.prefix, buf, size);
		return strlen(buf);
	case FRONT_EV_NOTICE:
		n = snprintf(buf, size, "%s", e->text ? e->text : "");
		break;
	case FRONT_EV_BREAK_SENT:
		n = snprintf(buf, size, "serial break sent");
		break;
	case FRONT_EV_ACTION_DONE:
		/* Everyone attached (us too) also hears the broker's notice saying who did it. */
		n = snprintf(buf, size, "%s%s%s done", e->action ? e->action : "action",
			     e->key ? " " : "", e->key ? e->key : "");
		break;
	case FRONT_EV_DETACHED:
		n = snprintf(buf, size, "detached: %s", e->text ? e->text : "");
		break;
	case FRONT_EV_ERROR:
		if (streq_opt(e->code, PROTO_E_READ_ONLY)) {
			front_readonly_hint(f->esc.prefix, buf, size);
			return strlen(buf);
		}
		n = snprintf(buf, size, "%s", e->text ? e->text : "error");
		break;
	default:
		return 0;
	}
	return n < 0 ? 0 : MIN((size_t)n, size - 1);
}

size_t front_format(const struct front *f, const struct front_event *e, bool at_bol, bool crlf,
		    char *buf, size_t size)
{
	char text[1024];

	if (front_event_text(f, e, text, sizeof(text)) == 0) {
		if (size > 0)
			buf[0] = '\0';
		return 0;
	}
	return front_line(text, at_bol, crlf, buf, size);
}
