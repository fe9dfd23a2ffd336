/* SPDX-License-Identifier: MIT */
/*
 * Protocol helpers: control frame encode/decode, rejection of malformed
 * control payloads, data splitting at FRAME_MAX, output frames with their
 * offsets, epochs, resume points and leases, UTF-8 repair for `output`,
 * replay arguments, the message/mode/reason name tables and the builders.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "message.h"
#include "proto.h"

static void test_control_roundtrip(void **state)
{
	struct obuf b;
	struct frame f;
	json_t *msg = json_pack("{s:s, s:s, s:s}", "type", "attach", "console", "web01",
				"mode", "rw"), *got;
	const char *type;
	char err[128];

	assert_int_equal(obuf_init(&b, 1024), 0);
	assert_int_equal(proto_put_control(&b, msg), 0);
	assert_true(frame_parse(obuf_data(&b), obuf_len(&b), &f) > 0);
	assert_int_equal(f.type, FRAME_CONTROL);
	assert_int_equal(proto_decode_control(f.payload, f.len, &got, &type, err, sizeof(err)), 0);
	assert_string_equal(type, "attach");
	assert_string_equal(json_string_value(json_object_get(got, "console")), "web01");
	json_decref(got);
	json_decref(msg);
	obuf_done(&b);
}

static void test_control_no_room(void **state)
{
	struct obuf b;
	json_t *msg = json_pack("{s:s, s:s}", "type", "notice", "text", "0123456789");

	assert_int_equal(obuf_init(&b, 20), 0);
	assert_int_equal(proto_put_control(&b, msg), -ENOBUFS);
	assert_int_equal(obuf_len(&b), 0);
	json_decref(msg);
	obuf_done(&b);
}

static void test_decode_rejects(void **state)
{
	static const char *bad[] = {
		"", "{", "[]", "\"attach\"", "{\"type\":1}", "{\"console\":\"x\"}",
		"{\"type\":\"a\",\"type\":\"b\"}", "{\"type\":\"list\"} trailing", "\xff\xfe",
	};
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *msg = NULL;
		const char *type;

		err[0] = '\0';
		assert_int_equal(proto_decode_control((const uint8_t *)bad[i], strlen(bad[i]), &msg,
						      &type, err, sizeof(err)), -EBADMSG);
		assert_null(msg);
		assert_true(strlen(err) > 0);
	}
}

static void test_data_split(void **state)
{
	struct obuf b;
	uint8_t *data = malloc(FRAME_MAX * 2 + 10);
	struct frame f;
	size_t off = 0, total = 0;
	int n, frames = 0;

	memset(data, 'd', FRAME_MAX * 2 + 10);
	assert_int_equal(obuf_init(&b, 3 * FRAME_MAX), 0);
	assert_int_equal(proto_put_data(&b, data, FRAME_MAX * 2 + 10), 0);
	while ((n = frame_parse(obuf_data(&b) + off, obuf_len(&b) - off, &f)) > 0) {
		assert_int_equal(f.type, FRAME_DATA);
		assert_true(f.len <= FRAME_MAX);
		total += f.len;
		off += (size_t)n;
		frames++;
	}
	assert_int_equal(frames, 3);
	assert_int_equal(total, FRAME_MAX * 2 + 10);
	/* All or nothing when it does not fit. */
	assert_int_equal(proto_put_data(&b, data, FRAME_MAX), -ENOBUFS);
	free(data);
	obuf_done(&b);
}

/* Parse the single frame at the start of b. */
static void parse_one(struct obuf *b, struct frame *f)
{
	assert_int_equal(frame_parse(obuf_data(b), obuf_len(b), f), (int)obuf_len(b));
}

static void test_output_frames(void **state)
{
	struct obuf b;
	struct frame f;
	uint64_t start, end;
	const uint8_t *data;
	size_t len;
	uint8_t *big = calloc(1, FRAME_OUTPUT_MAX + 1);

	assert_non_null(big);
	assert_int_equal(obuf_init(&b, 2 * FRAME_MAX), 0);
	/* Offsets past 32 bits survive the trip. */
	assert_int_equal(proto_put_output(&b, 0x123456789aULL, 0x123456789aULL + 5, "hello", 5), 0);
	parse_one(&b, &f);
	assert_int_equal(f.type, FRAME_OUTPUT);
	assert_int_equal(proto_parse_output(&f, &start, &end, &data, &len), 0);
	assert_true(start == 0x123456789aULL && end == 0x123456789fULL);
	assert_int_equal(len, 5);
	assert_memory_equal(data, "hello", 5);
	obuf_consume(&b, obuf_len(&b));

	/* Empty (replay the sanitiser removed), and bytes differing from end - start (replay). */
	assert_int_equal(proto_put_output(&b, 7, 9, NULL, 0), 0);
	parse_one(&b, &f);
	assert_int_equal(proto_parse_output(&f, &start, &end, &data, &len), 0);
	assert_true(start == 7 && end == 9 && len == 0);
	obuf_consume(&b, obuf_len(&b));

	/* The largest payload fits one frame; one more byte does not. */
	assert_int_equal(proto_put_output(&b, 0, FRAME_OUTPUT_MAX, big, FRAME_OUTPUT_MAX), 0);
	parse_one(&b, &f);
	assert_int_equal(f.len, FRAME_MAX);
	obuf_consume(&b, obuf_len(&b));
	assert_int_equal(proto_put_output(&b, 0, 1, big, FRAME_OUTPUT_MAX + 1), -EMSGSIZE);
	assert_int_equal(proto_put_output(&b, 5, 4, "x", 1), -EINVAL);
	assert_int_equal(obuf_len(&b), 0);
	obuf_done(&b);
	/* No room: nothing appended. */
	assert_int_equal(obuf_init(&b, 20), 0);
	assert_int_equal(proto_put_output(&b, 0, 0, NULL, 0), -ENOBUFS);
	assert_int_equal(obuf_len(&b), 0);
	obuf_done(&b);

	/* Bad payloads: too short for the offsets, end before start, another frame type. */
	f = (struct frame){ .type = FRAME_OUTPUT, .payload = big, .len = FRAME_OUTPUT_HEADER - 1 };
	assert_int_equal(proto_parse_output(&f, &start, &end, &data, &len), -EBADMSG);
	memset(big, 0, FRAME_OUTPUT_HEADER);
	big[7] = 2; /* start 2, end 0 */
	f.len = FRAME_OUTPUT_HEADER;
	assert_int_equal(proto_parse_output(&f, &start, &end, &data, &len), -EBADMSG);
	f.type = FRAME_DATA;
	big[7] = 0;
	assert_int_equal(proto_parse_output(&f, &start, &end, &data, &len), -EBADMSG);
	free(big);
}

static void test_epoch_resume_lease(void **state)
{
	char buf[PROTO_LEASE_STRLEN + 1];
	uint8_t lease[PROTO_LEASE_SIZE], back[PROTO_LEASE_SIZE];
	uint64_t e, o;

	proto_epoch_to_string(0x00ab00cd00ef0012ULL, buf);
	assert_string_equal(buf, "00ab00cd00ef0012");
	assert_int_equal(proto_parse_epoch(buf, &e), 0);
	assert_true(e == 0x00ab00cd00ef0012ULL);
	assert_int_equal(proto_parse_epoch("00AB00CD00EF0012", &e), 0);
	assert_true(e == 0x00ab00cd00ef0012ULL);
	assert_int_equal(proto_parse_epoch("0000000000000000", &e), -EINVAL);
	assert_int_equal(proto_parse_epoch("00ab00cd00ef001", &e), -EINVAL);
	assert_int_equal(proto_parse_epoch("00ab00cd00ef00123", &e), -EINVAL);
	assert_int_equal(proto_parse_epoch("00ab00cd00ef001g", &e), -EINVAL);
	assert_int_equal(proto_parse_epoch(NULL, &e), -EINVAL);

	assert_int_equal(proto_parse_resume_str("00ab00cd00ef0012:12345", &e, &o), 0);
	assert_true(e == 0x00ab00cd00ef0012ULL && o == 12345);
	assert_int_equal(proto_parse_resume_str("00ab00cd00ef0012:9223372036854775807", &e, &o), 0);
	assert_true(o == INT64_MAX);
	assert_int_equal(proto_parse_resume_str("00ab00cd00ef0012:9223372036854775808", &e, &o),
			 -ERANGE);
	assert_int_equal(proto_parse_resume_str("00ab00cd00ef0012:", &e, &o), -EINVAL);
	assert_int_equal(proto_parse_resume_str("00ab00cd00ef0012:-1", &e, &o), -EINVAL);
	assert_int_equal(proto_parse_resume_str("00ab00cd00ef0012:1 ", &e, &o), -EINVAL);
	assert_int_equal(proto_parse_resume_str("00ab00cd00ef0012 1", &e, &o), -EINVAL);
	assert_int_equal(proto_parse_resume_str("0000000000000000:1", &e, &o), -EINVAL);
	assert_int_equal(proto_parse_resume_str(":1", &e, &o), -EINVAL);
	assert_int_equal(proto_parse_resume_str(NULL, &e, &o), -EINVAL);

	for (size_t i = 0; i < sizeof(lease); i++)
		lease[i] = (uint8_t)(i * 17 + 3);
	proto_lease_to_string(lease, buf);
	assert_int_equal(strlen(buf), PROTO_LEASE_STRLEN);
	assert_int_equal(proto_parse_lease(buf, back), 0);
	assert_memory_equal(lease, back, sizeof(lease));
	assert_int_equal(proto_parse_lease("0011", back), -EINVAL);
	assert_int_equal(proto_parse_lease("0123456789abcdef0123456789abcdeg", back), -EINVAL);
	assert_int_equal(proto_parse_lease(NULL, back), -EINVAL);
}

static void test_utf8(void **state)
{
	char out[64];
	size_t n;

	/* Well-formed text is kept as it is: 2, 3 and 4 byte sequences. */
	n = proto_utf8_repair((const uint8_t *)"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10, out);
	assert_int_equal(n, 10);
	assert_memory_equal(out, "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10);
	/* A stray continuation, an overlong, a surrogate, past U+10FFFF, a cut sequence. */
	n = proto_utf8_repair((const uint8_t *)"\x80", 1, out);
	assert_memory_equal(out, "\xef\xbf\xbd", n);
	assert_int_equal(n, 3);
	n = proto_utf8_repair((const uint8_t *)"\xc0\xaf", 2, out);
	assert_int_equal(n, 6);
	n = proto_utf8_repair((const uint8_t *)"\xed\xa0\x80", 3, out);
	assert_int_equal(n, 9);
	n = proto_utf8_repair((const uint8_t *)"\xf4\x90\x80\x80", 4, out);
	assert_int_equal(n, 12);
	n = proto_utf8_repair((const uint8_t *)"x\xe2\x82", 3, out);
	assert_int_equal(n, 7);
	assert_memory_equal(out, "x\xef\xbf\xbd\xef\xbf\xbd", 7);
	/* A NUL too: JSON decoders refuse \u0000 unless told otherwise (fronts do not). */
	n = proto_utf8_repair((const uint8_t *)"a\0b", 3, out);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "a\xef\xbf\xbd" "b", 5);

	/* Cut before a sequence the next bytes would complete, never to nothing. */
	assert_int_equal(proto_utf8_cut((const uint8_t *)"ab\xe2\x82", 4), 2);
	assert_int_equal(proto_utf8_cut((const uint8_t *)"ab\xf0", 3), 2);
	assert_int_equal(proto_utf8_cut((const uint8_t *)"ab\xf0\x9f\x98", 5), 2);
	assert_int_equal(proto_utf8_cut((const uint8_t *)"ab\xe2\x82\xac", 5), 5);
	assert_int_equal(proto_utf8_cut((const uint8_t *)"\xe2\x82", 2), 2);
	/* Garbage at the end is not a sequence to wait for. */
	assert_int_equal(proto_utf8_cut((const uint8_t *)"ab\x80", 3), 3);
	assert_int_equal(proto_utf8_cut((const uint8_t *)"ab\xc0", 3), 3);
	assert_int_equal(proto_utf8_cut((const uint8_t *)"", 0), 0);
}

static void test_replay_arg(void **state)
{
	long v;
	json_t *j;

	j = json_integer(25);
	assert_int_equal(proto_parse_replay(j, &v), 0);
	assert_int_equal(v, 25);
	json_decref(j);
	j = json_string("all");
	assert_int_equal(proto_parse_replay(j, &v), 0);
	assert_int_equal(v, -1);
	json_decref(j);
	j = json_integer(-3);
	assert_int_equal(proto_parse_replay(j, &v), -EINVAL);
	json_decref(j);
	j = json_string("some");
	assert_int_equal(proto_parse_replay(j, &v), -EINVAL);
	json_decref(j);
	j = json_real(1.5);
	assert_int_equal(proto_parse_replay(j, &v), -EINVAL);
	json_decref(j);
}

static void test_replay_str(void **state)
{
	static const struct {
		const char *s;
		int r;
		long v;
	} cases[] = {
		{ "all", 0, PROTO_REPLAY_ALL },
		{ "0", 0, 0 },
		{ "25", 0, 25 },
		{ "007", 0, 7 },
		{ "1000000", 0, PROTO_REPLAY_MAX },
		{ "1000001", -ERANGE, 0 },
		{ "99999999999999999999999999", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "+5", -EINVAL, 0 },
		{ " 5", -EINVAL, 0 },
		{ "5 ", -EINVAL, 0 },
		{ "5x", -EINVAL, 0 },
		{ "ALL", -EINVAL, 0 },
		{ "all ", -EINVAL, 0 },
		{ "0x10", -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long v = 12345;

		assert_int_equal(proto_parse_replay_str(cases[i].s, &v), cases[i].r);
		/* *ret is left alone on failure. */
		assert_int_equal(v, cases[i].r == 0 ? cases[i].v : 12345);
	}
	assert_int_equal(proto_parse_replay_str(NULL, &(long){ 0 }), -EINVAL);
}

static void test_msg_names(void **state)
{
	/* Every message has a distinct name that maps back to it. */
	for (int m = 0; m < _PROTO_MSG_MAX; m++) {
		const char *name = proto_msg_to_string(m);

		assert_non_null(name);
		assert_int_equal(proto_msg_from_string(name), m);
	}
	assert_string_equal(proto_msg_to_string(PROTO_BREAK_SENT), "break-sent");
	assert_string_equal(proto_msg_to_string(PROTO_AUTHORIZE), "authorize");
	assert_null(proto_msg_to_string(_PROTO_MSG_MAX));
	assert_null(proto_msg_to_string(_PROTO_MSG_INVALID));
	assert_int_equal(proto_msg_from_string("Hello"), _PROTO_MSG_INVALID);
	assert_int_equal(proto_msg_from_string(""), _PROTO_MSG_INVALID);
	assert_int_equal(proto_msg_from_string(NULL), _PROTO_MSG_INVALID);

	for (int m = 0; m < _ATTACH_MODE_MAX; m++)
		assert_int_equal(attach_mode_from_string(attach_mode_to_string(m)), m);
	assert_string_equal(attach_mode_to_string(ATTACH_FORCE), "force");
	assert_int_equal(attach_mode_from_string("write"), _ATTACH_MODE_INVALID);
	assert_null(attach_mode_to_string(_ATTACH_MODE_MAX));

	for (int r = 0; r < _DETACH_REASON_MAX; r++)
		assert_int_equal(detach_reason_from_string(detach_reason_to_string(r)), r);
	assert_string_equal(detach_reason_to_string(DETACH_CONSOLE_GONE), "console-gone");
	assert_string_equal(detach_reason_to_string(DETACH_REVOKED), "revoked");
	assert_int_equal(detach_reason_from_string(NULL), _DETACH_REASON_INVALID);
	assert_null(detach_reason_to_string(-1));
}

static const char *member(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void test_actions(void **state)
{
	json_t *m;

	for (int a = 0; a < _PROTO_ACTION_MAX; a++)
		assert_int_equal(proto_action_from_string(proto_action_to_string(a)), a);
	assert_string_equal(proto_action_to_string(PROTO_ACTION_POWERDOWN), "powerdown");
	assert_int_equal(proto_action_from_string("SYSRQ"), _PROTO_ACTION_INVALID);
	assert_int_equal(proto_action_from_string("break"), _PROTO_ACTION_INVALID);
	assert_int_equal(proto_action_from_string(NULL), _PROTO_ACTION_INVALID);
	assert_null(proto_action_to_string(_PROTO_ACTION_MAX));

	for (const char *k = PROTO_SYSRQ_KEYS; *k; k++)
		assert_true(proto_sysrq_key_valid((const char[]){ *k, '\0' }));
	assert_int_equal(strlen(PROTO_SYSRQ_KEYS), 36);
	assert_false(proto_sysrq_key_valid("H"));
	assert_false(proto_sysrq_key_valid("hh"));
	assert_false(proto_sysrq_key_valid(""));
	assert_false(proto_sysrq_key_valid(NULL));
	assert_false(proto_sysrq_key_valid("!"));

	m = proto_req_action("vm", "sysrq", "h");
	assert_string_equal(member(m, "type"), "action");
	assert_string_equal(member(m, "console"), "vm");
	assert_string_equal(member(m, "action"), "sysrq");
	assert_string_equal(member(m, "key"), "h");
	json_decref(m);
	m = proto_req_action(NULL, "reset", NULL);
	assert_int_equal(json_object_size(m), 2);
	json_decref(m);
	m = proto_msg_action_done("vm:serial0", PROTO_ACTION_SYSRQ, "h");
	assert_string_equal(member(m, "type"), "action-done");
	assert_string_equal(member(m, "action"), "sysrq");
	assert_string_equal(member(m, "key"), "h");
	json_decref(m);
	m = proto_msg_action_done("vm:serial0", PROTO_ACTION_NMI, NULL);
	assert_string_equal(member(m, "action"), "nmi");
	assert_null(json_object_get(m, "key"));
	json_decref(m);
}

static void test_builders(void **state)
{
	json_t *m;

	m = proto_msg_detached("vm:serial0", DETACH_REVOKED, "your key no longer has access");
	assert_string_equal(member(m, "type"), "detached");
	assert_string_equal(member(m, "reason"), "revoked");
	assert_string_equal(member(m, "text"), "your key no longer has access");
	assert_int_equal(json_object_size(m), 4);
	json_decref(m);

	m = proto_msg_attached(&(const struct proto_attached){
		.console = "c", .vm = "v", .writer = true, .clients = 2, .state = "connected",
		.status = "ok", .guest_open = -1, .may_write = true, .may_break = false });
	assert_string_equal(member(m, "role"), "writer");
	assert_true(json_is_null(json_object_get(m, "writer")));
	assert_string_equal(member(m, "access"), "rw");
	assert_true(json_is_false(json_object_get(m, "break")));
	/* Unknown guest state and no previous writer: no such members. */
	assert_null(json_object_get(m, "guest_open"));
	assert_null(json_object_get(m, "vm_state"));
	assert_null(json_object_get(m, "previous"));
	assert_null(json_object_get(m, "uuid"));
	json_decref(m);

	/* state carries the client's right now, as attached does (a demoted writer: ro). */
	m = proto_msg_state("c", false, NULL, 1, false, NULL);
	assert_string_equal(member(m, "type"), "state");
	assert_string_equal(member(m, "role"), "watcher");
	assert_true(json_is_null(json_object_get(m, "writer")));
	assert_int_equal(json_integer_value(json_object_get(m, "clients")), 1);
	assert_string_equal(member(m, "access"), "ro");
	assert_int_equal(json_object_size(m), 6);
	json_decref(m);
	m = proto_msg_state("c", true, "me", 2, true, "00112233445566778899aabbccddeeff");
	assert_string_equal(member(m, "role"), "writer");
	assert_string_equal(member(m, "writer"), "me");
	assert_string_equal(member(m, "access"), "rw");
	assert_string_equal(member(m, "lease"), "00112233445566778899aabbccddeeff");
	json_decref(m);

	/* attached: where the stream stands; resumed/lost/lease only when they apply. */
	m = proto_msg_attached(&(const struct proto_attached){
		.console = "c", .vm = "v", .guest_open = -1, .epoch = 0xabcdef0123456789,
		.offset = 5, .tail = 1, .head = 9, .resumed = "gap", .lost = 4 });
	assert_string_equal(member(m, "epoch"), "abcdef0123456789");
	assert_int_equal(json_integer_value(json_object_get(m, "offset")), 5);
	assert_int_equal(json_integer_value(json_object_get(m, "tail")), 1);
	assert_int_equal(json_integer_value(json_object_get(m, "head")), 9);
	assert_string_equal(member(m, "resumed"), "gap");
	assert_int_equal(json_integer_value(json_object_get(m, "lost")), 4);
	assert_null(json_object_get(m, "lease"));
	json_decref(m);
	m = proto_msg_attached(&(const struct proto_attached){
		.console = "c", .vm = "v", .writer = true, .guest_open = -1, .epoch = 1,
		.lease = "ff" });
	assert_null(json_object_get(m, "resumed"));
	assert_null(json_object_get(m, "lost"));
	assert_string_equal(member(m, "lease"), "ff");
	assert_string_equal(member(m, "epoch"), "0000000000000001");
	json_decref(m);

	m = proto_msg_notice_lost("3 bytes lost", 3);
	assert_int_equal(json_integer_value(json_object_get(m, "lost")), 3);
	assert_string_equal(member(m, "text"), "3 bytes lost");
	json_decref(m);

	/* output: contents a string, invalid bytes as U+FFFD; expired only when it was. */
	m = proto_msg_output(&(const struct proto_output){
		.console = "c", .epoch = 2, .start = 10, .next = 14, .head = 20,
		.data = (const uint8_t *)"a\xff" "b\n", .len = 4 });
	assert_string_equal(member(m, "contents"), "a\xef\xbf\xbd" "b\n");
	assert_int_equal(json_integer_value(json_object_get(m, "start")), 10);
	assert_int_equal(json_integer_value(json_object_get(m, "next")), 14);
	assert_int_equal(json_integer_value(json_object_get(m, "head")), 20);
	assert_true(json_is_true(json_object_get(m, "more")));
	assert_null(json_object_get(m, "expired"));
	assert_null(json_object_get(m, "lost"));
	json_decref(m);
	m = proto_msg_output(&(const struct proto_output){
		.console = "c", .epoch = 2, .start = 10, .next = 10, .head = 10, .data = NULL,
		.len = 0, .expired = true, .lost = 7 });
	assert_string_equal(member(m, "contents"), "");
	assert_true(json_is_false(json_object_get(m, "more")));
	assert_true(json_is_true(json_object_get(m, "expired")));
	assert_int_equal(json_integer_value(json_object_get(m, "lost")), 7);
	json_decref(m);

	/* Requests of resume: the resume member, the output request. */
	m = proto_req_attach_resume("c", ATTACH_RW, PROTO_REPLAY_DEFAULT,
				    &(const struct proto_resume){ .epoch = 0x10, .offset = 99,
								  .lease = "ab" });
	assert_string_equal(member(json_object_get(m, "resume"), "epoch"), "0000000000000010");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "resume"),
							     "offset")), 99);
	assert_string_equal(member(json_object_get(m, "resume"), "lease"), "ab");
	json_decref(m);
	m = proto_req_output("c", true, -100, 0);
	assert_int_equal(json_integer_value(json_object_get(m, "start")), -100);
	assert_null(json_object_get(m, "max"));
	json_decref(m);

	m = proto_msg_hello("x (ssh SHA256:y)", "SHA256:y", "x");
	assert_string_equal(member(json_object_get(m, "principal"), "fingerprint"), "SHA256:y");
	json_decref(m);
	m = proto_msg_hello("local admin", NULL, NULL);
	assert_null(json_object_get(m, "principal"));
	assert_int_equal(json_integer_value(json_object_get(m, "version")), PROTO_VERSION);
	json_decref(m);

	/* Requests: the replay sentinels become the wire's forms. */
	m = proto_req_attach("web01", ATTACH_FORCE, PROTO_REPLAY_ALL);
	assert_string_equal(member(m, "mode"), "force");
	assert_string_equal(member(m, "replay"), "all");
	json_decref(m);
	m = proto_req_attach("web01", ATTACH_RO, PROTO_REPLAY_DEFAULT);
	assert_null(json_object_get(m, "replay"));
	json_decref(m);
	m = proto_req_attach("web01", ATTACH_RW, 7);
	assert_int_equal(json_integer_value(json_object_get(m, "replay")), 7);
	json_decref(m);
	m = proto_req_hello("ttyhub-sshd", "ssh-ed25519 AAAA", "192.0.2.1", NULL, NULL);
	assert_string_equal(member(json_object_get(m, "principal"), "key"), "ssh-ed25519 AAAA");
	assert_string_equal(member(json_object_get(m, "principal"), "from"), "192.0.2.1");
	json_decref(m);
	m = proto_req_hello("ttyhub-sshd", "ssh-ed25519 AAAA", "192.0.2.1", "break", "al");
	assert_string_equal(member(json_object_get(m, "principal"), "grant"), "break");
	assert_string_equal(member(json_object_get(m, "principal"), "comment"), "al");
	json_decref(m);
	/* A principal's members only with a principal. */
	m = proto_req_hello("ttyhub", NULL, NULL, "break", "al");
	assert_null(json_object_get(m, "principal"));
	json_decref(m);
	m = proto_msg_authorized("SHA256:y", "x", "x (ssh SHA256:y)", "", false);
	assert_string_equal(member(m, "grant"), "");
	assert_true(json_is_false(json_object_get(m, "gateway")));
	json_decref(m);
	m = proto_msg_authorized("SHA256:y", NULL, "line 3 (ssh SHA256:y)", NULL, true);
	assert_string_equal(member(m, "grant"), "");
	assert_string_equal(member(m, "comment"), "");
	assert_true(json_is_true(json_object_get(m, "gateway")));
	json_decref(m);
	m = proto_req_ping();
	assert_string_equal(member(m, "type"), "ping");
	assert_int_equal(json_object_size(m), 1);
	json_decref(m);
	m = proto_msg_pong();
	assert_string_equal(member(m, "type"), "pong");
	json_decref(m);
	m = proto_req_list(NULL);
	assert_int_equal(json_object_size(m), 1);
	json_decref(m);
	m = proto_req_take(true);
	assert_true(json_is_true(json_object_get(m, "force")));
	json_decref(m);
	m = proto_msg_error(PROTO_E_REVOKED, "gone");
	assert_string_equal(member(m, "code"), "revoked");
	json_decref(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_roundtrip),
		cmocka_unit_test(test_control_no_room),
		cmocka_unit_test(test_decode_rejects),
		cmocka_unit_test(test_data_split),
		cmocka_unit_test(test_output_frames),
		cmocka_unit_test(test_epoch_resume_lease),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_replay_arg),
		cmocka_unit_test(test_replay_str),
		cmocka_unit_test(test_msg_names),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_actions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
