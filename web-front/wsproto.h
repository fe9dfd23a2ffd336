/* SPDX-License-Identifier: MIT */
/*
 * The ttyhub.v1 browser wire (pure, no I/O): every WebSocket message is one
 * type byte and a payload, integers big-endian, JSON payloads UTF-8 objects.
 *
 *   page -> webd: HELLO json {console, mode, replay?, resume?: {epoch, offset},
 *                 cols, rows}, INPUT bytes, RESIZE u16 cols u16 rows,
 *                 CONTROL json {op, lines?}, ACK u64 offset
 *   webd -> page: OUTPUT u64 start u64 end bytes, STATUS / NOTICE / DETACHED /
 *                 ERROR json
 *
 * wsproto_decode() checks a page's message completely (it is fuzzed): what
 * it returns is safe to hand to the front library as it is.  The encoders
 * build the server's messages.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* The largest message either side sends (wslay closes with 1009 past it). */
#define WSPROTO_MSG_MAX (64 * 1024)
/* OUTPUT: type byte + start + end. */
#define WSPROTO_OUTPUT_HEADER 17
#define WSPROTO_CONSOLE_MAX 512
/* A terminal larger than this is a mistake (or an attack on the guest's tty). */
#define WSPROTO_DIM_MAX 4096

enum wsproto_type {
	WSPROTO_HELLO = 0x01,
	WSPROTO_INPUT = 0x02,
	WSPROTO_RESIZE = 0x03,
	WSPROTO_CONTROL = 0x04,
	WSPROTO_ACK = 0x05,
	WSPROTO_OUTPUT = 0x81,
	WSPROTO_STATUS = 0x82,
	WSPROTO_NOTICE = 0x83,
	WSPROTO_DETACHED = 0x84,
	WSPROTO_ERROR = 0x85,
};

enum wsproto_op {
	WSPROTO_OP_TAKE,
	WSPROTO_OP_FORCE,
	WSPROTO_OP_RELEASE,
	WSPROTO_OP_BREAK,
	WSPROTO_OP_REPLAY,
	WSPROTO_OP_DETACH,
};

struct wsproto_hello {
	char console[WSPROTO_CONSOLE_MAX];
	enum attach_mode mode;
	long replay;      /* PROTO_REPLAY_DEFAULT when absent */
	bool has_resume;
	uint64_t epoch, offset;
	unsigned cols, rows; /* 0: not given */
};

/* A decoded page message; data points into the message passed to wsproto_decode(). */
struct wsproto_msg {
	enum wsproto_type type;
	struct wsproto_hello hello;   /* HELLO */
	const uint8_t *data;          /* INPUT */
	size_t len;
	unsigned cols, rows;          /* RESIZE */
	enum wsproto_op op;           /* CONTROL */
	long lines;                   /* CONTROL replay: PROTO_REPLAY_DEFAULT when absent */
	uint64_t ack;                 /* ACK */
};

/*
 * Decode one page -> webd message.  0 with *ret, or -EBADMSG with the reason
 * in err (a sentence for an ERROR message): an unknown or server type, a bad
 * length, a JSON payload that is not an object or has members of the wrong
 * kind or range.
 */
int wsproto_decode(const uint8_t *msg, size_t len, struct wsproto_msg *ret, char *err,
		   size_t errsz);

/* OUTPUT's first WSPROTO_OUTPUT_HEADER bytes, the console bytes follow. */
void wsproto_output_header(uint8_t hdr[WSPROTO_OUTPUT_HEADER], uint64_t start, uint64_t end);

/*
 * A json message (STATUS, NOTICE, DETACHED, ERROR): type byte + compact JSON
 * in a new buffer (*ret, the caller frees), length in *ret_len.  -ENOMEM,
 * -EMSGSIZE past WSPROTO_MSG_MAX, -EINVAL for a non-json type.
 */
int wsproto_encode_json(enum wsproto_type type, const json_t *obj, uint8_t **ret,
			size_t *ret_len);
