/* SPDX-License-Identifier: MIT */
/*
 * Broker protocol framing.  Pure functions over byte buffers: the daemon
 * and every front keep their own bounded input buffer and call
 * frame_parse() until it returns 0 (need more bytes).
 */
#include <errno.h>

#include "frame.h"

int frame_parse(const uint8_t *buf, size_t len, struct frame *ret)
{
	uint32_t plen;

	if (len < 1)
		return 0;
	if (buf[0] != FRAME_CONTROL && buf[0] != FRAME_DATA && buf[0] != FRAME_OUTPUT)
		return -EBADMSG;
	if (len < FRAME_HEADER)
		return 0;
	plen = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
	if (plen > FRAME_MAX)
		return -EMSGSIZE;
	if (len - FRAME_HEADER < plen)
		return 0;
	ret->type = buf[0];
	ret->payload = buf + FRAME_HEADER;
	ret->len = plen;
	return (int)(FRAME_HEADER + plen);
}

void frame_header(uint8_t hdr[FRAME_HEADER], uint8_t type, size_t len)
{
	hdr[0] = type;
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
}
