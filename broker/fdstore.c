/* SPDX-License-Identifier: MIT */
/*
 * systemd's fd store for ttyhubd (see fdstore.h).
 *
 * State: the pairs found at start (struct fdstore_pair: a ring and maybe
 * its socket, drained by an io source until a console claims them or
 * fdstore_release_orphans() lets them go), and the table of names this
 * process stored or adopted with their owners (struct fdstore_entry), which
 * also counts against $FDSTORE, the store's size when the manager says it
 * (systemd >= 254; the test harness too).  systemd 252 does not say, and
 * a push it refuses is not answered: only its own log tells then.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conslog.h"
#include "fdstore.h"
#include "log.h"
#include "ring.h"
#include "util.h"

/* ---- Name codec ---- */

static bool fdstore_char_plain(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static int fdstore_escape(const char *s, char *buf, size_t size, size_t *pos)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (fdstore_char_plain((char)c)) {
			if (*pos + 1 > FDSTORE_KEY_MAX || *pos + 1 >= size)
				return -ENAMETOOLONG;
			buf[(*pos)++] = (char)c;
			continue;
		}
		if (*pos + 3 > FDSTORE_KEY_MAX || *pos + 3 >= size)
			return -ENAMETOOLONG;
		buf[(*pos)++] = '%';
		buf[(*pos)++] = hex[c >> 4];
		buf[(*pos)++] = hex[c & 15];
	}
	buf[*pos] = '\0';
	return 0;
}

int fdstore_key(const char *uuid, const char *alias, const char *name, char *buf, size_t size)
{
	size_t pos = 0;
	int r;

	if (size == 0)
		return -ENOBUFS;
	buf[0] = '\0';
	if (uuid && uuid[0] && alias && alias[0]) {
		r = fdstore_escape(uuid, buf, size, &pos);
		if (r >= 0)
			r = fdstore_escape(":", buf, size, &pos);
		if (r >= 0)
			r = fdstore_escape(alias, buf, size, &pos);
	} else if (name && name[0])
		r = fdstore_escape(name, buf, size, &pos);
	else
		return -EINVAL;
	if (r < 0) {
		buf[0] = '\0';
		return r;
	}
	return (int)pos;
}

static bool fdstore_hex_upper(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

bool fdstore_key_valid(const char *key, size_t len)
{
	char c;

	if (len == 0 || len > FDSTORE_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (fdstore_char_plain(key[i]))
			continue;
		/* One spelling per key: upper-case hex, and only for what must be escaped. */
		if (key[i] != '%' || i + 2 >= len || !fdstore_hex_upper(key[i + 1]) ||
		    !fdstore_hex_upper(key[i + 2]))
			return false;
		c = (char)(unhexchar(key[i + 1]) << 4 | unhexchar(key[i + 2]));
		/* A NUL would end the decoded key early: never one of ours. */
		if (c == '\0' || fdstore_char_plain(c))
			return false;
		i += 2;
	}
	return true;
}

int fdstore_key_decode(const char *key, char *buf, size_t size)
{
	size_t len = strlen(key), o = 0;

	if (!fdstore_key_valid(key, len))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = key[i];

		if (c == '%') {
			c = (char)(unhexchar(key[i + 1]) << 4 | unhexchar(key[i + 2]));
			i += 2;
		}
		if (o + 1 >= size)
			return -ENOBUFS;
		buf[o++] = c;
	}
	buf[o] = '\0';
	return (int)o;
}

int fdstore_name(enum fdstore_kind kind, const char *key, char *buf, size_t size)
{
	const char *prefix = kind == FDSTORE_CON ? "con-" : kind == FDSTORE_RING ? "ring-" : NULL;
	int n;

	if (!prefix || !fdstore_key_valid(key, strlen(key)))
		return -EINVAL;
	n = snprintf(buf, size, "%s%s", prefix, key);
	if (n < 0 || (size_t)n >= size || n > FDSTORE_NAME_MAX)
		return -ENAMETOOLONG;
	return n;
}

enum fdstore_kind fdstore_parse_name(const char *name, const char **ret_key)
{
	enum fdstore_kind kind;
	const char *key;

	if (strncmp(name, "con-", 4) == 0) {
		kind = FDSTORE_CON;
		key = name + 4;
	} else if (strncmp(name, "ring-", 5) == 0) {
		kind = FDSTORE_RING;
		key = name + 5;
	} else
		return FDSTORE_OTHER;
	if (strnlen(name, FDSTORE_NAME_MAX + 1) > FDSTORE_NAME_MAX ||
	    !fdstore_key_valid(key, strlen(key)))
		return FDSTORE_OTHER;
	if (ret_key)
		*ret_key = key;
	return kind;
}

/* ---- The store ---- */

struct fdstore_entry {
	char name[FDSTORE_NAME_MAX + 1];
	const void *owner;
	TAILQ_ENTRY(fdstore_entry) entry;
};

struct fdstore_pair {
	char key[FDSTORE_KEY_MAX + 1];
	struct ring ring; /* mapped, or ring_fd() < 0 until the ring is found */
	int con_fd;       /* owned, or -EBADF */
	sd_event_source *io; /* owned: drains con_fd into ring */
	TAILQ_ENTRY(fdstore_pair) entry;
};

static struct {
	bool started, enabled, frozen, full_warned;
	sd_event *event;
	size_t ring_size;
	int listen_fd;
	size_t max; /* from $FDSTORE; 0: unknown */
	size_t n_entries;
	TAILQ_HEAD(, fdstore_entry) entries;
	TAILQ_HEAD(, fdstore_pair) pairs;
	struct conslog_config log;
	bool have_log;
	sd_event_source *orphan_timer;
} store = { .listen_fd = -EBADF };

static void fdstore_init_lists(void)
{
	if (store.started)
		return;
	store.started = true;
	TAILQ_INIT(&store.entries);
	TAILQ_INIT(&store.pairs);
}

bool fdstore_enabled(void)
{
	return store.enabled;
}

static struct fdstore_entry *fdstore_find_entry(const char *name)
{
	struct fdstore_entry *e;

	if (!store.started)
		return NULL;
	TAILQ_FOREACH(e, &store.entries, entry)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static int fdstore_add_entry(const char *name, const void *owner)
{
	struct fdstore_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->owner = owner;
	TAILQ_INSERT_TAIL(&store.entries, e, entry);
	store.n_entries++;
	return 0;
}

static void fdstore_notify_remove(const char *name)
{
	char msg[64 + FDSTORE_NAME_MAX];

	if (!store.enabled || store.frozen)
		return;
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	(void)sd_notify(0, msg);
}

int fdstore_push(const char *name, int fd, bool poll, const void *owner)
{
	char msg[64 + FDSTORE_NAME_MAX];
	int r;

	if (!store.enabled || store.frozen)
		return 0;
	fdstore_init_lists();
	if (fdstore_find_entry(name))
		return -EEXIST;
	if (store.max && store.n_entries >= store.max) {
		if (!store.full_warned)
			log_warning("the fd store is full (FileDescriptorStoreMax=%zu): %s and what "
				    "comes after it will not survive a restart of ttyhubd; raise "
				    "FileDescriptorStoreMax= (2 per console + 8)", store.max, name);
		store.full_warned = true;
		return -ENOSPC;
	}
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s%s", name, poll ? "" : "\nFDPOLL=0");
	r = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	if (r <= 0) {
		log_warning_errno(r < 0 ? r : -ENOTCONN, "cannot hand %s to the fd store: it will "
				  "not survive a restart of ttyhubd", name);
		return r < 0 ? r : -ENOTCONN;
	}
	return fdstore_add_entry(name, owner);
}

void fdstore_remove(const char *name, const void *owner)
{
	struct fdstore_entry *e = fdstore_find_entry(name);

	if (!e || e->owner != owner || store.frozen)
		return;
	TAILQ_REMOVE(&store.entries, e, entry);
	store.n_entries--;
	free(e);
	fdstore_notify_remove(name);
}

static void fdstore_set_owner(const char *name, const void *owner)
{
	struct fdstore_entry *e = fdstore_find_entry(name);

	if (e)
		e->owner = owner;
}

static struct fdstore_pair *fdstore_find_pair(const char *key)
{
	struct fdstore_pair *p;

	TAILQ_FOREACH(p, &store.pairs, entry)
		if (strcmp(p->key, key) == 0)
			return p;
	return NULL;
}

static struct fdstore_pair *fdstore_get_pair(const char *key)
{
	struct fdstore_pair *p = fdstore_find_pair(key);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->key, sizeof(p->key), "%s", key);
	p->ring.fd = -EBADF;
	p->con_fd = -EBADF;
	TAILQ_INSERT_TAIL(&store.pairs, p, entry);
	return p;
}

/* Drop the pair's socket: closed here, removed from the store (the store's copy too). */
static void fdstore_pair_drop_con(struct fdstore_pair *p)
{
	char name[FDSTORE_NAME_MAX + 1];

	p->io = sd_event_source_disable_unref(p->io);
	p->con_fd = safe_close(p->con_fd);
	if (fdstore_name(FDSTORE_CON, p->key, name, sizeof(name)) >= 0)
		fdstore_remove(name, p);
}

/* Read what the guest sent into the ring; returns false at EOF or an error. */
static bool fdstore_pair_drain(struct fdstore_pair *p)
{
	for (;;) {
		uint8_t *buf;
		size_t span = ring_read_span(&p->ring, &buf);
		ssize_t n = read(p->con_fd, buf, span);

		ring_commit(&p->ring, n > 0 ? (size_t)n : 0);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		log_info("stored console %s: the guest side closed while ttyhubd was away",
			 ring_stored_name(&p->ring)[0] ? ring_stored_name(&p->ring) : p->key);
		return false;
	}
}

static int fdstore_on_pair_io(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	struct fdstore_pair *p = userdata;

	if (!fdstore_pair_drain(p))
		fdstore_pair_drop_con(p);
	return 0;
}

static void fdstore_pair_free(struct fdstore_pair *p)
{
	TAILQ_REMOVE(&store.pairs, p, entry);
	p->io = sd_event_source_disable_unref(p->io);
	p->con_fd = safe_close(p->con_fd);
	ring_done(&p->ring);
	free(p);
}

/* Close fd and take its name out of the store: it is nothing of ours. */
static void fdstore_discard(int fd, const char *name, const char *why)
{
	log_notice("fd store: removing %s (%s)", name, why);
	safe_close(fd);
	fdstore_notify_remove(name);
}

/* A connected (not listening) AF_UNIX stream socket, as a chardev connection is. */
static bool fdstore_is_stream_peer(int fd)
{
	return sd_is_socket_unix(fd, SOCK_STREAM, 0, NULL, 0) > 0;
}

/*
 * The previous ttyhubd was killed inside a read into this ring: the bytes it
 * had taken from the guest are gone.  Say so in the history itself, at the
 * very place, before the kept socket is drained behind it: every reader
 * (and the console log) meets the line where the gap is.
 */
static void fdstore_mark_lost_read(struct ring *ring, const char *name)
{
	size_t lost = ring_take_lost_read(ring);
	char line[200];
	int n;

	if (lost == 0)
		return;
	log_warning("fd store: %s: ttyhubd was killed while reading from the guest; up to %zu "
		    "bytes of its output are lost", name, lost);
	n = snprintf(line, sizeof(line), "\r\n[ttyhub] ttyhubd was killed while reading from the "
		     "guest: up to %zu bytes of output lost here\r\n", lost);
	ring_write(ring, line, (size_t)MIN(n, (int)sizeof(line) - 1));
}

static int fdstore_take(int fd, const char *name)
{
	enum fdstore_kind kind;
	const char *key = NULL, *why = NULL;
	struct fdstore_pair *p;
	int r;

	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	kind = fdstore_parse_name(name, &key);
	if (kind == FDSTORE_OTHER) {
		if (store.listen_fd < 0 && sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0) {
			store.listen_fd = fd;
			return 0;
		}
		fdstore_discard(fd, name, "not a name of ttyhubd's");
		return 0;
	}
	p = fdstore_get_pair(key);
	if (!p)
		return -ENOMEM;
	if (kind == FDSTORE_RING) {
		if (ring_fd(&p->ring) >= 0) {
			fdstore_discard(fd, name, "a second ring of one console");
			return 0;
		}
		r = ring_adopt(&p->ring, fd, &why);
		if (r < 0) {
			log_warning("fd store: %s is not a usable ring (%s); its history is lost",
				    name, why ? why : strerror(-r));
			p->ring.fd = -EBADF;
			fdstore_discard(fd, name, "not a usable ring");
			return 0;
		}
		fdstore_mark_lost_read(&p->ring, name);
	} else {
		if (p->con_fd >= 0 || !fdstore_is_stream_peer(fd)) {
			fdstore_discard(fd, name, p->con_fd >= 0 ? "a second socket of one console"
							       : "not a connected UNIX stream socket");
			return 0;
		}
		r = fcntl(fd, F_GETFL);
		if (r < 0 || fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0) {
			fdstore_discard(fd, name, "cannot make it non-blocking");
			return 0;
		}
		p->con_fd = fd;
	}
	return fdstore_add_entry(name, p);
}

int fdstore_start(sd_event *e, size_t ring_size)
{
	char **names = NULL;
	const char *max;
	struct fdstore_pair *p, *next;
	int n, r = 0;

	fdstore_init_lists();
	store.event = e;
	store.ring_size = ring_size;
	store.enabled = getenv("NOTIFY_SOCKET") != NULL;
	max = getenv("FDSTORE");
	if (max) {
		char *end;
		unsigned long v = strtoul(max, &end, 10);

		store.max = *end || end == max ? 0 : (size_t)v;
	}
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		log_warning_errno(n, "cannot take the fds systemd passed");
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		const char *name = names && names[i] ? names[i] : "unknown";

		if (r >= 0)
			r = fdstore_take(SD_LISTEN_FDS_START + i, name);
		else
			safe_close(SD_LISTEN_FDS_START + i);
	}
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	if (r < 0)
		return r;
	/* Pairs: a socket needs a ring to drain into; drain it now, before anything slow. */
	for (p = TAILQ_FIRST(&store.pairs); p; p = next) {
		char name[FDSTORE_NAME_MAX + 1];

		next = TAILQ_NEXT(p, entry);
		if (ring_fd(&p->ring) < 0) {
			r = ring_init(&p->ring, store.ring_size);
			if (r < 0)
				return r;
			log_notice("fd store: console key %s had a socket but no ring; history "
				   "starts anew", p->key);
			if (fdstore_name(FDSTORE_RING, p->key, name, sizeof(name)) >= 0)
				fdstore_push(name, ring_fd(&p->ring), true, p);
		}
		if (p->con_fd < 0)
			continue;
		if (!fdstore_pair_drain(p)) {
			fdstore_pair_drop_con(p);
			continue;
		}
		r = sd_event_add_io(e, &p->io, p->con_fd, EPOLLIN, fdstore_on_pair_io, p);
		if (r < 0)
			return r;
	}
	if (n > 0)
		log_info("fd store: %d fds passed, %zu kept (%s)", n, store.n_entries,
			 store.listen_fd >= 0 ? "with the broker socket" : "no broker socket");
	return 0;
}

int fdstore_take_listen_fd(void)
{
	return TAKE_FD(store.listen_fd);
}

int fdstore_claim(const char *key, const void *owner, struct ring *ret_ring, int *ret_con_fd)
{
	char name[FDSTORE_NAME_MAX + 1];
	struct fdstore_pair *p;

	if (!store.started)
		return -ENOENT;
	p = fdstore_find_pair(key);
	if (!p || ring_fd(&p->ring) < 0)
		return -ENOENT;
	/* What came in since the last wake-up is the console's from here on. */
	if (p->con_fd >= 0 && !fdstore_pair_drain(p))
		fdstore_pair_drop_con(p);
	p->io = sd_event_source_disable_unref(p->io);
	*ret_ring = p->ring;
	p->ring = (struct ring){ .fd = -EBADF };
	*ret_con_fd = TAKE_FD(p->con_fd);
	if (fdstore_name(FDSTORE_RING, key, name, sizeof(name)) >= 0)
		fdstore_set_owner(name, owner);
	if (fdstore_name(FDSTORE_CON, key, name, sizeof(name)) >= 0)
		fdstore_set_owner(name, owner);
	fdstore_pair_free(p);
	return 0;
}

/* An unclaimed pair: its console is gone.  Keep its history in its log, then let go. */
static void fdstore_release(struct fdstore_pair *p)
{
	char name[FDSTORE_NAME_MAX + 1];
	struct conslog *l = NULL;
	const char *cname = ring_stored_name(&p->ring)[0] ? ring_stored_name(&p->ring) : p->key;

	if (p->con_fd >= 0)
		(void)fdstore_pair_drain(p);
	if (store.have_log && conslog_open(&store.log, cname, &l) >= 0) {
		uint64_t pos = ring_logged(&p->ring), head = ring_head(&p->ring);

		if (pos < ring_tail(&p->ring)) {
			conslog_markf(l, "%llu bytes not logged (older than the history)",
				      (unsigned long long)(ring_tail(&p->ring) - pos));
			pos = ring_tail(&p->ring);
		}
		while (pos < head) {
			struct iovec iov[2];
			size_t k = ring_peek(&p->ring, pos, head - pos, iov);

			conslog_write(l, iov[0].iov_base, iov[0].iov_len);
			conslog_write(l, iov[1].iov_base, iov[1].iov_len);
			pos += k;
		}
		ring_set_logged(&p->ring, pos);
		conslog_mark(l, "console gone while ttyhubd was away");
		conslog_free(l);
	}
	log_info("fd store: console %s is no longer defined; releasing its stored history and "
		 "connection", cname);
	fdstore_pair_drop_con(p);
	if (fdstore_name(FDSTORE_RING, p->key, name, sizeof(name)) >= 0)
		fdstore_remove(name, p);
	fdstore_pair_free(p);
}

static void fdstore_release_all(void)
{
	struct fdstore_pair *p;

	store.orphan_timer = sd_event_source_disable_unref(store.orphan_timer);
	while ((p = TAILQ_FIRST(&store.pairs)))
		fdstore_release(p);
}

static int fdstore_on_orphan_timer(sd_event_source *es, uint64_t usec, void *userdata)
{
	fdstore_release_all();
	return 0;
}

void fdstore_release_orphans(const struct conslog_config *log, uint64_t usec)
{
	int r;

	if (!store.started)
		return;
	store.have_log = log != NULL;
	if (log)
		store.log = *log;
	if (usec == 0 || TAILQ_EMPTY(&store.pairs)) {
		fdstore_release_all();
		return;
	}
	r = sd_event_add_time_relative(store.event, &store.orphan_timer, CLOCK_MONOTONIC, usec,
				       0, fdstore_on_orphan_timer, NULL);
	if (r < 0) {
		log_warning_errno(r, "fd store: cannot wait for late consoles; releasing now");
		fdstore_release_all();
	}
}

void fdstore_freeze(void)
{
	store.frozen = true;
}

void fdstore_done(void)
{
	struct fdstore_entry *e;
	struct fdstore_pair *p;

	store.frozen = true;
	if (!store.started)
		return;
	store.orphan_timer = sd_event_source_disable_unref(store.orphan_timer);
	while ((p = TAILQ_FIRST(&store.pairs)))
		fdstore_pair_free(p);
	while ((e = TAILQ_FIRST(&store.entries))) {
		TAILQ_REMOVE(&store.entries, e, entry);
		free(e);
	}
	safe_close(store.listen_fd);
	/* As before fdstore_start(): a test may start again. */
	memset(&store, 0, sizeof(store));
	store.listen_fd = -EBADF;
}
