/* SPDX-License-Identifier: MIT */
/*
 * Protocol helpers: control frame encode/decode, rejection of malformed
 * control payloads, data splitting at FRAME_MAX, replay arguments, the
 * message/mode/reason name tables.
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
	m = proto_msg_state("c", false, NULL, 1, false);
	assert_string_equal(member(m, "type"), "state");
	assert_string_equal(member(m, "role"), "watcher");
	assert_true(json_is_null(json_object_get(m, "writer")));
	assert_int_equal(json_integer_value(json_object_get(m, "clients")), 1);
	assert_string_equal(member(m, "access"), "ro");
	assert_int_equal(json_object_size(m), 6);
	json_decref(m);
	m = proto_msg_state("c", true, "me", 2, true);
	assert_string_equal(member(m, "role"), "writer");
	assert_string_equal(member(m, "writer"), "me");
	assert_string_equal(member(m, "access"), "rw");
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
	m = proto_req_hello("ttyhub-sshd", "ssh-ed25519 AAAA", "192.0.2.1");
	assert_string_equal(member(json_object_get(m, "principal"), "key"), "ssh-ed25519 AAAA");
	assert_string_equal(member(json_object_get(m, "principal"), "from"), "192.0.2.1");
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
		cmocka_unit_test(test_replay_arg),
		cmocka_unit_test(test_replay_str),
		cmocka_unit_test(test_msg_names),
		cmocka_unit_test(test_builders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
