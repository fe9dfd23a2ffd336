/* SPDX-License-Identifier: MIT */
/*
 * One SSH connection (see session.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authz.h"
#include "channel.h"
#include "clock.h"
#include "log.h"
#include "session.h"
#include "tcpinfo.h"
#include "util.h"

static void session_revoke_now(struct session *s, const char *why);

/* One audit line: event, the session's key fingerprint, and details (escaped). */
static void session_audit(struct session *s, const char *event, const char *fmt, ...)
	_printf_(3, 4);
static void session_audit(struct session *s, const char *event, const char *fmt, ...)
{
	char detail[512], user[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	log_escape(s->user, strlen(s->user), user, sizeof(user));
	log_notice("audit: %s from=%s user=%s key=%s comment=%s %s", event, s->addr, user,
		   s->fingerprint[0] ? s->fingerprint : "-", s->comment[0] ? s->comment : "-",
		   detail);
}

/* Ask for EPOLLOUT if libssh has output pending; carry out a pending revocation. */
static void session_update_events(struct session *s)
{
	int flags;

	if (s->dead || !s->io)
		return;
	if (s->revoked[0]) {
		char why[sizeof(s->revoked)];

		snprintf(why, sizeof(why), "%s", s->revoked);
		s->revoked[0] = '\0';
		session_revoke_now(s, why);
		return;
	}
	/*
	 * libssh closes the socket itself when a write fails (a peer that
	 * reset), even from a channel write outside session_on_io(): that fd is
	 * gone from epoll, so nothing would ever wake this session again, and its
	 * number may already belong to a new connection.
	 */
	if (ssh_get_fd(s->ssh) == SSH_INVALID_SOCKET ||
	    (ssh_get_status(s->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
		session_close(s, "connection closed");
		return;
	}
	flags = ssh_get_poll_flags(s->ssh);
	watch_set_events(s->io, EPOLLIN | (flags & SSH_WRITE_PENDING ? EPOLLOUT : 0));
}

/* Wire bytes of a packet besides its payload: length, padding length, padding, MAC. */
#define PACKET_OVERHEAD_MAX (4 + 1 + (16 + 3) + 64)

/*
 * Bytes libssh holds for the kernel: never less than the truth, and more
 * by at most a few bytes per packet sent since its queue was last empty.
 */
static size_t session_unsent(struct session *s)
{
	uint64_t upper = s->packed.out_bytes + s->packed.out_packets * PACKET_OVERHEAD_MAX;
	uint64_t gap = upper > s->sent.out_bytes ? upper - s->sent.out_bytes : 0;

	/* Not waiting for POLLOUT: the queue is empty, so all of gap is over-estimate. */
	if (!(ssh_get_poll_flags(s->ssh) & SSH_WRITE_PENDING))
		s->unsent_slack = gap;
	return (size_t)(gap > s->unsent_slack ? gap - s->unsent_slack : 0);
}

void session_close(struct session *s, const char *why)
{
	if (s->dead)
		return;
	s->dead = true;
	if (s->state == SESSION_AUTHED)
		session_audit(s, "logout", "reason=\"%s\"", why);
	else
		log_info("connection from %s closed: %s", s->addr, why);
	if (s->io)
		watch_disable(s->io);
	sd_event_source_set_enabled(s->grace, SD_EVENT_OFF);
	sd_event_source_set_enabled(s->keepalive, SD_EVENT_OFF);
	s->env->ops->closed(s->env->userdata, s);
}

struct session *session_free(struct session *s)
{
	struct chan *c;

	if (!s)
		return NULL;
	while ((c = TAILQ_FIRST(&s->chans))) {
		TAILQ_REMOVE(&s->chans, c, entry);
		chan_free(c);
	}
	s->io = watch_free(s->io);
	s->grace = sd_event_source_disable_unref(s->grace);
	s->keepalive = sd_event_source_disable_unref(s->keepalive);
	if (s->ssh) {
		if (s->pump)
			ssh_event_remove_session(s->pump, s->ssh);
		/* Best effort: a disconnect message, never waiting for the peer. */
		ssh_disconnect(s->ssh);
		ssh_free(s->ssh);
	}
	if (s->pump)
		ssh_event_free(s->pump);
	free(s->asked_key);
	free(s->key);
	free(s->grant);
	free(s);
	return NULL;
}

/* Tell every channel why, let them say it, then close. */
static void session_revoke_now(struct session *s, const char *why)
{
	struct chan *c, *next;

	session_audit(s, "revoked", "reason=\"%s\"", why);
	for (c = TAILQ_FIRST(&s->chans); c; c = next) {
		next = TAILQ_NEXT(c, entry);
		chan_close(c, 1, "%s; closing", why);
		chan_pump(c);
	}
	session_update_events(s);
	session_close(s, why);
}

/*
 * The broker revoked the key (from inside a channel's broker handling):
 * every channel is told why and the session closes, once the channel that
 * heard it is out of its callback (session_update_events()).
 */
static void session_revoke(struct session *s, const char *why)
{
	/*
	 * Called while a channel handles its broker's frames: pumping every
	 * channel here could free that one under its caller.  Every path that
	 * pumps a channel ends in session_update_events(), which finishes this.
	 */
	if (!s->revoked[0] && !s->dead)
		snprintf(s->revoked, sizeof(s->revoked), "%s", why[0] ? why : "revoked");
}

static int session_on_grace(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct session *s = userdata;

	if (s->state != SESSION_AUTHED)
		session_close(s, "login grace time exceeded");
	else if (s->over_limit)
		session_close(s, "too many sessions with this key");
	return 0;
}

static int session_on_keepalive(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct session *s = userdata;

	/* The reply is not tracked: the traffic lets TCP_USER_TIMEOUT find a dead peer. */
	if (ssh_send_keepalive(s->ssh) != SSH_OK)
		session_close(s, "keepalive failed");
	else {
		sd_event_source_set_time_relative(es,
						  (uint64_t)s->env->config->keepalive_s * 1000000);
		session_update_events(s);
	}
	return 0;
}

static void session_pump_channels(struct session *s)
{
	struct chan *c, *next;

	for (c = TAILQ_FIRST(&s->chans); c && !s->dead; c = next) {
		next = TAILQ_NEXT(c, entry);
		chan_pump(c);
	}
}

void session_shutdown(struct session *s)
{
	struct chan *c, *next;

	if (s->dead)
		return;
	s->linger = s->n_chans > 0;
	for (c = TAILQ_FIRST(&s->chans); c; c = next) {
		next = TAILQ_NEXT(c, entry);
		chan_shutdown(c);
		chan_pump(c); /* may free c */
	}
	session_update_events(s);
}

bool session_drain(struct session *s)
{
	if (s->dead)
		return false;
	if (ssh_event_dopoll(s->pump, 0) == SSH_ERROR && !(ssh_get_status(s->ssh) & SSH_CLOSED)) {
		session_close(s, "connection error");
		return false;
	}
	if (s->dead || ssh_get_fd(s->ssh) == SSH_INVALID_SOCKET ||
	    (ssh_get_status(s->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR)))
		return false;
	session_pump_channels(s);
	return !s->dead &&
	       (s->linger || s->n_chans > 0 || (ssh_get_poll_flags(s->ssh) & SSH_WRITE_PENDING));
}

static void session_on_io(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct session *s = userdata;
	int status;

	if (ssh_event_dopoll(s->pump, 0) == SSH_ERROR && !(ssh_get_status(s->ssh) & SSH_CLOSED)) {
		session_close(s, "connection error");
		return;
	}
	if (s->dead)
		return;
	if (s->state == SESSION_KEX) {
		int r = ssh_handle_key_exchange(s->ssh);

		if (r == SSH_OK)
			s->state = SESSION_AUTH;
		else if (r == SSH_ERROR) {
			char why[200];

			snprintf(why, sizeof(why), "key exchange failed: %.150s",
				 ssh_get_error(s->ssh));
			session_close(s, why);
			return;
		}
	}
	status = ssh_get_status(s->ssh);
	if (status & (SSH_CLOSED | SSH_CLOSED_ERROR)) {
		session_close(s, "connection closed");
		return;
	}
	session_pump_channels(s);
	session_update_events(s);
}

/* libssh callbacks */

/* The key as in authorized_keys, "TYPE BASE64"; NULL if libssh cannot say. */
static char *session_key_line(const ssh_key pubkey)
{
	const char *type = ssh_key_type_to_char(ssh_key_type(pubkey));
	char *b64 = NULL, *line = NULL;

	if (!type || ssh_pki_export_pubkey_base64(pubkey, &b64) != SSH_OK)
		return NULL;
	if (asprintf(&line, "%s %s", type, b64) < 0)
		line = NULL;
	ssh_string_free_char(b64);
	return line;
}

/*
 * May this key log in from this address?  ttyhubd decides (authz.h), once
 * per key offered: the probe and the signature round of one key share the
 * answer, kept in the session (fingerprint, comment, grant, gateway_key).
 * Returns 1 or 0.
 *
 * This blocks the whole process for one local round trip, at most
 * AUTHZ_TIMEOUT_USEC: libssh 0.10's auth_pubkey callback must return its
 * verdict, and its message API frees an unanswered request when the callback
 * returns, so the answer cannot wait for the event loop.  The round trip is
 * on a UNIX socket to a broker that answers from memory (microseconds);
 * only a stuck broker makes it long, and then nobody can use a console
 * anyway.  Only offered keys cost one (OpenSSH offers a handful at most, and
 * max_auth_tries bounds them per connection).
 */
static int session_authorize(struct session *s, const ssh_key pubkey)
{
	_cleanup_free_ char *line = session_key_line(pubkey);
	struct authz_answer a;
	int r;

	if (!line)
		return 0;
	if (!s->asked_key || strcmp(s->asked_key, line) != 0) {
		const struct front_principal p = { .key = line, .from = s->addr };

		r = authz_ask(s->env->authz, &p, &a);
		if (r < 0)
			log_warning_errno(r, "connection from %s: no answer from ttyhubd whether the key "
					  "may log in; refused", s->addr);
		free(s->asked_key);
		s->asked_key = TAKE_PTR(line);
		s->asked_answer = r > 0;
		if (r > 0) {
			char *grant = strdup(a.grant);

			if (!grant) {
				s->asked_answer = 0;
				return 0;
			}
			free(s->grant);
			s->grant = grant;
			snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", a.fingerprint);
			log_escape(a.comment, strlen(a.comment), s->comment, sizeof(s->comment));
			snprintf(s->line_comment, sizeof(s->line_comment), "%s", a.comment);
			s->gateway_key = a.gateway;
		}
	}
	return s->asked_answer;
}

static int session_on_auth_pubkey(ssh_session ssh, const char *user, struct ssh_key_struct *pubkey,
				  char state, void *userdata)
{
	struct session *s = userdata;
	const struct session_config *cfg = s->env->config;
	bool ok;

	if (s->dead || s->state == SESSION_AUTHED)
		return SSH_AUTH_DENIED;
	s->user_too_long = user && strlen(user) >= sizeof(s->user);
	snprintf(s->user, sizeof(s->user), "%s", user ? user : "");
	ok = (state == SSH_PUBLICKEY_STATE_NONE || state == SSH_PUBLICKEY_STATE_VALID) &&
	     session_authorize(s, pubkey);
	if (!ok) {
		if (++s->auth_failures >= cfg->max_auth_tries) {
			log_notice("connection from %s: too many authentication failures", s->addr);
			session_close(s, "too many authentication failures");
		}
		return SSH_AUTH_DENIED;
	}
	if (state == SSH_PUBLICKEY_STATE_NONE)
		return SSH_AUTH_SUCCESS; /* only a probe: "this key would do" */

	/* The signature was verified by libssh: authenticated. */
	s->key = TAKE_PTR(s->asked_key);
	s->state = SESSION_AUTHED;
	s->env->ops->authenticated(s->env->userdata, s);
	/* Its channels speak for the key, from this address. */
	s->chan_env.principal = (struct front_principal){ .key = s->key, .from = s->addr };
	if (cfg->gateway) {
		/* The gateway speaks for the user on each host with what its own broker granted. */
		s->chan_env.principal.grant = s->grant;
		s->chan_env.principal.comment = s->line_comment[0] ? s->line_comment : NULL;
	}
	s->chan_env.gateway = s->gateway_key;
	s->chan_env.user = s->user_too_long ? NULL : s->user;
	if (s->env->ops->count_key(s->env->userdata, s) >= cfg->max_sessions_per_key) {
		/* Let it in to be told why, then close it: at the latest after the grace time. */
		s->over_limit = true;
		session_audit(s, "refused", "reason=\"too many sessions with this key (at most %u)\"",
			      cfg->max_sessions_per_key);
		sd_event_source_set_time_relative(s->grace, (uint64_t)cfg->login_grace_s * 1000000);
		return SSH_AUTH_SUCCESS;
	}
	sd_event_source_set_enabled(s->grace, SD_EVENT_OFF);
	sd_event_source_set_time_relative(s->keepalive, (uint64_t)cfg->keepalive_s * 1000000);
	sd_event_source_set_enabled(s->keepalive, SD_EVENT_ON);
	session_audit(s, "login", "method=publickey%s", s->gateway_key ? " gateway=yes" : "");
	return SSH_AUTH_SUCCESS;
}

/*
 * A gateway's session carries one channel per user session it forwards (and
 * its keepalive stream), so --max-channels, a person's limit, is not its own.
 */
static unsigned session_max_channels(const struct session *s)
{
	const struct session_config *cfg = s->env->config;

	return s->gateway_key ? MAX(cfg->max_channels, SESSION_GATEWAY_MAX_CHANNELS)
			      : cfg->max_channels;
}

static ssh_channel session_on_channel_open(ssh_session ssh, void *userdata)
{
	struct session *s = userdata;
	const struct session_config *cfg = s->env->config;
	unsigned max_channels = session_max_channels(s);
	char refused[160] = "";
	struct chan *c;

	/* Past the limit, one more channel is opened only to say so. */
	if (s->dead || s->state != SESSION_AUTHED || s->n_chans > max_channels)
		return NULL;
	if (s->over_limit)
		snprintf(refused, sizeof(refused),
			 "too many sessions with your key (at most %u); closing",
			 cfg->max_sessions_per_key);
	else if (s->n_chans >= max_channels)
		snprintf(refused, sizeof(refused),
			 "too many channels in this session (at most %u); closing", max_channels);
	if (chan_new(&s->chan_env, s->ssh, refused[0] ? refused : NULL, &c) < 0)
		return NULL;
	TAILQ_INSERT_TAIL(&s->chans, c, entry);
	s->n_chans++;
	return c->ch;
}

/* What its channels ask of the session (channel.h). */

static void session_chan_audit(void *userdata, const char *event, const char *detail)
{
	session_audit(userdata, event, "%s", detail);
}

static size_t session_chan_unsent(void *userdata)
{
	return session_unsent(userdata);
}

static void session_chan_update_events(void *userdata)
{
	session_update_events(userdata);
}

static void session_chan_revoke(void *userdata, const char *why)
{
	session_revoke(userdata, why);
}

static void session_chan_finished(void *userdata, struct chan *c)
{
	struct session *s = userdata;

	TAILQ_REMOVE(&s->chans, c, entry);
	s->n_chans--;
	chan_free(c);
}

static const struct chan_ops session_chan_ops = {
	.audit = session_chan_audit,
	.unsent = session_chan_unsent,
	.update_events = session_chan_update_events,
	.revoke = session_chan_revoke,
	.finished = session_chan_finished,
};

int session_new(const struct session_env *env, int fd, const char *addr, struct session **ret)
{
	_cleanup_close_ int own_fd = fd; /* ours to close until libssh holds it */
	struct session *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->env = env;
	s->state = SESSION_KEX;
	s->accepted_usec = clock_now_usec();
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	/* Where the client reached us: the resume hint tells it to come back there. */
	tcp_address(fd, true, s->local, sizeof(s->local), &s->local_port);
	TAILQ_INIT(&s->chans);
	s->chan_env = (struct chan_env){ .event = env->event, .poller = env->poller,
					 .config = &env->config->chan, .ops = &session_chan_ops,
					 .userdata = s,
					 .host = s->local_port ? s->local : NULL,
					 .port = s->local_port };
	s->ssh = ssh_new();
	s->pump = ssh_event_new();
	if (!s->ssh || !s->pump) {
		r = -ENOMEM;
		goto fail;
	}
	r = sd_event_add_time_relative(env->event, &s->grace, CLOCK_MONOTONIC,
				       (uint64_t)env->config->login_grace_s * 1000000, 0,
				       session_on_grace, s);
	if (r >= 0)
		r = sd_event_add_time_relative(env->event, &s->keepalive, CLOCK_MONOTONIC,
					       (uint64_t)env->config->keepalive_s * 1000000, 0,
					       session_on_keepalive, s);
	if (r < 0) {
		log_error_errno(r, "cannot watch connection");
		goto fail;
	}
	sd_event_source_set_enabled(s->keepalive, SD_EVENT_OFF);

	r = ssh_bind_accept_fd(env->bind, s->ssh, fd) == SSH_OK ? 0 : -EIO;
	/* Once libssh holds fd (even if accepting failed after), freeing its session closes it. */
	if (ssh_get_fd(s->ssh) == fd)
		TAKE_FD(own_fd);
	if (r < 0) {
		log_warning("connection from %s: %s", addr, ssh_get_error(env->bind));
		goto fail;
	}
	s->cb = (struct ssh_server_callbacks_struct){
		.userdata = s,
		.auth_pubkey_function = session_on_auth_pubkey,
		.channel_open_request_session_function = session_on_channel_open,
	};
	ssh_callbacks_init(&s->cb);
	ssh_set_server_callbacks(s->ssh, &s->cb);
	ssh_set_auth_methods(s->ssh, SSH_AUTH_METHOD_PUBLICKEY);
	ssh_set_blocking(s->ssh, 0);
	ssh_set_counters(s->ssh, &s->sent, &s->packed);

	/* This polls fd once: a peer that reset already makes libssh close it. */
	if (ssh_handle_key_exchange(s->ssh) == SSH_ERROR ||
	    ssh_event_add_session(s->pump, s->ssh) != SSH_OK) {
		log_warning("connection from %s: cannot start the key exchange", addr);
		r = -EIO;
		goto fail;
	}
	/*
	 * libssh may also have closed fd without an error: fail here rather
	 * than close a session its owner has not taken yet.
	 */
	if (ssh_get_fd(s->ssh) == SSH_INVALID_SOCKET ||
	    (ssh_get_status(s->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
		log_info("connection from %s closed: connection closed", addr);
		r = -ECONNRESET;
		goto fail;
	}
	r = watch_add(env->poller, fd, EPOLLIN, session_on_io, s, &s->io);
	if (r < 0) {
		log_error_errno(r, "cannot watch connection");
		goto fail;
	}
	session_update_events(s);
	*ret = s;
	return 0;
fail:
	session_free(s);
	return r;
}
