/* SPDX-License-Identifier: MIT */
/*
 * Standalone QEMU console source (see source-qmp.h).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domain.h"
#include "log.h"
#include "peer.h"
#include "qmp.h"
#include "source-qmp.h"
#include "util.h"

#define QEMU_BACKOFF_MAX_MS 2000
#define QEMU_QUERY_TIMEOUT_USEC (10 * 1000000ULL)

struct qemu {
	struct source source; /* first */
	const struct source_env *env;
	char *path;              /* owned: the QMP socket */
	char origin[300];
	struct qmp *qmp;         /* owned */
	sd_event_source *retry;  /* owned */
	unsigned backoff_ms;
	char name[128];          /* from query-name, or the socket's file name */
	char uuid[64];
	char bad_id[200];        /* why query-name/query-uuid's answer is refused, or "" */
	char run_state[32];
	struct domain domain;
	struct peer_guest guest; /* QEMU's user: the QMP peer's uid, once connected */
	char last_status[300];
};

static const struct source_ops qemu_ops;
static void qemu_connect(struct qemu *q);

static void qemu_status(struct qemu *q, const char *fmt, ...) _printf_(2, 3);
static void qemu_status(struct qemu *q, const char *fmt, ...)
{
	char text[sizeof(q->last_status)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (strcmp(text, q->last_status) != 0)
		log_info("qmp %s: %s", q->path, text);
	snprintf(q->last_status, sizeof(q->last_status), "%s", text);
}

static int qemu_on_retry(sd_event_source *es, uint64_t usec, void *userdata)
{
	qemu_connect(userdata);
	return 0;
}

static void qemu_schedule_retry(struct qemu *q)
{
	sd_event_source_set_time_relative(q->retry, (uint64_t)q->backoff_ms * 1000);
	sd_event_source_set_enabled(q->retry, SD_EVENT_ONESHOT);
	q->backoff_ms = MIN(q->backoff_ms * 2, (unsigned)QEMU_BACKOFF_MAX_MS);
}

/* "unix:/p,server=on" or "disconnected:unix:/p,server=on" -> "/p"; "pty:/dev/pts/3". */
static int qemu_chardev_path(const char *filename, enum domxml_backend *backend, char *path,
			     size_t size)
{
	const char *p = filename, *end;

	if (strncmp(p, "disconnected:", 13) == 0)
		p += 13;
	if (strncmp(p, "pty:", 4) == 0) {
		*backend = DOMXML_BACKEND_PTY;
		snprintf(path, size, "%s", p + 4);
		return 0;
	}
	if (strncmp(p, "unix:", 5) != 0 || !strstr(p, ",server=on"))
		return -EINVAL;
	p += 5;
	end = strchr(p, ',');
	if (!end || (size_t)(end - p) >= size || p[0] != '/')
		return -EINVAL;
	memcpy(path, p, (size_t)(end - p));
	path[end - p] = '\0';
	*backend = DOMXML_BACKEND_UNIX;
	return 0;
}

static char *strdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* One query-chardev entry as a console device; -ENOENT if it is not a console. */
static int qemu_chardev_dev(json_t *cd, const char *qmp_path, struct domxml_dev *dev)
{
	const char *label = json_string_value(json_object_get(cd, "label"));
	const char *filename = json_string_value(json_object_get(cd, "filename"));
	enum domxml_backend backend;
	char path[256];

	if (!label || !filename || strncmp(label, "compat_monitor", 14) == 0 ||
	    qemu_chardev_path(filename, &backend, path, sizeof(path)) < 0 ||
	    strcmp(path, qmp_path) == 0)
		return -ENOENT;
	*dev = (struct domxml_dev){
		.element = strdup(strstr(label, "console") ? "console" : "serial"),
		.alias = strdup(strncmp(label, "char", 4) == 0 && label[4] ? label + 4 : label),
		.port = -1,
		.type = strdup(backend == DOMXML_BACKEND_PTY ? "pty" : "unix"),
		.backend = backend,
		.path = strdup(path),
		.supported = true,
		.chardev = strdup(label),
	};
	if (!dev->element || !dev->alias || !dev->type || !dev->path || !dev->chardev)
		return -ENOMEM;
	return 0;
}

int source_qmp_chardevs_to_domain(json_t *reply, const char *qmp_path, const char *name,
				  const char *uuid, struct domxml **ret)
{
	struct domxml *dom = calloc(1, sizeof(*dom));
	size_t i, primary = 0;
	bool have_primary = false;
	json_t *cd;

	if (!dom)
		return -ENOMEM;
	dom->name = strdup(name);
	dom->uuid = strdup_or_null(uuid);
	dom->devs = calloc(DOMXML_MAX_DEVICES, sizeof(*dom->devs));
	if (!dom->name || (uuid && !dom->uuid) || !dom->devs)
		goto nomem;
	json_array_foreach(reply, i, cd) {
		struct domxml_dev *dev = &dom->devs[dom->n_devs];
		int r;

		if (dom->n_devs >= DOMXML_MAX_DEVICES)
			break;
		r = qemu_chardev_dev(cd, qmp_path, dev);
		if (r == -ENOENT)
			continue;
		dom->n_devs++; /* freed with dom, also when half-made */
		if (r < 0)
			goto nomem;
		if (!have_primary && strstr(dev->chardev, "serial")) {
			primary = dom->n_devs - 1;
			have_primary = true;
		}
	}
	/* The primary console comes first, as domain_apply expects. */
	if (primary > 0) {
		struct domxml_dev tmp = dom->devs[primary];

		memmove(dom->devs + 1, dom->devs, primary * sizeof(dom->devs[0]));
		dom->devs[0] = tmp;
	}
	*ret = dom;
	return 0;
nomem:
	domxml_free(dom);
	return -ENOMEM;
}

/* Build the domain from query-chardev's answer and apply it. */
static void qemu_on_chardevs(struct qmp *qmp, json_t *reply, const char *eclass, const char *edesc,
			     void *userdata)
{
	struct qemu *q = userdata;
	struct domxml *dom = NULL;
	json_t *cd;
	size_t i, n;
	int r;

	if (!reply) {
		qemu_status(q, "query-chardev failed: %s", edesc ? edesc : "?");
		return;
	}
	if (q->bad_id[0]) {
		char text[300];

		snprintf(text, sizeof(text), "consoles refused: %s", q->bad_id);
		qemu_status(q, "%s", text);
		registry_set_error(q->env->registry, q->origin, text);
		domain_clear(q->env, &q->domain, "the VM's identity is refused");
		return;
	}
	r = source_qmp_chardevs_to_domain(reply, q->path, q->name, q->uuid[0] ? q->uuid : NULL,
					  &dom);
	if (r < 0) {
		qemu_status(q, "cannot use query-chardev's answer: %s", strerror(-r));
		return;
	}
	registry_clear_error(q->env->registry, q->origin);
	n = dom->n_devs;
	domain_apply_guest(q->env, &q->domain, dom, q->origin, &q->source, NULL, &q->guest);
	domxml_free(dom);
	/* frontend-open: whether the guest has the port open (meaningful for virtio). */
	for (size_t k = 0; k < q->domain.n; k++) {
		struct console *c = q->domain.consoles[k];
		int open = CONSOLE_GUEST_OPEN_KEEP;

		json_array_foreach(reply, i, cd)
			if (c->chardev_id && json_is_boolean(json_object_get(cd, "frontend-open")) &&
			    strcmp(c->chardev_id, json_string_value(json_object_get(cd, "label")) ?: "") == 0)
				open = json_is_true(json_object_get(cd, "frontend-open"));
		console_set_guest_state(c, q->run_state, open);
	}
	qemu_status(q, "VM %s: %zu console%s", q->name, n, n == 1 ? "" : "s");
}

static void qemu_on_status(struct qmp *qmp, json_t *reply, const char *eclass, const char *edesc,
			   void *userdata)
{
	struct qemu *q = userdata;
	const char *st = json_string_value(json_object_get(reply, "status"));

	if (st)
		snprintf(q->run_state, sizeof(q->run_state), "%s", st);
	domain_set_guest_state(&q->domain, q->run_state);
}

static void qemu_on_uuid(struct qmp *qmp, json_t *reply, const char *eclass, const char *edesc,
			 void *userdata)
{
	struct qemu *q = userdata;
	const char *uuid = json_string_value(json_object_get(reply, "UUID"));

	/* QEMU reports the all-zero UUID when none was given: treat it as none. */
	if (!uuid || strcmp(uuid, "00000000-0000-0000-0000-000000000000") == 0)
		return;
	/* Never cut: the registry refuses what is not a canonical UUID, a cut one included. */
	if (strlen(uuid) >= sizeof(q->uuid))
		snprintf(q->bad_id, sizeof(q->bad_id), "query-uuid answered %zu bytes",
			 strlen(uuid));
	else
		snprintf(q->uuid, sizeof(q->uuid), "%s", uuid);
}

static void qemu_on_name(struct qmp *qmp, json_t *reply, const char *eclass, const char *edesc,
			 void *userdata)
{
	struct qemu *q = userdata;
	const char *name = json_string_value(json_object_get(reply, "name"));

	if (!name || !name[0])
		return;
	/* Never cut: a cut name could be another VM's. */
	if (strlen(name) >= sizeof(q->name))
		snprintf(q->bad_id, sizeof(q->bad_id),
			 "query-name answered a name of %zu bytes (at most %zu)", strlen(name),
			 sizeof(q->name) - 1);
	else
		snprintf(q->name, sizeof(q->name), "%s", name);
}

static void qemu_on_ready(struct qmp *qmp, void *userdata)
{
	struct qemu *q = userdata;

	q->backoff_ms = 100;
	/* Replies come in order: name and uuid are known when the chardevs arrive. */
	qmp_execute(qmp, "query-name", NULL, qemu_on_name, q, QEMU_QUERY_TIMEOUT_USEC);
	qmp_execute(qmp, "query-uuid", NULL, qemu_on_uuid, q, QEMU_QUERY_TIMEOUT_USEC);
	qmp_execute(qmp, "query-chardev", NULL, qemu_on_chardevs, q, QEMU_QUERY_TIMEOUT_USEC);
	qmp_execute(qmp, "query-status", NULL, qemu_on_status, q, QEMU_QUERY_TIMEOUT_USEC);
}

static void qemu_set_state(struct qemu *q, const char *state, const char *marker)
{
	snprintf(q->run_state, sizeof(q->run_state), "%s", state);
	domain_set_guest_state(&q->domain, state);
	if (marker)
		domain_mark(&q->domain, marker);
}

static void qemu_on_event(struct qmp *qmp, const char *name, json_t *data, void *userdata)
{
	struct qemu *q = userdata;
	const char *reason = json_string_value(json_object_get(data, "reason"));
	char text[200], esc[100];

	if (reason)
		log_escape(reason, strlen(reason), esc, sizeof(esc));
	if (strcmp(name, "RESET") == 0) {
		snprintf(text, sizeof(text), "guest reset (%s)", reason ? esc : "?");
		domain_mark(&q->domain, text);
	} else if (strcmp(name, "SHUTDOWN") == 0) {
		snprintf(text, sizeof(text), "guest shut down (%s)", reason ? esc : "?");
		qemu_set_state(q, "shutdown", text);
	} else if (strcmp(name, "STOP") == 0)
		qemu_set_state(q, "paused", "guest paused");
	else if (strcmp(name, "RESUME") == 0)
		qemu_set_state(q, "running", "guest resumed");
	else if (strcmp(name, "GUEST_PANICKED") == 0)
		qemu_set_state(q, "guest-panicked", "guest panicked");
	else if (strcmp(name, "VSERPORT_CHANGE") == 0) {
		/* A virtio port opened or closed by the guest: re-read frontend-open. */
		qmp_execute(qmp, "query-chardev", NULL, qemu_on_chardevs, q, QEMU_QUERY_TIMEOUT_USEC);
	}
}

static void qemu_on_close(struct qmp *qmp, const char *reason, void *userdata)
{
	struct qemu *q = userdata;

	qemu_status(q, "monitor closed (%s); reconnecting", reason);
	q->bad_id[0] = '\0'; /* asked again after the reconnect */
	/* Freed from its own callback: allowed by qmp_free(). */
	q->qmp = qmp_free(q->qmp);
	qemu_set_state(q, "gone", NULL);
	q->backoff_ms = 100;
	qemu_schedule_retry(q);
}

static const struct qmp_callbacks qemu_qmp_callbacks = {
	.on_ready = qemu_on_ready,
	.on_event = qemu_on_event,
	.on_close = qemu_on_close,
};

/*
 * Connect to the QMP socket itself as carefully as to a chardev: the very
 * inode checked, and its listener must be a guest (never ttyhubd, never
 * root or ttyhubd's user unless --guest-user names it).  Its uid is then
 * what this source's chardevs must be owned by and connect to.
 */
static void qemu_connect(struct qemu *q)
{
	const struct peer_guest *want = chardev_get_guest_user();
	_cleanup_close_ int fd = -EBADF;
	struct stat st = {};
	struct ucred peer = {};
	struct passwd *pw;
	char why[256];
	int r;

	fd = chardev_socket_connect(q->path, (uid_t)-1, &st, &peer);
	if (fd == -ELOOP) {
		qemu_status(q, "%s is a symbolic link; refusing to follow it; retrying", q->path);
		goto retry;
	}
	if (fd == -ENOTSOCK) {
		qemu_status(q, "%s is not a UNIX socket; retrying", q->path);
		goto retry;
	}
	if (fd < 0) {
		qemu_status(q, "cannot connect: %s; retrying", strerror(-fd));
		goto retry;
	}
	if (peer_check(want, peer.pid, peer.uid, getpid(), geteuid(), q->path, why,
		       sizeof(why)) < 0)
		goto refused;
	/* The listener made the socket: a path owned by someone else was put there for it. */
	if (st.st_uid != peer.uid) {
		snprintf(why, sizeof(why), "%s belongs to uid %u but its listener is uid %u",
			 q->path, (unsigned)st.st_uid, (unsigned)peer.uid);
		goto refused;
	}
	r = qmp_open_fd(q->env->event, fd, &qemu_qmp_callbacks, q, &q->qmp);
	if (r < 0) {
		qemu_status(q, "cannot connect: %s; retrying", strerror(-r));
		goto retry;
	}
	TAKE_FD(fd);
	q->guest = (struct peer_guest){ .set = true, .uid = peer.uid, .owns_path = true };
	pw = getpwuid(peer.uid);
	if (pw)
		snprintf(q->guest.name, sizeof(q->guest.name), "%s", pw->pw_name);
	return;
refused:
	/* Shown in list too: this source serves nothing until it is fixed. */
	qemu_status(q, "refused: %s; retrying", why);
	registry_set_error(q->env->registry, q->origin, q->last_status);
retry:
	qemu_schedule_retry(q);
}

/* QMP answers every command, "Disconnected" included when the monitor goes or is freed. */
static void qemu_on_break(struct qmp *qmp, json_t *reply, const char *eclass, const char *edesc,
			  void *userdata)
{
	struct break_req *req = userdata;

	req->done(req, reply ? 0 : -EIO, edesc);
}

static void qemu_send_break(struct source *s, struct console *c, struct break_req *req)
{
	struct qemu *q = (struct qemu *)s;
	json_t *args;
	int r;

	if (!q->qmp || qmp_get_state(q->qmp) == QMP_STATE_CLOSED) {
		req->done(req, -ENOTCONN, "QEMU's monitor is not connected");
		return;
	}
	args = json_pack("{s:s}", "id", c->chardev_id);
	if (!args) {
		req->done(req, -ENOMEM, NULL);
		return;
	}
	r = qmp_execute(q->qmp, "chardev-send-break", args, qemu_on_break, req,
			QEMU_QUERY_TIMEOUT_USEC);
	json_decref(args);
	if (r < 0)
		req->done(req, r, NULL);
}

/*
 * Rescue actions: sysrq is the break alone (the requester writes the key,
 * see struct break_req); the others are one QMP command each.
 */
static void qemu_send_action(struct source *s, struct console *c, struct break_req *req)
{
	static const char *const commands[_PROTO_ACTION_MAX] = {
		[PROTO_ACTION_NMI] = "inject-nmi",
		[PROTO_ACTION_RESET] = "system_reset",
		[PROTO_ACTION_POWERDOWN] = "system_powerdown",
	};
	struct qemu *q = (struct qemu *)s;
	int r;

	if (req->action == PROTO_ACTION_SYSRQ) {
		qemu_send_break(s, c, req);
		return;
	}
	if (req->action < 0 || req->action >= _PROTO_ACTION_MAX || !commands[req->action]) {
		req->done(req, -EOPNOTSUPP, "QEMU has no such action");
		return;
	}
	if (!q->qmp || qmp_get_state(q->qmp) == QMP_STATE_CLOSED) {
		req->done(req, -ENOTCONN, "QEMU's monitor is not connected");
		return;
	}
	r = qmp_execute(q->qmp, commands[req->action], NULL, qemu_on_break, req,
			QEMU_QUERY_TIMEOUT_USEC);
	if (r < 0)
		req->done(req, r, NULL);
}

static struct source *qemu_free(struct source *s);

static const struct source_ops qemu_ops = {
	.kind = "qmp",
	.free = qemu_free,
	.send_break = qemu_send_break,
	.send_action = qemu_send_action,
};

int source_qmp_open(const struct source_env *env, const char *qmp_path, struct source **ret)
{
	const char *base = strrchr(qmp_path, '/');
	struct qemu *q;
	int r;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->source.ops = &qemu_ops;
	q->env = env;
	q->backoff_ms = 100;
	q->path = strdup(qmp_path);
	if (!q->path) {
		free(q);
		return -ENOMEM;
	}
	snprintf(q->name, sizeof(q->name), "%s", base ? base + 1 : qmp_path);
	if (strrchr(q->name, '.'))
		*strrchr(q->name, '.') = '\0';
	snprintf(q->origin, sizeof(q->origin), "qmp %s", qmp_path);
	r = sd_event_add_time_relative(env->event, &q->retry, CLOCK_MONOTONIC, 0, 10 * 1000,
				       qemu_on_retry, q);
	if (r < 0) {
		qemu_free(&q->source);
		return r;
	}
	sd_event_source_set_enabled(q->retry, SD_EVENT_OFF);
	qemu_connect(q);
	*ret = &q->source;
	return 0;
}

static struct source *qemu_free(struct source *s)
{
	struct qemu *q = (struct qemu *)s;

	if (!q)
		return NULL;
	q->qmp = qmp_free(q->qmp);
	domain_clear(q->env, &q->domain, "ttyhubd is shutting down");
	q->retry = sd_event_source_disable_unref(q->retry);
	free(q->path);
	free(q);
	return NULL;
}
