/* SPDX-License-Identifier: MIT */
/*
 * Many file descriptors behind one sd-event source (see poller.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "poller.h"
#include "util.h"

#define POLLER_BATCH_MIN 16
#define POLLER_BATCH_MAX 4096 /* events fetched per wake-up; the rest come next time */

struct watch {
	struct poller *poller;
	int fd;          /* not owned */
	uint32_t events; /* wanted, as given to epoll */
	bool in_set;     /* registered with the poller's epoll */
	watch_fn fn;
	void *userdata;
	struct watch *next_dead; /* freed during a dispatch, released after it */
};

struct poller {
	sd_event_source *io; /* owned; watches epoll_fd */
	int epoll_fd;        /* owned */
	struct epoll_event *batch;
	size_t batch_cap;
	size_t n_watches;
	bool dispatching;
	struct watch *dead; /* freed during this dispatch */
};

static int poller_grow(struct poller *p)
{
	size_t want = MIN(MAX(p->n_watches, (size_t)POLLER_BATCH_MIN), (size_t)POLLER_BATCH_MAX);
	struct epoll_event *b;

	if (want <= p->batch_cap)
		return 0;
	b = realloc(p->batch, want * sizeof(*b));
	if (!b)
		return -ENOMEM;
	p->batch = b;
	p->batch_cap = want;
	return 0;
}

static int poller_on_ready(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
	struct poller *p = userdata;
	struct watch *w;
	int n;

	if (poller_grow(p) < 0 && p->batch_cap == 0)
		return 0; /* out of memory: try again on the next wake-up */
	n = epoll_wait(p->epoll_fd, p->batch, (int)p->batch_cap, 0);
	if (n < 0) {
		if (errno != EINTR)
			log_error("poller: epoll_wait: %m");
		return 0;
	}
	p->dispatching = true;
	for (int i = 0; i < n; i++) {
		uint32_t ev;

		w = p->batch[i].data.ptr;
		/* Freed, disabled or changed by an earlier callback of this batch? */
		if (!w->in_set)
			continue;
		ev = p->batch[i].events & (w->events | EPOLLHUP | EPOLLERR);
		if (ev)
			w->fn(w, w->fd, ev, w->userdata);
	}
	p->dispatching = false;
	while ((w = p->dead)) {
		p->dead = w->next_dead;
		free(w);
	}
	return 0;
}

int poller_new(sd_event *e, struct poller **ret)
{
	struct poller *p;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epoll_fd < 0) {
		r = -errno;
		free(p);
		return r;
	}
	r = poller_grow(p);
	if (r >= 0)
		r = sd_event_add_io(e, &p->io, p->epoll_fd, EPOLLIN, poller_on_ready, p);
	if (r < 0) {
		poller_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

struct poller *poller_free(struct poller *p)
{
	if (!p)
		return NULL;
	p->io = sd_event_source_disable_unref(p->io);
	safe_close(p->epoll_fd);
	free(p->batch);
	free(p);
	return NULL;
}

int watch_add(struct poller *p, int fd, uint32_t events, watch_fn fn, void *userdata,
	      struct watch **ret)
{
	struct watch *w;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct watch){.poller = p, .fd = fd, .events = events, .fn = fn,
			    .userdata = userdata};
	r = watch_set_events(w, events);
	if (r < 0) {
		free(w);
		return r;
	}
	p->n_watches++;
	*ret = w;
	return 0;
}

int watch_set_events(struct watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (w->in_set && w->events == events)
		return 0;
	if (epoll_ctl(w->poller->epoll_fd, w->in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w->fd,
		      &ev) < 0)
		return -errno;
	w->events = events;
	w->in_set = true;
	return 0;
}

int watch_disable(struct watch *w)
{
	if (!w->in_set)
		return 0;
	w->in_set = false;
	if (epoll_ctl(w->poller->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL) < 0)
		return -errno;
	return 0;
}

struct watch *watch_free(struct watch *w)
{
	struct poller *p;

	if (!w)
		return NULL;
	p = w->poller;
	watch_disable(w);
	p->n_watches--;
	if (p->dispatching) {
		/* Its events may still be in the batch: keep the memory until the end. */
		w->next_dead = p->dead;
		p->dead = w;
	} else
		free(w);
	return NULL;
}
