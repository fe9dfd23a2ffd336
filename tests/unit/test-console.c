/* SPDX-License-Identifier: MIT */
/*
 * Console (broker/console.c) with real clients on socketpairs, a real
 * server struct (not listening) and a real sd-event loop: one writer at a
 * time, take-over only when forced, watchers that fall behind the ring get
 * one "dropped" notice and land on a line start while a reading watcher
 * loses nothing, and a writer whose input the guest does not take is
 * paused, then resumed (from the loop) when the guest drains or goes away.
 * Resume by (epoch, offset): exact with no byte twice or missing, a gap with
 * its count, a clamp past head, a restarted console with its replay; and the
 * writer's lease through its life (minted, kept on a dropped connection,
 * replaced, cleared, honoured while a restarted broker holds it).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
#define FAKE_MSGS 64
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

/* Resume client i at (epoch, offset) and return its `attached` (the caller frees it). */
static json_t *resume_attach(struct fx *fx, unsigned i, enum attach_mode mode, long replay,
			     uint64_t epoch, uint64_t offset)
{
	const struct console_resume res = { .epoch = epoch, .offset = offset };

	console_attach_resume(fx->c, &fx->cl[i]->att, mode, replay, &res);
	return peer_expect(&fx->p[i], fx->e, "attached");
}

static uint64_t member_u64(json_t *msg, const char *key)
{
	json_t *v = json_object_get(msg, key);

	assert_true(json_is_integer(v));
	return (uint64_t)json_integer_value(v);
}

/* Wait until client i has every ring byte, then check its last output frame ended at head. */
static void read_to_head(struct fx *fx, unsigned i)
{
	LOOP_UNTIL(fx->e, (peer_drain(&fx->p[i]), fx->p[i].out_end == ring_head(&fx->c->ring)));
}

static void test_resume_outcomes(void **state)
{
	struct fx *fx = *state;
	uint64_t epoch, off, before, tail;
	char line[64], want[64];
	unsigned a;
	json_t *msg;

	fx_start(fx, 4096, false);
	a = add_client(fx);
	attach(fx, a, ATTACH_RO, "watcher");
	epoch = ring_epoch(&fx->c->ring);
	for (unsigned i = 0; i < 10; i++) {
		snprintf(line, sizeof(line), "line %u", i);
		console_mark(fx->c, line);
	}
	read_to_head(fx, a);
	/* Live output: exactly end - start bytes per frame, and every byte once. */
	assert_int_equal(fx->p[a].data_len, ring_head(&fx->c->ring));
	off = fx->p[a].out_end;
	console_detach(fx->c, &fx->cl[a]->att, true);

	/* Exact: from the offset on, raw, nothing twice and nothing missing. */
	console_mark(fx->c, "while away");
	before = fx->p[a].data_len;
	msg = resume_attach(fx, a, ATTACH_RO, PROTO_REPLAY_ALL, epoch, off);
	assert_string_equal(str(msg, "resumed"), "exact");
	assert_int_equal(member_u64(msg, "offset"), off);
	assert_int_equal(member_u64(msg, "head"), ring_head(&fx->c->ring));
	assert_int_equal(member_u64(msg, "tail"), 0);
	assert_null(json_object_get(msg, "lost"));
	json_decref(msg);
	read_to_head(fx, a);
	assert_int_equal(fx->p[a].data_len - before, ring_head(&fx->c->ring) - off);
	snprintf(want, sizeof(want), "\r\n[ttyhub] while away\r\n");
	assert_memory_equal(fx->p[a].data + fx->p[a].data_kept - strlen(want), want, strlen(want));
	console_detach(fx->c, &fx->cl[a]->att, true);

	/* Past head (a front that saw more than this ring has): clamped to head. */
	msg = resume_attach(fx, a, ATTACH_RO, 0, epoch, ring_head(&fx->c->ring) + 1000);
	assert_string_equal(str(msg, "resumed"), "exact");
	assert_int_equal(member_u64(msg, "offset"), ring_head(&fx->c->ring));
	json_decref(msg);
	console_detach(fx->c, &fx->cl[a]->att, true);

	/* Older than the ring: a gap notice with the count, then from the oldest byte. */
	while (ring_tail(&fx->c->ring) <= off + 100)
		console_mark(fx->c, "filling the ring while the client is away");
	tail = ring_tail(&fx->c->ring);
	msg = resume_attach(fx, a, ATTACH_RO, 0, epoch, off);
	assert_string_equal(str(msg, "resumed"), "gap");
	assert_int_equal(member_u64(msg, "lost"), tail - off);
	assert_int_equal(member_u64(msg, "offset"), tail);
	json_decref(msg);
	msg = peer_expect(&fx->p[a], fx->e, "notice");
	assert_int_equal(member_u64(msg, "lost"), tail - off);
	snprintf(want, sizeof(want), "%llu bytes of output were lost",
		 (unsigned long long)(tail - off));
	assert_non_null(strstr(str(msg, "text"), want));
	json_decref(msg);
	read_to_head(fx, a);
	console_detach(fx->c, &fx->cl[a]->att, true);

	/* An epoch the ring does not know: restarted, and the replay as without resume. */
	msg = resume_attach(fx, a, ATTACH_RO, PROTO_REPLAY_ALL, epoch ^ 1, off);
	assert_string_equal(str(msg, "resumed"), "restarted");
	assert_int_equal(member_u64(msg, "offset"), ring_tail(&fx->c->ring));
	json_decref(msg);
	expect_notice(fx, a, "console vm:serial0 restarted since you left; replaying its history");
	read_to_head(fx, a);

	/* An epoch that ended is still known: offsets span epochs. */
	console_detach(fx->c, &fx->cl[a]->att, true);
	off = ring_head(&fx->c->ring);
	ring_new_epoch(&fx->c->ring);
	console_mark(fx->c, "next boot");
	assert_true(ring_epoch(&fx->c->ring) != epoch);
	msg = resume_attach(fx, a, ATTACH_RO, 0, epoch, off);
	assert_string_equal(str(msg, "resumed"), "exact");
	assert_int_equal(member_u64(msg, "offset"), off);
	json_decref(msg);
}

/* The most recent message of type `type` sent to f, or NULL. */
static json_t *fake_find(struct fake_att *f, const char *type)
{
	for (unsigned i = f->n_msgs; i-- > 0;)
		if (strcmp(str(f->msgs[i], "type"), type) == 0)
			return f->msgs[i];
	return NULL;
}

/* Attach f (with resume, if lease is given) and return its `attached`. */
static json_t *fake_attach(struct fx *fx, struct fake_att *f, enum attach_mode mode,
			   const char *lease)
{
	struct console_resume res = { .epoch = ring_epoch(&fx->c->ring),
				      .offset = ring_head(&fx->c->ring) };

	if (lease) {
		assert_int_equal(proto_parse_lease(lease, res.lease), 0);
		res.has_lease = true;
	}
	console_attach_resume(fx->c, &f->att, mode, 0, lease ? &res : NULL);
	return fake_last(f, "attached");
}

static const char *stored_lease(struct fx *fx, char buf[PROTO_LEASE_STRLEN + 1])
{
	uint8_t l[RING_LEASE_SIZE];

	if (!ring_get_lease(&fx->c->ring, l))
		return NULL;
	proto_lease_to_string(l, buf);
	return buf;
}

static void test_lease_lifecycle(void **state)
{
	struct fx *fx = *state;
	struct fake_att a, b, r;
	char l1[PROTO_LEASE_STRLEN + 1], l2[PROTO_LEASE_STRLEN + 1], buf[PROTO_LEASE_STRLEN + 1];
	json_t *msg;

	fx_start(fx, 64 * 1024, false);
	fake_init(&a, "first", ACCESS_RW);
	fake_init(&b, "second", ACCESS_RW);
	fake_init(&r, "reader", ACCESS_RO);

	/* Becoming the writer mints a lease, given to the writer alone. */
	msg = fake_attach(fx, &a, ATTACH_RW, NULL);
	assert_string_equal(str(msg, "role"), "writer");
	snprintf(l1, sizeof(l1), "%s", str(msg, "lease"));
	assert_int_equal(strlen(l1), PROTO_LEASE_STRLEN);
	assert_string_equal(stored_lease(fx, buf), l1);
	msg = fake_attach(fx, &b, ATTACH_RW, NULL);
	assert_string_equal(str(msg, "role"), "watcher");
	assert_null(json_object_get(msg, "lease"));

	/* The writer's connection drops: the lease stays with the ring. */
	console_detach(fx->c, &a.att, true);
	assert_string_equal(stored_lease(fx, buf), l1);
	/* Another becomes the writer: a new lease replaces it, in its state. */
	assert_int_equal(console_take(fx->c, &b.att, false), 0);
	snprintf(l2, sizeof(l2), "%s", str(fake_last(&b, "state"), "lease"));
	assert_string_not_equal(l1, l2);
	assert_string_equal(stored_lease(fx, buf), l2);
	/* The first comes back with its old lease: someone writes, it watches. */
	msg = fake_attach(fx, &a, ATTACH_RW, l1);
	assert_string_equal(str(msg, "role"), "watcher");
	assert_null(json_object_get(msg, "lease"));
	assert_ptr_equal(fx->c->writer, &b.att);

	/* The writer drops, and comes back with its lease in any mode: the writer again. */
	console_detach(fx->c, &b.att, true);
	msg = fake_attach(fx, &b, ATTACH_RO, l2);
	assert_string_equal(str(msg, "role"), "writer");
	assert_string_equal(str(msg, "lease"), l2);
	assert_ptr_equal(fx->c->writer, &b.att);
	/* ... but not with a right that fell to ro. */
	console_detach(fx->c, &b.att, true);
	b.att.right = ACCESS_RO;
	msg = fake_attach(fx, &b, ATTACH_RO, l2); /* client.c makes an rw attach ro for it */
	assert_string_equal(str(msg, "role"), "watcher");
	console_detach(fx->c, &b.att, true);
	b.att.right = ACCESS_RW;

	/* Released: cleared, and the old lease makes nobody the writer. */
	console_detach(fx->c, &a.att, true);
	msg = fake_attach(fx, &a, ATTACH_RW, NULL);
	snprintf(l1, sizeof(l1), "%s", str(msg, "lease"));
	console_release(fx->c, &a.att);
	assert_null(stored_lease(fx, buf));
	assert_null(json_object_get(fake_last(&a, "state"), "lease"));
	console_detach(fx->c, &a.att, true);
	msg = fake_attach(fx, &a, ATTACH_RO, l1);
	assert_string_equal(str(msg, "role"), "watcher");
	console_detach(fx->c, &a.att, true);

	/* Forgotten (a requested detach, a revocation): cleared. */
	msg = fake_attach(fx, &a, ATTACH_RW, NULL);
	assert_non_null(json_object_get(msg, "lease"));
	console_forget_lease(fx->c, &r.att); /* not the writer: nothing */
	assert_non_null(stored_lease(fx, buf));
	console_forget_lease(fx->c, &a.att);
	console_detach(fx->c, &a.att, true);
	assert_null(stored_lease(fx, buf));

	/* Force takes over and replaces the lease; the old holder's state has none. */
	msg = fake_attach(fx, &a, ATTACH_RW, NULL);
	snprintf(l1, sizeof(l1), "%s", str(msg, "lease"));
	msg = fake_attach(fx, &b, ATTACH_FORCE, NULL);
	assert_string_equal(str(msg, "role"), "writer");
	assert_string_not_equal(str(msg, "lease"), l1);
	assert_null(json_object_get(fake_find(&a, "state"), "lease"));
	console_detach(fx->c, &a.att, true);
	console_detach(fx->c, &b.att, true);
	fake_done(&a);
	fake_done(&b);
	fake_done(&r);
}

static void test_lease_hold_after_restart(void **state)
{
	struct fx *fx = *state;
	struct fake_att w, o, f;
	char lease[PROTO_LEASE_STRLEN + 1], buf[PROTO_LEASE_STRLEN + 1];
	struct console_resume back;
	struct timespec ts;
	unsigned n;
	json_t *msg;

	fx_start(fx, 64 * 1024, false);
	back = (struct console_resume){ .epoch = ring_epoch(&fx->c->ring),
					.offset = ring_head(&fx->c->ring) };
	fake_init(&w, "writer", ACCESS_RW);
	fake_init(&o, "other", ACCESS_RW);
	fake_init(&f, "forcer", ACCESS_RW);
	msg = fake_attach(fx, &w, ATTACH_RW, NULL);
	snprintf(lease, sizeof(lease), "%s", str(msg, "lease"));
	console_detach(fx->c, &w.att, true);

	/* As a start that adopted this ring with its lease: held for the writer for 10 s. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fx->c->lease_hold_until = (uint64_t)ts.tv_sec * 1000000 + 10000000;
	msg = fake_attach(fx, &o, ATTACH_RW, NULL);
	assert_string_equal(str(msg, "role"), "watcher");
	assert_null(fx->c->writer);
	assert_string_equal(stored_lease(fx, buf), lease);
	assert_non_null(strstr(o.last_notice, "a few seconds to come back"));
	/* Its holder gets the role back, and the hold is over; its return is no news. */
	n = o.notices + w.notices;
	msg = fake_attach(fx, &w, ATTACH_RW, lease);
	assert_string_equal(str(msg, "role"), "writer");
	assert_string_equal(str(msg, "lease"), lease);
	assert_int_equal(fx->c->lease_hold_until, 0);
	assert_int_equal(o.notices + w.notices, n);
	/* Nor is a watcher's that resumes where it was; a new watcher is told the writer. */
	console_detach(fx->c, &o.att, false);
	n = w.notices;
	console_attach_resume(fx->c, &o.att, ATTACH_RO, 0, &back);
	assert_int_equal(w.notices, n);
	console_detach(fx->c, &o.att, false);
	console_attach_resume(fx->c, &o.att, ATTACH_RO, 0, NULL);
	assert_int_equal(w.notices, n + 1);
	console_detach(fx->c, &w.att, true);
	console_detach(fx->c, &o.att, true);

	/* Force takes over during a hold. */
	fx->c->lease_hold_until = (uint64_t)ts.tv_sec * 1000000 + 10000000;
	msg = fake_attach(fx, &f, ATTACH_FORCE, NULL);
	assert_string_equal(str(msg, "role"), "writer");
	assert_string_not_equal(str(msg, "lease"), lease);
	console_detach(fx->c, &f.att, true);

	/* A hold that ran out holds nothing. */
	fx->c->lease_hold_until = 1;
	msg = fake_attach(fx, &o, ATTACH_RW, NULL);
	assert_string_equal(str(msg, "role"), "writer");
	console_detach(fx->c, &o.att, true);
	fake_done(&w);
	fake_done(&o);
	fake_done(&f);
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
		cmocka_unit_test_setup_teardown(test_resume_outcomes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease_hold_after_restart, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
