/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for what ttyhubd reads back from systemd's fd store
 * after a restart: a ring's header page (ring_header_check(), ring.h) and
 * the stored fds' names (fdstore_parse_name() and the key codec,
 * fdstore.h).  Both come from a file or a name another process (an older
 * ttyhubd, or anything with access to the store) left behind.
 *
 * Byte 0 picks the target:
 *   even: a header.  Bytes 1..8 are the file size (big endian; or, when
 *         byte 1 is 0xff, RING_HEADER_SIZE + the header's own capacity, so
 *         the checks past the size are reached), the rest is the page
 *         (zero-padded to a struct ring_header).  An accepted header must
 *         satisfy every invariant ring_adopt() relies on: a power-of-two
 *         capacity in bounds that fills the file, logged <= head, epochs
 *         newest first, none past head, strings terminated.
 *   odd:  a name (the rest, cut at the first NUL).  If it parses as ours,
 *         its key must be valid, decode, and encode back to the very same
 *         key (one spelling per name); encoding any name gives a valid key
 *         that decodes to it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fdstore.h"
#include "fuzz-util.h"
#include "ring.h"

static void fuzz_header(const uint8_t *data, size_t size)
{
	struct ring_header h;
	uint64_t file_size = 0;
	const char *why = NULL;
	size_t n;

	for (size_t i = 0; i < 8; i++)
		file_size = file_size << 8 | (i < size ? data[i] : 0);
	n = size > 8 ? size - 8 : 0;
	memset(&h, 0, sizeof(h));
	memcpy(&h, data + (size > 8 ? 8 : size), n < sizeof(h) ? n : sizeof(h));
	if (size > 0 && data[0] == 0xff)
		file_size = RING_HEADER_SIZE + h.capacity;
	if (ring_header_check(&h, sizeof(h), file_size, &why) < 0) {
		if (!why)
			abort();
		return;
	}
	if (memcmp(h.magic, RING_MAGIC, 8) != 0 || h.version != RING_VERSION ||
	    h.capacity < RING_MIN_CAP || h.capacity > RING_MAX_CAP ||
	    (h.capacity & (h.capacity - 1)) || file_size != RING_HEADER_SIZE + h.capacity ||
	    h.logged > h.head || h.epochs[0].id == 0 || h.lease_set > 1)
		abort();
	for (size_t i = 0; i < RING_EPOCHS; i++) {
		if (h.epochs[i].start > h.head)
			abort();
		if (i > 0 && h.epochs[i].id && (!h.epochs[i - 1].id ||
						h.epochs[i].start > h.epochs[i - 1].start))
			abort();
	}
	if (!memchr(h.uuid, 0, sizeof(h.uuid)) || !memchr(h.alias, 0, sizeof(h.alias)) ||
	    !memchr(h.name, 0, sizeof(h.name)) || !memchr(h.path, 0, sizeof(h.path)))
		abort();
	/* A shorter page is refused. */
	if (ring_header_check(&h, sizeof(h) - 1, file_size, NULL) != -EBADMSG)
		abort();
}

static void fuzz_name(const uint8_t *data, size_t size)
{
	char name[600], key[FDSTORE_KEY_MAX + 1], dec[FDSTORE_KEY_MAX + 1], full[300];
	enum fdstore_kind kind;
	const char *k = NULL;
	size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
	int r;

	memcpy(name, data, n);
	name[n] = '\0';
	kind = fdstore_parse_name(name, &k);
	if (kind != FDSTORE_OTHER) {
		if (!k || !fdstore_key_valid(k, strlen(k)) || strlen(name) > FDSTORE_NAME_MAX)
			abort();
		r = fdstore_key_decode(k, dec, sizeof(dec));
		if (r < 0 || (size_t)r != strlen(dec))
			abort();
		if (fdstore_key(NULL, NULL, dec, key, sizeof(key)) < 0 || strcmp(key, k) != 0)
			abort();
		if (fdstore_name(kind, k, full, sizeof(full)) < 0 || strcmp(full, name) != 0)
			abort();
	}
	/* Any string: encoded, a valid key of ours that decodes to it (or too long). */
	r = fdstore_key(NULL, NULL, name, key, sizeof(key));
	if (r == -ENAMETOOLONG || (r == -EINVAL && name[0] == '\0'))
		return;
	if (r < 0 || !fdstore_key_valid(key, (size_t)r) || strchr(key, ':'))
		abort();
	if (fdstore_key_decode(key, dec, sizeof(dec)) < 0 || strcmp(dec, name) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_header(data + 1, size - 1);
	else
		fuzz_name(data + 1, size - 1);
	return 0;
}
