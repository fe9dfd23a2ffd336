/* SPDX-License-Identifier: MIT */
/*
 * Console (broker/console.c) with real clients on socketpairs, a real
 * server struct (not listening) and a real sd-event loop: one writer at a
 * time, take-over only when forced, watchers that fall behind the ring get
 * one "dropped" notice and land on a line start while a reading watcher
 * loses nothing, and a writer whose input the guest does not take is
 * paused, then resumed (from the loop) when the guest drains or goes away.
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
#include "util.h"

#define MAX_CLIENTS 4

struct fx {
	sd_event *e;
	struct server s;
	struct console *c;
	struct guest g;
	bool have_guest;
	struct client *cl[MAX_CLIENTS];
	struct peer p[MAX_CLIENTS];
	unsigned n;
};

static void fx_start(struct fx *fx, size_t ring_size, bool guest)
{
	const struct server_config cfg = {
		.socket_path = "/nonexistent/ttyhub-unit.sock",
		.ring_size = ring_size,
		.default_replay = 10,
		.admin_gid = (gid_t)-1,
		.max_clients = 16,
	};
	struct console_spec spec = {
		.vm = "vm",
		.alias = "serial0",
		.origin = "test",
		.primary = true,
		.supported = true,
		.backend = DOMXML_BACKEND_UNIX,
		.type = "unix",
		.path = "/nonexistent/ttyhub-unit-guest.sock", /* waits for ever */
	};

	assert_int_equal(sd_event_new(&fx->e), 0);
	assert_int_equal(server_init(&fx->s, fx->e, &cfg), 0);
	if (guest) {
		guest_listen(&fx->g);
		fx->have_guest = true;
		spec.path = fx->g.path;
	}
	assert_int_equal(domain_add_console(&fx->s.source_env, &spec, &fx->c), 0);
	if (guest) {
		guest_accept(&fx->g, fx->e);
		assert_int_equal(fx->c->chardev.state, CHARDEV_CONNECTED);
	}
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	server_done(&fx->s); /* frees the console and the clients */
	for (unsigned i = 0; i < fx->n; i++)
		peer_done(&fx->p[i]);
	if (fx->have_guest)
		guest_done(&fx->g);
	sd_event_unref(fx->e);
	free(fx);
	return 0;
}

/* A client as the server's accept would make it, after hello. */
static unsigned add_client(struct fx *fx)
{
	unsigned i = fx->n++;
	int sv[2];
	json_t *msg;

	assert_true(i < MAX_CLIENTS);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(client_new(&fx->s.client_env, sv[0], &fx->cl[i]), 0);
	/* A local admin, attached below without client.c's rights check: it may write. */
	fx->cl[i]->admin = true;
	fx->cl[i]->att.right = ACCESS_RW;
	TAILQ_INSERT_TAIL(&fx->s.clients, fx->cl[i], server_entry);
	fx->s.n_clients++;
	peer_init(&fx->p[i], sv[1]);
	peer_send(&fx->p[i], "{\"type\": \"hello\", \"version\": 1, \"client\": \"test\"}");
	msg = peer_expect(&fx->p[i], fx->e, "hello");
	json_decref(msg);
	return i;
}

static const char *str(json_t *msg, const char *key)
{
	const char *s = json_string_value(json_object_get(msg, key));

	assert_non_null(s);
	return s;
}

/* Attach client i and check the role it got. */
static void attach(struct fx *fx, unsigned i, enum attach_mode mode, const char *role)
{
	json_t *msg;

	console_attach(fx->c, &fx->cl[i]->att, mode, 0);
	msg = peer_expect(&fx->p[i], fx->e, "attached");
	assert_string_equal(str(msg, "console"), "vm:serial0");
	assert_string_equal(str(msg, "role"), role);
	json_decref(msg);
}

static void expect_state(struct fx *fx, unsigned i, const char *role)
{
	json_t *msg = peer_expect(&fx->p[i], fx->e, "state");

	assert_string_equal(str(msg, "role"), role);
	assert_string_equal(str(msg, "access"), "rw"); /* every client here may write */
	json_decref(msg);
}

/* Client i gets a notice that contains text (other notices may come first). */
static void expect_notice(struct fx *fx, unsigned i, const char *text)
{
	for (;;) {
		json_t *msg = peer_expect(&fx->p[i], fx->e, "notice");
		bool found = strstr(str(msg, "text"), text) != NULL;

		json_decref(msg);
		if (found)
			return;
	}
}

static void test_single_writer(void **state)
{
	struct fx *fx = *state;
	unsigned a, b;
	json_t *msg;

	fx_start(fx, 64 * 1024, false);
	a = add_client(fx);
	b = add_client(fx);
	attach(fx, a, ATTACH_RW, "writer");
	/* rw while someone writes: a watcher, told who writes. */
	console_attach(fx->c, &fx->cl[b]->att, ATTACH_RW, 0);
	msg = peer_expect(&fx->p[b], fx->e, "attached");
	assert_string_equal(str(msg, "role"), "watcher");
	assert_string_equal(str(msg, "writer"), fx->cl[a]->att.label);
	assert_int_equal(json_integer_value(json_object_get(msg, "clients")), 2);
	json_decref(msg);
	assert_ptr_equal(fx->c->writer, &fx->cl[a]->att);

	/* Nothing is promoted silently: take without force is refused. */
	assert_int_equal(console_take(fx->c, &fx->cl[b]->att, false), -EBUSY);
	assert_ptr_equal(fx->c->writer, &fx->cl[a]->att);
	assert_int_equal(fx->cl[b]->att.role, CONSOLE_WATCHER);

	/* A watcher's input is not queued for the guest. */
	assert_int_equal(console_input(fx->c, &fx->cl[b]->att, (const uint8_t *)"x", 1), 1);
	assert_int_equal(obuf_len(&fx->c->input), 0);

	/* Forced: the roles swap and both are told. */
	assert_int_equal(console_take(fx->c, &fx->cl[b]->att, true), 0);
	assert_ptr_equal(fx->c->writer, &fx->cl[b]->att);
	assert_int_equal(fx->cl[a]->att.role, CONSOLE_WATCHER);
	expect_state(fx, a, "watcher");
	expect_notice(fx, a, "took write access from");
	expect_state(fx, b, "writer");

	/* Released: nobody writes, and the next take needs no force. */
	console_release(fx->c, &fx->cl[b]->att);
	assert_null(fx->c->writer);
	expect_notice(fx, a, "nobody writes now");
	assert_int_equal(console_take(fx->c, &fx->cl[a]->att, false), 0);
	assert_ptr_equal(fx->c->writer, &fx->cl[a]->att);
	expect_state(fx, a, "writer");
}

static void test_force_attach_takes_over(void **state)
{
	struct fx *fx = *state;
	unsigned a, b, w;
	json_t *msg;

	fx_start(fx, 64 * 1024, false);
	a = add_client(fx);
	w = add_client(fx);
	b = add_client(fx);
	attach(fx, a, ATTACH_RW, "writer");
	attach(fx, w, ATTACH_RO, "watcher");
	console_attach(fx->c, &fx->cl[b]->att, ATTACH_FORCE, 0);
	msg = peer_expect(&fx->p[b], fx->e, "attached");
	assert_string_equal(str(msg, "role"), "writer");
	assert_string_equal(str(msg, "previous"), fx->cl[a]->att.label);
	json_decref(msg);
	assert_ptr_equal(fx->c->writer, &fx->cl[b]->att);
	expect_state(fx, a, "watcher");
	/* Everyone hears of a take-over. */
	expect_notice(fx, a, "took write access from");
	expect_notice(fx, w, "took write access from");

	/* The writer detaching leaves nobody writing, and says so. */
	console_detach(fx->c, &fx->cl[b]->att, true);
	assert_null(fx->c->writer);
	assert_null(fx->cl[b]->att.console);
	expect_notice(fx, w, "(the writer) detached; nobody writes now");
	assert_int_equal(fx->c->n_clients, 2);
}

static void test_lagging_watcher_gets_drop_notice(void **state)
{
	struct fx *fx = *state;
	const size_t want = 1024 * 1024; /* several rings and more than a client's queue */
	unsigned slow, fast;
	int small = 4096;
	char line[128];
	unsigned i = 0;
	const char *last;

	fx_start(fx, 16 * 1024, false);
	slow = add_client(fx);
	fast = add_client(fx);
	attach(fx, slow, ATTACH_RO, "watcher");
	attach(fx, fast, ATTACH_RO, "watcher");
	assert_int_equal(setsockopt(fx->cl[slow]->fd, SOL_SOCKET, SO_SNDBUF, &small,
				    sizeof(small)), 0);
	assert_int_equal(setsockopt(fx->p[slow].fd, SOL_SOCKET, SO_RCVBUF, &small,
				    sizeof(small)), 0);

	/* The guest writes on; one watcher reads along, the other does not read at all. */
	while (ring_head(&fx->c->ring) < want) {
		snprintf(line, sizeof(line), "line %06u of the guest's output, padded a bit", i++);
		console_mark(fx->c, line);
		peer_drain(&fx->p[fast]);
		loop_pump(fx->e);
	}
	LOOP_UNTIL(fx->e, (peer_drain(&fx->p[fast]),
			   fx->p[fast].data_len == ring_head(&fx->c->ring)));
	assert_int_equal(fx->p[fast].dropped_notices, 0);

	/* The slow one comes back: one notice with the total, then the live end. */
	LOOP_UNTIL(fx->e, (peer_drain(&fx->p[slow]),
			   fx->cl[slow]->att.pos == ring_head(&fx->c->ring) &&
			   !fx->cl[slow]->att.want_write));
	peer_drain(&fx->p[slow]);
	assert_int_equal(fx->p[slow].dropped_notices, 1);
	assert_true(fx->p[slow].data_len < fx->p[fast].data_len);
	snprintf(line, sizeof(line), "line %06u of the guest's output, padded a bit\r\n", i - 1);
	last = fx->p[slow].data + fx->p[slow].data_kept - strlen(line);
	assert_memory_equal(last, line, strlen(line));
	/* Nothing in between was cut: what it got is whole marker lines. */
	assert_int_equal(fx->p[slow].data_len % (strlen(line) + strlen("\r\n[ttyhub] ")), 0);
}


/* Keep a few frames of the stream queued on the peer, and send what the socket takes. */
static void writer_send(struct peer *p, size_t *sent, size_t total)
{
	uint8_t chunk[8192];

	while (*sent < total && obuf_len(&p->out) < 4 * sizeof(chunk)) {
		size_t n = MIN(sizeof(chunk), total - *sent);

		for (size_t i = 0; i < n; i++)
			chunk[i] = stream_byte(*sent + i);
		assert_int_equal(proto_put_data(&p->out, chunk, n), 0);
		*sent += n;
	}
	assert_true(obuf_flush(&p->out, p->fd) >= 0);
}

/* Attach a writer and type until the guest, which does not read, makes it wait. */
static unsigned pause_writer(struct fx *fx, size_t *sent, size_t total)
{
	int small = 4096;
	unsigned a;

	assert_int_equal(setsockopt(fx->c->chardev.fd, SOL_SOCKET, SO_SNDBUF, &small,
				    sizeof(small)), 0);
	assert_int_equal(setsockopt(fx->g.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	a = add_client(fx);
	attach(fx, a, ATTACH_RW, "writer");
	while (!fx->cl[a]->att.input_paused) {
		writer_send(&fx->p[a], sent, total);
		loop_step(fx->e);
	}
	assert_ptr_equal(fx->c->input_waiter, &fx->cl[a]->att);
	assert_int_equal(obuf_room(&fx->c->input), 0);
	return a;
}

static void test_input_backpressure_pauses_and_resumes(void **state)
{
	struct fx *fx = *state;
	const size_t total = 1024 * 1024;
	size_t sent = 0, received = 0;
	uint8_t buf[8192];
	unsigned a;

	fx_start(fx, 64 * 1024, true);
	a = pause_writer(fx, &sent, total);
	assert_true(sent < total);

	/* The guest reads: the writer resumes, and every byte arrives in order. */
	while (received < total) {
		size_t n = guest_read_stream(fx->g.fd, &received);

		writer_send(&fx->p[a], &sent, total);
		if (n == 0)
			loop_step(fx->e);
	}
	loop_pump(fx->e);
	assert_false(fx->cl[a]->att.input_paused);
	assert_null(fx->c->input_waiter);
	assert_int_equal(obuf_len(&fx->c->input), 0);
	assert_int_equal(fd_read_now(fx->g.fd, buf, sizeof(buf)), 0);
}

static void test_guest_gone_resumes_writer(void **state)
{
	struct fx *fx = *state;
	size_t sent = 0;
	unsigned a;

	fx_start(fx, 64 * 1024, true);
	a = pause_writer(fx, &sent, 1024 * 1024);
	/* Keystrokes for a guest that went away are dropped, and the writer is not left deaf. */
	guest_close(&fx->g);
	LOOP_UNTIL(fx->e, fx->c->chardev.state != CHARDEV_CONNECTED);
	assert_int_equal(obuf_len(&fx->c->input), 0);
	LOOP_UNTIL(fx->e, !fx->cl[a]->att.input_paused);
	assert_null(fx->c->input_waiter);
	expect_notice(fx, a, "disconnected");
}

static void test_takeover_resumes_paused_writer(void **state)
{
	struct fx *fx = *state;
	size_t sent = 0;
	unsigned a, b;

	fx_start(fx, 64 * 1024, true);
	a = pause_writer(fx, &sent, 1024 * 1024);
	b = add_client(fx);
	console_attach(fx->c, &fx->cl[b]->att, ATTACH_FORCE, 0);
	/* No longer the writer: what it still had is dropped and it reads again. */
	assert_false(fx->cl[a]->att.input_paused);
	assert_int_equal(fx->cl[a]->pending_len, 0);
	assert_null(fx->c->input_waiter);
	expect_state(fx, a, "watcher");
}

/*
 * The guest takes a whole queue at once, in the very call that found it too
 * small: the writer told to wait must still be woken, though no EPOLLOUT
 * will come.
 */
static void test_queue_drained_at_once_wakes_waiter(void **state)
{
	struct fx *fx = *state;
	static uint8_t big[CONSOLE_INPUT_MAX + 1];
	unsigned a;

	fx_start(fx, 64 * 1024, true);
	a = add_client(fx);
	attach(fx, a, ATTACH_RW, "writer");
	assert_int_equal(console_input(fx->c, &fx->cl[a]->att, big, sizeof(big)),
			 CONSOLE_INPUT_MAX);
	assert_ptr_equal(fx->c->input_waiter, &fx->cl[a]->att);
	/* A socket's default buffer holds the queue: nothing left for EPOLLOUT to do. */
	assert_int_equal(obuf_len(&fx->c->input), 0);
	assert_false(fx->c->chardev.want_write);
	loop_pump(fx->e);
	assert_null(fx->c->input_waiter);
}

/*
 * An attachment that is not a client: the console needs nothing but
 * console_attachment_ops, and this records what it was asked to do.
 */
#define FAKE_MSGS 16
struct fake_att {
	struct console_attachment att;
	json_t *msgs[FAKE_MSGS]; /* owned: what send() got, in order */
	unsigned n_msgs, notices, flushes, resumes;
	char last_notice[512];
};

static struct fake_att *fake_of(struct console_attachment *a)
{
	return (struct fake_att *)((char *)a - offsetof(struct fake_att, att));
}

static void fake_notice(struct console_attachment *a, const char *text)
{
	struct fake_att *f = fake_of(a);

	f->notices++;
	snprintf(f->last_notice, sizeof(f->last_notice), "%s", text);
}

static void fake_send(struct console_attachment *a, json_t *msg)
{
	struct fake_att *f = fake_of(a);

	assert_non_null(msg);
	assert_true(f->n_msgs < FAKE_MSGS);
	f->msgs[f->n_msgs++] = msg;
}

static void fake_flush(struct console_attachment *a)
{
	struct fake_att *f = fake_of(a);

	f->flushes++;
	a->pos = ring_head(&a->console->ring); /* took everything */
}

static void fake_resume_input(struct console_attachment *a)
{
	fake_of(a)->resumes++;
}

static void fake_who(const struct console_attachment *a, bool with_local,
		     struct proto_who_client *ret)
{
	ret->id = 42;
	ret->since = 7;
}

static const struct console_attachment_ops fake_ops = {
	.notice = fake_notice,
	.send = fake_send,
	.flush = fake_flush,
	.resume_input = fake_resume_input,
	.who = fake_who,
};

static void fake_init(struct fake_att *f, const char *label, enum access_right right)
{
	*f = (struct fake_att){ .att = { .ops = &fake_ops, .right = right } };
	snprintf(f->att.label, sizeof(f->att.label), "%s", label);
	snprintf(f->att.audit, sizeof(f->att.audit), "%s (audit)", label);
}

static void fake_done(struct fake_att *f)
{
	for (unsigned i = 0; i < f->n_msgs; i++)
		json_decref(f->msgs[i]);
}

/* The last message sent to f, of type `type`. */
static json_t *fake_last(struct fake_att *f, const char *type)
{
	assert_true(f->n_msgs > 0);
	assert_string_equal(str(f->msgs[f->n_msgs - 1], "type"), type);
	return f->msgs[f->n_msgs - 1];
}

static void test_attachment_without_client(void **state)
{
	struct fx *fx = *state;
	struct fake_att w, r;
	json_t *msg, *who;

	fx_start(fx, 64 * 1024, false);
	fake_init(&w, "writer one", ACCESS_RW);
	fake_init(&r, "watcher two", ACCESS_RO);

	console_attach(fx->c, &w.att, ATTACH_RW, 0);
	msg = fake_last(&w, "attached");
	assert_string_equal(str(msg, "role"), "writer");
	assert_string_equal(str(msg, "access"), "rw");
	assert_ptr_equal(w.att.console, fx->c);
	assert_ptr_equal(fx->c->writer, &w.att);
	assert_true(w.flushes > 0);

	console_attach(fx->c, &r.att, ATTACH_RW, 0); /* someone writes: a watcher */
	msg = fake_last(&r, "attached");
	assert_string_equal(str(msg, "role"), "watcher");
	assert_string_equal(str(msg, "writer"), "writer one");
	assert_string_equal(str(msg, "access"), "ro");
	/* A watcher arriving concerns the writer only. */
	assert_non_null(strstr(w.last_notice, "watcher two attached read-only"));
	assert_int_equal(r.notices, 0);

	/* Output reaches every attachment through flush(). */
	w.flushes = r.flushes = 0;
	console_mark(fx->c, "marker");
	assert_int_equal(w.flushes, 1);
	assert_int_equal(r.flushes, 1);
	assert_int_equal(r.att.pos, ring_head(&fx->c->ring));

	/* who asks each attachment for its own part. */
	who = console_who_json(fx->c, false);
	assert_non_null(who);
	assert_int_equal(json_array_size(json_object_get(who, "clients")), 2);
	msg = json_array_get(json_object_get(who, "clients"), 1);
	assert_string_equal(str(msg, "user"), "watcher two");
	assert_int_equal(json_integer_value(json_object_get(msg, "id")), 42);
	json_decref(who);

	/* A writer whose right fell to ro (an access file reload) is told so in state. */
	w.att.right = ACCESS_RO;
	console_release(fx->c, &w.att);
	msg = fake_last(&w, "state");
	assert_string_equal(str(msg, "role"), "watcher");
	assert_string_equal(str(msg, "access"), "ro");
	assert_null(fx->c->writer);
	assert_non_null(strstr(r.last_notice, "writer one dropped to read-only"));

	console_detach(fx->c, &r.att, true);
	assert_null(r.att.console);
	console_detach(fx->c, &w.att, true);
	assert_int_equal(fx->c->n_clients, 0);
	assert_true(TAILQ_EMPTY(&fx->c->attached));
	fake_done(&w);
	fake_done(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_single_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_force_attach_takes_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lagging_watcher_gets_drop_notice, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_input_backpressure_pauses_and_resumes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_guest_gone_resumes_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover_resumes_paused_writer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_queue_drained_at_once_wakes_waiter, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_attachment_without_client, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
