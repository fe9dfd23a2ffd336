/* SPDX-License-Identifier: MIT */
/*
 * The authorisation connection to ttyhubd (see authz.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authz.h"
#include "clock.h"
#include "log.h"
#include "util.h"

/* Requests are small; the answers are read, so the queue needs one request of room. */
#define AUTHZ_OUT_MAX 4096

int authz_init(struct authz *a, const char *path)
{
	*a = (struct authz){ .fd = -EBADF, .path = strdup(path) };
	return a->path ? 0 : -ENOMEM;
}

static void authz_close(struct authz *a)
{
	if (a->fd < 0)
		return;
	front_done(&a->f);
	a->fd = safe_close(a->fd);
}

int authz_set_path(struct authz *a, const char *path)
{
	char *p;

	if (streq_opt(a->path, path))
		return 0;
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	authz_close(a);
	free(a->path);
	a->path = p;
	return 0;
}

void authz_done(struct authz *a)
{
	authz_close(a);
	free(a->path);
	a->path = NULL;
}

/*
 * Flush and wait for the next event that is not console data or a notice,
 * until deadline (CLOCK_MONOTONIC, µs).
 */
static int authz_wait(struct authz *a, uint64_t deadline, struct front_event *ret)
{
	for (;;) {
		struct pollfd p = { .fd = a->fd, .events = POLLIN };
		uint64_t now;
		ssize_t n;
		int r;

		if (front_flush(&a->f) < 0)
			return -EPIPE;
		while ((r = front_next_event(&a->f, ret)) > 0)
			if (ret->type != FRONT_EV_DATA && ret->type != FRONT_EV_NOTICE)
				return 0;
		if (r < 0)
			return r;
		if (front_eof(&a->f))
			return -ECONNRESET;
		now = clock_now_usec();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (front_pending(&a->f) > 0)
			p.events |= POLLOUT;
		r = poll(&p, 1, (int)((deadline - now + 999) / 1000));
		if (r < 0 && errno != EINTR)
			return negative_errno();
		n = front_fill(&a->f);
		if (n < 0)
			return (int)n;
	}
}

static int authz_open(struct authz *a, uint64_t deadline)
{
	struct front_event e;
	int fd, r;

	fd = front_connect(a->path, true);
	if (fd < 0)
		return fd;
	r = front_init(&a->f, fd, AUTHZ_OUT_MAX, NULL);
	if (r < 0) {
		close(fd);
		return r;
	}
	a->fd = fd;
	r = front_hello(&a->f, "ttyhub-sshd", NULL);
	if (r >= 0)
		r = authz_wait(a, deadline, &e);
	if (r >= 0 && e.type != FRONT_EV_HELLO)
		r = -EPROTO; /* refused: the broker said why in its log */
	if (r < 0)
		authz_close(a);
	return r;
}

int authz_connect(struct authz *a)
{
	if (a->fd >= 0)
		return 0;
	return authz_open(a, clock_now_usec() + AUTHZ_TIMEOUT_USEC);
}

/*
 * The gateway members of `authorized`: grant (a string) and gateway (a
 * bool), each absent from a broker that predates gateways: no grant, not a
 * gateway.  A grant of the wrong type or too long is an answer we cannot
 * use: cutting it could change what it grants.
 */
static int authz_gateway(const json_t *msg, struct authz_answer *ret)
{
	const json_t *grant = json_object_get(msg, "grant");
	const json_t *gateway = json_object_get(msg, "gateway");

	ret->grant[0] = '\0';
	ret->gateway = false;
	if (grant) {
		if (!json_is_string(grant) || json_string_length(grant) > AUTHZ_GRANT_MAX ||
		    strlen(json_string_value(grant)) != json_string_length(grant))
			return -EPROTO;
		memcpy(ret->grant, json_string_value(grant), json_string_length(grant) + 1);
	}
	if (gateway && !json_is_boolean(gateway))
		return -EPROTO;
	ret->gateway = json_is_true(gateway);
	return 0;
}

int authz_ask(struct authz *a, const struct front_principal *p, struct authz_answer *ret)
{
	uint64_t deadline = clock_now_usec() + AUTHZ_TIMEOUT_USEC;
	struct front_event e;
	int r = -ENOTCONN;

	/* A kept connection may have been closed by a broker restart: then once more, anew. */
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused = a->fd >= 0;

		if (!reused) {
			r = authz_open(a, deadline);
			if (r < 0)
				return r;
		}
		r = front_authorize(&a->f, p);
		if (r >= 0)
			r = authz_wait(a, deadline, &e);
		if (r >= 0)
			break;
		authz_close(a); /* never read a late answer as the next key's */
		if (!reused || (r != -ECONNRESET && r != -EPIPE))
			return r;
	}
	if (e.type == FRONT_EV_AUTHORIZED) {
		snprintf(ret->fingerprint, sizeof(ret->fingerprint), "%s",
			 e.fingerprint ? e.fingerprint : "?");
		snprintf(ret->comment, sizeof(ret->comment), "%s", e.comment ? e.comment : "");
		r = authz_gateway(e.msg, ret);
		if (r < 0) {
			authz_close(a);
			return r;
		}
		return 1;
	}
	if (e.type == FRONT_EV_ERROR && streq_opt(e.code, PROTO_E_DENIED))
		return 0;
	/* Any other answer: the connection is out of step with our questions. */
	authz_close(a);
	return -EPROTO;
}
