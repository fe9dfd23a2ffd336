/* SPDX-License-Identifier: MIT */
/*
 * Broker protocol encoding and decoding helpers (see proto.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "util.h"

const char *const proto_error_codes[] = {
	PROTO_E_BAD_FRAME,     PROTO_E_BAD_REQUEST,      PROTO_E_DENIED, PROTO_E_UNKNOWN_CONSOLE,
	PROTO_E_UNSUPPORTED,   PROTO_E_NOT_ATTACHED,     PROTO_E_ALREADY_ATTACHED,
	PROTO_E_BUSY,          PROTO_E_READ_ONLY,        PROTO_E_NOT_AVAILABLE,
	PROTO_E_INTERNAL,      PROTO_E_REVOKED,          NULL,
};

static const char *const proto_msg_table[_PROTO_MSG_MAX] = {
	[PROTO_HELLO] = "hello",
	[PROTO_AUTHORIZE] = "authorize",
	[PROTO_AUTHORIZED] = "authorized",
	[PROTO_LIST] = "list",
	[PROTO_ATTACH] = "attach",
	[PROTO_ATTACHED] = "attached",
	[PROTO_TAKE] = "take",
	[PROTO_RELEASE] = "release",
	[PROTO_STATE] = "state",
	[PROTO_WHO] = "who",
	[PROTO_REPLAY] = "replay",
	[PROTO_BREAK] = "break",
	[PROTO_BREAK_SENT] = "break-sent",
	[PROTO_RESIZE] = "resize",
	[PROTO_DETACH] = "detach",
	[PROTO_DETACHED] = "detached",
	[PROTO_NOTICE] = "notice",
	[PROTO_ERROR] = "error",
	[PROTO_OUTPUT] = "output",
	[PROTO_WEB_LINK] = "web-link",
	[PROTO_REDEEM] = "redeem",
	[PROTO_REDEEMED] = "redeemed",
	[PROTO_PING] = "ping",
	[PROTO_PONG] = "pong",
	[PROTO_ACTION] = "action",
	[PROTO_ACTION_DONE] = "action-done",
};

static const char *const proto_action_table[_PROTO_ACTION_MAX] = {
	[PROTO_ACTION_SYSRQ] = "sysrq",
	[PROTO_ACTION_NMI] = "nmi",
	[PROTO_ACTION_RESET] = "reset",
	[PROTO_ACTION_POWERDOWN] = "powerdown",
};

static const char *const attach_mode_table[_ATTACH_MODE_MAX] = {
	[ATTACH_RO] = "ro",
	[ATTACH_RW] = "rw",
	[ATTACH_FORCE] = "force",
};

static const char *const detach_reason_table[_DETACH_REASON_MAX] = {
	[DETACH_REQUESTED] = "requested",
	[DETACH_CONSOLE_GONE] = "console-gone",
	[DETACH_SHUTDOWN] = "shutdown",
	[DETACH_REVOKED] = "revoked",
};

static const char *proto_table_to_string(const char *const *table, size_t n, int i)
{
	return i >= 0 && (size_t)i < n ? table[i] : NULL;
}

static int proto_table_from_string(const char *const *table, size_t n, const char *s)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i], s) == 0)
			return (int)i;
	return -EINVAL;
}

const char *proto_msg_to_string(enum proto_msg m)
{
	return proto_table_to_string(proto_msg_table, ELEMENTSOF(proto_msg_table), m);
}

enum proto_msg proto_msg_from_string(const char *s)
{
	return proto_table_from_string(proto_msg_table, ELEMENTSOF(proto_msg_table), s);
}

const char *attach_mode_to_string(enum attach_mode m)
{
	return proto_table_to_string(attach_mode_table, ELEMENTSOF(attach_mode_table), m);
}

enum attach_mode attach_mode_from_string(const char *s)
{
	return proto_table_from_string(attach_mode_table, ELEMENTSOF(attach_mode_table), s);
}

const char *proto_action_to_string(enum proto_action a)
{
	return proto_table_to_string(proto_action_table, ELEMENTSOF(proto_action_table), a);
}

enum proto_action proto_action_from_string(const char *s)
{
	return proto_table_from_string(proto_action_table, ELEMENTSOF(proto_action_table), s);
}

bool proto_sysrq_key_valid(const char *s)
{
	return s && s[0] && !s[1] && strchr(PROTO_SYSRQ_KEYS, s[0]);
}

const char *detach_reason_to_string(enum detach_reason r)
{
	return proto_table_to_string(detach_reason_table, ELEMENTSOF(detach_reason_table), r);
}

enum detach_reason detach_reason_from_string(const char *s)
{
	return proto_table_from_string(detach_reason_table, ELEMENTSOF(detach_reason_table), s);
}

int proto_parse_replay_str(const char *s, long *ret)
{
	long v = 0;
	size_t i;

	if (!s)
		return -EINVAL;
	if (strcmp(s, "all") == 0) {
		*ret = PROTO_REPLAY_ALL;
		return 0;
	}
	if (!s[0])
		return -EINVAL;
	/* Digits only: strtol() would take blanks and signs users never mean. */
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		/* Saturate instead of overflowing; any value past the maximum is -ERANGE. */
		if (v <= PROTO_REPLAY_MAX)
			v = v * 10 + (s[i] - '0');
	}
	if (v > PROTO_REPLAY_MAX)
		return -ERANGE;
	*ret = v;
	return 0;
}

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
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= PROTO_REPLAY_MAX) {
		*ret = (long)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v) && strcmp(json_string_value(v), "all") == 0) {
		*ret = PROTO_REPLAY_ALL;
		return 0;
	}
	return -EINVAL;
}

void proto_output_header(uint8_t *hdr, uint64_t start, uint64_t end, size_t len)
{
	frame_header(hdr, FRAME_OUTPUT, FRAME_OUTPUT_HEADER + len);
	for (int i = 0; i < 8; i++) {
		hdr[FRAME_HEADER + i] = (uint8_t)(start >> (56 - 8 * i));
		hdr[FRAME_HEADER + 8 + i] = (uint8_t)(end >> (56 - 8 * i));
	}
}

int proto_put_output(struct obuf *out, uint64_t start, uint64_t end, const void *data,
		     size_t len)
{
	uint8_t hdr[FRAME_HEADER + FRAME_OUTPUT_HEADER];

	if (end < start)
		return -EINVAL;
	if (len > FRAME_OUTPUT_MAX)
		return -EMSGSIZE;
	if (obuf_room(out) < sizeof(hdr) + len)
		return -ENOBUFS;
	proto_output_header(hdr, start, end, len);
	obuf_append(out, hdr, sizeof(hdr));
	if (len > 0) /* data may be NULL for an empty frame */
		obuf_append(out, data, len);
	return 0;
}

int proto_parse_output(const struct frame *f, uint64_t *ret_start, uint64_t *ret_end,
		       const uint8_t **ret_data, size_t *ret_len)
{
	uint64_t start = 0, end = 0;

	if (f->type != FRAME_OUTPUT || f->len < FRAME_OUTPUT_HEADER)
		return -EBADMSG;
	for (int i = 0; i < 8; i++) {
		start = start << 8 | f->payload[i];
		end = end << 8 | f->payload[8 + i];
	}
	if (end < start)
		return -EBADMSG;
	*ret_start = start;
	*ret_end = end;
	*ret_data = f->payload + FRAME_OUTPUT_HEADER;
	*ret_len = f->len - FRAME_OUTPUT_HEADER;
	return 0;
}

void proto_epoch_to_string(uint64_t epoch, char buf[PROTO_EPOCH_STRLEN + 1])
{
	snprintf(buf, PROTO_EPOCH_STRLEN + 1, "%016" PRIx64, epoch);
}

int proto_parse_epoch(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || strlen(s) != PROTO_EPOCH_STRLEN)
		return -EINVAL;
	for (size_t i = 0; i < PROTO_EPOCH_STRLEN; i++) {
		int d = unhexchar(s[i]);

		if (d < 0)
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	if (v == 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

int proto_parse_resume_str(const char *s, uint64_t *ret_epoch, uint64_t *ret_offset)
{
	char epoch[PROTO_EPOCH_STRLEN + 1];
	uint64_t e, off = 0;
	const char *p;

	if (!s || strlen(s) < PROTO_EPOCH_STRLEN + 2 || s[PROTO_EPOCH_STRLEN] != ':')
		return -EINVAL;
	memcpy(epoch, s, PROTO_EPOCH_STRLEN);
	epoch[PROTO_EPOCH_STRLEN] = '\0';
	if (proto_parse_epoch(epoch, &e) < 0)
		return -EINVAL;
	for (p = s + PROTO_EPOCH_STRLEN + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (off > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		off = off * 10 + (uint64_t)(*p - '0');
	}
	*ret_epoch = e;
	*ret_offset = off;
	return 0;
}

void proto_lease_to_string(const uint8_t lease[PROTO_LEASE_SIZE],
			   char buf[PROTO_LEASE_STRLEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < PROTO_LEASE_SIZE; i++) {
		buf[2 * i] = hex[lease[i] >> 4];
		buf[2 * i + 1] = hex[lease[i] & 0xf];
	}
	buf[PROTO_LEASE_STRLEN] = '\0';
}

int proto_parse_lease(const char *s, uint8_t ret[PROTO_LEASE_SIZE])
{
	uint8_t v[PROTO_LEASE_SIZE];

	if (!s || strlen(s) != PROTO_LEASE_STRLEN)
		return -EINVAL;
	for (size_t i = 0; i < PROTO_LEASE_SIZE; i++) {
		int hi = unhexchar(s[2 * i]), lo = unhexchar(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		v[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret, v, sizeof(v));
	return 0;
}

/*
 * The sequence at p (len > 0 bytes available): its length if well formed,
 * 0 if p[0] starts no valid sequence (or the next byte breaks it), or
 * -(bytes seen) when what is there is a valid prefix cut by the end.
 */
static int utf8_seq(const uint8_t *p, size_t len)
{
	uint8_t b = p[0], lo = 0x80, hi = 0xbf;
	int need;

	if (b == 0)
		return 0; /* a NUL would reach the front as \u0000, which jansson refuses */
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		need = 1;
	else if (b >= 0xe0 && b <= 0xef) {
		need = 2;
		if (b == 0xe0)
			lo = 0xa0; /* no overlongs */
		else if (b == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (b >= 0xf0 && b <= 0xf4) {
		need = 3;
		if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f; /* nothing past U+10FFFF */
	} else
		return 0;
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= len)
			return -i;
		if (p[i] < lo || p[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

size_t proto_utf8_repair(const uint8_t *in, size_t len, char *out)
{
	size_t i = 0, o = 0;

	while (i < len) {
		int n = utf8_seq(in + i, len - i);

		if (n > 0) {
			memcpy(out + o, in + i, (size_t)n);
			o += (size_t)n;
			i += (size_t)n;
			continue;
		}
		memcpy(out + o, "\xef\xbf\xbd", 3);
		o += 3;
		i++;
	}
	return o;
}

size_t proto_utf8_cut(const uint8_t *in, size_t len)
{
	/* A sequence is at most 4 bytes: only the last 3 can start a cut one. */
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		int n = utf8_seq(in + len - back, back);

		if (n < 0)
			return back < len ? len - back : len;
		if (in[len - back] < 0x80 || in[len - back] >= 0xc0)
			break; /* a lead byte (or ASCII) that is not cut: stop looking */
	}
	return len;
}
