/* SPDX-License-Identifier: MIT */
/*
 * ttyhubd process context (see server.h): the broker socket and who may use
 * it, client lifetime, the sources' list, and serial breaks and rescue
 * actions (sysrq, nmi, reset, powerdown) on behalf of clients (checked and
 * rate-limited here, sent by the console's source, answered through a
 * struct break_req).
 *
 * Authorisation (SO_PEERCRED): root, our own uid, members of the admin
 * group (primary or supplementary, via SO_PEERGROUPS), and the configured
 * front users.  Only fronts may assert an SSH principal in hello.  A peer
 * that is ttyhubd itself (a console pointed at the broker socket) is refused.
 *
 * Rights: the access file is loaded here (policy.h) at start and on SIGHUP;
 * a connection with a principal has the rights its key's line gives, and a
 * reload applies to the connections already open.
 *
 * Slots: fronts are counted against max_clients, local admins apart from
 * them (max_clients or SERVER_ADMIN_RESERVE at most), so fronts cannot lock
 * admins out.  A
 * front user that is also an admin (root as the front in tests) takes an
 * admin slot when the front slots are full.
 *
 * Labels: what other clients see of a local peer is "local admin" (or
 * "local front"); its user name and pid go to the logs and to local admins
 * only (client->att.audit, client->user).
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
#include "message.h"
#include "policy.h"
#include "server.h"
#include "source.h"
#include "util.h"
#include "weblink.h"

/* The break budget of one console, by name (GCRA: "theoretical arrival time"). */
struct server_break_bucket {
	char *name;   /* owned */
	uint64_t tat; /* CLOCK_MONOTONIC usec; the budget is full again from here on */
};

static int server_policy_load(struct server *s);

static void server_accept_resume(struct server *s)
{
	if (!s->accept_paused)
		return;
	s->accept_paused = false;
	if (s->accept_retry)
		sd_event_source_set_enabled(s->accept_retry, SD_EVENT_OFF);
	if (s->listen_io)
		sd_event_source_set_enabled(s->listen_io, SD_EVENT_ON);
}

static int server_on_sweep(sd_event_source *es, void *userdata)
{
	struct server *s = userdata;
	struct client *c;
	bool freed = false;

	while ((c = TAILQ_FIRST(&s->dead))) {
		TAILQ_REMOVE(&s->dead, c, server_entry);
		client_free(c);
		freed = true;
	}
	/* A closed client gave back an fd: try accept() again at once. */
	if (freed && s->event)
		server_accept_resume(s);
	return 0;
}

static void server_client_dead(void *userdata, struct client *c);
static void server_console_break(void *userdata, struct console *c, struct client *cl);
static void server_console_action(void *userdata, struct console *c, struct client *cl,
				  enum proto_action action, char key);

/* Every client gone, every writer's input handed to its (connected) chardev? */
static bool server_stopped(const struct server *s)
{
	const struct console *c;

	if (s->n_clients > 0)
		return false;
	TAILQ_FOREACH(c, &s->registry.consoles, entry)
		if (obuf_len(&c->input) > 0 && c->chardev.state == CHARDEV_CONNECTED)
			return false;
	return true;
}

/* Looked at every 10 ms while stopping: a handful of times, locally. */
static int server_on_stop_check(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct server *s = userdata;

	if (server_stopped(s))
		return sd_event_exit(s->event, 0);
	if (usec >= s->stop_deadline) {
		log_notice("stopping: %u client%s still connected after %llu ms; not waiting longer",
			   s->n_clients, s->n_clients == 1 ? "" : "s",
			   (unsigned long long)(SERVER_STOP_USEC / 1000));
		return sd_event_exit(s->event, 0);
	}
	sd_event_source_set_time(es, usec + 10 * 1000);
	return sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
}

int server_stop(struct server *s)
{
	struct client *c, *next;
	uint64_t now;
	int r;

	s->accept_paused = false;
	if (s->accept_retry)
		sd_event_source_set_enabled(s->accept_retry, SD_EVENT_OFF);
	if (s->listen_io)
		sd_event_source_set_enabled(s->listen_io, SD_EVENT_OFF);
	/* client_stop() may kill a client, which moves it to the dead list. */
	for (c = TAILQ_FIRST(&s->clients); c; c = next) {
		next = TAILQ_NEXT(c, server_entry);
		client_stop(c);
	}
	r = sd_event_now(s->event, CLOCK_MONOTONIC, &now);
	if (r >= 0) {
		s->stop_deadline = now + SERVER_STOP_USEC;
		r = sd_event_add_time(s->event, &s->stop_check, CLOCK_MONOTONIC, now, 0,
				      server_on_stop_check, s);
	}
	if (r < 0) {
		sd_event_exit(s->event, 0);
		return r;
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
	s->config.access_path = cfg->access_path ? strdup(cfg->access_path) : NULL;
	if (!s->config.socket_path || (cfg->log_dir && !s->config.log_dir) ||
	    (cfg->access_path && !s->config.access_path))
		return -ENOMEM;
	s->log_config = (struct conslog_config){
		.dir = s->config.log_dir,
		.max_size = s->config.log_max_size,
		.backups = s->config.log_backups,
		.timestamps = s->config.log_timestamps,
	};
	s->console_env = (struct console_env){
		.event = e,
		.ring_size = s->config.ring_size,
		.log = s->config.log_dir ? &s->log_config : NULL,
		.record = &s->record,
	};
	s->source_env = (struct source_env){
		.event = e,
		.registry = &s->registry,
		.console = &s->console_env,
	};
	s->client_env = (struct client_env){
		.poller = NULL, /* below, once made */
		.registry = &s->registry,
		.policy = &s->policy,
		.default_replay = &s->config.default_replay,
		.no_consoles = cfg->no_consoles,
		.dead = server_client_dead,
		.send_break = server_console_break,
		.send_action = server_console_action,
		.userdata = s,
	};
	TAILQ_INIT(&s->sources);
	r = weblink_new(WEBLINK_LINKS_MAX, WEBLINK_SESSIONS_MAX, &s->weblink);
	if (r < 0)
		return r;
	s->client_env.weblink = s->weblink;
	s->client_env.web_url = &s->web_url;
	s->config.record_dir = NULL; /* the caller's string: server_set_record() keeps a copy */
	r = server_set_record(s, cfg->record_dir, cfg->record_max_size, cfg->record_keep,
			      cfg->record_redact);
	if (r < 0)
		return r;
	s->config.web_url = NULL; /* the caller's string: server_set_web() keeps a copy */
	r = server_set_web(s, cfg->web_url, cfg->web_link_ttl, cfg->web_session_ttl);
	if (r < 0)
		return r;
	r = server_policy_load(s);
	if (r < 0)
		return r;
	registry_init(&s->registry);
	TAILQ_INIT(&s->clients);
	TAILQ_INIT(&s->dead);
	r = sd_event_add_defer(e, &s->sweep, server_on_sweep, s);
	if (r < 0)
		return r;
	r = poller_new(e, &s->poller);
	if (r < 0)
		return r;
	s->client_env.poller = s->poller;
	return sd_event_source_set_enabled(s->sweep, SD_EVENT_OFF);
}

void server_done(struct server *s)
{
	struct console *c;
	struct client *cl;

	/*
	 * Everyone attached hears "shutdown" (come back: fronts reconnect and
	 * resume) before the sources free their consoles, which would say
	 * "console-gone" (the console no longer exists: fronts give up).
	 */
	TAILQ_FOREACH(c, &s->registry.consoles, entry)
		console_detach_all(c, DETACH_SHUTDOWN, "ttyhubd is shutting down");
	source_list_free(&s->sources);
	while ((c = TAILQ_FIRST(&s->registry.consoles))) {
		registry_remove(&s->registry, c);
		console_detach_all(c, DETACH_SHUTDOWN, "ttyhubd is shutting down");
		console_free(c, "ttyhubd is shutting down");
	}
	while ((cl = TAILQ_FIRST(&s->clients))) {
		TAILQ_REMOVE(&s->clients, cl, server_entry);
		client_free(cl);
	}
	s->accept_paused = false;
	server_on_sweep(NULL, s);
	for (size_t i = 0; i < s->n_breaks; i++)
		free(s->breaks[i].name);
	free(s->breaks);
	s->breaks = NULL;
	s->n_breaks = 0;
	s->accept_retry = sd_event_source_disable_unref(s->accept_retry);
	registry_done(&s->registry);
	s->poller = poller_free(s->poller);
	s->listen_io = sd_event_source_disable_unref(s->listen_io);
	if (s->listen_fd_ours && s->config.socket_path)
		unlink(s->config.socket_path);
	s->listen_fd = safe_close(s->listen_fd);
	s->policy = policy_free(s->policy);
	s->weblink = weblink_free(s->weblink);
	free(s->web_url);
	s->web_url = NULL;
	s->record = NULL;
	free(s->record_dir);
	s->record_dir = NULL;
	free((char *)s->config.socket_path);
	free((char *)s->config.log_dir);
	free((char *)s->config.access_path);
	s->config.socket_path = NULL;
	s->config.log_dir = NULL;
	s->config.access_path = NULL;
	s->sweep = sd_event_source_disable_unref(s->sweep);
	s->stop_check = sd_event_source_disable_unref(s->stop_check);
	s->event = sd_event_unref(s->event);
}

/* The log line that says an access file took effect (the test harness waits for it). */
static void server_policy_log_loaded(const char *path, const struct policy *p)
{
	log_info("access file %s loaded: %zu keys, %zu bad lines", path, p->n_keys,
		 p->file ? p->file->n_errors : 0);
}

/*
 * At start.  No file means no key may log in (said once, here): local admins
 * still work, and a file added later takes effect on SIGHUP.  A file that
 * cannot be read is the same, said louder: ttyhubd still serves its admins.
 */
static int server_policy_load(struct server *s)
{
	const char *path = s->config.access_path;
	int r = path ? policy_load(path, &s->policy) : -ENOENT;

	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		server_policy_log_loaded(path, s->policy);
		return 0;
	}
	if (r == -ENOENT)
		log_notice("access file %s does not exist: no SSH key may log in", path ? path : "-");
	else
		log_error_errno(r, "cannot read access file %s: no SSH key may log in", path);
	return policy_new_empty(&s->policy);
}

int server_set_record(struct server *s, const char *dir, size_t max_size, unsigned keep,
		      bool redact)
{
	char *copy = dir ? strdup(dir) : NULL;

	if (dir && !copy)
		return -ENOMEM;
	free(s->record_dir);
	s->record_dir = copy;
	s->record_config = (struct recording_config){
		.dir = s->record_dir,
		.max_size = MAX(max_size ? max_size : RECORDING_DEFAULT_MAX_SIZE, RECORDING_MIN_SIZE),
		.keep = keep ? MIN(keep, (unsigned)RECORDING_MAX_KEEP) : RECORDING_DEFAULT_KEEP,
		.redact = redact,
	};
	/* Sessions already recording keep the settings they started with. */
	s->record = s->record_dir ? &s->record_config : NULL;
	return 0;
}

int server_set_web(struct server *s, const char *url, unsigned link_ttl, unsigned session_ttl)
{
	char *copy = url ? strdup(url) : NULL;

	if (url && !copy)
		return -ENOMEM;
	free(s->web_url);
	s->web_url = copy;
	s->config.web_link_ttl = link_ttl ? link_ttl : WEBLINK_LINK_TTL_DEFAULT;
	s->config.web_session_ttl = session_ttl ? session_ttl : WEBLINK_SESSION_TTL_DEFAULT;
	weblink_set_ttl(s->weblink, s->config.web_link_ttl * 1000000ULL,
			s->config.web_session_ttl * 1000000ULL);
	return 0;
}

/*
 * weblink_revoke(): a link or session whose key the new access file no
 * longer allows (from the address it was minted or redeemed from) goes, as
 * an SSH connection of that key does.
 */
static bool server_weblink_gone(void *userdata, struct weblink_entry *e, bool is_session)
{
	struct policy *p = userdata;
	char tag[WEBLINK_TAG_LEN + 1];

	if (!e->grant.principal || policy_bind(p, e->grant.principal) >= 0)
		return false;
	weblink_tag(e->hash, tag);
	log_notice("web %s %s of key %s for %s revoked: key removed from the access file",
		   is_session ? "session" : "link", tag, e->grant.principal->fingerprint,
		   e->grant.console);
	return true;
}

int server_policy_reload(struct server *s, const char *path)
{
	struct policy *old = s->policy, *p;
	struct client *c, *next;
	char *copy = NULL;
	int r;

	if (path && (!s->config.access_path || strcmp(path, s->config.access_path) != 0)) {
		copy = strdup(path);
		if (!copy)
			return log_error_errno(-ENOMEM, "cannot reload the access file");
		free((char *)s->config.access_path);
		s->config.access_path = copy;
	}
	path = s->config.access_path;
	if (!path)
		return 0;
	r = policy_load(path, &p);
	if (r < 0)
		return log_error_errno(r, "access file %s not reloaded: cannot read it%s; keeping "
				       "the previous one", path, r == -EFBIG ? " (too large)" :
				       r == -ELOOP ? " (a symbolic link)" : "");
	s->policy = p;
	/* Every principal moves to the new policy before the old one (its lines) goes. */
	for (c = TAILQ_FIRST(&s->clients); c; c = next) {
		next = TAILQ_NEXT(c, server_entry); /* a revoked client moves to the dead list */
		client_policy_changed(c);
	}
	weblink_revoke(s->weblink, server_weblink_gone, p);
	/* Closed ones are past asking, but must not keep pointers into the old lines. */
	TAILQ_FOREACH(c, &s->dead, server_entry) {
		if (c->principal) {
			c->principal->policy = NULL;
			c->principal->key = NULL;
		}
	}
	policy_free(old);
	server_policy_log_loaded(path, p);
	return 0;
}

void server_add_source(struct server *s, struct source *src)
{
	source_list_add(&s->sources, src);
}

/* client_env.dead: to the dead list; the sweep frees it after this dispatch. */
static void server_client_dead(void *userdata, struct client *c)
{
	struct server *s = userdata;

	TAILQ_REMOVE(&s->clients, c, server_entry);
	TAILQ_INSERT_TAIL(&s->dead, c, server_entry);
	s->n_clients--;
	if (c->front_slot)
		s->n_front_clients--;
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

static bool server_peer_is_front(struct server *s, const struct ucred *cred)
{
	for (size_t i = 0; i < s->config.n_front_uids; i++)
		if (cred->uid == s->config.front_uids[i])
			return true;
	return false;
}

static bool server_peer_is_admin(struct server *s, int fd, const struct ucred *cred)
{
	return cred->uid == 0 || cred->uid == geteuid() || server_peer_in_admin_group(s, fd, cred);
}

static void server_reject(int fd, const char *code, const char *text)
{
	struct obuf b;
	json_t *msg;

	if (obuf_init(&b, 1024) < 0)
		return;
	msg = proto_msg_error(code, text);
	if (msg && proto_put_control(&b, msg) >= 0)
		obuf_flush(&b, fd);
	json_decref(msg);
	obuf_done(&b);
}

static int server_on_accept_retry(sd_event_source *es, uint64_t usec, void *userdata)
{
	server_accept_resume(userdata);
	return 0;
}

/*
 * Out of file descriptors: the listening socket stays readable, so stop
 * watching it (instead of spinning on accept) until a client closes or a
 * short timer fires.  Logged once per episode.
 */
static void server_accept_pause(struct server *s, int error)
{
	int r;

	if (s->accept_paused)
		return;
	if (!s->accept_warned)
		log_warning_errno(error, "cannot accept broker connections (out of file "
					 "descriptors); pausing the listener");
	s->accept_warned = true;
	s->accept_paused = true;
	sd_event_source_set_enabled(s->listen_io, SD_EVENT_OFF);
	if (!s->accept_retry) {
		r = sd_event_add_time_relative(s->event, &s->accept_retry, CLOCK_MONOTONIC,
					       SERVER_ACCEPT_RETRY_USEC, 0,
					       server_on_accept_retry, s);
		if (r < 0) {
			log_error_errno(r, "cannot arm the accept retry timer");
			server_accept_resume(s);
		}
		return;
	}
	r = sd_event_source_set_time_relative(s->accept_retry, SERVER_ACCEPT_RETRY_USEC);
	if (r >= 0)
		r = sd_event_source_set_enabled(s->accept_retry, SD_EVENT_ONESHOT);
	if (r < 0) {
		log_error_errno(r, "cannot arm the accept retry timer");
		server_accept_resume(s);
	}
}

/* Who a local peer is: "root", or "uid 1234" without a passwd entry. */
static void server_peer_user(const struct ucred *cred, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(cred->uid);
	char esc[72];

	if (pw)
		snprintf(buf, size, "%s", log_escape(pw->pw_name, strlen(pw->pw_name), esc,
						     sizeof(esc)));
	else
		snprintf(buf, size, "uid %u", (unsigned)cred->uid);
}

static int server_on_accept(sd_event_source *es, int lfd, uint32_t revents, void *userdata)
{
	struct server *s = userdata;
	_cleanup_close_ int fd = -EBADF;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct client *c;
	bool front, admin, front_slot;
	unsigned n_admins;
	int r;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		r = negative_errno();
		if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM)
			server_accept_pause(s, r);
		else if (r != -EAGAIN && r != -EINTR && r != -ECONNABORTED)
			log_warning_errno(r, "accept");
		return 0;
	}
	if (s->accept_warned) {
		s->accept_warned = false;
		log_info("accepting broker connections again");
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warning_errno(negative_errno(), "SO_PEERCRED");
		return 0;
	}
	if (cred.pid == getpid()) {
		/*
		 * A console's "chardev" is our own broker socket: whoever writes to
		 * that console would speak to the broker with our rights.  Close it
		 * without a word (an error frame would become that console's output).
		 */
		log_warning("refused a broker connection from ttyhubd itself (pid %d): a console "
			    "source points at the broker socket", (int)cred.pid);
		return 0;
	}
	front = server_peer_is_front(s, &cred);
	admin = server_peer_is_admin(s, fd, &cred);
	if (!front && !admin) {
		log_notice("refused broker connection from uid %u pid %d: not authorised",
			   (unsigned)cred.uid, (int)cred.pid);
		server_reject(fd, PROTO_E_DENIED,
			      "permission denied: not root, not in the admin group, not a front");
		return 0;
	}
	front_slot = front && s->n_front_clients < s->config.max_clients;
	n_admins = s->n_clients - s->n_front_clients;
	if (!front_slot && (!admin || n_admins >= MAX(s->config.max_clients,
						       (unsigned)SERVER_ADMIN_RESERVE))) {
		log_warning("refused broker connection from uid %u pid %d: %u %s connections "
			    "already", (unsigned)cred.uid, (int)cred.pid,
			    admin ? n_admins : s->n_front_clients, admin ? "local admin" : "front");
		server_reject(fd, PROTO_E_BUSY, "too many clients");
		return 0;
	}
	r = client_new(&s->client_env, fd, &c);
	if (r < 0)
		return log_error_errno(r, "cannot set up client"), 0;
	TAKE_FD(fd);
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->front = front;
	c->admin = admin;
	c->front_slot = front_slot;
	server_peer_user(&cred, c->user, sizeof(c->user));
	/* Everyone else sees only the role; logs keep the user and pid. */
	snprintf(c->att.label, sizeof(c->att.label), "%s", admin ? "local admin" : "local front");
	snprintf(c->att.audit, sizeof(c->att.audit), "%s (local, pid %d)", c->user, (int)cred.pid);
	TAILQ_INSERT_TAIL(&s->clients, c, server_entry);
	s->n_clients++;
	if (front_slot)
		s->n_front_clients++;
	log_debug("client %u: %s, %s", c->id, c->att.audit,
		  front_slot ? "front slot" : "local admin slot");
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

int server_listen(struct server *s, int fd)
{
	int n, r;

	/* Passed by systemd: named (fdstore.h), or the one socket of an old-style start. */
	if (fd < 0) {
		n = sd_listen_fds(1);
		if (n > 1)
			return log_error_errno(-EINVAL, "expected one socket from systemd, got %d",
					       n);
		if (n == 1)
			fd = SD_LISTEN_FDS_START;
	}
	if (fd >= 0) {
		s->listen_fd = fd;
		if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
			return log_error_errno(-EINVAL, "the socket from systemd is not a "
							"listening UNIX stream socket");
		r = fcntl(s->listen_fd, F_GETFL);
		if (r < 0 || fcntl(s->listen_fd, F_SETFL, r | O_NONBLOCK) < 0)
			return log_error_errno(negative_errno(), "fcntl");
		/* Nothing we start (libvirt's helpers) may inherit the broker socket. */
		r = fcntl(s->listen_fd, F_GETFD);
		if (r < 0 || fcntl(s->listen_fd, F_SETFD, r | FD_CLOEXEC) < 0)
			return log_error_errno(negative_errno(), "fcntl");
	} else {
		r = server_bind(s);
		if (r < 0)
			return r;
		s->listen_fd = r;
	}
	return sd_event_add_io(s->event, &s->listen_io, s->listen_fd, EPOLLIN, server_on_accept, s);
}

struct client *server_find_client(struct server *s, unsigned id)
{
	struct client *c;

	TAILQ_FOREACH(c, &s->clients, server_entry)
		if (c->id == id)
			return c;
	return NULL;
}

/*
 * Take one break from the console's budget (burst SERVER_BREAK_BURST, then one
 * per SERVER_BREAK_INTERVAL_USEC).  Returns 0, or -EBUSY with the seconds to
 * wait in *ret_wait_sec, or another -errno.
 */
static int server_break_budget(struct server *s, const char *name, unsigned *ret_wait_sec)
{
	const uint64_t span = (SERVER_BREAK_BURST - 1) * SERVER_BREAK_INTERVAL_USEC;
	struct server_break_bucket *b = NULL;
	uint64_t now;
	int r;

	/* Before the loop's first iteration this is the current time, not an error. */
	r = sd_event_now(s->event, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	/* Forget the consoles whose budget is full again; find this one. */
	for (size_t i = 0; i < s->n_breaks;) {
		if (s->breaks[i].tat <= now) {
			free(s->breaks[i].name);
			s->breaks[i] = s->breaks[--s->n_breaks];
			continue;
		}
		if (strcmp(s->breaks[i].name, name) == 0)
			b = &s->breaks[i];
		i++;
	}
	if (b && b->tat > now + span) {
		uint64_t wait = b->tat - span - now;

		*ret_wait_sec = (unsigned)((wait + 999999) / 1000000);
		return -EBUSY;
	}
	if (!b) {
		struct server_break_bucket *n;

		n = reallocarray(s->breaks, s->n_breaks + 1, sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->breaks = n;
		b = &s->breaks[s->n_breaks];
		b->name = strdup(name);
		if (!b->name)
			return -ENOMEM;
		b->tat = now;
		s->n_breaks++;
	}
	b->tat = MAX(b->tat, now) + SERVER_BREAK_INTERVAL_USEC;
	return 0;
}

/*
 * Give back what server_break_budget() took, for a request the source
 * refused at once: asking for what cannot be done must not use up the budget.
 */
static void server_break_refund(struct server *s, const char *name)
{
	for (size_t i = 0; i < s->n_breaks; i++)
		if (strcmp(s->breaks[i].name, name) == 0) {
			s->breaks[i].tat -= MIN(s->breaks[i].tat, SERVER_BREAK_INTERVAL_USEC);
			return;
		}
}

/* A local admin (not speaking for an SSH principal) may break any console. */
static bool server_client_is_local_admin(const struct client *cl)
{
	return cl->admin && !cl->principal;
}

_Static_assert(BREAK_REQ_NAME_MAX > REGISTRY_NAME_MAX, "a console name fits a break request");

/* A break on its way: the request, and who asked, by id and for the logs. */
struct server_break {
	struct break_req req;
	struct server *server;
	char audit[CONSOLE_AUDIT_MAX]; /* the requester, for the logs */
	char label[CONSOLE_LABEL_MAX]; /* the requester as other clients see it */
};

/* The source's answer (see struct break_req): the client and the console may be gone. */
static void server_on_break_done(struct break_req *req, int error, const char *message)
{
	struct server_break *b = req->userdata;
	struct server *s = b->server;
	struct client *cl = server_find_client(s, req->client_id);
	struct console *con = registry_find_exact(&s->registry, req->console);

	if (error >= 0 && con) {
		conslog_markf(con->log, "serial break sent by %s", b->audit);
		log_info("serial break sent to %s by %s", req->console, b->audit);
		console_announce(con, "%s sent a serial break", b->label);
	}
	if (cl && error < 0) {
		/* Refused by the source at once, or failed on the way to QEMU. */
		client_error(cl, PROTO_E_NOT_AVAILABLE, s->break_sending == b
			     ? "cannot send a break to %s: %s" : "break to %s failed: %s",
			     req->console, message && message[0] ? message : strerror(-error));
		client_flush(cl);
	} else if (cl) {
		client_send_new(cl, proto_msg_break_sent(req->console));
		client_flush(cl);
	}
	free(b);
}

/*
 * client_env.send_break: a serial break to c on behalf of cl (which may send
 * one there).  The answer (break-sent or an error) goes to cl if it is still there.
 */
static void server_console_break(void *userdata, struct console *c, struct client *cl)
{
	struct server *s = userdata;
	struct server_break *b;
	unsigned wait = 0;
	int r;

	/*
	 * A break can be a SysRq or a debugger stop: it needs write access.  The
	 * front checks its key's break right; the broker insists that the
	 * requester writes to this very console.
	 */
	if (!server_client_is_local_admin(cl) &&
	    (cl->att.console != c || cl->att.role != CONSOLE_WRITER)) {
		client_error(cl, PROTO_E_DENIED, "break to %s refused: only the console's writer "
			     "may send a serial break", c->name);
		return;
	}
	if (!c->source || !c->source->ops->send_break || !c->chardev_id) {
		client_error(cl, PROTO_E_NOT_AVAILABLE,
			     "serial break is not available for %s: its source (%s) has no QEMU "
			     "control channel; use --qmp or --libvirt", c->name,
			     c->origin ? c->origin : "?");
		return;
	}
	r = server_break_budget(s, c->name, &wait);
	if (r == -EBUSY) {
		log_notice("break to %s by %s refused: too many breaks", c->name, cl->att.audit);
		client_error(cl, PROTO_E_BUSY, "break to %s refused: too many breaks, try again in "
			     "%u s", c->name, wait);
		return;
	}
	b = r >= 0 ? calloc(1, sizeof(*b)) : NULL;
	if (r >= 0 && !b)
		r = -ENOMEM;
	if (r < 0) {
		client_error(cl, PROTO_E_INTERNAL, "cannot send a break to %s: %s", c->name,
			     strerror(-r));
		return;
	}
	b->server = s;
	snprintf(b->audit, sizeof(b->audit), "%s", cl->att.audit);
	snprintf(b->label, sizeof(b->label), "%s", cl->att.label);
	b->req = (struct break_req){ .client_id = cl->id, .userdata = b,
				     .done = server_on_break_done };
	snprintf(b->req.console, sizeof(b->req.console), "%s", c->name);
	s->break_sending = b;
	c->source->ops->send_break(c->source, c, &b->req);
	s->break_sending = NULL; /* b may be freed already */
}

/*
 * What an action did, as everyone attached reads it (notice and history):
 * "LABEL sent sysrq h", "LABEL reset the guest".
 */
static void server_action_text(const struct server_break *b, char *buf, size_t size)
{
	switch (b->req.action) {
	case PROTO_ACTION_SYSRQ:
		snprintf(buf, size, "%s sent sysrq %c", b->label, b->req.key);
		break;
	case PROTO_ACTION_NMI:
		snprintf(buf, size, "%s sent an NMI to the guest", b->label);
		break;
	case PROTO_ACTION_RESET:
		snprintf(buf, size, "%s reset the guest", b->label);
		break;
	case PROTO_ACTION_POWERDOWN:
		snprintf(buf, size, "%s pressed the guest's power button (powerdown)", b->label);
		break;
	default:
		snprintf(buf, size, "%s took an action", b->label);
		break;
	}
}

/*
 * The source's answer to an action.  For sysrq the break went out: now the
 * key, while the console's input is still held (so nothing typed meanwhile
 * comes between them), then the held input flows again.
 */
static void server_on_action_done(struct break_req *req, int error, const char *message)
{
	struct server_break *b = req->userdata;
	struct server *s = b->server;
	struct client *cl = server_find_client(s, req->client_id);
	struct console *con = registry_find_exact(&s->registry, req->console);
	const char *name = proto_action_to_string(req->action);
	char text[CONSOLE_LABEL_MAX + 80], key[2] = { req->key, '\0' };
	int r;

	if (req->action == PROTO_ACTION_SYSRQ && con) {
		if (error >= 0) {
			r = chardev_write_now(&con->chardev, &req->key, 1);
			if (r < 0) {
				error = r;
				message = r == -EAGAIN ? "the guest is not taking input; the break went "
							 "out without its key"
						       : "the console is not connected";
			}
		}
		chardev_hold_input(&con->chardev, false);
	}
	if (error >= 0 && con) {
		server_action_text(b, text, sizeof(text));
		log_info("%s%s%s on %s by %s", name, req->action == PROTO_ACTION_SYSRQ ? " " : "",
			 req->action == PROTO_ACTION_SYSRQ ? key : "", req->console, b->audit);
		/*
		 * Into the history, the log and every recording; everyone attached
		 * sees the line in the stream, where it happened (a notice too would
		 * show it twice).
		 */
		console_mark(con, text);
	} else if (error < 0) {
		log_notice("%s on %s by %s failed: %s", name, req->console, b->audit,
			   message && message[0] ? message : strerror(-error));
	}
	if (error < 0 && s->break_sending == b)
		server_break_refund(s, req->console);
	if (cl && error < 0) {
		/* A source that cannot do it says so at once: not-available, with why. */
		client_error(cl, PROTO_E_NOT_AVAILABLE, s->break_sending == b
			     ? "cannot send %s to %s: %s" : "%s on %s failed: %s", name,
			     req->console, message && message[0] ? message : strerror(-error));
		client_flush(cl);
	} else if (cl) {
		client_send_new(cl, proto_msg_action_done(req->console, req->action,
							  req->action == PROTO_ACTION_SYSRQ ? key
											    : NULL));
		client_flush(cl);
	}
	free(b);
}

/*
 * client_env.send_action: a rescue action on c on behalf of cl, which has
 * the right (client_may_action(); the action is known, sysrq's key valid).
 * Rate-limited with the console's breaks.  The answer (action-done or an
 * error) goes to cl if it is still there.
 */
static void server_console_action(void *userdata, struct console *c, struct client *cl,
				  enum proto_action action, char key)
{
	struct server *s = userdata;
	const char *name = proto_action_to_string(action);
	struct server_break *b;
	unsigned wait = 0;
	int r;

	if (!c->source || !c->source->ops->send_action ||
	    (action == PROTO_ACTION_SYSRQ && !c->chardev_id)) {
		client_error(cl, PROTO_E_NOT_AVAILABLE,
			     "this console's source cannot send %s: %s is defined by %s, which has "
			     "no QEMU control channel; use --qmp or --libvirt", name, c->name,
			     c->origin ? c->origin : "?");
		return;
	}
	if (action == PROTO_ACTION_SYSRQ && c->chardev.state != CHARDEV_CONNECTED) {
		client_error(cl, PROTO_E_NOT_AVAILABLE, "cannot send sysrq to %s: the console is "
			     "not connected", c->name);
		return;
	}
	r = server_break_budget(s, c->name, &wait);
	if (r == -EBUSY) {
		log_notice("%s on %s by %s refused: too many breaks and actions", name, c->name,
			   cl->att.audit);
		client_error(cl, PROTO_E_BUSY, "%s on %s refused: too many breaks and actions, try "
			     "again in %u s", name, c->name, wait);
		return;
	}
	b = r >= 0 ? calloc(1, sizeof(*b)) : NULL;
	if (r >= 0 && !b)
		r = -ENOMEM;
	if (r < 0) {
		client_error(cl, PROTO_E_INTERNAL, "cannot send %s to %s: %s", name, c->name,
			     strerror(-r));
		return;
	}
	b->server = s;
	snprintf(b->audit, sizeof(b->audit), "%s", cl->att.audit);
	snprintf(b->label, sizeof(b->label), "%s", cl->att.label);
	b->req = (struct break_req){ .client_id = cl->id, .userdata = b,
				     .done = server_on_action_done, .action = action, .key = key };
	snprintf(b->req.console, sizeof(b->req.console), "%s", c->name);
	/* sysrq: nobody's input reaches the guest between the break and the key. */
	if (action == PROTO_ACTION_SYSRQ)
		chardev_hold_input(&c->chardev, true);
	s->break_sending = b;
	c->source->ops->send_action(c->source, c, &b->req);
	s->break_sending = NULL; /* b may be freed already */
}
