/* SPDX-License-Identifier: MIT */
/*
 * The interactive side of `ttyhub attach`: raw terminal, escape commands,
 * console output and [ttyhub] notices.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "front.h"
#include "proto.h"

struct attach_opts {
	const char *console;
	enum attach_mode mode;
	long replay;      /* lines, PROTO_REPLAY_ALL or PROTO_REPLAY_DEFAULT */
	const char *broker; /* the socket path, for reconnecting */
	bool resume;      /* --resume EPOCH:OFFSET */
	uint64_t epoch, offset;
};

/* How an attachment ended (the process's exit status). */
enum attach_status {
	ATTACH_DETACHED = 0, /* the user detached (escape command, end of input) */
	ATTACH_ENDED = 1,    /* anything else: refused, console gone, revoked, signal, lost */
};

/*
 * f: a connection to the broker after the hello exchange (its escape prefix
 * is the user's).  The session may replace f->fd (reconnects): the caller
 * closes f->fd afterwards, not the fd it passed.  Returns an enum
 * attach_status, or -errno when the attach could not even start.
 */
int attach_run(struct front *f, const struct attach_opts *o);
