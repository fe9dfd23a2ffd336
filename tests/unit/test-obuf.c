/* SPDX-License-Identifier: MIT */
/*
 * Bounded output queue: the bound holds, FIFO order survives compaction,
 * flushing to a socket that stops reading returns 0 instead of blocking,
 * and a vanished peer gives -EPIPE without SIGPIPE.
 */
#include <fcntl.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "obuf.h"

static void test_bound(void **state)
{
	struct obuf b;

	assert_int_equal(obuf_init(&b, 10), 0);
	assert_int_equal(obuf_append(&b, "0123456789", 10), 0);
	assert_int_equal(obuf_append(&b, "x", 1), -ENOBUFS);
	assert_int_equal(obuf_len(&b), 10);
	obuf_consume(&b, 3);
	assert_int_equal(obuf_room(&b), 3);
	assert_int_equal(obuf_append(&b, "abcd", 4), -ENOBUFS); /* all or nothing */
	assert_int_equal(obuf_append(&b, "abc", 3), 0);
	assert_memory_equal(obuf_data(&b), "3456789abc", 10);
	obuf_done(&b);
}

static void test_fifo_through_compaction(void **state)
{
	struct obuf b;
	uint8_t expect = 0, next = 0;

	assert_int_equal(obuf_init(&b, 100), 0);
	srand(7);
	for (int round = 0; round < 10000; round++) {
		size_t add = (size_t)rand() % 40, take = (size_t)rand() % 40;
		uint8_t tmp[40];
		uint8_t *span;

		if (add > obuf_room(&b))
			add = obuf_room(&b);
		if (rand() % 2) {
			for (size_t i = 0; i < add; i++)
				tmp[i] = next++;
			assert_int_equal(obuf_append(&b, tmp, add), 0);
		} else {
			size_t n = obuf_tail_span(&b, add, &span);

			/* Room for add means a span of add: the queue compacts for it. */
			assert_true(n >= add);
			for (size_t i = 0; i < add; i++)
				span[i] = next++;
			obuf_commit(&b, add);
		}
		if (take > obuf_len(&b))
			take = obuf_len(&b);
		for (size_t i = 0; i < take; i++)
			assert_int_equal(obuf_data(&b)[i], (uint8_t)(expect + i));
		obuf_consume(&b, take);
		expect += (uint8_t)take;
	}
	obuf_done(&b);
}

static void test_flush_nonblocking_and_epipe(void **state)
{
	struct obuf b;
	int sv[2];
	uint8_t chunk[65536];
	ssize_t n, total = 0;

	signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	assert_int_equal(obuf_init(&b, sizeof(chunk)), 0);
	memset(chunk, 'p', sizeof(chunk));
	/* The peer never reads: flushing eventually returns 0, never blocks. */
	for (int i = 0; i < 1000; i++) {
		if (obuf_len(&b) == 0)
			assert_int_equal(obuf_append(&b, chunk, sizeof(chunk)), 0);
		n = obuf_flush(&b, sv[0]);
		assert_true(n >= 0);
		total += n;
		if (n == 0)
			break;
	}
	assert_true(obuf_len(&b) > 0);
	assert_true(total > 0);
	close(sv[1]);
	assert_int_equal(obuf_flush(&b, sv[0]), -EPIPE);
	close(sv[0]);
	obuf_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_fifo_through_compaction),
		cmocka_unit_test(test_flush_nonblocking_and_epipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
