/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for qmp-parse: the QMP byte stream a (possibly
 * compromised) QEMU writes to its monitor socket.
 *
 * Input layout:
 *   byte 0      splitter limit: bit 7 set = the default (QMP_MSG_MAX),
 *               else (b & 0x7f) * 4 + 1 bytes, so long lines are reached
 *   byte 1      bits 0-2: number of chunk sizes (1-8); bits 3-7: the id
 *               used for the encoded command
 *   next N      chunk sizes for the chunked feed (0 means 4096), cycled
 *   the rest    the stream
 *
 * Model: a reference splitter written here from the header's contract
 * (cut at '\n', drop one '\r' before it, skip empty lines, -EMSGSIZE for a
 * line over the limit) walks the stream; the real splitter is run twice,
 * fed all at once and fed in the chunks above, and each must return the
 * same lines, the same error and the same pending byte count as the
 * reference (so whole and chunked feeding agree).  After every call the
 * splitter must respect its cap (len <= cap <= max + 2).  Each line from the
 * chunked run is classified with qmp_msg_parse() and its fields checked;
 * a message that parses must survive json_dumps() and parse again to an
 * equal message.  Finally qmp_encode_command() encodes the first line as a
 * command name (arguments: the first message that parsed) and the output
 * is parsed back.  Violations abort().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "qmp-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_QMP_MAX_INPUT (64 * 1024)
#define FUZZ_QMP_MAX_CHUNKS 8
#define FUZZ_QMP_NAME_MAX 128
#define FUZZ_QMP_ERRSZ 160

struct fuzz_input {
	const char *stream;
	size_t len;
	size_t max; /* the splitter limit actually in force (never 0) */
	size_t max_arg; /* what qmp_splitter_init() is given (0 = default) */
	size_t chunks[FUZZ_QMP_MAX_CHUNKS];
	size_t n_chunks;
	uint64_t id;
};

/* Reference splitter: a cursor over the whole stream. */
struct ref_cursor {
	const struct fuzz_input *in;
	size_t pos;
	int error;
};

/* 1 with a line, 0 at the end (pending bytes in *ret_pending), or -EMSGSIZE. */
static int ref_next(struct ref_cursor *c, const char **ret, size_t *ret_len,
		    size_t *ret_pending)
{
	const struct fuzz_input *in = c->in;

	for (;;) {
		const char *start = in->stream + c->pos, *nl;
		size_t rest = in->len - c->pos, llen;

		if (c->error)
			return c->error;
		nl = memchr(start, '\n', rest);
		if (!nl) {
			if (rest >= in->max + 2) {
				c->error = -EMSGSIZE;
				continue;
			}
			*ret_pending = rest;
			return 0;
		}
		llen = (size_t)(nl - start);
		c->pos += llen + 1;
		if (llen > 0 && start[llen - 1] == '\r')
			llen--;
		if (llen > in->max) {
			c->error = -EMSGSIZE;
			continue;
		}
		if (llen == 0)
			continue;
		*ret = start;
		*ret_len = llen;
		return 1;
	}
}

static void check_splitter(const struct qmp_splitter *s)
{
	if (s->len > s->cap || s->cap > s->max + 2 || s->start > s->len)
		abort();
	if (qmp_splitter_pending(s) != s->len - s->start)
		abort();
	if (s->error != 0 && s->error != -EMSGSIZE && s->error != -ENOMEM)
		abort();
	if ((s->cap == 0) != (s->buf == NULL))
		abort();
}

static bool is_printable_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* Classify one line and check what came back; keeps the first good message in *args. */
static void check_message(const char *line, size_t len, json_t **args)
{
	static const char *const keys[] = { "QMP", "return", "error", "event" };
	char err[FUZZ_QMP_ERRSZ] = "";
	struct qmp_msg m, m2;
	json_t *member;
	uint64_t id;
	char *dump;
	int r, found = 0;

	r = qmp_msg_parse(line, len, &m, err, sizeof(err));
	if (r < 0) {
		if (r != -EBADMSG && r != -EPROTO)
			abort();
		if (!err[0] || !memchr(err, '\0', sizeof(err)))
			abort();
		return;
	}
	if (r != 0 || !json_is_object(m.root))
		abort();
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_get(m.root, keys[i]))
			found++;
	if (found != 1)
		abort();
	if (strcmp(qmp_msg_type_to_string(m.type), "unknown") == 0)
		abort();

	switch (m.type) {
	case QMP_MSG_GREETING:
		member = json_object_get(m.root, "QMP");
		if (!json_is_object(member) || m.id)
			abort();
		if (m.greeting.major < 0 || m.greeting.minor < 0 || m.greeting.micro < 0)
			abort();
		if (m.greeting.capabilities &&
		    (!json_is_array(m.greeting.capabilities) ||
		     m.greeting.capabilities != json_object_get(member, "capabilities")))
			abort();
		break;
	case QMP_MSG_RETURN:
		if (!m.ret || m.ret != json_object_get(m.root, "return"))
			abort();
		if (m.id != json_object_get(m.root, "id"))
			abort();
		break;
	case QMP_MSG_ERROR:
		member = json_object_get(m.root, "error");
		if (!m.error.class || !m.error.desc || !json_is_object(member))
			abort();
		if (strcmp(m.error.class, json_string_value(json_object_get(member, "class"))) ||
		    strcmp(m.error.desc, json_string_value(json_object_get(member, "desc"))))
			abort();
		if (m.id != json_object_get(m.root, "id"))
			abort();
		break;
	case QMP_MSG_EVENT:
		if (!m.event.name || m.id)
			abort();
		if (strcmp(m.event.name, json_string_value(json_object_get(m.root, "event"))))
			abort();
		if (m.event.data && (!json_is_object(m.event.data) ||
				     m.event.data != json_object_get(m.root, "data")))
			abort();
		break;
	default:
		abort();
	}

	r = qmp_msg_id(&m, &id);
	if (r == -ENOENT) {
		if (m.id)
			abort();
	} else if (r == 0) {
		if (!m.id || id > INT64_MAX)
			abort();
		if (json_is_integer(m.id) && (uint64_t)json_integer_value(m.id) != id)
			abort();
	} else if (r != -EINVAL || !m.id) {
		abort();
	}

	/* Re-encoding the message must give back an equal message. */
	dump = json_dumps(m.root, JSON_COMPACT);
	if (!dump)
		abort();
	if (memchr(dump, '\n', strlen(dump)))
		abort();
	r = qmp_msg_parse(dump, strlen(dump), &m2, err, sizeof(err));
	if (r != 0 || m2.type != m.type || !json_equal(m.root, m2.root))
		abort();
	qmp_msg_done(&m2);
	free(dump);

	if (!*args)
		*args = json_incref(m.root);
	qmp_msg_done(&m);
	if (m.root || m.id)
		abort();
}

typedef void (*line_fn)(void *userdata, const char *line, size_t len);

/* A splitter run: the reference cursor it is checked against, and what to do with each line. */
struct compare {
	struct ref_cursor ref;
	line_fn fn;
	void *userdata;
};

/* Check one splitter line against the reference, then hand it to fn. */
static void compare_line(struct compare *c, const char *line, size_t len)
{
	const char *want;
	size_t want_len, pending;

	if (len == 0 || len > c->ref.in->max || line[len] != '\0' || memchr(line, '\n', len))
		abort();
	if (ref_next(&c->ref, &want, &want_len, &pending) != 1)
		abort();
	if (want_len != len || memcmp(want, line, len) != 0)
		abort();
	if (c->fn)
		c->fn(c->userdata, line, len);
}

/* Drain every complete line.  Returns the number of lines, or the sticky error. */
static int drain(struct qmp_splitter *s, struct compare *c)
{
	const char *line;
	size_t len;
	int r, n = 0;

	for (;;) {
		r = qmp_splitter_next(s, &line, &len);
		check_splitter(s);
		if (r < 0)
			return r;
		if (r == 0)
			return n;
		if (r != 1)
			abort();
		compare_line(c, line, len);
		n++;
	}
}

/*
 * Feed the stream all at once (chunked false) or in the input's chunk
 * sizes, comparing every line, the final error and the pending bytes with
 * the reference splitter.
 */
static void split_stream(const struct fuzz_input *in, bool chunked, line_fn fn, void *userdata)
{
	struct compare c = { .ref = { .in = in }, .fn = fn, .userdata = userdata };
	struct qmp_splitter s;
	const char *want;
	size_t off = 0, k = 0, want_len, pending = 0;
	int r = 0, ref;

	qmp_splitter_init(&s, in->max_arg);
	check_splitter(&s);
	if (s.max != in->max || s.buf)
		abort();
	while (off < in->len && r >= 0) {
		size_t chunk = in->len - off;

		if (chunked && in->chunks[k % in->n_chunks] < chunk)
			chunk = in->chunks[k % in->n_chunks];
		k++;
		while (chunk > 0) {
			size_t n = qmp_splitter_feed(&s, in->stream + off, chunk);

			check_splitter(&s);
			if (n > chunk)
				abort();
			off += n;
			chunk -= n;
			r = drain(&s, &c);
			if (r < 0)
				break;
			/* Taking nothing and returning nothing would loop forever. */
			if (n == 0 && r == 0)
				abort();
		}
	}
	if (r >= 0)
		r = drain(&s, &c);

	ref = ref_next(&c.ref, &want, &want_len, &pending);
	if (ref == 1)
		abort(); /* the reference still has a line the splitter did not return */
	if (r < 0) {
		if (r != ref)
			abort();
		/* Sticky: nothing more is taken or returned. */
		if (qmp_splitter_feed(&s, "x\n", 2) != 0)
			abort();
		if (qmp_splitter_next(&s, &want, &want_len) != r)
			abort();
	} else {
		if (ref != 0 || off != in->len || qmp_splitter_pending(&s) != pending)
			abort();
	}
	qmp_splitter_done(&s);
	if (s.buf || s.cap || s.len)
		abort();
}

struct classify {
	json_t *args; /* the first message that parsed, owned */
	char name[FUZZ_QMP_NAME_MAX + 1];
	bool have_name;
};

static void classify_line(void *userdata, const char *line, size_t len)
{
	struct classify *cl = userdata;

	if (!cl->have_name) {
		/* strncpy semantics wanted: stop at a NUL byte inside the line. */
		size_t n = strnlen(line, len < FUZZ_QMP_NAME_MAX ? len : FUZZ_QMP_NAME_MAX);

		memcpy(cl->name, line, n);
		cl->name[n] = '\0';
		cl->have_name = true;
	}
	check_message(line, len, &cl->args);
}

/* Encode a command and parse it back. */
static void check_encode(const char *name, const json_t *args, uint64_t id)
{
	char err[FUZZ_QMP_ERRSZ];
	struct qmp_splitter s;
	struct qmp_msg m;
	json_error_t jerr;
	json_t *o, *v;
	const char *line;
	char *out = NULL;
	size_t out_len = 0, line_len;
	int r;

	r = qmp_encode_command(name, args, id, &out, &out_len);
	if (r < 0) {
		if (out || out_len)
			abort(); /* written only on success */
		if (r != -EINVAL && r != -ENOMEM && r != -EMSGSIZE)
			abort();
		if (name[0] && is_printable_ascii(name) && id <= INT64_MAX && r == -EINVAL)
			abort();
		return;
	}
	if (r != 0 || !name[0] || id > INT64_MAX || !out)
		abort();
	if (out_len != strlen(out) || out_len < 2 || out_len - 2 > QMP_MSG_MAX)
		abort();
	if (memcmp(out + out_len - 2, "\r\n", 2) != 0 ||
	    strncmp(out, "{\"execute\":", 11) != 0)
		abort();
	/* ASCII only; JSON escapes the C0 controls (but not DEL, which may stay). */
	for (size_t i = 0; i < out_len - 2; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7f)
			abort();

	o = json_loadb(out, out_len - 2, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o) || json_object_size(o) != (args ? 3u : 2u))
		abort();
	v = json_object_get(o, "execute");
	if (!json_is_string(v) || strcmp(json_string_value(v), name) != 0)
		abort();
	v = json_object_get(o, "id");
	if (!json_is_integer(v) || (uint64_t)json_integer_value(v) != id)
		abort();
	if (args && !json_equal(json_object_get(o, "arguments"), (json_t *)args))
		abort();
	json_decref(o);

	/* A command is none of the four server message shapes. */
	if (qmp_msg_parse(out, out_len - 2, &m, err, sizeof(err)) != -EPROTO)
		abort();

	/* It is exactly one line for a splitter. */
	qmp_splitter_init(&s, 0);
	if (qmp_splitter_feed(&s, out, out_len) != out_len)
		abort();
	if (qmp_splitter_next(&s, &line, &line_len) != 1 || line_len != out_len - 2 ||
	    memcmp(line, out, line_len) != 0)
		abort();
	if (qmp_splitter_next(&s, &line, &line_len) != 0 || qmp_splitter_pending(&s) != 0)
		abort();
	qmp_splitter_done(&s);
	free(out);
}

static uint64_t pick_id(unsigned sel)
{
	switch (sel % 6) {
	case 0:
		return sel;
	case 1:
		return 0;
	case 2:
		return INT64_MAX;
	case 3:
		return (uint64_t)INT64_MAX + 1;
	case 4:
		return UINT64_MAX;
	default:
		return (1ull << 53) | sel;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = {};
	struct classify cl = {};
	size_t hdr;

	if (size < 2 || size > FUZZ_QMP_MAX_INPUT)
		return 0;
	in.max_arg = data[0] & 0x80 ? 0 : (size_t)(data[0] & 0x7f) * 4 + 1;
	in.max = in.max_arg ? in.max_arg : QMP_MSG_MAX;
	in.n_chunks = (data[1] & 7) + 1;
	in.id = pick_id(data[1] >> 3);
	hdr = 2 + in.n_chunks;
	if (size < hdr)
		return 0;
	for (size_t i = 0; i < in.n_chunks; i++)
		in.chunks[i] = data[2 + i] ? data[2 + i] : 4096;
	in.stream = (const char *)data + hdr;
	in.len = size - hdr;

	split_stream(&in, false, NULL, NULL);
	split_stream(&in, true, classify_line, &cl);

	check_encode(cl.name, cl.args, in.id);
	json_decref(cl.args);
	return 0;
}
