/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by every ttyhub module: cleanup attributes, fd and
 * pointer ownership transfer, and array sizes.
 */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* Move ownership out of a variable: the variable is left empty. */
#define TAKE_PTR(p)                                     \
	({                                              \
		__typeof__(p) _p = (p);                 \
		(p) = NULL;                             \
		_p;                                     \
	})
#define TAKE_FD(fd)                                     \
	({                                              \
		int _fd = (fd);                         \
		(fd) = -EBADF;                          \
		_fd;                                    \
	})

/* Close fd if set; always returns -EBADF so callers can write fd = safe_close(fd). */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}

static inline void freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)

/* Returns -errno of the last failing libc call, never 0. */
static inline int negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}
