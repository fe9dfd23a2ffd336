/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the guest-peer rules (broker/peer.h): the parser of
 * DAC labels and --guest-user values, the pty path rule and the peer
 * decision.  The input, cut at its first NUL, is the text; its first bytes
 * also pick the peer (pid, uid) and ttyhubd's own.  Checked:
 *
 * - a parsed number is never (uid_t)-1; a parsed name is non-empty,
 *   NUL-terminated inside its buffer and a substring of the input with no
 *   ':' or '+'; on failure nothing is written;
 * - an accepted pty path starts with "/dev/pts/", has a name after it, and
 *   holds no further '/' and no "..";
 * - the decision always refuses ttyhubd's own pid, and root or ttyhubd's own
 *   uid unless the operator named exactly that uid; it accepts only the
 *   expected uid when one is set; a refusal always says why.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PEER_MAX_INPUT 512

static void fuzz_check_parse(const char *s, bool bare)
{
	char name[64];
	uid_t uid = (uid_t)12345;
	int r;

	memset(name, 'x', sizeof(name));
	r = peer_parse_user(s, bare, &uid, name, sizeof(name));
	if (r == 1) {
		if (uid == (uid_t)-1)
			abort();
	} else if (r == 0) {
		size_t n = strnlen(name, sizeof(name));

		if (n == 0 || n == sizeof(name) || !strstr(s, name) || strchr(name, ':') ||
		    strchr(name, '+'))
			abort();
	} else if (r != -EINVAL || uid != (uid_t)12345) {
		abort();
	}
}

static void fuzz_check_pty(const char *s)
{
	const char *rest;

	if (!peer_pty_path_ok(s))
		return;
	if (strncmp(s, "/dev/pts/", 9) != 0)
		abort();
	rest = s + 9;
	if (!*rest || strchr(rest, '/') || strstr(rest, ".."))
		abort();
}

static void fuzz_check_decision(const uint8_t *d, size_t size, const char *path)
{
	struct peer_guest g = {};
	pid_t self_pid = 1000, pid;
	uid_t self_uid, uid;
	char err[300];
	int r;

	if (size < 4)
		return;
	/* Small values so that root, our own uid and the expected one collide often. */
	pid = d[0] & 1 ? self_pid : 1001 + d[0];
	uid = d[1] % 4;
	self_uid = d[2] & 1 ? 0 : 1;
	g.set = d[3] & 1;
	g.explicit = d[3] & 2;
	g.uid = (d[3] >> 2) % 4;
	err[0] = '\0';
	r = peer_check(d[3] & 0x80 ? NULL : &g, pid, uid, self_pid, self_uid, path, err,
		       sizeof(err));
	if (r < 0 && (r != -EPERM || !err[0]))
		abort();
	if (r == 0) {
		if (pid == self_pid)
			abort();
		if (!(d[3] & 0x80) && g.set && uid != g.uid)
			abort();
		if ((uid == 0 || uid == self_uid) &&
		    ((d[3] & 0x80) || !g.set || !g.explicit || g.uid != uid))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[FUZZ_PEER_MAX_INPUT + 1];
	size_t n = size < FUZZ_PEER_MAX_INPUT ? size : FUZZ_PEER_MAX_INPUT;

	memcpy(s, data, n);
	s[n] = '\0';
	fuzz_check_parse(s, false);
	fuzz_check_parse(s, true);
	fuzz_check_pty(s);
	fuzz_check_decision(data, size, s);
	return 0;
}
