/* SPDX-License-Identifier: MIT */
/*
 * The TLS relay (tlsproxy.h).  One function, tlsproxy_pump(), moves what
 * can be moved in both directions and sets the event masks from what is
 * pending; every event calls it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "tlsproxy.h"
#include "util.h"

/* TLS 1.2 and 1.3 only, AEAD ciphers only, forward-secret key exchange only. */
#define TLSPROXY_PRIORITIES                                                                 \
	"SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:" \
	"+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SAFE_RENEGOTIATION"

struct tlsproxy {
	TAILQ_ENTRY(tlsproxy) entry;
	struct tlsproxy_env *env;
	int net_fd, app_fd;
	gnutls_session_t s;
	bool handshaken;
	sd_event_source *net_io, *app_io, *timer;
	uint8_t up[TLSPROXY_BUF];   /* from the client, decrypted, for the app */
	size_t up_len, up_off;
	uint8_t down[TLSPROXY_BUF]; /* from the app, to encrypt */
	size_t down_len, down_off;
	bool net_eof, app_eof, app_shut;
	struct sockaddr_storage peer;
	socklen_t peer_len;
};

int tlsproxy_env_init(struct tlsproxy_env *env, const char *cert, const char *key)
{
	const char *where = NULL;
	int r;

	TAILQ_INIT(&env->proxies);
	r = gnutls_certificate_allocate_credentials(&env->cred);
	if (r < 0)
		return log_error_errno(-ENOMEM, "gnutls: %s", gnutls_strerror(r));
	r = gnutls_certificate_set_x509_key_file(env->cred, cert, key, GNUTLS_X509_FMT_PEM);
	if (r < 0)
		return log_error_errno(-EINVAL, "TLS certificate %s or key %s: %s", cert, key,
				       gnutls_strerror(r));
	r = gnutls_priority_init(&env->prio, TLSPROXY_PRIORITIES, &where);
	if (r < 0)
		return log_error_errno(-EINVAL, "TLS priorities at \"%s\": %s", where ?: "?",
				       gnutls_strerror(r));
	return 0;
}

void tlsproxy_env_done(struct tlsproxy_env *env)
{
	while (env->n_proxies)
		tlsproxy_free(TAILQ_FIRST(&env->proxies));
	if (env->prio)
		gnutls_priority_deinit(env->prio);
	if (env->cred)
		gnutls_certificate_free_credentials(env->cred);
	env->prio = NULL;
	env->cred = NULL;
}

struct tlsproxy *tlsproxy_free(struct tlsproxy *p)
{
	if (!p)
		return NULL;
	TAILQ_REMOVE(&p->env->proxies, p, entry);
	p->env->n_proxies--;
	sd_event_source_disable_unref(p->net_io);
	sd_event_source_disable_unref(p->app_io);
	sd_event_source_disable_unref(p->timer);
	if (p->s)
		gnutls_deinit(p->s);
	safe_close(p->net_fd);
	safe_close(p->app_fd);
	explicit_bzero(p->up, sizeof(p->up));
	explicit_bzero(p->down, sizeof(p->down));
	free(p);
	return NULL;
}

static bool again(ssize_t r)
{
	return r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED;
}

static int tlsproxy_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/* The handshake is done: the socketpair, the app's end to libmicrohttpd. */
static int tlsproxy_connect_app(struct tlsproxy *p)
{
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return negative_errno();
	p->app_fd = sv[0];
	r = p->env->hand_over(p->env->userdata, sv[1], (struct sockaddr *)&p->peer, p->peer_len);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
	return sd_event_add_io(p->env->event, &p->app_io, p->app_fd, EPOLLIN, tlsproxy_on_io, p);
}

/* Move what can be moved; false when the proxy is done (the caller frees it). */
static bool tlsproxy_pump(struct tlsproxy *p)
{
	uint32_t net_ev = 0, app_ev = 0;
	ssize_t n;
	int r;

	if (!p->handshaken) {
		r = gnutls_handshake(p->s);
		if (again(r)) {
			net_ev = gnutls_record_get_direction(p->s) ? EPOLLOUT : EPOLLIN;
			(void)sd_event_source_set_io_events(p->net_io, net_ev);
			return true;
		}
		if (r < 0) {
			log_debug("TLS handshake failed: %s", gnutls_strerror(r));
			return false;
		}
		p->handshaken = true;
		if (tlsproxy_connect_app(p) < 0)
			return false;
	}
	for (bool moved = true; moved;) {
		moved = false;
		/* client -> app */
		if (p->up_off == p->up_len && !p->net_eof) {
			n = gnutls_record_recv(p->s, p->up, sizeof(p->up));
			if (n > 0) {
				p->up_len = (size_t)n;
				p->up_off = 0;
				moved = true;
			} else if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
				p->net_eof = true;
			} else if (!again(n)) {
				return false;
			}
		}
		if (p->up_off < p->up_len) {
			n = send(p->app_fd, p->up + p->up_off, p->up_len - p->up_off, MSG_NOSIGNAL);
			if (n > 0) {
				p->up_off += (size_t)n;
				moved = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return false;
			}
		}
		/* app -> client (after EAGAIN, gnutls wants the same data again: kept in down) */
		if (p->down_off == p->down_len && !p->app_eof) {
			n = recv(p->app_fd, p->down, sizeof(p->down), 0);
			if (n > 0) {
				p->down_len = (size_t)n;
				p->down_off = 0;
				moved = true;
			} else if (n == 0) {
				p->app_eof = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				return false;
			}
		}
		if (p->down_off < p->down_len) {
			n = gnutls_record_send(p->s, p->down + p->down_off, p->down_len - p->down_off);
			if (n > 0) {
				p->down_off += (size_t)n;
				moved = true;
			} else if (!again(n)) {
				return false;
			}
		}
	}
	if (p->net_eof && p->up_off == p->up_len && !p->app_shut) {
		(void)shutdown(p->app_fd, SHUT_WR);
		p->app_shut = true;
	}
	if (p->app_eof && p->down_off == p->down_len) {
		(void)gnutls_bye(p->s, GNUTLS_SHUT_WR); /* best effort: the socket closes next */
		return false;
	}
	if (p->up_off == p->up_len && !p->net_eof)
		net_ev |= EPOLLIN;
	if (p->down_off < p->down_len)
		net_ev |= EPOLLOUT;
	if (p->down_off == p->down_len && !p->app_eof)
		app_ev |= EPOLLIN;
	if (p->up_off < p->up_len)
		app_ev |= EPOLLOUT;
	/* Nothing wanted: off, or a hung-up side would wake us for nothing, again and again. */
	(void)sd_event_source_set_io_events(p->net_io, net_ev);
	(void)sd_event_source_set_enabled(p->net_io, net_ev ? SD_EVENT_ON : SD_EVENT_OFF);
	(void)sd_event_source_set_io_events(p->app_io, app_ev);
	(void)sd_event_source_set_enabled(p->app_io, app_ev ? SD_EVENT_ON : SD_EVENT_OFF);
	return true;
}

static int tlsproxy_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct tlsproxy *p = userdata;

	if (!tlsproxy_pump(p))
		tlsproxy_free(p);
	return 0;
}

static int tlsproxy_on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct tlsproxy *p = userdata;

	log_debug("TLS handshake not done in time; closing");
	tlsproxy_free(p);
	return 0;
}

int tlsproxy_new(struct tlsproxy_env *env, int fd, const struct sockaddr *peer, socklen_t len)
{
	struct tlsproxy *p = calloc(1, sizeof(*p));
	int r;

	if (!p) {
		safe_close(fd);
		return -ENOMEM;
	}
	p->env = env;
	p->net_fd = fd;
	p->app_fd = -EBADF;
	if (len > sizeof(p->peer))
		len = sizeof(p->peer);
	memcpy(&p->peer, peer, len);
	p->peer_len = len;
	TAILQ_INSERT_TAIL(&env->proxies, p, entry);
	env->n_proxies++;
	r = gnutls_init(&p->s, GNUTLS_SERVER | GNUTLS_NONBLOCK);
	if (r < 0) {
		p->s = NULL;
		tlsproxy_free(p);
		return -ENOMEM;
	}
	r = gnutls_priority_set(p->s, env->prio);
	if (r >= 0)
		r = gnutls_credentials_set(p->s, GNUTLS_CRD_CERTIFICATE, env->cred);
	if (r < 0) {
		tlsproxy_free(p);
		return -EINVAL;
	}
	gnutls_certificate_server_set_request(p->s, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_int(p->s, fd);
	r = sd_event_add_io(env->event, &p->net_io, fd, EPOLLIN, tlsproxy_on_io, p);
	if (r >= 0)
		r = sd_event_add_time_relative(env->event, &p->timer, CLOCK_MONOTONIC,
					       env->handshake_usec, 0, tlsproxy_on_timeout, p);
	if (r < 0) {
		tlsproxy_free(p);
		return r;
	}
	return 0;
}
