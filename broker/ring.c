/* SPDX-License-Identifier: MIT */
/*
 * Console history ring: a power-of-two byte array indexed by absolute
 * position & (cap - 1).  Writing never fails and never waits; the oldest
 * bytes are overwritten.  Readers hold their own absolute cursor (see
 * ring.h), so the ring itself keeps no per-reader state.
 */
#include <errno.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "util.h"

int ring_init(struct ring *r, size_t capacity)
{
	size_t cap = 4096;

	if (capacity == 0 || capacity > ((size_t)1 << 40))
		return -EINVAL;
	while (cap < capacity)
		cap <<= 1;
	r->buf = malloc(cap);
	if (!r->buf)
		return -ENOMEM;
	r->cap = cap;
	r->head = 0;
	memset(r->epochs, 0, sizeof(r->epochs));
	r->lease_set = false;
	ring_new_epoch(r);
	return 0;
}

void ring_done(struct ring *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
	r->head = 0;
}

size_t ring_write_span(struct ring *r, uint8_t **ret)
{
	size_t off = (size_t)(r->head & (r->cap - 1));

	*ret = r->buf + off;
	return r->cap - off;
}

void ring_commit(struct ring *r, size_t len)
{
	r->head += len;
}

void ring_write(struct ring *r, const void *data, size_t len)
{
	const uint8_t *p = data;

	/* Only the last cap bytes survive; skip the rest up front. */
	if (len > r->cap) {
		r->head += len - r->cap;
		p += len - r->cap;
		len = r->cap;
	}
	while (len > 0) {
		uint8_t *dst;
		size_t n = MIN(ring_write_span(r, &dst), len);

		memcpy(dst, p, n);
		ring_commit(r, n);
		p += n;
		len -= n;
	}
}

size_t ring_peek(const struct ring *r, uint64_t pos, size_t max, struct iovec iov[2])
{
	uint64_t tail = ring_tail(r);
	size_t avail, off, first;

	if (pos < tail)
		pos = tail;
	if (pos > r->head)
		pos = r->head;
	avail = (size_t)MIN((uint64_t)max, r->head - pos);
	off = (size_t)(pos & (r->cap - 1));
	first = MIN(avail, r->cap - off);

	iov[0].iov_base = r->buf + off;
	iov[0].iov_len = first;
	iov[1].iov_base = r->buf;
	iov[1].iov_len = avail - first;
	return avail;
}

uint64_t ring_lines_back(const struct ring *r, unsigned lines)
{
	uint64_t tail = ring_tail(r), pos = r->head;
	unsigned seen = 0;

	if (lines == 0)
		return r->head;
	/* A final newline ends the last line rather than starting a new one. */
	if (pos > tail && r->buf[(pos - 1) & (r->cap - 1)] == '\n')
		pos--;
	while (pos > tail) {
		size_t off = (size_t)((pos - 1) & (r->cap - 1));
		/* Search backwards within one contiguous span at a time. */
		size_t span = (size_t)MIN((uint64_t)off + 1, pos - tail);
		const uint8_t *base = r->buf + off + 1 - span;
		const uint8_t *nl = memrchr(base, '\n', span);

		if (!nl) {
			pos -= span;
			continue;
		}
		pos -= (size_t)(r->buf + off - nl) + 1;
		if (++seen == lines)
			return pos + 1;
	}
	return tail;
}

static uint64_t ring_random_id(void)
{
	uint64_t id = 0;

	while (id == 0)
		if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
			id = 0;
	return id;
}

uint64_t ring_epoch(const struct ring *r)
{
	return r->epochs[0].id;
}

void ring_new_epoch(struct ring *r)
{
	if (r->epochs[0].id != 0 && r->epochs[0].start == r->head)
		return;
	memmove(&r->epochs[1], &r->epochs[0], sizeof(r->epochs[0]) * (RING_EPOCHS - 1));
	r->epochs[0].id = ring_random_id();
	r->epochs[0].start = r->head;
}

bool ring_epoch_known(const struct ring *r, uint64_t id)
{
	if (id == 0)
		return false;
	for (size_t i = 0; i < RING_EPOCHS; i++)
		if (r->epochs[i].id == id)
			return true;
	return false;
}

void ring_set_lease(struct ring *r, const uint8_t lease[RING_LEASE_SIZE])
{
	memcpy(r->lease, lease, RING_LEASE_SIZE);
	r->lease_set = true;
}

void ring_clear_lease(struct ring *r)
{
	memset(r->lease, 0, RING_LEASE_SIZE);
	r->lease_set = false;
}

bool ring_get_lease(const struct ring *r, uint8_t ret[RING_LEASE_SIZE])
{
	if (r->lease_set)
		memcpy(ret, r->lease, RING_LEASE_SIZE);
	return r->lease_set;
}
