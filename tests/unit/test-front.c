/* SPDX-License-Identifier: MIT */
/*
 * The front library over a socketpair: one end is a struct front, the other
 * plays ttyhubd with the plain frame codec.  Requests must arrive as the
 * protocol spells them, keystrokes must pass the escape filter (and be kept
 * back for a watcher), and every broker message must come out as its typed
 * event: lists joined, unknown types skipped, a bad message reported
 * without losing the stream, a broken stream reported as such.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "front.h"

struct pair {
	struct front f;
	int fds[2];              /* [0]: the front's, [1]: the broker's */
	struct frame_reader in;  /* broker side */
};

static int setup(void **state)
{
	static struct pair p;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p.fds), 0);
	assert_int_equal(front_init(&p.f, p.fds[0], 256 * 1024, NULL), 0);
	assert_int_equal(frame_reader_init(&p.in), 0);
	*state = &p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	front_done(&p->f);
	frame_reader_done(&p->in);
	close(p->fds[0]);
	close(p->fds[1]);
	return 0;
}

/* Flush the front's queue and read one control message on the broker side. */
static json_t *broker_recv(struct pair *p)
{
	struct frame fr;
	const char *type;
	char err[128];
	json_t *msg;

	assert_int_equal(front_flush(&p->f), 0);
	if (frame_reader_next(&p->in, &fr) == 0) {
		assert_true(frame_reader_fill(&p->in, p->fds[1]) > 0);
		assert_int_equal(frame_reader_next(&p->in, &fr), 1);
	}
	assert_int_equal(fr.type, FRAME_CONTROL);
	assert_int_equal(proto_decode_control(fr.payload, fr.len, &msg, &type, err, sizeof(err)), 0);
	return msg;
}

/* Send raw bytes as the broker and let the front read them. */
static void broker_raw(struct pair *p, const void *data, size_t len)
{
	assert_int_equal(write(p->fds[1], data, len), (ssize_t)len);
	assert_int_equal(front_fill(&p->f), (ssize_t)len);
}

static void broker_send(struct pair *p, json_t *msg)
{
	struct obuf b;

	assert_non_null(msg);
	assert_int_equal(obuf_init(&b, FRAME_HEADER + FRAME_MAX), 0);
	assert_int_equal(proto_put_control(&b, msg), 0);
	broker_raw(p, obuf_data(&b), obuf_len(&b));
	obuf_done(&b);
	json_decref(msg);
}

static void assert_member(json_t *msg, const char *key, const char *want)
{
	assert_non_null(json_string_value(json_object_get(msg, key)));
	assert_string_equal(json_string_value(json_object_get(msg, key)), want);
}

static void test_hello_speaks_for_a_principal(void **state)
{
	struct pair *p = *state;
	const struct front_principal pr = { .key = "ssh-ed25519 AAAAC3Nza", .from = "192.0.2.7" };
	json_t *m;

	assert_int_equal(front_hello(&p->f, "ttyhub-sshd", &pr), 0);
	m = broker_recv(p);
	assert_member(m, "type", "hello");
	assert_member(m, "client", "ttyhub-sshd");
	assert_int_equal(json_integer_value(json_object_get(m, "version")), PROTO_VERSION);
	assert_member(json_object_get(m, "principal"), "key", pr.key);
	assert_member(json_object_get(m, "principal"), "from", pr.from);
	json_decref(m);

	/* No principal: no member at all (a local user). */
	assert_int_equal(front_hello(&p->f, "ttyhub", NULL), 0);
	m = broker_recv(p);
	assert_null(json_object_get(m, "principal"));
	json_decref(m);

	assert_int_equal(front_authorize(&p->f, &pr), 0);
	m = broker_recv(p);
	assert_member(m, "type", "authorize");
	assert_member(m, "key", pr.key);
	assert_member(m, "from", pr.from);
	json_decref(m);
}

static void test_attach_request(void **state)
{
	struct pair *p = *state;
	json_t *m;

	assert_int_equal(front_attach(&p->f, "vm:serial0", ATTACH_FORCE, PROTO_REPLAY_DEFAULT), 0);
	m = broker_recv(p);
	assert_member(m, "type", "attach");
	assert_member(m, "console", "vm:serial0");
	assert_member(m, "mode", "force");
	assert_null(json_object_get(m, "replay")); /* the broker's default */
	json_decref(m);

	assert_int_equal(front_attach(&p->f, "vm", ATTACH_RO, PROTO_REPLAY_ALL), 0);
	m = broker_recv(p);
	assert_member(m, "mode", "ro");
	assert_member(m, "replay", "all");
	json_decref(m);

	assert_int_equal(front_attach(&p->f, "vm", ATTACH_RW, 0), 0);
	m = broker_recv(p);
	assert_member(m, "mode", "rw");
	assert_int_equal(json_integer_value(json_object_get(m, "replay")), 0);
	json_decref(m);

	assert_int_equal(front_attach(&p->f, "vm", _ATTACH_MODE_INVALID, 0), -EINVAL);
	/* Not UTF-8: cannot go on the wire, nothing is queued. */
	assert_int_equal(front_attach(&p->f, "\xff", ATTACH_RW, 0), -EINVAL);
	assert_int_equal(front_pending(&p->f), 0);
}

static void test_escape_requests(void **state)
{
	static const struct {
		enum escape_cmd cmd;
		const char *type;
		int force; /* -1: no member */
	} cases[] = {
		{ ESCAPE_DETACH, "detach", -1 }, { ESCAPE_FORCE, "take", 1 },
		{ ESCAPE_ATTACH_RW, "take", 0 }, { ESCAPE_SPY, "release", -1 },
		{ ESCAPE_WHO, "who", -1 },       { ESCAPE_REPLAY, "replay", -1 },
		{ ESCAPE_BREAK, "break", -1 },
	};
	struct pair *p = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *m;

		assert_int_equal(front_escape_request(&p->f, cases[i].cmd), 0);
		m = broker_recv(p);
		assert_member(m, "type", cases[i].type);
		if (cases[i].force >= 0)
			assert_int_equal(json_is_true(json_object_get(m, "force")), cases[i].force);
		/* who and break without a console mean the attached one */
		assert_null(json_object_get(m, "console"));
		json_decref(m);
	}
	assert_int_equal(front_escape_request(&p->f, ESCAPE_HELP), -EOPNOTSUPP);
	assert_int_equal(front_escape_request(&p->f, ESCAPE_NONE), -EOPNOTSUPP);
	assert_int_equal(front_pending(&p->f), 0);
}

/* Keystrokes: data up to the escape command, which stops the feed. */
static void test_keys_stop_at_a_command(void **state)
{
	struct pair *p = *state;
	const uint8_t keys[] = "ab\x05" "c.cd";
	enum escape_cmd cmd;
	size_t dropped, used;
	struct frame fr;

	used = front_keys(&p->f, keys, sizeof(keys) - 1, true, 0, &dropped, &cmd);
	assert_int_equal(used, 5);
	assert_int_equal(cmd, ESCAPE_DETACH);
	assert_int_equal(dropped, 0);
	used = front_keys(&p->f, keys + 5, sizeof(keys) - 1 - 5, true, 0, &dropped, &cmd);
	assert_int_equal(used, 2);
	assert_int_equal(cmd, ESCAPE_NONE);
	assert_int_equal(front_flush(&p->f), 0);
	assert_true(frame_reader_fill(&p->in, p->fds[1]) > 0);
	assert_int_equal(frame_reader_next(&p->in, &fr), 1);
	assert_int_equal(fr.type, FRAME_DATA);
	assert_int_equal(fr.len, 2);
	assert_memory_equal(fr.payload, "ab", 2);
	assert_int_equal(frame_reader_next(&p->in, &fr), 1);
	assert_memory_equal(fr.payload, "cd", 2);
	assert_int_equal(frame_reader_next(&p->in, &fr), 0);
}

/* A watcher's keystrokes never leave the front; commands still work. */
static void test_keys_of_a_watcher_are_dropped(void **state)
{
	struct pair *p = *state;
	const uint8_t keys[] = "hello\x05" "cw";
	enum escape_cmd cmd;
	size_t dropped, used;

	used = front_keys(&p->f, keys, sizeof(keys) - 1, false, 0, &dropped, &cmd);
	assert_int_equal(used, sizeof(keys) - 1);
	assert_int_equal(cmd, ESCAPE_WHO);
	assert_int_equal(dropped, 5);
	assert_int_equal(front_pending(&p->f), 0);
}

/* Keystrokes leave the reserve free: with no more room than that, none are taken. */
static void test_keys_leave_the_reserve(void **state)
{
	struct pair *p = *state;
	static uint8_t big[300 * 1024];
	enum escape_cmd cmd;
	size_t dropped, used;

	memset(big, 'x', sizeof(big));
	used = front_keys(&p->f, big, sizeof(big), true, 2048, &dropped, &cmd);
	assert_true(used > 0 && used < sizeof(big));
	assert_true(obuf_room(&p->f.out) <= 2048 + FRAME_HEADER + 2);
	assert_int_equal(front_keys(&p->f, big, sizeof(big), true, 2048, &dropped, &cmd), 0);
	/* The reserve still takes a request. */
	assert_int_equal(front_detach(&p->f), 0);
}

static void test_events(void **state)
{
	struct pair *p = *state;
	struct front_event e;
	char text[512];

	broker_send(p, json_pack("{s:s, s:s, s:s, s:s?, s:i, s:s, s:b, s:s}", "type", "attached",
				 "console", "vm:serial0", "role", "watcher", "writer", NULL,
				 "clients", 2, "access", "ro", "break", 0, "vm_state", "running"));
	/* An output frame for console bytes [7, 10). */
	broker_raw(p, "O\0\0\0\x13" "\0\0\0\0\0\0\0\7" "\0\0\0\0\0\0\0\x0a" "abc", 24);
	broker_send(p, json_pack("{s:s, s:s}", "type", "future-message", "x", "y"));
	broker_send(p, json_pack("{s:s, s:s}", "type", "notice", "text", "alice took over"));
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s}", "type", "state", "console", "vm:serial0",
				 "role", "writer", "access", "rw"));
	broker_send(p, json_pack("{s:s, s:s}", "type", "break-sent", "console", "vm:serial0"));
	broker_send(p, json_pack("{s:s, s:s, s:s}", "type", "error", "code", "read-only",
				 "message", "read-only"));
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s}", "type", "detached", "console",
				 "vm:serial0", "reason", "revoked", "text",
				 "your key no longer has access to vm:serial0"));

	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_ATTACHED);
	assert_string_equal(e.console, "vm:serial0");
	assert_false(e.writer);
	assert_int_equal(e.access, ATTACH_RO);
	assert_false(e.may_break);
	assert_true(front_event_text(&p->f, &e, text, sizeof(text)) > 0);
	assert_string_equal(text, "attached to vm:serial0 read-only (VM running, 2 attached); "
			    "nobody writes (Ctrl-E c a to write)");

	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_DATA);
	assert_int_equal(e.len, 3);
	assert_memory_equal(e.data, "abc", 3);
	assert_int_equal(e.start, 7);
	assert_int_equal(e.end, 10);
	assert_int_equal(p->f.book.offset, 10);
	assert_int_equal(front_event_text(&p->f, &e, text, sizeof(text)), 0);

	/* The unknown type is skipped. */
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_NOTICE);
	assert_string_equal(e.text, "alice took over");

	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_STATE);
	assert_true(e.writer);
	assert_int_equal(e.access, ATTACH_RW);

	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_BREAK_SENT);
	front_event_text(&p->f, &e, text, sizeof(text));
	assert_string_equal(text, "serial break sent");

	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_ERROR);
	assert_string_equal(e.code, PROTO_E_READ_ONLY);
	front_event_text(&p->f, &e, text, sizeof(text));
	assert_non_null(strstr(text, "read-only: your input is discarded; Ctrl-E c f"));

	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_DETACHED);
	assert_int_equal(e.reason, DETACH_REVOKED);
	assert_int_equal(front_detach_status(e.reason), 1);
	assert_int_equal(front_format(&p->f, &e, false, true, text, sizeof(text)),
			 strlen("\r\n[ttyhub] detached: your key no longer has access to "
				"vm:serial0\r\n"));
	assert_string_equal(text, "\r\n[ttyhub] detached: your key no longer has access to "
			    "vm:serial0\r\n");

	assert_int_equal(front_next_event(&p->f, &e), 0);
}

static void test_detach_status_by_reason(void **state)
{
	assert_int_equal(front_detach_status(DETACH_REQUESTED), 0);
	assert_int_equal(front_detach_status(DETACH_CONSOLE_GONE), 1);
	assert_int_equal(front_detach_status(DETACH_SHUTDOWN), 1);
	assert_int_equal(front_detach_status(DETACH_REVOKED), 1);
	assert_int_equal(front_detach_status(_DETACH_REASON_INVALID), 1);
}

/* A list in pieces is one event, once the last piece is in. */
static void test_list_pieces_joined(void **state)
{
	struct pair *p = *state;
	struct front_event e;

	broker_send(p, json_pack("{s:s, s:[{s:s}], s:[], s:b}", "type", "list", "consoles", "name",
				 "a", "errors", "more", 1));
	assert_int_equal(front_next_event(&p->f, &e), 0);
	broker_send(p, json_pack("{s:s, s:[{s:s}, {s:s}], s:[], s:b}", "type", "list", "consoles",
				 "name", "b", "name", "c", "errors", "more", 0));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_LIST);
	assert_int_equal(json_array_size(json_object_get(e.msg, "consoles")), 3);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(e.msg, "consoles"), 2), "name")), "c");
	assert_int_equal(front_next_event(&p->f, &e), 0);
}

/* A control frame that is no message is reported; the stream goes on. */
static void test_bad_message_then_more(void **state)
{
	struct pair *p = *state;
	struct front_event e;

	broker_raw(p, "C\0\0\0\2{]", 7);
	broker_send(p, json_pack("{s:s, s:s, s:s}", "type", "error", "code", "unknown-console",
				 "message", "no console named 'x'"));
	assert_int_equal(front_next_event(&p->f, &e), -EBADMSG);
	assert_non_null(strstr(p->f.err, "malformed JSON"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_ERROR);
	assert_string_equal(e.code, PROTO_E_UNKNOWN_CONSOLE);
	assert_string_equal(e.text, "no console named 'x'");
}

/* A broken frame stream is not a bad message: nothing after it can be trusted. */
static void test_broken_stream(void **state)
{
	struct pair *p = *state;
	struct front_event e;

	broker_raw(p, "X\0\0\0\1z", 6);
	assert_int_equal(front_next_event(&p->f, &e), -EPROTO);
}

static void test_eof(void **state)
{
	struct pair *p = *state;

	shutdown(p->fds[1], SHUT_WR);
	assert_int_equal(front_fill(&p->f), 0);
	assert_true(front_eof(&p->f));
}

static void test_line(void **state)
{
	char buf[128];

	assert_int_equal(front_line("hi", true, false, buf, sizeof(buf)), strlen("[ttyhub] hi\n"));
	assert_string_equal(buf, "[ttyhub] hi\n");
	front_line("hi", false, true, buf, sizeof(buf));
	assert_string_equal(buf, "\r\n[ttyhub] hi\r\n");
	/* Escaped again: a terminal control in broker text is shown, not obeyed. */
	front_line("a\x1b]0;x\x07", true, false, buf, sizeof(buf));
	assert_null(strchr(buf, '\x1b'));
	assert_null(strchr(buf, '\x07'));
	/* Bounded and NUL-terminated. */
	assert_int_equal(front_line("0123456789", true, false, buf, 8), 7);
	assert_int_equal(strlen(buf), 7);
}

static void test_prefix_in_texts(void **state)
{
	const uint8_t prefix[2] = { 0x1d, 'x' };
	char buf[256];
	json_t *a = json_pack("{s:s, s:s, s:s, s:i}", "console", "vm", "role", "watcher", "writer",
			      "bob", "clients", 2);

	front_readonly_hint(prefix, buf, sizeof(buf));
	assert_string_equal(buf, "read-only: your input is discarded; Ctrl-] x f takes write "
			    "access, Ctrl-] x a takes it if free");
	front_attached_text(a, prefix, buf, sizeof(buf));
	assert_string_equal(buf, "attached to vm read-only (2 attached); bob writes (Ctrl-] x f to "
			    "take over)");
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_speaks_for_a_principal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escape_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_stop_at_a_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_of_a_watcher_are_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_leave_the_reserve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test(test_detach_status_by_reason),
		cmocka_unit_test_setup_teardown(test_list_pieces_joined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_message_then_more, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_prefix_in_texts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
