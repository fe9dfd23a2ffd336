/* SPDX-License-Identifier: MIT */
/*
 * Bounded FIFO of bytes.  The queued bytes are kept contiguous: appends go
 * after them and the queue is compacted (memmove) when the free room at the
 * end runs out.  Compaction moves at most cap bytes and happens at most once
 * per cap bytes appended, so the cost stays linear.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "obuf.h"
#include "util.h"

int obuf_init(struct obuf *b, size_t cap)
{
	b->buf = malloc(cap);
	if (!b->buf)
		return -ENOMEM;
	b->cap = cap;
	b->start = 0;
	b->len = 0;
	return 0;
}

void obuf_done(struct obuf *b)
{
	free(b->buf);
	*b = (struct obuf){};
}

static void obuf_compact(struct obuf *b)
{
	if (b->start == 0)
		return;
	if (b->len > 0)
		memmove(b->buf, b->buf + b->start, b->len);
	b->start = 0;
}

size_t obuf_tail_span(struct obuf *b, size_t need, uint8_t **ret)
{
	/* As obuf_append(): consumed bytes at the front make room at the end. */
	if (b->start + b->len + need > b->cap)
		obuf_compact(b);
	*ret = b->buf + b->start + b->len;
	return b->cap - b->start - b->len;
}

void obuf_commit(struct obuf *b, size_t len)
{
	b->len += len;
}

int obuf_append(struct obuf *b, const void *data, size_t len)
{
	if (len > obuf_room(b))
		return -ENOBUFS;
	if (b->start + b->len + len > b->cap)
		obuf_compact(b);
	memcpy(b->buf + b->start + b->len, data, len);
	b->len += len;
	return 0;
}

const uint8_t *obuf_data(struct obuf *b)
{
	return b->buf + b->start;
}

void obuf_consume(struct obuf *b, size_t len)
{
	if (len >= b->len) {
		b->start = 0;
		b->len = 0;
		return;
	}
	b->start += len;
	b->len -= len;
}

ssize_t obuf_flush(struct obuf *b, int fd)
{
	size_t total = 0;

	while (b->len > 0) {
		ssize_t n = send(fd, obuf_data(b), b->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, obuf_data(b), b->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return negative_errno();
		}
		obuf_consume(b, (size_t)n);
		total += (size_t)n;
	}
	return (ssize_t)total;
}
