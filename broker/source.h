/* SPDX-License-Identifier: MIT */
/*
 * A console source: whatever defines consoles (a directory of domain XML
 * files, libvirt, a QEMU's QMP socket, the --console options).  Each is a
 * struct source with its ops; whoever opens sources (ttyhubd's main) hands
 * them to a source_list, which frees them and rescans them on reload.
 *
 * A source adds and removes its consoles in the registry through domain.h
 * (or registry_add_console() directly) with the source_env it was opened
 * with, and tells them what it knows of the guest through
 * console_set_guest_state().  Nothing calls back into the server: a serial
 * break asked of a source is a struct break_req that the source completes.
 */
#pragma once

#include <stddef.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "proto.h"

struct console;
struct console_env;
struct registry;

/* What a source works with: the loop, and where its consoles go and how they are made. */
struct source_env {
	sd_event *event;
	struct registry *registry;
	const struct console_env *console;
};

/*
 * A serial break on its way through a source.  The requester fills it and
 * keeps it alive until done() is called, which happens exactly once: from
 * inside send_break() when the source refuses at once, else later from
 * the loop (also when the source is freed first: error -ECANCELED).  done()
 * may free the request.  The requester knows only ids and names, never
 * pointers, so a client or console that is gone by the answer is simply
 * not found.
 *
 * A rescue action (send_action()) travels the same way, with action set.
 * For sysrq the source sends only the break: the requester holds the
 * console's input back meanwhile and writes the key itself once done(0).
 */
#define BREAK_REQ_NAME_MAX 400
struct break_req {
	unsigned client_id;              /* who asked */
	char console[BREAK_REQ_NAME_MAX]; /* the console's name */
	void *userdata;                  /* the requester's */
	/* error 0, or -errno with a message (or NULL) safe to show */
	void (*done)(struct break_req *req, int error, const char *message);
	enum proto_action action;        /* send_action() only */
	char key;                        /* PROTO_ACTION_SYSRQ: the key (for messages) */
};

/* done() with a formatted message. */
void break_req_fail(struct break_req *req, int error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct source;

struct source_ops {
	const char *kind; /* "xmldir", "libvirt", "qmp", "cmdline" */
	struct source *(*free)(struct source *s);
	/* SIGHUP: read what may have changed while unwatched; NULL if nothing to do. */
	int (*rescan)(struct source *s);
	/* Serial break on console c of this source (see struct break_req); NULL: none. */
	void (*send_break)(struct source *s, struct console *c, struct break_req *req);
	/*
	 * A rescue action (req->action) on console c's guest; NULL: none.  A
	 * source that cannot do this one answers -EOPNOTSUPP with a message
	 * saying why (and what would make it possible).
	 */
	void (*send_action)(struct source *s, struct console *c, struct break_req *req);
};

/* Embedded first in every source's own struct. */
struct source {
	const struct source_ops *ops;
	TAILQ_ENTRY(source) entry;
};

/* In the order they were opened: rescans go in that order too. */
TAILQ_HEAD(source_list, source);

void source_list_add(struct source_list *l, struct source *s);
/* How many sources of a kind. */
size_t source_list_count(const struct source_list *l, const char *kind);
/* Rescan every source; returns the first error (each source logs its own). */
int source_list_rescan(struct source_list *l);
/* Free every source (their consoles go with them). */
void source_list_free(struct source_list *l);
