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
 *
 * The writer's lease (docs/protocol.md "Resume"): whoever becomes the writer
 * gets a fresh random lease, kept with the ring (ring_set_lease()) and given
 * to that client alone.  It is cleared when the writer gives the role up
 * (release, detach on request, a demotion or revocation) and kept when only
 * its connection dropped or the broker stops, so the writer can come back as
 * the writer.  After a start that adopted a ring with a lease,
 * lease_hold_until keeps the role for it a while (an rw attach without the
 * lease gets watcher; force still takes over).
 *
 * The console does not know what a client is: what is attached to it is a
 * struct console_attachment (its cursor, role, rights and names) with a
 * table of operations (notice, send, flush, resume_input, who).  A broker
 * client embeds one and implements the operations (client.c), so this
 * module includes nothing of the client's and the include graph stays a DAG
 * (server.h draws it).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <systemd/sd-event.h>

#include "access.h"
#include "alert.h"
#include "asciicast.h"
#include "chardev.h"
#include "conslog.h"
#include "message.h"
#include "obuf.h"
#include "peer.h"
#include "proto.h"
#include "recording.h"
#include "ring.h"
#include "sanitize.h"
#include "util.h"

struct console;
struct console_attachment;
struct source;

/* Room for an attachment's names (escaped; see struct console_attachment). */
#define CONSOLE_LABEL_MAX 160
#define CONSOLE_AUDIT_MAX 200

enum console_role { CONSOLE_WATCHER, CONSOLE_WRITER };

/*
 * What the console asks of whatever is attached to it (a broker client).
 * The console calls them while iterating its attachments: none of them may
 * detach or free an attachment (a client that fails is only marked dead).
 */
struct console_attachment_ops {
	/* Queue a notice (text is already safe to show). */
	void (*notice)(struct console_attachment *a, const char *text);
	/* Queue a protocol message, taking msg (a builder's result; NULL: out of memory). */
	void (*send)(struct console_attachment *a, json_t *msg);
	/* Pull ring data from the cursor on and write what the peer takes. */
	void (*flush)(struct console_attachment *a);
	/* The input it waited on was taken, or it no longer writes (drop what is queued). */
	void (*resume_input)(struct console_attachment *a);
	/* Its entry in a `who` answer; with_local: may add a local peer's login and pid. */
	void (*who)(const struct console_attachment *a, bool with_local,
		    struct proto_who_client *ret);
};

/*
 * One attachment to a console.  The owner fills ops, label, audit and, before
 * console_attach(), right and may_break; it keeps want_write and input_paused
 * up to date.  The console sets console, role and the cursor.
 */
struct console_attachment {
	const struct console_attachment_ops *ops;
	/*
	 * Who this is, already escaped for display.  label is what other clients
	 * see (notices, who, writer); audit adds detail for logs and local admins.
	 */
	char label[CONSOLE_LABEL_MAX];
	char audit[CONSOLE_AUDIT_MAX];
	enum access_right right; /* on the attached console, as of attach or the last reload */
	bool may_break;
	bool want_write;         /* waiting for its socket: flushed by the owner, not on output */
	bool input_paused;       /* a writer waiting for the guest to take input */

	struct console *console; /* or NULL: not attached */
	enum console_role role;
	uint64_t pos;            /* next ring byte to send */
	uint64_t sanitize_until; /* bytes before this are replay: sanitised */
	struct sanitizer san;
	bool ro_hint_sent;       /* "your input is discarded" said (read-only, or detached) */
	/*
	 * This attach session's recording (recording.h), or NULL.  The owner
	 * opens it before console_attach() and writes the output it sends; the
	 * console writes the input that reaches the guest and the markers, and
	 * closes it in console_detach().
	 */
	struct recording *rec;
	TAILQ_ENTRY(console_attachment) entry; /* in console->attached */
};

/*
 * What every console of the daemon shares, given to console_new(): the loop,
 * the history size, the console log settings (NULL: no logs), the alerts
 * (NULL: none; the daemon may swap the set on reload, consoles read it here)
 * and the session recording settings (*record NULL: no recordings; read
 * through a pointer so that a reload applies to the next attach).
 */
struct console_env {
	sd_event *event;
	size_t ring_size;
	const struct conslog_config *log;
	const struct alert_set *alerts;
	const struct recording_config *const *record;
};

#define CONSOLE_INPUT_MAX (64 * 1024)
/* Buffers a VM name and an alias are escaped into (registry.h says which names fit). */
#define CONSOLE_VM_MAX 256
#define CONSOLE_ALIAS_MAX 128
/* How long a lease found in a kept ring holds the writer's place (lease_hold_until). */
#define CONSOLE_LEASE_HOLD_USEC (10 * UINT64_C(1000000))
/* console_set_guest_state(): leave guest_open as it is. */
#define CONSOLE_GUEST_OPEN_KEEP (-2)

struct console {
	const struct console_env *env; /* borrowed: outlives every console */
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
	struct source *source; /* its source (for serial break), or NULL */
	char vm_state[32];  /* run state from the source ("running", "paused"...), "" unknown */
	int guest_open;     /* 1/0: the guest has the port open (virtio), -1 unknown */
	struct peer_guest guest; /* who may be at the chardev's far end (see peer.h) */

	struct ring ring;
	/*
	 * CLOCK_MONOTONIC usec until which an rw attach without the stored lease
	 * gets watcher (0: none).  Set when the ring was kept across a broker
	 * restart with a writer's lease in it, so the writer has time to come back.
	 */
	uint64_t lease_hold_until;
	struct conslog *log; /* owned, or NULL when logging is off */
	struct alert_scanner alerts; /* output is scanned where it is logged (each byte once) */
	/*
	 * Whether the guest's output ends with a password prompt, for the
	 * recordings' redaction: followed here, on every byte the guest sends,
	 * so every recording agrees whatever its client was sent yet.
	 */
	struct asciicast_prompt prompt;
	struct chardev chardev;
	struct obuf input; /* writer bytes on their way to the guest */

	TAILQ_HEAD(, console_attachment) attached;
	unsigned n_clients; /* attachments */
	struct console_attachment *writer; /* or NULL */
	struct console_attachment *input_waiter; /* writer paused until input drains */
	/*
	 * Resumes input_waiter from the loop, never from inside the chardev's
	 * callback: resuming processes the client's frames, which write to the
	 * chardev again.
	 */
	sd_event_source *resume; /* owned: defer, ONESHOT when input drained */

	TAILQ_ENTRY(console) entry; /* in the registry */
};

struct console_spec {
	const char *vm, *uuid, *alias, *element, *target, *type, *origin;
	bool primary, supported;
	const char *reason;
	enum domxml_backend backend;
	const char *path;
	const char *chardev_id;
	struct source *source;
	struct peer_guest guest; /* who may be at the chardev's far end */
};

/* env is borrowed and must outlive the console. */
int console_new(const struct console_env *env, const struct console_spec *spec,
		struct console **ret);
/* Detach every client (console-gone, with a notice saying why), stop the chardev, free. */
struct console *console_free(struct console *c, const char *why);
/* Detach every client with a notice and a `detached` {reason, text: why}. */
void console_detach_all(struct console *c, enum detach_reason reason, const char *why);
int console_start(struct console *c);

/* Same device? (used when a definition is reloaded) */
bool console_matches_spec(const struct console *c, const struct console_spec *spec);

/*
 * What the source knows of the guest, shown in list and attach: vm_state
 * ("running", "paused"...; NULL leaves it, "" is unknown) and whether the
 * guest has the port open (1/0, -1 unknown, CONSOLE_GUEST_OPEN_KEEP).
 */
void console_set_guest_state(struct console *c, const char *vm_state, int guest_open);

/*
 * Attachment operations (a is not attached / is attached to c).  The
 * caller has checked the rights: mode is what it may have, and a->right /
 * a->may_break are what `attached` reports.
 */
void console_attach(struct console *c, struct console_attachment *a, enum attach_mode mode,
		    long replay);

/*
 * Where a front left the console (attach's "resume", docs/protocol.md
 * "Resume").  A known epoch continues at offset exactly (no replay), from
 * the oldest byte with a "lost" notice when offset is older, or at head when
 * offset is past it; an unknown epoch gets a "restarted" notice and the
 * replay.  With the writer's lease (has_lease) and a->right rw, the
 * attachment becomes the writer again if nobody writes, whatever mode says.
 */
struct console_resume {
	uint64_t epoch, offset;
	bool has_lease;
	uint8_t lease[RING_LEASE_SIZE];
};
/* console_attach() continuing from resume (NULL: console_attach()). */
void console_attach_resume(struct console *c, struct console_attachment *a,
			   enum attach_mode mode, long replay, const struct console_resume *resume);
/*
 * announce: tell the others.  The writer's lease stays with the ring (a
 * writer whose connection dropped may come back with it); a detach the
 * client asked for, or one for lost rights, calls console_forget_lease() first.
 */
void console_detach(struct console *c, struct console_attachment *a, bool announce);
/* a is the writer and gives up its claim: clear the lease (nothing otherwise). */
void console_forget_lease(struct console *c, struct console_attachment *a);
/* Returns 0, or -EBUSY when someone else writes and force is false. */
int console_take(struct console *c, struct console_attachment *a, bool force);
void console_release(struct console *c, struct console_attachment *a);
/* Queue writer input; returns how many bytes were accepted (may be 0). */
size_t console_input(struct console *c, struct console_attachment *a, const uint8_t *data,
		     size_t len);
/* Send a's history again from `lines` back (sanitised); live output resumes after it. */
void console_replay(struct console *c, struct console_attachment *a, long lines);

/*
 * A marker line in the console's history (and live stream), e.g. a guest
 * reset; also a marker in every recording of the console.
 */
void console_mark(struct console *c, const char *text);

/*
 * A marker ("m" event) in the recording of every client attached to c, and
 * nowhere else (rescue actions, takeovers).  Notices to everyone attached
 * (console_announce()) are recorded as markers already.
 */
void console_record_mark(struct console *c, const char *fmt, ...) _printf_(2, 3);

/* The console's names as the access file matches them (borrowed from c). */
struct access_console console_access(const struct console *c);

/* Send a notice to every attached client (printf-style, already safe text); each
 * attachment's recording gets it as a marker. */
void console_announce(struct console *c, const char *fmt, ...) _printf_(2, 3);

/* Descriptions for the protocol (message.h): the console's fields, rights left false. */
void console_describe(const struct console *c, struct proto_console *ret);
/* A console object of `list` with the asking client's rights. */
json_t *console_list_json(const struct console *c, bool may_write, bool may_break);
/* A `who` answer; with_local adds each local peer's login and pid (for local admins). */
json_t *console_who_json(const struct console *c, bool with_local);
const char *console_state(const struct console *c);
