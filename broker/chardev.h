/* SPDX-License-Identifier: MIT */
/*
 * The connection from ttyhubd to one guest chardev: a UNIX socket that QEMU
 * listens on (server=on,wait=off), or a pty slave.  It connects without
 * blocking, drains everything the guest writes into its owner's ring the
 * moment it arrives, writes the owner's input queue back with
 * backpressure, and reconnects with back-off (100 ms doubling to 2 s) when
 * the guest side goes away.  Paths are checked on the inode actually used
 * (opened O_PATH|O_NOFOLLOW, connected through /proc/self/fd): a missing
 * path means "waiting"; a regular file, a symlink or a dangling symlink is
 * an error that is reported and retried, never followed.  The listener's
 * SO_PEERCRED must be the guest the console's source expects (peer.h); a
 * pty must be a UNIX98 pty slave under /dev/pts/.
 *
 * The chardev knows its owner only through struct chardev_owner: the ring
 * it fills, the queue it drains, who may be at the far end, and callbacks
 * for what happened.  Callbacks may not free the chardev.
 */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "domxml.h"
#include "peer.h"

struct obuf;
struct ring;

/* What the chardev tells its owner (userdata: chardev_owner.userdata). */
struct chardev_ops {
	/* Guest output as it is read, before it is committed to the ring (the log). */
	void (*on_data)(void *userdata, const void *data, size_t len);
	/* New output is in the ring (once per wake-up). */
	void (*on_output)(void *userdata);
	void (*on_connected)(void *userdata);
	/* After the fd is closed; the input queue is the owner's to drop. */
	void (*on_disconnected)(void *userdata, const char *why);
	/* Some queued input went to the guest: there is room again. */
	void (*on_input_drained)(void *userdata);
};

struct chardev_owner {
	const struct chardev_ops *ops;
	void *userdata;
	const char *name;               /* for messages; borrowed */
	struct ring *ring;              /* guest output goes here; borrowed */
	struct obuf *input;             /* bytes for the guest; borrowed */
	const struct peer_guest *guest; /* who may be at the far end; borrowed */
};

enum chardev_state {
	CHARDEV_WAITING,   /* nothing to connect to yet (retrying) */
	CHARDEV_CONNECTED,
	CHARDEV_ERROR,     /* path unusable (retrying slowly) */
	CHARDEV_STOPPED,
};

struct chardev {
	struct chardev_owner owner;
	enum domxml_backend backend; /* UNIX or PTY */
	char *path;                  /* owned */
	int fd;                      /* owned, -EBADF when not connected */
	sd_event_source *io;         /* owned */
	sd_event_source *retry;      /* owned */
	sd_event_source *pause;      /* owned; made at the first burst of tiny reads */
	uint64_t burst_start_usec;
	unsigned burst_wakeups;      /* small reads since burst_start_usec */
	uint64_t last_read_usec;
	bool bulk;                   /* in a run of tiny writes: pause after each read */
	bool paused;                 /* not reading until the pause timer fires */
	unsigned backoff_ms;
	enum chardev_state state;
	char status[256];            /* human-readable reason for state */
	char *lockfile;              /* owned: the LCK.. file we created for a pty */
	bool want_write;
	unsigned hold;               /* > 0: the owner's input waits (chardev_hold_input()) */
	bool adopted;                /* fd came from the fd store: connected before we started */
};

#define CHARDEV_BACKOFF_MIN_MS 100
#define CHARDEV_BACKOFF_MAX_MS 2000

/* owner is copied; what it points to must outlive the chardev. */
int chardev_init(struct chardev *ch, const struct chardev_owner *owner,
		 enum domxml_backend backend, const char *path);
/*
 * A connection kept across a broker restart (fdstore.h): chardev_start()
 * starts reading it at once instead of connecting, without on_connected
 * (it is the same connection).  Takes fd (a non-blocking connected socket).
 */
void chardev_adopt(struct chardev *ch, int fd);
/* Start connecting (now), or reading an adopted connection. */
int chardev_start(struct chardev *ch, sd_event *e);
void chardev_done(struct chardev *ch);
/* The owner queued input: write it as the chardev allows. */
void chardev_kick_write(struct chardev *ch);
/*
 * Hold the owner's queued input back (on) until as many calls release it
 * (off), e.g. between a serial break and its SysRq key, so nobody's
 * keystroke can slip between them.  A release writes what waited.
 */
void chardev_hold_input(struct chardev *ch, bool on);
/*
 * Write data to the guest now, ahead of the held queue: 0, -ENOTCONN, or
 * -EAGAIN when the guest does not take it at once (nothing written then,
 * for a single byte).
 */
int chardev_write_now(struct chardev *ch, const void *data, size_t len);

const char *chardev_state_to_string(enum chardev_state s);
/* Where pty LCK.. files go: a copy of dir is kept; NULL restores the default. */
int chardev_set_lock_dir(const char *dir);
/* --guest-user: overrides every source's expectation (NULL: none). Copied. */
void chardev_set_guest_user(const struct peer_guest *g);
const struct peer_guest *chardev_get_guest_user(void);

/*
 * Connect to the UNIX socket at path without following a symlink: open it
 * O_PATH|O_NOFOLLOW, fstat it (*ret_st), and connect to that very inode
 * through /proc/self/fd (no sun_path length limit).  want_owner: the uid
 * that must own the inode, or (uid_t)-1.  Returns a non-blocking connected
 * fd with the listener's credentials in *ret_peer, or -ENOENT (missing),
 * -ELOOP (a symlink), -ENOTSOCK (another file type; *ret_st says which),
 * -EACCES (owned by someone else, or no permission), -ECONNREFUSED,
 * -EAGAIN (backlog full), other -errno.
 */
struct stat;
struct ucred;
int chardev_socket_connect(const char *path, uid_t want_owner, struct stat *ret_st,
			   struct ucred *ret_peer);
