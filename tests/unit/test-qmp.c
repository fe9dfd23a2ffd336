/* SPDX-License-Identifier: MIT */
/*
 * The QMP connection state machine against a fake QEMU monitor played by
 * the test over a socketpair() (and once over a real UNIX socket): greeting,
 * negotiation and its failure, queueing before READY, reply matching by id,
 * events between a command and its reply, unknown ids, timeouts, the
 * monitor closing mid-reply, malformed and oversized messages, limits, and
 * qmp_free()/qmp_execute() from inside every kind of callback.  The loop is
 * stepped with sd_event_run().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "qmp.h"

#define GREETING                                                                           \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "   \
	"\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define TS "\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 1}"

#define MAX_EVENTS 16

/* One command's outcome; every reply function must run exactly once. */
struct call {
	struct fixture *fx;
	int calls;
	int seq;             /* fx->seq when it was called */
	json_t *reply;       /* our reference */
	char class[64];
	char desc[512];
	/* actions from inside the reply function */
	bool free_q;
	const char *then_execute;
	struct call *then_call;
	int then_r;
};

struct fixture {
	sd_event *e;
	struct qmp *q;
	int peer;            /* the fake monitor's end */
	char in[1 << 20];    /* what the library sent, not yet consumed */
	size_t in_len;
	int seq;

	int ready;
	int ready_seq;
	int closed;
	int close_seq;
	char close_reason[512];
	int n_events;
	char event[MAX_EVENTS][32];
	json_t *event_data[MAX_EVENTS];
	/* actions from inside callbacks */
	bool free_in_event, free_in_close, free_in_ready;
	const char *execute_in_event;
	struct call *execute_in_event_call;
	int execute_in_event_r;
};

static void on_ready(struct qmp *q, void *userdata)
{
	struct fixture *fx = userdata;

	assert_ptr_equal(q, fx->q);
	fx->ready++;
	fx->ready_seq = ++fx->seq;
	if (fx->free_in_ready)
		fx->q = qmp_free(q);
}

static void on_event(struct qmp *q, const char *name, json_t *data, void *userdata)
{
	struct fixture *fx = userdata;

	assert_true(fx->n_events < MAX_EVENTS);
	snprintf(fx->event[fx->n_events], sizeof(fx->event[0]), "%s", name);
	fx->event_data[fx->n_events] = json_incref(data);
	fx->n_events++;
	fx->seq++;
	if (fx->execute_in_event)
		fx->execute_in_event_r = qmp_execute(q, fx->execute_in_event, NULL, NULL,
						     fx->execute_in_event_call, 0);
	if (fx->free_in_event)
		fx->q = qmp_free(q);
}

static void on_close(struct qmp *q, const char *reason, void *userdata)
{
	struct fixture *fx = userdata;

	fx->closed++;
	fx->close_seq = ++fx->seq;
	snprintf(fx->close_reason, sizeof(fx->close_reason), "%s", reason);
	assert_int_equal(qmp_get_state(q), QMP_STATE_CLOSED);
	assert_int_equal(qmp_execute(q, "query-status", NULL, NULL, NULL, 0), -ENOTCONN);
	if (fx->free_in_close)
		fx->q = qmp_free(q);
}

static const struct qmp_callbacks callbacks = {
	.on_ready = on_ready,
	.on_event = on_event,
	.on_close = on_close,
};

static void on_reply(struct qmp *q, json_t *reply, const char *class, const char *desc,
		     void *userdata)
{
	struct call *c = userdata;

	c->calls++;
	c->seq = ++c->fx->seq;
	c->reply = json_incref(reply);
	if (class) {
		assert_null(reply);
		assert_non_null(desc);
		snprintf(c->class, sizeof(c->class), "%s", class);
		snprintf(c->desc, sizeof(c->desc), "%s", desc);
	} else {
		assert_null(desc);
	}
	if (c->then_execute)
		c->then_r = qmp_execute(q, c->then_execute, NULL, on_reply, c->then_call, 0);
	if (c->free_q)
		c->fx->q = qmp_free(q);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	int sv[2], small = 4096;

	assert_non_null(fx);
	assert_int_equal(sd_event_new(&fx->e), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* A small send buffer, so that big commands hit EAGAIN in the library. */
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	fx->peer = sv[1];
	assert_int_equal(fcntl(fx->peer, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(qmp_open_fd(fx->e, sv[0], &callbacks, fx, &fx->q), 0);
	assert_int_equal(qmp_get_state(fx->q), QMP_STATE_GREETING);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	qmp_free(fx->q);
	for (int i = 0; i < fx->n_events; i++)
		json_decref(fx->event_data[i]);
	if (fx->peer >= 0)
		close(fx->peer);
	sd_event_unref(fx->e);
	free(fx);
	return 0;
}

static void call_init(struct call *c, struct fixture *fx)
{
	*c = (struct call){ .fx = fx };
}

static void call_done(struct call *c)
{
	json_decref(c->reply);
	c->reply = NULL;
}

/* Run every pending event source, without waiting. */
static void pump(struct fixture *fx)
{
	for (int i = 0; i < 1000; i++) {
		int r = sd_event_run(fx->e, 0);

		assert_true(r >= 0);
		if (r == 0)
			return;
	}
	fail_msg("event loop does not settle");
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Step the loop until *flag becomes nonzero (at most 5 s). */
static void run_until(struct fixture *fx, const int *flag)
{
	uint64_t end = now_usec() + 5000000;

	while (*flag == 0) {
		assert_true(now_usec() < end);
		assert_true(sd_event_run(fx->e, 10000) >= 0);
	}
}

static void peer_send(struct fixture *fx, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = write(fx->peer, s + off, len - off);

		if (n < 0 && errno == EAGAIN) {
			pump(fx);
			continue;
		}
		assert_true(n > 0);
		off += (size_t)n;
	}
}

/* Read what the library wrote, running the loop, until a full line is there. */
static json_t *peer_recv(struct fixture *fx)
{
	uint64_t end = now_usec() + 5000000;

	for (;;) {
		char *nl = memchr(fx->in, '\n', fx->in_len);

		if (nl) {
			size_t len = (size_t)(nl - fx->in) + 1;
			json_error_t jerr;
			json_t *j;

			assert_true(len >= 2 && nl[-1] == '\r');
			j = json_loadb(fx->in, len - 2, 0, &jerr);
			if (!j)
				fail_msg("library sent bad JSON: %s", jerr.text);
			memmove(fx->in, fx->in + len, fx->in_len - len);
			fx->in_len -= len;
			return j;
		}
		assert_true(now_usec() < end);
		assert_true(fx->in_len < sizeof(fx->in));
		ssize_t n = read(fx->peer, fx->in + fx->in_len, sizeof(fx->in) - fx->in_len);
		if (n > 0) {
			fx->in_len += (size_t)n;
			continue;
		}
		assert_true(n < 0 && errno == EAGAIN);
		assert_true(sd_event_run(fx->e, 10000) >= 0);
	}
}

/* Nothing more was sent (after letting the loop run). */
static void peer_expect_silence(struct fixture *fx)
{
	ssize_t n;

	pump(fx);
	n = read(fx->peer, fx->in + fx->in_len, sizeof(fx->in) - fx->in_len);
	if (n > 0)
		fx->in_len += (size_t)n;
	assert_int_equal(fx->in_len, 0);
}

/* Receive a command, check its name, return its id. */
static json_int_t peer_expect_command(struct fixture *fx, const char *name, json_t **args)
{
	json_t *j = peer_recv(fx), *id = json_object_get(j, "id");
	json_int_t v;

	assert_string_equal(json_string_value(json_object_get(j, "execute")), name);
	assert_true(json_is_integer(id));
	v = json_integer_value(id);
	if (args)
		*args = json_incref(json_object_get(j, "arguments"));
	json_decref(j);
	return v;
}

static void peer_reply(struct fixture *fx, json_int_t id, const char *ret)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %lld}\r\n", ret, (long long)id);
	peer_send(fx, buf);
}

/* Greeting + negotiation; returns with the connection READY. */
static void handshake(struct fixture *fx)
{
	json_int_t id;

	peer_send(fx, GREETING);
	id = peer_expect_command(fx, "qmp_capabilities", NULL);
	assert_int_equal(qmp_get_state(fx->q), QMP_STATE_NEGOTIATING);
	assert_int_equal(fx->ready, 0);
	peer_reply(fx, id, "{}");
	run_until(fx, &fx->ready);
	assert_int_equal(fx->ready, 1);
	assert_int_equal(qmp_get_state(fx->q), QMP_STATE_READY);
}

static void test_handshake(void **state)
{
	struct fixture *fx = *state;
	int major = 0, minor = 0, micro = 0;

	assert_int_equal(qmp_get_version(fx->q, &major, &minor, &micro), -ENODATA);
	/* Nothing is sent before the greeting. */
	peer_expect_silence(fx);
	handshake(fx);
	assert_int_equal(qmp_get_version(fx->q, &major, &minor, &micro), 0);
	assert_int_equal(major, 7);
	assert_int_equal(minor, 2);
	assert_int_equal(micro, 22);
	assert_int_equal(fx->closed, 0);
	peer_expect_silence(fx);
	assert_int_equal(qmp_set_handshake_timeout(fx->q, 1000), -EBUSY);
}

/* Commands issued before READY wait for the negotiation and go out in order. */
static void test_queued_before_ready(void **state)
{
	struct fixture *fx = *state;
	struct call a, b;
	json_int_t caps, ida, idb;
	json_t *args = json_pack("{s:s}", "id", "charserial0"), *got = NULL;

	call_init(&a, fx);
	call_init(&b, fx);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &a, 0), 0);
	assert_int_equal(qmp_execute(fx->q, "chardev-send-break", args, on_reply, &b, 0), 0);
	json_decref(args); /* borrowed: the library has its own copy already */
	assert_int_equal(qmp_get_pending(fx->q), 2);
	peer_expect_silence(fx);

	peer_send(fx, GREETING);
	caps = peer_expect_command(fx, "qmp_capabilities", NULL);
	peer_expect_silence(fx); /* still nothing but qmp_capabilities */
	peer_reply(fx, caps, "{}");
	ida = peer_expect_command(fx, "query-status", NULL);
	idb = peer_expect_command(fx, "chardev-send-break", &got);
	assert_int_equal(fx->ready, 1);
	/* on_ready runs after the queued commands are on their way. */
	assert_string_equal(json_string_value(json_object_get(got, "id")), "charserial0");
	json_decref(got);
	assert_true(ida != idb && ida != caps && idb != caps);

	peer_reply(fx, idb, "{}");
	peer_reply(fx, ida, "{\"running\": false, \"status\": \"prelaunch\"}");
	run_until(fx, &a.calls);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.calls, 1);
	assert_true(b.seq < a.seq);
	assert_string_equal(json_string_value(json_object_get(a.reply, "status")), "prelaunch");
	assert_true(json_is_object(b.reply) && json_object_size(b.reply) == 0);
	assert_int_equal(qmp_get_pending(fx->q), 0);
	call_done(&a);
	call_done(&b);
}

static void test_negotiation_error(void **state)
{
	struct fixture *fx = *state;
	struct call a;
	json_int_t caps;
	char buf[256];

	call_init(&a, fx);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &a, 0), 0);
	peer_send(fx, GREETING);
	caps = peer_expect_command(fx, "qmp_capabilities", NULL);
	snprintf(buf, sizeof(buf),
		 "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", "
		 "\"desc\": \"Capabilities negotiation is already complete\"}}\r\n",
		 (long long)caps);
	peer_send(fx, buf);
	run_until(fx, &fx->closed);
	assert_int_equal(fx->ready, 0);
	assert_non_null(strstr(fx->close_reason, "negotiation failed"));
	assert_non_null(strstr(fx->close_reason, "GenericError"));
	assert_non_null(strstr(fx->close_reason, "already complete"));
	/* The queued command was never sent, and is told before on_close. */
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.class, QMP_CLASS_DISCONNECTED);
	assert_true(a.seq < fx->close_seq);
	peer_expect_silence(fx);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, NULL, NULL, 0), -ENOTCONN);
	call_done(&a);
}

/* Replies out of order, events in between, ids that are not ours. */
static void test_reply_matching(void **state)
{
	struct fixture *fx = *state;
	struct call c[3];
	json_int_t id[3];
	char buf[1024];

	handshake(fx);
	for (int i = 0; i < 3; i++) {
		call_init(&c[i], fx);
		assert_int_equal(qmp_execute(fx->q, i == 1 ? "bad-command" : "query-status", NULL,
					     on_reply, &c[i], 0),
				 0);
	}
	for (int i = 0; i < 3; i++)
		id[i] = peer_expect_command(fx, i == 1 ? "bad-command" : "query-status", NULL);
	snprintf(buf, sizeof(buf),
		 "{\"event\": \"STOP\", " TS "}\r\n"
		 "{\"return\": {\"status\": \"third\"}, \"id\": %lld}\r\n"
		 "{\"return\": {\"status\": \"stray\"}, \"id\": %lld}\r\n"
		 "{\"return\": {\"status\": \"no id\"}}\r\n"
		 "{\"return\": {}, \"id\": \"%lld\"}\r\n"
		 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\r\n"
		 "{\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}, "
		 TS "}\r\n"
		 "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", "
		 "\"desc\": \"The command bad-command has not been found\"}}\r\n",
		 (long long)id[2], (long long)id[2] + 1000, (long long)id[0], (long long)id[1]);
	peer_send(fx, buf);
	run_until(fx, &c[1].calls);
	assert_int_equal(c[0].calls, 0);
	assert_int_equal(c[2].calls, 1);
	assert_string_equal(json_string_value(json_object_get(c[2].reply, "status")), "third");
	assert_string_equal(c[1].class, "CommandNotFound");
	assert_string_equal(c[1].desc, "The command bad-command has not been found");
	assert_null(c[1].reply);
	assert_int_equal(fx->n_events, 2);
	assert_string_equal(fx->event[0], "STOP");
	assert_null(fx->event_data[0]);
	assert_string_equal(fx->event[1], "RESET");
	assert_string_equal(json_string_value(json_object_get(fx->event_data[1], "reason")),
			    "guest-reset");
	assert_int_equal(qmp_get_pending(fx->q), 1);

	/* A reply carrying an id already answered is dropped too. */
	peer_reply(fx, id[2], "{\"status\": \"again\"}");
	peer_reply(fx, id[0], "{\"status\": \"first\"}");
	run_until(fx, &c[0].calls);
	assert_string_equal(json_string_value(json_object_get(c[0].reply, "status")), "first");
	pump(fx);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c[i].calls, 1);
		call_done(&c[i]);
	}
	assert_int_equal(fx->closed, 0);
	assert_int_equal(qmp_get_pending(fx->q), 0);
}

static void test_timeout(void **state)
{
	struct fixture *fx = *state;
	struct call queued, slow, fast;
	json_int_t id_slow, id_fast;

	/* A command that times out while queued is never sent. */
	call_init(&queued, fx);
	assert_int_equal(qmp_execute(fx->q, "queued-cmd", NULL, on_reply, &queued, 20000), 0);
	run_until(fx, &queued.calls);
	assert_string_equal(queued.class, QMP_CLASS_TIMEOUT);
	assert_non_null(strstr(queued.desc, "queued-cmd"));
	assert_int_equal(qmp_get_pending(fx->q), 0);
	handshake(fx);
	peer_expect_silence(fx);

	call_init(&slow, fx);
	call_init(&fast, fx);
	assert_int_equal(qmp_execute(fx->q, "slow", NULL, on_reply, &slow, 30000), 0);
	assert_int_equal(qmp_execute(fx->q, "fast", NULL, on_reply, &fast, QMP_TIMEOUT_NONE), 0);
	id_slow = peer_expect_command(fx, "slow", NULL);
	id_fast = peer_expect_command(fx, "fast", NULL);
	run_until(fx, &slow.calls);
	assert_string_equal(slow.class, QMP_CLASS_TIMEOUT);
	assert_null(slow.reply);
	assert_int_equal(fast.calls, 0);
	/* The late reply is dropped; the connection carries on. */
	peer_reply(fx, id_slow, "{\"late\": true}");
	peer_reply(fx, id_fast, "{\"fast\": true}");
	run_until(fx, &fast.calls);
	assert_int_equal(slow.calls, 1);
	assert_true(json_is_true(json_object_get(fast.reply, "fast")));
	assert_int_equal(fx->closed, 0);
	assert_int_equal(queued.calls, 1);
	call_done(&fast);
}

static void test_handshake_timeout(void **state)
{
	struct fixture *fx = *state;
	struct call a;

	call_init(&a, fx);
	assert_int_equal(qmp_set_handshake_timeout(fx->q, 20000), 0);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &a, 0), 0);
	run_until(fx, &fx->closed);
	assert_non_null(strstr(fx->close_reason, "no QMP greeting"));
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.class, QMP_CLASS_DISCONNECTED);
	assert_int_equal(qmp_set_handshake_timeout(fx->q, 1), -ENOTCONN);
}

/* The monitor goes away halfway through a reply: everything pending is Disconnected. */
static void test_close_mid_reply(void **state)
{
	struct fixture *fx = *state;
	struct call a, b;
	json_int_t ida;

	handshake(fx);
	call_init(&a, fx);
	call_init(&b, fx);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &a, 0), 0);
	assert_int_equal(qmp_execute(fx->q, "query-chardev", NULL, on_reply, &b, 0), 0);
	ida = peer_expect_command(fx, "query-status", NULL);
	peer_expect_command(fx, "query-chardev", NULL);
	peer_reply(fx, ida, "{}");
	peer_send(fx, "{\"return\": [{\"label\": \"charse");
	close(fx->peer);
	fx->peer = -1;
	run_until(fx, &fx->closed);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.class[0], '\0');
	assert_int_equal(b.calls, 1);
	assert_string_equal(b.class, QMP_CLASS_DISCONNECTED);
	assert_true(b.seq < fx->close_seq);
	assert_non_null(strstr(fx->close_reason, "middle of a message"));
	assert_int_equal(fx->closed, 1);
	pump(fx);
	assert_int_equal(fx->closed, 1);
	call_done(&a);
}

static void test_clean_eof(void **state)
{
	struct fixture *fx = *state;

	handshake(fx);
	close(fx->peer);
	fx->peer = -1;
	run_until(fx, &fx->closed);
	assert_string_equal(fx->close_reason, "the QMP monitor closed the connection");
}

static void test_malformed(void **state)
{
	struct fixture *fx = *state;
	struct call a;

	handshake(fx);
	call_init(&a, fx);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &a, 0), 0);
	peer_expect_command(fx, "query-status", NULL);
	/* A truncated object on a complete line, then more that must not be read. */
	peer_send(fx, "{\"return\": {}, \"id\": 1\r\n{\"event\": \"STOP\", " TS "}\r\n");
	run_until(fx, &fx->closed);
	assert_non_null(strstr(fx->close_reason, "malformed QMP message"));
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.class, QMP_CLASS_DISCONNECTED);
	assert_int_equal(fx->n_events, 0);
}

static void test_bad_shapes(void **state)
{
	static const char *const bad[] = {
		"{\"event\": \"STOP\", " TS "}\r\n", /* before the greeting */
		"[1, 2]\r\n",
		"{\"hello\": 1}\r\n",
		"\xff\xfe\r\n",
	};
	static const char *const want[] = {
		"expected the QMP greeting, got a message of type event",
		"unexpected QMP message: message is not a JSON object",
		"unexpected QMP message: object has none of",
		"malformed QMP message",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fixture *fx;

		setup((void **)&fx);
		peer_send(fx, bad[i]);
		run_until(fx, &fx->closed);
		if (!strstr(fx->close_reason, want[i]))
			fail_msg("case %zu: reason \"%s\"", i, fx->close_reason);
		/* Untrusted bytes never reach the reason unescaped. */
		assert_null(strchr(fx->close_reason, '\xff'));
		teardown((void **)&fx);
	}

	/* A second greeting after READY. */
	struct fixture *fx;

	setup((void **)&fx);
	handshake(fx);
	peer_send(fx, GREETING);
	run_until(fx, &fx->closed);
	assert_string_equal(fx->close_reason, "unexpected second QMP greeting");
	teardown((void **)&fx);
}

static void test_oversized(void **state)
{
	struct fixture *fx = *state;
	size_t len = QMP_MSG_MAX + 4096;
	char *big = malloc(len + 1);

	assert_non_null(big);
	handshake(fx);
	memset(big, ' ', len);
	big[0] = '{';
	big[len] = '\0';
	/* peer_send runs the loop while the socket is full; stop when the library closes. */
	for (size_t off = 0; off < len && !fx->closed;) {
		ssize_t n = write(fx->peer, big + off, len - off);

		if (n < 0 && errno == EAGAIN) {
			assert_true(sd_event_run(fx->e, 10000) >= 0);
			continue;
		}
		if (n < 0 && errno == EPIPE)
			break;
		assert_true(n > 0);
		off += (size_t)n;
	}
	run_until(fx, &fx->closed);
	assert_non_null(strstr(fx->close_reason, "longer than"));
	free(big);
}

/* Writes bigger than the socket buffer go out in pieces as the peer reads. */
static void test_partial_writes(void **state)
{
	struct fixture *fx = *state;
	size_t len = 240 * 1024;
	char *big = malloc(len + 1);
	json_t *args, *got = NULL;
	struct call a;
	json_int_t id;

	assert_non_null(big);
	memset(big, 'z', len);
	big[len] = '\0';
	args = json_pack("{s:s}", "data", big);
	assert_non_null(args);
	handshake(fx);
	call_init(&a, fx);
	assert_int_equal(qmp_execute(fx->q, "ringbuf-write", args, on_reply, &a, 0), 0);
	pump(fx); /* fills the socket, then EAGAIN */
	id = peer_expect_command(fx, "ringbuf-write", &got);
	assert_true(json_equal(got, args));
	peer_reply(fx, id, "{}");
	run_until(fx, &a.calls);
	assert_int_equal(fx->closed, 0);
	json_decref(got);
	json_decref(args);
	call_done(&a);
	free(big);
}

static void test_limits(void **state)
{
	struct fixture *fx = *state;
	struct call c[QMP_MAX_PENDING];
	char *big = malloc(QMP_OUT_MAX);
	json_t *args, *arr = json_array();

	assert_non_null(big);
	assert_int_equal(qmp_execute(fx->q, "", NULL, NULL, NULL, 0), -EINVAL);
	assert_int_equal(qmp_execute(fx->q, "x\xff", NULL, NULL, NULL, 0), -EINVAL);
	assert_int_equal(qmp_execute(fx->q, "x", arr, NULL, NULL, 0), -EINVAL);
	json_decref(arr);

	/* Output bytes: two commands of 60 % of the buffer do not both fit. */
	memset(big, 'b', QMP_OUT_MAX);
	big[QMP_OUT_MAX * 6 / 10] = '\0';
	args = json_pack("{s:s}", "data", big);
	assert_int_equal(qmp_execute(fx->q, "ringbuf-write", args, NULL, NULL, 0), 0);
	assert_int_equal(qmp_execute(fx->q, "ringbuf-write", args, NULL, NULL, 0), -ENOBUFS);
	assert_int_equal(qmp_get_pending(fx->q), 1);
	json_decref(args);
	free(big);

	/* Count: QMP_MAX_PENDING in total, then -EBUSY; nothing was called back. */
	for (int i = 1; i < QMP_MAX_PENDING; i++) {
		call_init(&c[i], fx);
		assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &c[i], 0), 0);
	}
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, NULL, NULL, 0), -EBUSY);
	assert_int_equal(qmp_get_pending(fx->q), QMP_MAX_PENDING);
	pump(fx);
	for (int i = 1; i < QMP_MAX_PENDING; i++)
		assert_int_equal(c[i].calls, 0);
	/* Freeing answers every one of them exactly once, without on_close. */
	fx->q = qmp_free(fx->q);
	for (int i = 1; i < QMP_MAX_PENDING; i++) {
		assert_int_equal(c[i].calls, 1);
		assert_string_equal(c[i].class, QMP_CLASS_DISCONNECTED);
	}
	assert_int_equal(fx->closed, 0);
}

/* qmp_free() from an event callback while more messages are buffered. */
static void test_free_in_event(void **state)
{
	struct fixture *fx = *state;
	struct call a;
	json_int_t id;
	char buf[512];

	handshake(fx);
	call_init(&a, fx);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &a, 0), 0);
	id = peer_expect_command(fx, "query-status", NULL);
	fx->free_in_event = true;
	snprintf(buf, sizeof(buf),
		 "{\"event\": \"STOP\", " TS "}\r\n{\"event\": \"RESUME\", " TS "}\r\n"
		 "{\"return\": {}, \"id\": %lld}\r\n",
		 (long long)id);
	peer_send(fx, buf);
	run_until(fx, &fx->n_events);
	assert_null(fx->q);
	pump(fx);
	assert_int_equal(fx->n_events, 1);
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.class, QMP_CLASS_DISCONNECTED);
	assert_int_equal(fx->closed, 0);
}

/* qmp_free() from a reply function: the other pending command is answered once. */
static void test_free_in_reply(void **state)
{
	struct fixture *fx = *state;
	struct call a, b;
	json_int_t ida, idb;
	char buf[512];

	handshake(fx);
	call_init(&a, fx);
	call_init(&b, fx);
	a.free_q = true;
	b.free_q = true; /* a second qmp_free() from inside qmp_free() is a no-op */
	assert_int_equal(qmp_execute(fx->q, "first", NULL, on_reply, &a, 0), 0);
	assert_int_equal(qmp_execute(fx->q, "second", NULL, on_reply, &b, 0), 0);
	ida = peer_expect_command(fx, "first", NULL);
	idb = peer_expect_command(fx, "second", NULL);
	snprintf(buf, sizeof(buf),
		 "{\"return\": 1, \"id\": %lld}\r\n{\"return\": 2, \"id\": %lld}\r\n",
		 (long long)ida, (long long)idb);
	peer_send(fx, buf);
	run_until(fx, &a.calls);
	pump(fx);
	assert_null(fx->q);
	assert_int_equal(json_integer_value(a.reply), 1);
	assert_int_equal(b.calls, 1);
	assert_string_equal(b.class, QMP_CLASS_DISCONNECTED);
	assert_int_equal(fx->closed, 0);
	call_done(&a);
}

/* qmp_free() from on_close and from a reply function run by the close. */
static void test_free_in_close(void **state)
{
	struct fixture *fx = *state;
	struct call a, b;

	handshake(fx);
	fx->free_in_close = true;
	close(fx->peer);
	fx->peer = -1;
	run_until(fx, &fx->closed);
	assert_null(fx->q);
	pump(fx);

	/* Second round: the first Disconnected reply frees; on_close is then skipped. */
	struct fixture *fy;

	setup((void **)&fy);
	handshake(fy);
	call_init(&a, fy);
	call_init(&b, fy);
	a.free_q = true;
	assert_int_equal(qmp_execute(fy->q, "a", NULL, on_reply, &a, 0), 0);
	assert_int_equal(qmp_execute(fy->q, "b", NULL, on_reply, &b, 0), 0);
	close(fy->peer);
	fy->peer = -1;
	run_until(fy, &a.calls);
	pump(fy);
	assert_null(fy->q);
	assert_int_equal(b.calls, 1);
	assert_string_equal(b.class, QMP_CLASS_DISCONNECTED);
	assert_int_equal(fy->closed, 0);
	teardown((void **)&fy);
}

/* Commands issued from callbacks: from an event and from a reply (chained). */
static void test_execute_from_callbacks(void **state)
{
	struct fixture *fx = *state;
	struct call a, b, ev;
	json_int_t ida, idb, idev;
	char buf[256];

	handshake(fx);
	call_init(&a, fx);
	call_init(&b, fx);
	call_init(&ev, fx);
	a.then_execute = "chained";
	a.then_call = &b;
	fx->execute_in_event = "from-event";
	fx->execute_in_event_call = &ev;
	assert_int_equal(qmp_execute(fx->q, "first", NULL, on_reply, &a, 0), 0);
	ida = peer_expect_command(fx, "first", NULL);
	snprintf(buf, sizeof(buf),
		 "{\"event\": \"STOP\", " TS "}\r\n{\"return\": {}, \"id\": %lld}\r\n",
		 (long long)ida);
	peer_send(fx, buf);
	idev = peer_expect_command(fx, "from-event", NULL);
	idb = peer_expect_command(fx, "chained", NULL);
	assert_int_equal(fx->execute_in_event_r, 0);
	assert_int_equal(a.then_r, 0);
	assert_true(idev != idb);
	peer_reply(fx, idb, "\"done\"");
	run_until(fx, &b.calls);
	assert_string_equal(json_string_value(b.reply), "done");
	assert_int_equal(ev.calls, 0); /* fx->execute_in_event passed NULL as fn */
	assert_int_equal(qmp_get_pending(fx->q), 1);
	call_done(&a);
	call_done(&b);
}

static void test_free_in_ready(void **state)
{
	struct fixture *fx = *state;
	struct call a;
	json_int_t caps;

	call_init(&a, fx);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &a, 0), 0);
	fx->free_in_ready = true;
	peer_send(fx, GREETING);
	caps = peer_expect_command(fx, "qmp_capabilities", NULL);
	peer_reply(fx, caps, "{}");
	run_until(fx, &fx->ready);
	assert_null(fx->q);
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.class, QMP_CLASS_DISCONNECTED);
}

/* qmp_open() over a real UNIX socket, plus its synchronous failures. */
static void test_open_unix(void **state)
{
	char dir[] = "/tmp/test-qmp-XXXXXX", path[128], longpath[200];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fixture *fx = calloc(1, sizeof(*fx));
	int lfd;

	assert_non_null(fx);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q.sock", dir);
	assert_int_equal(sd_event_new(&fx->e), 0);
	fx->q = (struct qmp *)&lfd; /* must stay untouched on failure */
	assert_int_equal(qmp_open(fx->e, path, &callbacks, fx, &fx->q), -ENOENT);
	assert_ptr_equal(fx->q, (struct qmp *)&lfd);
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(qmp_open(fx->e, longpath, &callbacks, fx, &fx->q), -ENAMETOOLONG);

	/* A socket file nobody listens on. */
	strcpy(sa.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(qmp_open(fx->e, path, &callbacks, fx, &fx->q), -ECONNREFUSED);
	assert_int_equal(listen(lfd, 4), 0);

	fx->q = NULL;
	assert_int_equal(qmp_open(fx->e, path, &callbacks, fx, &fx->q), 0);
	assert_non_null(fx->q);
	fx->peer = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(fx->peer >= 0);
	handshake(fx);
	struct call a;
	json_int_t id;

	call_init(&a, fx);
	assert_int_equal(qmp_execute(fx->q, "query-status", NULL, on_reply, &a, 0), 0);
	id = peer_expect_command(fx, "query-status", NULL);
	peer_reply(fx, id, "{\"running\": true, \"status\": \"running\"}");
	run_until(fx, &a.calls);
	assert_true(json_is_true(json_object_get(a.reply, "running")));
	call_done(&a);

	close(lfd);
	unlink(path);
	rmdir(dir);
	teardown((void **)&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queued_before_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negotiation_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_matching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_mid_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test(test_bad_shapes),
		cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_execute_from_callbacks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_ready, setup, teardown),
		cmocka_unit_test(test_open_unix),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
