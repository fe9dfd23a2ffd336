/* SPDX-License-Identifier: MIT */
/*
 * A browser WebSocket (wsconn.h).  Nothing is freed inside a wslay
 * callback: they only record what happened; the sd-event handlers act on
 * it and call wsconn_check(), which frees a connection that is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "message.h"
#include "util.h"
#include "wsconn.h"
#include "wsproto.h"

/* Requests and keystrokes to the broker (keystrokes wait for room: TCP pushes back). */
#define WSCONN_BROKER_OUT (64 * 1024)

static void wsconn_update(struct wsconn *w);
static void wsconn_broker_gone(struct wsconn *w);

struct wsconn *wsconn_free(struct wsconn *w)
{
	if (!w)
		return NULL;
	TAILQ_REMOVE(&w->env->conns, w, entry);
	w->env->n_conns--;
	log_debug("WebSocket of session %s from %s closed", w->session_id, w->addr);
	sd_event_source_disable_unref(w->io);
	sd_event_source_disable_unref(w->broker_io);
	sd_event_source_disable_unref(w->ping);
	sd_event_source_disable_unref(w->linger);
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	if (w->front_init)
		front_done(&w->front);
	safe_close(w->broker_fd);
	json_decref(w->status);
	free(w->extra);
	/* The socket is libmicrohttpd's: it closes it (and its TLS state) on its next run. */
	(void)MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
	w->env->kick(w->env->kick_data);
	explicit_bzero(w->session, sizeof(w->session));
	free(w);
	return NULL;
}

static int wsconn_on_linger_end(sd_event_source *s, uint64_t usec, void *userdata)
{
	wsconn_free(userdata);
	return 0;
}

/*
 * Our close frame is out and wslay is done: shut our side and read what the
 * page still sends until it closes (or WSCONN_LINGER_USEC), so that unread
 * bytes (the rest of a too big message) do not turn our close into a reset
 * the page would see before the close frame.
 */
static bool wsconn_linger(struct wsconn *w)
{
	if (w->lingering)
		return false;
	if (!wslay_event_get_close_sent(w->ctx) || shutdown(w->fd, SHUT_WR) < 0 ||
	    sd_event_add_time_relative(w->env->event, &w->linger, CLOCK_MONOTONIC,
				       WSCONN_LINGER_USEC, 0, wsconn_on_linger_end, w) < 0)
		return false;
	w->lingering = true;
	(void)sd_event_source_set_io_events(w->io, EPOLLIN);
	if (w->broker_io)
		(void)sd_event_source_set_enabled(w->broker_io, SD_EVENT_OFF);
	return true;
}

/* Free w when it is done; true when it was freed. */
static bool wsconn_check(struct wsconn *w)
{
	if (w->lingering)
		return false;
	/* A close waits until what was queued before it went out (wslay sends control first). */
	if (w->close_code && !w->failed && !wslay_event_want_write(w->ctx)) {
		(void)wslay_event_queue_close(w->ctx, (uint16_t)w->close_code,
					      (const uint8_t *)w->close_reason,
					      strlen(w->close_reason));
		w->close_code = 0;
		if (wslay_event_send(w->ctx) != 0)
			w->failed = true;
	}
	if (w->failed || (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx))) {
		if (!w->failed && wsconn_linger(w))
			return false;
		wsconn_free(w);
		return true;
	}
	wsconn_update(w);
	return false;
}

static void wsconn_close(struct wsconn *w, uint16_t code, const char *reason)
{
	if (!w->close_code && !wslay_event_get_close_sent(w->ctx)) {
		w->close_code = code;
		snprintf(w->close_reason, sizeof(w->close_reason), "%s", reason ?: "");
	}
	/* No more broker traffic once closing. */
	if (w->broker_io)
		(void)sd_event_source_set_enabled(w->broker_io, SD_EVENT_OFF);
}

static void wsconn_send(struct wsconn *w, const uint8_t *msg, size_t len)
{
	struct wslay_event_msg m = { .opcode = WSLAY_BINARY_FRAME, .msg = msg, .msg_length = len };

	if (wslay_event_queue_msg(w->ctx, &m) != 0)
		w->failed = true;
}

static void wsconn_send_json(struct wsconn *w, enum wsproto_type type, const json_t *obj)
{
	_cleanup_free_ uint8_t *b = NULL;
	size_t n;

	if (wsproto_encode_json(type, obj, &b, &n) < 0) {
		w->failed = true;
		return;
	}
	wsconn_send(w, b, n);
}

static void wsconn_error(struct wsconn *w, const char *code, const char *message)
{
	json_t *o = json_pack("{s:s, s:s}", "code", code, "message", message);

	if (o)
		wsconn_send_json(w, WSPROTO_ERROR, o);
	json_decref(o);
}

/* A broker message without its "type", as the page gets it. */
static json_t *strip_type(json_t *msg)
{
	json_t *o = json_deep_copy(msg);

	if (o)
		json_object_del(o, "type");
	return o;
}

/* -- the broker side ---------------------------------------------------------------- */

/*
 * Output waits while the page has more than the window un-ACKed, or while
 * as much is still queued here (a page that ACKs without reading must not
 * make us queue without bound).
 */
static bool wsconn_paused(const struct wsconn *w)
{
	return w->sent_end - w->acked > WSCONN_WINDOW ||
	       wslay_event_get_queued_msg_length(w->ctx) > WSCONN_WINDOW;
}

static void wsconn_on_data(struct wsconn *w, const struct front_event *e)
{
	size_t n = WSPROTO_OUTPUT_HEADER + e->len;
	_cleanup_free_ uint8_t *b = malloc(n);

	if (!b) {
		w->failed = true;
		return;
	}
	wsproto_output_header(b, e->start, e->end);
	memcpy(b + WSPROTO_OUTPUT_HEADER, e->data, e->len);
	/* A new epoch starts again at its own offsets: the window restarts with it. */
	if (e->start < w->acked || e->end < w->sent_end)
		w->acked = e->start;
	w->sent_end = e->end;
	wsconn_send(w, b, n);
}

static void wsconn_status(struct wsconn *w, const struct front_event *e, bool attached)
{
	json_t *o = strip_type(e->msg);

	if (!o) {
		w->failed = true;
		return;
	}
	if (!w->status)
		w->status = json_object();
	json_object_update(w->status, o);
	json_decref(o);
	json_object_set_new(w->status, "role", json_string(e->writer ? "writer" : "watcher"));
	if (attached || json_object_get(e->msg, "access"))
		json_object_set_new(w->status, "access",
				    json_string(e->access == ATTACH_RO ? "ro" : "rw"));
	if (attached)
		json_object_set_new(w->status, "break", json_boolean(e->may_break));
	wsconn_send_json(w, WSPROTO_STATUS, w->status);
}

static void wsconn_on_event(struct wsconn *w, const struct front_event *e)
{
	char text[1024];
	json_t *o;

	switch (e->type) {
	case FRONT_EV_DATA:
		wsconn_on_data(w, e);
		break;
	case FRONT_EV_ATTACHED:
		w->attached = true;
		wsconn_status(w, e, true);
		break;
	case FRONT_EV_STATE:
		wsconn_status(w, e, false);
		break;
	case FRONT_EV_NOTICE:
		o = strip_type(e->msg);
		if (o)
			wsconn_send_json(w, WSPROTO_NOTICE, o);
		json_decref(o);
		break;
	case FRONT_EV_DETACHED:
		if (front_is_shutdown(e)) {
			wsconn_broker_gone(w);
			break;
		}
		o = json_pack("{s:s, s:s}", "reason", json_string_value(
				      json_object_get(e->msg, "reason")) ?: "unknown",
			      "text", e->text ?: "detached");
		if (o)
			wsconn_send_json(w, WSPROTO_DETACHED, o);
		json_decref(o);
		wsconn_close(w, WSLAY_CODE_NORMAL_CLOSURE, "detached");
		break;
	case FRONT_EV_ERROR:
		wsconn_error(w, e->code ?: "internal", e->text ?: "error");
		/* A refused session or attach ends the socket; later errors are answers. */
		if (!w->attached)
			wsconn_close(w, WSLAY_CODE_POLICY_VIOLATION, e->code ?: "denied");
		break;
	case FRONT_EV_BREAK_SENT:
	case FRONT_EV_ACTION_DONE:
	case FRONT_EV_WHO:
		if (front_event_text(&w->front, e, text, sizeof(text)) > 0) {
			o = json_pack("{s:s}", "text", text);
			if (o)
				wsconn_send_json(w, WSPROTO_NOTICE, o);
			json_decref(o);
		}
		break;
	default:
		break;
	}
}

static void wsconn_notice(struct wsconn *w, const char *text)
{
	json_t *o = json_pack("{s:s}", "text", text);

	if (o)
		wsconn_send_json(w, WSPROTO_NOTICE, o);
	json_decref(o);
}

/*
 * ttyhubd went away or is restarting: a NOTICE and close 1012 ("service
 * restart"), not DETACHED, so that the page reconnects and resumes at its
 * offset (it stops for good on DETACHED and on 1008).
 */
static void wsconn_broker_gone(struct wsconn *w)
{
	if (w->close_code || wslay_event_get_close_sent(w->ctx))
		return; /* closing already (after `detached`): nothing more to say */
	log_info("WebSocket of session %s: the broker connection ended", w->session_id);
	wsconn_notice(w, "ttyhubd went away; reconnecting");
	wsconn_close(w, 1012, "broker restarting");
}

static int wsconn_on_broker(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct wsconn *w = userdata;
	struct front_event ev;
	ssize_t n;
	int r;

	if (front_pending(&w->front) > 0 && front_flush(&w->front) < 0) {
		wsconn_broker_gone(w);
		goto out;
	}
	if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !wsconn_paused(w)) {
		n = front_fill(&w->front);
		if (n < 0) {
			wsconn_broker_gone(w);
			goto out;
		}
		while (!w->failed && (r = front_next_event(&w->front, &ev)) != 0) {
			if (r == -EBADMSG)
				continue;
			if (r < 0) {
				wsconn_broker_gone(w);
				goto out;
			}
			wsconn_on_event(w, &ev);
		}
		if (front_eof(&w->front))
			wsconn_broker_gone(w);
	}
out:
	(void)wslay_event_send(w->ctx);
	wsconn_check(w);
	return 0;
}

/* -- the page side ------------------------------------------------------------------- */

static int wsconn_hello(struct wsconn *w, const struct wsproto_hello *h)
{
	int r;

	w->broker_fd = unix_connect(w->env->broker, true);
	if (w->broker_fd < 0) {
		log_warning_errno(w->broker_fd, "cannot reach ttyhubd at %s", w->env->broker);
		/* 1013 "try again later": the page retries (ttyhubd may be restarting). */
		wsconn_notice(w, "ttyhubd is not reachable; retrying");
		wsconn_close(w, 1013, "broker unreachable");
		return 0;
	}
	r = front_init(&w->front, w->broker_fd, WSCONN_BROKER_OUT, NULL);
	if (r < 0)
		return r;
	w->front_init = true;
	r = front_hello_session(&w->front, "ttyhub-webd", w->session, w->addr);
	if (r < 0)
		return r;
	if (h->has_resume)
		r = front_attach_resume(&w->front, h->console, h->mode, h->replay, h->epoch,
					h->offset, NULL);
	else
		r = front_attach(&w->front, h->console, h->mode, h->replay);
	if (r >= 0 && h->cols && h->rows)
		r = front_resize(&w->front, h->cols, h->rows);
	if (r < 0)
		return r;
	return sd_event_add_io(w->env->event, &w->broker_io, w->broker_fd, EPOLLIN | EPOLLOUT,
			       wsconn_on_broker, w);
}

static int wsconn_control(struct wsconn *w, const struct wsproto_msg *m)
{
	switch (m->op) {
	case WSPROTO_OP_TAKE:
		return front_escape_request(&w->front, ESCAPE_ATTACH_RW);
	case WSPROTO_OP_FORCE:
		return front_escape_request(&w->front, ESCAPE_FORCE);
	case WSPROTO_OP_RELEASE:
		return front_escape_request(&w->front, ESCAPE_SPY);
	case WSPROTO_OP_BREAK:
		return front_break(&w->front, NULL);
	case WSPROTO_OP_REPLAY:
		return proto_put_control(&w->front.out, proto_req_replay(
			m->lines == PROTO_REPLAY_DEFAULT ? 100 : m->lines)) < 0 ? -ENOBUFS : 0;
	case WSPROTO_OP_DETACH:
		return front_detach(&w->front);
	}
	return -EINVAL;
}

static void wsconn_on_message(struct wsconn *w, const uint8_t *msg, size_t len)
{
	struct wsproto_msg m;
	char err[256];
	int r = 0;

	if (w->close_code || wslay_event_get_close_sent(w->ctx))
		return; /* closing: the page's last words are not acted on */
	if (wsproto_decode(msg, len, &m, err, sizeof(err)) < 0) {
		wsconn_error(w, "bad-request", err);
		return;
	}
	if (!w->hello_seen && m.type != WSPROTO_HELLO) {
		wsconn_error(w, "bad-request", "HELLO must come first");
		wsconn_close(w, WSLAY_CODE_POLICY_VIOLATION, "no hello");
		return;
	}
	if (m.type != WSPROTO_HELLO && !w->front_init)
		return; /* the broker was unreachable: the socket is closing */
	switch (m.type) {
	case WSPROTO_HELLO:
		if (w->hello_seen) {
			wsconn_error(w, "bad-request", "one console per WebSocket");
			return;
		}
		w->hello_seen = true;
		r = wsconn_hello(w, &m.hello);
		if (r < 0) {
			log_warning_errno(r, "WebSocket of session %s: cannot open the console",
					  w->session_id);
			wsconn_error(w, "internal", "cannot open the console");
			wsconn_close(w, 1011, "internal error");
			return;
		}
		break;
	case WSPROTO_INPUT:
		/* The page has no escape prefix: every byte goes to the console. */
		r = proto_put_data(&w->front.out, m.data, m.len);
		if (r == -ENOBUFS) {
			wsconn_error(w, "busy", "input is coming faster than the console takes it");
			r = 0;
		}
		break;
	case WSPROTO_RESIZE:
		r = front_resize(&w->front, m.cols, m.rows);
		break;
	case WSPROTO_CONTROL:
		r = wsconn_control(w, &m);
		break;
	case WSPROTO_ACK:
		if (m.ack > w->acked)
			w->acked = MIN(m.ack, w->sent_end);
		break;
	default:
		break;
	}
	if (r < 0 && r != -ENOBUFS)
		wsconn_error(w, "bad-request", "the request cannot be sent");
	if (w->broker_io && front_pending(&w->front) > 0)
		(void)front_flush(&w->front);
}

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
			  void *user_data)
{
	struct wsconn *w = user_data;
	ssize_t n;

	if (w->extra_off < w->extra_len) {
		n = (ssize_t)MIN(len, w->extra_len - w->extra_off);
		memcpy(buf, w->extra + w->extra_off, (size_t)n);
		w->extra_off += (size_t)n;
		return n;
	}
	n = recv(w->fd, buf, len, 0);
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
			  int flags, void *user_data)
{
	struct wsconn *w = user_data;
	ssize_t n = send(w->fd, data, len, MSG_NOSIGNAL);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EINTR)
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data)
{
	return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

static void ws_on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
			 void *user_data)
{
	struct wsconn *w = user_data;

	switch (arg->opcode) {
	case WSLAY_BINARY_FRAME:
		wsconn_on_message(w, arg->msg, arg->msg_length);
		break;
	case WSLAY_TEXT_FRAME:
		wsconn_close(w, WSLAY_CODE_UNSUPPORTED_DATA, "binary frames only");
		break;
	case WSLAY_PONG:
		w->missed_pings = 0;
		break;
	default:
		break;
	}
}

static void wsconn_update(struct wsconn *w)
{
	uint32_t ev = 0;

	if (wslay_event_want_read(w->ctx))
		ev |= EPOLLIN;
	if (wslay_event_want_write(w->ctx))
		ev |= EPOLLOUT;
	(void)sd_event_source_set_io_events(w->io, ev);
	if (w->broker_io && !w->close_code && !wslay_event_get_close_sent(w->ctx)) {
		ev = wsconn_paused(w) ? 0 : EPOLLIN;
		if (front_pending(&w->front) > 0)
			ev |= EPOLLOUT;
		/* Off while paused: a broker that hung up meanwhile must not wake us in a loop. */
		(void)sd_event_source_set_io_events(w->broker_io, ev);
		(void)sd_event_source_set_enabled(w->broker_io, ev ? SD_EVENT_ON : SD_EVENT_OFF);
	}
}

static int wsconn_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct wsconn *w = userdata;
	bool was_paused = wsconn_paused(w);
	char sink[4096];
	ssize_t n;

	if (w->lingering) {
		do
			n = recv(w->fd, sink, sizeof(sink), 0);
		while (n > 0);
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			wsconn_free(w);
		return 0;
	}
	if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && wslay_event_recv(w->ctx) != 0)
		w->failed = true;
	if (!w->failed && wslay_event_send(w->ctx) != 0)
		w->failed = true;
	if (wsconn_check(w))
		return 0;
	/* ACKs opened the window: read what the broker has buffered meanwhile. */
	if (was_paused && !wsconn_paused(w) && w->broker_io)
		wsconn_on_broker(w->broker_io, w->broker_fd, EPOLLIN, w);
	return 0;
}

static int wsconn_on_ping(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct wsconn *w = userdata;
	struct wslay_event_msg m = { .opcode = WSLAY_PING };

	if (w->lingering)
		return 0;
	if (!w->hello_seen) {
		log_info("WebSocket of session %s from %s: no HELLO in time", w->session_id,
			 w->addr);
		wsconn_error(w, "bad-request", "HELLO must come first");
		wsconn_close(w, WSLAY_CODE_POLICY_VIOLATION, "no hello");
	} else if (w->missed_pings >= WSCONN_MISSED_PINGS) {
		log_info("WebSocket of session %s from %s: %u pings unanswered, dropping it",
			 w->session_id, w->addr, w->missed_pings);
		w->failed = true;
	} else {
		w->missed_pings++;
		if (wslay_event_queue_msg(w->ctx, &m) != 0 || wslay_event_send(w->ctx) != 0)
			w->failed = true;
	}
	if (!wsconn_check(w)) {
		(void)sd_event_source_set_time_relative(s, w->env->ping_s * 1000000ULL);
		(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	}
	return 0;
}

void wsconn_shutdown(struct wsconn *w)
{
	/* Not DETACHED: the page reconnects (to the next ttyhub-webd) and resumes. */
	wsconn_notice(w, "ttyhub-webd is restarting; reconnecting");
	(void)wslay_event_send(w->ctx);
	(void)wslay_event_queue_close(w->ctx, 1001, (const uint8_t *)"going away", 10);
	(void)wslay_event_send(w->ctx);
	wsconn_free(w);
}

int wsconn_new(struct wsconn_env *env, struct MHD_UpgradeResponseHandle *urh, int sock,
	       const char *extra, size_t extra_len, const char *session, const char *session_id,
	       const char *addr)
{
	static const struct wslay_event_callbacks callbacks = {
		.recv_callback = ws_recv_cb,
		.send_callback = ws_send_cb,
		.genmask_callback = ws_genmask_cb,
		.on_msg_recv_callback = ws_on_msg_cb,
	};
	struct wsconn *w;
	int r, fl;

	w = calloc(1, sizeof(*w));
	if (!w) {
		(void)MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		return -ENOMEM;
	}
	w->env = env;
	w->urh = urh;
	w->fd = sock;
	/*
	 * Keystrokes and their echo are small frames: Nagle would hold each
	 * until the last one is acknowledged, a delayed ACK later (about 40 ms
	 * per echo, measured by b_web).  Fails harmlessly on TLS's socketpair.
	 */
	(void)setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	w->broker_fd = -EBADF;
	snprintf(w->session, sizeof(w->session), "%s", session);
	snprintf(w->session_id, sizeof(w->session_id), "%s", session_id);
	snprintf(w->addr, sizeof(w->addr), "%s", addr);
	TAILQ_INSERT_TAIL(&env->conns, w, entry);
	env->n_conns++;
	if (extra_len) {
		w->extra = malloc(extra_len);
		if (!w->extra) {
			wsconn_free(w);
			return -ENOMEM;
		}
		memcpy(w->extra, extra, extra_len);
		w->extra_len = extra_len;
	}
	fl = fcntl(sock, F_GETFL);
	if (fl < 0 || fcntl(sock, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = negative_errno();
		wsconn_free(w);
		return r;
	}
	r = wslay_event_context_server_init(&w->ctx, &callbacks, w);
	if (r != 0) {
		w->ctx = NULL;
		wsconn_free(w);
		return -ENOMEM;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx, WSPROTO_MSG_MAX);
	r = sd_event_add_io(env->event, &w->io, sock, EPOLLIN, wsconn_on_io, w);
	if (r >= 0)
		r = sd_event_add_time_relative(env->event, &w->ping, CLOCK_MONOTONIC,
					       WSCONN_HELLO_USEC, 0, wsconn_on_ping, w);
	if (r < 0) {
		wsconn_free(w);
		return r;
	}
	log_info("WebSocket of session %s from %s opened", session_id, addr);
	/* Bytes that came with the handshake are parsed now: no readiness will say so. */
	if (w->extra_len)
		wsconn_on_io(w->io, sock, EPOLLIN, w);
	return 0;
}
