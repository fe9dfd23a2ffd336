/* SPDX-License-Identifier: MIT */
/*
 * What the ttyhubd unit tests (test-chardev, test-console, test-client)
 * share: stepping a real sd-event loop until a condition holds, a guest
 * chardev socket to connect to, and a broker protocol peer.
 *
 * No step has a time bound: a wait loops on sd_event_run() until its
 * condition holds, and a test that never gets there is ended by ctest's
 * timeout.  Nothing here sleeps.
 *
 * The guest socket is bound here but listen()ed on by a short-lived child,
 * because ttyhubd refuses a chardev whose listener is itself (peer.h); the
 * tests name their own uid as the guest (--guest-user) so that it is allowed.
 */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "chardev.h"
#include "frame.h"
#include "obuf.h"
#include "frame-reader.h"
#include "proto.h"

/* Run every event source that is ready, without waiting. */
static inline void loop_pump(sd_event *e)
{
	int r;

	while ((r = sd_event_run(e, 0)) > 0)
		;
	assert_true(r >= 0);
}

/* One loop iteration, waiting a little for something to happen. */
static inline void loop_step(sd_event *e)
{
	assert_true(sd_event_run(e, 10000) >= 0);
}

#define LOOP_UNTIL(e, cond)              \
	do {                             \
		while (!(cond))          \
			loop_step(e);    \
	} while (0)

/* ---- a guest chardev: a listening UNIX socket whose listener is not us ---- */

struct guest {
	char dir[64];
	char path[128];
	int lfd; /* listening, non-blocking */
	int fd;  /* the accepted connection, or -1 */
};

static inline void guest_listen(struct guest *g)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int status;
	pid_t pid;

	snprintf(g->dir, sizeof(g->dir), "/tmp/ttyhub-unit-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	snprintf(g->path, sizeof(g->path), "%s/guest.sock", g->dir);
	assert_true(strlen(g->path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, g->path, strlen(g->path) + 1);
	g->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(g->lfd >= 0);
	assert_int_equal(bind(g->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* SO_PEERCRED names the process that called listen(): a child. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(listen(g->lfd, 8) < 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	g->fd = -1;
	/* Our own uid is the guest's (as with --guest-user): allowed at the far end. */
	chardev_set_guest_user(&(struct peer_guest){ .set = true, .uid = geteuid(),
						     .explicit = true });
}

/* Accept the chardev's connection, running the loop until it has connected. */
static inline void guest_accept(struct guest *g, sd_event *e)
{
	for (;;) {
		g->fd = accept4(g->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (g->fd >= 0)
			return;
		assert_int_equal(errno, EAGAIN);
		loop_step(e);
	}
}

static inline void guest_close(struct guest *g)
{
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
}

static inline void guest_done(struct guest *g)
{
	guest_close(g);
	close(g->lfd);
	unlink(g->path);
	rmdir(g->dir);
	chardev_set_guest_user(NULL);
}

/* Read what is there now (non-blocking); returns the bytes read. */
static inline size_t fd_read_now(int fd, void *buf, size_t size)
{
	ssize_t n = read(fd, buf, size);

	if (n < 0) {
		assert_int_equal(errno, EAGAIN);
		return 0;
	}
	return (size_t)n;
}

/* Byte i of a test stream (writers and checkers agree on it; not periodic in 256). */
static inline uint8_t stream_byte(size_t i)
{
	return (uint8_t)(i * 13 + i / 509);
}

/*
 * Read what the guest end has now and check it continues the stream at
 * *received; returns the bytes read (0: nothing there yet).
 */
static inline size_t guest_read_stream(int fd, size_t *received)
{
	uint8_t buf[8192];
	size_t n = fd_read_now(fd, buf, sizeof(buf));

	for (size_t i = 0; i < n; i++)
		if (buf[i] != stream_byte(*received + i))
			fail_msg("byte %zu: got %u, want %u", *received + i, buf[i],
				 stream_byte(*received + i));
	*received += n;
	return n;
}

/* ---- a broker protocol peer: the far end of a client's socket ---- */

struct peer {
	int fd; /* ours; the client has the other end */
	struct frame_reader in;
	struct obuf out;
	size_t data_len;      /* data payload bytes received so far */
	char data[64 * 1024]; /* the last of them (a window for checks) */
	size_t data_kept;
	unsigned dropped_notices;
	/* Output frames: how many, and the ring range of the last (its end: the resume offset). */
	unsigned out_frames;
	uint64_t out_start, out_end;
};

static inline void peer_init(struct peer *p, int fd)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	assert_int_equal(frame_reader_init(&p->in), 0);
	assert_int_equal(obuf_init(&p->out, 1024 * 1024), 0);
}

static inline void peer_done(struct peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	frame_reader_done(&p->in);
	obuf_done(&p->out);
}

/* Queue a control message (a JSON text) and send what the socket takes. */
static inline void peer_send(struct peer *p, const char *text)
{
	json_t *msg = json_loads(text, 0, NULL);

	assert_non_null(msg);
	assert_int_equal(proto_put_control(&p->out, msg), 0);
	json_decref(msg);
	assert_true(obuf_flush(&p->out, p->fd) >= 0);
}

static inline void peer_note_data(struct peer *p, const uint8_t *data, size_t len)
{
	p->data_len += len;
	if (len >= sizeof(p->data)) {
		memcpy(p->data, data + len - sizeof(p->data), sizeof(p->data));
		p->data_kept = sizeof(p->data);
		return;
	}
	if (p->data_kept + len > sizeof(p->data)) {
		size_t drop = p->data_kept + len - sizeof(p->data);

		memmove(p->data, p->data + drop, p->data_kept - drop);
		p->data_kept -= drop;
	}
	memcpy(p->data + p->data_kept, data, len);
	p->data_kept += len;
}

/* An output frame from the client: its offsets kept, its bytes noted. */
static inline void peer_output(struct peer *p, const struct frame *f)
{
	const uint8_t *data;
	size_t len;

	assert_int_equal(proto_parse_output(f, &p->out_start, &p->out_end, &data, &len), 0);
	p->out_frames++;
	peer_note_data(p, data, len);
}

/* A control frame from the client, decoded (it must be valid); "dropped" notices counted. */
static inline json_t *peer_control(struct peer *p, const struct frame *f, const char **ret_type)
{
	json_t *msg;
	const char *t;
	char err[128];

	assert_int_equal(proto_decode_control(f->payload, f->len, &msg, &t, err, sizeof(err)), 0);
	if (json_object_get(msg, "dropped"))
		p->dropped_notices++;
	if (ret_type)
		*ret_type = t;
	return msg;
}

/*
 * The next control message whose type is `type`, running the loop; data
 * frames and other messages on the way are counted (data) or dropped.
 * Returns a reference the caller must json_decref().
 */
static inline json_t *peer_expect(struct peer *p, sd_event *e, const char *type)
{
	for (;;) {
		struct frame f;
		int r = frame_reader_next(&p->in, &f);

		assert_true(r >= 0);
		if (r == 0) {
			ssize_t n = frame_reader_fill(&p->in, p->fd);

			assert_true(n >= 0);
			assert_false(p->in.eof);
			if (n <= 0)
				loop_step(e);
			continue;
		}
		/* The broker sends console output only as output frames. */
		assert_int_not_equal(f.type, FRAME_DATA);
		if (f.type == FRAME_OUTPUT) {
			peer_output(p, &f);
			continue;
		}
		const char *t;
		json_t *msg = peer_control(p, &f, &t);

		if (strcmp(t, type) == 0)
			return msg;
		json_decref(msg);
	}
}

/* Read and account for everything the client sent so far, without waiting. */
static inline void peer_drain(struct peer *p)
{
	for (;;) {
		struct frame f;
		int r = frame_reader_next(&p->in, &f);

		assert_true(r >= 0);
		if (r == 0) {
			if (frame_reader_fill(&p->in, p->fd) <= 0)
				return;
			continue;
		}
		/* The broker sends console output only as output frames. */
		assert_int_not_equal(f.type, FRAME_DATA);
		if (f.type == FRAME_OUTPUT) {
			peer_output(p, &f);
			continue;
		}
		json_decref(peer_control(p, &f, NULL));
	}
}
