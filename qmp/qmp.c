/* SPDX-License-Identifier: MIT */
/*
 * QMP client connection (see qmp.h).
 *
 * One io source on the socket and one optional timer per command, plus a
 * handshake timer until READY.  Commands live in one list in issue order;
 * a command is "sent" once its line is in the output buffer (only after
 * negotiation), and only sent commands can match a reply.  Before READY
 * each command keeps its own encoded line; the bytes of those lines and of
 * the output buffer together stay within QMP_OUT_MAX.
 *
 * Reentrancy: user callbacks run only from the io and timer handlers and
 * from qmp_free().  Each of those holds q->busy while it runs; qmp_free()
 * sets q->freed and tears down the socket and sources at once, but the
 * memory is released only when busy drops to 0.  After every callback the
 * handlers check qmp_alive() and unwind without touching anything else.
 * A command is unlinked and freed before its reply function runs, so a
 * reply function that issues commands or frees the connection sees a
 * consistent list, and every command is answered exactly once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "obuf.h"
#include "qmp-parse.h"
#include "qmp.h"
#include "util.h"

#define QMP_READ_BUDGET (256 * 1024) /* per wake-up, so one chatty monitor cannot starve others */
#define QMP_CAPS_RESERVE 256         /* room for qmp_capabilities beyond QMP_OUT_MAX */
#define QMP_REASON_MAX 512
#define QMP_NAME_MAX 64

struct qmp_cmd {
	struct qmp *q;
	struct qmp_cmd *prev, *next;
	uint64_t id;
	char *line;             /* owned: the encoded command while not yet sent */
	size_t len;             /* length of line */
	bool sent;              /* in the output buffer (or already written) */
	qmp_reply_fn fn;
	void *userdata;
	sd_event_source *timer; /* owned, NULL without timeout */
	uint64_t timeout_usec;
	char name[QMP_NAME_MAX]; /* for messages */
};

struct qmp {
	sd_event *event;             /* reference */
	int fd;                      /* owned, -EBADF once closed */
	sd_event_source *io;         /* owned */
	sd_event_source *handshake;  /* owned: greeting + negotiation timer */
	uint64_t handshake_usec;
	enum qmp_state state;
	struct qmp_callbacks cb;
	void *userdata;

	struct qmp_splitter in;
	struct obuf out;
	size_t queued_bytes;         /* bytes of lines of unsent commands */

	struct qmp_cmd *head, *tail; /* owned: pending commands, in issue order */
	unsigned n_pending;
	uint64_t next_id;
	uint64_t caps_id;

	bool have_version;
	int major, minor, micro;

	unsigned busy;               /* handlers and qmp_free() on the stack */
	bool freed;
};

static bool qmp_alive(const struct qmp *q)
{
	return !q->freed && q->state != QMP_STATE_CLOSED;
}

static void qmp_cmd_unlink(struct qmp *q, struct qmp_cmd *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		q->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		q->tail = c->prev;
	c->prev = c->next = NULL;
	q->n_pending--;
	if (!c->sent)
		q->queued_bytes -= c->len;
}

static void qmp_cmd_free(struct qmp_cmd *c)
{
	sd_event_source_disable_unref(c->timer);
	free(c->line);
	free(c);
}

/* Unlink c, free it, then tell its owner: the owner may do anything with q. */
static void qmp_cmd_finish(struct qmp *q, struct qmp_cmd *c, json_t *reply, const char *class,
			   const char *desc)
{
	qmp_reply_fn fn = c->fn;
	void *userdata = c->userdata;

	qmp_cmd_unlink(q, c);
	qmp_cmd_free(c);
	if (fn)
		fn(q, reply, class, desc, userdata);
}

static void qmp_fail_all(struct qmp *q, const char *class, const char *desc)
{
	while (q->head)
		qmp_cmd_finish(q, q->head, NULL, class, desc);
}

static void qmp_destroy(struct qmp *q)
{
	q->io = sd_event_source_disable_unref(q->io);
	q->handshake = sd_event_source_disable_unref(q->handshake);
	q->fd = safe_close(q->fd);
	while (q->head) {
		struct qmp_cmd *c = q->head;

		qmp_cmd_unlink(q, c);
		qmp_cmd_free(c);
	}
	qmp_splitter_done(&q->in);
	obuf_done(&q->out);
	sd_event_unref(q->event);
	free(q);
}

static void qmp_enter(struct qmp *q)
{
	q->busy++;
}

static void qmp_leave(struct qmp *q)
{
	if (--q->busy == 0 && q->freed)
		qmp_destroy(q);
}

static void qmp_shutdown_io(struct qmp *q)
{
	q->io = sd_event_source_disable_unref(q->io);
	q->handshake = sd_event_source_disable_unref(q->handshake);
	q->fd = safe_close(q->fd);
}

/* End the connection: fail pending commands, then on_close.  Only from handlers. */
static void qmp_close(struct qmp *q, const char *fmt, ...) _printf_(2, 3);
static void qmp_close(struct qmp *q, const char *fmt, ...)
{
	char reason[QMP_REASON_MAX];
	va_list ap;

	if (!qmp_alive(q))
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_debug("qmp %p: closing: %s", (void *)q, reason);
	q->state = QMP_STATE_CLOSED;
	qmp_shutdown_io(q);
	qmp_fail_all(q, QMP_CLASS_DISCONNECTED, reason);
	if (!q->freed && q->cb.on_close)
		q->cb.on_close(q, reason, q->userdata);
}

static void qmp_update_events(struct qmp *q)
{
	uint32_t ev;
	int r;

	if (!q->io)
		return;
	if (q->state == QMP_STATE_CONNECTING)
		ev = EPOLLOUT;
	else
		ev = EPOLLIN | (obuf_len(&q->out) > 0 ? EPOLLOUT : 0);
	r = sd_event_source_set_io_events(q->io, ev);
	if (r < 0)
		log_debug_errno(r, "qmp %p: cannot update io events", (void *)q);
}

/* Move commands queued before READY into the output buffer, in order. */
static int qmp_send_queued(struct qmp *q)
{
	for (struct qmp_cmd *c = q->head; c; c = c->next) {
		if (c->sent)
			continue;
		if (obuf_append(&q->out, c->line, c->len) < 0)
			return -ENOBUFS; /* cannot happen: admission counts queued bytes */
		c->sent = true;
		q->queued_bytes -= c->len;
		free(c->line);
		c->line = NULL;
	}
	return 0;
}

static void qmp_become_ready(struct qmp *q)
{
	q->handshake = sd_event_source_disable_unref(q->handshake);
	q->state = QMP_STATE_READY;
	if (qmp_send_queued(q) < 0) {
		qmp_close(q, "QMP output buffer overflow");
		return;
	}
	qmp_update_events(q);
	log_debug("qmp %p: ready (QEMU %d.%d.%d)", (void *)q, q->major, q->minor, q->micro);
	if (q->cb.on_ready)
		q->cb.on_ready(q, q->userdata);
}

static void qmp_on_greeting(struct qmp *q, const struct qmp_msg *m)
{
	char *line;
	size_t len;
	int r;

	q->have_version = true;
	q->major = m->greeting.major;
	q->minor = m->greeting.minor;
	q->micro = m->greeting.micro;
	q->caps_id = q->next_id++;
	r = qmp_encode_command("qmp_capabilities", NULL, q->caps_id, &line, &len);
	if (r < 0) {
		qmp_close(q, "cannot encode qmp_capabilities: %s", strerror(-r));
		return;
	}
	r = obuf_append(&q->out, line, len);
	free(line);
	if (r < 0) {
		qmp_close(q, "QMP output buffer overflow");
		return;
	}
	q->state = QMP_STATE_NEGOTIATING;
	qmp_update_events(q);
}

static struct qmp_cmd *qmp_find_sent(struct qmp *q, uint64_t id)
{
	for (struct qmp_cmd *c = q->head; c; c = c->next)
		if (c->sent && c->id == id)
			return c;
	return NULL;
}

static void qmp_on_reply(struct qmp *q, const struct qmp_msg *m)
{
	char a[128], b[256];
	struct qmp_cmd *c;
	uint64_t id;

	if (qmp_msg_id(m, &id) < 0) {
		log_debug("qmp %p: dropping a %s message without a numeric id", (void *)q,
			  qmp_msg_type_to_string(m->type));
		return;
	}
	if (q->state == QMP_STATE_NEGOTIATING && id == q->caps_id) {
		if (m->type == QMP_MSG_RETURN)
			qmp_become_ready(q);
		else
			qmp_close(q, "QMP capabilities negotiation failed: %s: %s",
				  log_escape(m->error.class, strlen(m->error.class), a, sizeof(a)),
				  log_escape(m->error.desc, strlen(m->error.desc), b, sizeof(b)));
		return;
	}
	c = qmp_find_sent(q, id);
	if (!c) {
		log_debug("qmp %p: dropping a %s message with unknown id %" PRIu64, (void *)q,
			  qmp_msg_type_to_string(m->type), id);
		return;
	}
	if (m->type == QMP_MSG_RETURN)
		qmp_cmd_finish(q, c, m->ret, NULL, NULL);
	else
		qmp_cmd_finish(q, c, NULL, m->error.class, m->error.desc);
}

static void qmp_dispatch_line(struct qmp *q, const char *line, size_t len)
{
	char err[256], esc[300];
	struct qmp_msg m;
	int r;

	r = qmp_msg_parse(line, len, &m, err, sizeof(err));
	if (r < 0) {
		qmp_close(q, "%s QMP message: %s", r == -EBADMSG ? "malformed" : "unexpected",
			  log_escape(err, strlen(err), esc, sizeof(esc)));
		return;
	}
	switch (q->state) {
	case QMP_STATE_GREETING:
		if (m.type == QMP_MSG_GREETING)
			qmp_on_greeting(q, &m);
		else
			qmp_close(q, "expected the QMP greeting, got a message of type %s",
				  qmp_msg_type_to_string(m.type));
		break;
	case QMP_STATE_NEGOTIATING:
	case QMP_STATE_READY:
		if (m.type == QMP_MSG_GREETING)
			qmp_close(q, "unexpected second QMP greeting");
		else if (m.type == QMP_MSG_EVENT) {
			if (q->cb.on_event)
				q->cb.on_event(q, m.event.name, m.event.data, q->userdata);
		} else
			qmp_on_reply(q, &m);
		break;
	case QMP_STATE_CONNECTING:
	case QMP_STATE_CLOSED:
		break;
	}
	qmp_msg_done(&m);
}

/* Split data into messages and handle each; stops as soon as q is closed or freed. */
static void qmp_feed(struct qmp *q, const char *data, size_t len)
{
	while (len > 0) {
		size_t took = qmp_splitter_feed(&q->in, data, len);
		const char *line;
		size_t llen;
		int r;

		data += took;
		len -= took;
		while ((r = qmp_splitter_next(&q->in, &line, &llen)) > 0) {
			qmp_dispatch_line(q, line, llen);
			if (!qmp_alive(q))
				return;
		}
		if (r == -EMSGSIZE) {
			qmp_close(q, "QMP message longer than %zu bytes", q->in.max);
			return;
		}
		if (r < 0 || (took == 0 && len > 0)) {
			qmp_close(q, "out of memory buffering a QMP message");
			return;
		}
	}
}

static void qmp_read(struct qmp *q, bool hup)
{
	size_t total = 0;

	while (total < QMP_READ_BUDGET && qmp_alive(q)) {
		char buf[16384];
		ssize_t n = read(q->fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (hup && total == 0)
					qmp_close(q, "the QMP monitor hung up");
				return;
			}
			qmp_close(q, "cannot read from the QMP monitor: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			if (qmp_splitter_pending(&q->in) > 0)
				qmp_close(q, "the QMP monitor closed the connection in the middle "
					     "of a message");
			else
				qmp_close(q, "the QMP monitor closed the connection");
			return;
		}
		total += (size_t)n;
		qmp_feed(q, buf, (size_t)n);
	}
}

static void qmp_flush(struct qmp *q)
{
	ssize_t n = obuf_flush(&q->out, q->fd);

	if (n < 0)
		qmp_close(q, "cannot write to the QMP monitor: %s", strerror((int)-n));
}

static void qmp_finish_connect(struct qmp *q)
{
	int err = 0;
	socklen_t sl = sizeof(err);

	if (getsockopt(q->fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
		err = errno;
	if (err != 0) {
		qmp_close(q, "cannot connect to the QMP monitor: %s", strerror(err));
		return;
	}
	q->state = QMP_STATE_GREETING;
}

static int qmp_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct qmp *q = userdata;

	qmp_enter(q);
	if (q->state == QMP_STATE_CONNECTING) {
		qmp_finish_connect(q);
	} else {
		if (revents & EPOLLOUT)
			qmp_flush(q);
		if (qmp_alive(q) && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			qmp_read(q, revents & (EPOLLHUP | EPOLLERR));
	}
	if (qmp_alive(q))
		qmp_update_events(q);
	qmp_leave(q);
	return 0;
}

static int qmp_on_handshake_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct qmp *q = userdata;
	unsigned ms = (unsigned)MIN(q->handshake_usec / 1000, (uint64_t)UINT32_MAX);

	qmp_enter(q);
	if (q->state == QMP_STATE_NEGOTIATING)
		qmp_close(q, "no answer to qmp_capabilities within %u ms", ms);
	else
		qmp_close(q, "no QMP greeting within %u ms (is another client connected to "
			     "the monitor?)", ms);
	qmp_leave(q);
	return 0;
}

static int qmp_on_cmd_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct qmp_cmd *c = userdata;
	struct qmp *q = c->q;
	char desc[QMP_NAME_MAX + 64];

	snprintf(desc, sizeof(desc), "no reply to %s within %" PRIu64 " ms", c->name,
		 c->timeout_usec / 1000);
	log_debug("qmp %p: %s", (void *)q, desc);
	qmp_enter(q);
	qmp_cmd_finish(q, c, NULL, QMP_CLASS_TIMEOUT, desc);
	qmp_leave(q);
	return 0;
}

int qmp_set_handshake_timeout(struct qmp *q, uint64_t usec)
{
	int r;

	if (!qmp_alive(q))
		return -ENOTCONN;
	if (q->state == QMP_STATE_READY)
		return -EBUSY;
	q->handshake = sd_event_source_disable_unref(q->handshake);
	q->handshake_usec = usec;
	if (usec == 0)
		return 0;
	r = sd_event_add_time_relative(q->event, &q->handshake, CLOCK_MONOTONIC, usec, 1000,
				       qmp_on_handshake_timeout, q);
	return r < 0 ? r : 0;
}

static int qmp_new(sd_event *e, int fd, enum qmp_state state, const struct qmp_callbacks *cb,
		   void *userdata, struct qmp **ret)
{
	struct qmp *q;
	int r;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	*q = (struct qmp){
		.event = sd_event_ref(e),
		.fd = fd,
		.state = state,
		.cb = cb ? *cb : (struct qmp_callbacks){},
		.userdata = userdata,
		.next_id = 1,
	};
	qmp_splitter_init(&q->in, QMP_MSG_MAX);
	r = obuf_init(&q->out, QMP_OUT_MAX + QMP_CAPS_RESERVE);
	if (r >= 0)
		r = sd_event_add_io(e, &q->io, fd, EPOLLIN, qmp_on_io, q);
	if (r >= 0)
		r = qmp_set_handshake_timeout(q, QMP_HANDSHAKE_TIMEOUT_USEC);
	if (r < 0) {
		q->fd = -EBADF; /* the caller keeps it */
		qmp_destroy(q);
		return r;
	}
	qmp_update_events(q);
	*ret = q;
	return 0;
}

int qmp_open_fd(sd_event *e, int fd, const struct qmp_callbacks *cb, void *userdata,
		struct qmp **ret)
{
	int fl;

	if (!e || fd < 0 || !ret)
		return -EINVAL;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return negative_errno();
	return qmp_new(e, fd, QMP_STATE_GREETING, cb, userdata, ret);
}

int qmp_open(sd_event *e, const char *path, const struct qmp_callbacks *cb, void *userdata,
	     struct qmp **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;
	enum qmp_state state = QMP_STATE_GREETING;
	int r;

	if (!e || !path || !*path || !ret)
		return -EINVAL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negative_errno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS)
			return negative_errno();
		state = QMP_STATE_CONNECTING;
	}
	r = qmp_new(e, fd, state, cb, userdata, ret);
	if (r < 0)
		return r;
	TAKE_FD(fd);
	return 0;
}

struct qmp *qmp_free(struct qmp *q)
{
	if (!q || q->freed)
		return NULL;
	q->freed = true;
	qmp_enter(q);
	qmp_shutdown_io(q);
	qmp_fail_all(q, QMP_CLASS_DISCONNECTED, "the QMP connection was closed by its owner");
	qmp_leave(q);
	return NULL;
}

int qmp_execute(struct qmp *q, const char *cmd, const json_t *args, qmp_reply_fn fn,
		void *userdata, uint64_t timeout_usec)
{
	struct qmp_cmd *c;
	char *line;
	size_t len, used;
	int r;

	if (!q || !cmd)
		return -EINVAL;
	if (!qmp_alive(q))
		return -ENOTCONN;
	if (q->n_pending >= QMP_MAX_PENDING)
		return -EBUSY;
	r = qmp_encode_command(cmd, args, q->next_id, &line, &len);
	if (r < 0)
		return r;
	used = q->queued_bytes + obuf_len(&q->out);
	if (used > QMP_OUT_MAX || len > QMP_OUT_MAX - used) {
		free(line);
		return -ENOBUFS;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		free(line);
		return -ENOMEM;
	}
	*c = (struct qmp_cmd){
		.q = q,
		.id = q->next_id,
		.line = line,
		.len = len,
		.fn = fn,
		.userdata = userdata,
		.timeout_usec = timeout_usec == 0 ? QMP_TIMEOUT_DEFAULT_USEC : timeout_usec,
	};
	snprintf(c->name, sizeof(c->name), "%s", cmd);
	if (c->timeout_usec != QMP_TIMEOUT_NONE) {
		r = sd_event_add_time_relative(q->event, &c->timer, CLOCK_MONOTONIC,
					       c->timeout_usec, 1000, qmp_on_cmd_timeout, c);
		if (r < 0) {
			qmp_cmd_free(c);
			return r;
		}
	}
	if (q->state == QMP_STATE_READY) {
		/* Fits: checked against QMP_OUT_MAX above, the buffer has more room. */
		obuf_append(&q->out, c->line, c->len);
		c->sent = true;
		free(c->line);
		c->line = NULL;
		qmp_update_events(q);
	} else
		q->queued_bytes += c->len;
	c->prev = q->tail;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->n_pending++;
	q->next_id++;
	return 0;
}

enum qmp_state qmp_get_state(const struct qmp *q)
{
	return q->state;
}

int qmp_get_version(const struct qmp *q, int *major, int *minor, int *micro)
{
	if (!q->have_version)
		return -ENODATA;
	if (major)
		*major = q->major;
	if (minor)
		*minor = q->minor;
	if (micro)
		*micro = q->micro;
	return 0;
}

unsigned qmp_get_pending(const struct qmp *q)
{
	return q->n_pending;
}
