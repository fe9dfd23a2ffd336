/* SPDX-License-Identifier: MIT */
/*
 * What an SSH user name asks for (pure parser, no I/O):
 *
 *   VM | VM:ALIAS | UUID | UUID:ALIAS, then options, each after a '+':
 *   +ro  +force  +replay=N  +replay=all
 *
 * e.g. "web01", "web01:serial1", "web01+ro", "web01:console1+force+replay=100".
 * Names are 1..128 bytes of [A-Za-z0-9_.:-] (libvirt VM names may hold more,
 * but not through an SSH user name).  Anything that does not parse is not an
 * error for the caller: such a user name opens the console menu.
 */
#pragma once

#include <stdbool.h>

#include "proto.h"

#define USERSPEC_CONSOLE_MAX 128
/* A console and every option once, with room to spare; longer user names are refused. */
#define USERSPEC_USER_MAX 256

struct userspec {
	char console[129];
	enum attach_mode mode; /* ATTACH_RW (write if free) unless +ro or +force */
	long replay;           /* lines, PROTO_REPLAY_ALL, or PROTO_REPLAY_DEFAULT (not given) */
};

/* Returns 0 with *ret filled, or -EINVAL (then: show the menu). */
int userspec_parse(const char *user, struct userspec *ret);
