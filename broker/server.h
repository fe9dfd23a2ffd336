/* SPDX-License-Identifier: MIT */
/*
 * The ttyhubd process: its sd-event loop, configuration, the listening
 * broker socket (from systemd or bound by us), peer authorisation with
 * SO_PEERCRED, the console registry, and all client connections.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "poller.h"
#include "registry.h"

struct client;
struct policy;
struct server_break_bucket;
struct qemu;
struct virt;
struct xmldir;

#define SERVER_MAX_FRONT_USERS 8
#define SERVER_MAX_XMLDIRS 16
#define SERVER_MAX_VIRTS 4
#define SERVER_MAX_QEMUS 64
/*
 * Broker connections of local administrators (root, our uid, the admin
 * group) are counted apart from the fronts' max_clients, with a limit of
 * max_clients or SERVER_ADMIN_RESERVE, whichever is larger: no front, however
 * many connections its users hold, can lock root's `ttyhub` out.
 */
#define SERVER_ADMIN_RESERVE 64
/* Serial breaks per console: a burst of SERVER_BREAK_BURST, then one per second. */
#define SERVER_BREAK_BURST 3
#define SERVER_BREAK_INTERVAL_USEC 1000000ULL
/* After EMFILE/ENFILE from accept(): accept again after this, or when a client closes. */
#define SERVER_ACCEPT_RETRY_USEC 100000ULL

struct server_config {
	const char *socket_path;
	const char *access_path; /* the access file (ttyhub-access(5)) */
	size_t ring_size;
	long default_replay; /* lines, or PROTO_REPLAY_ALL */
	gid_t admin_gid;     /* (gid_t)-1 if none */
	uid_t front_uids[SERVER_MAX_FRONT_USERS];
	size_t n_front_uids;
	unsigned max_clients; /* front connections; admins: see SERVER_ADMIN_RESERVE */
	const char *log_dir;  /* console logs, or NULL for none */
	size_t log_max_size;
	unsigned log_backups;
	bool log_timestamps;
};

struct server {
	sd_event *event;
	struct server_config config;
	int listen_fd;              /* owned */
	bool listen_fd_ours;        /* we bound it (unlink on exit) */
	sd_event_source *listen_io; /* owned */
	struct poller *poller;      /* owned; every client socket */
	struct registry registry;
	struct policy *policy;      /* owned: the access file as last loaded (never NULL) */
	struct xmldir *xmldirs[SERVER_MAX_XMLDIRS];
	size_t n_xmldirs;
	struct virt *virts[SERVER_MAX_VIRTS];
	size_t n_virts;
	struct qemu *qemus[SERVER_MAX_QEMUS];
	size_t n_qemus;
	TAILQ_HEAD(, client) clients; /* live */
	TAILQ_HEAD(, client) dead;    /* killed, freed by the sweep */
	unsigned n_clients;         /* live, fronts and admins */
	unsigned n_front_clients;   /* of which fronts (limit config.max_clients) */
	sd_event_source *accept_retry; /* owned: re-enables listen_io after EMFILE */
	bool accept_paused;         /* listen_io is off until accept_retry or a close */
	bool accept_warned;         /* said so; said again after an accept() succeeds */
	struct server_break_bucket *breaks; /* owned: per-console break budget */
	size_t n_breaks;
	unsigned next_client_id;
	sd_event_source *sweep;     /* owned: frees dead clients */
};

int server_init(struct server *s, sd_event *e, const struct server_config *cfg);
void server_done(struct server *s);
int server_listen(struct server *s);
/*
 * Load the access file again (path NULL: the current one) and apply it to
 * every connection that speaks for a key (client_policy_changed()).  A file
 * that cannot be read or parsed leaves the old policy in place.  Returns 0
 * or -errno (logged).
 */
int server_policy_reload(struct server *s, const char *path);
/* Add a console; logs and returns -errno on failure (e.g. a duplicate name). */
int server_add_console(struct server *s, const struct console_spec *spec, struct console **ret);
void server_remove_console(struct server *s, struct console *c, const char *why);
/* Ask the console's source for a serial break on behalf of a client. */
void server_console_break(struct server *s, struct console *c, struct client *cl);
/* The source's answer: r < 0 with a message, or 0. The client may be gone. */
void server_break_done(struct server *s, unsigned client_id, const char *console, int r,
		       const char *message);
struct client *server_find_client(struct server *s, unsigned id);

/* Move a killed client to the dead list; the sweep frees it after this dispatch. */
void server_client_dead(struct server *s, struct client *c);
