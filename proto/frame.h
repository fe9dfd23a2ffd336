/* SPDX-License-Identifier: MIT */
/*
 * Broker protocol framing (pure, no I/O): 1-byte type, 4-byte big-endian
 * payload length, payload.  Control frames carry one JSON object, data
 * frames the writer's keystrokes (client -> broker), output frames console
 * output with its ring offsets (broker -> client).  Payloads are at most
 * FRAME_MAX bytes.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 5
#define FRAME_MAX (64 * 1024)

enum frame_type {
	FRAME_CONTROL = 'C',
	FRAME_DATA = 'D',   /* client -> broker: the writer's keystrokes */
	FRAME_OUTPUT = 'O', /* broker -> client: console output with its offsets */
};

/*
 * An output frame's payload starts with two big-endian uint64_t: the
 * console offset of the first ring byte it stands for (start) and of the
 * byte after its last (end); the console bytes follow.  Live output has
 * exactly end - start bytes; replayed history is sanitised and may differ.
 * A front resumes at the last end it saw (docs/protocol.md).
 */
#define FRAME_OUTPUT_HEADER 16
#define FRAME_OUTPUT_MAX (FRAME_MAX - FRAME_OUTPUT_HEADER)

struct frame {
	uint8_t type;
	const uint8_t *payload; /* points into the parsed buffer */
	size_t len;
};

/*
 * Parse one frame from the start of buf.  Returns the number of bytes the
 * frame occupies (> 0) and fills *ret; 0 if buf holds only part of a frame;
 * -EBADMSG for an unknown type, -EMSGSIZE for a length over FRAME_MAX.
 * After an error the stream cannot be resynchronised.
 */
int frame_parse(const uint8_t *buf, size_t len, struct frame *ret);

/* Write the 5-byte header for a payload of len bytes (len <= FRAME_MAX). */
void frame_header(uint8_t hdr[FRAME_HEADER], uint8_t type, size_t len);
