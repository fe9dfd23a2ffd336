/* SPDX-License-Identifier: MIT */
/*
 * The ttyhub.v1 message codec (wsproto.h).  Every member a page sends is
 * checked for kind and range here, so the daemon acts on decoded values only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wsproto.h"

static bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static int bad(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* A JSON object payload; NULL (and err) otherwise. */
static json_t *decode_object(const uint8_t *p, size_t len, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *o;

	/* JSON_DISABLE_EOF_CHECK off: trailing garbage is an error; no NUL in strings. */
	o = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		bad(err, errsz, "the message is no JSON: %s", jerr.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		bad(err, errsz, "the message is not a JSON object");
		return NULL;
	}
	return o;
}

static int get_dim(json_t *o, const char *name, unsigned *ret, char *err, size_t errsz)
{
	json_t *v = json_object_get(o, name);

	*ret = 0;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > WSPROTO_DIM_MAX)
		return bad(err, errsz, "\"%s\" must be a number from 1 to %d", name,
			   WSPROTO_DIM_MAX);
	*ret = (unsigned)json_integer_value(v);
	return 0;
}

static int decode_hello(const uint8_t *p, size_t len, struct wsproto_hello *h, char *err,
			size_t errsz)
{
	_cleanup_(json_decrefp) json_t *o = decode_object(p, len, err, errsz);
	json_t *v, *e, *off;
	const char *s;
	int r;

	if (!o)
		return -EBADMSG;
	v = json_object_get(o, "console");
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) >= sizeof(h->console) ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, errsz, "\"console\" must be a console name");
	memcpy(h->console, json_string_value(v), json_string_length(v) + 1);
	v = json_object_get(o, "mode");
	s = v ? json_string_value(v) : "ro";
	if (!s || (!streq(s, "ro") && !streq(s, "rw") && !streq(s, "force")))
		return bad(err, errsz, "\"mode\" must be \"ro\", \"rw\" or \"force\"");
	h->mode = attach_mode_from_string(s);
	h->replay = PROTO_REPLAY_DEFAULT;
	v = json_object_get(o, "replay");
	if (v && proto_parse_replay(v, &h->replay) < 0)
		return bad(err, errsz, "\"replay\" must be a number of lines or \"all\"");
	v = json_object_get(o, "resume");
	if (v) {
		e = json_object_get(v, "epoch");
		off = json_object_get(v, "offset");
		if (!json_is_object(v) || !json_is_string(e) ||
		    proto_parse_epoch(json_string_value(e), &h->epoch) < 0 ||
		    !json_is_integer(off) || json_integer_value(off) < 0)
			return bad(err, errsz, "\"resume\" must be {\"epoch\": 16 hex digits, "
				   "\"offset\": a byte offset}");
		h->offset = (uint64_t)json_integer_value(off);
		h->has_resume = true;
	}
	r = get_dim(o, "cols", &h->cols, err, errsz);
	if (r < 0)
		return r;
	return get_dim(o, "rows", &h->rows, err, errsz);
}

static const char *const op_names[] = {
	[WSPROTO_OP_TAKE] = "take",       [WSPROTO_OP_FORCE] = "force",
	[WSPROTO_OP_RELEASE] = "release", [WSPROTO_OP_BREAK] = "break",
	[WSPROTO_OP_REPLAY] = "replay",   [WSPROTO_OP_DETACH] = "detach",
};

static int decode_control(const uint8_t *p, size_t len, struct wsproto_msg *m, char *err,
			  size_t errsz)
{
	_cleanup_(json_decrefp) json_t *o = decode_object(p, len, err, errsz);
	const char *s;
	json_t *v;

	if (!o)
		return -EBADMSG;
	s = json_string_value(json_object_get(o, "op"));
	if (!s)
		return bad(err, errsz, "\"op\" is missing");
	for (unsigned i = 0; i < ELEMENTSOF(op_names); i++)
		if (streq(s, op_names[i])) {
			m->op = i;
			m->lines = PROTO_REPLAY_DEFAULT;
			v = json_object_get(o, "lines");
			if (v && (m->op != WSPROTO_OP_REPLAY || !json_is_integer(v) ||
				  proto_parse_replay(v, &m->lines) < 0))
				return bad(err, errsz, "\"lines\" must be a number of lines "
					   "(replay only)");
			return 0;
		}
	return bad(err, errsz, "unknown control \"%.40s\"", s);
}

int wsproto_decode(const uint8_t *msg, size_t len, struct wsproto_msg *ret, char *err,
		   size_t errsz)
{
	const uint8_t *p = msg + 1;
	size_t n = len - 1;

	*ret = (struct wsproto_msg){ 0 };
	if (len == 0)
		return bad(err, errsz, "empty message");
	if (len > WSPROTO_MSG_MAX)
		return bad(err, errsz, "message too big");
	ret->type = msg[0];
	switch (msg[0]) {
	case WSPROTO_HELLO:
		return decode_hello(p, n, &ret->hello, err, errsz);
	case WSPROTO_INPUT:
		ret->data = p;
		ret->len = n;
		return 0;
	case WSPROTO_RESIZE:
		if (n != 4)
			return bad(err, errsz, "RESIZE carries 4 bytes");
		ret->cols = (unsigned)p[0] << 8 | p[1];
		ret->rows = (unsigned)p[2] << 8 | p[3];
		if (!ret->cols || !ret->rows || ret->cols > WSPROTO_DIM_MAX ||
		    ret->rows > WSPROTO_DIM_MAX)
			return bad(err, errsz, "RESIZE out of range");
		return 0;
	case WSPROTO_CONTROL:
		return decode_control(p, n, ret, err, errsz);
	case WSPROTO_ACK:
		if (n != 8)
			return bad(err, errsz, "ACK carries 8 bytes");
		ret->ack = get_be64(p);
		return 0;
	default:
		return bad(err, errsz, "unknown message type 0x%02x", msg[0]);
	}
}

void wsproto_output_header(uint8_t hdr[WSPROTO_OUTPUT_HEADER], uint64_t start, uint64_t end)
{
	hdr[0] = WSPROTO_OUTPUT;
	put_be64(hdr + 1, start);
	put_be64(hdr + 9, end);
}

int wsproto_encode_json(enum wsproto_type type, const json_t *obj, uint8_t **ret,
			size_t *ret_len)
{
	size_t n;
	uint8_t *b;

	if (type != WSPROTO_STATUS && type != WSPROTO_NOTICE && type != WSPROTO_DETACHED &&
	    type != WSPROTO_ERROR)
		return -EINVAL;
	n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	if (n == 0)
		return -EINVAL;
	if (n + 1 > WSPROTO_MSG_MAX)
		return -EMSGSIZE;
	b = malloc(n + 1);
	if (!b)
		return -ENOMEM;
	b[0] = type;
	if (json_dumpb(obj, (char *)b + 1, n, JSON_COMPACT) != n) {
		free(b);
		return -EINVAL;
	}
	*ret = b;
	*ret_len = n + 1;
	return 0;
}
