/* SPDX-License-Identifier: MIT */
/*
 * A broker client (broker/client.c) driven only through its socket, the way
 * a front drives it: hello, attach by VM name, guest output as data frames,
 * detach.  And a serial break through a source (a fake one here) that
 * answers later, answers at once, fails, or answers after the client is
 * gone: the answer reaches the client when it is there and harms nothing
 * when it is not.  The `output` request (start, negative start, expired
 * start, max, UTF-8 repaired and not cut at next), attach's resume member as
 * it comes off the wire, and an output frame from a client (bad-frame).
 * Web links and sessions: who may mint (a local admin, a key's connection;
 * not a bare front, not a session) and redeem (a front only), single use,
 * the URL's form, a session's hello and its rights (a ro link cannot write,
 * take or break), and a session revoked with its key on reload.  Gateways:
 * authorized's grant and gateway members, ping/pong, the speak-for hello
 * (only on a gateway key's connection, once, grant required), the rights it
 * gets (the intersection: a ro grant attaches as a watcher, a console
 * outside the gateway's line is unknown), what a gateway may not do
 * (authorize, web-link), and a reload that removes the gateway's line.
 * Rescue actions: answered later (notice, history line, action-done),
 * refused at once without using up the budget, sysrq on a console that is
 * not connected, an unknown action and a bad sysrq key.  A real server
 * struct (not listening) and sd-event loop.
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
#include "weblink.h"

/* A source whose breaks the test answers. */
struct fake_source {
	struct source source;
	struct break_req *pending; /* a break waiting for the test's answer */
	const char *refuse;        /* answer at once with this error message, if set */
	unsigned calls;
	char chardev_id[64];       /* of the last break's console */
	int action;                /* of the last send_action(), -1 none */
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

static void fake_send_action(struct source *s, struct console *c, struct break_req *req)
{
	((struct fake_source *)s)->action = (int)req->action;
	fake_send_break(s, c, req);
}

static const struct source_ops fake_ops = {
	.kind = "fake",
	.send_break = fake_send_break,
	.send_action = fake_send_action,
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
	fx->src.action = -1;
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

static void test_action_answered_later(void **state)
{
	struct fx *fx = *state;
	char want[CONSOLE_LABEL_MAX + 128], text[CONSOLE_LABEL_MAX + 64];
	struct break_req *req;
	json_t *msg;

	hello_attach(fx);
	snprintf(text, sizeof(text), "%s reset the guest", fx->cl->att.label);
	snprintf(want, sizeof(want), "\r\n[ttyhub] %s\r\n", text);
	peer_send(&fx->p, "{\"type\": \"action\", \"action\": \"reset\"}");
	LOOP_UNTIL(fx->e, fx->src.pending != NULL);
	assert_int_equal(fx->src.action, PROTO_ACTION_RESET);
	assert_string_equal(fx->src.pending->console, "vm:serial0");
	req = TAKE_PTR(fx->src.pending);
	req->done(req, 0, NULL);
	/* The history line (everyone attached sees it: the announcement), then the answer. */
	msg = peer_expect(&fx->p, fx->e, "action-done");
	assert_string_equal(str(msg, "console"), "vm:serial0");
	assert_string_equal(str(msg, "action"), "reset");
	assert_null(json_object_get(msg, "key"));
	json_decref(msg);
	LOOP_UNTIL(fx->e, (peer_drain(&fx->p), fx->p.data_len >= strlen(want)));
	assert_memory_equal(fx->p.data, want, strlen(want));
}

static void test_action_refused_at_once(void **state)
{
	struct fx *fx = *state;
	json_t *msg;

	hello_attach(fx);
	fx->src.refuse = "nmi needs --libvirt-power (a read-write libvirt connection)";
	/* More than the budget's burst: a refusal gives its share back. */
	for (unsigned i = 0; i < SERVER_BREAK_BURST + 2; i++) {
		msg = request(fx, "{\"type\": \"action\", \"action\": \"nmi\"}", "error");
		assert_string_equal(str(msg, "code"), PROTO_E_NOT_AVAILABLE);
		assert_string_equal(str(msg, "message"),
				    "cannot send nmi to vm:serial0: nmi needs --libvirt-power (a "
				    "read-write libvirt connection)");
		json_decref(msg);
	}
	assert_int_equal(fx->src.calls, SERVER_BREAK_BURST + 2);
}

static void test_action_bad_requests(void **state)
{
	struct fx *fx = *state;
	json_t *msg;

	hello_attach(fx);
	/* An unknown action: the denial a key without the right gets. */
	msg = request(fx, "{\"type\": \"action\", \"action\": \"frob\\u001b\"}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_DENIED);
	assert_string_equal(str(msg, "message"), "action frob\\x1b is not available to your key");
	json_decref(msg);
	msg = request(fx, "{\"type\": \"action\"}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_BAD_REQUEST);
	json_decref(msg);
	msg = request(fx, "{\"type\": \"action\", \"action\": \"sysrq\", \"key\": \"#\"}",
		      "error");
	assert_string_equal(str(msg, "code"), PROTO_E_BAD_REQUEST);
	assert_string_equal(str(msg, "message"),
			    "sysrq needs a \"key\": one of " PROTO_SYSRQ_KEYS);
	json_decref(msg);
	/* sysrq writes the key itself: the console must be connected (this one waits). */
	msg = request(fx, "{\"type\": \"action\", \"action\": \"sysrq\", \"key\": \"h\"}",
		      "error");
	assert_string_equal(str(msg, "code"), PROTO_E_NOT_AVAILABLE);
	assert_string_equal(str(msg, "message"),
			    "cannot send sysrq to vm:serial0: the console is not connected");
	json_decref(msg);
	/* No source: the console's origin says why. */
	fx->c->source = NULL;
	msg = request(fx, "{\"type\": \"action\", \"action\": \"powerdown\", "
			  "\"console\": \"vm\"}", "error");
	assert_string_equal(str(msg, "code"), PROTO_E_NOT_AVAILABLE);
	assert_non_null(strstr(str(msg, "message"), "this console's source cannot send powerdown"));
	json_decref(msg);
	assert_int_equal(fx->src.calls, 0);
	assert_int_equal(fx->c->chardev.hold, 0);
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


/* ---- web links and sessions ---- */

#define K_ALICE "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII026lAKIUUQNFesagY+PcAnWL785rysusQq/BFpES9B"
#define FP_ALICE "SHA256:B45ZyzIWk6bRLi+jKvtmUet2XAxh+j6D3g13qEsZqS0"
#define INVALID_LINK "this link is not valid (used, expired or unknown)"

/* Another connection, as the server's accept makes one: a front, a local admin, or both. */
static struct client *add_client(struct fx *fx, bool front, bool admin, struct peer *p)
{
	struct client *c;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(client_new(&fx->s.client_env, sv[0], &c), 0);
	c->front = front;
	c->admin = admin;
	snprintf(c->user, sizeof(c->user), "tester");
	TAILQ_INSERT_TAIL(&fx->s.clients, c, server_entry);
	fx->s.n_clients++;
	peer_init(p, sv[1]);
	return c;
}

static json_t *ask(struct fx *fx, struct peer *p, const char *text, const char *type)
{
	peer_send(p, text);
	return peer_expect(p, fx->e, type);
}

static void expect_error(struct fx *fx, struct peer *p, const char *text, const char *code,
			 const char *message)
{
	json_t *msg = ask(fx, p, text, "error");

	assert_string_equal(str(msg, "code"), code);
	if (message)
		assert_string_equal(str(msg, "message"), message);
	json_decref(msg);
}

/* The token of a link answer, checking the URL's form. */
static void link_token(json_t *msg, char token[WEBLINK_TEXT_LEN + 1])
{
	const char *url = str(msg, "url");
	const char *t = strstr(url, "#t=");

	assert_non_null(t);
	assert_null(strchr(url, '?'));
	assert_int_equal(t - url, (ptrdiff_t)strlen("https://example.test/web/"));
	assert_memory_equal(url, "https://example.test/web/", t - url);
	memcpy(token, t + 3, WEBLINK_TEXT_LEN);
	token[WEBLINK_TEXT_LEN] = '\0';
	assert_string_equal(t + 3 + WEBLINK_TEXT_LEN, "&c=vm%3Aserial0");
	assert_string_equal(str(msg, "console"), "vm:serial0");
	assert_int_equal(num(msg, "expires_in"), 60);
}

static void web_on(struct fx *fx)
{
	assert_int_equal(server_set_web(&fx->s, "https://example.test/web/", 0, 0), 0);
	snprintf(fx->cl->user, sizeof(fx->cl->user), "tester");
}

/* Mint (on the admin's connection fx->p) and redeem (on front f); returns the answer. */
static json_t *mint_redeem(struct fx *fx, struct peer *f, bool ro)
{
	char token[WEBLINK_TEXT_LEN + 1], req[256];
	json_t *msg;

	msg = request(fx, ro ? "{\"type\": \"web-link\", \"console\": \"vm\", \"ro\": true}"
			     : "{\"type\": \"web-link\", \"console\": \"vm\", \"ro\": false}",
		      "web-link");
	link_token(msg, token);
	json_decref(msg);
	snprintf(req, sizeof(req), "{\"type\": \"redeem\", \"token\": \"%s\", \"from\": \"::1\"}",
		 token);
	return ask(fx, f, req, "redeemed");
}

static void session_hello(struct fx *fx, struct peer *p, const char *secret, const char *you)
{
	char req[256];
	json_t *msg;

	snprintf(req, sizeof(req), "{\"type\": \"hello\", \"version\": 1, \"session\": \"%s\", "
		 "\"from\": \"127.0.0.1\"}", secret);
	msg = ask(fx, p, req, "hello");
	assert_string_equal(str(msg, "you"), you);
	json_decref(msg);
}

static void test_web_link_admin(void **state)
{
	struct fx *fx = *state;
	struct peer f, sp, bare;
	char token[WEBLINK_TEXT_LEN + 1], req[256], secret[WEBLINK_TEXT_LEN + 1];
	json_t *msg;

	say_hello(fx);
	/* No --web-url: off. */
	expect_error(fx, &fx->p, "{\"type\": \"web-link\", \"console\": \"vm\", \"ro\": false}",
		     PROTO_E_NOT_AVAILABLE, "ttyhubd has no --web-url: web links are off");
	web_on(fx);
	expect_error(fx, &fx->p, "{\"type\": \"web-link\", \"console\": \"nope\", \"ro\": false}",
		     PROTO_E_UNKNOWN_CONSOLE, "no console named 'nope'");
	expect_error(fx, &fx->p, "{\"type\": \"web-link\", \"console\": \"vm\", \"ro\": 1}",
		     PROTO_E_BAD_REQUEST, NULL);
	msg = request(fx, "{\"type\": \"web-link\", \"console\": \"vm\", \"ro\": false}", "web-link");
	link_token(msg, token);
	json_decref(msg);
	/* A local admin that is no front may not redeem. */
	snprintf(req, sizeof(req), "{\"type\": \"redeem\", \"token\": \"%s\", \"from\": \"::1\"}",
		 token);
	expect_error(fx, &fx->p, req, PROTO_E_DENIED, "only a front may redeem a web link");
	/* A bare front may not mint, but it redeems: once. */
	add_client(fx, true, false, &f);
	json_decref(ask(fx, &f, "{\"type\": \"hello\", \"version\": 1}", "hello"));
	expect_error(fx, &f, "{\"type\": \"web-link\", \"console\": \"vm\", \"ro\": false}",
		     PROTO_E_DENIED, NULL);
	msg = ask(fx, &f, req, "redeemed");
	assert_string_equal(str(msg, "console"), "vm:serial0");
	assert_string_equal(str(msg, "access"), "rw");
	assert_string_equal(str(msg, "you"), "local admin tester (web)");
	assert_int_equal(num(msg, "expires_in"), WEBLINK_SESSION_TTL_DEFAULT);
	assert_int_equal(strlen(str(msg, "session")), WEBLINK_TEXT_LEN);
	snprintf(secret, sizeof(secret), "%s", str(msg, "session"));
	json_decref(msg);
	expect_error(fx, &f, req, PROTO_E_DENIED, INVALID_LINK);
	expect_error(fx, &f, "{\"type\": \"redeem\", \"token\": \"nope\"}", PROTO_E_DENIED,
		     INVALID_LINK);
	expect_error(fx, &f, "{\"type\": \"redeem\"}", PROTO_E_BAD_REQUEST, NULL);

	/* The session: a local admin's rights, but neither mint nor redeem. */
	add_client(fx, true, false, &sp);
	session_hello(fx, &sp, secret, "local admin tester (web)");
	msg = ask(fx, &sp, "{\"type\": \"attach\", \"console\": \"vm\", \"mode\": \"rw\", "
			   "\"replay\": 0}", "attached");
	assert_string_equal(str(msg, "role"), "writer");
	assert_string_equal(str(msg, "access"), "rw");
	json_decref(msg);
	expect_error(fx, &sp, "{\"type\": \"web-link\", \"console\": \"vm\", \"ro\": false}",
		     PROTO_E_DENIED, NULL);
	expect_error(fx, &sp, req, PROTO_E_DENIED, "only a front may redeem a web link");
	/* A session from a peer that is no front: denied and closed. */
	add_client(fx, false, true, &bare);
	snprintf(req, sizeof(req), "{\"type\": \"hello\", \"version\": 1, \"session\": \"%s\"}",
		 secret);
	expect_error(fx, &bare, req, PROTO_E_DENIED, NULL);
	LOOP_UNTIL(fx->e, fx->s.n_clients == 3);
	peer_done(&f);
	peer_done(&sp);
	peer_done(&bare);
}

static void test_web_session_ro(void **state)
{
	struct fx *fx = *state;
	struct peer f, sp, bad;
	json_t *msg;
	char secret[WEBLINK_TEXT_LEN + 1];

	web_on(fx);
	say_hello(fx);
	add_client(fx, true, false, &f);
	json_decref(ask(fx, &f, "{\"type\": \"hello\", \"version\": 1}", "hello"));
	msg = mint_redeem(fx, &f, true);
	assert_string_equal(str(msg, "access"), "ro");
	snprintf(secret, sizeof(secret), "%s", str(msg, "session"));
	json_decref(msg);
	add_client(fx, true, true, &sp); /* even a front that is a local admin gets only ro */
	session_hello(fx, &sp, secret, "local admin tester (web)");
	msg = ask(fx, &sp, "{\"type\": \"attach\", \"console\": \"vm\", \"mode\": \"rw\", "
			   "\"replay\": 0}", "attached");
	assert_string_equal(str(msg, "role"), "watcher");
	assert_string_equal(str(msg, "access"), "ro");
	assert_false(json_is_true(json_object_get(msg, "break")));
	json_decref(msg);
	expect_error(fx, &sp, "{\"type\": \"take\", \"force\": true}", PROTO_E_DENIED, NULL);
	expect_error(fx, &sp, "{\"type\": \"break\"}", PROTO_E_DENIED,
		     "your key may not send a serial break");
	assert_int_equal(fx->src.calls, 0);
	/* Its keystrokes are discarded: the hint, and nothing for the console. */
	assert_int_equal(proto_put_data(&sp.out, "typed", 5), 0);
	assert_true(obuf_flush(&sp.out, sp.fd) >= 0);
	msg = peer_expect(&sp, fx->e, "error");
	assert_string_equal(str(msg, "code"), PROTO_E_READ_ONLY);
	json_decref(msg);
	assert_null(fx->c->writer);
	/* An unknown session: denied, closed. */
	add_client(fx, true, false, &bad);
	expect_error(fx, &bad, "{\"type\": \"hello\", \"version\": 1, \"session\": "
			       "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
		     PROTO_E_DENIED, "web session expired");
	LOOP_UNTIL(fx->e, fx->s.n_clients == 3);
	peer_done(&f);
	peer_done(&sp);
	peer_done(&bad);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_web_session_key_revoked(void **state)
{
	struct fx *fx = *state;
	struct peer k, f, sp, again, wrong;
	char path[] = "/tmp/ttyhub-unit-access-XXXXXX", secret[WEBLINK_TEXT_LEN + 1];
	char req[512];
	struct client *scl;
	unsigned sid;
	json_t *msg;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	write_file(path, "from=\"127.0.0.1\",consoles=\"vm:rw\" " K_ALICE " alice@test\n");
	assert_int_equal(server_policy_reload(&fx->s, path), 0);
	web_on(fx);
	/* A key's connection mints for the key. */
	add_client(fx, true, false, &k);
	json_decref(ask(fx, &k, "{\"type\": \"hello\", \"version\": 1, \"principal\": {\"key\": \""
			K_ALICE "\", \"from\": \"127.0.0.1\"}}", "hello"));
	msg = ask(fx, &k, "{\"type\": \"web-link\", \"console\": \"vm\", \"ro\": false}", "web-link");
	{
		const char *t = strstr(str(msg, "url"), "#t=");

		assert_non_null(t);
		snprintf(req, sizeof(req), "{\"type\": \"redeem\", \"token\": \"%.43s\"}", t + 3);
	}
	json_decref(msg);
	add_client(fx, true, false, &f);
	json_decref(ask(fx, &f, "{\"type\": \"hello\", \"version\": 1}", "hello"));
	msg = ask(fx, &f, req, "redeemed");
	assert_string_equal(str(msg, "access"), "rw");
	assert_string_equal(str(msg, "you"), "alice@test (web " FP_ALICE ")");
	snprintf(secret, sizeof(secret), "%s", str(msg, "session"));
	json_decref(msg);
	scl = add_client(fx, true, false, &sp);
	sid = scl->id;
	session_hello(fx, &sp, secret, "alice@test (web " FP_ALICE ")");
	msg = ask(fx, &sp, "{\"type\": \"attach\", \"console\": \"vm\", \"mode\": \"rw\", "
			   "\"replay\": 0}", "attached");
	assert_string_equal(str(msg, "role"), "writer");
	json_decref(msg);
	/* The browser's address must be one from= admits. */
	add_client(fx, true, false, &wrong);
	snprintf(req, sizeof(req), "{\"type\": \"hello\", \"version\": 1, \"session\": \"%s\", "
		 "\"from\": \"192.0.2.1\"}", secret);
	expect_error(fx, &wrong, req, PROTO_E_DENIED, "key not allowed");
	LOOP_UNTIL(fx->e, fx->s.n_clients == 4);
	/* The key leaves the file: the session's connection is revoked, the session gone. */
	write_file(path, "# nobody any more\n");
	assert_int_equal(server_policy_reload(&fx->s, path), 0);
	msg = peer_expect(&sp, fx->e, "error");
	assert_string_equal(str(msg, "code"), PROTO_E_REVOKED);
	json_decref(msg);
	LOOP_UNTIL(fx->e, !server_find_client(&fx->s, sid));
	assert_int_equal(fx->s.weblink->sessions.n, 0);
	add_client(fx, true, false, &again);
	snprintf(req, sizeof(req), "{\"type\": \"hello\", \"version\": 1, \"session\": \"%s\"}",
		 secret);
	expect_error(fx, &again, req, PROTO_E_DENIED, "web session expired");
	unlink(path);
	peer_done(&k);
	peer_done(&f);
	peer_done(&sp);
	peer_done(&again);
	peer_done(&wrong);
}

/* ---- gateways ---- */

/*
 * A gateway's broker (--no-consoles): a web link names a host's console as
 * given, a redeemed rw link stays rw (the host decides), and a session's
 * hello tells the gateway the key, its grant (narrowed for a ro link) and
 * the console.  A key whose line grants nothing gets no link.
 */
static json_t *gw_session(struct fx *fx, struct peer *k, const char *link_req, struct peer *f,
			  struct peer *sp, const char *access)
{
	char req[512];
	json_t *msg;

	msg = ask(fx, k, link_req, "web-link");
	assert_string_equal(str(msg, "console"), "h2/web01");
	{
		const char *t = strstr(str(msg, "url"), "#t=");

		assert_non_null(t);
		assert_string_equal(t + 3 + WEBLINK_TEXT_LEN, "&c=h2%2Fweb01");
		snprintf(req, sizeof(req), "{\"type\": \"redeem\", \"token\": \"%.43s\"}", t + 3);
	}
	json_decref(msg);
	msg = ask(fx, f, req, "redeemed");
	assert_string_equal(str(msg, "access"), access);
	assert_string_equal(str(msg, "console"), "h2/web01");
	snprintf(req, sizeof(req), "{\"type\": \"hello\", \"version\": 1, \"session\": \"%s\", "
		 "\"from\": \"127.0.0.1\"}", str(msg, "session"));
	json_decref(msg);
	add_client(fx, true, false, sp);
	return ask(fx, sp, req, "hello");
}

static void test_web_link_no_consoles(void **state)
{
	struct fx *fx = *state;
	struct peer k, f, sp, sp2;
	char path[] = "/tmp/ttyhub-unit-access-XXXXXX";
	json_t *msg, *p;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	write_file(path, "consoles=\"web*:rw\",break " K_ALICE " alice@test\n");
	assert_int_equal(server_policy_reload(&fx->s, path), 0);
	fx->s.client_env.no_consoles = true;
	web_on(fx);
	add_client(fx, true, false, &k);
	json_decref(ask(fx, &k, "{\"type\": \"hello\", \"version\": 1, \"principal\": {\"key\": \""
			K_ALICE "\", \"from\": \"127.0.0.1\"}}", "hello"));
	add_client(fx, true, false, &f);
	json_decref(ask(fx, &f, "{\"type\": \"hello\", \"version\": 1}", "hello"));
	/* Any printable name of 1..512 bytes; nothing else. */
	expect_error(fx, &k, "{\"type\": \"web-link\", \"console\": \"\", \"ro\": false}",
		     PROTO_E_UNKNOWN_CONSOLE, NULL);
	expect_error(fx, &k, "{\"type\": \"web-link\", \"console\": \"a\\u0001b\", \"ro\": false}",
		     PROTO_E_UNKNOWN_CONSOLE, NULL);
	msg = gw_session(fx, &k, "{\"type\": \"web-link\", \"console\": \"h2/web01\", "
			 "\"ro\": false}", &f, &sp, "rw");
	p = json_object_get(msg, "principal");
	assert_string_equal(str(p, "fingerprint"), FP_ALICE);
	assert_string_equal(str(p, "key"), K_ALICE);
	assert_string_equal(str(p, "grant"), "consoles=\"web*:rw\",break");
	assert_string_equal(str(p, "console"), "h2/web01");
	json_decref(msg);
	/* A ro link: the grant narrowed to watching, no flags. */
	msg = gw_session(fx, &k, "{\"type\": \"web-link\", \"console\": \"h2/web01\", "
			 "\"ro\": true}", &f, &sp2, "ro");
	p = json_object_get(msg, "principal");
	assert_string_equal(str(p, "grant"), "consoles=\"web*:ro\"");
	json_decref(msg);
	/* A line that grants no console: no link, in the same words as for an unknown console. */
	write_file(path, "break " K_ALICE " alice@test\n");
	assert_int_equal(server_policy_reload(&fx->s, path), 0);
	expect_error(fx, &k, "{\"type\": \"web-link\", \"console\": \"h2/web01\", \"ro\": false}",
		     PROTO_E_UNKNOWN_CONSOLE, "no console named 'h2/web01'");
	unlink(path);
	peer_done(&k);
	peer_done(&f);
	peer_done(&sp);
	peer_done(&sp2);
}

#define K_GW "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBNg7fXewkoK5IwoYWN8sRt4bPR55xPhf2txQpHhoTQC"
#define FP_GW "SHA256:2N2HnIRKlTF4XaHe3qI5aJp8gnn4PWyBWyl7tnuN2MA"
#define HELLO_GW                                                                       \
	"{\"type\": \"hello\", \"version\": 1, \"client\": \"ttyhub-sshd\", \"principal\": " \
	"{\"key\": \"" K_GW "\", \"from\": \"10.0.0.9\"}}"
#define SPEAK_ALICE(grant)                                                              \
	"{\"type\": \"hello\", \"version\": 1, \"client\": \"ttyhub-sshd\", \"principal\": " \
	"{\"key\": \"" K_ALICE "\", \"from\": \"192.0.2.7\", \"grant\": \"" grant "\", "      \
	"\"comment\": \"alice@laptop\"}}"
#define NO_LINKS "web links cannot be minted through a gateway"

/* An access file in a temporary path (made on the first call), loaded; the caller unlinks path. */
static void load_access(struct fx *fx, char path[], const char *text)
{
	size_t n = strlen(path);

	if (n >= 6 && strcmp(path + n - 6, "XXXXXX") == 0) {
		int fd = mkstemp(path);

		assert_true(fd >= 0);
		close(fd);
	}
	write_file(path, text);
	assert_int_equal(server_policy_reload(&fx->s, path), 0);
}

static void test_gateway_authorized_and_ping(void **state)
{
	struct fx *fx = *state;
	char path[] = "/tmp/ttyhub-unit-access-XXXXXX";
	struct peer f;
	json_t *msg;

	load_access(fx, path, "gateway,consoles=\"vm*:rw\",break " K_GW " gw@gateway\n"
			      "consoles=\"vm:ro\" " K_ALICE " alice@test\n");
	add_client(fx, true, false, &f);
	json_decref(ask(fx, &f, "{\"type\": \"hello\", \"version\": 1}", "hello"));
	msg = ask(fx, &f, "{\"type\": \"ping\"}", "pong");
	assert_int_equal(json_object_size(msg), 1); /* just the type */
	json_decref(msg);
	msg = ask(fx, &f, "{\"type\": \"authorize\", \"key\": \"" K_GW "\", \"from\": \"::1\"}",
		  "authorized");
	assert_string_equal(str(msg, "grant"), "consoles=\"vm*:rw\",break");
	assert_true(json_is_true(json_object_get(msg, "gateway")));
	assert_string_equal(str(msg, "fingerprint"), FP_GW);
	json_decref(msg);
	msg = ask(fx, &f, "{\"type\": \"authorize\", \"key\": \"" K_ALICE "\", \"from\": \"::1\"}",
		  "authorized");
	assert_string_equal(str(msg, "grant"), "consoles=\"vm:ro\"");
	assert_true(json_is_false(json_object_get(msg, "gateway")));
	json_decref(msg);
	/* A line that is not UTF-8 cannot go into JSON: answered, granting nothing. */
	load_access(fx, path, "consoles=\"vm\xff:rw\" " K_ALICE " alice@test\n");
	msg = ask(fx, &f, "{\"type\": \"authorize\", \"key\": \"" K_ALICE "\", \"from\": \"::1\"}",
		  "authorized");
	assert_string_equal(str(msg, "grant"), "");
	json_decref(msg);
	/* A ping before hello is refused like anything else. */
	{
		struct peer early;

		add_client(fx, true, false, &early);
		expect_error(fx, &early, "{\"type\": \"ping\"}", PROTO_E_BAD_REQUEST,
			     "the first request must be \"hello\"");
		peer_done(&early);
	}
	unlink(path);
	peer_done(&f);
}

static void test_gateway_speak_for(void **state)
{
	struct fx *fx = *state;
	char path[] = "/tmp/ttyhub-unit-access-XXXXXX";
	struct peer g, k;
	struct client *gcl;
	json_t *msg;

	/* The gateway may speak for vm* (rw, break); alice's grant says ro. */
	load_access(fx, path, "gateway,consoles=\"vm*:rw\",break " K_GW " gw@gateway\n");
	gcl = add_client(fx, true, false, &g);
	msg = ask(fx, &g, HELLO_GW, "hello");
	assert_string_equal(str(msg, "you"), "gw@gateway (ssh " FP_GW ")");
	json_decref(msg);
	/* What a gateway's connection may not do, before and after it speaks for a user. */
	expect_error(fx, &g, "{\"type\": \"web-link\", \"console\": \"vm\"}", PROTO_E_DENIED,
		     NO_LINKS);
	expect_error(fx, &g, "{\"type\": \"authorize\", \"key\": \"" K_ALICE "\", "
		     "\"from\": \"::1\"}", PROTO_E_DENIED,
		     "a gateway's connection may not authorize a key");
	/* Malformed speak-for hellos leave it the gateway's. */
	expect_error(fx, &g, "{\"type\": \"hello\", \"version\": 1, \"principal\": {\"key\": \""
		     K_ALICE "\", \"from\": \"192.0.2.7\"}}", PROTO_E_BAD_REQUEST, NULL);
	expect_error(fx, &g, SPEAK_ALICE("command=\\\"x\\\""), PROTO_E_BAD_REQUEST,
		     "principal's grant: unknown option \"command\"");
	expect_error(fx, &g, "{\"type\": \"hello\", \"version\": 1, \"principal\": {\"key\": "
		     "\"ssh-ed25519 AAAA\", \"from\": \"192.0.2.7\", \"grant\": \"\"}}",
		     PROTO_E_BAD_REQUEST, NULL);
	assert_true(principal_is_gateway(gcl->principal));
	msg = ask(fx, &g, SPEAK_ALICE("consoles=\\\"*:ro\\\",break"), "hello");
	assert_string_equal(str(msg, "you"),
			    "alice@laptop (ssh " FP_ALICE ", via gateway gw@gateway)");
	assert_string_equal(str(json_object_get(msg, "principal"), "fingerprint"), FP_ALICE);
	json_decref(msg);
	assert_non_null(gcl->principal->via);
	/* Once only. */
	expect_error(fx, &g, SPEAK_ALICE("consoles=\\\"*:rw\\\""), PROTO_E_BAD_REQUEST,
		     "hello was already sent");
	expect_error(fx, &g, "{\"type\": \"web-link\", \"console\": \"vm\"}", PROTO_E_DENIED,
		     NO_LINKS);
	/* The ro grant: rw asked, a watcher given; no take, no break. */
	msg = ask(fx, &g, "{\"type\": \"list\"}", "list");
	assert_int_equal(json_array_size(json_object_get(msg, "consoles")), 1);
	assert_string_equal(str(json_array_get(json_object_get(msg, "consoles"), 0), "access"),
			    "ro");
	json_decref(msg);
	msg = ask(fx, &g, "{\"type\": \"attach\", \"console\": \"vm\", \"mode\": \"rw\", "
			  "\"replay\": 0}", "attached");
	assert_string_equal(str(msg, "role"), "watcher");
	assert_string_equal(str(msg, "access"), "ro");
	assert_true(json_is_false(json_object_get(msg, "break")));
	json_decref(msg);
	expect_error(fx, &g, "{\"type\": \"take\", \"force\": true}", PROTO_E_DENIED, NULL);
	expect_error(fx, &g, "{\"type\": \"break\"}", PROTO_E_DENIED,
		     "your key may not send a serial break");
	json_decref(ask(fx, &g, "{\"type\": \"ping\"}", "pong"));
	/* A key without the gateway option may not speak for anyone. */
	load_access(fx, path, "gateway,consoles=\"vm*:rw\",break " K_GW " gw@gateway\n"
			      "consoles=\"*:rw\" " K_ALICE " alice@test\n");
	add_client(fx, true, false, &k);
	json_decref(ask(fx, &k, "{\"type\": \"hello\", \"version\": 1, \"principal\": {\"key\": \""
			K_ALICE "\", \"from\": \"::1\"}}", "hello"));
	expect_error(fx, &k, SPEAK_ALICE("consoles=\\\"*:rw\\\""), PROTO_E_BAD_REQUEST,
		     "hello was already sent");
	unlink(path);
	peer_done(&g);
	peer_done(&k);
}

static void test_gateway_intersection_and_revoke(void **state)
{
	struct fx *fx = *state;
	char path[] = "/tmp/ttyhub-unit-access-XXXXXX";
	struct peer g, h;
	struct client *hcl;
	unsigned hid;
	json_t *msg;

	/* The gateway's line allows only web*: the console vm is not there for its users. */
	load_access(fx, path, "gateway,consoles=\"web*:rw\" " K_GW " gw@gateway\n");
	add_client(fx, true, false, &g);
	json_decref(ask(fx, &g, HELLO_GW, "hello"));
	json_decref(ask(fx, &g, SPEAK_ALICE("consoles=\\\"*:rw\\\",break"), "hello"));
	expect_error(fx, &g, "{\"type\": \"attach\", \"console\": \"vm\"}",
		     PROTO_E_UNKNOWN_CONSOLE, "no console named 'vm'");
	msg = ask(fx, &g, "{\"type\": \"list\"}", "list");
	assert_int_equal(json_array_size(json_object_get(msg, "consoles")), 0);
	json_decref(msg);
	/* The user's own line on the host (ro) caps a rw grant and a rw gateway line. */
	load_access(fx, path, "gateway,consoles=\"*:rw\",break " K_GW " gw@gateway\n"
			      "consoles=\"vm:ro\",break " K_ALICE " alice@host\n");
	hcl = add_client(fx, true, false, &h);
	hid = hcl->id;
	json_decref(ask(fx, &h, HELLO_GW, "hello"));
	msg = ask(fx, &h, SPEAK_ALICE("consoles=\\\"*:rw\\\",break"), "hello");
	assert_string_equal(str(msg, "you"), "alice@host (ssh " FP_ALICE ", via gateway gw@gateway)");
	json_decref(msg);
	msg = ask(fx, &h, "{\"type\": \"attach\", \"console\": \"vm\", \"mode\": \"rw\", "
			  "\"replay\": 0}", "attached");
	assert_string_equal(str(msg, "access"), "ro");
	json_decref(msg);
	/* The host widens alice's line: she may write now (re-evaluated on reload). */
	load_access(fx, path, "gateway,consoles=\"*:rw\",break " K_GW " gw@gateway\n"
			      "consoles=\"vm:rw\",break " K_ALICE " alice@host\n");
	json_decref(ask(fx, &h, "{\"type\": \"take\", \"force\": false}", "state"));
	assert_int_equal(hcl->att.right, ACCESS_RW);
	/* The gateway's line narrows to ro: the writer becomes a watcher. */
	load_access(fx, path, "gateway,consoles=\"*:ro\" " K_GW " gw@gateway\n"
			      "consoles=\"vm:rw\",break " K_ALICE " alice@host\n");
	for (;;) {
		bool demoted;

		msg = peer_expect(&h, fx->e, "notice"); /* "... now writes" may come first */
		demoted = strcmp(str(msg, "text"), "your key may now only watch vm:serial0") == 0;
		json_decref(msg);
		if (demoted)
			break;
	}
	assert_int_equal(hcl->att.right, ACCESS_RO);
	/* The gateway's line goes: its connections are revoked. */
	load_access(fx, path, "consoles=\"*:rw\" " K_GW " gw@gateway\n"
			      "consoles=\"vm:rw\",break " K_ALICE " alice@host\n");
	msg = peer_expect(&h, fx->e, "error");
	assert_string_equal(str(msg, "code"), PROTO_E_REVOKED);
	assert_string_equal(str(msg, "message"), "the gateway's key was removed from the access file");
	json_decref(msg);
	msg = peer_expect(&g, fx->e, "error");
	assert_string_equal(str(msg, "code"), PROTO_E_REVOKED);
	json_decref(msg);
	LOOP_UNTIL(fx->e, !server_find_client(&fx->s, hid));
	unlink(path);
	peer_done(&g);
	peer_done(&h);
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
		cmocka_unit_test_setup_teardown(test_action_answered_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_refused_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_action_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attach_resume_on_the_wire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_frame_from_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_web_link_admin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_web_session_ro, setup, teardown),
		cmocka_unit_test_setup_teardown(test_web_session_key_revoked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_web_link_no_consoles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_authorized_and_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_speak_for, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_intersection_and_revoke, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
