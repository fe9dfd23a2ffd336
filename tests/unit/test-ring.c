/* SPDX-License-Identifier: MIT */
/*
 * Ring buffer: wrap, overwrite, cursors that fall behind, two-span peeks,
 * line search for replay; plus a randomized comparison against a plain
 * "everything ever written" reference.  The memfd: sealed, adopted by a
 * second mapping with everything in its header, and refused when the
 * header is corrupt.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ring.h"

static size_t peek_copy(const struct ring *r, uint64_t pos, size_t max, uint8_t *out)
{
	struct iovec iov[2];
	size_t n = ring_peek(r, pos, max, iov);

	assert_int_equal(iov[0].iov_len + iov[1].iov_len, n);
	memcpy(out, iov[0].iov_base, iov[0].iov_len);
	memcpy(out + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	return n;
}

static void test_capacity_rounding(void **state)
{
	struct ring r;

	assert_int_equal(ring_init(&r, 1), 0);
	assert_int_equal(r.cap, 4096);
	ring_done(&r);
	assert_int_equal(ring_init(&r, 5000), 0);
	assert_int_equal(r.cap, 8192);
	ring_done(&r);
	assert_int_equal(ring_init(&r, 0), -EINVAL);
}

static void test_write_and_peek(void **state)
{
	struct ring r;
	uint8_t out[16];

	assert_int_equal(ring_init(&r, 4096), 0);
	assert_int_equal(ring_tail(&r), 0);
	ring_write(&r, "hello", 5);
	assert_int_equal(ring_head(&r), 5);
	assert_int_equal(ring_tail(&r), 0);
	assert_int_equal(peek_copy(&r, 0, sizeof(out), out), 5);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(peek_copy(&r, 2, 2, out), 2);
	assert_memory_equal(out, "ll", 2);
	assert_int_equal(peek_copy(&r, 5, sizeof(out), out), 0);
	/* Positions past head are clamped to head. */
	assert_int_equal(peek_copy(&r, 99, sizeof(out), out), 0);
	ring_done(&r);
}

static void test_wrap_gives_two_spans(void **state)
{
	struct ring r;
	uint8_t *fill = malloc(4090), out[32];
	struct iovec iov[2];

	assert_int_equal(ring_init(&r, 4096), 0);
	memset(fill, 'x', 4090);
	ring_write(&r, fill, 4090);
	ring_write(&r, "0123456789", 10); /* 6 before the end, 4 after */
	assert_int_equal(ring_head(&r), 4100);
	assert_int_equal(ring_tail(&r), 4);
	assert_int_equal(ring_peek(&r, 4090, 100, iov), 10);
	assert_int_equal(iov[0].iov_len, 6);
	assert_int_equal(iov[1].iov_len, 4);
	assert_int_equal(peek_copy(&r, 4090, 100, out), 10);
	assert_memory_equal(out, "0123456789", 10);
	free(fill);
	ring_done(&r);
}

static void test_overwrite_and_lagging_cursor(void **state)
{
	struct ring r;
	uint8_t buf[3000], out[4096];
	uint64_t cursor = 0;

	assert_int_equal(ring_init(&r, 4096), 0);
	for (int i = 0; i < 10; i++) {
		memset(buf, 'a' + i, sizeof(buf));
		ring_write(&r, buf, sizeof(buf));
	}
	assert_int_equal(ring_head(&r), 30000);
	assert_int_equal(ring_tail(&r), 30000 - 4096);
	/* A reader still at 0 has lost everything before the tail. */
	assert_true(cursor < ring_tail(&r));
	assert_int_equal(ring_tail(&r) - cursor, 30000 - 4096);
	/* Peeking at a lost position gives the oldest byte still held. */
	assert_int_equal(peek_copy(&r, cursor, sizeof(out), out), 4096);
	assert_int_equal(out[0], 'a' + 8);
	assert_int_equal(out[4095], 'a' + 9);
	ring_done(&r);
}

static void test_write_larger_than_capacity(void **state)
{
	struct ring r;
	uint8_t *big = malloc(10000), out[4096];

	for (int i = 0; i < 10000; i++)
		big[i] = (uint8_t)(i % 251);
	assert_int_equal(ring_init(&r, 4096), 0);
	ring_write(&r, "zz", 2);
	ring_write(&r, big, 10000);
	assert_int_equal(ring_head(&r), 10002);
	assert_int_equal(peek_copy(&r, ring_tail(&r), sizeof(out), out), 4096);
	assert_memory_equal(out, big + 10000 - 4096, 4096);
	free(big);
	ring_done(&r);
}

static void test_write_span_commit(void **state)
{
	struct ring r;
	uint8_t *p, out[8];
	size_t n;

	assert_int_equal(ring_init(&r, 4096), 0);
	n = ring_write_span(&r, &p);
	assert_int_equal(n, 4096);
	memcpy(p, "abc", 3);
	ring_commit(&r, 3);
	assert_int_equal(ring_write_span(&r, &p), 4093);
	assert_int_equal(peek_copy(&r, 0, 8, out), 3);
	assert_memory_equal(out, "abc", 3);
	ring_done(&r);
}

static uint64_t lines_back(const char *text, unsigned n)
{
	struct ring r;
	uint64_t pos;

	assert_int_equal(ring_init(&r, 4096), 0);
	ring_write(&r, text, strlen(text));
	pos = ring_lines_back(&r, n);
	ring_done(&r);
	return pos;
}

static void test_lines_back(void **state)
{
	assert_int_equal(lines_back("a\nb\nc\n", 1), 4);     /* "c\n" */
	assert_int_equal(lines_back("a\nb\nc\n", 2), 2);     /* "b\nc\n" */
	assert_int_equal(lines_back("a\nb\nc\n", 3), 0);
	assert_int_equal(lines_back("a\nb\nc\n", 10), 0);    /* fewer lines: everything */
	assert_int_equal(lines_back("a\nb\n# ", 1), 4);      /* the prompt is the last line */
	assert_int_equal(lines_back("a\nb\n# ", 2), 2);
	assert_int_equal(lines_back("a\nb\n", 0), 4);        /* 0 lines: nothing */
	assert_int_equal(lines_back("", 5), 0);
	assert_int_equal(lines_back("\n\n\n", 2), 1);
}

static void test_lines_back_across_wrap_and_tail(void **state)
{
	struct ring r;
	char line[100];
	uint8_t out[4096];
	size_t n;

	assert_int_equal(ring_init(&r, 4096), 0);
	for (int i = 0; i < 500; i++) {
		snprintf(line, sizeof(line), "line %04d\n", i); /* 10 bytes */
		ring_write(&r, line, strlen(line));
	}
	n = peek_copy(&r, ring_lines_back(&r, 3), sizeof(out), out);
	assert_int_equal(n, 30);
	assert_memory_equal(out, "line 0497\nline 0498\nline 0499\n", 30);
	/* Asking for more lines than held stops at the tail. */
	assert_int_equal(ring_lines_back(&r, 100000), ring_tail(&r));
	ring_done(&r);
}

/* Randomized: the ring always equals the last cap bytes of everything written. */
static void test_against_reference(void **state)
{
	const size_t total = 1 << 20;
	uint8_t *ref = malloc(total), *out = malloc(8192);
	struct ring r;
	size_t written = 0;

	srand(1234);
	assert_int_equal(ring_init(&r, 8192), 0);
	while (written < total - 20000) {
		size_t len = (size_t)rand() % 20000;

		for (size_t i = 0; i < len; i++)
			ref[written + i] = (uint8_t)rand();
		if (rand() % 2)
			ring_write(&r, ref + written, len);
		else {
			size_t done = 0;

			while (done < len) {
				uint8_t *p;
				size_t span = ring_write_span(&r, &p), k = len - done;

				if (k > span)
					k = span;
				memcpy(p, ref + written + done, k);
				ring_commit(&r, k);
				done += k;
			}
		}
		written += len;
		assert_int_equal(ring_head(&r), written);
		for (int k = 0; k < 4; k++) {
			uint64_t pos = ring_tail(&r) + (uint64_t)rand() % (written - ring_tail(&r) + 1);
			size_t max = (size_t)rand() % 9000;
			size_t n = peek_copy(&r, pos, max, out);
			size_t expect = written - pos < max ? written - pos : max;

			assert_int_equal(n, expect);
			assert_memory_equal(out, ref + pos, n);
		}
	}
	ring_done(&r);
	free(ref);
	free(out);
}

/* The ring is a sealed memfd; a second ring adopting a dup of it sees the same state. */
static void test_memfd_adopt(void **state)
{
	uint8_t lease[RING_LEASE_SIZE] = { 1, 2, 3 }, got[RING_LEASE_SIZE];
	struct ring r, a;
	const char *why = NULL;
	uint8_t out[16];
	uint64_t e0, e1;
	int fd, seals;

	assert_int_equal(ring_init(&r, 4096), 0);
	fd = ring_fd(&r);
	assert_true(fd >= 0);
	seals = fcntl(fd, F_GET_SEALS);
	assert_true((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
		    (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
	assert_int_equal(ftruncate(fd, 0), -1);
	ring_write(&r, "old line\n", 9);
	e0 = ring_epoch(&r);
	ring_new_epoch(&r);
	e1 = ring_epoch(&r);
	assert_true(e1 != e0 && e1 != 0);
	ring_write(&r, "new", 3);
	ring_set_logged(&r, 9);
	ring_set_lease(&r, lease);
	ring_set_identity(&r, "8d6f0a1e-0000-4000-8000-000000000001", "serial0", "vm:serial0",
			  "/run/vm.sock");

	assert_int_equal(ring_adopt(&a, dup(fd), &why), 0);
	assert_int_equal(a.cap, 4096);
	assert_int_equal(ring_head(&a), 12);
	assert_int_equal(ring_logged(&a), 9);
	assert_int_equal(ring_epoch(&a), e1);
	assert_true(ring_epoch_known(&a, e0));
	assert_true(ring_get_lease(&a, got));
	assert_memory_equal(got, lease, RING_LEASE_SIZE);
	assert_string_equal(a.hdr->name, "vm:serial0");
	assert_string_equal(a.hdr->path, "/run/vm.sock");
	assert_int_equal(peek_copy(&a, 0, sizeof(out), out), 12);
	assert_memory_equal(out, "old line\nnew", 12);
	/* Shared: a write through one is in the other. */
	ring_write(&a, "!", 1);
	assert_int_equal(ring_head(&r), 13);
	ring_done(&a);
	ring_done(&r);
	assert_int_equal(r.fd, -EBADF);
}

/* A plain file or an unsealed memfd is no ring. */
static void test_adopt_refuses_unsealed(void **state)
{
	struct ring r, a;
	const char *why = NULL;
	int fd = memfd_create("test", MFD_CLOEXEC);

	assert_int_equal(ring_init(&r, 4096), 0);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, RING_HEADER_SIZE + 4096), 0);
	assert_int_equal(pwrite(fd, r.hdr, RING_HEADER_SIZE, 0), RING_HEADER_SIZE);
	assert_int_equal(ring_adopt(&a, fd, &why), -EPERM);
	assert_non_null(why);
	close(fd);
	ring_done(&r);
}

static struct ring_header valid_header(void)
{
	struct ring_header h = {
		.version = RING_VERSION,
		.header_size = RING_HEADER_SIZE,
		.capacity = 8192,
		.head = 20000,
		.logged = 19000,
		.epochs = { { 7, 15000 }, { 6, 100 }, { 5, 0 } },
	};

	memcpy(h.magic, RING_MAGIC, sizeof(h.magic));
	return h;
}

static int check(const struct ring_header *h, uint64_t file_size)
{
	const char *why = NULL;
	int r = ring_header_check(h, sizeof(*h), file_size, &why);

	assert_true(r == 0 || (r == -EBADMSG && why));
	return r;
}

static void test_header_check(void **state)
{
	const uint64_t size = RING_HEADER_SIZE + 8192;
	struct ring_header h = valid_header();

	assert_int_equal(check(&h, size), 0);
	assert_int_equal(ring_header_check(&h, sizeof(h) - 1, size, NULL), -EBADMSG);
	h.magic[0] = 'X';
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	h.version = 2;
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	h.header_size = 512;
	assert_int_equal(check(&h, size), -EBADMSG);
	/* Capacity: a power of two within bounds, and the file's size. */
	h = valid_header();
	assert_int_equal(check(&h, size + 1), -EBADMSG);
	assert_int_equal(check(&h, RING_HEADER_SIZE + 4096), -EBADMSG);
	h.capacity = 12288;
	assert_int_equal(check(&h, RING_HEADER_SIZE + 12288), -EBADMSG);
	h.capacity = 2048;
	assert_int_equal(check(&h, RING_HEADER_SIZE + 2048), -EBADMSG);
	h.capacity = 0;
	assert_int_equal(check(&h, RING_HEADER_SIZE), -EBADMSG);
	h.capacity = (uint64_t)1 << 41;
	assert_int_equal(check(&h, RING_HEADER_SIZE + h.capacity), -EBADMSG);
	/* head, logged and the epochs must agree. */
	h = valid_header();
	h.logged = h.head + 1;
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	h.epochs[0].start = h.head + 1;
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	h.epochs[1].start = 16000; /* older epoch starting after the newer one */
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	h.epochs[0].id = 0;
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	h.epochs[2].id = 0; /* a hole before a used slot */
	h.epochs[2].start = 0;
	h.epochs[3] = (struct ring_epoch){ 9, 0 };
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	h.epochs[5].start = 3; /* unused slot with a start */
	assert_int_equal(check(&h, size), -EBADMSG);
	/* Lease flag and strings. */
	h = valid_header();
	h.lease_set = 2;
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	memset(h.name, 'a', sizeof(h.name));
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	memset(h.uuid, 'a', sizeof(h.uuid));
	assert_int_equal(check(&h, size), -EBADMSG);
	h = valid_header();
	memset(h.path, 'a', sizeof(h.path));
	assert_int_equal(check(&h, size), -EBADMSG);
}

/* ring_adopt() runs the check on the file's own header. */
static void test_adopt_refuses_corrupt(void **state)
{
	struct ring r, a;
	const char *why = NULL;

	assert_int_equal(ring_init(&r, 4096), 0);
	ring_write(&r, "abc", 3);
	r.hdr->logged = 4;
	assert_int_equal(ring_adopt(&a, ring_fd(&r), &why), -EBADMSG);
	assert_string_equal(why, "logged is past head");
	r.hdr->logged = 3;
	memcpy(r.hdr->magic, "XXXXXXXX", 8);
	assert_int_equal(ring_adopt(&a, ring_fd(&r), &why), -EBADMSG);
	assert_string_equal(why, "bad magic");
	ring_done(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capacity_rounding),
		cmocka_unit_test(test_write_and_peek),
		cmocka_unit_test(test_wrap_gives_two_spans),
		cmocka_unit_test(test_overwrite_and_lagging_cursor),
		cmocka_unit_test(test_write_larger_than_capacity),
		cmocka_unit_test(test_write_span_commit),
		cmocka_unit_test(test_lines_back),
		cmocka_unit_test(test_lines_back_across_wrap_and_tail),
		cmocka_unit_test(test_against_reference),
		cmocka_unit_test(test_memfd_adopt),
		cmocka_unit_test(test_adopt_refuses_unsealed),
		cmocka_unit_test(test_header_check),
		cmocka_unit_test(test_adopt_refuses_corrupt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
