/* SPDX-License-Identifier: MIT */
/*
 * Guest peer rules (see peer.h).  Everything here is a pure function of
 * its arguments, so the decisions are unit-tested without sockets.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

static void peer_expected(const struct peer_guest *g, char *buf, size_t size)
{
	if (g->name[0])
		snprintf(buf, size, "%u (%s)", (unsigned)g->uid, g->name);
	else
		snprintf(buf, size, "%u", (unsigned)g->uid);
}

int peer_check(const struct peer_guest *g, pid_t pid, uid_t uid, pid_t self_pid,
	       uid_t self_uid, const char *path, char *err, size_t errsz)
{
	bool named = g && g->set && g->explicit && uid == g->uid;
	char want[96];

	if (pid == self_pid) {
		snprintf(err, errsz, "the peer of %s is ttyhubd itself", path);
		return -EPERM;
	}
	if (uid == 0 && !named) {
		snprintf(err, errsz, "the peer of %s is uid 0 (root), not a guest", path);
		return -EPERM;
	}
	if (uid == self_uid && !named) {
		snprintf(err, errsz, "the peer of %s is uid %u, ttyhubd's own, not a guest", path,
			 (unsigned)uid);
		return -EPERM;
	}
	if (g && g->set && uid != g->uid) {
		peer_expected(g, want, sizeof(want));
		snprintf(err, errsz, "the peer of %s is uid %u, expected %s", path, (unsigned)uid,
			 want);
		return -EPERM;
	}
	return 0;
}

static bool peer_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == '$';
}

int peer_parse_user(const char *s, bool allow_bare_number, uid_t *ret_uid, char *name,
		    size_t namesz)
{
	const char *end = s ? strchr(s, ':') : NULL;
	size_t len;
	bool digits = true;

	if (!s)
		return -EINVAL;
	len = end ? (size_t)(end - s) : strlen(s);
	if (len == 0)
		return -EINVAL;
	if (s[0] == '+' || allow_bare_number) {
		const char *p = s[0] == '+' ? s + 1 : s;
		size_t n = len - (size_t)(p - s);
		uint64_t v = 0;

		for (size_t i = 0; i < n; i++)
			if (p[i] < '0' || p[i] > '9')
				digits = false;
		if (digits && n > 0 && n <= 10) {
			for (size_t i = 0; i < n; i++)
				v = v * 10 + (uint64_t)(p[i] - '0');
			if (v >= UINT32_MAX)
				return -EINVAL; /* (uid_t)-1 means "none" */
			*ret_uid = (uid_t)v;
			return 1;
		}
		if (s[0] == '+')
			return -EINVAL;
	}
	if (len >= namesz || s[0] == '-')
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!peer_name_char(s[i]))
			return -EINVAL;
	memcpy(name, s, len);
	name[len] = '\0';
	return 0;
}

bool peer_pty_path_ok(const char *path)
{
	const char *rest;

	if (!path || strncmp(path, "/dev/pts/", 9) != 0)
		return false;
	rest = path + 9;
	return rest[0] && !strstr(rest, "..") && !strchr(rest, '/');
}

bool peer_pty_major_ok(unsigned major)
{
	return major >= 136 && major <= 143;
}
