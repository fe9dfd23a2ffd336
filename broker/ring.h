/* SPDX-License-Identifier: MIT */
/*
 * Console history ring.  One per console, power-of-two capacity, written only
 * by the chardev drain.  Positions are absolute uint64_t byte counts since
 * the console was created, so readers keep a cursor that never wraps:
 * the ring holds [ring_tail(), ring_head()).  A reader whose cursor is below
 * ring_tail() has lost bytes and must skip ahead.
 *
 * Storage.  The ring lives in a sealed memfd (fixed size: F_SEAL_SHRINK,
 * F_SEAL_GROW, F_SEAL_SEAL, so a mapping can never SIGBUS) mapped
 * MAP_SHARED: one header page, then the cap data bytes.  Everything that
 * must survive a broker restart is in the header (struct ring_header):
 * head, the epochs, how far the console log got (logged), the writer's
 * lease and the console's identity.  ttyhubd hands the memfd to systemd's fd
 * store once (fdstore.h); since the mapping is shared, every later write is
 * already in the stored file.  After a restart ring_adopt() maps it again,
 * once ring_header_check() found the header sane.
 *
 * head is published with a release store after each read straight into the
 * ring (ring_commit), so a process killed at any instant leaves a header
 * whose head covers only bytes that are really there: at most the one read
 * in progress is lost.
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

#define RING_MAGIC "TTYHRING"
#define RING_VERSION 1
#define RING_HEADER_SIZE 4096
#define RING_MIN_CAP ((size_t)4096)
#define RING_MAX_CAP ((size_t)1 << 40)
#define RING_UUID_MAX 48
#define RING_ALIAS_MAX 128
#define RING_NAME_MAX 512
#define RING_PATH_MAX 1024

/*
 * The header page, in host byte order (the file never leaves the host).
 * Strings are NUL-terminated within their fields.
 */
struct ring_header {
	char magic[8];         /* RING_MAGIC, no NUL */
	uint32_t version;      /* RING_VERSION */
	uint32_t header_size;  /* RING_HEADER_SIZE */
	uint64_t capacity;     /* data bytes: a power of two, RING_MIN_CAP..RING_MAX_CAP */
	uint64_t head;         /* next byte's absolute position (release store) */
	uint64_t logged;       /* bytes before this are in the console log */
	struct ring_epoch epochs[RING_EPOCHS]; /* [0] current; used slots first */
	uint8_t lease[RING_LEASE_SIZE];
	uint32_t lease_set;    /* 0 or 1 */
	uint32_t reserved;     /* 0 */
	char uuid[RING_UUID_MAX];   /* the VM's UUID, or "" */
	char alias[RING_ALIAS_MAX]; /* the libvirt alias, or "" */
	char name[RING_NAME_MAX];   /* the console's name, for messages */
	char path[RING_PATH_MAX];   /* the chardev's path (a kept socket belongs to it) */
};

struct ring {
	uint8_t *buf;  /* the data bytes inside map; cap bytes */
	size_t cap;    /* power of two */
	struct ring_header *hdr; /* the header page of map */
	void *map;     /* owned mapping of the whole memfd */
	size_t map_size;
	int fd;        /* owned: the sealed memfd */
};

/* capacity is rounded up to a power of two (>= 4096). Returns -ENOMEM/-EINVAL/-errno. */
int ring_init(struct ring *r, size_t capacity);
/*
 * Map a stored ring: fd must be a memfd sealed against shrinking and growing
 * whose header passes ring_header_check().  Takes fd on success (closes
 * nothing on failure).  Returns 0, -EBADMSG (bad header: *why says what),
 * -EPERM (not sealed), other -errno.
 */
int ring_adopt(struct ring *r, int fd, const char **why);
void ring_done(struct ring *r);

/*
 * Pure check of a header page (size bytes at page, at least a struct
 * ring_header) of a file of file_size bytes.  Returns 0, or -EBADMSG with a
 * reason in *why (static text).
 */
int ring_header_check(const void *page, size_t size, uint64_t file_size, const char **why);

/* The memfd (owned by the ring; dup it to keep it elsewhere). */
static inline int ring_fd(const struct ring *r)
{
	return r->fd;
}

static inline uint64_t ring_head(const struct ring *r)
{
	return __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);
}

static inline uint64_t ring_tail(const struct ring *r)
{
	uint64_t head = ring_head(r);

	return head > r->cap ? head - r->cap : 0;
}

/* Bytes before this position are in the console log. */
uint64_t ring_logged(const struct ring *r);
void ring_set_logged(struct ring *r, uint64_t pos);

/* The console's name and chardev path as the header keeps them ("" if unknown). */
static inline const char *ring_stored_name(const struct ring *r)
{
	return r->hdr->name;
}

static inline const char *ring_stored_path(const struct ring *r)
{
	return r->hdr->path;
}

/* The identity kept in the header (strings are cut to their fields; NULL: ""). */
void ring_set_identity(struct ring *r, const char *uuid, const char *alias, const char *name,
		       const char *path);

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
