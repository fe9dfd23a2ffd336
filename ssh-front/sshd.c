/* SPDX-License-Identifier: MIT */
/*
 * ttyhub-sshd process context (see sshd.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "clock.h"
#include "keys.h"
#include "gateway.h"
#include "log.h"
#include "session.h"
#include "sshd.h"
#include "tcpinfo.h"
#include "util.h"

/*
 * Algorithms: modern only (ssh-audit clean); the host key is ed25519.  Key
 * exchanges run inline in the one event loop, so no 8192-bit group18:
 * group16 stays for clients without curve25519.
 */
#define SSHD_KEX "curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512"
/* Accepting pauses this long when out of descriptors (or until a session closes). */
#define ACCEPT_RETRY_USEC (250 * 1000)
#define SSHD_CIPHERS "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com," \
		     "aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr"
#define SSHD_MACS "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"

static int sshd_on_sweep(sd_event_source *es, void *userdata)
{
	struct sshd *d = userdata;
	struct session *s;

	while ((s = TAILQ_FIRST(&d->dead))) {
		TAILQ_REMOVE(&d->dead, s, entry);
		session_free(s);
	}
	return 0;
}

/* What sessions read of the configuration: at start, and again after each reload. */
static void sshd_session_config(struct sshd *d)
{
	d->session_config = (struct session_config){
		.login_grace_s = d->config.login_grace_s,
		.max_auth_tries = d->config.max_auth_tries,
		.keepalive_s = d->config.keepalive_s,
		.max_sessions_per_key = d->config.max_sessions_per_key,
		.max_channels = d->config.max_channels,
		.gateway = d->gateway != NULL,
		.chan = { .broker = d->config.broker, .gateway = d->gateway,
			  .menu_timeout_s = d->config.menu_timeout_s },
	};
}

static void sshd_session_authenticated(void *userdata, struct session *s)
{
	struct sshd *d = userdata;

	d->n_unauth--;
}

static unsigned sshd_count_key(void *userdata, const struct session *s)
{
	struct sshd *d = userdata;
	const struct session *o;
	unsigned n = 0;

	TAILQ_FOREACH(o, &d->sessions, entry)
		if (o != s && !o->dead && o->state == SESSION_AUTHED && !o->over_limit &&
		    strcmp(o->fingerprint, s->fingerprint) == 0)
			n++;
	return n;
}

/* A closed session moves to the dead list; the sweep frees it. */
static void sshd_session_closed(void *userdata, struct session *s)
{
	struct sshd *d = userdata;

	TAILQ_REMOVE(&d->sessions, s, entry);
	TAILQ_INSERT_TAIL(&d->dead, s, entry);
	d->n_sessions--;
	if (s->state != SESSION_AUTHED)
		d->n_unauth--;
	sd_event_source_set_enabled(d->sweep, SD_EVENT_ONESHOT);
	/* Its descriptors are freed by the sweep: accepting may go on after it. */
	if (d->accept_retry)
		sd_event_source_set_time_relative(d->accept_retry, 0);
}

static const struct session_ops sshd_session_ops = {
	.authenticated = sshd_session_authenticated,
	.count_key = sshd_count_key,
	.closed = sshd_session_closed,
};

int sshd_init(struct sshd *d, sd_event *e, const struct sshd_config *cfg)
{
	bool no = false;
	ssh_key hostkey = NULL;
	int r;

	*d = (struct sshd){ .event = sd_event_ref(e), .config = *cfg, .listen_fd = -EBADF,
			    .authz.fd = -EBADF };
	/* Own copies: a reload frees the strings the options pointed into. */
	d->config.listen = strdup(cfg->listen);
	d->config.host_key = strdup(cfg->host_key);
	d->config.broker = strdup(cfg->broker);
	TAILQ_INIT(&d->sessions);
	if (!d->config.listen || !d->config.host_key || !d->config.broker)
		return -ENOMEM;
	TAILQ_INIT(&d->dead);
	r = sd_event_add_defer(e, &d->sweep, sshd_on_sweep, d);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(d->sweep, SD_EVENT_OFF);
	r = poller_new(e, &d->poller);
	if (r < 0)
		return r;

	r = hostkey_load(cfg->host_key, &hostkey);
	if (r < 0)
		return r;
	d->bind = ssh_bind_new();
	if (!d->bind) {
		ssh_key_free(hostkey);
		return -ENOMEM;
	}
	/* Never read /etc/ssh/libssh_server_config: our settings are the settings. */
	if (ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
	    ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_IMPORT_KEY, hostkey) < 0) {
		ssh_key_free(hostkey);
		return log_error_errno(-EINVAL, "cannot configure libssh: %s",
				       ssh_get_error(d->bind));
	}
	if (ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_KEY_EXCHANGE, SSHD_KEX) < 0 ||
	    ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_CIPHERS_C_S, SSHD_CIPHERS) < 0 ||
	    ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_CIPHERS_S_C, SSHD_CIPHERS) < 0 ||
	    ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_HMAC_C_S, SSHD_MACS) < 0 ||
	    ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_HMAC_S_C, SSHD_MACS) < 0 ||
	    ssh_bind_options_set(d->bind, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS, "ssh-ed25519") < 0)
		return log_error_errno(-EINVAL, "cannot set algorithms: %s", ssh_get_error(d->bind));
	if (cfg->gateway_hosts) {
		r = gateway_new(e, d->poller,
				&(struct gateway_config){ .hosts_path = cfg->gateway_hosts,
							  .key_path = cfg->gateway_key,
							  .keepalive_s = cfg->gateway_keepalive_s,
							  .timeout_ms = cfg->gateway_timeout_ms,
							  .broker = &d->config.broker,
							  .socket_path = cfg->gateway_socket,
							  .socket_uid = cfg->gateway_socket_uid },
				&d->gateway);
		if (r < 0)
			return r;
	}
	sshd_session_config(d);
	d->session_env = (struct session_env){ .event = d->event, .poller = d->poller,
					       .bind = d->bind, .authz = &d->authz,
					       .config = &d->session_config,
					       .ops = &sshd_session_ops, .userdata = d };
	r = authz_init(&d->authz, cfg->broker);
	if (r < 0)
		return r;
	r = authz_connect(&d->authz);
	if (r < 0)
		log_warning_errno(r, "ttyhubd does not answer on %s yet (asked again at the first "
				  "login)", cfg->broker);
	return 0;
}

void sshd_done(struct sshd *d)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&d->sessions))) {
		TAILQ_REMOVE(&d->sessions, s, entry);
		s->dead = true;
		session_free(s);
	}
	sshd_on_sweep(NULL, d);
	d->gateway = gateway_free(d->gateway);
	d->poller = poller_free(d->poller);
	d->listen_io = sd_event_source_disable_unref(d->listen_io);
	d->listen_fd = safe_close(d->listen_fd);
	d->sweep = sd_event_source_disable_unref(d->sweep);
	d->accept_retry = sd_event_source_disable_unref(d->accept_retry);
	if (d->bind)
		ssh_bind_free(d->bind);
	d->bind = NULL;
	authz_done(&d->authz);
	d->event = sd_event_unref(d->event);
	free((char *)d->config.listen);
	free((char *)d->config.host_key);
	free((char *)d->config.broker);
}

void sshd_shutdown(struct sshd *d, uint64_t timeout_usec)
{
	uint64_t deadline = clock_now_usec() + timeout_usec;
	struct session *s, *next;

	sd_event_source_set_enabled(d->listen_io, SD_EVENT_OFF);
	for (s = TAILQ_FIRST(&d->sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->state == SESSION_AUTHED)
			session_shutdown(s);
		else
			session_close(s, "ttyhub-sshd is stopping");
	}
	/*
	 * The loop no longer runs: the sessions' sockets are polled here, all
	 * at once.  A closed session leaves d->sessions (for the dead list).
	 */
	for (;;) {
		struct pollfd pfd[256];
		uint64_t now = clock_now_usec();
		bool more = false;
		nfds_t n = 0;

		for (s = TAILQ_FIRST(&d->sessions); s; s = next) {
			next = TAILQ_NEXT(s, entry);
			if (!session_drain(s)) {
				log_debug("shutdown: session from %s done", s->addr);
				continue;
			}
			if (n == ELEMENTSOF(pfd)) {
				more = true; /* not polled: look again soon */
				continue;
			}
			pfd[n++] = (struct pollfd){
				.fd = ssh_get_fd(s->ssh),
				.events = POLLIN | (ssh_get_poll_flags(s->ssh) & SSH_WRITE_PENDING
							    ? POLLOUT : 0),
			};
		}
		if (n == 0 || now >= deadline)
			break;
		if (poll(pfd, n, more ? 10 : (int)MIN((deadline - now + 999) / 1000, 1000)) < 0 &&
		    errno != EINTR)
			break;
	}
}

static int sshd_on_accept_retry(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct sshd *d = userdata;

	d->accept_retry = sd_event_source_disable_unref(d->accept_retry);
	sd_event_source_set_enabled(d->listen_io, SD_EVENT_ON);
	log_info("accepting connections again");
	return 0;
}

/*
 * Out of descriptors: the pending connection stays in the backlog and the
 * listener stays readable, so accepting again at once would spin.  Stop
 * watching it for a while (logged once per pause).
 */
static void sshd_pause_accept(struct sshd *d, int err)
{
	if (d->accept_retry)
		return;
	if (sd_event_add_time_relative(d->event, &d->accept_retry, CLOCK_MONOTONIC,
				       ACCEPT_RETRY_USEC, 0, sshd_on_accept_retry, d) < 0)
		return; /* cannot pause: keep accepting */
	sd_event_source_set_enabled(d->listen_io, SD_EVENT_OFF);
	log_warning_errno(err, "cannot accept connections; pausing");
}

/*
 * How far an unauthenticated session got: keys exchanged beats everything;
 * before that, the bytes the client has sent.  A real client sends its
 * identification, KEXINIT and key-exchange init at once (1-2 KiB); a
 * stalled connection has sent nothing, or trickles.
 */
static uint64_t sshd_progress(const struct session *s)
{
	if (ssh_get_kex_algo(s->ssh))
		return UINT64_MAX;
	return tcp_bytes_received(ssh_get_fd(s->ssh));
}

/*
 * Drop one unauthenticated session (from addr, or any if addr is NULL): the
 * one that got least far, the oldest of those.  A real client sends its
 * identification at once and exchanges keys within a few round trips, so
 * new flood connections push out each other and the stalled ones first.
 */
static bool sshd_evict(struct sshd *d, const char *addr)
{
	struct session *s, *victim = NULL;
	uint64_t victim_progress = UINT64_MAX;

	TAILQ_FOREACH(s, &d->sessions, entry) {
		uint64_t p;

		if (s->state == SESSION_AUTHED || (addr && strcmp(s->addr, addr) != 0))
			continue;
		p = sshd_progress(s);
		if (!victim || p < victim_progress ||
		    (p == victim_progress && s->accepted_usec < victim->accepted_usec)) {
			victim = s;
			victim_progress = p;
		}
	}
	if (!victim)
		return false;
	session_close(victim, "dropped to admit a newer connection (pre-authentication limit)");
	return true;
}

/* Rate-limited: one line per 10 s for the pre-authentication limits. */
static void sshd_note_refusal(struct sshd *d, const char *what)
{
	uint64_t now = clock_now_usec();

	d->refused_since_log++;
	if (now - d->refused_logged_usec < 10 * 1000000ULL)
		return;
	log_warning("pre-authentication limit: %s (%u times in the last 10 s)", what,
		    d->refused_since_log);
	d->refused_logged_usec = now;
	d->refused_since_log = 0;
}

static int sshd_on_accept(sd_event_source *es, int lfd, uint32_t revents, void *userdata)
{
	struct sshd *d = userdata;
	struct session *s, *p;
	char addr[64];
	unsigned from_source = 0;
	unsigned timeout_ms;
	int fd, one = 1;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		int r = negative_errno();

		if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM)
			sshd_pause_accept(d, r);
		else if (r != -EAGAIN && r != -EINTR && r != -ECONNABORTED)
			log_warning_errno(r, "accept");
		return 0;
	}
	tcp_address(fd, false, addr, sizeof(addr), NULL);
	if (d->n_sessions >= d->config.max_sessions) {
		sshd_note_refusal(d, "too many sessions");
		close(fd);
		return 0;
	}
	TAILQ_FOREACH(p, &d->sessions, entry)
		if (p->state != SESSION_AUTHED && strcmp(p->addr, addr) == 0)
			from_source++;
	if (from_source >= d->config.max_unauth_per_source) {
		sshd_note_refusal(d, "unauthenticated connections per source");
		sshd_evict(d, addr);
	} else if (d->n_unauth >= d->config.max_unauth) {
		sshd_note_refusal(d, "unauthenticated connections");
		sshd_evict(d, NULL);
	}
	/* A peer that stops acknowledging is dropped after keepalive_s * keepalive_count. */
	timeout_ms = d->config.keepalive_s * d->config.keepalive_count * 1000;
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof(timeout_ms));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	/* Keystrokes and their echo are small packets: Nagle would hold them for an ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (session_new(&d->session_env, fd, addr, &s) < 0)
		return 0;
	TAILQ_INSERT_TAIL(&d->sessions, s, entry);
	d->n_sessions++;
	d->n_unauth++;
	return 0;
}

static int sshd_bind_listen(const char *spec)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_storage ss = {};
	socklen_t len;
	_cleanup_close_ int fd = -EBADF;
	long port;
	char *end;
	int one = 1;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host))
		return log_error_errno(-EINVAL, "--listen %s: expected ADDR:PORT", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 1 || port > 65535)
		return log_error_errno(-EINVAL, "--listen %s: bad port", spec);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

		host[strlen(host) - 1] = '\0';
		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &sa->sin6_addr) != 1)
			return log_error_errno(-EINVAL, "--listen %s: bad IPv6 address", spec);
		len = sizeof(*sa);
	} else {
		struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

		sa->sin_family = AF_INET;
		sa->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
			return log_error_errno(-EINVAL, "--listen %s: bad IPv4 address", spec);
		len = sizeof(*sa);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(negative_errno(), "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		return log_error_errno(negative_errno(), "cannot listen on %s", spec);
	if (listen(fd, 256) < 0)
		return log_error_errno(negative_errno(), "listen on %s", spec);
	return TAKE_FD(fd);
}

int sshd_listen(struct sshd *d)
{
	int n = sd_listen_fds(1);

	if (n > 1)
		return log_error_errno(-EINVAL, "expected one socket from systemd, got %d", n);
	if (n == 1) {
		if (sd_is_socket(SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
			return log_error_errno(-EINVAL, "the socket from systemd is not a listening "
						"stream socket");
		d->listen_fd = SD_LISTEN_FDS_START;
		if (fcntl(d->listen_fd, F_SETFL, O_NONBLOCK) < 0 ||
		    fcntl(d->listen_fd, F_SETFD, FD_CLOEXEC) < 0)
			return log_error_errno(negative_errno(), "fcntl");
		log_info("listening on the socket passed by systemd");
	} else {
		int fd = sshd_bind_listen(d->config.listen);

		if (fd < 0)
			return fd;
		d->listen_fd = fd;
		log_info("listening on %s", d->config.listen);
	}
	return sd_event_add_io(d->event, &d->listen_io, d->listen_fd, EPOLLIN, sshd_on_accept, d);
}

int sshd_reload(struct sshd *d)
{
	sshd_session_config(d);
	/* Sessions stay: ttyhubd revokes keys it no longer admits, on its own reload. */
	return authz_set_path(&d->authz, d->config.broker);
}
