/* SPDX-License-Identifier: MIT */
/*
 * Many file descriptors behind one sd-event source.
 *
 * sd-event asks epoll again before each dispatch and dispatches one source
 * at a time, so K descriptors that stay ready (busy client sockets) cost
 * O(K) each, O(K²) per round: at 500 SSH readers that was most of
 * ttyhub-sshd's CPU.  A poller keeps its own level-triggered epoll set,
 * is a single source in the daemon's sd-event loop, and on each wake-up
 * serves every ready descriptor once.
 *
 * A watch does not own its descriptor: free the watch, then close the fd.
 * Watches may be freed (or their events changed) from any callback; a
 * freed watch is never called again, not even for events already fetched.
 */
#pragma once

#include <stdint.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>

struct poller;
struct watch;

/* revents: the fetched events, masked to the watch's current ones plus EPOLLHUP/EPOLLERR. */
typedef void (*watch_fn)(struct watch *w, int fd, uint32_t revents, void *userdata);

int poller_new(sd_event *e, struct poller **ret);
/* Every watch must have been freed. */
struct poller *poller_free(struct poller *p);

int watch_add(struct poller *p, int fd, uint32_t events, watch_fn fn, void *userdata,
	      struct watch **ret);
int watch_set_events(struct watch *w, uint32_t events);
/* Stops all events, hang-ups included, until watch_set_events(). */
int watch_disable(struct watch *w);
/* Returns NULL, for `w = watch_free(w)`. */
struct watch *watch_free(struct watch *w);
