/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the ttyhub.v1 codec (web-front/wsproto.h): the
 * input is one WebSocket message from a page.  wsproto_decode() must
 * accept or refuse it without reading past it, and what it accepts must be
 * in range: a known page type, a NUL-terminated console name of the JSON
 * string's length, a mode of the three, dimensions 1..WSPROTO_DIM_MAX, INPUT
 * pointing into the message.  A refusal says why (a non-empty sentence).
 * The OUTPUT header encoder must give back the offsets it was given, and a
 * STATUS made of an accepted HELLO must encode within WSPROTO_MSG_MAX.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "wsproto.h"

/* Checked in every build type (assert() is compiled out with NDEBUG). */
#define REQUIRE(c)                  \
	do {                        \
		if (!(c))           \
			abort();    \
	} while (0)

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsproto_msg m;
	char err[256];
	uint8_t hdr[WSPROTO_OUTPUT_HEADER];
	int r;

	if (size > WSPROTO_MSG_MAX + 16)
		return 0;
	err[0] = '\0';
	r = wsproto_decode(data, size, &m, err, sizeof(err));
	if (r < 0) {
		REQUIRE(r == -EBADMSG);
		REQUIRE(err[0] != '\0' && memchr(err, '\0', sizeof(err)));
		return 0;
	}
	REQUIRE(size >= 1 && size <= WSPROTO_MSG_MAX && m.type == data[0]);
	switch (m.type) {
	case WSPROTO_HELLO: {
		size_t n = strnlen(m.hello.console, sizeof(m.hello.console));
		json_t *o;
		uint8_t *b = NULL;
		size_t blen;

		REQUIRE(n > 0 && n < sizeof(m.hello.console));
		REQUIRE(m.hello.mode == ATTACH_RO || m.hello.mode == ATTACH_RW ||
		       m.hello.mode == ATTACH_FORCE);
		REQUIRE(m.hello.cols <= WSPROTO_DIM_MAX && m.hello.rows <= WSPROTO_DIM_MAX);
		o = json_pack("{s:s, s:I}", "console", m.hello.console, "offset",
			      (json_int_t)(m.hello.offset & 0x7fffffffffff));
		REQUIRE(o);
		REQUIRE(wsproto_encode_json(WSPROTO_STATUS, o, &b, &blen) == 0);
		REQUIRE(blen > 1 && blen <= WSPROTO_MSG_MAX && b[0] == WSPROTO_STATUS);
		free(b);
		json_decref(o);
		break;
	}
	case WSPROTO_INPUT:
		REQUIRE(m.data == data + 1 && m.len == size - 1);
		break;
	case WSPROTO_RESIZE:
		REQUIRE(size == 5 && m.cols >= 1 && m.rows >= 1 && m.cols <= WSPROTO_DIM_MAX &&
		       m.rows <= WSPROTO_DIM_MAX);
		break;
	case WSPROTO_CONTROL:
		REQUIRE(m.op <= WSPROTO_OP_DETACH);
		break;
	case WSPROTO_ACK:
		REQUIRE(size == 9 && m.ack == be64(data + 1));
		wsproto_output_header(hdr, m.ack, ~m.ack);
		REQUIRE(hdr[0] == WSPROTO_OUTPUT && be64(hdr + 1) == m.ack &&
		       be64(hdr + 9) == ~m.ack);
		break;
	default:
		abort(); /* a server type was accepted */
	}
	return 0;
}
