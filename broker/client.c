/* SPDX-License-Identifier: MIT */
/*
 * Broker client connection: framing, request dispatch and output
 * (see client.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "console.h"
#include "log.h"
#include "server.h"
#include "util.h"

#define CLIENT_DATA_CHUNK (60 * 1024)
#define CLIENT_LIST_ENVELOPE 256 /* bytes of a list piece besides its entries */

static void client_on_io(struct watch *w, int fd, uint32_t revents, void *userdata);

int client_new(struct server *s, int fd, struct client **ret)
{
	struct client *c;
	struct timespec ts;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->server = s;
	c->fd = fd;
	c->id = ++s->next_client_id;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->since_usec = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	snprintf(c->label, sizeof(c->label), "client %u", c->id);
	snprintf(c->audit, sizeof(c->audit), "client %u", c->id);
	r = frame_reader_init(&c->in);
	if (r >= 0)
		r = obuf_init(&c->out, CLIENT_OUT_MAX);
	if (r >= 0)
		r = watch_add(s->poller, fd, EPOLLIN, client_on_io, c, &c->io);
	if (r < 0) {
		c->fd = -EBADF; /* the caller still owns fd on failure */
		client_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	if (c->console)
		console_detach(c->console, c, true);
	c->io = watch_free(c->io);
	c->fd = safe_close(c->fd);
	frame_reader_done(&c->in);
	obuf_done(&c->out);
	free(c->list_after);
	free(c);
}

void client_kill(struct client *c, const char *why)
{
	if (c->dead)
		return;
	log_debug("%s: closing: %s", c->label, why);
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
	server_client_dead(c->server, c);
}

int client_send(struct client *c, json_t *msg)
{
	int r;

	if (c->dead)
		return -EPIPE;
	r = proto_put_control(&c->out, msg);
	if (r == -ENOBUFS)
		c->notices_dropped++;
	return r;
}

void client_notice(struct client *c, const char *text)
{
	json_t *msg = json_pack("{s:s, s:s}", "type", "notice", "text", text);

	if (msg)
		client_send(c, msg);
	json_decref(msg);
}

void client_error(struct client *c, const char *code, const char *fmt, ...)
{
	char text[512];
	json_t *msg;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	msg = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", text);
	if (msg)
		client_send(c, msg);
	json_decref(msg);
}

/*
 * Move ring bytes into the output queue while it has room (leaving
 * CLIENT_CONTROL_RESERVE for notices).  Replay (below sanitize_until) goes
 * through the sanitiser; live bytes go as they are.
 */
static void client_pull(struct client *c)
{
	struct console *con = c->console;
	uint64_t tail, head;

	if (!con)
		return;
	tail = ring_tail(&con->ring);
	head = ring_head(&con->ring);
	/*
	 * Skip ahead only when data can follow at once: a client that is not
	 * reading gets one notice with the total when it comes back, not one per
	 * guest write.
	 */
	if (obuf_room(&c->out) <= CLIENT_CONTROL_RESERVE + FRAME_HEADER + SANITIZE_SLACK)
		return;
	if (c->pos < tail) {
		/*
		 * Land with headroom: at the first line start past tail + ring/8.
		 * Landing exactly on the tail would lose a few bytes (and send a
		 * notice) on every guest write while the client catches up.
		 */
		uint64_t to = MIN(tail + con->ring.cap / 8, head), skip;
		char text[96];
		json_t *msg;
		struct iovec iov[2];
		size_t n = ring_peek(&con->ring, to, 4096, iov);
		const uint8_t *nl = memchr(iov[0].iov_base, '\n', iov[0].iov_len);

		if (nl)
			to += (uint64_t)(nl - (const uint8_t *)iov[0].iov_base) + 1;
		else if (n > iov[0].iov_len && (nl = memchr(iov[1].iov_base, '\n', iov[1].iov_len)))
			to += iov[0].iov_len + (uint64_t)(nl - (const uint8_t *)iov[1].iov_base) + 1;
		skip = to - c->pos;
		snprintf(text, sizeof(text), "%llu bytes dropped", (unsigned long long)skip);
		msg = json_pack("{s:s, s:s, s:I}", "type", "notice", "text", text, "dropped",
				(json_int_t)skip);
		if (msg && client_send(c, msg) >= 0)
			c->pos = to;
		json_decref(msg);
		if (c->pos < tail)
			return; /* no room even for the notice: try again later */
		sanitize_init(&c->san);
	}
	if (c->notices_dropped > 0 && obuf_room(&c->out) > CLIENT_CONTROL_RESERVE) {
		char text[96];
		unsigned n = c->notices_dropped;

		c->notices_dropped = 0;
		snprintf(text, sizeof(text), "%u notices dropped (client too slow)", n);
		client_notice(c, text);
	}
	while (c->pos < head) {
		size_t room = obuf_room(&c->out);
		size_t want, n;
		struct iovec iov[2];
		uint8_t *dst, hdr[FRAME_HEADER];
		bool replay = c->pos < c->sanitize_until;

		if (room <= CLIENT_CONTROL_RESERVE + FRAME_HEADER + SANITIZE_SLACK)
			break;
		want = MIN(room - CLIENT_CONTROL_RESERVE - FRAME_HEADER - SANITIZE_SLACK,
			   (size_t)CLIENT_DATA_CHUNK);
		if (replay)
			want = (size_t)MIN((uint64_t)want, c->sanitize_until - c->pos);
		n = ring_peek(&con->ring, c->pos, want, iov);
		if (n == 0)
			break;
		if (obuf_tail_span(&c->out, FRAME_HEADER + n + SANITIZE_SLACK, &dst) <
		    FRAME_HEADER + n + SANITIZE_SLACK)
			break; /* cannot happen: room was checked and the span compacts */
		if (replay) {
			size_t o = sanitize_feed(&c->san, iov[0].iov_base, iov[0].iov_len,
						 dst + FRAME_HEADER);
			o += sanitize_feed(&c->san, iov[1].iov_base, iov[1].iov_len,
					   dst + FRAME_HEADER + o);
			if (c->pos + n == c->sanitize_until)
				o += sanitize_finish(&c->san, dst + FRAME_HEADER + o);
			if (o > 0) {
				frame_header(hdr, FRAME_DATA, o);
				memcpy(dst, hdr, FRAME_HEADER);
				obuf_commit(&c->out, FRAME_HEADER + o);
			}
		} else {
			frame_header(hdr, FRAME_DATA, n);
			memcpy(dst, hdr, FRAME_HEADER);
			memcpy(dst + FRAME_HEADER, iov[0].iov_base, iov[0].iov_len);
			memcpy(dst + FRAME_HEADER + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
			obuf_commit(&c->out, FRAME_HEADER + n);
		}
		c->pos += n;
	}
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
		json_t *msg = registry_list_piece(&c->server->registry, c->list_after,
						  FRAME_MAX - CLIENT_LIST_ENVELOPE, &last);

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
	uint32_t ev = (c->input_paused ? 0 : EPOLLIN) | (c->want_write ? EPOLLOUT : 0);

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
	if (want != c->want_write) {
		c->want_write = want;
		client_update_events(c);
	}
}

/* -------------------------------------------------------------------------- */
/* Requests */

static struct console *client_lookup(struct client *c, json_t *req);

/* All consoles (in pieces: see client_list_more), or with "console": the one it names. */
static void client_reply_list(struct client *c, json_t *req)
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
	msg = json_pack("{s:s, s:[o], s:[]}", "type", "list", "consoles", console_list_json(con),
			"errors");
	if (!msg || client_send(c, msg) < 0)
		client_error(c, PROTO_E_INTERNAL, "cannot queue the console list");
	json_decref(msg);
}

static struct console *client_lookup(struct client *c, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "console"));
	struct console *con = NULL;
	char esc[256];
	int r;

	if (!name) {
		if (c->console)
			return c->console;
		client_error(c, PROTO_E_BAD_REQUEST, "request needs a \"console\" name");
		return NULL;
	}
	/* An ambiguous name lists no candidates: the caller may not see them all. */
	r = registry_lookup(&c->server->registry, name, &con);
	if (r == -ENOTUNIQ)
		client_error(c, PROTO_E_UNKNOWN_CONSOLE, "'%s' is ambiguous: use VM:ALIAS",
			     log_escape(name, strlen(name), esc, sizeof(esc)));
	else if (r < 0)
		client_error(c, PROTO_E_UNKNOWN_CONSOLE, "no console named '%s'",
			     log_escape(name, strlen(name), esc, sizeof(esc)));
	return r < 0 ? NULL : con;
}

static void client_do_attach(struct client *c, json_t *req)
{
	const char *mode = json_string_value(json_object_get(req, "mode"));
	json_t *jreplay = json_object_get(req, "replay");
	enum console_mode m;
	struct console *con;
	long replay = c->server->config.default_replay;

	if (c->console) {
		client_error(c, PROTO_E_ALREADY_ATTACHED, "already attached to %s", c->console->name);
		return;
	}
	if (!mode || strcmp(mode, "rw") == 0)
		m = CONSOLE_MODE_RW;
	else if (strcmp(mode, "ro") == 0)
		m = CONSOLE_MODE_RO;
	else if (strcmp(mode, "force") == 0)
		m = CONSOLE_MODE_FORCE;
	else {
		client_error(c, PROTO_E_BAD_REQUEST, "mode must be \"ro\", \"rw\" or \"force\"");
		return;
	}
	if (jreplay && proto_parse_replay(jreplay, &replay) < 0) {
		client_error(c, PROTO_E_BAD_REQUEST,
			     "replay must be a number of lines (0-1000000) or \"all\"");
		return;
	}
	con = client_lookup(c, req);
	if (!con)
		return;
	if (!con->supported) {
		client_error(c, PROTO_E_UNSUPPORTED, "console %s cannot be attached: %s", con->name,
			     con->reason ? con->reason : "unsupported");
		return;
	}
	console_attach(con, c, m, replay);
}

static void client_do_take(struct client *c, json_t *req)
{
	bool force = json_is_true(json_object_get(req, "force"));

	if (!c->console) {
		client_error(c, PROTO_E_NOT_ATTACHED, "not attached to a console");
		return;
	}
	if (console_take(c->console, c, force) == -EBUSY)
		client_error(c, PROTO_E_BUSY, "%s writes to %s; force to take over",
			     c->console->writer->label, c->console->name);
}

static void client_do_replay(struct client *c, json_t *req)
{
	struct console *con = c->console;
	long lines = 20;

	if (!con) {
		client_error(c, PROTO_E_NOT_ATTACHED, "not attached to a console");
		return;
	}
	if (json_object_get(req, "lines") &&
	    proto_parse_replay(json_object_get(req, "lines"), &lines) < 0) {
		client_error(c, PROTO_E_BAD_REQUEST, "lines must be a number or \"all\"");
		return;
	}
	/* Send the last lines again (sanitised); the live stream then resumes at head. */
	c->pos = lines < 0 ? ring_tail(&con->ring) : ring_lines_back(&con->ring, (unsigned)lines);
	c->sanitize_until = ring_head(&con->ring);
	sanitize_init(&c->san);
}

static void client_do_detach(struct client *c)
{
	json_t *msg;
	char *name;

	if (!c->console) {
		client_error(c, PROTO_E_NOT_ATTACHED, "not attached to a console");
		return;
	}
	name = strdup(c->console->name);
	console_detach(c->console, c, true);
	msg = json_pack("{s:s, s:s, s:s}", "type", "detached", "console", name ? name : "",
			"reason", "detached on request");
	if (msg)
		client_send(c, msg);
	json_decref(msg);
	free(name);
}

static void client_do_hello(struct client *c, json_t *req)
{
	json_t *v = json_object_get(req, "version");
	const char *name = json_string_value(json_object_get(req, "client"));
	json_t *principal = json_object_get(req, "principal");
	char esc[96];
	json_t *msg;

	if (!json_is_integer(v) || json_integer_value(v) != PROTO_VERSION) {
		client_error(c, PROTO_E_BAD_REQUEST, "unsupported protocol version (want %d)",
			     PROTO_VERSION);
		client_kill(c, "protocol version");
		return;
	}
	if (principal && !c->front) {
		client_error(c, PROTO_E_DENIED, "only a configured front may assert a principal");
		client_kill(c, "principal from a non-front peer");
		return;
	}
	if (principal) {
		const char *comment = json_string_value(json_object_get(principal, "comment"));
		const char *fp = json_string_value(json_object_get(principal, "fingerprint"));
		char fpesc[80];

		/* The front escaped it already. */
		log_sanitize(comment ? comment : "?", comment ? strlen(comment) : 1, esc, sizeof(esc));
		log_escape(fp ? fp : "?", fp ? strlen(fp) : 1, fpesc, sizeof(fpesc));
		snprintf(c->label, sizeof(c->label), "%.70s (ssh %.79s)", esc, fpesc);
		snprintf(c->audit, sizeof(c->audit), "%s", c->label);
		c->principal = true;
	} else if (name) {
		log_escape(name, strlen(name), esc, sizeof(esc));
		/* Keep the SO_PEERCRED identity; the client name only adds detail. */
		if (strcmp(esc, "ttyhub") != 0)
			snprintf(c->audit + strlen(c->audit), sizeof(c->audit) - strlen(c->audit),
				 " [%s]", esc);
	}
	c->hello = true;
	msg = json_pack("{s:s, s:i, s:s, s:s}", "type", "hello", "version", PROTO_VERSION, "server",
			"ttyhubd", "you", c->label);
	if (msg)
		client_send(c, msg);
	json_decref(msg);
}

/*
 * For a local admin only: the user name and pid of each local peer in a `who`
 * answer ("user" stays the public label).  Fronts never get them.
 */
static void client_who_add_local(struct client *c, json_t *who)
{
	json_t *arr = json_object_get(who, "clients"), *e;
	size_t i;

	json_array_foreach(arr, i, e) {
		json_int_t id = json_integer_value(json_object_get(e, "id"));
		struct client *o = server_find_client(c->server, (unsigned)id);

		if (!o || o->principal)
			continue;
		json_object_set_new(e, "login", json_string(o->user));
		json_object_set_new(e, "pid", json_integer(o->pid));
	}
}

static void client_handle_control(struct client *c, const struct frame *f)
{
	json_t *req = NULL;
	const char *type;
	char err[256];

	if (proto_decode_control(f->payload, f->len, &req, &type, err, sizeof(err)) < 0) {
		client_error(c, PROTO_E_BAD_REQUEST, "%s", err);
		return;
	}
	if (!c->hello && strcmp(type, "hello") != 0) {
		client_error(c, PROTO_E_BAD_REQUEST, "the first request must be \"hello\"");
		client_kill(c, "no hello");
	} else if (strcmp(type, "hello") == 0) {
		if (c->hello)
			client_error(c, PROTO_E_BAD_REQUEST, "hello was already sent");
		else
			client_do_hello(c, req);
	} else if (strcmp(type, "list") == 0)
		client_reply_list(c, req);
	else if (strcmp(type, "attach") == 0)
		client_do_attach(c, req);
	else if (strcmp(type, "take") == 0)
		client_do_take(c, req);
	else if (strcmp(type, "release") == 0) {
		if (c->console)
			console_release(c->console, c);
		else
			client_error(c, PROTO_E_NOT_ATTACHED, "not attached to a console");
	} else if (strcmp(type, "who") == 0) {
		struct console *con = client_lookup(c, req);
		json_t *msg = con ? console_who_json(con) : NULL;

		if (msg && c->admin && !c->principal)
			client_who_add_local(c, msg);
		if (msg && client_send(c, msg) < 0)
			client_error(c, PROTO_E_INTERNAL, "the answer does not fit in a frame");
		json_decref(msg);
	} else if (strcmp(type, "replay") == 0)
		client_do_replay(c, req);
	else if (strcmp(type, "break") == 0) {
		struct console *con = client_lookup(c, req);

		if (con)
			server_console_break(c->server, con, c);
	} else if (strcmp(type, "resize") == 0) {
		json_t *cols = json_object_get(req, "cols"), *rows = json_object_get(req, "rows");

		if (!json_is_integer(cols) || !json_is_integer(rows) ||
		    json_integer_value(cols) <= 0 || json_integer_value(cols) > 10000 ||
		    json_integer_value(rows) <= 0 || json_integer_value(rows) > 10000)
			client_error(c, PROTO_E_BAD_REQUEST, "resize needs cols and rows (1-10000)");
		else {
			c->cols = (unsigned)json_integer_value(cols);
			c->rows = (unsigned)json_integer_value(rows);
		}
	} else if (strcmp(type, "detach") == 0)
		client_do_detach(c);
	else {
		char esc[64];

		client_error(c, PROTO_E_BAD_REQUEST, "unknown request \"%s\"",
			     log_escape(type, strlen(type), esc, sizeof(esc)));
	}
	json_decref(req);
}

/* Writer bytes: hand to the console; pause reading when it cannot take them all. */
static bool client_handle_data(struct client *c, const uint8_t *data, size_t len)
{
	size_t n;

	if (!c->console) {
		/* Once: a front may still be sending what was typed before the detach. */
		if (!c->ro_hint_sent) {
			c->ro_hint_sent = true;
			client_error(c, PROTO_E_NOT_ATTACHED, "input while not attached is discarded");
		}
		return true;
	}
	if (c->role != CLIENT_WRITER) {
		if (!c->ro_hint_sent) {
			c->ro_hint_sent = true;
			client_error(c, PROTO_E_READ_ONLY,
				     "you are watching %s read-only; your input is discarded",
				     c->console->name);
		}
		return true;
	}
	n = console_input(c->console, c, data, len);
	if (n == len)
		return true;
	c->pending = data + n;
	c->pending_len = len - n;
	c->input_paused = true;
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
	if (c->role != CLIENT_WRITER || !c->console)
		c->pending_len = 0; /* no longer the writer: drop what was queued */
	c->input_paused = false;
	client_process(c);
	if (!c->input_paused)
		client_update_events(c);
}

static void client_on_io(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct client *c = userdata;

	if (revents & EPOLLOUT)
		client_flush(c);
	if (!c->dead && (revents & EPOLLIN) && !c->input_paused) {
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
