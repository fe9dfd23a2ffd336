/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the SSH user name parser (ssh-front/userspec.h).
 * The input, cut at its first NUL, is the user name.  On success:
 *
 * - the console is 1..128 bytes: an optional "HOST/" (HOST of
 *   [A-Za-z0-9_.-], not empty, not starting with '-' or '.'), then
 *   [A-Za-z0-9_.:-] with at most one ':', and neither side of the ':' is
 *   empty or starts with '-' or '.';
 * - the user name starts with the console, followed by '+' or its end;
 * - the mode is RW, RO or FORCE and replay is -2, -1 or 0..1000000;
 * - a resume point has a nonzero epoch and an offset below 2^63, and the
 *   user name holds "+resume=";
 * - formatting the result back into a canonical user name and parsing that
 *   gives the same result.
 * On failure (-EINVAL, or -EBADMSG for a bad resume point, which needs
 * "+resume=" in the input) the output struct is left untouched.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "userspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer user names are rejected by length alone; a little over is enough. */
#define FUZZ_USERSPEC_MAX_INPUT 1024
#define FUZZ_USERSPEC_CONSOLE_MAX 128
#define FUZZ_USERSPEC_REPLAY_MAX 1000000L

static bool fuzz_is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == ':' || c == '-';
}

static bool fuzz_part_ok(const char *s, size_t n)
{
	return n > 0 && s[0] != '-' && s[0] != '.';
}

static void fuzz_check_spec(const char *user, const struct userspec *u)
{
	size_t n = strnlen(u->console, sizeof(u->console));
	const char *colon, *name = u->console, *slash;

	if (n == 0 || n > FUZZ_USERSPEC_CONSOLE_MAX || n == sizeof(u->console))
		abort();
	slash = strchr(u->console, '/');
	if (slash) {
		size_t host = (size_t)(slash - u->console);

		if (!fuzz_part_ok(u->console, host) || memchr(u->console, ':', host) ||
		    strchr(slash + 1, '/'))
			abort();
		for (size_t i = 0; i < host; i++)
			if (!fuzz_is_name_char(u->console[i]))
				abort();
		name = slash + 1;
	}
	for (const char *p = name; *p; p++)
		if (!fuzz_is_name_char(*p))
			abort();
	colon = strchr(name, ':');
	if (colon) {
		if (strchr(colon + 1, ':'))
			abort();
		if (!fuzz_part_ok(name, (size_t)(colon - name)) ||
		    !fuzz_part_ok(colon + 1, strlen(colon + 1)))
			abort();
	} else if (!fuzz_part_ok(name, strlen(name))) {
		abort();
	}
	if (strncmp(user, u->console, n) != 0 || (user[n] != '+' && user[n] != '\0'))
		abort();

	if (u->mode != ATTACH_RW && u->mode != ATTACH_RO && u->mode != ATTACH_FORCE)
		abort();
	if (u->replay < PROTO_REPLAY_DEFAULT || u->replay > FUZZ_USERSPEC_REPLAY_MAX)
		abort();
	if (u->resume != !!strstr(user, "+resume="))
		abort();
	if (u->resume && (u->epoch == 0 || u->offset > (uint64_t)INT64_MAX))
		abort();
}

/* Write u back as a canonical user name; returns its length. */
static size_t fuzz_format(const struct userspec *u, char *buf, size_t size)
{
	int n;

	n = snprintf(buf, size, "%s%s", u->console,
		     u->mode == ATTACH_RO ? "+ro" : u->mode == ATTACH_FORCE ? "+force" : "");
	if (n < 0 || (size_t)n >= size)
		abort();
	if (u->replay == PROTO_REPLAY_ALL)
		n += snprintf(buf + n, size - (size_t)n, "+replay=all");
	else if (u->replay >= 0)
		n += snprintf(buf + n, size - (size_t)n, "+replay=%ld", u->replay);
	if ((size_t)n >= size)
		abort();
	if (u->resume) {
		char epoch[PROTO_EPOCH_STRLEN + 1];

		proto_epoch_to_string(u->epoch, epoch);
		n += snprintf(buf + n, size - (size_t)n, "+resume=%s:%llu", epoch,
			      (unsigned long long)u->offset);
		if ((size_t)n >= size)
			abort();
	}
	return (size_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct userspec u, again, sentinel;
	char user[FUZZ_USERSPEC_MAX_INPUT + 1], canon[USERSPEC_USER_MAX + 1];
	int r;

	if (size > FUZZ_USERSPEC_MAX_INPUT)
		size = FUZZ_USERSPEC_MAX_INPUT;
	memcpy(user, data, size);
	user[size] = '\0';

	memset(&sentinel, 0xa5, sizeof(sentinel));
	memset(&u, 0xa5, sizeof(u));
	r = userspec_parse(user, &u);
	if (r != 0) {
		if (r != -EINVAL && (r != -EBADMSG || !strstr(user, "+resume=")))
			abort();
		/* out-parameters are written only on success */
		if (memcmp(&u, &sentinel, sizeof(u)) != 0)
			abort();
		return 0;
	}
	fuzz_check_spec(user, &u);

	/* canonical form: console, then the mode, the replay, the resume point */
	fuzz_format(&u, canon, sizeof(canon));
	memset(&again, 0xa5, sizeof(again));
	if (userspec_parse(canon, &again) != 0)
		abort();
	if (strcmp(again.console, u.console) != 0 || again.mode != u.mode ||
	    again.replay != u.replay || again.resume != u.resume || again.epoch != u.epoch ||
	    again.offset != u.offset)
		abort();
	return 0;
}
