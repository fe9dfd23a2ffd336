/* SPDX-License-Identifier: MIT */
/*
 * The ttyhub-sshd process: its sd-event loop, the TCP listener (from
 * systemd socket activation or bound by us), the host key, the connection
 * that asks ttyhubd which keys may log in (authz.h), the
 * pre-authentication limits libssh does not have, and every SSH session.
 * Rights are ttyhubd's: it reads the access file and revokes keys itself.
 *
 * Pre-authentication limits: at most max_unauth sessions not yet
 * authenticated, at most max_unauth_per_source of them from one address.
 * When a limit is reached, one unauthenticated session (of that source, or
 * overall) is dropped to make room: the one that got least far in the
 * handshake (fewest bytes sent before the keys are exchanged; a session
 * with keys exchanged last), the oldest of those.  A flood of stalled or
 * slow connections then cycles among itself while a real client, which
 * sends its identification, KEXINIT and key-exchange init at once, gets
 * through; only a flood sending whole handshakes competes with it.  Each session has login_grace seconds to
 * authenticate.
 */
#pragma once

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "authz.h"
#include "poller.h"
#include "session.h"

struct sshd_config {
	const char *listen;      /* ADDR:PORT when not socket-activated */
	const char *host_key;
	const char *broker;
	unsigned max_unauth;
	unsigned max_unauth_per_source;
	unsigned login_grace_s;
	unsigned max_auth_tries;
	unsigned keepalive_s;
	unsigned keepalive_count;
	unsigned max_sessions;
	unsigned max_sessions_per_key; /* authenticated sessions of one key */
	unsigned max_channels;   /* per session */
	unsigned menu_timeout_s; /* an idle console menu closes */
	/* Gateway mode (gateway.h): the hosts file, NULL on a host. */
	const char *gateway_hosts;
	const char *gateway_key;        /* the gateway's private key */
	unsigned gateway_keepalive_s;   /* upstream keepalive (3 missed: the host is lost) */
	unsigned gateway_timeout_ms;    /* per-host deadline of a list */
	const char *gateway_socket;     /* ttyhub-webd's broker socket on a gateway, or NULL */
	uid_t gateway_socket_uid;       /* may connect there too, or (uid_t)-1 */
};

struct sshd {
	sd_event *event;
	struct sshd_config config;
	ssh_bind bind;               /* owned; holds the host key */
	int listen_fd;               /* owned */
	sd_event_source *listen_io;  /* owned */
	struct poller *poller;       /* owned; every connection and broker socket */
	struct authz authz;          /* asks ttyhubd whether a key may log in */
	struct gateway *gateway;     /* owned: gateway mode, else NULL */
	struct session_config session_config; /* from config: what sessions read */
	struct session_env session_env;       /* what every session is made with */
	TAILQ_HEAD(, session) sessions;
	unsigned n_sessions;
	unsigned n_unauth;
	TAILQ_HEAD(, session) dead;  /* closed, freed by the sweep */
	sd_event_source *sweep;      /* owned */
	uint64_t refused_logged_usec;
	unsigned refused_since_log;
	sd_event_source *accept_retry; /* owned: accepting paused (out of descriptors) */
};

/*
 * How long a stopping ttyhub-sshd waits for its clients to take their last
 * words (the resume hints): they are on the way out already, and a client
 * that does not read must not hold up a restart.
 */
#define SSHD_SHUTDOWN_USEC (3 * 1000 * 1000)

int sshd_init(struct sshd *d, sd_event *e, const struct sshd_config *cfg);
/*
 * The event loop ended (SIGTERM): stop accepting, let every session tell
 * its users (an attached channel prints its resume hint) and close, and
 * drive their sockets with poll(2) until they are done or timeout_usec
 * passed.  Then sshd_done().
 */
void sshd_shutdown(struct sshd *d, uint64_t timeout_usec);
void sshd_done(struct sshd *d);
int sshd_listen(struct sshd *d);
/*
 * The configuration was reloaded: take its broker path and limits (sessions
 * and channels read them as they need them).
 */
int sshd_reload(struct sshd *d);
