/* SPDX-License-Identifier: MIT */
/*
 * QMP wire format (pure): line splitting with CRLF and LF, messages split
 * across feeds and packed into one feed, the size limit, classification of
 * greetings, returns, errors and events, malformed and oddly shaped JSON,
 * ids, and the command encoder.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qmp-parse.h"

/* What QEMU 7.2.22 sent in the experiment (platform-facts B4). */
#define GREETING                                                                           \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "   \
	"\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}"

#define MAX_LINES 16

struct lines {
	int n;
	char *line[MAX_LINES];
	int error;
};

static void lines_free(struct lines *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->line[i]);
	*l = (struct lines){};
}

/* Feed text in chunks of chunk bytes, collecting every line (copied). */
static void split(struct qmp_splitter *s, const char *text, size_t len, size_t chunk,
		  struct lines *out)
{
	size_t off = 0;

	*out = (struct lines){};
	while (off < len && out->error == 0) {
		size_t n = len - off < chunk ? len - off : chunk;
		size_t took = qmp_splitter_feed(s, text + off, n);
		const char *line;
		size_t llen;
		int r;

		off += took;
		while ((r = qmp_splitter_next(s, &line, &llen)) > 0) {
			assert_true(out->n < MAX_LINES);
			assert_int_equal(strlen(line), llen); /* NUL-terminated in place */
			out->line[out->n++] = strndup(line, llen);
		}
		if (r < 0)
			out->error = r;
		else if (took == 0)
			fail_msg("splitter took nothing but reported no line and no error");
	}
}

static void test_split_crlf_lf(void **state)
{
	static const char text[] = "{\"a\": 1}\r\n{\"b\": 2}\n{\"c\": \"x\\r\\ny\"}\r\n";
	struct qmp_splitter s;
	struct lines l;

	qmp_splitter_init(&s, 0);
	split(&s, text, strlen(text), strlen(text), &l);
	assert_int_equal(l.error, 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.line[0], "{\"a\": 1}");
	assert_string_equal(l.line[1], "{\"b\": 2}");
	assert_string_equal(l.line[2], "{\"c\": \"x\\r\\ny\"}");
	assert_int_equal(qmp_splitter_pending(&s), 0);
	lines_free(&l);
	qmp_splitter_done(&s);
}

static void test_split_partial_and_empty(void **state)
{
	struct qmp_splitter s;
	const char *line;
	size_t len;

	qmp_splitter_init(&s, 0);
	assert_int_equal(qmp_splitter_next(&s, &line, &len), 0);
	assert_int_equal(qmp_splitter_feed(&s, "\r\n\n{\"a\"", 7), 7);
	/* Empty lines are skipped; an unfinished line is not a line. */
	assert_int_equal(qmp_splitter_next(&s, &line, &len), 0);
	assert_int_equal(qmp_splitter_pending(&s), 4);
	assert_int_equal(qmp_splitter_feed(&s, ": 1}\r", 5), 5);
	assert_int_equal(qmp_splitter_next(&s, &line, &len), 0);
	assert_int_equal(qmp_splitter_feed(&s, "\n{", 2), 2);
	assert_int_equal(qmp_splitter_next(&s, &line, &len), 1);
	assert_string_equal(line, "{\"a\": 1}");
	assert_int_equal(len, 8);
	assert_int_equal(qmp_splitter_next(&s, &line, &len), 0);
	assert_int_equal(qmp_splitter_pending(&s), 1);
	qmp_splitter_done(&s);
}

/* The same transcript gives the same lines whatever the chunking. */
static void test_split_every_chunk_size(void **state)
{
	static const char text[] =
		GREETING "\r\n"
		"{\"return\": {}, \"id\": 1}\r\n"
		"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n"
		"{\"return\": {\"running\": false, \"status\": \"prelaunch\"}, \"id\": 2}\r\n";
	size_t len = strlen(text);

	for (size_t chunk = 1; chunk <= len; chunk++) {
		struct qmp_splitter s;
		struct lines l;

		qmp_splitter_init(&s, 0);
		split(&s, text, len, chunk, &l);
		assert_int_equal(l.error, 0);
		assert_int_equal(l.n, 4);
		assert_string_equal(l.line[0], GREETING);
		assert_string_equal(l.line[1], "{\"return\": {}, \"id\": 1}");
		assert_string_equal(l.line[3],
				    "{\"return\": {\"running\": false, \"status\": \"prelaunch\"}, "
				    "\"id\": 2}");
		lines_free(&l);
		qmp_splitter_done(&s);
	}
}

static void test_split_limit_small(void **state)
{
	struct qmp_splitter s;
	struct lines l;

	/* Exactly max bytes is fine, with either terminator. */
	qmp_splitter_init(&s, 8);
	split(&s, "12345678\r\n12345678\n", 19, 3, &l);
	assert_int_equal(l.error, 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.line[1], "12345678");
	lines_free(&l);
	qmp_splitter_done(&s);

	/* max + 1 bytes before the newline: too long even when the newline arrives. */
	qmp_splitter_init(&s, 8);
	split(&s, "ab\n123456789\ncd\n", 16, 16, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.line[0], "ab");
	assert_int_equal(l.error, -EMSGSIZE);
	lines_free(&l);
	/* The error is sticky: the stream cannot be resynchronised. */
	assert_int_equal(qmp_splitter_feed(&s, "{}\n", 3), 0);
	{
		const char *line;
		size_t len;

		assert_int_equal(qmp_splitter_next(&s, &line, &len), -EMSGSIZE);
	}
	qmp_splitter_done(&s);

	/* No newline at all: reported once max + 2 bytes are held, not later. */
	qmp_splitter_init(&s, 8);
	split(&s, "1234567890123456789", 19, 1, &l);
	assert_int_equal(l.error, -EMSGSIZE);
	assert_int_equal(l.n, 0);
	assert_int_equal(qmp_splitter_pending(&s), 10);
	lines_free(&l);
	qmp_splitter_done(&s);
}

static void test_split_limit_default(void **state)
{
	size_t big = QMP_MSG_MAX + 16;
	char *text = malloc(big + 2);
	struct qmp_splitter s;
	struct lines l;

	assert_non_null(text);
	/* A string of QMP_MSG_MAX bytes in total, then CRLF: accepted. */
	memset(text, 'x', big);
	memcpy(text, "{\"return\": \"", 12);
	memcpy(text + QMP_MSG_MAX - 2, "\"}\r\n", 4);
	qmp_splitter_init(&s, 0);
	split(&s, text, QMP_MSG_MAX + 2, 65536, &l);
	assert_int_equal(l.error, 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(strlen(l.line[0]), QMP_MSG_MAX);
	lines_free(&l);
	qmp_splitter_done(&s);

	/* One byte more is an error. */
	memcpy(text + QMP_MSG_MAX - 2, "x\"}\r\n", 5);
	qmp_splitter_init(&s, 0);
	split(&s, text, QMP_MSG_MAX + 3, 65536, &l);
	assert_int_equal(l.error, -EMSGSIZE);
	assert_int_equal(l.n, 0);
	lines_free(&l);
	qmp_splitter_done(&s);

	/* A stream without a newline stops being buffered at the limit. */
	memset(text, 'y', big);
	qmp_splitter_init(&s, 0);
	split(&s, text, big, 4096, &l);
	assert_int_equal(l.error, -EMSGSIZE);
	assert_true(s.cap <= QMP_MSG_MAX + 2);
	lines_free(&l);
	qmp_splitter_done(&s);
	free(text);
}

static void parse_ok(const char *line, struct qmp_msg *m)
{
	char err[256] = "";
	int r = qmp_msg_parse(line, strlen(line), m, err, sizeof(err));

	if (r != 0)
		fail_msg("parse of %s failed (%d): %s", line, r, err);
}

static int parse_err(const char *line, size_t len, char *err, size_t errsz)
{
	struct qmp_msg m;
	int r = qmp_msg_parse(line, len, &m, err, errsz);

	if (r == 0)
		qmp_msg_done(&m);
	return r;
}

static int parse_str(const char *line, char *err, size_t errsz)
{
	return parse_err(line, strlen(line), err, errsz);
}

static void test_greeting(void **state)
{
	struct qmp_msg m;
	char err[256];

	parse_ok(GREETING, &m);
	assert_int_equal(m.type, QMP_MSG_GREETING);
	assert_int_equal(m.greeting.major, 7);
	assert_int_equal(m.greeting.minor, 2);
	assert_int_equal(m.greeting.micro, 22);
	assert_true(json_is_array(m.greeting.capabilities));
	assert_string_equal(json_string_value(json_array_get(m.greeting.capabilities, 0)), "oob");
	assert_null(m.id);
	qmp_msg_done(&m);

	parse_ok("{\"QMP\": {\"version\": {\"qemu\": {\"major\": 9, \"minor\": 0, \"micro\": 1}}}}",
		 &m);
	assert_int_equal(m.greeting.major, 9);
	assert_null(m.greeting.capabilities);
	qmp_msg_done(&m);

	assert_int_equal(parse_str("{\"QMP\": 1}", err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "not an object"));
	assert_int_equal(parse_str("{\"QMP\": {}}", err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "version"));
	static const char neg[] =
		"{\"QMP\": {\"version\": {\"qemu\": {\"major\": -7, \"minor\": 2, \"micro\": 2}}}}";
	assert_int_equal(parse_err(neg, strlen(neg), err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "major"));
	static const char caps[] = "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, "
				   "\"minor\": 2, \"micro\": 2}}, \"capabilities\": \"oob\"}}";
	assert_int_equal(parse_err(caps, strlen(caps), err, sizeof(err)), -EPROTO);
}

static void test_return(void **state)
{
	struct qmp_msg m;
	uint64_t id = 0;

	parse_ok("{\"return\": {\"running\": true, \"status\": \"running\", \"singlestep\": false},"
		 " \"id\": 42}",
		 &m);
	assert_int_equal(m.type, QMP_MSG_RETURN);
	assert_true(json_is_true(json_object_get(m.ret, "running")));
	assert_int_equal(qmp_msg_id(&m, &id), 0);
	assert_int_equal(id, 42);
	qmp_msg_done(&m);

	/* Any JSON type may be returned. */
	parse_ok("{\"return\": [{\"label\": \"charserial0\", \"filename\": \"unix:/s,server=on\", "
		 "\"frontend-open\": true}], \"id\": 0}",
		 &m);
	assert_true(json_is_array(m.ret));
	assert_int_equal(qmp_msg_id(&m, &id), 0);
	assert_int_equal(id, 0);
	qmp_msg_done(&m);

	/* Ids that are not ours: none, a string, negative, fractional. */
	parse_ok("{\"return\": {}}", &m);
	assert_int_equal(qmp_msg_id(&m, &id), -ENOENT);
	qmp_msg_done(&m);
	parse_ok("{\"return\": {}, \"id\": \"7\"}", &m);
	assert_int_equal(qmp_msg_id(&m, &id), -EINVAL);
	qmp_msg_done(&m);
	parse_ok("{\"return\": {}, \"id\": -1}", &m);
	assert_int_equal(qmp_msg_id(&m, &id), -EINVAL);
	qmp_msg_done(&m);
	parse_ok("{\"return\": {}, \"id\": 1.5}", &m);
	assert_int_equal(qmp_msg_id(&m, &id), -EINVAL);
	qmp_msg_done(&m);
	parse_ok("{\"return\": 3, \"id\": 5.0}", &m);
	assert_int_equal(qmp_msg_id(&m, &id), 0);
	assert_int_equal(id, 5);
	qmp_msg_done(&m);
}

/* QEMU returns uint64 values beyond INT64_MAX; jansson rejects them as integers. */
static void test_return_uint64(void **state)
{
	struct qmp_msg m;
	uint64_t id = 0;

	parse_ok("{\"return\": {\"size\": 18446744073709551615}, \"id\": 9}", &m);
	assert_int_equal(m.type, QMP_MSG_RETURN);
	assert_true(json_is_real(json_object_get(m.ret, "size")));
	assert_int_equal(qmp_msg_id(&m, &id), 0);
	assert_int_equal(id, 9);
	qmp_msg_done(&m);
}

static void test_error(void **state)
{
	struct qmp_msg m;
	uint64_t id = 0;
	char err[256];

	parse_ok("{\"id\": 3, \"error\": {\"class\": \"GenericError\", "
		 "\"desc\": \"Chardev 'serial0' not found\"}}",
		 &m);
	assert_int_equal(m.type, QMP_MSG_ERROR);
	assert_string_equal(m.error.class, "GenericError");
	assert_string_equal(m.error.desc, "Chardev 'serial0' not found");
	assert_int_equal(qmp_msg_id(&m, &id), 0);
	assert_int_equal(id, 3);
	qmp_msg_done(&m);

	/* Early parse errors come back without id. */
	parse_ok("{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}", &m);
	assert_int_equal(qmp_msg_id(&m, &id), -ENOENT);
	qmp_msg_done(&m);

	assert_int_equal(parse_str("{\"error\": \"x\"}", err, sizeof(err)), -EPROTO);
	assert_int_equal(parse_str("{\"error\": {\"class\": \"A\"}}", err, sizeof(err)),
			 -EPROTO);
	assert_non_null(strstr(err, "desc"));
	assert_int_equal(parse_str("{\"error\": {\"class\": 1, \"desc\": \"d\"}}", err,
				   sizeof(err)),
			 -EPROTO);
}

static void test_event(void **state)
{
	struct qmp_msg m;
	char err[256];

	parse_ok("{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
		 "\"event\": \"RESET\", \"data\": {\"guest\": false, "
		 "\"reason\": \"host-qmp-system-reset\"}}",
		 &m);
	assert_int_equal(m.type, QMP_MSG_EVENT);
	assert_string_equal(m.event.name, "RESET");
	assert_string_equal(json_string_value(json_object_get(m.event.data, "reason")),
			    "host-qmp-system-reset");
	assert_int_equal(m.event.seconds, 1700000000);
	assert_int_equal(m.event.microseconds, 123456);
	assert_null(m.id);
	qmp_msg_done(&m);

	parse_ok("{\"timestamp\": {\"seconds\": 5, \"microseconds\": 6}, \"event\": \"STOP\"}", &m);
	assert_string_equal(m.event.name, "STOP");
	assert_null(m.event.data);
	qmp_msg_done(&m);

	assert_int_equal(parse_str("{\"event\": \"STOP\"}", err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "timestamp"));
	static const char d[] = "{\"event\": \"X\", \"data\": 1, "
				"\"timestamp\": {\"seconds\": 1, \"microseconds\": 1}}";
	assert_int_equal(parse_err(d, strlen(d), err, sizeof(err)), -EPROTO);
	static const char n[] =
		"{\"event\": 1, \"timestamp\": {\"seconds\": 1, \"microseconds\": 1}}";
	assert_int_equal(parse_err(n, strlen(n), err, sizeof(err)), -EPROTO);
}

static void test_malformed(void **state)
{
	static const char *const bad_json[] = {
		"{\"return\": {}",            /* truncated */
		"{\"return\": {}, \"id\": 1", /* truncated */
		"{\"return\"",
		"{",
		"}",
		"hello",
		"{\"return\": {}} trailing",
		"{\"return\": {}, \"return\": 1}",      /* duplicate key */
		"{\"return\": \"\xff\xfe\"}",           /* not UTF-8 */
		"{\"return\": 1e999999}",               /* real overflow */
		"{'return': {}}",
	};
	static const char *const bad_shape[] = {
		"[]",
		"[{\"return\": {}}]",
		"42",
		"\"return\"",
		"null",
		"{}",
		"{\"execute\": \"query-status\"}",
		"{\"return\": {}, \"error\": {\"class\": \"A\", \"desc\": \"B\"}}",
		"{\"QMP\": {}, \"event\": \"X\"}",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
		err[0] = '\0';
		if (parse_err(bad_json[i], strlen(bad_json[i]), err, sizeof(err)) != -EBADMSG)
			fail_msg("not -EBADMSG: %s", bad_json[i]);
		assert_non_null(strstr(err, "malformed JSON"));
	}
	for (size_t i = 0; i < sizeof(bad_shape) / sizeof(bad_shape[0]); i++)
		if (parse_err(bad_shape[i], strlen(bad_shape[i]), err, sizeof(err)) != -EPROTO)
			fail_msg("not -EPROTO: %s", bad_shape[i]);
	/* An embedded NUL is malformed, and a NULL err buffer is fine. */
	assert_int_equal(parse_err("{\"return\": {}}\0x", 16, NULL, 0), -EBADMSG);
	/* Very deep nesting is refused by jansson, not a stack overflow. */
	{
		size_t depth = 100000;
		char *deep = malloc(2 * depth + 1);

		assert_non_null(deep);
		memset(deep, '[', depth);
		memset(deep + depth, ']', depth);
		deep[2 * depth] = '\0';
		assert_int_equal(parse_err(deep, 2 * depth, NULL, 0), -EBADMSG);
		free(deep);
	}
}

/* A transcript with an event between a command and its reply and a stray id. */
static void test_interleaved_stream(void **state)
{
	static const char text[] =
		"{\"return\": {}, \"id\": 1}\r\n"
		"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"STOP\"}\r\n"
		"{\"return\": {}, \"id\": 99}\r\n"
		"{\"timestamp\": {\"seconds\": 2, \"microseconds\": 0}, \"event\": \"RESUME\"}\r\n"
		"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}, \"id\": 2}\r\n";
	static const enum qmp_msg_type want[] = { QMP_MSG_RETURN, QMP_MSG_EVENT, QMP_MSG_RETURN,
						  QMP_MSG_EVENT, QMP_MSG_ERROR };
	static const uint64_t want_id[] = { 1, 0, 99, 0, 2 };
	struct qmp_splitter s;
	struct lines l;

	qmp_splitter_init(&s, 0);
	split(&s, text, strlen(text), 7, &l);
	assert_int_equal(l.error, 0);
	assert_int_equal(l.n, 5);
	for (int i = 0; i < l.n; i++) {
		struct qmp_msg m;
		uint64_t id = 0;

		parse_ok(l.line[i], &m);
		assert_int_equal(m.type, want[i]);
		if (m.type == QMP_MSG_EVENT) {
			assert_int_equal(qmp_msg_id(&m, &id), -ENOENT);
			assert_int_equal(m.event.seconds, i == 1 ? 1 : 2);
		} else {
			assert_int_equal(qmp_msg_id(&m, &id), 0);
			assert_int_equal(id, want_id[i]);
		}
		qmp_msg_done(&m);
	}
	lines_free(&l);
	qmp_splitter_done(&s);
}

static void test_encode(void **state)
{
	json_t *args = json_pack("{s:s}", "id", "charserial\xc3\xa9");
	json_t *back, *a;
	json_error_t jerr;
	char *line;
	size_t len;

	assert_non_null(args);
	assert_int_equal(qmp_encode_command("chardev-send-break", args, 17, &line, &len), 0);
	assert_int_equal(strlen(line), len);
	assert_memory_equal(line + len - 2, "\r\n", 2);
	assert_null(memchr(line, '\n', len - 1)); /* one line */
	for (size_t i = 0; i < len; i++)
		assert_true((unsigned char)line[i] < 0x80); /* ASCII only */
	assert_non_null(strcasestr(line, "\\u00e9"));
	assert_true(strncmp(line, "{\"execute\":\"chardev-send-break\"", 31) == 0);
	back = json_loadb(line, len, 0, &jerr);
	assert_non_null(back);
	assert_string_equal(json_string_value(json_object_get(back, "execute")),
			    "chardev-send-break");
	a = json_object_get(back, "arguments");
	assert_true(json_equal(a, args));
	assert_int_equal(json_integer_value(json_object_get(back, "id")), 17);
	json_decref(back);
	/* args was borrowed: still ours, unchanged. */
	assert_int_equal(args->refcount, 1);
	free(line);

	assert_int_equal(qmp_encode_command("qmp_capabilities", NULL, 0, &line, &len), 0);
	assert_string_equal(line, "{\"execute\":\"qmp_capabilities\",\"id\":0}\r\n");
	free(line);

	assert_int_equal(qmp_encode_command("x", NULL, (uint64_t)INT64_MAX, &line, &len), 0);
	assert_non_null(strstr(line, "9223372036854775807"));
	free(line);

	line = NULL;
	assert_int_equal(qmp_encode_command("", NULL, 1, &line, &len), -EINVAL);
	assert_int_equal(qmp_encode_command(NULL, NULL, 1, &line, &len), -EINVAL);
	assert_int_equal(qmp_encode_command("bad\xff", NULL, 1, &line, &len), -EINVAL);
	assert_int_equal(qmp_encode_command("x", NULL, (uint64_t)INT64_MAX + 1, &line, &len),
			 -EINVAL);
	json_t *arr = json_array();
	assert_int_equal(qmp_encode_command("x", arr, 1, &line, &len), -EINVAL);
	json_decref(arr);
	assert_null(line);
	json_decref(args);
}

static void test_encode_too_big(void **state)
{
	char *big = malloc(QMP_MSG_MAX + 1);
	json_t *args;
	char *line = NULL;
	size_t len;

	assert_non_null(big);
	memset(big, 'a', QMP_MSG_MAX);
	big[QMP_MSG_MAX] = '\0';
	args = json_pack("{s:s}", "data", big);
	assert_non_null(args);
	assert_int_equal(qmp_encode_command("ringbuf-write", args, 1, &line, &len), -EMSGSIZE);
	assert_null(line);
	json_decref(args);
	free(big);
}

/* What the encoder writes, the splitter and parser read back (as a reply would be). */
static void test_encode_split_roundtrip(void **state)
{
	struct qmp_splitter s;
	struct lines l;
	char *line;
	size_t len;

	assert_int_equal(qmp_encode_command("query-status", NULL, 5, &line, &len), 0);
	qmp_splitter_init(&s, 0);
	split(&s, line, len, 1, &l);
	assert_int_equal(l.n, 1);
	assert_int_equal(strlen(l.line[0]), len - 2);
	/* A command is valid JSON but not a server message. */
	assert_int_equal(parse_err(l.line[0], len - 2, NULL, 0), -EPROTO);
	lines_free(&l);
	qmp_splitter_done(&s);
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_crlf_lf),
		cmocka_unit_test(test_split_partial_and_empty),
		cmocka_unit_test(test_split_every_chunk_size),
		cmocka_unit_test(test_split_limit_small),
		cmocka_unit_test(test_split_limit_default),
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_return),
		cmocka_unit_test(test_return_uint64),
		cmocka_unit_test(test_error),
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_interleaved_stream),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_encode_too_big),
		cmocka_unit_test(test_encode_split_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
