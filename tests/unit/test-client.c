/* SPDX-License-Identifier: MIT */
/*
 * A broker client (broker/client.c) driven only through its socket, the way
 * a front drives it: hello, attach by VM name, guest output as data frames,
 * detach.  And a serial break through a source (a fake one here) that
 * answers later, answers at once, fails, or answers after the client is
 * gone: the answer reaches the client when it is there and harms nothing
 * when it is not.  The `output` request (start, negative start, expired
 * start, max, UTF-8 repaired and not cut at next), attach's resume member as
 * it comes off the wire, and an output frame from a client (bad-frame).  A real server struct (not listening) and sd-event loop.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "broker-fixture.h"
#include "client.h"
#include "console.h"
#include "domain.h"
#include "server.h"
#include "source.h"
#include "util.h"

/* A source whose breaks the test answers. */
struct fake_source {
	struct source source;
	struct break_req *pending; /* a break waiting for the test's answer */
	const char *refuse;        /* answer at once with this error message, if set */
	unsigned calls;
	char chardev_id[64];       /* of the last break's console */
};

static void fake_send_break(struct source *s, struct console *c, struct break_req *req)
{
	struct fake_source *f = (struct fake_source *)s;

	f->calls++;
	snprintf(f->chardev_id, sizeof(f->chardev_id), "%s", c->chardev_id);
	if (f->refuse) {
		req->done(req, -ENOTCONN, f->refuse);
		return;
	}
	assert_null(f->pending);
	f->pending = req;
}

static const struct source_ops fake_ops = {
	.kind = "fake",
	.send_break = fake_send_break,
};

struct fx {
	sd_event *e;
	struct server s;
	struct fake_source src;
	struct console *c;
	struct client *cl;
	struct peer p;
};

static int setup(void **state)
{
	const struct server_config cfg = {
		.socket_path = "/nonexistent/ttyhub-unit.sock",
		.ring_size = 64 * 1024,
		.default_replay = 10,
		.admin_gid = (gid_t)-1,
		.max_clients = 16,
	};
	struct fx *fx = calloc(1, sizeof(*fx));
	int sv[2];

	assert_non_null(fx);
	fx->src.source.ops = &fake_ops;
	const struct console_spec spec = {
		.vm = "vm",
		.alias = "serial0",
		.origin = "test",
		.primary = true,
		.supported = true,
		.backend = DOMXML_BACKEND_UNIX,
		.type = "unix",
		.path = "/nonexistent/ttyhub-unit-guest.sock", /* waits for ever */
		.chardev_id = "charserial0",
		.source = &fx->src.source,
	};

	assert_int_equal(sd_event_new(&fx->e), 0);
	assert_int_equal(server_init(&fx->s, fx->e, &cfg), 0);
	assert_int_equal(domain_add_console(&fx->s.source_env, &spec, &fx->c), 0);
	/* What the server's accept does for a peer. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(client_new(&fx->s.client_env, sv[0], &fx->cl), 0);
	fx->cl->admin = true; /* a local admin: every right (policy.h) */
	TAILQ_INSERT_TAIL(&fx->s.clients, fx->cl, server_entry);
	fx->s.n_clients++;
	peer_init(&fx->p, sv[1]);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	assert_null(fx->src.pending); /* every break was answered */
	server_done(&fx->s);
	peer_done(&fx->p);
	sd_event_unref(fx->e);
	free(fx);
	return 0;
}

static const char *str(json_t *msg, const char *key)
{
	const char *s = json_string_value(json_object_get(msg, key));

	assert_non_null(s);
	return s;
}

/* Send a request and wait for the answer of type `type`. */
static json_t *request(struct fx *fx, const char *text, const char *type)
{
	peer_send(&fx->p, text);
	return peer_expect(&fx->p, fx->e, type);
}

static void hello_attach(struct fx *fx)
{
	json_t *msg;

	msg = request(fx, "{\"type\": \"hello\", \"version\": 1, \"client\": \"test\"}", "hello");
	assert_string_equal(str(msg, "you"), fx->cl->att.label);
	json_decref(msg);
	/* By VM name: its primary console. */
	msg = request(fx, "{\"type\": \"attach\", \"console\": \"vm\", \"mode\": \"rw\", "
			  "\"replay\": 0}", "attached");
	assert_string_equal(str(msg, "console"), "vm:serial0");
	assert_string_equal(str(msg, "role"), "writer");
	assert_string_equal(str(msg, "state"), "waiting");
	json_decref(msg);
	assert_ptr_equal(fx->cl->att.console, fx->c);
}

static void test_attach_data_detach(void **state)
{
	struct fx *fx = *state;
	const char *want = "\r\n[ttyhub] the guest says hello\r\n";
	json_t *msg;

	hello_attach(fx);
	console_mark(fx->c, "the guest says hello");
	LOOP_UNTIL(fx->e, (peer_drain(&fx->p), fx->p.data_len >= strlen(want)));
	assert_int_equal(fx->p.data_len, strlen(want));
	assert_memory_equal(fx->p.data, want, strlen(want));

	msg = request(fx, "{\"type\": \"detach\"}", "detached");
	assert_string_equal(str(msg, "console"), "vm:serial0");
	assert_string_equal(str(msg, "reason"), "requested");
	assert_string_equal(str(msg, "text"), "detached on request");
	json_decref(msg);
	assert_null(fx->cl->att.console);
	assert_int_equal(fx->c->n_clients, 0);
	assert_null(fx->c->writer);

	/* Detached: guest output no longer comes. */
	console_mark(fx->c, "not for you");
	loop_pump(fx->e);
	peer_drain(&fx->p);
	assert_int_equal(fx->p.data_len, strlen(want));
}

static void test_unknown_console(void **state)
{
	struct fx *fx = *state;
	json_t *msg;

	msg = request(fx, "{\"type\": \"hello\", \"version\": 1}", "hello");
	json_decref(msg);
	msg = request(fx, "{\"type\": \"attach\", \"console\": \"nope\"}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_UNKNOWN_CONSOLE);
	json_decref(msg);
	assert_null(fx->cl->att.console);
}

static void test_break_answered_later(void **state)
{
	struct fx *fx = *state;
	struct break_req *req;
	json_t *msg;

	hello_attach(fx);
	peer_send(&fx->p, "{\"type\": \"break\"}");
	LOOP_UNTIL(fx->e, fx->src.pending != NULL);
	assert_string_equal(fx->src.chardev_id, "charserial0");
	assert_string_equal(fx->src.pending->console, "vm:serial0");
	assert_int_equal(fx->src.pending->client_id, fx->cl->id);
	/* Nothing is said before the source answers. */
	loop_pump(fx->e);
	peer_drain(&fx->p);
	req = TAKE_PTR(fx->src.pending);
	req->done(req, 0, NULL);
	/* The console's clients hear who sent it, then the sender gets its answer. */
	msg = peer_expect(&fx->p, fx->e, "notice");
	assert_non_null(strstr(str(msg, "text"), "sent a serial break"));
	json_decref(msg);
	msg = peer_expect(&fx->p, fx->e, "break-sent");
	assert_string_equal(str(msg, "console"), "vm:serial0");
	json_decref(msg);
}

static void test_break_refused_at_once(void **state)
{
	struct fx *fx = *state;
	json_t *msg;

	hello_attach(fx);
	fx->src.refuse = "QEMU's monitor is not connected";
	msg = request(fx, "{\"type\": \"break\"}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_NOT_AVAILABLE);
	assert_string_equal(str(msg, "message"),
			    "cannot send a break to vm:serial0: QEMU's monitor is not connected");
	json_decref(msg);
	assert_int_equal(fx->src.calls, 1);
}

static void test_break_fails_later(void **state)
{
	struct fx *fx = *state;
	struct break_req *req;
	json_t *msg;

	hello_attach(fx);
	peer_send(&fx->p, "{\"type\": \"break\"}");
	LOOP_UNTIL(fx->e, fx->src.pending != NULL);
	req = TAKE_PTR(fx->src.pending);
	req->done(req, -EIO, "the chardev is not a serial port");
	msg = peer_expect(&fx->p, fx->e, "error");
	assert_string_equal(str(msg, "code"), PROTO_E_NOT_AVAILABLE);
	assert_string_equal(str(msg, "message"),
			    "break to vm:serial0 failed: the chardev is not a serial port");
	json_decref(msg);
}

static void test_break_answer_after_client_is_gone(void **state)
{
	struct fx *fx = *state;
	struct break_req *req;

	hello_attach(fx);
	peer_send(&fx->p, "{\"type\": \"break\"}");
	LOOP_UNTIL(fx->e, fx->src.pending != NULL);
	/* The front hangs up; the sweep frees the client. */
	close(fx->p.fd);
	fx->p.fd = -1;
	LOOP_UNTIL(fx->e, TAILQ_EMPTY(&fx->s.clients) && TAILQ_EMPTY(&fx->s.dead));
	assert_int_equal(fx->c->n_clients, 0);
	/* The answer finds nobody to tell, and frees the request (valgrind checks). */
	req = TAKE_PTR(fx->src.pending);
	req->done(req, 0, NULL);
	loop_pump(fx->e);
}

static void test_break_needs_a_source(void **state)
{
	struct fx *fx = *state;
	json_t *msg;

	hello_attach(fx);
	fx->c->source = NULL; /* as a console of --console or --domain-xml */
	msg = request(fx, "{\"type\": \"break\"}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_NOT_AVAILABLE);
	json_decref(msg);
	assert_int_equal(fx->src.calls, 0);
}

static int64_t num(json_t *msg, const char *key)
{
	json_t *v = json_object_get(msg, key);

	assert_true(json_is_integer(v));
	return (int64_t)json_integer_value(v);
}

static void say_hello(struct fx *fx)
{
	json_decref(request(fx, "{\"type\": \"hello\", \"version\": 1, \"client\": \"test\"}",
			    "hello"));
}

static void test_output_request(void **state)
{
	struct fx *fx = *state;
	char x[8191], epoch[PROTO_EPOCH_STRLEN + 1], *big;
	json_t *msg;

	say_hello(fx);
	/* Nothing yet: an empty answer at 0. */
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\"}", "output");
	assert_string_equal(str(msg, "console"), "vm:serial0");
	proto_epoch_to_string(ring_epoch(&fx->c->ring), epoch);
	assert_string_equal(str(msg, "epoch"), epoch);
	assert_true(num(msg, "start") == 0 && num(msg, "next") == 0 && num(msg, "head") == 0);
	assert_string_equal(str(msg, "contents"), "");
	assert_true(json_is_false(json_object_get(msg, "more")));
	assert_null(json_object_get(msg, "expired"));
	json_decref(msg);

	/* 8191 bytes, a euro sign across the default max, a stray byte, "end". */
	memset(x, 'x', sizeof(x));
	ring_write(&fx->c->ring, x, sizeof(x));
	ring_write(&fx->c->ring, "\xe2\x82\xac\xff" "end", 7);
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\"}", "output");
	/* Not cut inside the sequence: next stops before it, and more says so. */
	assert_true(num(msg, "start") == 0 && num(msg, "next") == 8191 && num(msg, "head") == 8198);
	assert_int_equal(strlen(str(msg, "contents")), 8191);
	assert_true(json_is_true(json_object_get(msg, "more")));
	json_decref(msg);
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"start\": 8191}", "output");
	assert_string_equal(str(msg, "contents"), "\xe2\x82\xac\xef\xbf\xbd" "end");
	assert_true(num(msg, "start") == 8191 && num(msg, "next") == 8198);
	assert_true(json_is_false(json_object_get(msg, "more")));
	json_decref(msg);
	/* max, and a max over the cap is the cap. */
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"start\": 2, \"max\": 5}",
		      "output");
	assert_string_equal(str(msg, "contents"), "xxxxx");
	assert_int_equal(num(msg, "next"), 7);
	json_decref(msg);
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"max\": 100000}", "output");
	assert_int_equal(num(msg, "next"), 8191);
	json_decref(msg);
	/* Negative: the last N bytes; more than there are: all of them. */
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"start\": -4}", "output");
	assert_string_equal(str(msg, "contents"), "\xef\xbf\xbd" "end");
	assert_int_equal(num(msg, "start"), 8194);
	json_decref(msg);
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"start\": -100000, "
			  "\"max\": 1}", "output");
	assert_int_equal(num(msg, "start"), 0);
	assert_null(json_object_get(msg, "expired"));
	json_decref(msg);
	/* Past head: an empty answer at head. */
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"start\": 99999}", "output");
	assert_true(num(msg, "start") == 8198 && num(msg, "next") == 8198);
	json_decref(msg);

	/* Expired: moved to the oldest byte, and says how much is gone. */
	big = malloc(70000);
	assert_non_null(big);
	memset(big, 'y', 70000);
	ring_write(&fx->c->ring, big, 70000);
	free(big);
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"start\": 10}", "output");
	assert_true(json_is_true(json_object_get(msg, "expired")));
	assert_int_equal(num(msg, "start"), (int64_t)ring_tail(&fx->c->ring));
	assert_int_equal(num(msg, "lost"), (int64_t)ring_tail(&fx->c->ring) - 10);
	assert_int_equal(num(msg, "next") - num(msg, "start"), PROTO_OUTPUT_MAX);
	json_decref(msg);

	/* Bad members, and a console it does not know. */
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"start\": \"0\"}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_BAD_REQUEST);
	json_decref(msg);
	msg = request(fx, "{\"type\": \"output\", \"console\": \"vm\", \"max\": -1}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_BAD_REQUEST);
	json_decref(msg);
	msg = request(fx, "{\"type\": \"output\", \"console\": \"nope\"}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_UNKNOWN_CONSOLE);
	json_decref(msg);
}

static void test_attach_resume_on_the_wire(void **state)
{
	struct fx *fx = *state;
	char text[256], epoch[PROTO_EPOCH_STRLEN + 1];
	json_t *msg;

	say_hello(fx);
	msg = request(fx, "{\"type\": \"attach\", \"console\": \"vm\", \"resume\": {\"epoch\": "
			  "\"xyz\", \"offset\": 1}}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_BAD_REQUEST);
	json_decref(msg);
	msg = request(fx, "{\"type\": \"attach\", \"console\": \"vm\", \"resume\": {\"epoch\": "
			  "\"0123456789abcdef\", \"offset\": -1}}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_BAD_REQUEST);
	json_decref(msg);
	msg = request(fx, "{\"type\": \"attach\", \"console\": \"vm\", \"resume\": {\"epoch\": "
			  "\"0123456789abcdef\", \"offset\": 1, \"lease\": \"zz\"}}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_BAD_REQUEST);
	json_decref(msg);
	assert_null(fx->cl->att.console);

	console_mark(fx->c, "before");
	proto_epoch_to_string(ring_epoch(&fx->c->ring), epoch);
	snprintf(text, sizeof(text), "{\"type\": \"attach\", \"console\": \"vm\", \"mode\": \"ro\", "
		 "\"resume\": {\"epoch\": \"%s\", \"offset\": 3}}", epoch);
	msg = request(fx, text, "attached");
	assert_string_equal(str(msg, "resumed"), "exact");
	assert_string_equal(str(msg, "epoch"), epoch);
	assert_int_equal(num(msg, "offset"), 3);
	json_decref(msg);
	/* The bytes from 3 on, raw, in output frames that say where they are. */
	LOOP_UNTIL(fx->e, (peer_drain(&fx->p), fx->p.out_end == ring_head(&fx->c->ring)));
	assert_int_equal(fx->p.data_len, ring_head(&fx->c->ring) - 3);
	assert_int_equal(fx->p.out_frames, 1);
	assert_int_equal(fx->p.out_start, 3);
}

static void test_output_frame_from_client(void **state)
{
	struct fx *fx = *state;
	json_t *msg;

	say_hello(fx);
	assert_int_equal(proto_put_output(&fx->p.out, 0, 1, "x", 1), 0);
	assert_true(obuf_flush(&fx->p.out, fx->p.fd) >= 0);
	msg = peer_expect(&fx->p, fx->e, "error");
	assert_string_equal(str(msg, "code"), PROTO_E_BAD_FRAME);
	json_decref(msg);
	LOOP_UNTIL(fx->e, TAILQ_EMPTY(&fx->s.clients) && TAILQ_EMPTY(&fx->s.dead));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_attach_data_detach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_console, setup, teardown),
		cmocka_unit_test_setup_teardown(test_break_answered_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_break_refused_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_break_fails_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_break_answer_after_client_is_gone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_break_needs_a_source, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_resume_on_the_wire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_frame_from_client, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
