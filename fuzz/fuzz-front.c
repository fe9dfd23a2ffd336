/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the front library (front.h): the decoder every front
 * runs over what ttyhubd sends, and which a gateway runs over bytes from
 * another host.
 *
 * Model: the input is the broker's byte stream.  It is written into a pipe
 * whose read end is a struct front's fd, twice: once in chunks as large as
 * the pipe takes, once in small chunks of varying size (seeded from the
 * input), with front_fill() and front_next_event() until no event is left
 * after each chunk, then to EOF.  The events of both runs must be exactly
 * what an independent walk over the frames (frame_parse() +
 * proto_decode_control()) predicts: one DATA event per output frame with
 * the same bytes and offsets (and the front's resume offset at its end),
 * -EBADMSG per malformed output frame, undecodable control frame or
 * unjoinable list, -EPROTO from a data frame on (D is client -> broker
 * only), no
 * event for unknown types or list pieces with "more", one LIST event per
 * complete list (with all consoles joined, at most LISTING_MAX_CONSOLES),
 * and, when the frame stream breaks, -EPROTO from then on and no event.
 * For every event:
 *   - its type and enums are in range and agree with its message; the
 *     borrowed strings are the message's members;
 *   - front_event_text(), front_format() (each at_bol/crlf) and, for an
 *     `attached`, front_attached_text() stay inside their buffer (canaries),
 *     NUL-terminate it and return its length; truncated output is a prefix
 *     of the untruncated one;
 *   - front_format()'s line is "[ttyhub] TEXT" with the line breaks of
 *     at_bol/crlf and TEXT escaped as front.h promises: valid UTF-8 with no
 *     C0, DEL or C1 control, so a hostile broker cannot reach the terminal.
 * The input (bounded) is also typed into front_keys() with two prefixes,
 * writable and not, with a small queue: it consumes what the escape filter
 * consumes, queues exactly the filter's output as data frames (or drops and
 * counts it), keeps the reserve free so the escape command's request fits,
 * and stops on the command byte (after sysrq's key: S then the key); after front_lost() it queues nothing and
 * holds the filter's output up to FRONT_HELD_MAX, counting the rest.
 * After each stream: the resume hint (whatever console name a hostile
 * `attached` gave) stays in its buffer, and front_lost() + front_reconnect()
 * queue exactly hello and, when an attach was recorded, one attach.
 * Violations abort().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "escape.h"
#include "frame.h"
#include "front.h"
#include "fuzz-util.h"
#include "listing.h"
#include "obuf.h"
#include "proto.h"
#include "util.h"

/* A few maximal frames; each step is linear in the input. */
#define FUZZ_FRONT_MAX_INPUT (4 * (FRAME_HEADER + FRAME_MAX))
/* Keystrokes typed: the start of the input. */
#define FUZZ_FRONT_MAX_KEYS 4096
/* front_format() holds at most a line break, "[ttyhub] ", 1023 escaped bytes, CRLF, NUL. */
#define FUZZ_FRONT_LINE (2 + 9 + 1023 + 2 + 1)
#define FUZZ_FRONT_CANARY 0xa5

/* What the stream must produce, one entry per event or error. */
enum expect_kind {
	EXPECT_EVENT,  /* 1 with type (and data/len, or list count) */
	EXPECT_BADMSG, /* -EBADMSG */
	EXPECT_PROTO,  /* -EPROTO, and nothing after it */
};

struct expect {
	enum expect_kind kind;
	enum front_event_type type;
	const uint8_t *data; /* DATA: the frame's console bytes in the input */
	size_t len;          /* DATA: their length; LIST: consoles joined */
	uint64_t start, end; /* DATA: the output frame's offsets */
};

static const uint8_t prefixes[2][2] = { { ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1 },
					{ '~', '.' } };

/* The event a front reports for a message type; false if it skips the type. */
static bool event_of(enum proto_msg m, enum front_event_type *ret)
{
	switch (m) {
	case PROTO_HELLO: *ret = FRONT_EV_HELLO; return true;
	case PROTO_AUTHORIZED: *ret = FRONT_EV_AUTHORIZED; return true;
	case PROTO_ATTACHED: *ret = FRONT_EV_ATTACHED; return true;
	case PROTO_STATE: *ret = FRONT_EV_STATE; return true;
	case PROTO_NOTICE: *ret = FRONT_EV_NOTICE; return true;
	case PROTO_WHO: *ret = FRONT_EV_WHO; return true;
	case PROTO_LIST: *ret = FRONT_EV_LIST; return true;
	case PROTO_BREAK_SENT: *ret = FRONT_EV_BREAK_SENT; return true;
	case PROTO_DETACHED: *ret = FRONT_EV_DETACHED; return true;
	case PROTO_ERROR: *ret = FRONT_EV_ERROR; return true;
	case PROTO_OUTPUT: *ret = FRONT_EV_OUTPUT; return true;
	default: return false;
	}
}

/*
 * The independent walk: the frames of the input, decoded, with list pieces
 * joined as docs/protocol.md describes (a piece whose consoles or errors is
 * no array, or one past LISTING_MAX_CONSOLES, drops the list so far).
 */
static size_t expect_stream(const uint8_t *data, size_t size, struct expect *ex, size_t max)
{
	size_t off = 0, n = 0, pending = 0;

	for (;;) {
		struct frame fr;
		struct expect e = { .kind = EXPECT_EVENT };
		int r = frame_parse(data + off, size - off, &fr);
		json_t *msg, *consoles, *errors;
		const char *type;
		char err[64];

		if (r == 0)
			return n;
		if (n == max)
			abort(); /* max is one per frame, and a frame has at least a header */
		if (r < 0) {
			ex[n++] = (struct expect){ .kind = EXPECT_PROTO };
			return n;
		}
		off += (size_t)r;
		if (fr.type == FRAME_DATA) {
			/* Keystroke frames never come from a broker: the stream is broken. */
			ex[n++] = (struct expect){ .kind = EXPECT_PROTO };
			return n;
		}
		if (fr.type == FRAME_OUTPUT) {
			/* Two big-endian offsets, end >= start, then the bytes. */
			if (fr.len < 16) {
				ex[n++] = (struct expect){ .kind = EXPECT_BADMSG };
				continue;
			}
			for (int i = 0; i < 8; i++) {
				e.start = e.start << 8 | fr.payload[i];
				e.end = e.end << 8 | fr.payload[8 + i];
			}
			if (e.end < e.start) {
				ex[n++] = (struct expect){ .kind = EXPECT_BADMSG };
				continue;
			}
			e.type = FRONT_EV_DATA;
			e.data = fr.payload + 16;
			e.len = fr.len - 16;
			ex[n++] = e;
			continue;
		}
		if (proto_decode_control(fr.payload, fr.len, &msg, &type, err, sizeof(err)) < 0) {
			ex[n++] = (struct expect){ .kind = EXPECT_BADMSG };
			continue;
		}
		if (!event_of(proto_msg_from_string(type), &e.type)) {
			json_decref(msg);
			continue;
		}
		if (e.type == FRONT_EV_LIST) {
			consoles = json_object_get(msg, "consoles");
			errors = json_object_get(msg, "errors");
			if (!json_is_array(consoles) || (errors && !json_is_array(errors)) ||
			    pending + json_array_size(consoles) > LISTING_MAX_CONSOLES) {
				pending = 0;
				ex[n++] = (struct expect){ .kind = EXPECT_BADMSG };
				json_decref(msg);
				continue;
			}
			pending += json_array_size(consoles);
			if (json_is_true(json_object_get(msg, "more"))) {
				json_decref(msg);
				continue;
			}
			e.len = pending;
			pending = 0;
		}
		json_decref(msg);
		ex[n++] = e;
	}
}

/* Canary bytes after the size the callee was given are untouched; buf holds a C string. */
static size_t check_buf(const char *buf, size_t size, size_t cap)
{
	const char *nul = memchr(buf, '\0', size);

	if (!nul)
		abort();
	for (size_t i = size; i < cap; i++)
		if ((uint8_t)buf[i] != FUZZ_FRONT_CANARY)
			abort();
	return (size_t)(nul - buf);
}

/* Valid UTF-8, no C0, DEL or C1 control: what log_sanitize() keeps. */
static void check_escaped(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n;
		uint32_t cp;

		if (s[i] < 0x80) {
			if (s[i] < 0x20 || s[i] == 0x7f)
				abort();
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 2, cp = s[i] & 0x1f;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			n = 3, cp = s[i] & 0x0f;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			n = 4, cp = s[i] & 0x07;
		else
			abort();
		if (len - i < n)
			abort();
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				abort();
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp <= 0x9f || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			abort();
		i += n;
	}
}

/* The text formatters on one event. */
static void check_text(const struct front *f, const struct front_event *e)
{
	static const size_t small[] = { 1, 2, 8, 24 };
	char text[1024 + 16], line[FUZZ_FRONT_LINE + 16], cut[32 + 16];
	size_t tlen, len, n;
	bool shows;

	memset(text, FUZZ_FRONT_CANARY, sizeof(text));
	if (front_event_text(f, e, text, 0) != 0 || (uint8_t)text[0] != FUZZ_FRONT_CANARY)
		abort();
	tlen = front_event_text(f, e, text, 1024);
	if (check_buf(text, 1024, sizeof(text)) != tlen)
		abort();
	/* Events that always have a sentence; the others none (a notice may be empty). */
	switch (e->type) {
	case FRONT_EV_ATTACHED:
	case FRONT_EV_BREAK_SENT:
	case FRONT_EV_DETACHED:
	case FRONT_EV_ERROR:
		if (tlen == 0)
			abort();
		break;
	case FRONT_EV_NOTICE:
		break;
	default:
		if (tlen != 0)
			abort();
	}
	shows = tlen > 0;
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
		memset(cut, FUZZ_FRONT_CANARY, sizeof(cut));
		n = front_event_text(f, e, cut, small[i]);
		if (check_buf(cut, small[i], sizeof(cut)) != n || memcmp(cut, text, n) != 0)
			abort();
	}

	if (e->type == FRONT_EV_ATTACHED) {
		memset(cut, FUZZ_FRONT_CANARY, sizeof(cut));
		front_attached_text(e->msg, f->esc.prefix, cut, 24);
		check_buf(cut, 24, sizeof(cut));
		if (strncmp(text, "attached to ", 12) != 0)
			abort();
	}

	for (int k = 0; k < 4; k++) {
		bool at_bol = k & 1, crlf = k & 2;
		const char *eol = crlf ? "\r\n" : "\n";
		size_t el = strlen(eol), head = (at_bol ? 0 : el) + 9;

		memset(line, FUZZ_FRONT_CANARY, sizeof(line));
		len = front_format(f, e, at_bol, crlf, line, FUZZ_FRONT_LINE);
		if (!shows) {
			/* No line (front.h promises no string then), and nothing past size. */
			for (size_t i = FUZZ_FRONT_LINE; i < sizeof(line); i++)
				if ((uint8_t)line[i] != FUZZ_FRONT_CANARY)
					abort();
			if (len != 0)
				abort();
			continue;
		}
		if (check_buf(line, FUZZ_FRONT_LINE, sizeof(line)) != len)
			abort();
		/* [eol] "[ttyhub] " TEXT eol, whole: the buffer is large enough. */
		if (len < head + el || (!at_bol && memcmp(line, eol, el) != 0) ||
		    memcmp(line + head - 9, "[ttyhub] ", 9) != 0 ||
		    memcmp(line + len - el, eol, el) != 0 || len - head - el > 1023)
			abort();
		check_escaped((const uint8_t *)line + head, len - head - el);
		for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
			memset(cut, FUZZ_FRONT_CANARY, sizeof(cut));
			n = front_format(f, e, at_bol, crlf, cut, small[i]);
			if (check_buf(cut, small[i], sizeof(cut)) != n || memcmp(cut, line, n) != 0)
				abort();
		}
	}
}

/* One event against its prediction. */
static void check_event(const struct front *f, const struct front_event *e,
			const struct expect *x)
{
	const char *mtype;
	enum front_event_type t;

	if (x->kind != EXPECT_EVENT || e->type != x->type)
		abort();
	if ((unsigned)e->access > ATTACH_RW)
		abort(); /* the broker's verdict is ro or rw */
	if (e->type == FRONT_EV_DATA) {
		if (e->msg || e->len != x->len || (e->len && memcmp(e->data, x->data, e->len) != 0))
			abort();
		/* The resume point is the end of the last output frame. */
		if (e->start != x->start || e->end != x->end || f->book.offset != e->end)
			abort();
		check_text(f, e);
		return;
	}
	if (!json_is_object(e->msg) || e->msg != f->msg)
		abort();
	mtype = json_string_value(json_object_get(e->msg, "type"));
	if (!event_of(proto_msg_from_string(mtype), &t) || t != e->type)
		abort();
	/* Borrowed strings are the message's own members. */
	if (e->console != json_string_value(json_object_get(e->msg, "console")))
		abort();
	if (e->writer != (json_is_string(json_object_get(e->msg, "role")) &&
			  strcmp(json_string_value(json_object_get(e->msg, "role")), "writer") == 0))
		abort();
	switch (e->type) {
	case FRONT_EV_DETACHED:
		if (e->reason != _DETACH_REASON_INVALID &&
		    ((int)e->reason < 0 || e->reason >= _DETACH_REASON_MAX))
			abort();
		if (e->reason != detach_reason_from_string(
					 json_string_value(json_object_get(e->msg, "reason"))))
			abort();
		if (front_detach_status(e->reason) != (e->reason == DETACH_REQUESTED ? 0 : 1))
			abort();
		if (e->text != json_string_value(json_object_get(e->msg, "text")))
			abort();
		break;
	case FRONT_EV_ERROR:
		if (e->reason != _DETACH_REASON_INVALID ||
		    e->code != json_string_value(json_object_get(e->msg, "code")) ||
		    e->text != json_string_value(json_object_get(e->msg, "message")))
			abort();
		break;
	case FRONT_EV_NOTICE:
		if (e->text != json_string_value(json_object_get(e->msg, "text")))
			abort();
		break;
	case FRONT_EV_ATTACHED:
		if (e->may_break != json_is_true(json_object_get(e->msg, "break")))
			abort();
		/* Never a reconnect here: nothing was lost. */
		if (e->reconnected || e->keys_sent || e->keys_dropped || !f->book.attached ||
		    f->book.writer != e->writer)
			abort();
		if (e->epoch && (!f->book.positioned || f->book.epoch != e->epoch ||
				 f->book.offset != e->end))
			abort();
		/* A lease is kept for a writer only, and only one that looks like a lease. */
		if (f->book.lease[0] && (!e->writer || strlen(f->book.lease) != PROTO_LEASE_STRLEN))
			abort();
		break;
	case FRONT_EV_OUTPUT: {
		json_t *c = json_object_get(e->msg, "contents");

		if ((const char *)e->data != json_string_value(c) || e->len != json_string_length(c))
			abort();
		break;
	}
	case FRONT_EV_LIST: {
		json_t *consoles = json_object_get(e->msg, "consoles");

		if (!json_is_array(consoles) || !json_is_array(json_object_get(e->msg, "errors")) ||
		    json_array_size(consoles) != x->len ||
		    json_array_size(consoles) > LISTING_MAX_CONSOLES)
			abort();
		break;
	}
	default:
		break;
	}
	if (e->type != FRONT_EV_DETACHED && e->reason != _DETACH_REASON_INVALID)
		abort();
	check_text(f, e);
}

/*
 * Drain the events buffered now; returns the next expectation's index.
 * *broken is set once -EPROTO came: a front closes such a connection, and
 * the harness stops writing to it.
 */
static size_t drain(struct front *f, const struct expect *ex, size_t nex, size_t i, bool *broken)
{
	for (;;) {
		struct front_event e;
		int r = front_next_event(f, &e);

		if (r == 0)
			return i;
		if (i == nex)
			abort(); /* more than the stream holds */
		switch (ex[i].kind) {
		case EXPECT_PROTO:
			if (r != -EPROTO || !memchr(f->err, '\0', sizeof(f->err)) || !f->err[0])
				abort();
			/* The stream stays broken: the same answer, never an event. */
			if (front_next_event(f, &e) != -EPROTO)
				abort();
			*broken = true;
			return i; /* i stays: later calls must say -EPROTO again */
		case EXPECT_BADMSG:
			if (r != -EBADMSG || !memchr(f->err, '\0', sizeof(f->err)) || !f->err[0])
				abort();
			break;
		case EXPECT_EVENT:
			if (r != 1)
				abort();
			check_event(f, &e, &ex[i]);
			break;
		}
		i++;
	}
}

/*
 * After a stream: the hint stays in its buffer whatever the broker named
 * the console, and a reconnect queues hello (+ the attach, none here).
 */
static void check_resume(struct front *f)
{
	static const size_t sizes[] = { 1, 7, 64, 4096 };
	char buf[4096 + 16];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int style = FRONT_HINT_CLI; style <= FRONT_HINT_SSH; style++) {
			size_t n;

			memset(buf, FUZZ_FRONT_CANARY, sizeof(buf));
			n = front_resume_hint(f, style, "h", 2222, buf, sizes[i]);
			if (check_buf(buf, sizes[i], sizeof(buf)) != n)
				abort();
			if (n > 0 && !f->book.positioned)
				abort();
		}
	}
	front_lost(f);
	if (f->link != FRONT_LOST || front_pending(f) != 0 || f->held_len != 0)
		abort();
	if (front_reconnect(f, -EBADF, "fuzz", NULL) < 0)
		abort();
	{
		struct frame fr;
		const uint8_t *q = obuf_data(&f->out);
		size_t len = front_pending(f), off = 0, n = 0;

		while (off < len) {
			int r = frame_parse(q + off, len - off, &fr);

			if (r <= 0 || fr.type != FRAME_CONTROL)
				abort();
			off += (size_t)r;
			n++;
		}
		if (n != (f->book.asked ? 2u : 1u))
			abort();
	}
}

/* Write the input into a pipe read by a front, chunk by chunk; every prediction must come. */
static void run_stream(const uint8_t *data, size_t size, const struct expect *ex, size_t nex,
		       const uint8_t prefix[2], uint32_t seed)
{
	struct front f;
	int p[2];
	size_t off = 0, i = 0;
	bool broken = false;

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		abort();
	if (front_init(&f, p[0], 4096, prefix) < 0)
		abort();
	while (off < size && !broken) {
		size_t chunk = size - off;
		ssize_t w;

		if (seed) {
			/* Mostly short chunks, so frames and headers are split anywhere. */
			uint32_t x = fuzz_next(&seed);

			chunk = MIN(chunk, (x & 7) ? 1 + (x >> 8) % 16 : 1 + (x >> 8) % 4096);
		}
		w = write(p[1], data + off, chunk);
		if (w < 0 && errno != EAGAIN)
			abort();
		if (w > 0)
			off += (size_t)w;
		/* A full pipe empties into the reader, and a full reader holds a frame. */
		if (front_fill(&f) < 0)
			abort();
		i = drain(&f, ex, nex, i, &broken);
	}
	close(p[1]);
	while (!broken && !front_eof(&f)) {
		if (front_fill(&f) < 0)
			abort();
		i = drain(&f, ex, nex, i, &broken);
	}
	/* Everything predicted came; a broken stream said so and still says -EPROTO. */
	if (broken != (i + 1 == nex && ex[i].kind == EXPECT_PROTO) || (!broken && i != nex))
		abort();
	if (broken) {
		struct front_event e;

		if (front_fill(&f) < 0 || front_next_event(&f, &e) != -EPROTO)
			abort();
	}
	check_resume(&f);
	front_done(&f);
	close(p[0]);
}

/* Keystrokes through front_keys(): the filter's output, framed, within the reserve. */
static void run_keys(const uint8_t *keys, size_t len, const uint8_t prefix[2], bool may_write,
		     size_t out_max, size_t reserve)
{
	struct front f;
	struct escape ref;
	size_t off = 0;
	uint8_t *want = malloc(len + 2), *got = malloc(len + 2);
	size_t nwant = 0, ngot = 0;

	if (!want || !got || front_init(&f, -EBADF, out_max, prefix) < 0)
		abort();
	escape_init(&ref, prefix[0], prefix[1]);
	while (off < len) {
		enum escape_cmd cmd, rcmd;
		size_t dropped, used, outlen, before = obuf_len(&f.out);

		used = front_keys(&f, keys + off, len - off, may_write, reserve, &dropped, &cmd);
		if (used > len - off || obuf_room(&f.out) < reserve)
			abort();
		if (used < len - off && cmd == ESCAPE_NONE &&
		    obuf_room(&f.out) > FRAME_HEADER + 2 + reserve)
			abort(); /* stopped early with room left */
		/* The same bytes through a plain filter: the same command and output. */
		if (escape_feed(&ref, keys + off, used, want + nwant, &outlen, &rcmd) != used ||
		    rcmd != cmd)
			abort();
		/* The command byte ends the feed; sysrq's key comes after its S. */
		if (cmd != ESCAPE_NONE &&
		    keys[off + used - (cmd == ESCAPE_SYSRQ ? 2 : 1)] != (uint8_t)cmd)
			abort();
		/* Writable: queued, none dropped.  Else: all dropped and counted, nothing queued. */
		if (may_write ? dropped != 0 : dropped != outlen || obuf_len(&f.out) != before)
			abort();
		if (may_write)
			nwant += outlen;
		if (cmd != ESCAPE_NONE) {
			/* The keys left the reserve free: the command's request fits behind them. */
			int r = front_escape_request(&f, cmd);
			/* Help, and a sysrq whose byte was no key, are the front's own to show. */
			bool local = cmd == ESCAPE_HELP || (cmd == ESCAPE_SYSRQ && !f.esc.arg);

			if (local ? r != -EOPNOTSUPP : r != 0)
				abort();
		}
		/* Unframe what was queued: the keys' data frames, then any request. */
		while (obuf_len(&f.out) > 0) {
			struct frame fr;
			int n = frame_parse(obuf_data(&f.out), obuf_len(&f.out), &fr);

			if (n <= 0 || (fr.type == FRAME_DATA ? fr.len == 0 || ngot + fr.len > len + 2
							     : cmd == ESCAPE_NONE))
				abort();
			if (fr.type == FRAME_DATA) {
				memcpy(got + ngot, fr.payload, fr.len);
				ngot += fr.len;
			}
			obuf_consume(&f.out, (size_t)n);
		}
		if (used == 0 && cmd == ESCAPE_NONE)
			abort(); /* an empty queue always takes keys */
		off += used;
	}
	if (ngot != nwant || memcmp(got, want, ngot) != 0)
		abort();
	front_done(&f);
	free(want);
	free(got);
}

/* Keystrokes while the broker is away: nothing queued, the filter's output held or counted. */
static void run_keys_held(const uint8_t *keys, size_t len, const uint8_t prefix[2])
{
	struct front f;
	struct escape ref;
	size_t off = 0, held = 0, over = 0;
	uint8_t *want = malloc(len + 2);

	if (!want || front_init(&f, -EBADF, 256, prefix) < 0)
		abort();
	escape_init(&ref, prefix[0], prefix[1]);
	front_lost(&f);
	while (off < len) {
		enum escape_cmd cmd, rcmd;
		size_t dropped, used, outlen, keep;

		used = front_keys(&f, keys + off, len - off, true, 0, &dropped, &cmd);
		if (used == 0 || used > len - off || front_pending(&f) != 0)
			abort();
		if (escape_feed(&ref, keys + off, used, want, &outlen, &rcmd) != used || rcmd != cmd)
			abort();
		if (used < len - off && cmd == ESCAPE_NONE)
			abort(); /* the hold never stops the feed */
		keep = MIN(outlen, FRONT_HELD_MAX - held);
		if (dropped != outlen - keep || memcmp(f.held + held, want, keep) != 0)
			abort();
		held += keep;
		over += outlen - keep;
		if (cmd != ESCAPE_NONE && cmd != ESCAPE_HELP &&
		    front_escape_request(&f, cmd) != -ENOTCONN)
			abort();
		off += used;
	}
	if (f.held_len != held || f.held_over != over || front_discard_held(&f) != held + over ||
	    f.held_len != 0)
		abort();
	front_done(&f);
	free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max = size / FRAME_HEADER + 1, nex;
	struct expect *ex;
	uint32_t seed = 0x9e3779b9u ^ (uint32_t)size;

	if (size > FUZZ_FRONT_MAX_INPUT)
		return 0;
	for (size_t i = 0; i < size && i < 16; i++)
		seed = seed * 31 + data[i];
	if (seed == 0)
		seed = 1;
	ex = malloc(max * sizeof(*ex));
	if (!ex)
		abort();
	nex = expect_stream(data, size, ex, max);
	run_stream(data, size, ex, nex, prefixes[0], 0);
	run_stream(data, size, ex, nex, prefixes[1], seed);
	free(ex);

	size = MIN(size, FUZZ_FRONT_MAX_KEYS);
	/* Room for one frame of 64 keys: chunks stop at the reserve often. */
	run_keys(data, size, prefixes[0], true, 256, 128);
	run_keys(data, size, prefixes[1], false, 256, 128);
	run_keys(data, size, prefixes[0], false, 8192, 256);
	run_keys_held(data, size, prefixes[1]);
	return 0;
}
