/* SPDX-License-Identifier: MIT */
/*
 * The front library over a socketpair: one end is a struct front, the other
 * plays ttyhubd with the plain frame codec.  Requests must arrive as the
 * protocol spells them, keystrokes must pass the escape filter (and be kept
 * back for a watcher), and every broker message must come out as its typed
 * event: lists joined, unknown types skipped, a bad message reported
 * without losing the stream, a broken stream reported as such.  Resume:
 * output frames move the resume point, the bookkeeping follows attached
 * and state, a struct front reused on a new socketpair (a new "broker")
 * queues hello + attach-with-resume, keystrokes of the gap are held
 * (bounded), sent or counted, and the user sees the one line.
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
#include "message.h"
#include "util.h"

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
	/* Without grant and comment the principal has no such members. */
	assert_int_equal(front_hello(&p->f, "ttyhub-sshd", &pr), 0);
	m = broker_recv(p);
	assert_null(json_object_get(json_object_get(m, "principal"), "grant"));
	assert_null(json_object_get(json_object_get(m, "principal"), "comment"));
	json_decref(m);
}

/* A gateway speaks for a user: grant and comment go with the principal, on a reconnect too. */
static void test_hello_for_a_gateway_user(void **state)
{
	struct pair *p = *state;
	const struct front_principal pr = { .key = "ssh-ed25519 AAAAC3Nza", .from = "192.0.2.7",
					    .grant = "consoles=\"web*:rw\",break",
					    .comment = "alice@laptop" };
	const struct front_principal empty = { .key = "ssh-ed25519 AAAAC3Nza", .from = "::1",
					       .grant = "" };
	struct front_event e;
	json_t *m;

	assert_int_equal(front_hello(&p->f, "ttyhub-sshd", &pr), 0);
	m = broker_recv(p);
	assert_member(json_object_get(m, "principal"), "grant", pr.grant);
	assert_member(json_object_get(m, "principal"), "comment", pr.comment);
	json_decref(m);
	/* "" grants nothing, and goes as it is (a missing grant is a malformed hello). */
	assert_int_equal(front_hello(&p->f, "ttyhub-sshd", &empty), 0);
	m = broker_recv(p);
	assert_member(json_object_get(m, "principal"), "grant", "");
	assert_null(json_object_get(json_object_get(m, "principal"), "comment"));
	json_decref(m);
	front_lost(&p->f);
	assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub-sshd", &pr), 0);
	m = broker_recv(p);
	assert_member(m, "type", "hello");
	assert_member(json_object_get(m, "principal"), "grant", pr.grant);
	assert_member(json_object_get(m, "principal"), "comment", pr.comment);
	json_decref(m);
	/* A keepalive: pong is no event. */
	assert_int_equal(front_ping(&p->f), 0);
	m = broker_recv(p);
	assert_member(m, "type", "ping");
	assert_int_equal(json_object_size(m), 1);
	json_decref(m);
	broker_send(p, proto_msg_pong());
	broker_send(p, proto_msg_authorized("SHA256:x", "gw", "gw (ssh SHA256:x)",
					    "consoles=\"*:rw\"", true));
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s}", "type", "authorized", "fingerprint",
				 "SHA256:y", "comment", "old", "you", "old (ssh SHA256:y)"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_AUTHORIZED);
	assert_string_equal(e.grant, "consoles=\"*:rw\"");
	assert_true(e.gateway);
	assert_string_equal(e.comment, "gw");
	/* An older broker: no grant (NULL), not a gateway. */
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_AUTHORIZED);
	assert_null(e.grant);
	assert_false(e.gateway);
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

/* The rescue actions by escape: requests for the attached console, or text of our own. */
static void test_escape_actions(void **state)
{
	struct pair *p = *state;
	const uint8_t keys[] = "\x05" "cR" "n" "\x05" "cSh";
	enum escape_cmd cmd;
	char text[200];
	size_t used, dropped;
	json_t *m;

	p->f.esc.confirm = true;
	/* Reset asks first: the question is ours, nothing goes to the broker. */
	used = front_keys(&p->f, keys, sizeof(keys) - 1, true, 0, &dropped, &cmd);
	assert_int_equal(used, 3);
	assert_int_equal(cmd, ESCAPE_CONFIRM);
	assert_int_equal(front_escape_request(&p->f, cmd), -EOPNOTSUPP);
	assert_true(front_escape_text(&p->f, cmd, text, sizeof(text)) > 0);
	assert_string_equal(text, "reset this console? [y/N]");
	/* "n": cancelled. */
	used += front_keys(&p->f, keys + used, sizeof(keys) - 1 - used, true, 0, &dropped, &cmd);
	assert_int_equal(cmd, ESCAPE_CANCEL);
	assert_true(front_escape_text(&p->f, cmd, text, sizeof(text)) > 0);
	assert_string_equal(text, "reset cancelled");
	assert_int_equal(front_pending(&p->f), 0);
	/* sysrq h: one request with the key. */
	used += front_keys(&p->f, keys + used, sizeof(keys) - 1 - used, true, 0, &dropped, &cmd);
	assert_int_equal(used, sizeof(keys) - 1);
	assert_int_equal(cmd, ESCAPE_SYSRQ);
	assert_int_equal(front_escape_text(&p->f, cmd, text, sizeof(text)), 0);
	assert_int_equal(front_escape_request(&p->f, cmd), 0);
	m = broker_recv(p);
	assert_member(m, "type", "action");
	assert_member(m, "action", "sysrq");
	assert_member(m, "key", "h");
	assert_null(json_object_get(m, "console"));
	json_decref(m);
	/* The others, as the parser returns them once confirmed. */
	for (enum escape_cmd c = ESCAPE_NMI; c; c = c == ESCAPE_NMI ? ESCAPE_RESET
						   : c == ESCAPE_RESET ? ESCAPE_POWERDOWN
									 : ESCAPE_NONE) {
		assert_int_equal(front_escape_request(&p->f, c), 0);
		m = broker_recv(p);
		assert_member(m, "action", c == ESCAPE_NMI ? "nmi" : c == ESCAPE_RESET ? "reset"
										      : "powerdown");
		assert_null(json_object_get(m, "key"));
		json_decref(m);
	}
	/* A sysrq whose byte was no key: ours to say, nothing sent. */
	p->f.esc.arg = 0;
	assert_int_equal(front_escape_request(&p->f, ESCAPE_SYSRQ), -EOPNOTSUPP);
	assert_true(front_escape_text(&p->f, ESCAPE_SYSRQ, text, sizeof(text)) > 0);
	assert_non_null(strstr(text, "sysrq cancelled"));
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

/* An output frame from the broker for console bytes [start, end). */
static void broker_output(struct pair *p, uint64_t start, uint64_t end, const char *data)
{
	struct obuf b;

	assert_int_equal(obuf_init(&b, FRAME_HEADER + FRAME_MAX), 0);
	assert_int_equal(proto_put_output(&b, start, end, data, strlen(data)), 0);
	broker_raw(p, obuf_data(&b), obuf_len(&b));
	obuf_done(&b);
}

/* The broker went away: a new socketpair, as if a new broker accepted. */
static void broker_restart(struct pair *p)
{
	close(p->fds[0]);
	close(p->fds[1]);
	frame_reader_done(&p->in);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds), 0);
	assert_int_equal(frame_reader_init(&p->in), 0);
}

#define EPOCH_HEX "00c0ffee12345678"
#define EPOCH 0x00c0ffee12345678ULL
#define LEASE "0123456789abcdef0123456789abcdef"

/* Attached as the broker answers a plain attach: writer with a lease, at offset 100. */
static void attached_writer(struct pair *p)
{
	struct front_event e;

	assert_int_equal(front_attach(&p->f, "vm", ATTACH_RW, 5), 0);
	json_decref(broker_recv(p));
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:s}", "type", "attached",
				 "console", "vm:serial0", "role", "writer", "epoch", EPOCH_HEX,
				 "offset", (json_int_t)100, "tail", 0, "head", 100, "lease", LEASE));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_ATTACHED);
	assert_false(e.reconnected);
	assert_int_equal(e.epoch, EPOCH);
	assert_int_equal(e.end, 100);
}

/* O frames carry offsets; an empty one still moves the resume point; D is refused. */
static void test_output_frames(void **state)
{
	struct pair *p = *state;
	struct front_event e;

	attached_writer(p);
	broker_output(p, 100, 105, "hello");
	broker_output(p, 105, 140, ""); /* a replay chunk the sanitiser removed */
	broker_raw(p, "O\0\0\0\x03xyz", 8); /* shorter than its offsets */
	broker_output(p, 140, 141, "!");
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_DATA);
	assert_int_equal(e.start, 100);
	assert_int_equal(e.end, 105);
	assert_memory_equal(e.data, "hello", 5);
	assert_int_equal(p->f.book.offset, 105);
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.len, 0);
	assert_int_equal(p->f.book.offset, 140);
	assert_int_equal(front_next_event(&p->f, &e), -EBADMSG);
	assert_non_null(strstr(p->f.err, "output frame"));
	assert_int_equal(p->f.book.offset, 140);
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(p->f.book.offset, 141);

	/* D frames go to the broker only: a broker sending one is broken, for good. */
	broker_raw(p, "D\0\0\0\3abc", 8);
	broker_output(p, 141, 142, "x");
	assert_int_equal(front_next_event(&p->f, &e), -EPROTO);
	assert_int_equal(front_next_event(&p->f, &e), -EPROTO);
	assert_int_equal(p->f.book.offset, 141);
}

/* What front_next_event() keeps for a resume: console, epoch, offset, lease, role. */
static void test_bookkeeping(void **state)
{
	struct pair *p = *state;
	const struct front_book *b = &p->f.book;
	struct front_event e;

	attached_writer(p);
	assert_string_equal(b->console, "vm:serial0"); /* the broker's name, not "vm" */
	assert_int_equal(b->mode, ATTACH_RW);
	assert_int_equal(b->replay, 5);
	assert_true(b->positioned);
	assert_int_equal(b->epoch, EPOCH);
	assert_int_equal(b->offset, 100);
	assert_string_equal(b->lease, LEASE);
	assert_true(b->writer);

	/* Released: no role, no lease. */
	broker_send(p, json_pack("{s:s, s:s, s:s}", "type", "state", "console", "vm:serial0",
				 "role", "watcher"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_false(b->writer);
	assert_string_equal(b->lease, "");
	/* Taken again: a new lease; a state without one keeps it. */
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s}", "type", "state", "console", "vm:serial0",
				 "role", "writer", "lease", "ffffffffffffffffffffffffffffffff"));
	broker_send(p, json_pack("{s:s, s:s, s:s}", "type", "state", "console", "vm:serial0",
				 "role", "writer"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_true(b->writer);
	assert_string_equal(b->lease, "ffffffffffffffffffffffffffffffff");
	/* A lease that is not one is not kept. */
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s}", "type", "state", "console", "vm:serial0",
				 "role", "writer", "lease", "nope"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_string_equal(b->lease, "ffffffffffffffffffffffffffffffff");

	/* A requested detach ends the lease; the position stays for the hint. */
	broker_send(p, json_pack("{s:s, s:s, s:s}", "type", "detached", "console", "vm:serial0",
				 "reason", "requested"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_string_equal(b->lease, "");
	assert_int_equal(b->offset, 100);
}

/* Keystrokes fed in the gap are held; requests wait; the re-attach sends them. */
static void test_reconnect_resumes_as_writer(void **state)
{
	struct pair *p = *state;
	struct front_event e;
	enum escape_cmd cmd;
	size_t dropped;
	struct frame fr;
	char line[256];
	json_t *m, *res;

	attached_writer(p);
	broker_output(p, 100, 120, "01234567890123456789");
	assert_int_equal(front_next_event(&p->f, &e), 1);
	/* Typed before the loss but never sent: the broker did not see them. */
	assert_int_equal(front_keys(&p->f, (const uint8_t *)"ls", 2, true, 0, &dropped, &cmd), 2);
	assert_true(front_pending(&p->f) > 0);

	front_lost(&p->f);
	assert_int_equal(p->f.link, FRONT_LOST);
	assert_int_equal(front_pending(&p->f), 0);
	assert_int_equal(p->f.held_len, 2);
	assert_int_equal(front_keys(&p->f, (const uint8_t *)" -l\r\x05" "c?", 7, true, 0, &dropped,
				    &cmd), 7);
	assert_int_equal(cmd, ESCAPE_HELP);
	assert_int_equal(dropped, 0);
	assert_int_equal(p->f.held_len, 6);
	assert_memory_equal(p->f.held, "ls -l\r", 6);
	assert_int_equal(front_escape_request(&p->f, ESCAPE_WHO), -ENOTCONN);
	assert_int_equal(front_detach(&p->f), -ENOTCONN);
	assert_int_equal(front_pending(&p->f), 0);

	broker_restart(p);
	assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub", NULL), 0);
	assert_int_equal(p->f.link, FRONT_RESUMING);
	m = broker_recv(p);
	assert_member(m, "type", "hello");
	json_decref(m);
	m = broker_recv(p);
	assert_member(m, "type", "attach");
	assert_member(m, "console", "vm:serial0");
	assert_member(m, "mode", "rw");
	assert_int_equal(json_integer_value(json_object_get(m, "replay")), 5);
	res = json_object_get(m, "resume");
	assert_member(res, "epoch", EPOCH_HEX);
	assert_int_equal(json_integer_value(json_object_get(res, "offset")), 120);
	assert_member(res, "lease", LEASE);
	json_decref(m);
	/* Still held until the answer: typing goes on into the hold. */
	assert_int_equal(front_keys(&p->f, (const uint8_t *)"x", 1, true, 0, &dropped, &cmd), 1);
	assert_int_equal(front_pending(&p->f), 0);

	broker_send(p, json_pack("{s:s}", "type", "hello"));
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "type", "attached",
				 "console", "vm:serial0", "role", "writer", "epoch", EPOCH_HEX,
				 "offset", (json_int_t)120, "resumed", "exact", "lease", LEASE));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_HELLO);
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_ATTACHED);
	assert_true(e.reconnected);
	assert_int_equal(e.resumed, FRONT_RESUMED_EXACT);
	assert_int_equal(e.keys_sent, 7);
	assert_int_equal(e.keys_dropped, 0);
	assert_int_equal(p->f.link, FRONT_LIVE);
	front_format(&p->f, &e, false, true, line, sizeof(line));
	assert_string_equal(line, "\r\n[ttyhub] broker restarted, nothing lost\r\n");

	/* The held keystrokes reach the new broker, in order. */
	assert_int_equal(front_flush(&p->f), 0);
	assert_true(frame_reader_fill(&p->in, p->fds[1]) > 0);
	assert_int_equal(frame_reader_next(&p->in, &fr), 1);
	assert_int_equal(fr.type, FRAME_DATA);
	assert_int_equal(fr.len, 7);
	assert_memory_equal(fr.payload, "ls -l\rx", 7);
	assert_int_equal(front_detach(&p->f), 0);
}

/* Back as a watcher: the held keystrokes are dropped and counted, in the one line. */
static void test_reconnect_as_watcher_drops(void **state)
{
	struct pair *p = *state;
	static uint8_t big[FRONT_HELD_MAX + 100];
	struct front_event e;
	enum escape_cmd cmd;
	size_t dropped;
	char text[256];
	json_t *m;

	attached_writer(p);
	front_lost(&p->f);
	front_lost(&p->f); /* idempotent */
	memset(big, 'y', sizeof(big));
	assert_int_equal(front_keys(&p->f, big, sizeof(big), true, 0, &dropped, &cmd), sizeof(big));
	assert_int_equal(dropped, 100); /* past the hold: counted at once */
	assert_int_equal(p->f.held_len, FRONT_HELD_MAX);
	/* A watcher's keystrokes in the gap: dropped as when connected. */
	assert_int_equal(front_keys(&p->f, big, 3, false, 0, &dropped, &cmd), 3);
	assert_int_equal(dropped, 3);

	broker_restart(p);
	assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub", NULL), 0);
	json_decref(broker_recv(p));
	json_decref(broker_recv(p));
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "type", "attached",
				 "console", "vm:serial0", "role", "watcher", "writer", "alice",
				 "epoch", EPOCH_HEX, "offset", (json_int_t)100, "resumed", "exact"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_true(e.reconnected);
	assert_int_equal(e.keys_sent, 0);
	assert_int_equal(e.keys_dropped, FRONT_HELD_MAX + 100);
	front_event_text(&p->f, &e, text, sizeof(text));
	assert_string_equal(text, "broker restarted, nothing lost; but 4196 keystrokes typed while "
			    "ttyhubd was away were discarded (you no longer write)");
	assert_int_equal(front_pending(&p->f), 0);
	assert_false(p->f.book.writer);
	assert_string_equal(p->f.book.lease, "");

	/* Lost again as a watcher: it re-attaches with the mode asked, and no lease. */
	front_lost(&p->f);
	broker_restart(p);
	assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub", NULL), 0);
	json_decref(broker_recv(p));
	m = broker_recv(p);
	assert_member(m, "mode", "rw");
	assert_null(json_object_get(json_object_get(m, "resume"), "lease"));
	json_decref(m);
}

/* A gap or a restarted console: the broker's notice is the line; ours says nothing. */
static void test_reconnect_gap_and_restarted(void **state)
{
	static const char *const how[] = { "gap", "restarted" };
	struct pair *p = *state;

	attached_writer(p);
	for (size_t i = 0; i < 2; i++) {
		struct front_event e;
		char line[256];

		broker_restart(p);
		assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub-sshd", NULL), 0);
		json_decref(broker_recv(p));
		json_decref(broker_recv(p));
		broker_send(p, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I}", "type", "attached",
					 "console", "vm:serial0", "role", "watcher", "epoch",
					 i ? "1111111111111111" : EPOCH_HEX, "offset",
					 (json_int_t)(i ? 0 : 300), "resumed", how[i], "lost",
					 (json_int_t)(i ? 0 : 200)));
		assert_int_equal(front_next_event(&p->f, &e), 1);
		assert_true(e.reconnected);
		assert_int_equal(e.resumed, i ? FRONT_RESUMED_RESTARTED : FRONT_RESUMED_GAP);
		assert_int_equal(e.lost, i ? 0 : 200);
		assert_int_equal(front_format(&p->f, &e, true, false, line, sizeof(line)), 0);
		assert_string_equal(line, "");
	}
	assert_int_equal(p->f.book.epoch, 0x1111111111111111ULL);
	assert_int_equal(p->f.book.offset, 0);
}

/* The re-attach refused: live again (the session ends), held keystrokes counted. */
static void test_reconnect_refused(void **state)
{
	struct pair *p = *state;
	struct front_event e;
	enum escape_cmd cmd;
	size_t dropped;

	attached_writer(p);
	front_lost(&p->f);
	front_keys(&p->f, (const uint8_t *)"abc", 3, true, 0, &dropped, &cmd);
	broker_restart(p);
	assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub", NULL), 0);
	broker_send(p, json_pack("{s:s, s:s, s:s}", "type", "error", "code", "unknown-console",
				 "message", "no console named 'vm:serial0'"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_ERROR);
	assert_true(e.reconnected);
	assert_int_equal(e.keys_dropped, 3);
	assert_int_equal(p->f.link, FRONT_LIVE);
}

/* Nothing attached yet: a reconnect says hello only; before `attached`: a plain attach. */
static void test_reconnect_without_position(void **state)
{
	struct pair *p = *state;
	json_t *m;

	assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub", NULL), 0);
	assert_int_equal(p->f.link, FRONT_LIVE);
	json_decref(broker_recv(p));
	assert_int_equal(front_pending(&p->f), 0);

	assert_int_equal(front_attach(&p->f, "vm", ATTACH_FORCE, PROTO_REPLAY_DEFAULT), 0);
	json_decref(broker_recv(p));
	broker_restart(p);
	assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub", NULL), 0);
	json_decref(broker_recv(p));
	m = broker_recv(p);
	assert_member(m, "console", "vm");
	assert_member(m, "mode", "rw"); /* a force does not take over again */
	assert_null(json_object_get(m, "resume"));
	json_decref(m);

	/* Requests wait for the re-attach's answer. */
	assert_int_equal(front_attach_resume(&p->f, "vm", ATTACH_RO, 0, EPOCH, 42, NULL), -ENOTCONN);
}

/* --resume: the point asked goes on the wire, and a reconnect before any answer uses it. */
static void test_attach_resume_point(void **state)
{
	struct pair *p = *state;
	json_t *m;

	assert_int_equal(front_attach_resume(&p->f, "vm", ATTACH_RO, 0, EPOCH, 42, NULL), 0);
	m = broker_recv(p);
	assert_member(m, "mode", "ro");
	assert_member(json_object_get(m, "resume"), "epoch", EPOCH_HEX);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "resume"), "offset")),
			 42);
	json_decref(m);
	assert_true(p->f.book.positioned);
	assert_int_equal(p->f.book.offset, 42);
	broker_restart(p);
	assert_int_equal(front_reconnect(&p->f, p->fds[0], "ttyhub", NULL), 0);
	json_decref(broker_recv(p));
	m = broker_recv(p);
	assert_member(m, "mode", "ro");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "resume"), "offset")),
			 42);
	json_decref(m);
	assert_int_equal(front_attach_resume(&p->f, "vm", ATTACH_RO, 0, 0, 42, NULL), -EINVAL);
}

/*
 * Keystroke frames the socket took only part of: front_lost() holds the
 * whole frames still queued and nothing else, so every byte is either
 * with the broker, in a frame it got part of, or held/counted.
 */
static void test_lost_keeps_unsent_frames(void **state)
{
	struct pair *p = *state;
	static uint8_t keys[64 * 1024];
	size_t got = 0, partial = 0, used = 0, dropped;
	enum escape_cmd cmd;
	int small = 4096;

	assert_int_equal(setsockopt(p->fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(p->fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	memset(keys, 'k', sizeof(keys));
	while (used < sizeof(keys)) {
		used += front_keys(&p->f, keys + used, MIN(sizeof(keys) - used, 1000), true, 0,
				   &dropped, &cmd);
		assert_true(front_flush(&p->f) >= 0);
	}
	assert_true(front_pending(&p->f) > 0); /* the peer does not read */
	front_lost(&p->f);
	/* What reached the broker: whole frames, then maybe the head of one. */
	for (;;) {
		struct frame fr;
		int r = frame_reader_next(&p->in, &fr);

		if (r == 1) {
			assert_int_equal(fr.type, FRAME_DATA);
			got += fr.len;
			continue;
		}
		if (frame_reader_fill(&p->in, p->fds[1]) > 0)
			continue;
		if (p->in.len - p->in.off >= FRAME_HEADER)
			partial = (size_t)p->in.buf[p->in.off + 3] << 8 | p->in.buf[p->in.off + 4];
		break;
	}
	assert_int_equal(got + partial + p->f.held_len + p->f.held_over, sizeof(keys));
	assert_true(p->f.held_len > 0);
}

static void test_resume_hint(void **state)
{
	struct pair *p = *state;
	struct front_event e;
	char buf[256];

	assert_int_equal(front_resume_hint(&p->f, FRONT_HINT_CLI, NULL, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	attached_writer(p);
	broker_output(p, 100, 123, "abc");
	front_resume_hint(&p->f, FRONT_HINT_CLI, NULL, 0, buf, sizeof(buf));
	assert_string_equal(buf, "to continue where you left off: ttyhub attach vm:serial0 "
			    "--resume " EPOCH_HEX ":100");
	assert_int_equal(front_next_event(&p->f, &e), 1);
	front_resume_hint(&p->f, FRONT_HINT_SSH, "hub.example", 2222, buf, sizeof(buf));
	assert_string_equal(buf, "to continue where you left off: ssh -p 2222 vm:serial0+resume="
			    EPOCH_HEX ":123@hub.example");
	front_resume_hint(&p->f, FRONT_HINT_SSH, NULL, 22, buf, sizeof(buf));
	assert_string_equal(buf, "to continue where you left off: ssh vm:serial0+resume="
			    EPOCH_HEX ":123@HOST");
	/* Bounded, NUL-terminated, a prefix of the whole. */
	assert_int_equal(front_resume_hint(&p->f, FRONT_HINT_CLI, NULL, 0, buf, 10), 9);
	assert_string_equal(buf, "to contin");
	/* Who asked to watch only is told how to watch only again, in both styles. */
	p->f.book.mode = ATTACH_RO;
	front_resume_hint(&p->f, FRONT_HINT_SSH, "hub.example", 22, buf, sizeof(buf));
	assert_string_equal(buf, "to continue where you left off: ssh vm:serial0+ro+resume="
			    EPOCH_HEX ":123@hub.example");
	front_resume_hint(&p->f, FRONT_HINT_CLI, NULL, 0, buf, sizeof(buf));
	assert_string_equal(buf, "to continue where you left off: ttyhub attach vm:serial0 "
			    "--resume " EPOCH_HEX ":123 --ro");

	/* Names a shell would split are quoted; ro is kept. */
	assert_int_equal(front_attach_resume(&p->f, "my vm's", ATTACH_RO, 0, EPOCH, 7, NULL), 0);
	front_resume_hint(&p->f, FRONT_HINT_CLI, NULL, 0, buf, sizeof(buf));
	assert_string_equal(buf, "to continue where you left off: ttyhub attach 'my vm'\\''s' "
			    "--resume " EPOCH_HEX ":7 --ro");
}

static void test_backoff(void **state)
{
	static const uint64_t want[] = { 0, 50, 100, 200, 400, 800, 1000, 1000 };
	struct front_backoff b;
	uint64_t now = 1000000, d;
	char text[128];

	(void)state;
	front_backoff_start(&b, now);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_true(front_backoff_next(&b, now, &d));
		assert_int_equal(d, want[i] * 1000);
		now += d;
	}
	/* Never past the give-up point, and false from it on. */
	now = b.since + FRONT_GIVE_UP_USEC - 300000;
	assert_true(front_backoff_next(&b, now, &d));
	assert_int_equal(d, 300000);
	assert_false(front_backoff_next(&b, b.since + FRONT_GIVE_UP_USEC, &d));
	front_give_up_text(text, sizeof(text));
	assert_string_equal(text, "ttyhubd did not come back within 60 s; giving up");
}

/* The answer to `output`: contents (UTF-8, by its length), offsets, expiry. */
static void test_output_answer(void **state)
{
	struct pair *p = *state;
	struct front_event e;
	json_t *m;

	assert_int_equal(front_output(&p->f, "vm", true, -100, 0), 0);
	m = broker_recv(p);
	assert_member(m, "type", "output");
	assert_int_equal(json_integer_value(json_object_get(m, "start")), -100);
	assert_null(json_object_get(m, "max"));
	json_decref(m);
	broker_send(p, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s#, s:b, s:b, s:I}", "type",
				 "output", "console", "vm:serial0", "epoch", EPOCH_HEX, "start",
				 (json_int_t)10, "next", (json_int_t)14, "head", (json_int_t)20,
				 "contents", "a\xc3\xa9" "bc", (int)5, "more", 1, "expired", 1, "lost",
				 (json_int_t)10));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_OUTPUT);
	assert_int_equal(e.len, 5);
	assert_memory_equal(e.data, "a\xc3\xa9" "bc", 5);
	assert_int_equal(e.start, 10);
	assert_int_equal(e.end, 14);
	assert_int_equal(e.epoch, EPOCH);
	assert_true(e.more);
	assert_true(e.expired);
	assert_int_equal(e.lost, 10);
	assert_int_equal(front_event_text(&p->f, &e, (char[8]){}, 8), 0);
}


/* Web links: the requests on the wire and the answers as events (docs/protocol.md). */
static void test_web_link(void **state)
{
	struct pair *p = *state;
	struct front_event e;
	json_t *m;

	assert_int_equal(front_web_link(&p->f, "vm:serial0", true), 0);
	m = broker_recv(p);
	assert_member(m, "type", "web-link");
	assert_member(m, "console", "vm:serial0");
	assert_true(json_is_true(json_object_get(m, "ro")));
	json_decref(m);
	assert_int_equal(front_web_link(&p->f, "vm", false), 0);
	m = broker_recv(p);
	assert_true(json_is_false(json_object_get(m, "ro")));
	json_decref(m);
	/* A name that is not UTF-8 cannot go on the wire. */
	assert_int_equal(front_web_link(&p->f, "\xff", false), -EINVAL);

	broker_send(p, json_pack("{s:s, s:s, s:s, s:I}", "type", "web-link", "url",
				 "https://h/#t=abc&c=vm%3Aserial0", "console", "vm:serial0",
				 "expires_in", (json_int_t)60));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_WEB_LINK);
	assert_string_equal(e.url, "https://h/#t=abc&c=vm%3Aserial0");
	assert_string_equal(e.console, "vm:serial0");
	assert_int_equal(e.expires_in, 60);
	/* The link is the caller's to print: no user text (it holds a token). */
	assert_int_equal(front_event_text(&p->f, &e, (char[64]){}, 64), 0);

	assert_int_equal(front_redeem(&p->f, "TOKEN", "192.0.2.9"), 0);
	m = broker_recv(p);
	assert_member(m, "type", "redeem");
	assert_member(m, "token", "TOKEN");
	assert_member(m, "from", "192.0.2.9");
	json_decref(m);
	assert_int_equal(front_redeem(&p->f, "TOKEN", NULL), 0);
	m = broker_recv(p);
	assert_null(json_object_get(m, "from"));
	json_decref(m);
	broker_send(p, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "type", "redeemed", "session",
				 "SECRET", "console", "vm:serial0", "access", "ro", "expires_in",
				 (json_int_t)43200, "you", "alice (web SHA256:x)"));
	assert_int_equal(front_next_event(&p->f, &e), 1);
	assert_int_equal(e.type, FRONT_EV_REDEEMED);
	assert_string_equal(e.session, "SECRET");
	assert_string_equal(e.console, "vm:serial0");
	assert_int_equal(e.access, ATTACH_RO);
	assert_int_equal(e.expires_in, 43200);
	assert_string_equal(e.you, "alice (web SHA256:x)");
	assert_int_equal(front_event_text(&p->f, &e, (char[64]){}, 64), 0);

	assert_int_equal(front_hello_session(&p->f, "ttyhub-webd", "SECRET", "192.0.2.9"), 0);
	m = broker_recv(p);
	assert_member(m, "type", "hello");
	assert_member(m, "client", "ttyhub-webd");
	assert_member(m, "session", "SECRET");
	assert_member(m, "from", "192.0.2.9");
	assert_null(json_object_get(m, "principal"));
	assert_int_equal(json_integer_value(json_object_get(m, "version")), PROTO_VERSION);
	json_decref(m);
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
		cmocka_unit_test_setup_teardown(test_hello_for_a_gateway_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_speaks_for_a_principal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escape_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escape_actions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_stop_at_a_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_of_a_watcher_are_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_leave_the_reserve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test(test_detach_status_by_reason),
		cmocka_unit_test_setup_teardown(test_list_pieces_joined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_message_then_more, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bookkeeping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_resumes_as_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_as_watcher_drops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_gap_and_restarted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_without_position, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_resume_point, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_keeps_unsent_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_hint, setup, teardown),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test_setup_teardown(test_output_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_web_link, setup, teardown),
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_prefix_in_texts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
