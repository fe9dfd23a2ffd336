/* SPDX-License-Identifier: MIT */
/*
 * ttyhubd process context (see server.h): the broker socket and who may use
 * it, client lifetime, and adding/removing consoles.
 *
 * Authorisation (SO_PEERCRED): root, our own uid, members of the admin
 * group (primary or supplementary, via SO_PEERGROUPS), and the configured
 * front users.  Only fronts may assert an SSH principal in hello.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "client.h"
#include "console.h"
#include "log.h"
#include "server.h"
#include "qemu.h"
#include "util.h"
#include "virt.h"
#include "xmldir.h"

static int server_on_sweep(sd_event_source *es, void *userdata)
{
	struct server *s = userdata;
	struct client *c;

	while ((c = TAILQ_FIRST(&s->dead))) {
		TAILQ_REMOVE(&s->dead, c, server_entry);
		client_free(c);
	}
	return 0;
}

int server_init(struct server *s, sd_event *e, const struct server_config *cfg)
{
	int r;

	*s = (struct server){ .event = sd_event_ref(e), .config = *cfg, .listen_fd = -EBADF };
	/* Our own copy: a reload frees the strings the options pointed into. */
	s->config.socket_path = strdup(cfg->socket_path);
	s->config.log_dir = cfg->log_dir ? strdup(cfg->log_dir) : NULL;
	if (!s->config.socket_path || (cfg->log_dir && !s->config.log_dir))
		return -ENOMEM;
	registry_init(&s->registry);
	TAILQ_INIT(&s->clients);
	TAILQ_INIT(&s->dead);
	r = sd_event_add_defer(e, &s->sweep, server_on_sweep, s);
	if (r < 0)
		return r;
	r = poller_new(e, &s->poller);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
}

void server_done(struct server *s)
{
	struct console *c;
	struct client *cl;

	for (size_t i = 0; i < s->n_virts; i++)
		s->virts[i] = virt_free(s->virts[i]);
	for (size_t i = 0; i < s->n_qemus; i++)
		s->qemus[i] = qemu_free(s->qemus[i]);
	for (size_t i = 0; i < s->n_xmldirs; i++)
		s->xmldirs[i] = xmldir_free(s->xmldirs[i]);
	while ((c = TAILQ_FIRST(&s->registry.consoles))) {
		registry_remove(&s->registry, c);
		console_free(c, "ttyhubd is shutting down");
	}
	while ((cl = TAILQ_FIRST(&s->clients))) {
		TAILQ_REMOVE(&s->clients, cl, server_entry);
		client_free(cl);
	}
	server_on_sweep(NULL, s);
	registry_done(&s->registry);
	s->poller = poller_free(s->poller);
	s->listen_io = sd_event_source_disable_unref(s->listen_io);
	if (s->listen_fd_ours && s->config.socket_path)
		unlink(s->config.socket_path);
	s->listen_fd = safe_close(s->listen_fd);
	free((char *)s->config.socket_path);
	free((char *)s->config.log_dir);
	s->config.socket_path = NULL;
	s->config.log_dir = NULL;
	s->sweep = sd_event_source_disable_unref(s->sweep);
	s->event = sd_event_unref(s->event);
}

void server_client_dead(struct server *s, struct client *c)
{
	TAILQ_REMOVE(&s->clients, c, server_entry);
	TAILQ_INSERT_TAIL(&s->dead, c, server_entry);
	s->n_clients--;
	sd_event_source_set_enabled(s->sweep, SD_EVENT_ONESHOT);
}

static bool server_peer_in_admin_group(struct server *s, int fd, const struct ucred *cred)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (s->config.admin_gid == (gid_t)-1)
		return false;
	if (cred->gid == s->config.admin_gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == s->config.admin_gid)
			return true;
	return false;
}

/* Returns 1 for a front, 0 for an admin, -EPERM if the peer may not connect. */
static int server_authorize(struct server *s, int fd, const struct ucred *cred)
{
	for (size_t i = 0; i < s->config.n_front_uids; i++)
		if (cred->uid == s->config.front_uids[i])
			return 1;
	if (cred->uid == 0 || cred->uid == geteuid() || server_peer_in_admin_group(s, fd, cred))
		return 0;
	return -EPERM;
}

static void server_reject(int fd, const char *code, const char *text)
{
	struct obuf b;
	json_t *msg;

	if (obuf_init(&b, 1024) < 0)
		return;
	msg = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", text);
	if (msg && proto_put_control(&b, msg) >= 0)
		obuf_flush(&b, fd);
	json_decref(msg);
	obuf_done(&b);
}

static int server_on_accept(sd_event_source *es, int lfd, uint32_t revents, void *userdata)
{
	struct server *s = userdata;
	_cleanup_close_ int fd = -EBADF;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct client *c;
	struct passwd *pw;
	int front, r;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warning_errno(negative_errno(), "accept");
		return 0;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warning_errno(negative_errno(), "SO_PEERCRED");
		return 0;
	}
	front = server_authorize(s, fd, &cred);
	if (front < 0) {
		log_notice("refused broker connection from uid %u pid %d: not authorised",
			   (unsigned)cred.uid, (int)cred.pid);
		server_reject(fd, PROTO_E_DENIED,
			      "permission denied: not root, not in the admin group, not a front");
		return 0;
	}
	if (s->n_clients >= s->config.max_clients) {
		log_warning("refused broker connection from pid %d: %u clients already",
			    (int)cred.pid, s->n_clients);
		server_reject(fd, PROTO_E_BUSY, "too many clients");
		return 0;
	}
	r = client_new(s, fd, &c);
	if (r < 0)
		return log_error_errno(r, "cannot set up client"), 0;
	TAKE_FD(fd);
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->front = front == 1;
	pw = getpwuid(cred.uid);
	if (pw)
		snprintf(c->label, sizeof(c->label), "%.64s (local, pid %d)", pw->pw_name,
			 (int)cred.pid);
	else
		snprintf(c->label, sizeof(c->label), "uid %u (local, pid %d)", (unsigned)cred.uid,
			 (int)cred.pid);
	TAILQ_INSERT_TAIL(&s->clients, c, server_entry);
	s->n_clients++;
	return 0;
}

/* Refuse to steal a socket path another live ttyhubd answers on. */
static int server_bind(struct server *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = s->config.socket_path;
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	mode_t old;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(-ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(negative_errno(), "socket");
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return log_error_errno(-EEXIST, "%s exists and is not a socket", path);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return log_error_errno(-EADDRINUSE,
					       "%s is in use: another ttyhubd is running", path);
		unlink(path);
		fd = safe_close(fd);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return log_error_errno(negative_errno(), "socket");
	}
	old = umask(0117);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0)
		return log_error_errno(negative_errno(), "cannot bind %s", path);
	if (s->config.admin_gid != (gid_t)-1 && chown(path, (uid_t)-1, s->config.admin_gid) < 0)
		log_warning_errno(negative_errno(), "cannot give %s to the admin group", path);
	if (listen(fd, 128) < 0)
		return log_error_errno(negative_errno(), "listen on %s", path);
	s->listen_fd_ours = true;
	return TAKE_FD(fd);
}

int server_listen(struct server *s)
{
	int n, r;

	n = sd_listen_fds(1);
	if (n > 1)
		return log_error_errno(-EINVAL, "expected one socket from systemd, got %d", n);
	if (n == 1) {
		if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
			return log_error_errno(-EINVAL, "the socket from systemd is not a "
							"listening UNIX stream socket");
		s->listen_fd = SD_LISTEN_FDS_START;
		r = fcntl(s->listen_fd, F_SETFL, O_NONBLOCK);
		if (r < 0)
			return log_error_errno(negative_errno(), "fcntl");
	} else {
		r = server_bind(s);
		if (r < 0)
			return r;
		s->listen_fd = r;
	}
	return sd_event_add_io(s->event, &s->listen_io, s->listen_fd, EPOLLIN, server_on_accept, s);
}

int server_add_console(struct server *s, const struct console_spec *spec, struct console **ret)
{
	const char *origin = spec->origin ? spec->origin : "?";
	char err[700], text[1200];
	struct console *c;
	int r;

	/* Names are refused, never cut: a cut name could be another console's. */
	r = registry_check_names(spec->vm, spec->alias, err, sizeof(err));
	if (r < 0) {
		char vm[REGISTRY_VM_MAX], alias[REGISTRY_ALIAS_MAX];
		char name[REGISTRY_VM_MAX + REGISTRY_ALIAS_MAX];

		/* Keyed by the cut name the console would have had, so a rescan replaces it. */
		log_escape(spec->vm, strlen(spec->vm), vm, sizeof(vm));
		snprintf(name, sizeof(name), "%s%s%s", vm, spec->alias ? ":" : "",
			 spec->alias ? log_escape(spec->alias, strlen(spec->alias), alias,
						  sizeof(alias)) : "");
		log_error("%s: console %s refused: %s; ignoring this definition", origin, name, err);
		snprintf(text, sizeof(text), "console %s refused: %s", name, err);
		registry_set_refused(&s->registry, origin, name, text);
		return r;
	}
	r = console_new(s, spec, &c);
	if (r < 0)
		return log_error_errno(r, "cannot create console for %s", spec->vm);
	r = registry_add(&s->registry, c, err, sizeof(err));
	if (r < 0) {
		log_error("%s: console %s refused: %s; ignoring this definition", origin, c->name,
			  err);
		snprintf(text, sizeof(text), "console %s refused: %s", c->name, err);
		registry_set_refused(&s->registry, origin, c->name, text);
		console_free(c, NULL);
		return r;
	}
	if (c->supported)
		log_info("console %s: %s %s (from %s)", c->name, c->type ? c->type : "unix",
			 c->path, c->origin);
	else
		log_notice("console %s: not supported: %s", c->name, c->reason);
	r = console_start(c);
	if (r < 0) {
		registry_remove(&s->registry, c);
		console_free(c, NULL);
		return log_error_errno(r, "cannot start console");
	}
	if (ret)
		*ret = c;
	return 0;
}

void server_remove_console(struct server *s, struct console *c, const char *why)
{
	log_info("console %s removed: %s", c->name, why);
	registry_remove(&s->registry, c);
	console_free(c, why);
}

struct client *server_find_client(struct server *s, unsigned id)
{
	struct client *c;

	TAILQ_FOREACH(c, &s->clients, server_entry)
		if (c->id == id)
			return c;
	return NULL;
}

void server_console_break(struct server *s, struct console *c, struct client *cl)
{
	char err[300];
	int r;

	if (!c->ops || !c->ops->send_break || !c->chardev_id) {
		client_error(cl, PROTO_E_NOT_AVAILABLE,
			     "serial break is not available for %s: its source (%s) has no QEMU "
			     "control channel; use --qmp or --libvirt", c->name,
			     c->origin ? c->origin : "?");
		return;
	}
	err[0] = '\0';
	r = c->ops->send_break(c->ops_data, c, cl->id, err, sizeof(err));
	if (r < 0)
		client_error(cl, PROTO_E_NOT_AVAILABLE, "cannot send a break to %s: %s", c->name,
			     err[0] ? err : strerror(-r));
}

void server_break_done(struct server *s, unsigned client_id, const char *console, int r,
		       const char *message)
{
	struct client *cl = server_find_client(s, client_id);
	struct console *con = registry_find_exact(&s->registry, console);
	json_t *msg;

	if (r >= 0 && con) {
		conslog_markf(con->log, "serial break sent by %s", cl ? cl->label : "a client");
		log_info("serial break sent to %s by %s", console, cl ? cl->label : "a client");
		console_announce(con, "%s sent a serial break", cl ? cl->label : "someone");
	}
	if (!cl)
		return;
	if (r < 0) {
		client_error(cl, PROTO_E_NOT_AVAILABLE, "break to %s failed: %s", console,
			     message ? message : strerror(-r));
	} else {
		msg = json_pack("{s:s, s:s}", "type", "break-sent", "console", console);
		if (msg)
			client_send(cl, msg);
		json_decref(msg);
	}
	client_flush(cl);
}
