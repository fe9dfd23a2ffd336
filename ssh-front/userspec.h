/* SPDX-License-Identifier: MIT */
/*
 * What an SSH user name asks for (pure parser, no I/O):
 *
 *   [HOST/]VM | VM:ALIAS | UUID | UUID:ALIAS, then options, each after a '+':
 *   +ro  +force  +replay=N  +replay=all  +resume=EPOCH:OFFSET
 *
 * e.g. "web01", "web01:serial1", "web01+ro", "web01:console1+force+replay=100",
 * "web01+resume=3f9c0a1b2c3d4e5f:10240" (the resume point ttyhub-sshd printed
 * when the user last left: see proto_parse_resume_str()).
 * Names are 1..128 bytes of [A-Za-z0-9_.:-] (libvirt VM names may hold more,
 * but not through an SSH user name).  Anything that does not parse is not an
 * error for the caller: such a user name opens the console menu.  The one
 * exception is a resume point: a user who typed one asked to continue where
 * they left off, and a menu would silently start over, so a console name
 * with a malformed (or repeated) +resume= is its own error, said in words.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

#define USERSPEC_CONSOLE_MAX 128
/* A console and every option once, with room to spare; longer user names are refused. */
#define USERSPEC_USER_MAX 256

struct userspec {
	char console[129];
	enum attach_mode mode; /* ATTACH_RW (write if free) unless +ro or +force */
	long replay;           /* lines, PROTO_REPLAY_ALL, or PROTO_REPLAY_DEFAULT (not given) */
	bool resume;           /* +resume= given: continue from epoch/offset */
	uint64_t epoch;        /* nonzero when resume */
	uint64_t offset;
};

/*
 * Returns 0 with *ret filled; -EINVAL (then: show the menu); or -EBADMSG:
 * the console and every other option parse but the +resume= value does not
 * (or comes twice): tell the user, with userspec_resume_error().
 * *ret is written only on success.
 */
int userspec_parse(const char *user, struct userspec *ret);

/* The sentence for -EBADMSG: what a resume point looks like. */
const char *userspec_resume_error(void);
