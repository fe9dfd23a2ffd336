/* SPDX-License-Identifier: MIT */
/*
 * Chardev (broker/chardev.c) against a real guest socket and a real
 * sd-event loop: what the guest writes reaches the ring (and the log hook)
 * in order; the input queue drains into the guest; when the guest does not
 * read, the chardev waits for EPOLLOUT and loses nothing; a guest that
 * closes is reported once and connected to again; held input waits while a
 * byte written now goes first (sysrq's key).  The owner is this test,
 * through chardev_ops: no console, no server.
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
#include "chardev.h"
#include "obuf.h"
#include "ring.h"
#include "util.h"

struct fx {
	sd_event *e;
	struct ring ring;
	struct obuf input;
	struct peer_guest expect;
	struct chardev ch;
	struct guest g;
	size_t data_len;       /* bytes seen by on_data */
	unsigned n_output, n_connected, n_disconnected, n_drained;
	char why[256];
};

static void on_data(void *userdata, const void *data, size_t len)
{
	struct fx *fx = userdata;

	/* After the commit: the ring has these bytes (the log is written from the ring). */
	fx->data_len += len;
	assert_int_equal(ring_head(&fx->ring), fx->data_len);
}

static void on_output(void *userdata)
{
	struct fx *fx = userdata;

	assert_int_equal(ring_head(&fx->ring), fx->data_len);
	fx->n_output++;
}

static void on_connected(void *userdata)
{
	((struct fx *)userdata)->n_connected++;
}

static void on_disconnected(void *userdata, const char *why)
{
	struct fx *fx = userdata;

	fx->n_disconnected++;
	snprintf(fx->why, sizeof(fx->why), "%s", why);
}

static void on_input_drained(void *userdata)
{
	((struct fx *)userdata)->n_drained++;
}

static const struct chardev_ops test_ops = {
	.on_data = on_data,
	.on_output = on_output,
	.on_connected = on_connected,
	.on_disconnected = on_disconnected,
	.on_input_drained = on_input_drained,
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(sd_event_new(&fx->e), 0);
	assert_int_equal(ring_init(&fx->ring, 64 * 1024), 0);
	assert_int_equal(obuf_init(&fx->input, 64 * 1024), 0);
	guest_listen(&fx->g);
	const struct chardev_owner owner = {
		.ops = &test_ops,
		.userdata = fx,
		.name = "test",
		.ring = &fx->ring,
		.input = &fx->input,
		.guest = &fx->expect,
	};
	assert_int_equal(chardev_init(&fx->ch, &owner, DOMXML_BACKEND_UNIX, fx->g.path), 0);
	assert_int_equal(chardev_start(&fx->ch, fx->e), 0);
	guest_accept(&fx->g, fx->e);
	assert_int_equal(fx->ch.state, CHARDEV_CONNECTED);
	assert_int_equal(fx->n_connected, 1);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	chardev_done(&fx->ch);
	guest_done(&fx->g);
	ring_done(&fx->ring);
	obuf_done(&fx->input);
	sd_event_unref(fx->e);
	free(fx);
	return 0;
}

static void guest_write(struct fx *fx, const void *data, size_t len)
{
	assert_int_equal(write(fx->g.fd, data, len), (ssize_t)len);
}

static void test_output_reaches_ring(void **state)
{
	struct fx *fx = *state;
	struct iovec iov[2];
	char got[64];
	size_t n;

	guest_write(fx, "login: ", 7);
	LOOP_UNTIL(fx->e, fx->n_output > 0);
	guest_write(fx, "root\r\n", 6);
	LOOP_UNTIL(fx->e, ring_head(&fx->ring) == 13);
	assert_int_equal(fx->data_len, 13);
	n = ring_peek(&fx->ring, 0, sizeof(got), iov);
	assert_int_equal(n, 13);
	memcpy(got, iov[0].iov_base, iov[0].iov_len);
	memcpy(got + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	assert_memory_equal(got, "login: root\r\n", 13);
	assert_int_equal(fx->n_disconnected, 0);
}

static void test_input_drains_to_guest(void **state)
{
	struct fx *fx = *state;
	char got[16];
	size_t n = 0;

	assert_int_equal(obuf_append(&fx->input, "uname -a\r", 9), 0);
	chardev_kick_write(&fx->ch);
	/* A socket with room takes it at once: drained, nothing left to wait for. */
	assert_int_equal(obuf_len(&fx->input), 0);
	assert_true(fx->n_drained >= 1);
	assert_false(fx->ch.want_write);
	while (n < 9) {
		n += fd_read_now(fx->g.fd, got + n, sizeof(got) - n);
		if (n < 9)
			loop_step(fx->e);
	}
	assert_memory_equal(got, "uname -a\r", 9);
}

/*
 * sysrq: while the input is held, queued keystrokes stay queued (even after
 * loop iterations with EPOLLOUT possible), a byte written now reaches the
 * guest first, and the release sends the rest after it, in order.
 */
static void test_hold_input_key_first(void **state)
{
	struct fx *fx = *state;
	char got[16];
	size_t n = 0;

	chardev_hold_input(&fx->ch, true);
	chardev_hold_input(&fx->ch, true); /* two holds: two releases */
	assert_int_equal(obuf_append(&fx->input, "ls\r", 3), 0);
	chardev_kick_write(&fx->ch);
	for (int i = 0; i < 5; i++)
		loop_step(fx->e);
	assert_int_equal(obuf_len(&fx->input), 3);
	assert_false(fx->ch.want_write);
	assert_int_equal(fd_read_now(fx->g.fd, got, sizeof(got)), 0);
	assert_int_equal(chardev_write_now(&fx->ch, "h", 1), 0);
	chardev_hold_input(&fx->ch, false);
	assert_int_equal(obuf_len(&fx->input), 3); /* still held once */
	chardev_hold_input(&fx->ch, false);
	assert_int_equal(obuf_len(&fx->input), 0);
	chardev_hold_input(&fx->ch, false); /* an extra release changes nothing */
	assert_int_equal(fx->ch.hold, 0);
	while (n < 4) {
		n += fd_read_now(fx->g.fd, got + n, sizeof(got) - n);
		if (n < 4)
			loop_step(fx->e);
	}
	assert_memory_equal(got, "hls\r", 4);
}

/* Queue the next bytes of the stream while the input queue has room. */
static void fill_input(struct fx *fx, size_t *queued, size_t total)
{
	uint8_t chunk[4096];

	while (*queued < total && obuf_room(&fx->input) > 0) {
		size_t n = MIN(MIN(sizeof(chunk), obuf_room(&fx->input)), total - *queued);

		for (size_t i = 0; i < n; i++)
			chunk[i] = stream_byte(*queued + i);
		assert_int_equal(obuf_append(&fx->input, chunk, n), 0);
		*queued += n;
	}
}

static void test_backpressure_loses_nothing(void **state)
{
	struct fx *fx = *state;
	const size_t total = 2 * 1024 * 1024;
	size_t queued = 0, received = 0;
	int small = 4096;
	uint8_t buf[8192];

	/* Small socket buffers: the guest is full long before the stream ends. */
	assert_int_equal(setsockopt(fx->ch.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(fx->g.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);

	/* The guest does not read: the chardev hits EAGAIN and asks for EPOLLOUT. */
	while (!fx->ch.want_write) {
		assert_true(obuf_room(&fx->input) > 0);
		fill_input(fx, &queued, total);
		chardev_kick_write(&fx->ch);
		loop_pump(fx->e);
	}
	assert_true(obuf_len(&fx->input) > 0);
	assert_true(queued < total);

	/* Now it reads: every byte arrives, in order, as the queue is refilled. */
	while (received < total) {
		size_t n = guest_read_stream(fx->g.fd, &received);

		fill_input(fx, &queued, total);
		chardev_kick_write(&fx->ch);
		if (n == 0)
			loop_step(fx->e);
	}
	assert_int_equal(received, total);
	assert_int_equal(obuf_len(&fx->input), 0);
	loop_pump(fx->e);
	assert_false(fx->ch.want_write);
	assert_int_equal(fx->n_disconnected, 0);
	assert_int_equal(fd_read_now(fx->g.fd, buf, sizeof(buf)), 0);
}

static void test_disconnect_reported_and_reconnected(void **state)
{
	struct fx *fx = *state;

	/* Output written just before the close is not lost. */
	guest_write(fx, "bye\r\n", 5);
	guest_close(&fx->g);
	LOOP_UNTIL(fx->e, fx->n_disconnected > 0);
	assert_int_equal(fx->n_disconnected, 1);
	assert_int_equal(fx->data_len, 5);
	assert_int_equal(ring_head(&fx->ring), 5);
	assert_int_equal(fx->ch.state, CHARDEV_WAITING);
	assert_non_null(strstr(fx->why, "closed"));
	assert_non_null(strstr(fx->ch.status, "disconnected"));
	/* Back-off, then a new connection to the same path. */
	guest_accept(&fx->g, fx->e);
	LOOP_UNTIL(fx->e, fx->n_connected == 2);
	assert_int_equal(fx->ch.state, CHARDEV_CONNECTED);
	assert_int_equal(fx->n_disconnected, 1);
	guest_write(fx, "again", 5);
	LOOP_UNTIL(fx->e, ring_head(&fx->ring) == 10);
}

static void test_input_while_disconnected_is_not_written(void **state)
{
	struct fx *fx = *state;

	guest_close(&fx->g);
	LOOP_UNTIL(fx->e, fx->n_disconnected > 0);
	assert_int_equal(obuf_append(&fx->input, "x", 1), 0);
	chardev_kick_write(&fx->ch);
	assert_int_equal(obuf_len(&fx->input), 1);
	assert_int_equal(fx->n_drained, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_output_reaches_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_drains_to_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_input_key_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure_loses_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_reported_and_reconnected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_input_while_disconnected_is_not_written, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
