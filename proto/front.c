/* SPDX-License-Identifier: MIT */
/*
 * A connection to ttyhubd as a front (see front.h).  Requests are built by
 * message.h's proto_req_*() and queued here; broker messages are decoded
 * once into struct front_event, so every front switches over the same
 * events.
 */
#include <errno.h>
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

	*f = (struct front){ .fd = fd };
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
static int front_put(struct front *f, json_t *msg)
{
	int r;

	if (!msg)
		return -EINVAL; /* jansson refuses strings that are not UTF-8 */
	r = proto_put_control(&f->out, msg);
	json_decref(msg);
	return r;
}

int front_hello(struct front *f, const char *client, const struct front_principal *p)
{
	return front_put(f, proto_req_hello(client, p ? p->key : NULL, p ? p->from : NULL));
}

int front_authorize(struct front *f, const struct front_principal *p)
{
	return front_put(f, proto_req_authorize(p->key, p->from));
}

int front_attach(struct front *f, const char *console, enum attach_mode mode, long replay)
{
	if (!attach_mode_to_string(mode))
		return -EINVAL;
	return front_put(f, proto_req_attach(console, mode, replay));
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
	case ESCAPE_HELP:
	case ESCAPE_NONE:
		break;
	}
	return -EOPNOTSUPP;
}

size_t front_keys(struct front *f, const uint8_t *data, size_t len, bool may_write, size_t reserve,
		  size_t *ret_dropped, enum escape_cmd *ret_cmd)
{
	size_t used = 0;

	*ret_cmd = ESCAPE_NONE;
	*ret_dropped = 0;
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

ssize_t front_flush(struct front *f)
{
	ssize_t n;

	if (obuf_len(&f->out) == 0)
		return 0;
	n = obuf_flush(&f->out, f->fd);
	if (n < 0)
		return n;
	return (ssize_t)obuf_len(&f->out);
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
		return true;
	case PROTO_ATTACHED:
		e->type = FRONT_EV_ATTACHED;
		e->access = front_access(msg);
		e->may_break = json_is_true(json_object_get(msg, "break"));
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
	default:
		return false; /* requests echoed back, or a newer broker's messages */
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

		r = frame_reader_next(&f->in, &fr);
		if (r == 0)
			return 0;
		if (r < 0) {
			snprintf(f->err, sizeof(f->err), "malformed frame");
			return -EPROTO;
		}
		if (fr.type == FRAME_DATA) {
			*ret = (struct front_event){ .type = FRONT_EV_DATA, .data = fr.payload,
						     .len = fr.len };
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

size_t front_event_text(const struct front *f, const struct front_event *e, char *buf,
			size_t size)
{
	int n = 0;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	switch (e->type) {
	case FRONT_EV_ATTACHED:
		front_attached_text(e->msg, f->esc.prefix, buf, size);
		return strlen(buf);
	case FRONT_EV_NOTICE:
		n = snprintf(buf, size, "%s", e->text ? e->text : "");
		break;
	case FRONT_EV_BREAK_SENT:
		n = snprintf(buf, size, "serial break sent");
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
