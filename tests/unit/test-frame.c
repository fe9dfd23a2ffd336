/* SPDX-License-Identifier: MIT */
/*
 * Framing: whole, partial and back-to-back frames, oversize lengths,
 * garbage types, and the frame reader over a real socketpair.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "frame.h"
#include "frame-reader.h"
#include "proto.h"

static void test_header_roundtrip(void **state)
{
	uint8_t buf[FRAME_HEADER + 3];
	struct frame f;

	frame_header(buf, FRAME_DATA, 3);
	memcpy(buf + FRAME_HEADER, "abc", 3);
	assert_int_equal(frame_parse(buf, sizeof(buf), &f), FRAME_HEADER + 3);
	assert_int_equal(f.type, FRAME_DATA);
	assert_int_equal(f.len, 3);
	assert_memory_equal(f.payload, "abc", 3);

	frame_header(buf, FRAME_CONTROL, 0x01020304);
	assert_memory_equal(buf, "C\x01\x02\x03\x04", 5);
}

static void test_partial(void **state)
{
	uint8_t buf[FRAME_HEADER + 10];
	struct frame f;

	frame_header(buf, FRAME_CONTROL, 10);
	memset(buf + FRAME_HEADER, 'x', 10);
	/* Every proper prefix is "need more", never an error. */
	for (size_t n = 0; n < sizeof(buf); n++)
		assert_int_equal(frame_parse(buf, n, &f), 0);
	assert_int_equal(frame_parse(buf, sizeof(buf), &f), (int)sizeof(buf));
}

static void test_empty_payload(void **state)
{
	uint8_t buf[FRAME_HEADER];
	struct frame f;

	frame_header(buf, FRAME_DATA, 0);
	assert_int_equal(frame_parse(buf, sizeof(buf), &f), FRAME_HEADER);
	assert_int_equal(f.len, 0);
}

static void test_oversize(void **state)
{
	uint8_t buf[FRAME_HEADER];
	struct frame f;

	frame_header(buf, FRAME_DATA, FRAME_MAX);
	assert_int_equal(frame_parse(buf, sizeof(buf), &f), 0); /* max is fine, needs payload */
	frame_header(buf, FRAME_DATA, FRAME_MAX + 1);
	assert_int_equal(frame_parse(buf, sizeof(buf), &f), -EMSGSIZE);
	memcpy(buf, "D\xff\xff\xff\xff", 5);
	assert_int_equal(frame_parse(buf, sizeof(buf), &f), -EMSGSIZE);
}

static void test_garbage(void **state)
{
	struct frame f;

	/* A bad type is detected from the first byte, without waiting for more. */
	assert_int_equal(frame_parse((const uint8_t *)"G", 1, &f), -EBADMSG);
	assert_int_equal(frame_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &f), -EBADMSG);
	assert_int_equal(frame_parse((const uint8_t *)"\0\0\0\0\0", 5, &f), -EBADMSG);
	assert_int_equal(frame_parse((const uint8_t *)"{\"type\":", 8, &f), -EBADMSG);
}

static void test_back_to_back(void **state)
{
	uint8_t buf[64];
	size_t off = 0;
	struct frame f;
	int n;

	frame_header(buf, FRAME_CONTROL, 2);
	memcpy(buf + 5, "{}", 2);
	frame_header(buf + 7, FRAME_DATA, 1);
	buf[12] = 'z';
	n = frame_parse(buf, 13, &f);
	assert_int_equal(n, 7);
	assert_int_equal(f.type, FRAME_CONTROL);
	off += (size_t)n;
	n = frame_parse(buf + off, 13 - off, &f);
	assert_int_equal(n, 6);
	assert_int_equal(f.type, FRAME_DATA);
	assert_int_equal(f.payload[0], 'z');
}

/* The reader reassembles frames written one byte at a time over a socket. */
static void test_reader_over_socket(void **state)
{
	int sv[2];
	struct frame_reader r;
	struct obuf out;
	struct frame f;
	json_t *msg = json_pack("{s:s, s:i}", "type", "hello", "version", 1);
	uint8_t big[FRAME_MAX];
	size_t got_data = 0;
	int controls = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(obuf_init(&out, 4 * FRAME_MAX), 0);
	assert_int_equal(proto_put_control(&out, msg), 0);
	memset(big, 'q', sizeof(big));
	assert_int_equal(proto_put_data(&out, big, sizeof(big)), 0);
	assert_int_equal(proto_put_control(&out, msg), 0);
	assert_int_equal(frame_reader_init(&r), 0);

	while (obuf_len(&out) > 0) {
		size_t chunk = obuf_len(&out) > 1000 ? 1000 : 1;

		assert_int_equal(write(sv[0], obuf_data(&out), chunk), (ssize_t)chunk);
		obuf_consume(&out, chunk);
		assert_true(frame_reader_fill(&r, sv[1]) > 0);
		while (frame_reader_next(&r, &f) > 0) {
			if (f.type == FRAME_CONTROL)
				controls++;
			else
				got_data += f.len;
		}
	}
	assert_int_equal(controls, 2);
	assert_int_equal(got_data, FRAME_MAX);
	close(sv[0]);
	assert_int_equal(frame_reader_fill(&r, sv[1]), 0);
	assert_true(r.eof);
	close(sv[1]);
	frame_reader_done(&r);
	obuf_done(&out);
	json_decref(msg);
}

static void test_reader_rejects_garbage(void **state)
{
	int sv[2];
	struct frame_reader r;
	struct frame f;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(frame_reader_init(&r), 0);
	assert_int_equal(write(sv[0], "D\x00\x10\x00\x01", 5), 5); /* 1 MiB + 1 */
	assert_true(frame_reader_fill(&r, sv[1]) > 0);
	assert_int_equal(frame_reader_next(&r, &f), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
	frame_reader_done(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_empty_payload),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_back_to_back),
		cmocka_unit_test(test_reader_over_socket),
		cmocka_unit_test(test_reader_rejects_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
