/* SPDX-License-Identifier: MIT */
/*
 * ttyhubd's use of systemd's file descriptor store, so that a restart of
 * the broker (an upgrade, a crash) is invisible to the guests: the
 * connected chardev sockets and the console rings (sealed memfds, ring.h)
 * are handed to the service manager and come back to the next ttyhubd.
 *
 * Names.  Every stored fd is named after what it is and whose: "con-KEY"
 * (a connected chardev socket, pushed with FDPOLL=0 so that systemd keeps
 * it even when the guest hangs up: its unread output is still in it) and
 * "ring-KEY" (the console's ring).  KEY is the console's key: "UUID:ALIAS"
 * when the console has both, else its name, with every byte outside
 * [A-Za-z0-9._-] written %XX (so never a ':', which systemd refuses), at
 * most FDSTORE_KEY_MAX characters.  A console whose key is longer is not
 * stored (said once).  Any other name is not ours: the first listening
 * AF_UNIX stream socket among them is the broker socket (normally
 * "ttyhubd.socket" from the socket unit), everything else is closed and
 * removed from the store.
 *
 * Life of a stored pair.  At start (fdstore_start()) the rings are mapped
 * and the sockets drained into them at once and from then on, before any
 * slow work.  A console created with a key that has a pair claims it
 * (fdstore_claim()): the same ring and connection, so the same epoch.
 * What nobody claimed by fdstore_release_orphans() is read to what is
 * there, written to its console log, closed and removed from the store.
 * A chardev that connects anew pushes its socket once; one that
 * disconnects removes it (the store's copy would keep the guest's
 * single-client socket busy); a console removed for good removes both.
 * At shutdown (fdstore_freeze()) nothing is removed: that is what keeps
 * the store for the next process.
 *
 * One store per process (the service manager has one per unit), so this is
 * module state, not an object.  Without $NOTIFY_SOCKET nothing is pushed or
 * removed and every call is cheap; the rings are memfds all the same.
 * Store entries are owned: only the owner that pushed a name (a console)
 * removes it, so a console refused as a duplicate cannot drop another's.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "conslog.h"
#include "ring.h"

/* systemd's limit on an fd name. */
#define FDSTORE_NAME_MAX 255
/* "ring-" is the longer prefix. */
#define FDSTORE_KEY_MAX (FDSTORE_NAME_MAX - 5)
/* The broker socket's name from the socket unit. */
#define FDSTORE_LISTEN_NAME "ttyhubd.socket"
/* How long unclaimed pairs wait for an asynchronous source (libvirt, QMP) to define them. */
#define FDSTORE_ORPHAN_USEC (30 * UINT64_C(1000000))

enum fdstore_kind {
	FDSTORE_OTHER, /* not a name of ours */
	FDSTORE_CON,   /* "con-KEY" */
	FDSTORE_RING,  /* "ring-KEY" */
};

/* ---- Pure name codec (no I/O), for tests and fuzzing. ---- */

/*
 * The key of a console: escaped "UUID:ALIAS" when both are set, else the
 * escaped name.  buf gets FDSTORE_KEY_MAX + 1 bytes at most.  Returns the
 * length, -ENAMETOOLONG, -EINVAL (empty).
 */
int fdstore_key(const char *uuid, const char *alias, const char *name, char *buf, size_t size);
/*
 * Whether the len bytes at key are a key as fdstore_key() writes it: one
 * spelling per name (%XX in upper case, only for bytes that need it, never %00).
 */
bool fdstore_key_valid(const char *key, size_t len);
/* Decode a valid key into buf (NUL-terminated).  Returns the length or -EINVAL/-ENOBUFS. */
int fdstore_key_decode(const char *key, char *buf, size_t size);
/* "con-KEY" or "ring-KEY".  Returns the length or -ENAMETOOLONG/-EINVAL. */
int fdstore_name(enum fdstore_kind kind, const char *key, char *buf, size_t size);
/* Which kind a stored name is, with its key (borrowed from name) for ours. */
enum fdstore_kind fdstore_parse_name(const char *name, const char **ret_key);

/* ---- The process's store. ---- */

/*
 * Take the fds systemd passed (sd_listen_fds_with_names(), the environment
 * is cleared), classify them, map the rings and start draining the
 * sockets.  ring_size: for a socket whose ring is missing.  Bad entries are
 * logged, closed and removed.  Returns 0 or -ENOMEM.
 */
int fdstore_start(sd_event *e, size_t ring_size);
/* The broker socket systemd passed (the caller owns it), or -EBADF. */
int fdstore_take_listen_fd(void);
/* Whether fds are pushed ($NOTIFY_SOCKET was set at fdstore_start()). */
bool fdstore_enabled(void);

/*
 * Hand fd to the store under name, owned by owner (a console).  poll: let
 * systemd drop it on POLLHUP/POLLERR (false: FDPOLL=0).  A name already
 * stored is not pushed again (-EEXIST); a full store (known from $FDSTORE)
 * is warned about once and -ENOSPC returned.  0 when disabled.
 */
int fdstore_push(const char *name, int fd, bool poll, const void *owner);
/* FDSTOREREMOVE name, if owner pushed (or claimed) it; otherwise nothing. */
void fdstore_remove(const char *name, const void *owner);

/*
 * A console with key starts: take the stored pair of that key, if any.
 * Returns 0 with the ring in *ret_ring (the caller's now) and the socket in
 * *ret_con_fd (or -EBADF: none, or it hung up), both entries now owned by
 * owner; or -ENOENT.
 */
int fdstore_claim(const char *key, const void *owner, struct ring *ret_ring, int *ret_con_fd);

/*
 * Release the pairs nobody claimed (see the top) after usec (0: now).  log:
 * where their history goes (NULL: no logs).  Copied.
 */
void fdstore_release_orphans(const struct conslog_config *log, uint64_t usec);

/* Shutting down: from now on nothing is removed from the store. */
void fdstore_freeze(void);
/* Close what is left (nothing is removed from the store); back to the state before start. */
void fdstore_done(void);
