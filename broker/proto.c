/* SPDX-License-Identifier: MIT */
/*
 * Broker protocol encoding and decoding helpers (see proto.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"

int proto_put_control(struct obuf *out, json_t *msg)
{
	uint8_t hdr[FRAME_HEADER];
	char *s;
	size_t len;
	int r = 0;

	s = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!s)
		return -ENOMEM;
	len = strlen(s);
	if (len > FRAME_MAX)
		r = -EMSGSIZE;
	else if (obuf_room(out) < FRAME_HEADER + len)
		r = -ENOBUFS;
	else {
		frame_header(hdr, FRAME_CONTROL, len);
		obuf_append(out, hdr, sizeof(hdr));
		obuf_append(out, s, len);
	}
	free(s);
	return r;
}

int proto_put_data(struct obuf *out, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t frames = (len + FRAME_MAX - 1) / FRAME_MAX;

	if (obuf_room(out) < len + frames * FRAME_HEADER)
		return -ENOBUFS;
	while (len > 0) {
		uint8_t hdr[FRAME_HEADER];
		size_t n = MIN(len, (size_t)FRAME_MAX);

		frame_header(hdr, FRAME_DATA, n);
		obuf_append(out, hdr, sizeof(hdr));
		obuf_append(out, p, n);
		p += n;
		len -= n;
	}
	return 0;
}

int proto_decode_control(const uint8_t *payload, size_t len, json_t **ret, const char **ret_type,
			 char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *msg, *type;

	msg = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!msg) {
		snprintf(err, errsz, "malformed JSON at byte %d: %s", jerr.position, jerr.text);
		return -EBADMSG;
	}
	if (!json_is_object(msg)) {
		json_decref(msg);
		snprintf(err, errsz, "control frame is not a JSON object");
		return -EBADMSG;
	}
	type = json_object_get(msg, "type");
	if (!json_is_string(type)) {
		json_decref(msg);
		snprintf(err, errsz, "control frame has no string member \"type\"");
		return -EBADMSG;
	}
	*ret = msg;
	*ret_type = json_string_value(type);
	return 0;
}

int proto_parse_replay(const json_t *v, long *ret)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 1000000) {
		*ret = (long)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && strcmp(json_string_value(v), "all") == 0) {
		*ret = -1;
		return 0;
	}
	return -EINVAL;
}

int frame_reader_init(struct frame_reader *r)
{
	*r = (struct frame_reader){};
	r->buf = malloc(FRAME_HEADER + FRAME_MAX);
	return r->buf ? 0 : -ENOMEM;
}

void frame_reader_done(struct frame_reader *r)
{
	free(r->buf);
	*r = (struct frame_reader){};
}

ssize_t frame_reader_fill(struct frame_reader *r, int fd)
{
	const size_t cap = FRAME_HEADER + FRAME_MAX;
	ssize_t n;

	/* Move the unparsed rest to the front so a whole frame always fits. */
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->len == cap)
		return 0;
	do
		n = read(fd, r->buf + r->len, cap - r->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : negative_errno();
	if (n == 0)
		r->eof = true;
	r->len += (size_t)n;
	return n;
}

int frame_reader_next(struct frame_reader *r, struct frame *ret)
{
	int n = frame_parse(r->buf + r->off, r->len - r->off, ret);

	if (n <= 0)
		return n;
	r->off += (size_t)n;
	return 1;
}
