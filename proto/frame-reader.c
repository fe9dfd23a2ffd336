/* SPDX-License-Identifier: MIT */
/*
 * The frame reader (see frame-reader.h): one buffer with room for a maximal
 * frame; the unparsed rest moves to the front before each read, so a whole
 * frame always fits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame-reader.h"
#include "util.h"

int frame_reader_init(struct frame_reader *r)
{
	*r = (struct frame_reader){};
	r->buf = malloc(FRAME_HEADER + FRAME_MAX);
	return r->buf ? 0 : -ENOMEM;
}

void frame_reader_done(struct frame_reader *r)
{
	free(r->buf);
	*r = (struct frame_reader){};
}

ssize_t frame_reader_fill(struct frame_reader *r, int fd)
{
	const size_t cap = FRAME_HEADER + FRAME_MAX;
	ssize_t n;

	/* Move the unparsed rest to the front so a whole frame always fits. */
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->len == cap)
		return 0;
	do
		n = read(fd, r->buf + r->len, cap - r->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : negative_errno();
	if (n == 0)
		r->eof = true;
	r->len += (size_t)n;
	return n;
}

int frame_reader_next(struct frame_reader *r, struct frame *ret)
{
	int n = frame_parse(r->buf + r->off, r->len - r->off, ret);

	if (n <= 0)
		return n;
	r->off += (size_t)n;
	return 1;
}
