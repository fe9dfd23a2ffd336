/* SPDX-License-Identifier: MIT */
/*
 * The gateway's SSH client sessions to its hosts (see upstream.h).
 *
 * Each host walks CONNECT (ssh_connect(), which with a non-blocking
 * session returns SSH_AGAIN until the key exchange is done) -> host key
 * check -> AUTH (ssh_userauth_publickey(), SSH_AUTH_AGAIN likewise) -> UP.
 * Every step is retried from the session's fd watch until it stops saying
 * "again"; one sd-event timer per host is the connect deadline, then the
 * keepalive tick while UP, then the back-off while DOWN.  Once UP, the
 * session joins a private ssh_event and each wake-up runs
 * ssh_event_dopoll(ev, 0) and pumps every stream, as session.c does for the
 * server side.
 *
 * A stream is an SSH channel plus our end of a socketpair and two bounded
 * buffers: fd -> channel (never more than the channel's window is handed
 * to libssh, and nothing more is read from any fd while libssh waits to
 * flush the socket to the host) and channel -> fd (filled by the channel's
 * data callback up to its size; what does not fit stays in libssh's
 * channel buffer, which keeps the window from growing, so a slow reader
 * stops the host, and is read once the buffer has drained).
 *
 * The channel callbacks only copy bytes and set flags, and mark the stream
 * dirty; after each ssh_event_dopoll() only dirty streams (and those that
 * wait for something: opening, window, the host's socket) are pumped, so
 * one busy stream among many idle ones costs no work per idle stream.
 * Nothing is freed inside a libssh callback: the pump finds closed channels
 * and broken sessions and tears them down itself.  A lost session frees
 * every stream at once, closing our socket ends, so every user reads EOF.
 *
 * ssh_connect() resolves a DNS name with getaddrinfo(), which blocks:
 * numeric addresses (what the tests and most hosts files use) never do.
 */
#include <errno.h>
#include <fcntl.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h> /* ssh_send_keepalive(), for clients too */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "upstream.h"
#include "util.h"

/* Each direction of each stream buffers at most this much of ours. */
#define STREAM_BUF (32 * 1024)
#define BACKOFF_FIRST_S 1
#define BACKOFF_MAX_S 30
#define WHY_MAX 256
#define USEC_PER_SEC 1000000ULL

static const char ping_payload[] = "{\"type\":\"ping\"}";

enum host_phase {
	PHASE_IDLE,    /* no session: DOWN, waiting for the retry */
	PHASE_CONNECT, /* TCP + key exchange */
	PHASE_AUTH,
	PHASE_UP,
};

enum stream_phase {
	STREAM_WAITING,    /* for the host's session */
	STREAM_OPENING,    /* channel open sent */
	STREAM_REQUESTING, /* subsystem request sent */
	STREAM_OPEN,
};

/* What stream_pump() tells its host. */
enum {
	PUMP_KEEP,
	PUMP_DONE,    /* the stream is over: free it */
	PUMP_SESSION, /* the session is broken: tear the host down (why in host->fail) */
};

struct up_host;

struct up_stream {
	struct up_host *h;
	TAILQ_ENTRY(up_stream) entry;
	int fd; /* our end of the socketpair; -EBADF for the control stream */
	struct watch *w;
	ssh_channel ch;
	enum stream_phase phase;
	sd_event_source *deadline; /* while not yet open */
	bool control;
	bool dirty;    /* something happened: pump it */
	bool held;     /* libssh holds channel data that did not fit in `in` */
	bool reading;  /* in ssh_channel_read_nonblocking(): leave data to it */
	bool throttled; /* not reading the user while libssh flushes the host's socket */
	bool host_eof; /* EOF or CLOSE from the host */
	bool fd_eof;   /* the user shut down its writing side */
	bool fd_hup;   /* the user closed its end */
	bool eof_sent; /* EOF sent on the channel */
	struct ssh_channel_callbacks_struct cb;
	uint8_t out[STREAM_BUF]; /* fd -> channel */
	size_t out_len;
	uint8_t in[STREAM_BUF]; /* channel -> fd */
	size_t in_off, in_len;
};

TAILQ_HEAD(up_stream_list, up_stream);

struct up_host {
	struct upstream *u;
	const struct hosts_entry *entry;
	ssh_key pinned;    /* NULL: the pinned key did not load (why says so) */
	char pinned_fp[80];
	enum upstream_state state;
	enum host_phase phase;
	char why[WHY_MAX];
	char logged[WHY_MAX]; /* the last failure logged: the same one is not logged again */
	char fail[WHY_MAX];   /* set by the pump when the session broke */
	ssh_session ssh;
	ssh_event pump;
	struct ssh_counter_struct wire;
	struct watch *io;
	sd_event_source *timer;
	sd_event_source *kick; /* deferred: pump again (streams left dirty by a pump) */
	unsigned backoff_s;
	unsigned attempts;
	bool connected; /* ssh_connect() said SSH_OK: do not call it again */
	uint64_t rx_seen;   /* wire.in_bytes at the last keepalive tick */
	unsigned idle_ticks; /* keepalive ticks since a byte came from the host */
	struct up_stream *control;
	struct up_stream_list streams; /* the control stream too */
	size_t n_streams;              /* users' streams only */
};

struct upstream {
	sd_event *event;
	struct poller *poller;
	struct upstream_config cfg;
	char *user;
	ssh_key key;
	struct up_host *hosts;
	size_t n_hosts;
};

static void host_service(struct up_host *h);
static void host_update_events(struct up_host *h);
static void host_connect(struct up_host *h);
static int stream_new(struct up_host *h, bool control, int fd, struct up_stream **ret);

/* "SHA256:..." of a key into buf ("" if libssh cannot say). */
static void key_fingerprint(const ssh_key key, char *buf, size_t size)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp;

	buf[0] = '\0';
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != SSH_OK)
		return;
	fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	if (fp)
		snprintf(buf, size, "%s", fp);
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
}

/* The host key algorithms to offer for a pinned key type: only its own, so
 * a host that also has keys of other types shows the pinned one. */
static const char *hostkey_algorithms(const char *keytype)
{
	if (strcmp(keytype, "ssh-rsa") == 0 || strncmp(keytype, "rsa-sha2-", 9) == 0)
		return "rsa-sha2-512,rsa-sha2-256";
	return keytype;
}

/* stream */

static struct up_stream *stream_free(struct up_stream *s)
{
	struct up_host *h;

	if (!s)
		return NULL;
	h = s->h;
	TAILQ_REMOVE(&h->streams, s, entry);
	if (s->control)
		h->control = NULL;
	else
		h->n_streams--;
	s->w = watch_free(s->w);
	s->fd = safe_close(s->fd);
	s->deadline = sd_event_source_disable_unref(s->deadline);
	/*
	 * Sends CLOSE if the channel is open, never waiting for the answer; libssh
	 * keeps the channel until the host's CLOSE comes, so its callbacks must go.
	 */
	if (s->ch) {
		ssh_remove_channel_callbacks(s->ch, &s->cb);
		ssh_channel_free(s->ch);
	}
	free(s);
	return NULL;
}

/* Which fd events the stream wants now. */
static void stream_update_events(struct up_stream *s)
{
	uint32_t ev = 0;

	if (!s->w)
		return;
	if (s->phase == STREAM_OPEN) {
		/* Not while libssh waits to flush the host's socket: the host wakes us then. */
		s->throttled = ssh_get_poll_flags(s->h->ssh) & SSH_WRITE_PENDING;
		if (!s->fd_eof && s->out_len < sizeof(s->out) && !s->throttled)
			ev |= EPOLLIN;
		if (s->in_len > s->in_off)
			ev |= EPOLLOUT;
	}
	/* Hang-ups come anyway (a user that gives up while the stream waits). */
	watch_set_events(s->w, ev);
}

/* Read from the user into out. */
static void stream_read_fd(struct up_stream *s)
{
	while (!s->fd_eof && s->out_len < sizeof(s->out)) {
		ssize_t n = read(s->fd, s->out + s->out_len, sizeof(s->out) - s->out_len);

		if (n > 0) {
			s->out_len += (size_t)n;
		} else if (n == 0) {
			s->fd_eof = true;
		} else if (errno == EINTR) {
			continue;
		} else {
			if (errno != EAGAIN)
				s->fd_hup = true;
			break;
		}
	}
}

/* Write in to the user; false if the user is gone. */
static bool stream_write_fd(struct up_stream *s)
{
	while (s->in_len > s->in_off) {
		ssize_t n = send(s->fd, s->in + s->in_off, s->in_len - s->in_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			s->in_off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return true;
		} else {
			return false;
		}
	}
	s->in_off = s->in_len = 0;
	return true;
}

/* out to the channel, within its window. */
static bool stream_write_channel(struct up_stream *s)
{
	while (s->out_len > 0) {
		uint32_t win = ssh_channel_window_size(s->ch);
		int n;

		if (win == 0)
			return true;
		n = ssh_channel_write(s->ch, s->out, (uint32_t)MIN((size_t)win, s->out_len));
		if (n < 0)
			return false;
		if (n == 0)
			return true;
		memmove(s->out, s->out + n, s->out_len - (size_t)n);
		s->out_len -= (size_t)n;
	}
	return true;
}

/* libssh callbacks: copy and mark, nothing else. */

static int stream_on_data(ssh_session ssh, ssh_channel ch, void *data, uint32_t len,
			  int is_stderr, void *userdata)
{
	struct up_stream *s = userdata;
	size_t n;

	s->dirty = true;
	/* Reading held data: what comes now is after it, so it stays in libssh's buffer too. */
	if (s->reading) {
		s->held = true;
		return 0;
	}
	/* The control stream's pongs and the host's hello only show it is alive; stderr is
	 * not part of the protocol: both are consumed so they cannot hold the window. */
	if (s->control || is_stderr)
		return (int)len;
	if (s->in_off > 0) {
		memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
		s->in_len -= s->in_off;
		s->in_off = 0;
	}
	n = MIN((size_t)len, sizeof(s->in) - s->in_len);
	memcpy(s->in + s->in_len, data, n);
	s->in_len += n;
	if (n < len)
		s->held = true;
	return (int)n;
}

static void stream_on_eof(ssh_session ssh, ssh_channel ch, void *userdata)
{
	struct up_stream *s = userdata;

	s->host_eof = true;
	s->dirty = true;
}

/*
 * Held data (what did not fit in in) once in has drained.  The read may run
 * libssh's packet loop; stream_on_data() then leaves new data after the
 * held data, in order.
 */
static void stream_read_held(struct up_stream *s)
{
	while (s->held && s->in_len == 0) {
		int n;

		s->reading = true;
		n = ssh_channel_read_nonblocking(s->ch, s->in, sizeof(s->in), 0);
		s->reading = false;
		if (n <= 0)
			s->held = false; /* drained (0), or the host's EOF or an error: both end it */
		else
			s->in_len = (size_t)n;
	}
}

/* Advance the channel's opening; PUMP_KEEP while it goes on. */
static int stream_open_step(struct up_stream *s)
{
	struct up_host *h = s->h;
	int r;

	if (s->phase == STREAM_WAITING) {
		s->ch = ssh_channel_new(h->ssh);
		if (!s->ch)
			return PUMP_DONE;
		s->cb = (struct ssh_channel_callbacks_struct){
			.userdata = s,
			.channel_data_function = stream_on_data,
			.channel_eof_function = stream_on_eof,
			.channel_close_function = stream_on_eof,
		};
		ssh_callbacks_init(&s->cb);
		ssh_set_channel_callbacks(s->ch, &s->cb);
		s->phase = STREAM_OPENING;
	}
	if (s->phase == STREAM_OPENING) {
		r = ssh_channel_open_session(s->ch);
		if (r == SSH_AGAIN)
			return PUMP_KEEP;
		if (r != SSH_OK) {
			if (s->control)
				snprintf(h->fail, sizeof(h->fail), "the host refused a channel: %.150s",
					 ssh_get_error(h->ssh));
			return s->control ? PUMP_SESSION : PUMP_DONE;
		}
		s->phase = STREAM_REQUESTING;
	}
	if (s->phase == STREAM_REQUESTING) {
		r = ssh_channel_request_subsystem(s->ch, UPSTREAM_SUBSYSTEM);
		if (r == SSH_AGAIN)
			return PUMP_KEEP;
		if (r != SSH_OK) {
			if (s->control)
				snprintf(h->fail, sizeof(h->fail),
					 "the host refused the " UPSTREAM_SUBSYSTEM " subsystem "
					 "(is the gateway option on this key's access line?)");
			return s->control ? PUMP_SESSION : PUMP_DONE;
		}
		s->phase = STREAM_OPEN;
		s->deadline = sd_event_source_disable_unref(s->deadline);
	}
	return PUMP_KEEP;
}

/* Move what can move; never blocks. */
static int stream_pump(struct up_stream *s)
{
	struct up_host *h = s->h;
	int r;

	s->dirty = false;
	if (s->fd_hup)
		return PUMP_DONE;
	if (s->phase != STREAM_OPEN) {
		if (h->phase != PHASE_UP)
			return PUMP_KEEP;
		r = stream_open_step(s);
		if (r != PUMP_KEEP || s->phase != STREAM_OPEN)
			return r;
	}
	/* Host -> user: flush what we hold, then what libssh holds. */
	if (!s->control) {
		if (!stream_write_fd(s))
			return PUMP_DONE;
		stream_read_held(s);
		if (!stream_write_fd(s))
			return PUMP_DONE;
	}
	/* The host's EOF: done once the user has it all (a new control stream comes later). */
	if ((s->host_eof || ssh_channel_is_closed(s->ch)) && s->in_len == s->in_off && !s->held)
		return PUMP_DONE;
	/* User -> host, only while libssh has flushed the host's socket. */
	if (!s->control && !(ssh_get_poll_flags(h->ssh) & SSH_WRITE_PENDING))
		stream_read_fd(s);
	if (!stream_write_channel(s))
		return PUMP_DONE;
	if (s->fd_hup)
		return PUMP_DONE;
	if (s->fd_eof && s->out_len == 0 && !s->eof_sent) {
		ssh_channel_send_eof(s->ch);
		s->eof_sent = true;
	}
	return PUMP_KEEP;
}

/* Whether a pump could do anything for s now. */
static bool stream_wants_pump(const struct up_stream *s)
{
	return s->dirty || s->phase != STREAM_OPEN || s->held || s->throttled || s->fd_hup ||
	       s->out_len > 0 || (s->fd_eof && !s->eof_sent);
}

static void stream_on_fd(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct up_stream *s = userdata;

	/* EPOLLHUP on a socketpair: the user closed its end; nothing can reach it any more. */
	if (revents & (EPOLLHUP | EPOLLERR))
		s->fd_hup = true;
	s->dirty = true;
	host_service(s->h);
}

static int stream_on_deadline(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct up_stream *s = userdata;
	struct up_host *h = s->h;

	log_info("host %s: a stream did not open within %u s; closed", h->entry->name,
		 h->u->cfg.connect_timeout_s);
	stream_free(s);
	/* Freeing an opening channel may have queued its CLOSE. */
	if (h->phase != PHASE_IDLE)
		host_update_events(h);
	return 0;
}

static int stream_new(struct up_host *h, bool control, int fd, struct up_stream **ret)
{
	struct upstream *u = h->u;
	struct up_stream *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->h = h;
	s->fd = fd;
	s->control = control;
	s->phase = STREAM_WAITING;
	if (fd >= 0) {
		r = watch_add(u->poller, fd, 0, stream_on_fd, s, &s->w);
		if (r < 0) {
			free(s);
			return r;
		}
	}
	r = sd_event_add_time_relative(u->event, &s->deadline, CLOCK_MONOTONIC,
				       (uint64_t)u->cfg.connect_timeout_s * USEC_PER_SEC, 0,
				       stream_on_deadline, s);
	if (r < 0) {
		s->w = watch_free(s->w);
		free(s);
		return r;
	}
	TAILQ_INSERT_TAIL(&h->streams, s, entry);
	if (control)
		h->control = s;
	else
		h->n_streams++;
	*ret = s;
	return 0;
}

/* host */

static void host_log_down(struct up_host *h)
{
	/* The same failure again and again (a host that stays away) is logged once. */
	if (strcmp(h->logged, h->why) == 0)
		return;
	snprintf(h->logged, sizeof(h->logged), "%s", h->why);
	log_warning("host %s (%s:%u) is unreachable: %s; retrying", h->entry->name,
		    h->entry->address, h->entry->port, h->why);
}

/* Close the session and every stream. */
static void host_drop_session(struct up_host *h)
{
	struct up_stream *s;

	while ((s = TAILQ_FIRST(&h->streams)))
		stream_free(s);
	h->io = watch_free(h->io);
	if (h->ssh) {
		if (h->pump)
			ssh_event_remove_session(h->pump, h->ssh);
		/* Best effort: a disconnect message, never waiting for the host. */
		ssh_disconnect(h->ssh);
		ssh_free(h->ssh);
		h->ssh = NULL;
	}
	if (h->pump) {
		ssh_event_free(h->pump);
		h->pump = NULL;
	}
}

static void host_arm_timer(struct up_host *h, uint64_t usec)
{
	sd_event_source_set_time_relative(h->timer, usec);
	sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
}

/* Failed or lost: DOWN with why, everything closed, a retry after the back-off. */
static void host_down(struct up_host *h, const char *why)
{
	host_drop_session(h);
	h->state = UPSTREAM_DOWN;
	h->phase = PHASE_IDLE;
	snprintf(h->why, sizeof(h->why), "%s", why);
	host_log_down(h);
	if (!h->pinned)
		return; /* nothing will change until the hosts file does */
	host_arm_timer(h, (uint64_t)h->backoff_s * USEC_PER_SEC);
	h->backoff_s = MIN(h->backoff_s * 2, (unsigned)BACKOFF_MAX_S);
}

/* libssh's reason, as a why. */
static void host_fail_ssh(struct up_host *h, const char *what)
{
	const char *err = ssh_get_error(h->ssh);
	char why[WHY_MAX];

	if (strstr(err, "Connection refused"))
		snprintf(why, sizeof(why), "connection refused");
	else if (strstr(err, "server host key algo"))
		/* Only the pinned key's type is offered (hostkey_algorithms()). */
		snprintf(why, sizeof(why),
			 "host key does not match the pinned key (the host has no %s key, "
			 "pinned %s)", h->entry->keytype, h->pinned_fp);
	else if (strstr(err, "No route to host") || strstr(err, "Network is unreachable"))
		snprintf(why, sizeof(why), "no route to host");
	else
		snprintf(why, sizeof(why), "%s: %.180s", what, err[0] ? err : "unknown error");
	host_down(h, why);
}

/*
 * libssh 0.10 makes the socket blocking once the TCP connect completes, and
 * then writes its whole queue with one send() after each POLLOUT: on a
 * blocking socket to a host that stopped reading, that send() would stop
 * the whole gateway.  Non-blocking, it writes what fits and libssh waits for
 * the next POLLOUT (the same as on the server side, whose sockets are
 * accepted non-blocking in sshd.c).
 */
static void host_keep_nonblocking(struct up_host *h)
{
	socket_t fd = ssh_get_fd(h->ssh);
	int fl;

	if (fd == SSH_INVALID_SOCKET)
		return;
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void host_update_events(struct up_host *h)
{
	int flags;

	if (!h->io)
		return;
	flags = ssh_get_poll_flags(h->ssh);
	watch_set_events(h->io, EPOLLIN | (flags & SSH_WRITE_PENDING ? EPOLLOUT : 0));
}

/* Does the offered host key match the pinned one?  If not, why in buf. */
static bool host_key_matches(struct up_host *h, char *why, size_t size)
{
	ssh_key offered = NULL;
	char fp[80];
	bool ok;

	if (ssh_get_server_publickey(h->ssh, &offered) != SSH_OK) {
		snprintf(why, size, "the host offered no host key");
		return false;
	}
	ok = ssh_key_cmp(offered, h->pinned, SSH_KEY_CMP_PUBLIC) == 0;
	if (!ok) {
		key_fingerprint(offered, fp, sizeof(fp));
		snprintf(why, size, "host key does not match the pinned key (offered %s, pinned %s)",
			 fp, h->pinned_fp);
	}
	ssh_key_free(offered);
	return ok;
}

static void host_went_up(struct up_host *h)
{
	struct upstream *u = h->u;
	struct up_stream *ctl;

	h->phase = PHASE_UP;
	h->state = UPSTREAM_UP;
	h->why[0] = '\0';
	h->logged[0] = '\0';
	h->backoff_s = BACKOFF_FIRST_S;
	h->rx_seen = h->wire.in_bytes;
	h->idle_ticks = 0;
	log_info("host %s (%s:%u) is up", h->entry->name, h->entry->address, h->entry->port);
	if (ssh_event_add_session(h->pump, h->ssh) != SSH_OK) {
		host_down(h, "cannot poll the session");
		return;
	}
	host_arm_timer(h, (uint64_t)u->cfg.keepalive_s * USEC_PER_SEC);
	/* The control stream; users' streams that waited start opening in host_service(). */
	if (stream_new(h, true, -EBADF, &ctl) < 0)
		host_down(h, "out of memory");
	else {
		/* Its first position lets it open before users' streams that waited. */
		TAILQ_REMOVE(&h->streams, ctl, entry);
		TAILQ_INSERT_HEAD(&h->streams, ctl, entry);
	}
}

/*
 * Pumping one stream may run libssh's packet loop (opening a channel,
 * reading held data), whose callbacks can mark a stream already passed
 * dirty: its data is in libssh, not in the socket, so nothing would wake
 * it.  A few more rounds, then a deferred event does the rest.
 */
static void host_pump_streams(struct up_host *h)
{
	struct up_stream *s, *next;
	bool again = true;

	for (unsigned round = 0; again && round < 4; round++) {
		again = false;
		for (s = TAILQ_FIRST(&h->streams); s; s = next) {
			next = TAILQ_NEXT(s, entry);
			if (!stream_wants_pump(s))
				continue;
			switch (stream_pump(s)) {
			case PUMP_KEEP:
				stream_update_events(s);
				break;
			case PUMP_DONE:
				stream_free(s);
				break;
			case PUMP_SESSION:
				host_down(h, h->fail);
				return;
			}
		}
		TAILQ_FOREACH(s, &h->streams, entry)
			again = again || s->dirty;
	}
	if (again)
		sd_event_source_set_enabled(h->kick, SD_EVENT_ONESHOT);
}

/* Everything a wake-up of the session or of a stream may have changed. */
static void host_service(struct up_host *h)
{
	int r;

	switch (h->phase) {
	case PHASE_IDLE: {
		struct up_stream *s, *next;

		/* Only users that give up on a stream that waits. */
		for (s = TAILQ_FIRST(&h->streams); s; s = next) {
			next = TAILQ_NEXT(s, entry);
			if (s->fd_hup)
				stream_free(s);
		}
		return;
	}
	case PHASE_CONNECT:
		r = h->connected ? SSH_OK : ssh_connect(h->ssh);
		host_keep_nonblocking(h);
		if (r == SSH_AGAIN)
			break;
		if (r != SSH_OK) {
			host_fail_ssh(h, "cannot connect");
			return;
		}
		{
			char why[WHY_MAX];

			if (!host_key_matches(h, why, sizeof(why))) {
				host_down(h, why);
				return;
			}
		}
		h->phase = PHASE_AUTH;
		/* fall through */
	case PHASE_AUTH:
		r = ssh_userauth_publickey(h->ssh, NULL, h->u->key);
		if (r == SSH_AUTH_AGAIN)
			break;
		if (r == SSH_AUTH_DENIED || r == SSH_AUTH_PARTIAL) {
			host_down(h, "key refused by the host");
			return;
		}
		if (r != SSH_AUTH_SUCCESS) {
			host_fail_ssh(h, "authentication failed");
			return;
		}
		host_went_up(h);
		if (h->phase != PHASE_UP)
			return;
		/* fall through */
	case PHASE_UP:
		if (ssh_event_dopoll(h->pump, 0) == SSH_ERROR ||
		    ssh_get_fd(h->ssh) == SSH_INVALID_SOCKET ||
		    (ssh_get_status(h->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
			host_fail_ssh(h, "connection lost");
			return;
		}
		host_pump_streams(h);
		if (h->phase != PHASE_UP)
			return;
		/* Writes to channels may have failed on a broken socket. */
		if (ssh_get_fd(h->ssh) == SSH_INVALID_SOCKET ||
		    (ssh_get_status(h->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
			host_fail_ssh(h, "connection lost");
			return;
		}
		break;
	}
	/* Streams that waited while the session was being set up: their users may leave. */
	if (h->phase != PHASE_UP) {
		struct up_stream *s, *next;

		for (s = TAILQ_FIRST(&h->streams); s; s = next) {
			next = TAILQ_NEXT(s, entry);
			if (s->fd_hup)
				stream_free(s);
		}
	}
	/* libssh may have closed the socket itself (a write that failed). */
	if (ssh_get_fd(h->ssh) == SSH_INVALID_SOCKET) {
		host_fail_ssh(h, "connection lost");
		return;
	}
	host_update_events(h);
}

static void host_on_io(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	host_service(userdata);
}

static int host_on_kick(sd_event_source *es, void *userdata)
{
	host_service(userdata);
	return 0;
}

/* Keepalive while UP: ping when the host was quiet, give up after count quiet ticks. */
static void host_tick(struct up_host *h)
{
	const struct upstream_config *cfg = &h->u->cfg;
	uint8_t frame[FRAME_HEADER + sizeof(ping_payload) - 1];
	struct up_stream *ctl = h->control;

	if (h->wire.in_bytes != h->rx_seen) {
		h->rx_seen = h->wire.in_bytes;
		h->idle_ticks = 0;
	} else if (++h->idle_ticks >= cfg->keepalive_count) {
		char why[WHY_MAX];

		snprintf(why, sizeof(why), "no answer for %u s",
			 cfg->keepalive_s * cfg->keepalive_count);
		host_down(h, why);
		return;
	}
	host_arm_timer(h, (uint64_t)cfg->keepalive_s * USEC_PER_SEC);
	if (h->idle_ticks == 0)
		return;
	if (!ctl) {
		/* The control stream ended (the host's ttyhubd restarted): a new one. */
		if (stream_new(h, true, -EBADF, &ctl) < 0)
			ctl = NULL;
	}
	if (ctl && ctl->phase == STREAM_OPEN && ctl->out_len + sizeof(frame) <= sizeof(ctl->out)) {
		frame_header(frame, FRAME_CONTROL, sizeof(ping_payload) - 1);
		memcpy(frame + FRAME_HEADER, ping_payload, sizeof(ping_payload) - 1);
		memcpy(ctl->out + ctl->out_len, frame, sizeof(frame));
		ctl->out_len += sizeof(frame);
	} else {
		/* No control stream yet: an SSH-level keepalive also makes the host answer. */
		ssh_send_keepalive(h->ssh);
	}
	host_service(h);
}

static int host_on_timer(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct up_host *h = userdata;
	char why[WHY_MAX];

	switch (h->phase) {
	case PHASE_IDLE:
		host_connect(h);
		break;
	case PHASE_CONNECT:
	case PHASE_AUTH:
		snprintf(why, sizeof(why), "no answer within %u s while connecting",
			 h->u->cfg.connect_timeout_s);
		host_down(h, why);
		break;
	case PHASE_UP:
		host_tick(h);
		break;
	}
	return 0;
}

/* Start a connection attempt: CONNECTING until it is UP or DOWN. */
static void host_connect(struct up_host *h)
{
	struct upstream *u = h->u;
	const struct hosts_entry *e = h->entry;
	int port = (int)e->port, off = 0, r;
	socket_t fd;

	h->state = UPSTREAM_CONNECTING;
	h->phase = PHASE_CONNECT;
	h->attempts++;
	h->why[0] = '\0';
	h->connected = false;
	memset(&h->wire, 0, sizeof(h->wire));
	h->ssh = ssh_new();
	h->pump = ssh_event_new();
	if (!h->ssh || !h->pump) {
		host_down(h, "out of memory");
		return;
	}
	if (ssh_options_set(h->ssh, SSH_OPTIONS_HOST, e->address) < 0 ||
	    ssh_options_set(h->ssh, SSH_OPTIONS_PORT, &port) < 0 ||
	    ssh_options_set(h->ssh, SSH_OPTIONS_USER, u->user) < 0 ||
	    /* Nothing from ~/.ssh or /etc/ssh: the hosts file alone says whom to trust. */
	    ssh_options_set(h->ssh, SSH_OPTIONS_PROCESS_CONFIG, &off) < 0 ||
	    ssh_options_set(h->ssh, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") < 0 ||
	    ssh_options_set(h->ssh, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0 ||
	    ssh_options_set(h->ssh, SSH_OPTIONS_HOSTKEYS, hostkey_algorithms(e->keytype)) < 0) {
		char why[WHY_MAX];

		snprintf(why, sizeof(why), "cannot set up the session: %.180s",
			 ssh_get_error(h->ssh));
		host_down(h, why);
		return;
	}
	/* Keystrokes go out at once. */
	{
		int on = 1;

		ssh_options_set(h->ssh, SSH_OPTIONS_NODELAY, &on);
	}
	ssh_set_blocking(h->ssh, 0);
	ssh_set_counters(h->ssh, &h->wire, NULL);
	host_arm_timer(h, (uint64_t)u->cfg.connect_timeout_s * USEC_PER_SEC);

	r = ssh_connect(h->ssh);
	h->connected = r == SSH_OK;
	host_keep_nonblocking(h);
	if (r == SSH_ERROR) {
		host_fail_ssh(h, "cannot connect");
		return;
	}
	fd = ssh_get_fd(h->ssh);
	if (fd == SSH_INVALID_SOCKET) {
		host_fail_ssh(h, "cannot connect");
		return;
	}
	r = watch_add(u->poller, fd, EPOLLIN | EPOLLOUT, host_on_io, h, &h->io);
	if (r < 0) {
		host_down(h, "cannot watch the connection");
		return;
	}
	/* A connect that finished at once (loopback) goes on here. */
	host_service(h);
}

static int host_init(struct upstream *u, struct up_host *h, const struct hosts_entry *e)
{
	char type[64];
	int r;

	h->u = u;
	h->entry = e;
	h->backoff_s = BACKOFF_FIRST_S;
	TAILQ_INIT(&h->streams);
	r = sd_event_add_time_relative(u->event, &h->timer, CLOCK_MONOTONIC, 0, 0, host_on_timer,
				       h);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
	r = sd_event_add_defer(u->event, &h->kick, host_on_kick, h);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(h->kick, SD_EVENT_OFF);
	/* An RSA key pinned under a signature algorithm's name is an "ssh-rsa" key. */
	snprintf(type, sizeof(type), "%s",
		 strncmp(e->keytype, "rsa-sha2-", 9) == 0 ? "ssh-rsa" : e->keytype);
	if (ssh_pki_import_pubkey_base64(e->base64, ssh_key_type_from_name(type), &h->pinned) !=
	    SSH_OK) {
		h->pinned = NULL;
		h->state = UPSTREAM_DOWN;
		snprintf(h->why, sizeof(h->why), "the pinned host key (line %u) cannot be loaded",
			 e->line);
		host_log_down(h);
		return 0;
	}
	key_fingerprint(h->pinned, h->pinned_fp, sizeof(h->pinned_fp));
	return 0;
}

int upstream_new(sd_event *e, struct poller *p, const struct upstream_config *cfg,
		 const struct hosts_file *hosts, struct upstream **ret)
{
	struct upstream *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->event = e;
	u->poller = p;
	u->cfg = *cfg;
	u->cfg.key_path = NULL; /* not kept: only the loaded key */
	if (!u->cfg.keepalive_s)
		u->cfg.keepalive_s = 10;
	if (!u->cfg.keepalive_count)
		u->cfg.keepalive_count = 3;
	if (!u->cfg.connect_timeout_s)
		u->cfg.connect_timeout_s = 10;
	u->user = strdup(cfg->user ? cfg->user : UPSTREAM_USER);
	u->cfg.user = NULL;
	if (!u->user) {
		free(u);
		return -ENOMEM;
	}
	if (access(cfg->key_path, R_OK) < 0) {
		r = negative_errno();
		log_error_errno(r, "cannot read the gateway key %s: %m", cfg->key_path);
		goto fail;
	}
	if (ssh_pki_import_privkey_file(cfg->key_path, NULL, NULL, NULL, &u->key) != SSH_OK) {
		log_error("the gateway key %s is not a private key libssh can read", cfg->key_path);
		u->key = NULL;
		r = -EINVAL;
		goto fail;
	}
	u->n_hosts = hosts->n_entries;
	u->hosts = calloc(MAX(u->n_hosts, (size_t)1), sizeof(*u->hosts));
	if (!u->hosts) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < u->n_hosts; i++) {
		r = host_init(u, &u->hosts[i], &hosts->entries[i]);
		if (r < 0)
			goto fail;
	}
	for (size_t i = 0; i < u->n_hosts; i++)
		if (u->hosts[i].pinned)
			host_connect(&u->hosts[i]);
	*ret = u;
	return 0;
fail:
	upstream_free(u);
	return r;
}

struct upstream *upstream_free(struct upstream *u)
{
	if (!u)
		return NULL;
	for (size_t i = 0; u->hosts && i < u->n_hosts; i++) {
		struct up_host *h = &u->hosts[i];

		if (!h->u)
			continue; /* never initialised (upstream_new failed before it) */
		host_drop_session(h);
		h->timer = sd_event_source_disable_unref(h->timer);
		h->kick = sd_event_source_disable_unref(h->kick);
		ssh_key_free(h->pinned);
	}
	free(u->hosts);
	ssh_key_free(u->key);
	free(u->user);
	free(u);
	return NULL;
}

int upstream_find(const struct upstream *u, const char *name)
{
	for (size_t i = 0; i < u->n_hosts; i++)
		if (strcmp(u->hosts[i].entry->name, name) == 0)
			return (int)i;
	return -ENOENT;
}

size_t upstream_n_hosts(const struct upstream *u)
{
	return u->n_hosts;
}

const char *upstream_host_name(const struct upstream *u, size_t i)
{
	return i < u->n_hosts ? u->hosts[i].entry->name : NULL;
}

enum upstream_state upstream_host_state(const struct upstream *u, size_t i, const char **ret_why)
{
	const struct up_host *h = &u->hosts[i];

	if (ret_why)
		*ret_why = h->state == UPSTREAM_DOWN ? h->why : "";
	return h->state;
}

int upstream_open_stream(struct upstream *u, size_t i, int *ret_fd)
{
	struct up_host *h;
	struct up_stream *s;
	int pair[2], r;

	if (i >= u->n_hosts)
		return -ENOENT;
	h = &u->hosts[i];
	if (h->state == UPSTREAM_DOWN)
		return -EHOSTUNREACH;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0)
		return negative_errno();
	r = stream_new(h, false, pair[0], &s);
	if (r < 0) {
		safe_close(pair[0]);
		safe_close(pair[1]);
		return r;
	}
	*ret_fd = pair[1];
	/* Opening starts now if the session is up (else when it comes up). */
	if (h->phase == PHASE_UP)
		host_service(h);
	return 0;
}

unsigned upstream_host_attempts(const struct upstream *u, size_t i)
{
	return i < u->n_hosts ? u->hosts[i].attempts : 0;
}

size_t upstream_n_streams(const struct upstream *u, size_t i)
{
	return i < u->n_hosts ? u->hosts[i].n_streams : 0;
}
