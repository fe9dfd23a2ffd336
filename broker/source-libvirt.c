/* SPDX-License-Identifier: MIT */
/*
 * libvirt console source (see source-libvirt.h).
 *
 * Thread side: connect (read-only unless the monitor is allowed), register
 * lifecycle, reboot and device events, list the active domains and post
 * each one's XML, then run virEventRunDefaultImpl() until told to stop.
 * When libvirtd goes away the close callback fires; the thread drops the
 * connection and reconnects with back-off, then posts the full list again
 * (a "sync") so the loop can drop domains that stopped meanwhile.
 * Consoles of running domains are kept across a libvirtd restart: their
 * chardev connections go to QEMU, not to libvirtd.
 *
 * Loop side: a domain's XML is parsed (domxml, pure) and applied to its
 * struct domain; "down" removes its consoles with a notice.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "domain.h"
#include "log.h"
#include "source-libvirt.h"
#include "util.h"

#define VIRT_BACKOFF_MAX_MS 5000
#define VIRT_MAX_DOMAINS 4096

enum virt_msg_type {
	VIRT_MSG_UP,      /* uuid, xml */
	VIRT_MSG_DOWN,    /* uuid, text = why */
	VIRT_MSG_SYNC,    /* text = "\n"-separated uuids of every active domain */
	VIRT_MSG_EVENT,   /* uuid, text = a marker for the console history */
	VIRT_MSG_BREAK,   /* reply: req, result, error */
	VIRT_MSG_STATUS,  /* text = connection status for the log */
};

struct virt_msg {
	enum virt_msg_type type;
	char uuid[VIR_UUID_STRING_BUFLEN];
	char *xml;
	char *text;
	char *error;
	struct break_req *req; /* BREAK: borrowed, completed here */
	int result;
	char state[32];   /* EVENT: the run state it leads to, or "" */
	struct virt_msg *next;
};

/* Breaks queued or running at once per libvirt source; more are refused. */
#define VIRT_MAX_BREAKS 16

/* What the thread is asked to do for a request. */
enum virt_op {
	VIRT_OP_MONITOR,  /* cmd through the QEMU monitor (break, sysrq's break) */
	VIRT_OP_NMI,      /* virDomainInjectNMI */
	VIRT_OP_RESET,    /* virDomainReset */
	VIRT_OP_SHUTDOWN, /* virDomainShutdown (ACPI power button first) */
};

struct virt_req { /* a break or an action, from the loop to the thread */
	char uuid[VIR_UUID_STRING_BUFLEN];
	enum virt_op op;
	char *cmd;            /* owned: the QMP command (JSON), VIRT_OP_MONITOR only */
	struct break_req *req; /* borrowed: completed on the loop side */
	struct virt_msg *reply; /* owned until posted: made up front, so every break is answered */
	struct virt_req *next;
};

struct vdom {
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct domain domain;
	bool seen; /* during a sync */
	struct vdom *next;
};

struct virt {
	struct source source; /* first */
	const struct source_env *env;
	char *uri;
	bool allow_monitor;
	bool allow_power;  /* --libvirt-power: nmi, reset, powerdown (read-write connection) */
	char origin[300];

	/* Shared between the threads, under lock. */
	pthread_mutex_t lock;
	struct virt_msg *msgs, **msgs_tail;
	struct virt_req *reqs;
	unsigned n_breaks;          /* requests queued or running (VIRT_MAX_BREAKS) */
	bool stop;

	int event_fd;               /* thread -> loop wake-up; owned */
	sd_event_source *event_io;  /* owned */
	int wake[2];                /* loop -> thread wake-up (pipe); owned */
	pthread_t thread;
	bool thread_running;

	/* Thread only. */
	virConnectPtr conn;
	int cb_lifecycle, cb_reboot, cb_added, cb_removed;
	bool closed;
	unsigned backoff_ms;
	int reconnect_timer;

	/* Loop only. */
	struct vdom *doms;
	char last_status[512];
};

static const struct source_ops virt_ops;

/* ---- thread side ---------------------------------------------------------- */

static void virt_post(struct virt *v, struct virt_msg *m)
{
	uint64_t one = 1;

	pthread_mutex_lock(&v->lock);
	m->next = NULL;
	*v->msgs_tail = m;
	v->msgs_tail = &m->next;
	pthread_mutex_unlock(&v->lock);
	if (write(v->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warning_errno(negative_errno(), "libvirt: cannot wake the loop");
}

static void virt_post_text(struct virt *v, enum virt_msg_type type, const char *uuid,
			   const char *fmt, ...) _printf_(4, 5);
static void virt_post_text(struct virt *v, enum virt_msg_type type, const char *uuid,
			   const char *fmt, ...)
{
	struct virt_msg *m = calloc(1, sizeof(*m));
	va_list ap;

	if (!m)
		return;
	m->type = type;
	if (uuid)
		snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
	va_start(ap, fmt);
	if (vasprintf(&m->text, fmt, ap) < 0)
		m->text = NULL;
	va_end(ap);
	virt_post(v, m);
}

static void virt_post_state(struct virt *v, const char *uuid, const char *state,
			    const char *marker)
{
	struct virt_msg *m = calloc(1, sizeof(*m));

	if (!m)
		return;
	m->type = VIRT_MSG_EVENT;
	snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
	snprintf(m->state, sizeof(m->state), "%s", state);
	m->text = strdup(marker);
	virt_post(v, m);
}

static const char *virt_last_error(void)
{
	virErrorPtr e = virGetLastError();

	return e && e->message ? e->message : "unknown libvirt error";
}

/* Post a domain's live XML (an error is only logged: the next event retries). */
static void virt_post_domain(struct virt *v, virDomainPtr dom)
{
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct virt_msg *m;
	char *xml;

	if (virDomainGetUUIDString(dom, uuid) < 0)
		return;
	xml = virDomainGetXMLDesc(dom, 0);
	if (!xml) {
		virt_post_text(v, VIRT_MSG_STATUS, NULL, "cannot read the XML of %s: %s",
			       virDomainGetName(dom), virt_last_error());
		return;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		free(xml);
		return;
	}
	m->type = VIRT_MSG_UP;
	snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
	m->xml = xml;
	virt_post(v, m);
}

static int virt_on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
			     void *opaque)
{
	struct virt *v = opaque;
	char uuid[VIR_UUID_STRING_BUFLEN];

	if (virDomainGetUUIDString(dom, uuid) < 0)
		return 0;
	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
		virt_post_domain(v, dom);
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		virt_post_text(v, VIRT_MSG_DOWN, uuid, "domain %s stopped (%s)", virDomainGetName(dom),
			       detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED ? "destroyed"
			       : detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? "crashed"
			       : detail == VIR_DOMAIN_EVENT_STOPPED_FAILED ? "failed"
			       : detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED ? "migrated away"
								      : "shut off");
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		virt_post_state(v, uuid, "crashed", "guest crashed (panic)");
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		virt_post_state(v, uuid, "paused", "guest paused");
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		virt_post_state(v, uuid, "running", "guest resumed");
		break;
	case VIR_DOMAIN_EVENT_SHUTDOWN:
		virt_post_text(v, VIRT_MSG_EVENT, uuid, "guest is shutting down");
		break;
	default:
		break;
	}
	return 0;
}

static void virt_on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque)
{
	char uuid[VIR_UUID_STRING_BUFLEN];

	if (virDomainGetUUIDString(dom, uuid) >= 0)
		virt_post_text(opaque, VIRT_MSG_EVENT, uuid, "guest reset");
}

static void virt_on_device(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
	virt_post_domain(opaque, dom); /* re-read: the diff finds the change */
}

static void virt_on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct virt *v = opaque;

	v->closed = true;
}

static void virt_schedule_reconnect(struct virt *v);

static void virt_sync(struct virt *v)
{
	virDomainPtr *doms = NULL;
	size_t len = 0, size = 1;
	char *list;
	int n;

	n = virConnectListAllDomains(v->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (n < 0) {
		virt_post_text(v, VIRT_MSG_STATUS, NULL, "cannot list domains: %s", virt_last_error());
		return;
	}
	list = malloc((size_t)n * VIR_UUID_STRING_BUFLEN + 1);
	if (list)
		list[0] = '\0';
	for (int i = 0; i < n; i++) {
		char uuid[VIR_UUID_STRING_BUFLEN];

		virt_post_domain(v, doms[i]);
		if (list && virDomainGetUUIDString(doms[i], uuid) >= 0) {
			len += (size_t)sprintf(list + len, "%s\n", uuid);
			size++;
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	if (list) {
		struct virt_msg *m = calloc(1, sizeof(*m));

		if (m) {
			m->type = VIRT_MSG_SYNC;
			m->text = list;
			virt_post(v, m);
		} else
			free(list);
	}
}

static void virt_disconnect(struct virt *v)
{
	if (!v->conn)
		return;
	if (v->cb_lifecycle >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->cb_lifecycle);
	if (v->cb_reboot >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->cb_reboot);
	if (v->cb_added >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->cb_added);
	if (v->cb_removed >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->cb_removed);
	virConnectUnregisterCloseCallback(v->conn, virt_on_close);
	virConnectClose(v->conn);
	v->conn = NULL;
	v->cb_lifecycle = v->cb_reboot = v->cb_added = v->cb_removed = -1;
}

static void virt_connect(struct virt *v)
{
	v->conn = v->allow_monitor || v->allow_power ? virConnectOpen(v->uri)
						      : virConnectOpenReadOnly(v->uri);
	if (!v->conn) {
		virt_post_text(v, VIRT_MSG_STATUS, NULL, "cannot connect to %s: %s; retrying",
			       v->uri, virt_last_error());
		virt_schedule_reconnect(v);
		return;
	}
	v->closed = false;
	v->backoff_ms = 100;
	virConnectRegisterCloseCallback(v->conn, virt_on_close, v, NULL);
	virConnectSetKeepAlive(v->conn, 5, 3);
	v->cb_lifecycle = virConnectDomainEventRegisterAny(
		v->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(virt_on_lifecycle), v, NULL);
	v->cb_reboot = virConnectDomainEventRegisterAny(v->conn, NULL, VIR_DOMAIN_EVENT_ID_REBOOT,
							VIR_DOMAIN_EVENT_CALLBACK(virt_on_reboot),
							v, NULL);
	v->cb_added = virConnectDomainEventRegisterAny(v->conn, NULL,
						       VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
						       VIR_DOMAIN_EVENT_CALLBACK(virt_on_device),
						       v, NULL);
	v->cb_removed = virConnectDomainEventRegisterAny(v->conn, NULL,
							 VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
							 VIR_DOMAIN_EVENT_CALLBACK(virt_on_device),
							 v, NULL);
	if (v->cb_lifecycle < 0) {
		virt_post_text(v, VIRT_MSG_STATUS, NULL, "cannot subscribe to events on %s: %s",
			       v->uri, virt_last_error());
		virt_disconnect(v);
		virt_schedule_reconnect(v);
		return;
	}
	virt_post_text(v, VIRT_MSG_STATUS, NULL, "connected to %s%s", v->uri,
		       v->allow_monitor ? " (read-write, for the QEMU monitor)" : " (read-only)");
	virt_sync(v);
}

static void virt_on_reconnect_timer(int timer, void *opaque)
{
	struct virt *v = opaque;

	virEventUpdateTimeout(timer, -1);
	if (!v->conn)
		virt_connect(v);
}

static void virt_schedule_reconnect(struct virt *v)
{
	virEventUpdateTimeout(v->reconnect_timer, (int)v->backoff_ms);
	v->backoff_ms = MIN(v->backoff_ms * 2, (unsigned)VIRT_BACKOFF_MAX_MS);
}

static void virt_req_free(struct virt_req *r)
{
	if (!r)
		return;
	free(r->cmd);
	free(r->reply);
	free(r);
}

static void virt_do_break(struct virt *v, struct virt_req *r)
{
	struct virt_msg *m = TAKE_PTR(r->reply);
	char *reply = NULL;
	virDomainPtr dom;

	dom = v->conn ? virDomainLookupByUUIDString(v->conn, r->uuid) : NULL;
	if (!dom) {
		m->result = -ENOENT;
		m->error = strdup(v->conn ? virt_last_error() : "not connected to libvirt");
	} else if (r->op != VIRT_OP_MONITOR) {
		int k = r->op == VIRT_OP_NMI ? virDomainInjectNMI(dom, 0)
			: r->op == VIRT_OP_RESET ? virDomainReset(dom, 0)
						 : virDomainShutdown(dom);

		if (k < 0) {
			m->result = -EIO;
			m->error = strdup(virt_last_error());
		}
	} else if (virDomainQemuMonitorCommand(dom, r->cmd, &reply, 0) < 0) {
		m->result = -EIO;
		m->error = strdup(virt_last_error());
	} else if (reply && strstr(reply, "\"error\"")) {
		m->result = -EIO;
		m->error = strdup(reply);
	}
	free(reply);
	if (dom)
		virDomainFree(dom);
	virt_post(v, m);
}

static void virt_on_wake(int watch, int fd, int events, void *opaque)
{
	struct virt *v = opaque;
	struct virt_req *reqs;
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&v->lock);
	reqs = v->reqs;
	v->reqs = NULL;
	pthread_mutex_unlock(&v->lock);
	while (reqs) {
		struct virt_req *next = reqs->next;

		virt_do_break(v, reqs);
		virt_req_free(reqs);
		reqs = next;
		pthread_mutex_lock(&v->lock);
		v->n_breaks--;
		pthread_mutex_unlock(&v->lock);
	}
}

static void virt_silent(void *userdata, virErrorPtr err)
{
	/* libvirt would print every error to stderr; we report them ourselves. */
}

static void *virt_thread(void *p)
{
	struct virt *v = p;
	int watch;

	virSetErrorFunc(NULL, virt_silent);
	watch = virEventAddHandle(v->wake[0], VIR_EVENT_HANDLE_READABLE, virt_on_wake, v, NULL);
	v->reconnect_timer = virEventAddTimeout(-1, virt_on_reconnect_timer, v, NULL);
	v->backoff_ms = 100;
	virt_connect(v);
	for (;;) {
		bool stop;

		if (virEventRunDefaultImpl() < 0)
			break;
		pthread_mutex_lock(&v->lock);
		stop = v->stop;
		pthread_mutex_unlock(&v->lock);
		if (stop)
			break;
		if (v->conn && v->closed) {
			virt_disconnect(v);
			virt_post_text(v, VIRT_MSG_STATUS, NULL, "lost the connection to %s; "
				       "reconnecting", v->uri);
			v->backoff_ms = 100;
			virt_schedule_reconnect(v);
		}
	}
	virt_disconnect(v);
	if (watch >= 0)
		virEventRemoveHandle(watch);
	virEventRemoveTimeout(v->reconnect_timer);
	return NULL;
}

/* ---- loop side ------------------------------------------------------------ */

static struct vdom **virt_find(struct virt *v, const char *uuid)
{
	struct vdom **pp;

	for (pp = &v->doms; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->uuid, uuid) == 0)
			break;
	return pp;
}

static void virt_remove(struct virt *v, struct vdom **pp, const char *why)
{
	struct vdom *d = *pp;

	*pp = d->next;
	domain_clear(v->env, &d->domain, why);
	free(d);
}

static void virt_apply_up(struct virt *v, struct virt_msg *m)
{
	struct domxml *dom = NULL;
	char *err = NULL;
	struct vdom **pp = virt_find(v, m->uuid), *d = *pp;
	int r;

	r = domxml_parse(m->xml, strlen(m->xml), &dom, &err);
	if (r < 0) {
		char esc[400];

		log_escape(err ? err : "?", err ? strlen(err) : 1, esc, sizeof(esc));
		log_error("libvirt domain %s: unusable XML: %s", m->uuid, esc);
		free(err);
		return;
	}
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d) {
			domxml_free(dom);
			return;
		}
		snprintf(d->uuid, sizeof(d->uuid), "%s", m->uuid);
		d->next = v->doms;
		v->doms = d;
	}
	d->seen = true;
	domain_apply(v->env, &d->domain, dom, v->origin, &v->source, "char");
	domxml_free(dom);
	/* A domain libvirt reports is running until an event says otherwise. */
	for (size_t i = 0; i < d->domain.n; i++)
		if (!d->domain.consoles[i]->vm_state[0])
			console_set_guest_state(d->domain.consoles[i], "running",
						CONSOLE_GUEST_OPEN_KEEP);
}

static void virt_apply_sync(struct virt *v, const char *list)
{
	for (struct vdom **pp = &v->doms; *pp;) {
		char needle[VIR_UUID_STRING_BUFLEN + 1];

		snprintf(needle, sizeof(needle), "%s\n", (*pp)->uuid);
		if (!strstr(list, needle))
			virt_remove(v, pp, "its domain is no longer running");
		else
			pp = &(*pp)->next;
	}
}

static void virt_handle(struct virt *v, struct virt_msg *m)
{
	struct vdom **pp;

	switch (m->type) {
	case VIRT_MSG_UP:
		virt_apply_up(v, m);
		break;
	case VIRT_MSG_DOWN:
		pp = virt_find(v, m->uuid);
		if (*pp)
			virt_remove(v, pp, m->text ? m->text : "its domain stopped");
		break;
	case VIRT_MSG_SYNC:
		virt_apply_sync(v, m->text ? m->text : "");
		break;
	case VIRT_MSG_EVENT:
		pp = virt_find(v, m->uuid);
		if (*pp && m->state[0])
			domain_set_guest_state(&(*pp)->domain, m->state);
		if (*pp && m->text)
			domain_mark(&(*pp)->domain, m->text);
		break;
	case VIRT_MSG_BREAK:
		m->req->done(m->req, m->result, m->error);
		break;
	case VIRT_MSG_STATUS:
		/* Said once: a libvirtd that stays away must not flood the journal. */
		if (m->text && strcmp(m->text, v->last_status) != 0) {
			char esc[600];

			log_info("libvirt: %s", log_escape(m->text, strlen(m->text), esc, sizeof(esc)));
			snprintf(v->last_status, sizeof(v->last_status), "%s", m->text);
		}
		break;
	}
}

static int virt_on_event(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	struct virt *v = userdata;
	struct virt_msg *m;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return 0;
	pthread_mutex_lock(&v->lock);
	m = v->msgs;
	v->msgs = NULL;
	v->msgs_tail = &v->msgs;
	pthread_mutex_unlock(&v->lock);
	while (m) {
		struct virt_msg *next = m->next;

		virt_handle(v, m);
		free(m->xml);
		free(m->text);
		free(m->error);
		free(m);
		m = next;
	}
	return 0;
}

/* Queue op (and, for VIRT_OP_MONITOR, a break on c's chardev) for the thread. */
static void virt_queue(struct virt *v, struct console *c, struct break_req *req, enum virt_op op)
{
	struct virt_req *r;
	json_t *cmd;
	bool full;

	if (!c->uuid || (op == VIRT_OP_MONITOR && !c->chardev_id)) {
		req->done(req, -EINVAL, "the domain has no UUID or the device no alias");
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r)
		r->reply = calloc(1, sizeof(*r->reply));
	if (!r || !r->reply) {
		virt_req_free(r);
		req->done(req, -ENOMEM, NULL);
		return;
	}
	r->reply->type = VIRT_MSG_BREAK;
	r->reply->req = req;
	r->req = req;
	r->op = op;
	cmd = op != VIRT_OP_MONITOR
		? json_object()
		: json_pack("{s:s, s:{s:s}}", "execute", "chardev-send-break", "arguments", "id",
			    c->chardev_id);
	r->cmd = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL; /* "{}" for the others */
	json_decref(cmd);
	if (!r->cmd) {
		virt_req_free(r);
		req->done(req, -ENOMEM, "cannot encode the QMP command");
		return;
	}
	snprintf(r->uuid, sizeof(r->uuid), "%s", c->uuid);
	pthread_mutex_lock(&v->lock);
	full = v->n_breaks >= VIRT_MAX_BREAKS;
	if (!full) {
		r->next = v->reqs;
		v->reqs = r;
		v->n_breaks++;
	}
	pthread_mutex_unlock(&v->lock);
	if (full) {
		virt_req_free(r);
		break_req_fail(req, -EBUSY, "%d breaks are already waiting for libvirt; try again "
			       "later", VIRT_MAX_BREAKS);
		return;
	}
	/* Queued: answered from the thread, or cancelled by virt_free(). A full pipe wakes it too. */
	if (write(v->wake[1], "b", 1) < 0 && errno != EAGAIN)
		log_warning_errno(negative_errno(), "libvirt: cannot wake the thread");
}

static void virt_send_break(struct source *s, struct console *c, struct break_req *req)
{
	struct virt *v = (struct virt *)s;

	if (!v->allow_monitor) {
		req->done(req, -EPERM, "a break to a libvirt-managed VM goes through the QEMU "
			  "monitor, which marks the domain tainted; ttyhubd allows it only with "
			  "--libvirt-qemu-monitor");
		return;
	}
	virt_queue(v, c, req, VIRT_OP_MONITOR);
}

/*
 * Rescue actions: sysrq is a break (the requester writes the key), so it
 * needs the monitor like break; nmi, reset and powerdown are libvirt calls
 * that need a read-write connection, which only --libvirt-power opens.
 */
static void virt_send_action(struct source *s, struct console *c, struct break_req *req)
{
	struct virt *v = (struct virt *)s;
	const char *name = proto_action_to_string(req->action);

	switch (req->action) {
	case PROTO_ACTION_SYSRQ:
		if (!v->allow_monitor) {
			req->done(req, -EOPNOTSUPP, "sysrq on a libvirt-managed VM is a serial break "
				  "through the QEMU monitor; ttyhubd allows it only with "
				  "--libvirt-qemu-monitor");
			return;
		}
		virt_queue(v, c, req, VIRT_OP_MONITOR);
		return;
	case PROTO_ACTION_NMI:
	case PROTO_ACTION_RESET:
	case PROTO_ACTION_POWERDOWN:
		if (!v->allow_power) {
			break_req_fail(req, -EOPNOTSUPP, "%s needs --libvirt-power (a read-write "
				       "libvirt connection)", name);
			return;
		}
		virt_queue(v, c, req, req->action == PROTO_ACTION_NMI ? VIRT_OP_NMI
				      : req->action == PROTO_ACTION_RESET ? VIRT_OP_RESET
									  : VIRT_OP_SHUTDOWN);
		return;
	default:
		req->done(req, -EOPNOTSUPP, "libvirt has no such action");
		return;
	}
}

static struct source *virt_free(struct source *s);

static const struct source_ops virt_ops = {
	.kind = "libvirt",
	.free = virt_free,
	.send_break = virt_send_break,
	.send_action = virt_send_action,
};

int source_libvirt_open(const struct source_env *env, const char *uri, bool allow_monitor,
			bool allow_power, struct source **ret)
{
	static bool initialised;
	struct virt *v;
	int r;

	if (!initialised) {
		/* Process-wide: before any connection is opened, and only once. */
		if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
			return log_error_errno(-EIO, "cannot initialise libvirt");
		initialised = true;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->source.ops = &virt_ops;
	v->env = env;
	v->allow_monitor = allow_monitor;
	v->allow_power = allow_power;
	v->event_fd = -EBADF;
	v->wake[0] = v->wake[1] = -EBADF;
	v->cb_lifecycle = v->cb_reboot = v->cb_added = v->cb_removed = -1;
	v->msgs_tail = &v->msgs;
	pthread_mutex_init(&v->lock, NULL);
	v->uri = strdup(uri);
	snprintf(v->origin, sizeof(v->origin), "libvirt %s", uri);
	if (!v->uri) {
		virt_free(&v->source);
		return -ENOMEM;
	}
	v->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->event_fd < 0 || pipe2(v->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
		r = log_error_errno(negative_errno(), "libvirt source");
		virt_free(&v->source);
		return r;
	}
	r = sd_event_add_io(env->event, &v->event_io, v->event_fd, EPOLLIN, virt_on_event, v);
	if (r >= 0)
		r = -pthread_create(&v->thread, NULL, virt_thread, v);
	if (r < 0) {
		virt_free(&v->source);
		return log_error_errno(r, "cannot start the libvirt thread");
	}
	v->thread_running = true;
	*ret = &v->source;
	return 0;
}

static struct source *virt_free(struct source *s)
{
	struct virt *v = (struct virt *)s;

	if (!v)
		return NULL;
	if (v->thread_running) {
		pthread_mutex_lock(&v->lock);
		v->stop = true;
		pthread_mutex_unlock(&v->lock);
		if (write(v->wake[1], "q", 1) < 0)
			log_warning_errno(negative_errno(), "libvirt: cannot stop the thread");
		pthread_join(v->thread, NULL);
	}
	virt_on_event(NULL, v->event_fd, 0, v); /* what the thread posted last */
	while (v->doms)
		virt_remove(v, &v->doms, "ttyhubd is shutting down");
	/* Breaks the thread never took: every request is answered. */
	while (v->reqs) {
		struct virt_req *next = v->reqs->next;
		struct break_req *req = v->reqs->req;

		virt_req_free(v->reqs);
		v->reqs = next;
		req->done(req, -ECANCELED, "ttyhubd is shutting down");
	}
	v->event_io = sd_event_source_disable_unref(v->event_io);
	v->event_fd = safe_close(v->event_fd);
	v->wake[0] = safe_close(v->wake[0]);
	v->wake[1] = safe_close(v->wake[1]);
	pthread_mutex_destroy(&v->lock);
	free(v->uri);
	free(v);
	return NULL;
}
