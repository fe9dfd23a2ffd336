/* SPDX-License-Identifier: MIT */
/*
 * Console history ring.  One per console, power-of-two capacity, written only
 * by the chardev drain.  Positions are absolute uint64_t byte counts since
 * the console was created, so readers keep a cursor that never wraps:
 * the ring holds [ring_tail(), ring_head()).  A reader whose cursor is below
 * ring_tail() has lost bytes and must skip ahead.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * Epochs.  An epoch is a random nonzero 64-bit id for one chardev
 * connection; offsets stay absolute ring positions across epochs, so a
 * client holding (epoch, offset) of any epoch the ring still remembers can
 * continue exactly.  The ring remembers the last RING_EPOCHS.
 */
#define RING_EPOCHS 8
#define RING_LEASE_SIZE 16

struct ring_epoch {
	uint64_t id;    /* 0: unused slot */
	uint64_t start; /* ring position where it began */
};

struct ring {
	uint8_t *buf;  /* owned; cap bytes */
	size_t cap;    /* power of two */
	uint64_t head; /* absolute position of the next byte to be written */
	struct ring_epoch epochs[RING_EPOCHS]; /* [0] is the current one */
	/* The writer's lease (see console.h); valid when lease_set. */
	uint8_t lease[RING_LEASE_SIZE];
	bool lease_set;
};

/* capacity is rounded up to a power of two (>= 4096). Returns -ENOMEM/-EINVAL. */
int ring_init(struct ring *r, size_t capacity);
void ring_done(struct ring *r);

static inline uint64_t ring_head(const struct ring *r)
{
	return r->head;
}

static inline uint64_t ring_tail(const struct ring *r)
{
	return r->head > r->cap ? r->head - r->cap : 0;
}

/* Append data, overwriting the oldest bytes when full. */
void ring_write(struct ring *r, const void *data, size_t len);

/*
 * Contiguous writable span at the head, for read(2) straight into the ring.
 * Returns its length (> 0); call ring_commit() with what was actually read.
 */
size_t ring_write_span(struct ring *r, uint8_t **ret);
void ring_commit(struct ring *r, size_t len);

/*
 * Up to max bytes starting at pos, as at most two spans (iov[0], iov[1]).
 * pos is clamped to [tail, head]. Returns the total length.
 */
size_t ring_peek(const struct ring *r, uint64_t pos, size_t max, struct iovec iov[2]);

/*
 * Position where the last `lines` lines start (a trailing partial line
 * counts as a line; lines == 0 gives head).  Returns tail if the ring holds
 * fewer lines.
 */
uint64_t ring_lines_back(const struct ring *r, unsigned lines);

/* The current epoch's id (never 0). */
uint64_t ring_epoch(const struct ring *r);
/* Start a new epoch at head, unless the current one has no bytes yet. */
void ring_new_epoch(struct ring *r);
/* Is id the current epoch or one the ring still remembers? */
bool ring_epoch_known(const struct ring *r, uint64_t id);

/* The writer's lease kept with the ring (so it survives a broker restart). */
void ring_set_lease(struct ring *r, const uint8_t lease[RING_LEASE_SIZE]);
void ring_clear_lease(struct ring *r);
/* true with the lease in ret when one is set. */
bool ring_get_lease(const struct ring *r, uint8_t ret[RING_LEASE_SIZE]);
