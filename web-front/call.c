/* SPDX-License-Identifier: MIT */
/*
 * A one-shot broker request (call.h).  Requests are tiny, answers bounded
 * by the frame size; a `list` in pieces is joined up to CALL_CONSOLES_MAX.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "call.h"
#include "fileio.h"
#include "frame-reader.h"
#include "log.h"
#include "message.h"
#include "obuf.h"
#include "proto.h"
#include "util.h"

#define CALL_OUT_MAX 8192
#define CALL_CONSOLES_MAX 10000

struct call {
	int fd;
	sd_event_source *io;
	struct frame_reader in;
	struct obuf out;
	json_t *consoles; /* list pieces joined so far */
	char expect[32];
	call_done_fn done;
	void *userdata;
};

struct call *call_free(struct call *c)
{
	if (!c)
		return NULL;
	sd_event_source_disable_unref(c->io);
	safe_close(c->fd);
	frame_reader_done(&c->in);
	obuf_done(&c->out);
	json_decref(c->consoles);
	free(c);
	return NULL;
}

static void call_finish(struct call *c, json_t *answer)
{
	c->done(c->userdata, answer);
	call_free(c);
}

/* 1: finished (c is gone), 0: wait for more. */
static int call_handle(struct call *c, json_t *msg, const char *type)
{
	json_t *pieces;

	if (strcmp(type, "error") == 0) {
		call_finish(c, msg);
		return 1;
	}
	if (strcmp(type, c->expect) != 0)
		return 0; /* the hello answer, or a message we do not need */
	if (strcmp(type, "list") != 0) {
		call_finish(c, msg);
		return 1;
	}
	pieces = json_object_get(msg, "consoles");
	if (json_is_array(pieces) &&
	    json_array_size(c->consoles) + json_array_size(pieces) <= CALL_CONSOLES_MAX)
		json_array_extend(c->consoles, pieces);
	if (json_is_true(json_object_get(msg, "more")))
		return 0;
	json_object_set(msg, "consoles", c->consoles);
	call_finish(c, msg);
	return 1;
}

static int call_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct call *c = userdata;
	struct frame fr;
	ssize_t n;
	int r;

	if (obuf_len(&c->out) > 0 && obuf_flush(&c->out, c->fd) < 0)
		goto broken;
	if (obuf_len(&c->out) == 0)
		(void)sd_event_source_set_io_events(c->io, EPOLLIN);
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return 0;
	n = frame_reader_fill(&c->in, c->fd);
	if (n < 0)
		goto broken;
	while ((r = frame_reader_next(&c->in, &fr)) > 0) {
		json_t *msg;
		const char *type;
		char err[128];

		if (fr.type != FRAME_CONTROL)
			continue;
		if (proto_decode_control(fr.payload, fr.len, &msg, &type, err, sizeof(err)) < 0)
			goto broken;
		r = call_handle(c, msg, type);
		json_decref(msg);
		if (r)
			return 0;
	}
	if (r < 0 || c->in.eof)
		goto broken;
	return 0;
broken:
	log_debug("the broker call for %s ended without an answer", c->expect);
	call_finish(c, NULL);
	return 0;
}

int call_start(sd_event *e, const char *broker, const char *session, const char *from,
	       json_t *request,
	       const char *expect, call_done_fn done, void *userdata, struct call **ret)
{
	struct call *c;
	json_t *hello;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(request);
		return -ENOMEM;
	}
	c->fd = -EBADF;
	c->done = done;
	c->userdata = userdata;
	snprintf(c->expect, sizeof(c->expect), "%s", expect);
	c->consoles = json_array();
	hello = proto_req_hello("ttyhub-webd", NULL, NULL, NULL, NULL);
	if (hello && session)
		json_object_set_new(hello, "session", json_string(session));
	if (hello && session && from)
		json_object_set_new(hello, "from", json_string(from));
	r = frame_reader_init(&c->in);
	if (r >= 0)
		r = obuf_init(&c->out, CALL_OUT_MAX);
	if (r >= 0)
		r = !c->consoles || !hello || !request ? -ENOMEM : 0;
	if (r >= 0)
		r = proto_put_control(&c->out, hello);
	if (r >= 0)
		r = proto_put_control(&c->out, request);
	json_decref(hello);
	json_decref(request);
	if (r >= 0) {
		c->fd = unix_connect(broker, true);
		r = c->fd;
	}
	if (r >= 0)
		r = sd_event_add_io(e, &c->io, c->fd, EPOLLIN | EPOLLOUT, call_on_io, c);
	if (r < 0) {
		call_free(c);
		return r;
	}
	*ret = c;
	return 0;
}
