/* SPDX-License-Identifier: MIT */
/*
 * The `ttyhub-broker` subsystem's byte relay (see relay.h).
 *
 * Everything happens in relay_pump(), called by the channel after each
 * libssh poll round and when the broker socket is ready (relay_ops.wake):
 * read ttyhubd while to_client has room, take what libssh kept of the
 * gateway's bytes while to_broker has room, flush to_broker, and last
 * write to_client to the channel (taking held bytes runs libssh's packet
 * loop, which may change its output state).  The broker socket is watched
 * for EPOLLIN only while to_client has room and for EPOLLOUT only while
 * to_broker holds bytes, so a stalled side costs no wake-ups.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "relay.h"
#include "util.h"

/* One write to the channel at most (libssh splits it into packets). */
#define RELAY_WRITE_CHUNK (64 * 1024)
/* Past this many bytes libssh holds for the kernel, nothing more is written (channel.c's). */
#define RELAY_UNSENT_MAX (256 * 1024)
/* One read from the broker at most: a full queue never needs a compaction for a small read. */
#define RELAY_READ_CHUNK (16 * 1024)

static void relay_on_broker(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct relay *r = userdata;

	/*
	 * A hang-up is reported whatever events are asked: remembered, so that
	 * while to_client is full (nothing to read into) the watch is off
	 * rather than waking us for it again and again (relay_pump()).
	 */
	if (revents & (EPOLLHUP | EPOLLERR))
		r->hup = true;
	/* The owner pumps (the reads and writes are there) and then updates libssh's events. */
	r->ops->wake(r->userdata);
}

/*
 * The hello the gateway's stream starts with: the front library builds
 * it, so it says what every front's hello says for a key and an address.
 */
static int relay_queue_hello(struct relay *r, const struct front_principal *p)
{
	const struct front_principal gw = { .key = p->key, .from = p->from };
	struct front f;
	int q;

	q = front_init(&f, -EBADF, RELAY_TO_BROKER_MAX, NULL);
	if (q < 0)
		return q;
	q = front_hello(&f, "ttyhub-sshd", &gw);
	if (q >= 0)
		q = obuf_append(&r->to_broker, obuf_data(&f.out), obuf_len(&f.out));
	front_done(&f);
	return q;
}

int relay_new(const char *broker, struct poller *poller, ssh_channel ch,
	      const struct front_principal *p, const struct relay_ops *ops, void *userdata,
	      struct relay **ret)
{
	struct relay *r;
	int q;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct relay){ .ch = ch, .fd = -EBADF, .ops = ops, .userdata = userdata };
	q = obuf_init(&r->to_client, RELAY_TO_CLIENT_MAX);
	if (q >= 0)
		q = obuf_init(&r->to_broker, RELAY_TO_BROKER_MAX);
	if (q >= 0)
		q = relay_queue_hello(r, p);
	if (q < 0)
		goto fail;
	r->fd = front_connect(broker, true);
	if (r->fd < 0) {
		q = r->fd;
		goto fail;
	}
	q = watch_add(poller, r->fd, EPOLLIN | EPOLLOUT, relay_on_broker, r, &r->io);
	if (q < 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	relay_free(r);
	return q;
}

struct relay *relay_free(struct relay *r)
{
	if (!r)
		return NULL;
	r->io = watch_free(r->io);
	r->fd = safe_close(r->fd);
	obuf_done(&r->to_client);
	obuf_done(&r->to_broker);
	free(r);
	return NULL;
}

void relay_set_why(struct relay *r, const char *why)
{
	if (!r->why[0])
		snprintf(r->why, sizeof(r->why), "%s", why && why[0] ? why : "closed");
}

/* ttyhubd's side is over: nothing more is read from it or written to it. */
static void relay_broker_ended(struct relay *r, const char *why)
{
	relay_set_why(r, why);
	r->broker_eof = true;
	obuf_consume(&r->to_broker, obuf_len(&r->to_broker));
	r->held_len = 0;
}

/* Append what fits of data to to_broker; returns how much. */
static size_t relay_take(struct relay *r, const uint8_t *data, size_t len)
{
	size_t n = MIN(len, obuf_room(&r->to_broker));

	if (n > 0 && obuf_append(&r->to_broker, data, n) < 0)
		return 0; /* not reached: n fits */
	r->up += n;
	return n;
}

/* Move r->held into to_broker; true once it is empty. */
static bool relay_take_held(struct relay *r)
{
	size_t n = relay_take(r, r->held, r->held_len);

	r->held_len -= n;
	memmove(r->held, r->held + n, r->held_len);
	return r->held_len == 0;
}

size_t relay_from_client(struct relay *r, const void *data, size_t len)
{
	size_t used = 0;

	if (r->broker_eof)
		return len; /* nobody to take them: the channel closes once to_client is out */
	/* Older bytes first: those read back from libssh (relay_resume_client()). */
	if (relay_take_held(r))
		used = relay_take(r, data, len);
	r->client_held = used < len;
	return used;
}

void relay_client_eof(struct relay *r)
{
	r->client_eof = true;
}

/* Read ttyhubd while to_client has room. */
static void relay_read_broker(struct relay *r)
{
	while (!r->broker_eof && obuf_room(&r->to_client) > 0) {
		size_t want = MIN(obuf_room(&r->to_client), (size_t)RELAY_READ_CHUNK);
		uint8_t *span;
		size_t room = obuf_tail_span(&r->to_client, want, &span);
		ssize_t n = read(r->fd, span, room);

		if (n > 0) {
			obuf_commit(&r->to_client, (size_t)n);
			continue;
		}
		if (n == 0)
			relay_broker_ended(r, "ttyhubd closed the connection");
		else if (errno != EAGAIN && errno != EINTR) {
			char why[sizeof(r->why)];

			snprintf(why, sizeof(why), "ttyhubd connection failed: %s", strerror(errno));
			relay_broker_ended(r, why);
		}
		return;
	}
}

/*
 * Bytes libssh kept because to_broker was full: take them now.  Only when
 * there are some (reading runs libssh's packet loop).  That loop may call
 * relay_from_client() with the oldest bytes first, so what the read
 * returns comes after them and may no longer fit: it waits in held.
 */
static void relay_resume_client(struct relay *r)
{
	while (!r->broker_eof && ssh_channel_is_open(r->ch)) {
		if (r->held_len == 0) {
			int n;

			if (!r->client_held || obuf_room(&r->to_broker) <= sizeof(r->held))
				return;
			n = ssh_channel_read_nonblocking(r->ch, r->held, sizeof(r->held), 0);
			if (n <= 0) {
				r->client_held = n < 0;
				return;
			}
			r->held_len = (size_t)n;
		}
		if (!relay_take_held(r))
			return; /* still no room */
	}
}

/* Flush to_broker; once the gateway's EOF came and all went out, pass it on. */
static void relay_flush_broker(struct relay *r)
{
	if (r->broker_eof)
		return;
	if (obuf_len(&r->to_broker) > 0) {
		ssize_t n = obuf_flush(&r->to_broker, r->fd);

		if (n < 0) {
			char why[sizeof(r->why)];

			snprintf(why, sizeof(why), "ttyhubd connection failed: %s", strerror((int)-n));
			relay_broker_ended(r, why);
			return;
		}
	}
	if (r->client_eof && !r->broker_shut && obuf_len(&r->to_broker) == 0 &&
	    r->held_len == 0 && !r->client_held) {
		r->broker_shut = true;
		relay_set_why(r, "the gateway sent EOF");
		(void)shutdown(r->fd, SHUT_WR);
	}
}

/* Write to_client to the channel, window and libssh's queue permitting. */
static void relay_flush_client(struct relay *r)
{
	while (obuf_len(&r->to_client) > 0 && ssh_channel_is_open(r->ch)) {
		uint32_t window = ssh_channel_window_size(r->ch);
		size_t n = MIN(obuf_len(&r->to_client), (size_t)MIN(window, RELAY_WRITE_CHUNK));
		int w;

		if (n == 0 || r->ops->unsent(r->userdata) >= RELAY_UNSENT_MAX)
			return;
		w = ssh_channel_write(r->ch, obuf_data(&r->to_client), (uint32_t)n);
		if (w <= 0) {
			if (w < 0) {
				relay_broker_ended(r, "the SSH channel failed");
				obuf_consume(&r->to_client, obuf_len(&r->to_client));
			}
			return;
		}
		obuf_consume(&r->to_client, (size_t)w);
		r->down += (uint64_t)w;
	}
}

void relay_pump(struct relay *r)
{
	relay_read_broker(r);
	relay_resume_client(r);
	relay_flush_broker(r);
	/* Last: after anything above that may have run libssh's loop. */
	relay_flush_client(r);
	if (r->io) {
		uint32_t ev = 0;

		if (!r->broker_eof) {
			ev |= obuf_room(&r->to_client) > 0 ? EPOLLIN : 0;
			ev |= obuf_len(&r->to_broker) > 0 ? EPOLLOUT : 0;
		}
		/*
		 * Ended, or hung up with no room to read what is left: the channel's
		 * own events (its window opening) pump us again.
		 */
		if (r->broker_eof || (r->hup && !(ev & EPOLLIN)))
			watch_disable(r->io);
		else
			watch_set_events(r->io, ev);
	}
}

bool relay_done(const struct relay *r)
{
	return r->broker_eof && (obuf_len(&r->to_client) == 0 || !ssh_channel_is_open(r->ch));
}
