/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the broker protocol: frame.h framing and the
 * control-frame helpers of proto.h, which see bytes from every client of
 * ttyhubd (and, in the fronts, from the broker).
 *
 * Model: the input is a byte stream read from a connection.  frame_parse()
 * is called repeatedly from the start, as the daemon does with its input
 * buffer, until it asks for more bytes or reports an error.  For every frame:
 *   - its length and payload lie inside the remaining buffer and agree with
 *     the header; every shorter prefix of it is "need more bytes";
 *   - frame_header() + payload, copied to a buffer of exactly that size,
 *     parses back to the same frame;
 *   - a control payload goes through proto_decode_control(); a decoded
 *     message is re-encoded with proto_put_control() and must decode to an
 *     equal message of the same type, and the fields a front or the daemon
 *     reads (replay/lines, an "attached" answer, a notice or error text)
 *     are run through the helpers that read them;
 *   - a data payload re-encoded with proto_put_data() gives the same bytes;
 *   - an output payload splits with proto_parse_output() exactly when it
 *     holds the two offsets in order, and proto_put_output() of the parts
 *     gives the same frame; its bytes go through the UTF-8 repair (whose
 *     output is well formed: repairing it again changes nothing) and cut
 *     of the `output` answer;
 *   - epoch and lease members (attached, state, output, attach's resume)
 *     that parse print back as the same digits in lowercase.
 * When the stream stops, the reason must match the bytes: an unknown type
 * byte gives -EBADMSG, a length over FRAME_MAX -EMSGSIZE, a short frame 0.
 * Violations abort().
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "frame.h"
#include "front.h"
#include "obuf.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A few maximal frames; every step below is linear in the frame size. */
#define FUZZ_PROTO_MAX_INPUT (4 * (FRAME_HEADER + FRAME_MAX))
#define FUZZ_PROTO_ERRSZ 128

static uint32_t read_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The text helpers must stay inside buf and NUL-terminate it. */
static void check_text(const char *buf, size_t size)
{
	if (!memchr(buf, '\0', size))
		abort();
}

/* A hex member that parsed prints back as its digits in lowercase. */
static void check_hex_back(const char *in, const char *printed)
{
	if (strlen(in) != strlen(printed))
		abort();
	for (size_t i = 0; in[i]; i++)
		if (tolower((unsigned char)in[i]) != printed[i])
			abort();
}

/* The epoch and lease parsers on whatever a message carries under those names. */
static void check_epoch_lease(json_t *obj)
{
	const char *e = json_string_value(json_object_get(obj, "epoch"));
	const char *l = json_string_value(json_object_get(obj, "lease"));

	if (e) {
		char buf[PROTO_EPOCH_STRLEN + 1];
		uint64_t v;

		if (proto_parse_epoch(e, &v) == 0) {
			if (v == 0)
				abort();
			proto_epoch_to_string(v, buf);
			check_hex_back(e, buf);
		}
	}
	if (l) {
		char buf[PROTO_LEASE_STRLEN + 1];
		uint8_t lease[PROTO_LEASE_SIZE];

		if (proto_parse_lease(l, lease) == 0) {
			proto_lease_to_string(lease, buf);
			check_hex_back(l, buf);
		}
	}
}

/* Run the helpers that read members of a decoded message. */
static void check_members(json_t *msg, const char *type)
{
	static const uint8_t prefixes[2][2] = { { 0x05, 'c' }, { '~', '.' } };
	const char *text;
	/* line holds any notice: 9 + 1023 escaped bytes + LF + NUL. */
	char small[24], line[1200];
	json_t *v;
	long n = PROTO_REPLAY_DEFAULT;
	int r;

	v = json_object_get(msg, strcmp(type, "replay") == 0 ? "lines" : "replay");
	if (v) {
		r = proto_parse_replay(v, &n);
		if (r == 0) {
			if (n < PROTO_REPLAY_ALL || n > PROTO_REPLAY_MAX)
				abort();
			if ((n == PROTO_REPLAY_ALL) != json_is_string(v))
				abort();
		} else if (r != -EINVAL || n != PROTO_REPLAY_DEFAULT) {
			abort();
		}
		/* The string parser (CLI, config, user names): "all" as the JSON one, digits in range. */
		if (json_is_string(v)) {
			long m = PROTO_REPLAY_DEFAULT;
			int rs = proto_parse_replay_str(json_string_value(v), &m);

			if ((r == 0 && (rs != 0 || m != n)) ||
			    (rs == 0 && (m < PROTO_REPLAY_ALL || m > PROTO_REPLAY_MAX)) ||
			    (rs < 0 && ((rs != -EINVAL && rs != -ERANGE) || m != PROTO_REPLAY_DEFAULT)))
				abort();
		}
	}

	check_epoch_lease(msg);
	if (json_is_object(json_object_get(msg, "resume")))
		check_epoch_lease(json_object_get(msg, "resume"));
	if (strcmp(type, "attached") == 0 || strcmp(type, "state") == 0) {
		for (size_t i = 0; i < 2; i++) {
			memset(small, 'x', sizeof(small));
			front_attached_text(msg, prefixes[i], small, sizeof(small));
			check_text(small, sizeof(small));
			front_attached_text(msg, prefixes[i], line, sizeof(line));
			check_text(line, sizeof(line));
			if (strncmp(line, "attached to ", 12) != 0)
				abort();
		}
	}

	text = json_string_value(json_object_get(msg, strcmp(type, "error") == 0 ? "message" :
						 "text"));
	if (text) {
		size_t len;

		memset(small, 'x', sizeof(small));
		len = front_line(text, false, true, small, sizeof(small));
		if (len >= sizeof(small) || strlen(small) != len)
			abort();
		len = front_line(text, true, false, line, sizeof(line));
		if (len >= sizeof(line) || strlen(line) != len)
			abort();
		/* Escaped: one line, no control bytes but the final LF. */
		if (strncmp(line, "[ttyhub] ", 9) != 0 || line[len - 1] != '\n')
			abort();
		for (size_t i = 0; i + 1 < len; i++)
			if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
				abort();
	}
}

static void check_control(const struct frame *f, struct obuf *out)
{
	char err[FUZZ_PROTO_ERRSZ];
	const char *type = NULL, *type2 = NULL;
	json_t *msg = NULL, *msg2 = NULL;
	struct frame g;
	int r, n;

	err[0] = '\0';
	r = proto_decode_control(f->payload, f->len, &msg, &type, err, sizeof(err));
	if (r < 0) {
		if (r != -EBADMSG || msg || type)
			abort();
		if (!err[0] || !memchr(err, '\0', sizeof(err)))
			abort();
		return;
	}
	if (r != 0 || !json_is_object(msg) || !type)
		abort();
	if (type != json_string_value(json_object_get(msg, "type")))
		abort();

	/* Encode it again: the same message comes back in one control frame. */
	obuf_consume(out, obuf_len(out));
	r = proto_put_control(out, msg);
	if (r == -EMSGSIZE) {
		/*
		 * Only possible when re-encoding grew it past FRAME_MAX: \u escapes
		 * (at most 6x) or a short real printed with 17 digits ("0.1": 19 bytes).
		 */
		if (f->len * 8 <= FRAME_MAX || obuf_len(out) != 0)
			abort();
	} else {
		if (r != 0)
			abort();
		n = frame_parse(obuf_data(out), obuf_len(out), &g);
		if (n <= 0 || (size_t)n != obuf_len(out) || g.type != FRAME_CONTROL)
			abort();
		for (size_t i = 0; i < g.len; i++)
			if (g.payload[i] < 0x20 || g.payload[i] > 0x7f)
				abort(); /* JSON_ENSURE_ASCII, compact: one printable line */
		r = proto_decode_control(g.payload, g.len, &msg2, &type2, err, sizeof(err));
		if (r != 0 || strcmp(type, type2) != 0 || !json_equal(msg, msg2))
			abort();
		json_decref(msg2);
	}

	check_members(msg, type);
	json_decref(msg);
}

static void check_data(const struct frame *f, struct obuf *out)
{
	struct frame g;
	int n;

	obuf_consume(out, obuf_len(out));
	if (proto_put_data(out, f->payload, f->len) != 0)
		abort();
	if (f->len == 0) {
		if (obuf_len(out) != 0)
			abort();
		return;
	}
	n = frame_parse(obuf_data(out), obuf_len(out), &g);
	if (n <= 0 || (size_t)n != obuf_len(out) || g.type != FRAME_DATA || g.len != f->len ||
	    memcmp(g.payload, f->payload, f->len) != 0)
		abort();
}

static uint64_t read_be64(const uint8_t *p)
{
	return (uint64_t)read_be32(p) << 32 | read_be32(p + 4);
}

/* UTF-8 repair and cut of the `output` answer on an output frame's bytes. */
static void check_utf8(const uint8_t *data, size_t len)
{
	char *a = malloc(3 * len + 1), *b = malloc(9 * len + 1);
	size_t na, nb, cut;

	if (!a || !b)
		abort();
	na = proto_utf8_repair(data, len, a);
	if (na < len || na > 3 * len)
		abort();
	/* Well formed now: a second repair keeps every byte. */
	nb = proto_utf8_repair((const uint8_t *)a, na, b);
	if (nb != na || memcmp(a, b, na) != 0)
		abort();
	cut = proto_utf8_cut(data, len);
	if (cut > len || (len > 0 && cut == 0) || cut + 3 < len)
		abort();
	free(a);
	free(b);
}

static void check_output(const struct frame *f, struct obuf *out)
{
	uint64_t start = 1, end = 1;
	const uint8_t *bytes = NULL;
	size_t len = 0;
	struct frame g;
	int r, n;

	r = proto_parse_output(f, &start, &end, &bytes, &len);
	if (f->len < FRAME_OUTPUT_HEADER ||
	    read_be64(f->payload + 8) < read_be64(f->payload)) {
		if (r != -EBADMSG)
			abort();
		return;
	}
	if (r != 0 || start != read_be64(f->payload) || end != read_be64(f->payload + 8) ||
	    bytes != f->payload + FRAME_OUTPUT_HEADER || len != f->len - FRAME_OUTPUT_HEADER)
		abort();
	obuf_consume(out, obuf_len(out));
	if (proto_put_output(out, start, end, bytes, len) != 0)
		abort();
	n = frame_parse(obuf_data(out), obuf_len(out), &g);
	if (n <= 0 || (size_t)n != obuf_len(out) || g.type != FRAME_OUTPUT || g.len != f->len ||
	    memcmp(g.payload, f->payload, f->len) != 0)
		abort();
	check_utf8(bytes, len);
}

/* frame_header() + payload in a buffer of exactly that size parses back the same. */
static void check_reencode(const uint8_t *raw, const struct frame *f, int n)
{
	uint8_t *buf = malloc(FRAME_HEADER + f->len);
	struct frame g;

	if (!buf)
		abort();
	frame_header(buf, f->type, f->len);
	/* The header is canonical: it is byte for byte the one in the stream. */
	if (memcmp(buf, raw, FRAME_HEADER) != 0)
		abort();
	if (f->len)
		memcpy(buf + FRAME_HEADER, f->payload, f->len);
	if (frame_parse(buf, FRAME_HEADER + f->len, &g) != n)
		abort();
	if (g.type != f->type || g.len != f->len || g.payload != buf + FRAME_HEADER ||
	    memcmp(g.payload, f->payload, f->len) != 0)
		abort();
	/* One byte short is "need more". */
	if (frame_parse(buf, FRAME_HEADER + f->len - 1, &g) != 0)
		abort();
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct obuf out;
	size_t off = 0;
	int n;

	if (size > FUZZ_PROTO_MAX_INPUT)
		return 0;
	if (obuf_init(&out, FRAME_HEADER + FRAME_MAX) < 0)
		abort();

	for (;;) {
		const uint8_t *p = data + off;
		size_t rest = size - off;
		struct frame f = { .type = 0 };

		n = frame_parse(p, rest, &f);
		if (n <= 0)
			break;
		if ((size_t)n > rest || (size_t)n != FRAME_HEADER + f.len || f.len > FRAME_MAX)
			abort();
		if (f.type != p[0] || (f.type != FRAME_CONTROL && f.type != FRAME_DATA &&
					f.type != FRAME_OUTPUT))
			abort();
		if (f.payload != p + FRAME_HEADER || f.len != read_be32(p + 1))
			abort();
		if (f.payload < data || f.payload + f.len > data + size)
			abort();

		check_reencode(p, &f, n);
		if (f.type == FRAME_CONTROL)
			check_control(&f, &out);
		else if (f.type == FRAME_OUTPUT)
			check_output(&f, &out);
		else
			check_data(&f, &out);
		off += (size_t)n;
	}

	/* Why the stream stopped must match its next bytes. */
	{
		const uint8_t *p = data + off;
		size_t rest = size - off;

		if (rest == 0) {
			if (n != 0)
				abort();
		} else if (p[0] != FRAME_CONTROL && p[0] != FRAME_DATA && p[0] != FRAME_OUTPUT) {
			if (n != -EBADMSG)
				abort();
		} else if (rest < FRAME_HEADER) {
			if (n != 0)
				abort();
		} else if (read_be32(p + 1) > FRAME_MAX) {
			if (n != -EMSGSIZE)
				abort();
		} else if (n != 0 || rest - FRAME_HEADER >= read_be32(p + 1)) {
			abort();
		}
	}

	obuf_done(&out);
	return 0;
}
