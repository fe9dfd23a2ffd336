/* SPDX-License-Identifier: MIT */
/*
 * Who may be at the other end of a guest chardev or a QMP socket (pure: no
 * I/O).  A chardev is a guest, never the broker and never a service: a
 * path that a source supplies (a QMP reply, domain XML, a symlink swapped
 * in by the owner of the directory) must not make ttyhubd talk to its own
 * broker socket or to a root daemon.  So after connecting, ttyhubd checks
 * the peer's SO_PEERCRED against what the source leads it to expect:
 *
 *   - its own pid: always refused;
 *   - uid 0 and ttyhubd's own uid: refused, unless the operator named that
 *     uid with --guest-user (QEMU running as root; not recommended);
 *   - any other uid than the expected one (when one is known): refused.
 *
 * The expected uid comes from --guest-user (which overrides everything),
 * else from the source: the QMP peer's uid for --qmp, the DAC seclabel (or
 * the libvirt-qemu user) for libvirt and domain XML, the owner of the
 * socket inode for --console.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What a console's source expects at the far end of its chardev. */
struct peer_guest {
	bool set;          /* uid is the expected guest uid */
	uid_t uid;
	bool explicit;     /* named by the operator (--guest-user): root/own uid allowed */
	bool owns_path;    /* the socket inode must be owned by uid (QMP-supplied paths) */
	bool path_owner;   /* no fixed uid: expect the owner of the socket inode (--console) */
	char name[64];     /* user name for messages, or "" */
};

/*
 * Decide whether a peer (pid, uid) may be a guest, for a connection to
 * path (shown in the message).  self_pid/self_uid: ttyhubd's own.  Returns 0,
 * or -EPERM with a specific one-line reason in err ("the peer of PATH is
 * ttyhubd itself", "... is uid 0 (root), not a guest", "... is uid 1001,
 * expected 64055 (libvirt-qemu)").  g may be NULL (nothing expected).
 */
int peer_check(const struct peer_guest *g, pid_t pid, uid_t uid, pid_t self_pid,
	       uid_t self_uid, const char *path, char *err, size_t errsz);

/*
 * The user part of a DAC label or a --guest-user value: "+64055:+64055" or
 * "+64055" -> numeric 64055; "libvirt-qemu:kvm" or "libvirt-qemu" -> the
 * name "libvirt-qemu" (to be resolved by the caller); "64055" is numeric
 * only when allow_bare_number.  Returns 1 for a number (*ret_uid), 0 for a
 * name (copied to name), -EINVAL for anything else (empty, too long, bad
 * characters, a uid that does not fit or is (uid_t)-1).
 */
int peer_parse_user(const char *s, bool allow_bare_number, uid_t *ret_uid, char *name,
		    size_t namesz);

/* A pty path ttyhubd may open: "/dev/pts/" then a name with no "..", no further '/'. */
bool peer_pty_path_ok(const char *path);
/* A UNIX98 pty slave's device major (136..143). */
bool peer_pty_major_ok(unsigned major);
