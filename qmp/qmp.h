/* SPDX-License-Identifier: MIT */
/*
 * A QMP client connection on sd-event.
 *
 * Life of a connection: qmp_open() connects (non-blocking) to QEMU's
 * "-qmp unix:PATH,server=on,wait=off" socket; the library waits for the
 * greeting, sends qmp_capabilities, and on success becomes READY and calls
 * cb->on_ready.  From then on qmp_execute() sends commands, each with a
 * fresh numeric id, and calls its reply function exactly once:
 *
 *   - with the "return" value on success            (reply != NULL, class NULL);
 *   - with QEMU's error class and description        (reply NULL);
 *   - with class "Timeout" when the reply is late     (a late reply is dropped);
 *   - with class "Disconnected" when the connection closes or is freed.
 *
 * Commands issued before READY are queued and sent after negotiation.
 * Events go to cb->on_event at any time after the greeting, also between a
 * command and its reply.  Replies with an unknown id or without id are
 * dropped, as the QMP specification asks.
 *
 * cb->on_close is called once when the connection ends for any reason
 * other than qmp_free(): the monitor closed it, an I/O error, a malformed
 * or oversized message, a failed negotiation or a handshake timeout.
 * Pending commands get "Disconnected" before on_close.  After on_close the
 * object is inert (qmp_execute() returns -ENOTCONN) until qmp_free().
 *
 * Reentrancy: every callback may call qmp_execute() and qmp_free() on its
 * own connection (or any other).  qmp_free() inside a callback only marks
 * the object; it is released when the library's handler unwinds.  No
 * callback is ever invoked from inside qmp_open() or qmp_execute().
 *
 * Strings and JSON passed to callbacks (error descriptions, event data,
 * reply values) come from QEMU: escape them before logging.  They are
 * borrowed and valid only during the call (json_incref() to keep JSON).
 *
 * Limits: QMP_MAX_PENDING commands queued or in flight (-EBUSY beyond),
 * QMP_OUT_MAX bytes of unsent commands (-ENOBUFS beyond), QMP_MSG_MAX bytes
 * per message from QEMU (longer closes the connection).  The library logs
 * at debug level only and never exits or aborts.
 */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "qmp-parse.h" /* QMP_MSG_MAX */

#define QMP_MAX_PENDING 64
#define QMP_OUT_MAX (256 * 1024)
#define QMP_TIMEOUT_DEFAULT_USEC (30 * 1000000ULL)        /* qmp_execute(..., 0) */
#define QMP_TIMEOUT_NONE UINT64_MAX
#define QMP_HANDSHAKE_TIMEOUT_USEC (10 * 1000000ULL)      /* greeting + negotiation */

/* Error classes the library makes up itself (QEMU's own are e.g. "GenericError"). */
#define QMP_CLASS_TIMEOUT "Timeout"
#define QMP_CLASS_DISCONNECTED "Disconnected"

struct qmp;

enum qmp_state {
	QMP_STATE_CONNECTING,  /* connect() in progress */
	QMP_STATE_GREETING,    /* waiting for {"QMP": ...} */
	QMP_STATE_NEGOTIATING, /* qmp_capabilities sent */
	QMP_STATE_READY,
	QMP_STATE_CLOSED,
};

struct qmp_callbacks {
	/* Negotiation succeeded; queued commands have been sent. */
	void (*on_ready)(struct qmp *q, void *userdata);
	/* An event; data is the "data" object or NULL. */
	void (*on_event)(struct qmp *q, const char *name, json_t *data, void *userdata);
	/* The connection is gone; reason is one line of text (untrusted parts escaped). */
	void (*on_close)(struct qmp *q, const char *reason, void *userdata);
};

/*
 * Reply to one command.  On success reply is the "return" value and
 * error_class/error_desc are NULL; otherwise reply is NULL and both strings
 * are set.
 */
typedef void (*qmp_reply_fn)(struct qmp *q, json_t *reply, const char *error_class,
			     const char *error_desc, void *userdata);

/*
 * Connect to the QMP UNIX socket at path.  Returns 0 with *ret, or -errno
 * from socket()/connect() (-ENOENT, -ECONNREFUSED, -EAGAIN when the
 * listen backlog is full...), -ENAMETOOLONG, -ENOMEM; in that case no
 * callback is ever called and *ret is untouched.  cb is copied; any of its
 * members may be NULL.
 */
int qmp_open(sd_event *e, const char *path, const struct qmp_callbacks *cb, void *userdata,
	     struct qmp **ret);

/*
 * The same over a connected stream socket (e.g. one end of a socketpair()
 * or a file descriptor kept across a restart).  The fd is made non-blocking
 * and close-on-exec; on success q owns it, on failure the caller still does.
 */
int qmp_open_fd(sd_event *e, int fd, const struct qmp_callbacks *cb, void *userdata,
		struct qmp **ret);

/*
 * Close the connection and release q (NULL is fine).  Commands still
 * pending get their reply function called with "Disconnected"; on_close is
 * not called.  Safe from any callback, including those of q itself.
 * Returns NULL.
 */
struct qmp *qmp_free(struct qmp *q);

/*
 * Send a command.  args is BORROWED (NULL or an object): it is serialised
 * before qmp_execute() returns, so the caller keeps (and must drop) its own
 * reference.  fn (may be NULL to ignore the outcome) is called exactly once,
 * later, from the event loop.  timeout_usec: 0 for QMP_TIMEOUT_DEFAULT_USEC,
 * QMP_TIMEOUT_NONE for none; it counts from this call, queueing included.
 * Returns 0, or:
 *   -EINVAL     empty or non-UTF-8 cmd, args not an object;
 *   -ENOTCONN   the connection is closed (or being freed);
 *   -EBUSY      QMP_MAX_PENDING commands are already pending;
 *   -ENOBUFS    the command does not fit in the output buffer;
 *   -EMSGSIZE   the command is longer than QMP_MSG_MAX;
 *   -ENOMEM     out of memory.
 * fn is never called when the return value is negative.
 */
int qmp_execute(struct qmp *q, const char *cmd, const json_t *args, qmp_reply_fn fn,
		void *userdata, uint64_t timeout_usec);

enum qmp_state qmp_get_state(const struct qmp *q);
/* QEMU's version from the greeting: 0, or -ENODATA before the greeting. */
int qmp_get_version(const struct qmp *q, int *major, int *minor, int *micro);
/* Commands queued or awaiting a reply. */
unsigned qmp_get_pending(const struct qmp *q);
/* Change the greeting + negotiation timeout (only before READY; 0 = none). */
int qmp_set_handshake_timeout(struct qmp *q, uint64_t usec);
