/* SPDX-License-Identifier: MIT */
/*
 * One guest console: its identity (VM name, UUID, libvirt alias), the
 * chardev connection, the history ring, the writer's input queue, and the
 * clients attached to it.
 *
 * Sharing model (design brief): any number of watchers, at most one writer
 * (console->writer), nothing promoted silently.  Every attach, detach and
 * change of writer is announced to every attached client as a notice.
 * Guest output is appended to the ring and pushed to every client; a client
 * that cannot keep up lags on its own cursor and never slows the guest.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "chardev.h"
#include "conslog.h"
#include "message.h"
#include "obuf.h"
#include "peer.h"
#include "proto.h"
#include "ring.h"
#include "util.h"

struct client;
struct console;
struct server;

/*
 * What a console's source can do beyond the byte stream (QMP, libvirt).
 * send_break answers later through server_break_done() with the client id.
 */
struct console_ops {
	int (*send_break)(void *data, struct console *c, unsigned client_id, char *err,
			  size_t errsz);
};

#define CONSOLE_INPUT_MAX (64 * 1024)

struct console {
	struct server *server;
	char *name;    /* "VM:ALIAS", or NAME for --console NAME=PATH */
	char *vm;      /* VM name (or NAME) */
	char *uuid;    /* or NULL */
	char *alias;   /* or NULL */
	char *element; /* "serial", "console" or NULL */
	char *target;  /* target type or NULL */
	char *type;    /* backend type as libvirt names it: unix, pty, tcp ... */
	char *origin;  /* where it was defined: a file path or "command line" */
	bool primary;  /* the VM's first console: reachable as "VM" and "UUID" */
	char *order;   /* list order: by VM, its primary console first, then by name */
	bool supported;
	char *reason;  /* why unsupported */
	enum domxml_backend backend;
	char *path;
	char *chardev_id; /* QEMU's chardev id ("char" + alias under libvirt), or NULL */
	const struct console_ops *ops; /* or NULL: no control channel */
	void *ops_data;
	char vm_state[32];  /* run state from the source ("running", "paused"...), "" unknown */
	int guest_open;     /* 1/0: the guest has the port open (virtio), -1 unknown */
	struct peer_guest guest; /* who may be at the chardev's far end (see peer.h) */

	struct ring ring;
	struct conslog *log; /* owned, or NULL when logging is off */
	struct chardev chardev;
	struct obuf input; /* writer bytes on their way to the guest */

	TAILQ_HEAD(, client) clients;
	unsigned n_clients;
	struct client *writer; /* or NULL */
	struct client *input_waiter; /* writer paused until input drains */

	TAILQ_ENTRY(console) entry; /* in the registry */
};

struct console_spec {
	const char *vm, *uuid, *alias, *element, *target, *type, *origin;
	bool primary, supported;
	const char *reason;
	enum domxml_backend backend;
	const char *path;
	const char *chardev_id;
	const struct console_ops *ops;
	void *ops_data;
	struct peer_guest guest; /* who may be at the chardev's far end */
};

int console_new(struct server *s, const struct console_spec *spec, struct console **ret);
/* Detach every client (console-gone, with a notice saying why), stop the chardev, free. */
struct console *console_free(struct console *c, const char *why);
/* Detach every client with a notice and a `detached` {reason, text: why}. */
void console_detach_all(struct console *c, enum detach_reason reason, const char *why);
int console_start(struct console *c);

/* Same device? (used when a definition is reloaded) */
bool console_matches_spec(const struct console *c, const struct console_spec *spec);

/* Chardev events. */
void console_on_output(struct console *c);
void console_on_connected(struct console *c);
void console_on_disconnected(struct console *c, const char *why);
void console_on_input_drained(struct console *c);

/*
 * Client operations (the client is not attached / is attached to c).  The
 * caller has checked the client's rights: mode is what it may have, and
 * cl->right / cl->may_break are what `attached` reports.
 */
void console_attach(struct console *c, struct client *cl, enum attach_mode mode, long replay);
void console_detach(struct console *c, struct client *cl, bool announce);
/* Returns 0, or -EBUSY when someone else writes and force is false. */
int console_take(struct console *c, struct client *cl, bool force);
void console_release(struct console *c, struct client *cl);
/* Queue writer input; returns how many bytes were accepted (may be 0). */
size_t console_input(struct console *c, struct client *cl, const uint8_t *data, size_t len);

/* A marker line in the console's history (and live stream), e.g. a guest reset. */
void console_mark(struct console *c, const char *text);
/* Guest output as it is read, for the console log. */
void console_log_output(struct console *c, const void *data, size_t len);

/* Send a notice to every attached client (printf-style, already safe text). */
void console_announce(struct console *c, const char *fmt, ...) _printf_(2, 3);

/* Descriptions for the protocol (message.h): the console's fields, rights left false. */
void console_describe(const struct console *c, struct proto_console *ret);
/* A console object of `list` with the asking client's rights. */
json_t *console_list_json(const struct console *c, bool may_write, bool may_break);
/* A `who` answer; with_local adds each local peer's login and pid (for local admins). */
json_t *console_who_json(const struct console *c, bool with_local);
const char *console_state(const struct console *c);
