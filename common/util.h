/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by every ttyhub module: cleanup attributes, fd and
 * pointer ownership transfer, and array sizes.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
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

/* Length of a UUID in canonical form: 8-4-4-4-12 hex digits. */
#define UUID_STRING_LEN 36

/* The value of a hex digit (either case), or -EINVAL. */
static inline int unhexchar(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -EINVAL;
}

static inline bool char_is_hex(char c)
{
	return unhexchar(c) >= 0;
}

/* Whether the n bytes at s are a UUID in canonical form (any case). */
static inline bool uuid_is_canonical_n(const char *s, size_t n)
{
	if (n != UUID_STRING_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !char_is_hex(s[i]))
			return false;
	}
	return true;
}

/* Whether the string s is a UUID in canonical form (any case). */
static inline bool uuid_is_canonical(const char *s)
{
	return uuid_is_canonical_n(s, strnlen(s, UUID_STRING_LEN + 1));
}

/* Two optional strings are equal: both NULL, or both set and the same. */
static inline bool streq_opt(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}
