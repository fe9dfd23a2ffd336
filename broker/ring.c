/* SPDX-License-Identifier: MIT */
/*
 * Console history ring: a power-of-two byte array indexed by absolute
 * position & (cap - 1).  Writing never fails and never waits; the oldest
 * bytes are overwritten.  Readers hold their own absolute cursor (see
 * ring.h), so the ring itself keeps no per-reader state.
 *
 * The array and its header are one sealed memfd mapped MAP_SHARED (ring.h
 * says why).  The header is the only state: struct ring holds nothing but
 * the mapping, so a ring adopted after a restart is the ring that was.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"
#include "util.h"

_Static_assert(sizeof(struct ring_header) <= RING_HEADER_SIZE, "the header fits its page");

#define RING_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

static void ring_map_done(struct ring *r)
{
	if (r->map && r->map != MAP_FAILED)
		munmap(r->map, r->map_size);
	r->map = NULL;
	r->map_size = 0;
	r->hdr = NULL;
	r->buf = NULL;
}

static int ring_map(struct ring *r, int fd, size_t cap)
{
	r->map_size = RING_HEADER_SIZE + cap;
	r->map = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		return negative_errno();
	}
	r->hdr = r->map;
	r->buf = (uint8_t *)r->map + RING_HEADER_SIZE;
	r->cap = cap;
	r->fd = fd;
	return 0;
}

int ring_init(struct ring *r, size_t capacity)
{
	_cleanup_close_ int fd = -EBADF;
	size_t cap = RING_MIN_CAP;
	int k;

	*r = (struct ring){ .fd = -EBADF };
	if (capacity == 0 || capacity > RING_MAX_CAP)
		return -EINVAL;
	while (cap < capacity)
		cap <<= 1;
	fd = memfd_create("ttyhub-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return negative_errno();
	if (ftruncate(fd, (off_t)(RING_HEADER_SIZE + cap)) < 0)
		return errno == EFBIG || errno == ENOSPC ? -ENOMEM : negative_errno();
	/* Fixed size for good: nobody holding the fd can make a mapping fault. */
	if (fcntl(fd, F_ADD_SEALS, RING_SEALS | F_SEAL_SEAL) < 0)
		return negative_errno();
	k = ring_map(r, fd, cap);
	if (k < 0)
		return k;
	TAKE_FD(fd);
	memcpy(r->hdr->magic, RING_MAGIC, sizeof(r->hdr->magic));
	r->hdr->version = RING_VERSION;
	r->hdr->header_size = RING_HEADER_SIZE;
	r->hdr->capacity = cap;
	ring_new_epoch(r);
	return 0;
}

static bool ring_str_ok(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

int ring_header_check(const void *page, size_t size, uint64_t file_size, const char **why)
{
	struct ring_header h;
	uint64_t prev_start;
	bool unused = false;
	const char *dummy;

	if (!why)
		why = &dummy;
	if (size < sizeof(h)) {
		*why = "shorter than a header";
		return -EBADMSG;
	}
	memcpy(&h, page, sizeof(h));
	if (memcmp(h.magic, RING_MAGIC, sizeof(h.magic)) != 0) {
		*why = "bad magic";
		return -EBADMSG;
	}
	if (h.version != RING_VERSION || h.header_size != RING_HEADER_SIZE) {
		*why = "unknown version";
		return -EBADMSG;
	}
	if (h.capacity < RING_MIN_CAP || h.capacity > RING_MAX_CAP ||
	    (h.capacity & (h.capacity - 1)) != 0) {
		*why = "bad capacity";
		return -EBADMSG;
	}
	if (file_size != RING_HEADER_SIZE + h.capacity) {
		*why = "capacity does not match the file size";
		return -EBADMSG;
	}
	if (h.logged > h.head) {
		*why = "logged is past head";
		return -EBADMSG;
	}
	if (h.epochs[0].id == 0) {
		*why = "no current epoch";
		return -EBADMSG;
	}
	/* Used slots first, newest first: starts never grow going back, none past head. */
	prev_start = h.head;
	for (size_t i = 0; i < RING_EPOCHS; i++) {
		if (h.epochs[i].id == 0) {
			unused = true;
			if (h.epochs[i].start != 0) {
				*why = "an unused epoch slot has a start";
				return -EBADMSG;
			}
			continue;
		}
		if (unused) {
			*why = "an epoch after an unused slot";
			return -EBADMSG;
		}
		if (h.epochs[i].start > prev_start) {
			*why = "epochs out of order or past head";
			return -EBADMSG;
		}
		prev_start = h.epochs[i].start;
	}
	if (h.lease_set > 1 || h.reserved != 0) {
		*why = "bad lease flag";
		return -EBADMSG;
	}
	if (!ring_str_ok(h.uuid, sizeof(h.uuid)) || !ring_str_ok(h.alias, sizeof(h.alias)) ||
	    !ring_str_ok(h.name, sizeof(h.name)) || !ring_str_ok(h.path, sizeof(h.path))) {
		*why = "unterminated name";
		return -EBADMSG;
	}
	return 0;
}

int ring_adopt(struct ring *r, int fd, const char **why)
{
	uint8_t page[sizeof(struct ring_header)];
	const struct ring_header *h = (const void *)page;
	struct stat st;
	const char *dummy;
	ssize_t n;
	int seals, k;

	if (!why)
		why = &dummy;
	*r = (struct ring){ .fd = -EBADF };
	if (fstat(fd, &st) < 0)
		return negative_errno();
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & RING_SEALS) != RING_SEALS) {
		*why = "not a sealed memfd";
		return -EPERM;
	}
	/* Checked on a copy: what is mapped afterwards is only ours to write. */
	n = pread(fd, page, sizeof(page), 0);
	if (n < 0)
		return negative_errno();
	k = ring_header_check(page, (size_t)n, (uint64_t)st.st_size, why);
	if (k < 0)
		return k;
	k = ring_map(r, fd, (size_t)h->capacity);
	if (k < 0)
		return k;
	/* Only the copy was checked; a value changed since (nobody else writes it) would
	 * still be bounded by these. */
	if (memcmp(r->hdr, page, sizeof(page)) != 0) {
		ring_map_done(r);
		r->fd = -EBADF;
		*why = "the header changed while it was checked";
		return -EBADMSG;
	}
	return 0;
}

void ring_done(struct ring *r)
{
	ring_map_done(r);
	r->fd = safe_close(r->fd);
	r->cap = 0;
}

uint64_t ring_logged(const struct ring *r)
{
	return r->hdr->logged;
}

void ring_set_logged(struct ring *r, uint64_t pos)
{
	__atomic_store_n(&r->hdr->logged, MIN(pos, ring_head(r)), __ATOMIC_RELEASE);
}

void ring_set_identity(struct ring *r, const char *uuid, const char *alias, const char *name,
		       const char *path)
{
	snprintf(r->hdr->path, sizeof(r->hdr->path), "%s", path ? path : "");
	snprintf(r->hdr->uuid, sizeof(r->hdr->uuid), "%s", uuid ? uuid : "");
	snprintf(r->hdr->alias, sizeof(r->hdr->alias), "%s", alias ? alias : "");
	snprintf(r->hdr->name, sizeof(r->hdr->name), "%s", name ? name : "");
}

size_t ring_write_span(struct ring *r, uint8_t **ret)
{
	size_t off = (size_t)(ring_head(r) & (r->cap - 1));

	*ret = r->buf + off;
	return r->cap - off;
}

void ring_commit(struct ring *r, size_t len)
{
	/* Release: the bytes are in the file before a head that covers them. */
	__atomic_store_n(&r->hdr->head, r->hdr->head + len, __ATOMIC_RELEASE);
}

void ring_write(struct ring *r, const void *data, size_t len)
{
	const uint8_t *p = data;

	/* Only the last cap bytes survive; skip the rest up front. */
	if (len > r->cap) {
		ring_commit(r, len - r->cap);
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
	uint64_t head = ring_head(r), tail = ring_tail(r);
	size_t avail, off, first;

	if (pos < tail)
		pos = tail;
	if (pos > head)
		pos = head;
	avail = (size_t)MIN((uint64_t)max, head - pos);
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
	uint64_t head = ring_head(r), tail = ring_tail(r), pos = head;
	unsigned seen = 0;

	if (lines == 0)
		return head;
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
	return r->hdr->epochs[0].id;
}

void ring_new_epoch(struct ring *r)
{
	struct ring_epoch *ep = r->hdr->epochs;
	uint64_t head = ring_head(r);

	if (ep[0].id != 0 && ep[0].start == head)
		return;
	memmove(&ep[1], &ep[0], sizeof(ep[0]) * (RING_EPOCHS - 1));
	ep[0].id = ring_random_id();
	ep[0].start = head;
}

bool ring_epoch_known(const struct ring *r, uint64_t id)
{
	if (id == 0)
		return false;
	for (size_t i = 0; i < RING_EPOCHS; i++)
		if (r->hdr->epochs[i].id == id)
			return true;
	return false;
}

void ring_set_lease(struct ring *r, const uint8_t lease[RING_LEASE_SIZE])
{
	memcpy(r->hdr->lease, lease, RING_LEASE_SIZE);
	r->hdr->lease_set = 1;
}

void ring_clear_lease(struct ring *r)
{
	memset(r->hdr->lease, 0, RING_LEASE_SIZE);
	r->hdr->lease_set = 0;
}

bool ring_get_lease(const struct ring *r, uint8_t ret[RING_LEASE_SIZE])
{
	if (r->hdr->lease_set)
		memcpy(ret, r->hdr->lease, RING_LEASE_SIZE);
	return r->hdr->lease_set != 0;
}
