/* SPDX-License-Identifier: MIT */
/*
 * The interactive side of `ttyhub attach`: raw terminal, escape commands,
 * console output and [ttyhub] notices.
 */
#pragma once

#include <stdint.h>

#include "proto.h"

struct attach_opts {
	const char *console;
	const char *mode; /* "rw", "ro" or "force" */
	long replay;      /* lines, -1 = all, -2 = the broker's default */
	uint8_t prefix[2];
};

/* fd: a connected broker socket after the hello exchange. Returns an exit status. */
int attach_run(int fd, struct frame_reader *in, const struct attach_opts *o);
