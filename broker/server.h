/* SPDX-License-Identifier: MIT */
/*
 * The ttyhubd process: its sd-event loop, configuration, the listening
 * broker socket (from systemd or bound by us), peer authorisation with
 * SO_PEERCRED, the console registry, the console sources (as a list of
 * struct source: the server knows none of their kinds), and all client
 * connections.
 *
 * Who includes whose header among ttyhubd's modules (util, log, obuf and the
 * other common/ and proto/ headers omitted).  It is a DAG, kept one by
 * tests/check-includes.py (ctest lint/includes; `--graph broker` prints it):
 *
 *   ttyhubd.c ──▶ server, source-cmdline, source-xmldir, source-libvirt, source-qmp,
 *                 conslog, peer, fdstore, weblink, alert, recording
 *   server ──▶ client, registry, console, policy, weblink, conslog, source, poller (common/)
 *   client ──▶ registry, console, policy, access, weblink, recording
 *   weblink ──▶ policy
 *   policy ──▶ access
 *   source-* ──▶ domain ──▶ registry ──▶ console ──▶ chardev ──▶ ring, peer, domxml
 *       │          │                       ├──▶ fdstore ──▶ ring, conslog
 *       │          │                       ├──▶ recording ──▶ asciicast, conslog
 *       │          │                       └──▶ ring, conslog, sanitize, access, peer, alert
 *       │          └──▶ console, domxml, source (the interface; no source's own header)
 *       ├──▶ source
 *       ├──▶ console, domxml (source-xmldir)
 *       └──▶ domxml, peer, qmp (source-qmp; qmp/ is its own folder)
 *
 * What used to tie server, client, console, policy and registry into one
 * cycle is cut at three places: the console knows attached clients only as
 * struct console_attachment and its ops (console.h), the client reaches the
 * server only through struct client_env (client.h), and the policy is asked
 * about a console's names (struct access_console), not a struct console.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "client.h"
#include "conslog.h"
#include "console.h"
#include "poller.h"
#include "registry.h"
#include "source.h"

struct policy;
struct server_break;
struct server_break_bucket;

#define SERVER_MAX_FRONT_USERS 8
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
	const char *record_dir;   /* session recordings (recording.h), or NULL for none */
	size_t record_max_size;
	unsigned record_keep;
	bool record_redact;
	const char *web_url;      /* where users reach ttyhub-webd, or NULL: no web links */
	unsigned web_link_ttl;    /* seconds a web link may be redeemed */
	unsigned web_session_ttl; /* seconds a web session lasts */
	bool no_consoles;         /* a gateway's broker (--no-consoles): web links name any console */
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
	struct conslog_config log_config; /* from config; console_env.log points here */
	struct console_env console_env;   /* what every console is made with */
	struct recording_config record_config; /* from config (dir: record_dir) */
	const struct recording_config *record; /* &record_config, or NULL: not recording */
	char *record_dir;                 /* owned copy of config.record_dir */
	struct source_env source_env;     /* what every source is opened with */
	struct client_env client_env;     /* what every client is made with */
	struct source_list sources;       /* owned: freed before the consoles */
	TAILQ_HEAD(, client) clients; /* live */
	TAILQ_HEAD(, client) dead;    /* killed, freed by the sweep */
	unsigned n_clients;         /* live, fronts and admins */
	unsigned n_front_clients;   /* of which fronts (limit config.max_clients) */
	sd_event_source *accept_retry; /* owned: re-enables listen_io after EMFILE */
	bool accept_paused;         /* listen_io is off until accept_retry or a close */
	bool accept_warned;         /* said so; said again after an accept() succeeds */
	struct server_break_bucket *breaks; /* owned: per-console break budget */
	struct server_break *break_sending; /* the break a source is being asked for, or NULL */
	size_t n_breaks;
	sd_event_source *sweep;     /* owned: frees dead clients */
	struct weblink *weblink;    /* owned: pending web links and web sessions */
	char *web_url;              /* owned copy of config.web_url (client_env reads it) */
	sd_event_source *stop_check; /* owned: server_stop() waits for clients to close */
	uint64_t stop_deadline;      /* CLOCK_MONOTONIC usec: end the loop by then */
};

int server_init(struct server *s, sd_event *e, const struct server_config *cfg);
void server_done(struct server *s);
/*
 * SIGTERM: accept nobody more, tell every client `detached` (shutdown) and
 * end the loop once the writers have closed and every console's input
 * reached its chardev, or after SERVER_STOP_USEC.  A writer's keys that were
 * in flight when the signal came are delivered, not dropped: its front
 * reconnects to the next ttyhubd and resumes.  Returns 0 or -errno (the
 * loop is ended).
 */
int server_stop(struct server *s);
#define SERVER_STOP_USEC (500 * 1000ULL)
/*
 * Serve the broker socket: fd (taken; from the fd store's names, fdstore.h),
 * else the single socket systemd passed, else one bound at config.socket_path.
 */
int server_listen(struct server *s, int fd);
/*
 * Load the access file again (path NULL: the current one) and apply it to
 * every connection that speaks for a key (client_policy_changed()).  A file
 * that cannot be read or parsed leaves the old policy in place.  Returns 0
 * or -errno (logged).
 */
int server_policy_reload(struct server *s, const char *path);
/*
 * Web links (--web-url, --web-link-ttl, --web-session-ttl): a new URL (NULL:
 * links off) and TTLs, for links minted from now on.  0 or -ENOMEM.
 */
int server_set_web(struct server *s, const char *url, unsigned link_ttl, unsigned session_ttl);
/*
 * Session recordings (--record-dir, --record-max-size, --record-keep,
 * --no-record-redact): for attach sessions that start from now on (dir
 * NULL: none).  0 or -ENOMEM.
 */
int server_set_record(struct server *s, const char *dir, size_t max_size, unsigned keep,
		      bool redact);
/* The server owns src from here on (opened with &s->source_env). */
void server_add_source(struct server *s, struct source *src);
struct client *server_find_client(struct server *s, unsigned id);
