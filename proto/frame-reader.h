/* SPDX-License-Identifier: MIT */
/*
 * Reading frames (frame.h) from a stream fd: the one piece of the framing
 * that does I/O, kept apart so frame.c stays a pure parser.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

/*
 * Buffered frame reader for a stream fd, with room for exactly one maximal
 * frame.  frame_reader_fill() reads what is available (non-blocking fds
 * return 0 with nothing read); frame_reader_next() yields complete frames,
 * whose payload stays valid until the next fill.
 */
struct frame_reader {
	uint8_t *buf; /* owned, FRAME_HEADER + FRAME_MAX bytes */
	size_t len;   /* bytes held */
	size_t off;   /* start of the first unparsed byte */
	bool eof;
};

int frame_reader_init(struct frame_reader *r);
void frame_reader_done(struct frame_reader *r);
/* Returns bytes read (0 if none available), or -errno. Sets r->eof on EOF. */
ssize_t frame_reader_fill(struct frame_reader *r, int fd);
/* 1 with *ret, 0 if no complete frame is buffered, or -EBADMSG/-EMSGSIZE. */
int frame_reader_next(struct frame_reader *r, struct frame *ret);
