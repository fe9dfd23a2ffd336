/* SPDX-License-Identifier: MIT */
/*
 * Bounded byte queue (FIFO) with a fixed capacity set at init.  Used for
 * client output and writer input.  Appends never grow it: obuf_append()
 * returns -ENOBUFS when the data does not fit.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct obuf {
	uint8_t *buf; /* owned */
	size_t cap;
	size_t start; /* offset of the first queued byte */
	size_t len;   /* queued bytes */
};

int obuf_init(struct obuf *b, size_t cap);
void obuf_done(struct obuf *b);

static inline size_t obuf_len(const struct obuf *b)
{
	return b->len;
}

static inline size_t obuf_room(const struct obuf *b)
{
	return b->cap - b->len;
}

/* All or nothing. Returns 0 or -ENOBUFS. */
int obuf_append(struct obuf *b, const void *data, size_t len);

/*
 * Contiguous room at the end for direct fills; call obuf_commit() after.  The
 * queue compacts when the span would be shorter than need, so the span is at
 * least need bytes whenever obuf_room() is.
 */
size_t obuf_tail_span(struct obuf *b, size_t need, uint8_t **ret);
void obuf_commit(struct obuf *b, size_t len);

/* Queued data, contiguous (the queue compacts itself when needed). */
const uint8_t *obuf_data(struct obuf *b);
void obuf_consume(struct obuf *b, size_t len);

/* Write as much as possible to fd (non-blocking, MSG_NOSIGNAL for sockets).
 * Returns bytes written (>= 0, 0 when the fd would block) or -errno. */
ssize_t obuf_flush(struct obuf *b, int fd);
