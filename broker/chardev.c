/* SPDX-License-Identifier: MIT */
/*
 * Guest chardev connection (see chardev.h).
 *
 * Reads go straight into the console ring (ring_read_span: at most
 * RING_READ_MAX a read, the most a killed broker can lose), up to
 * CHARDEV_READ_BUDGET bytes per wake-up so one busy guest cannot starve the
 * others; the console is told once per wake-up.  The fd is never blocking,
 * so the drain cannot stall on anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "chardev.h"
#include "fileio.h"
#include "log.h"
#include "obuf.h"
#include "peer.h"
#include "ring.h"
#include "util.h"

#define CHARDEV_READ_BUDGET (1024 * 1024)

/*
 * An emulated UART hands over a byte or two per write, and a reader woken
 * for each one takes CPU the (TCG) guest needs itself: a quarter of a
 * million reads a second for 0.3 MB/s.  After CHARDEV_BURST_WAKEUPS small
 * reads within CHARDEV_BURST_USEC the console is "bulk": each small read is
 * followed by a CHARDEV_PAUSE_USEC pause, so the bytes come in fewer,
 * larger reads, until a read comes after a quiet CHARDEV_BURST_USEC.  A
 * keystroke's echo never gets near that; in bulk output a byte waits at
 * most CHARDEV_PAUSE_USEC.  The pause stays short because every tiny
 * write is a socket buffer of its own: a long one would fill the guest's
 * send buffer with a few hundred bytes and block its UART.
 */
#define CHARDEV_BURST_WAKEUPS 8
#define CHARDEV_BURST_USEC 1000
#define CHARDEV_PAUSE_USEC 200
#define CHARDEV_SMALL_READ 512

#define CHARDEV_LOCK_DIR_DEFAULT "/var/lock"

static char *lock_dir;               /* owned; NULL for the default */
static struct peer_guest guest_user; /* --guest-user, or .set = false */

int chardev_set_lock_dir(const char *dir)
{
	char *copy = NULL;

	if (dir) {
		copy = strdup(dir);
		if (!copy)
			return -ENOMEM;
	}
	free(lock_dir);
	lock_dir = copy;
	return 0;
}

static const char *chardev_lock_dir(void)
{
	return lock_dir ?: CHARDEV_LOCK_DIR_DEFAULT;
}

void chardev_set_guest_user(const struct peer_guest *g)
{
	guest_user = g ? *g : (struct peer_guest){};
}

const struct peer_guest *chardev_get_guest_user(void)
{
	return guest_user.set ? &guest_user : NULL;
}

/* What to expect at the far end of ch, whose socket inode is st (or NULL). */
static struct peer_guest chardev_expect(const struct chardev *ch, const struct stat *st)
{
	struct peer_guest g = *ch->owner.guest;

	if (guest_user.set) {
		bool owns_path = g.owns_path;

		g = guest_user;
		g.owns_path = owns_path;
	} else if (g.path_owner && st) {
		g.set = true;
		g.uid = st->st_uid;
		snprintf(g.name, sizeof(g.name), "the owner of the socket");
	}
	return g;
}

/* One word for a file type, for messages. */
static const char *chardev_describe_mode(mode_t m)
{
	return S_ISREG(m)    ? "a regular file"
	       : S_ISDIR(m)  ? "a directory"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISLNK(m)  ? "a symbolic link"
	       : S_ISFIFO(m) ? "a FIFO"
			     : "not usable";
}

int chardev_socket_connect(const char *path, uid_t want_owner, struct stat *ret_st,
			   struct ucred *ret_peer)
{
	_cleanup_close_ int pfd = -EBADF, fd = -EBADF;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sl = sizeof(*ret_peer);

	pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return negative_errno();
	if (fstat(pfd, ret_st) < 0)
		return negative_errno();
	if (S_ISLNK(ret_st->st_mode))
		return -ELOOP;
	if (!S_ISSOCK(ret_st->st_mode))
		return -ENOTSOCK;
	if (want_owner != (uid_t)-1 && ret_st->st_uid != want_owner)
		return -EACCES;
	/* Connect to the inode just checked, whatever the path names by now. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", pfd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return negative_errno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return negative_errno();
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ret_peer, &sl) < 0)
		return negative_errno();
	return TAKE_FD(fd);
}

const char *chardev_state_to_string(enum chardev_state s)
{
	switch (s) {
	case CHARDEV_WAITING:
		return "waiting";
	case CHARDEV_CONNECTED:
		return "connected";
	case CHARDEV_ERROR:
		return "error";
	case CHARDEV_STOPPED:
		return "stopped";
	}
	return "unknown";
}

static int chardev_connect(struct chardev *ch);
static void chardev_disconnect(struct chardev *ch, const char *why);

int chardev_init(struct chardev *ch, const struct chardev_owner *owner,
		 enum domxml_backend backend, const char *path)
{
	*ch = (struct chardev){
		.owner = *owner,
		.backend = backend,
		.fd = -EBADF,
		.backoff_ms = CHARDEV_BACKOFF_MIN_MS,
		.state = CHARDEV_STOPPED,
	};
	ch->path = strdup(path);
	return ch->path ? 0 : -ENOMEM;
}

static void chardev_unlock(struct chardev *ch)
{
	if (ch->lockfile) {
		unlink(ch->lockfile);
		free(ch->lockfile);
		ch->lockfile = NULL;
	}
}

void chardev_done(struct chardev *ch)
{
	ch->io = sd_event_source_disable_unref(ch->io);
	ch->retry = sd_event_source_disable_unref(ch->retry);
	ch->pause = sd_event_source_disable_unref(ch->pause);
	ch->fd = safe_close(ch->fd);
	chardev_unlock(ch);
	free(ch->path);
	ch->path = NULL;
	ch->state = CHARDEV_STOPPED;
}

/* Record a new state; log only when the state or its reason changes. */
static void chardev_set_state(struct chardev *ch, enum chardev_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void chardev_set_state(struct chardev *ch, enum chardev_state st, const char *fmt, ...)
{
	char buf[sizeof(ch->status)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (st == ch->state && strcmp(buf, ch->status) == 0)
		return;
	ch->state = st;
	snprintf(ch->status, sizeof(ch->status), "%s", buf);
	log_full_errno(st == CHARDEV_ERROR ? LOG_ERR : LOG_INFO, 0, "console %s: %s",
		       ch->owner.name, buf);
}

static int chardev_on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct chardev *ch = userdata;

	chardev_connect(ch);
	return 0;
}

static void chardev_schedule_retry(struct chardev *ch)
{
	int r;

	if (ch->retry) {
		r = sd_event_source_set_time_relative(ch->retry, (uint64_t)ch->backoff_ms * 1000);
		if (r >= 0)
			r = sd_event_source_set_enabled(ch->retry, SD_EVENT_ONESHOT);
	} else
		r = -EINVAL;
	if (r < 0)
		log_error_errno(r, "console %s: cannot schedule reconnect", ch->owner.name);
	ch->backoff_ms = MIN(ch->backoff_ms * 2, (unsigned)CHARDEV_BACKOFF_MAX_MS);
}

static void chardev_update_events(struct chardev *ch)
{
	if (ch->io)
		sd_event_source_set_io_events(ch->io, (ch->paused ? 0 : EPOLLIN) |
							      (ch->want_write ? EPOLLOUT : 0));
}

static int chardev_on_pause_end(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct chardev *ch = userdata;

	ch->paused = false;
	chardev_update_events(ch);
	return 0;
}

/* Count a wake-up that read TOTAL bytes; in bulk, pause reading for a moment. */
static void chardev_note_read(struct chardev *ch, size_t total)
{
	sd_event *e = sd_event_source_get_event(ch->retry);
	uint64_t now, until;
	int r;

	if (sd_event_now(e, CLOCK_MONOTONIC, &now) < 0)
		return;
	if (total >= CHARDEV_SMALL_READ || now - ch->last_read_usec >= CHARDEV_BURST_USEC) {
		ch->bulk = false; /* large reads need no help; a quiet gap ends the run */
		ch->burst_wakeups = 0;
	}
	ch->last_read_usec = now;
	if (total >= CHARDEV_SMALL_READ)
		return;
	if (!ch->bulk) {
		if (now - ch->burst_start_usec >= CHARDEV_BURST_USEC) {
			ch->burst_start_usec = now;
			ch->burst_wakeups = 0;
		}
		if (++ch->burst_wakeups < CHARDEV_BURST_WAKEUPS)
			return;
		ch->bulk = true;
	}
	until = now + CHARDEV_PAUSE_USEC;
	if (ch->pause) {
		r = sd_event_source_set_time(ch->pause, until);
		if (r >= 0)
			r = sd_event_source_set_enabled(ch->pause, SD_EVENT_ONESHOT);
	} else
		r = sd_event_add_time(e, &ch->pause, CLOCK_MONOTONIC, until, 1,
				      chardev_on_pause_end, ch);
	if (r < 0)
		return; /* read on, unpaced */
	ch->paused = true;
	chardev_update_events(ch);
}

static void chardev_read(struct chardev *ch)
{
	struct ring *ring = ch->owner.ring;
	size_t total = 0;

	while (total < CHARDEV_READ_BUDGET) {
		uint8_t *p;
		size_t span = ring_read_span(ring, &p);
		ssize_t n = read(ch->fd, p, span);

		/* Committed first: what the log gets is in the ring, whatever happens. */
		ring_commit(ring, n > 0 ? (size_t)n : 0);
		if (n > 0) {
			ch->owner.ops->on_data(ch->owner.userdata, p, (size_t)n);
			total += (size_t)n;
			/* Short: nothing more was there; epoll tells us when there is. */
			if ((size_t)n < span)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (total > 0)
			ch->owner.ops->on_output(ch->owner.userdata);
		/* EOF, or EIO on a pty whose other side closed. */
		chardev_disconnect(ch, n == 0 ? "the guest side closed the connection"
					      : strerror(errno));
		return;
	}
	if (total > 0) {
		ch->owner.ops->on_output(ch->owner.userdata);
		if (ch->state == CHARDEV_CONNECTED)
			chardev_note_read(ch, total);
	}
}

static void chardev_write(struct chardev *ch)
{
	struct obuf *in = ch->owner.input;
	ssize_t n;

	if (obuf_len(in) == 0)
		return;
	if (ch->hold > 0) {
		/* No EPOLLOUT meanwhile: chardev_hold_input() writes again on release. */
		ch->want_write = false;
		chardev_update_events(ch);
		return;
	}
	n = obuf_flush(in, ch->fd);
	if (n < 0) {
		chardev_disconnect(ch, strerror((int)-n));
		return;
	}
	ch->want_write = obuf_len(in) > 0;
	chardev_update_events(ch);
	if (n > 0)
		ch->owner.ops->on_input_drained(ch->owner.userdata);
}

void chardev_kick_write(struct chardev *ch)
{
	if (ch->state != CHARDEV_CONNECTED)
		return;
	chardev_write(ch);
}

void chardev_hold_input(struct chardev *ch, bool on)
{
	if (on) {
		ch->hold++;
		return;
	}
	if (ch->hold > 0 && --ch->hold == 0)
		chardev_kick_write(ch);
}

int chardev_write_now(struct chardev *ch, const void *data, size_t len)
{
	ssize_t n;

	if (ch->state != CHARDEV_CONNECTED || ch->fd < 0)
		return -ENOTCONN;
	n = write(ch->fd, data, len);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (size_t)n == len ? 0 : -EAGAIN;
}

static int chardev_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct chardev *ch = userdata;

	/* While paused, a hang-up still gets what the guest wrote before it. */
	if ((revents & EPOLLIN) || (ch->paused && (revents & (EPOLLHUP | EPOLLERR))))
		chardev_read(ch);
	if (ch->state == CHARDEV_CONNECTED && (revents & EPOLLOUT))
		chardev_write(ch);
	if (ch->state == CHARDEV_CONNECTED && (revents & (EPOLLHUP | EPOLLERR)) &&
	    !(revents & EPOLLIN))
		chardev_disconnect(ch, "the guest side hung up");
	return 0;
}

static void chardev_disconnect(struct chardev *ch, const char *why)
{
	bool was_connected = ch->state == CHARDEV_CONNECTED;

	ch->io = sd_event_source_disable_unref(ch->io);
	ch->fd = safe_close(ch->fd);
	chardev_unlock(ch);
	ch->want_write = false;
	ch->adopted = false;
	ch->paused = false;
	ch->bulk = false;
	ch->burst_wakeups = 0;
	if (ch->pause)
		sd_event_source_set_enabled(ch->pause, SD_EVENT_OFF);
	chardev_set_state(ch, CHARDEV_WAITING, "disconnected: %s", why);
	ch->backoff_ms = CHARDEV_BACKOFF_MIN_MS;
	chardev_schedule_retry(ch);
	if (was_connected)
		ch->owner.ops->on_disconnected(ch->owner.userdata, why);
}

/* Connect to the socket at ch->path and check who listens there. */
static int chardev_open_unix(struct chardev *ch)
{
	_cleanup_close_ int fd = -EBADF;
	struct peer_guest g = chardev_expect(ch, NULL);
	struct stat st = {};
	struct ucred peer = {};
	char why[sizeof(ch->status) - 16];

	fd = chardev_socket_connect(ch->path, g.set && g.owns_path ? g.uid : (uid_t)-1, &st,
				    &peer);
	switch (fd) {
	case -ENOENT:
		chardev_set_state(ch, CHARDEV_WAITING, "waiting for %s to appear", ch->path);
		return fd;
	case -ELOOP:
		if (stat(ch->path, &st) < 0)
			chardev_set_state(ch, CHARDEV_ERROR, "%s is a dangling symbolic link",
					  ch->path);
		else
			chardev_set_state(ch, CHARDEV_ERROR,
					  "%s is a symbolic link; refusing to follow it", ch->path);
		return fd;
	case -ENOTSOCK:
		chardev_set_state(ch, CHARDEV_ERROR, "%s is %s, expected a UNIX socket", ch->path,
				  chardev_describe_mode(st.st_mode));
		return fd;
	case -EACCES:
		if (st.st_mode && g.set && g.owns_path && st.st_uid != g.uid) {
			chardev_set_state(ch, CHARDEV_ERROR,
					  "refused: %s is owned by uid %u, not by the guest's "
					  "uid %u", ch->path, (unsigned)st.st_uid, (unsigned)g.uid);
			return fd;
		}
		break;
	case -ECONNREFUSED:
		chardev_set_state(ch, CHARDEV_WAITING, "nobody listens on %s (guest not running?)",
				  ch->path);
		return fd;
	case -EAGAIN:
		chardev_set_state(ch, CHARDEV_WAITING, "%s is busy (backlog full)", ch->path);
		return fd;
	}
	if (fd < 0) {
		chardev_set_state(ch, CHARDEV_ERROR, "cannot connect to %s: %s", ch->path,
				  strerror(-fd));
		return fd;
	}
	g = chardev_expect(ch, &st);
	if (peer_check(&g, peer.pid, peer.uid, getpid(), geteuid(), ch->path, why,
		       sizeof(why)) < 0) {
		chardev_set_state(ch, CHARDEV_ERROR, "refused: %s", why);
		return -EPERM;
	}
	return TAKE_FD(fd);
}

/* A lock file ttyhubd honours: made by root, by ttyhubd's own user or by the guest's. */
static bool chardev_lock_trusted(const struct chardev *ch, int fd, uid_t *ret_owner)
{
	struct peer_guest g = chardev_expect(ch, NULL);
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	*ret_owner = st.st_uid;
	return st.st_uid == 0 || st.st_uid == geteuid() || (g.set && st.st_uid == g.uid);
}

/* UUCP lock file as libvirt's virChrdevOpen writes it: LCK.. + path minus /dev, '/' -> '_'. */
static int chardev_lock_pty(struct chardev *ch)
{
	char path[PATH_MAX], pidbuf[16];
	const char *dev = ch->path, *dir = chardev_lock_dir();
	_cleanup_close_ int fd = -EBADF;
	size_t n;

	if (strncmp(dev, "/dev/", 5) == 0)
		dev += 4;
	if ((size_t)snprintf(path, sizeof(path), "%s/LCK..%s", dir, dev) >= sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + strlen(dir) + 6; *p; p++)
		if (*p == '/')
			*p = '_';
	for (int attempt = 0; attempt < 2; attempt++) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd >= 0)
			break;
		if (errno != EEXIST) {
			chardev_set_state(ch, CHARDEV_ERROR, "cannot create lock file %s: %m",
					  path);
			return negative_errno();
		}
		/* Held by a live process? Otherwise it is stale: remove it and retry. */
		_cleanup_close_ int rfd = open(path,
					       O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		uid_t owner = (uid_t)-1;

		if (rfd >= 0 && !chardev_lock_trusted(ch, rfd, &owner)) {
			/* Anyone may write to /run/lock: a stranger's file locks nothing. */
			log_warning("console %s: ignoring lock file %s of uid %d (not root, "
				    "ttyhubd or the guest)", ch->owner.name, path, (int)owner);
			return 0;
		}
		ssize_t len = rfd >= 0 ? read(rfd, pidbuf, sizeof(pidbuf) - 1) : -1;
		long pid = len > 0 ? (pidbuf[len] = '\0', strtol(pidbuf, NULL, 10)) : 0;

		if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
			chardev_set_state(ch, CHARDEV_ERROR, "%s is locked by process %ld (%s)",
					  ch->path, pid, path);
			return -EBUSY;
		}
		unlink(path);
	}
	if (fd < 0)
		return -EBUSY;
	n = (size_t)snprintf(pidbuf, sizeof(pidbuf), "%10lld\n", (long long)getpid());
	if (write(fd, pidbuf, n) != (ssize_t)n) {
		unlink(path);
		return -EIO;
	}
	ch->lockfile = strdup(path);
	if (!ch->lockfile) {
		unlink(path);
		return -ENOMEM;
	}
	return 0;
}

static int chardev_open_pty(struct chardev *ch)
{
	_cleanup_close_ int fd = -EBADF;
	struct termios t;
	struct stat st;
	int r;

	if (!peer_pty_path_ok(ch->path)) {
		chardev_set_state(ch, CHARDEV_ERROR, "refused: %s is not a pty under /dev/pts/",
				  ch->path);
		return -EPERM;
	}
	r = chardev_lock_pty(ch);
	if (r < 0)
		return r;
	fd = open(ch->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			chardev_set_state(ch, CHARDEV_WAITING, "waiting for %s to appear",
					  ch->path);
		else if (errno == ELOOP)
			chardev_set_state(ch, CHARDEV_ERROR,
					  "%s is a symbolic link; refusing to follow it", ch->path);
		else
			chardev_set_state(ch, CHARDEV_ERROR, "cannot open %s: %m", ch->path);
		r = negative_errno();
		chardev_unlock(ch);
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || !peer_pty_major_ok(major(st.st_rdev))) {
		chardev_set_state(ch, CHARDEV_ERROR, "refused: %s is not a pty slave", ch->path);
		chardev_unlock(ch);
		return -EPERM;
	}
	/* Another reader would split the guest's output with us. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		chardev_set_state(ch, CHARDEV_ERROR, "%s is in use (flock): %m", ch->path);
		r = negative_errno();
		chardev_unlock(ch);
		return r;
	}
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(fd, TCSANOW, &t);
	}
	return TAKE_FD(fd);
}

static int chardev_connect(struct chardev *ch)
{
	sd_event *e = sd_event_source_get_event(ch->retry);
	int fd, r;

	fd = r = ch->backend == DOMXML_BACKEND_PTY ? chardev_open_pty(ch) : chardev_open_unix(ch);
	if (r < 0) {
		chardev_schedule_retry(ch);
		return r;
	}
	ch->fd = fd;
	r = sd_event_add_io(e, &ch->io, ch->fd, EPOLLIN, chardev_on_io, ch);
	if (r < 0) {
		ch->fd = safe_close(ch->fd);
		chardev_unlock(ch);
		chardev_schedule_retry(ch);
		return log_error_errno(r, "console %s: cannot watch chardev", ch->owner.name);
	}
	ch->backoff_ms = CHARDEV_BACKOFF_MIN_MS;
	chardev_set_state(ch, CHARDEV_CONNECTED, "connected to %s", ch->path);
	ch->owner.ops->on_connected(ch->owner.userdata);
	/* Input queued while disconnected is dropped by the console; nothing to write. */
	chardev_read(ch);
	return 0;
}

void chardev_adopt(struct chardev *ch, int fd)
{
	safe_close(ch->fd);
	ch->fd = fd;
	ch->adopted = true;
}

int chardev_start(struct chardev *ch, sd_event *e)
{
	int r;

	r = sd_event_add_time_relative(e, &ch->retry, CLOCK_MONOTONIC, 0, 10 * 1000,
				       chardev_on_retry, ch);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(ch->retry, SD_EVENT_OFF);
	ch->state = CHARDEV_WAITING;
	if (ch->fd >= 0) {
		r = sd_event_add_io(e, &ch->io, ch->fd, EPOLLIN, chardev_on_io, ch);
		if (r >= 0) {
			chardev_set_state(ch, CHARDEV_CONNECTED, "connected to %s (kept across a "
					  "restart of ttyhubd)", ch->path);
			chardev_read(ch);
			return 0;
		}
		log_warning_errno(r, "console %s: cannot watch the kept connection; reconnecting",
				  ch->owner.name);
		ch->fd = safe_close(ch->fd);
		ch->adopted = false;
	}
	chardev_connect(ch);
	return 0;
}
