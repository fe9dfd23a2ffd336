/* SPDX-License-Identifier: MIT */
/*
 * The interactive side of `ttyhub attach`: raw terminal, escape commands,
 * console output and [ttyhub] notices.
 */
#pragma once

#include <stdint.h>

#include "front.h"
#include "proto.h"

struct attach_opts {
	const char *console;
	enum attach_mode mode;
	long replay;      /* lines, PROTO_REPLAY_ALL or PROTO_REPLAY_DEFAULT */
};

/* How an attachment ended (the process's exit status). */
enum attach_status {
	ATTACH_DETACHED = 0, /* the user detached (escape command, end of input) */
	ATTACH_ENDED = 1,    /* anything else: refused, console gone, revoked, signal, lost */
};

/*
 * f: a connection to the broker after the hello exchange (its escape prefix
 * is the user's).  Returns an enum attach_status, or -errno when the attach
 * could not even start (out of memory).
 */
int attach_run(struct front *f, const struct attach_opts *o);
