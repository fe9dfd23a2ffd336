/* SPDX-License-Identifier: MIT */
/*
 * A broker client (broker/client.c) driven only through its socket, the way
 * a front drives it: hello, attach by VM name, guest output as data frames,
 * detach.  And a serial break through a source (a fake one here) that
 * answers later, answers at once, fails, or answers after the client is
 * gone: the answer reaches the client when it is there and harms nothing
 * when it is not.  A real server struct (not listening) and sd-event loop.
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
