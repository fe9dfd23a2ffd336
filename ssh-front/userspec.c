/* SPDX-License-Identifier: MIT */
/*
 * SSH user name parser (see userspec.h).  The user name is cut at '+': the
 * first part names the console, each following part is one option.
 *
 * - Console: 1..128 bytes of [A-Za-z0-9_.:-], at most one ':' (VM:ALIAS),
 *   both sides of the ':' non-empty and neither starting with '-' or '.';
 *   optionally after "HOST/" (a gateway's host, ssh-front/gateway.h: [A-Za-z0-9_.-],
 *   not starting with '-' or '.'), the whole still at most 128 bytes.
 * - Options: "ro", "force", "replay=N" (N decimal, 0..PROTO_REPLAY_MAX,
 *   at most 7 digits, no sign) and "replay=all", as proto_parse_replay_str()
 *   reads them, and "resume=EPOCH:OFFSET" as proto_parse_resume_str() reads
 *   it (at most USERSPEC_RESUME_MAX bytes).  Each may appear once;
 *   "ro" and "force" exclude each other; option names are case-sensitive.
 *
 * Anything else (an empty part, an unknown option, a bad byte) is -EINVAL:
 * the caller then shows the console menu, so being strict costs nothing
 * and keeps odd user names from being half understood.  A bad or repeated
 * resume point in a user name that is otherwise fine is -EBADMSG instead
 * (see userspec.h): the other options are still all checked first, so
 * -EINVAL wins when both apply.
 */
#include <errno.h>
#include <string.h>

#include "userspec.h"

/* Digits of PROTO_REPLAY_MAX: a longer amount is refused before it is read. */
#define USERSPEC_REPLAY_DIGITS 7
/* "EPOCH:OFFSET": 16 hex digits, ':', and an offset below 2^63 (19 digits, a zero or so more). */
#define USERSPEC_RESUME_MAX (PROTO_EPOCH_STRLEN + 1 + 21)

/* How an option came out: fine, not understood (menu), or a bad resume point (said). */
enum userspec_opt { USERSPEC_OPT_OK, USERSPEC_OPT_BAD, USERSPEC_OPT_BAD_RESUME };

static bool userspec_is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == ':' || c == '-';
}

/* Check a VM or alias part of n bytes (no ':' inside). */
static bool userspec_part_ok(const char *s, size_t n)
{
	return n > 0 && s[0] != '-' && s[0] != '.';
}

static int userspec_parse_console(const char *s, size_t n, struct userspec *u)
{
	const char *colon, *slash;
	const char *whole = s;
	size_t whole_n = n;

	if (n == 0 || n > USERSPEC_CONSOLE_MAX)
		return -EINVAL;
	slash = memchr(s, '/', n);
	if (slash) {
		size_t host = (size_t)(slash - s);

		if (!userspec_part_ok(s, host) || memchr(s, ':', host))
			return -EINVAL;
		for (size_t i = 0; i < host; i++)
			if (!userspec_is_name_char(s[i]))
				return -EINVAL;
		s = slash + 1;
		n -= host + 1;
		if (memchr(s, '/', n))
			return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (!userspec_is_name_char(s[i]))
			return -EINVAL;
	colon = memchr(s, ':', n);
	if (colon) {
		size_t vm = (size_t)(colon - s);

		if (memchr(colon + 1, ':', n - vm - 1))
			return -EINVAL;
		if (!userspec_part_ok(s, vm) || !userspec_part_ok(colon + 1, n - vm - 1))
			return -EINVAL;
	} else if (!userspec_part_ok(s, n)) {
		return -EINVAL;
	}
	memcpy(u->console, whole, whole_n);
	u->console[whole_n] = '\0';
	return 0;
}

static int userspec_parse_replay(const char *s, size_t n, long *ret)
{
	char buf[USERSPEC_REPLAY_DIGITS + 1];

	if (n > USERSPEC_REPLAY_DIGITS)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return proto_parse_replay_str(buf, ret) < 0 ? -EINVAL : 0;
}

static int userspec_parse_resume(const char *s, size_t n, struct userspec *u)
{
	char buf[USERSPEC_RESUME_MAX + 1];

	if (n > USERSPEC_RESUME_MAX)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (proto_parse_resume_str(buf, &u->epoch, &u->offset) < 0)
		return -EINVAL;
	u->resume = true;
	return 0;
}

/* Apply the option s[0..n) to u; seen_mode tracks ro/force, u->replay a replay given. */
static enum userspec_opt userspec_parse_option(const char *s, size_t n, struct userspec *u,
						 bool *seen_mode, bool *seen_resume)
{
	static const char replay[] = "replay=", resume[] = "resume=";
	const size_t rl = sizeof(replay) - 1, sl = sizeof(resume) - 1;

	if ((n == 2 && memcmp(s, "ro", 2) == 0) || (n == 5 && memcmp(s, "force", 5) == 0)) {
		if (*seen_mode)
			return USERSPEC_OPT_BAD;
		*seen_mode = true;
		u->mode = n == 2 ? ATTACH_RO : ATTACH_FORCE;
		return USERSPEC_OPT_OK;
	}
	if (n >= rl && memcmp(s, replay, rl) == 0) {
		if (u->replay != PROTO_REPLAY_DEFAULT)
			return USERSPEC_OPT_BAD;
		return userspec_parse_replay(s + rl, n - rl, &u->replay) < 0 ? USERSPEC_OPT_BAD
									      : USERSPEC_OPT_OK;
	}
	if (n >= sl && memcmp(s, resume, sl) == 0) {
		/* Two resume points: which one did the user mean?  Neither is guessed. */
		if (*seen_resume)
			return USERSPEC_OPT_BAD_RESUME;
		*seen_resume = true;
		return userspec_parse_resume(s + sl, n - sl, u) < 0 ? USERSPEC_OPT_BAD_RESUME
								    : USERSPEC_OPT_OK;
	}
	return USERSPEC_OPT_BAD;
}

int userspec_parse(const char *user, struct userspec *ret)
{
	struct userspec u = { .mode = ATTACH_RW, .replay = PROTO_REPLAY_DEFAULT };
	bool seen_mode = false, seen_resume = false, bad_resume = false;
	const char *p, *plus;
	size_t len;
	int r;

	if (!user || !ret)
		return -EINVAL;
	len = strnlen(user, USERSPEC_USER_MAX + 1);
	if (len > USERSPEC_USER_MAX)
		return -EINVAL;

	plus = memchr(user, '+', len);
	r = userspec_parse_console(user, plus ? (size_t)(plus - user) : len, &u);
	if (r < 0)
		return r;
	for (p = plus; p; p = plus) {
		size_t n;

		p++;
		plus = memchr(p, '+', len - (size_t)(p - user));
		n = plus ? (size_t)(plus - p) : len - (size_t)(p - user);
		switch (userspec_parse_option(p, n, &u, &seen_mode, &seen_resume)) {
		case USERSPEC_OPT_OK:
			break;
		case USERSPEC_OPT_BAD:
			return -EINVAL;
		case USERSPEC_OPT_BAD_RESUME:
			bad_resume = true; /* said only if nothing else is wrong */
			break;
		}
	}
	if (bad_resume)
		return -EBADMSG;
	*ret = u;
	return 0;
}

const char *userspec_resume_error(void)
{
	return "bad resume point in the user name: expected NAME+resume=EPOCH:OFFSET "
	       "(16 hex digits, a colon, a byte offset; once), as ttyhub printed it";
}
