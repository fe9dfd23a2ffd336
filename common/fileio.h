/* SPDX-License-Identifier: MIT */
/*
 * Small I/O helpers shared by the daemons and fronts.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * Read a whole regular file of at most max bytes (NUL-terminated copy in
 * *ret).  Symbolic links are refused.  Returns 0, or -ELOOP (a symlink),
 * -EBADF (not a regular file), -EFBIG (over max), or another -errno.
 */
int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_len);

/*
 * Connect a stream socket to the UNIX socket at path (SOCK_CLOEXEC, and
 * SOCK_NONBLOCK when nonblock).  Returns the fd, or -errno from connect()
 * (-ENOENT, -ECONNREFUSED, -EAGAIN, ...) or -ENAMETOOLONG.
 */
int unix_connect(const char *path, bool nonblock);

/*
 * Raise the soft limit on open files to the hard limit: a daemon holds one
 * fd per console or connection and uses poll/epoll, never select().
 * Returns the new soft limit, or -errno.
 */
long fd_limit_raise(void);
