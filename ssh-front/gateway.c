/* SPDX-License-Identifier: MIT */
/*
 * ttyhub-sshd as a gateway (see gateway.h).
 *
 * One struct gwconn per connection a channel made with gateway_connect():
 * it reads the channel's frames (in) and queues the answers (out) on its
 * end of the socketpair.  Its states:
 *
 *   HELLO ──hello──▶ IDLE ──list──▶ LISTING ──answers or deadline──▶ IDLE
 *                     │                 (a name to resolve: then BOUND)
 *                     └──a request naming a console──▶ BOUND ──EOF──▶ (closed)
 *
 * LISTING asks each host over its own stream (struct gwask, a front on
 * it); BOUND relays frames between the channel and one stream (up).  Flow
 * control: the channel is read only while the queue up has room for a
 * frame, and the host only while the queue to the channel has room, so
 * each side waits for the slower one and nothing grows past its bound.
 * Dead connections are freed by a defer source, never inside their own
 * callbacks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "fileio.h"
#include "frame-reader.h"
#include "front.h"
#include "gateway.h"
#include "gwlist.h"
#include "hosts.h"
#include "listing.h"
#include "log.h"
#include "message.h"
#include "obuf.h"
#include "proto.h"
#include "upstream.h"
#include "util.h"

#define GW_OUT_MAX (4 * 1024 * 1024) /* to the channel: a merged list's pieces, or output */
#define GW_UP_MAX (256 * 1024)       /* to a host */
#define GW_ROOM (FRAME_HEADER + FRAME_MAX)
#define GW_CACHE_MAX 256
#define GW_PIECE_MAX (FRAME_MAX - 4096) /* a list piece's JSON, with room for its frame */
#define GW_WHY_MAX 200
#define GW_FIELD_MAX 16384            /* key, grant, comment, address from the channel's hello */
#define GW_LOCAL_USEC (2 * 1000 * 1000ULL) /* a question to the gateway's own ttyhubd */
#define GW_LOCAL_OUT_MAX 8192
#define GW_CLIENT "ttyhub-sshd gateway"

struct gwconn;

/* One host's answer to a principal's `list`, kept GATEWAY_CACHE_USEC. */
struct gwcache {
	char *who;         /* owned: the principal (key, address, grant) */
	size_t host;
	json_t *consoles;  /* owned */
	uint64_t at;       /* CLOCK_MONOTONIC */
};

struct gateway {
	sd_event *event;
	struct poller *poller;
	struct gateway_config config; /* its paths are only read by gateway_new() */
	struct upstream_config upcfg; /* upstream keeps a pointer */
	char *key_path;               /* owned: upcfg's */
	struct hosts_file *hosts;     /* owned */
	struct upstream *up;          /* owned */
	struct gwcache cache[GW_CACHE_MAX];
	LIST_HEAD(, gwconn) conns;
	LIST_HEAD(, gwconn) dead;
	sd_event_source *sweep;       /* owned */
	/* --gateway-socket: where ttyhub-webd connects, as to a broker */
	char *socket_path;            /* owned; NULL: none */
	int listen_fd;                /* owned */
	struct watch *listen_io;      /* owned */
	sd_event_source *listen_retry; /* owned: accepting paused after an error (EMFILE) */
};

/* One host's part of a list being gathered. */
struct gwask {
	struct gwconn *c;
	size_t host;
	int fd;                  /* owned: the stream */
	struct watch *io;        /* owned */
	struct front front;      /* on fd */
	bool front_ok;
	bool done;
	json_t *consoles;        /* owned: the answer (NULL: none) */
	char why[GW_WHY_MAX];    /* no answer: why */
};

enum gw_state { GW_HELLO, GW_IDLE, GW_LISTING, GW_BOUND, GW_CLOSING };

struct gwconn {
	struct gateway *g;
	int fd;                      /* owned: our end of the channel's socketpair */
	struct watch *io;            /* owned */
	struct frame_reader in;
	struct obuf out;
	enum gw_state state;
	char *key, *from, *grant, *comment, *who; /* owned, from the channel's hello */
	/*
	 * From --gateway-socket (ttyhub-webd), not a channel: its hello is a
	 * session's (web_console: the session's console, the only one it may
	 * name) or bare (web_front: it may only redeem a link).
	 */
	bool from_socket;
	bool web_front;
	char *web_console;           /* owned */
	/* LISTING */
	struct gwask *asks;          /* owned, one per host */
	size_t n_pending;
	sd_event_source *deadline;   /* owned */
	json_t *waiting;             /* owned: the request the list is for */
	/* BOUND */
	size_t host;
	int up_fd;                   /* owned: the stream */
	struct watch *up_io;         /* owned */
	struct frame_reader up_in;
	struct obuf up_out;
	bool up_hello;               /* the host answered our hello */
	bool attached;               /* an `attached` came, no `detached` since */
	bool shutdown;               /* the host said `detached` shutdown */
	bool dead;
	LIST_ENTRY(gwconn) entry;
};

static void gw_update(struct gwconn *c);
static void gw_ask_free(struct gwask *a);

static bool eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static json_t *unref(json_t *j)
{
	json_decref(j);
	return NULL;
}

/* Queue msg (taken; NULL: out of memory) as a control frame.  0 or -errno. */
static int gw_put(struct obuf *out, json_t *msg)
{
	int r = msg ? proto_put_control(out, msg) : -ENOMEM;

	json_decref(msg);
	return r;
}

static uint64_t gw_now(const struct gateway *g)
{
	uint64_t now = 0;

	(void)sd_event_now(g->event, CLOCK_MONOTONIC, &now);
	return now;
}

static const char *gw_host_name(const struct gateway *g, size_t i)
{
	return g->hosts->entries[i].name;
}

/* ---- the connection's life ---- */

static void gw_kill(struct gwconn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	c->io = watch_free(c->io);
	c->up_io = watch_free(c->up_io);
	LIST_REMOVE(c, entry);
	LIST_INSERT_HEAD(&c->g->dead, c, entry);
	(void)sd_event_source_set_enabled(c->g->sweep, SD_EVENT_ONESHOT);
}

static void gw_unbind(struct gwconn *c)
{
	c->up_io = watch_free(c->up_io);
	c->up_fd = safe_close(c->up_fd);
	frame_reader_done(&c->up_in);
	obuf_done(&c->up_out);
}

static void gw_listing_end(struct gwconn *c)
{
	size_t i;

	if (c->asks)
		for (i = 0; i < c->g->hosts->n_entries; i++)
			gw_ask_free(&c->asks[i]);
	free(c->asks);
	c->asks = NULL;
	c->deadline = sd_event_source_disable_unref(c->deadline);
	c->waiting = unref(c->waiting);
	c->n_pending = 0;
}

static void gw_free(struct gwconn *c)
{
	gw_listing_end(c);
	gw_unbind(c);
	watch_free(c->io);
	safe_close(c->fd);
	frame_reader_done(&c->in);
	obuf_done(&c->out);
	free(c->key);
	free(c->from);
	free(c->grant);
	free(c->comment);
	free(c->who);
	free(c->web_console);
	free(c);
}

static int gw_on_sweep(sd_event_source *s, void *userdata)
{
	struct gateway *g = userdata;
	struct gwconn *c;

	while ((c = LIST_FIRST(&g->dead))) {
		LIST_REMOVE(c, entry);
		gw_free(c);
	}
	return 0;
}

/* ---- to the channel ---- */

/*
 * Who, for the log: the user's comment from the gateway's access file (the
 * channel's own audit lines name the key's fingerprint).
 */
static const char *gw_label(const struct gwconn *c)
{
	return c->comment ?: "a key without comment";
}

static void gw_send(struct gwconn *c, json_t *msg)
{
	if (gw_put(&c->out, msg) < 0) {
		/* The channel stopped reading, or we are out of memory: it cannot follow any more. */
		log_warning("gateway: cannot queue an answer for %s; closing", gw_label(c));
		gw_kill(c);
	}
}

static void gw_error(struct gwconn *c, const char *code, const char *fmt, ...) _printf_(3, 4);
static void gw_error(struct gwconn *c, const char *code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	gw_send(c, proto_msg_error(code, text));
}

/* Say text, then close once the channel has read everything queued. */
static void gw_close_after(struct gwconn *c, const char *notice)
{
	if (notice)
		gw_send(c, proto_msg_notice(notice));
	gw_listing_end(c);
	gw_unbind(c);
	c->state = GW_CLOSING;
}

/* ---- a host's stream ---- */

static const char *gw_state_why(struct gateway *g, size_t i)
{
	const char *why = NULL;

	(void)upstream_host_state(g->up, i, &why);
	return why && *why ? why : "not connected";
}

/* The second hello, speaking for the user (docs/protocol.md "Gateways"). */
static json_t *gw_user_hello(const struct gwconn *c)
{
	json_t *p = json_pack("{s:s, s:s, s:s}", "key", c->key, "from", c->from ?: "",
			      "grant", c->grant ?: "");

	if (p && c->comment && json_object_set_new(p, "comment", json_string(c->comment)) < 0)
		p = unref(p);
	if (!p)
		return NULL;
	return json_pack("{s:s, s:i, s:s, s:o}", "type", "hello", "version", 1, "client",
			 "ttyhub-sshd gateway", "principal", p);
}

/* ---- LISTING: every host at once ---- */

static const char *gw_cache_find(struct gateway *g, const char *who, size_t host,
				 json_t **ret)
{
	uint64_t now = gw_now(g);
	size_t i;

	for (i = 0; i < GW_CACHE_MAX; i++) {
		struct gwcache *e = &g->cache[i];

		if (e->who && e->host == host && now - e->at < GATEWAY_CACHE_USEC &&
		    strcmp(e->who, who) == 0) {
			*ret = e->consoles;
			return e->who;
		}
	}
	return NULL;
}

static void gw_cache_put(struct gateway *g, const char *who, size_t host, json_t *consoles)
{
	struct gwcache *slot = &g->cache[0];
	size_t i;

	for (i = 0; i < GW_CACHE_MAX; i++) {
		struct gwcache *e = &g->cache[i];

		if (!e->who || (e->host == host && strcmp(e->who, who) == 0)) {
			slot = e;
			break;
		}
		if (e->at < slot->at)
			slot = e;
	}
	free(slot->who);
	json_decref(slot->consoles);
	*slot = (struct gwcache){ .who = strdup(who), .host = host,
				  .consoles = json_incref(consoles), .at = gw_now(g) };
	if (!slot->who)
		slot->consoles = unref(slot->consoles);
}

static void gw_ask_free(struct gwask *a)
{
	a->io = watch_free(a->io);
	a->fd = safe_close(a->fd);
	if (a->front_ok)
		front_done(&a->front);
	a->front_ok = false;
	a->consoles = unref(a->consoles);
}

static void gw_listed(struct gwconn *c);

static void gw_ask_done(struct gwask *a, const char *why)
{
	struct gwconn *c = a->c;

	if (a->done)
		return;
	a->done = true;
	if (why)
		snprintf(a->why, sizeof(a->why), "%s", why);
	a->io = watch_free(a->io);
	a->fd = safe_close(a->fd);
	if (--c->n_pending == 0)
		gw_listed(c);
}

static void gw_ask_read(struct gwask *a, uint32_t revents)
{
	struct front_event e;
	ssize_t n;
	int r;

	if (revents & EPOLLOUT) {
		n = front_flush(&a->front);
		if (n < 0)
			return gw_ask_done(a, "the connection failed");
		(void)watch_set_events(a->io, n > 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
	}
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = front_fill(&a->front);
	while ((r = front_next_event(&a->front, &e)) > 0) {
		if (e.type == FRONT_EV_LIST) {
			a->consoles = json_incref(json_object_get(e.msg, "consoles"));
			gw_cache_put(a->c->g, a->c->who, a->host, a->consoles);
			return gw_ask_done(a, NULL);
		}
		if (e.type == FRONT_EV_ERROR)
			return gw_ask_done(a, e.text ?: "refused");
	}
	if (r < 0)
		return gw_ask_done(a, "answered with a broken stream");
	if (n < 0 || front_eof(&a->front))
		gw_ask_done(a, "closed the connection");
}

static void gw_ask_on_io(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct gwask *a = userdata;
	struct gwconn *c = a->c; /* a may be freed: the list may end here */

	gw_ask_read(a, revents);
	gw_update(c);
}

static void gw_ask_start(struct gwconn *c, struct gwask *a, size_t host)
{
	struct gateway *g = c->g;
	json_t *cached = NULL;
	int fd, r;

	*a = (struct gwask){ .c = c, .host = host, .fd = -EBADF };
	c->n_pending++;
	if (gw_cache_find(g, c->who, host, &cached)) {
		a->consoles = json_incref(cached);
		return gw_ask_done(a, NULL);
	}
	if (upstream_host_state(g->up, host, NULL) == UPSTREAM_DOWN)
		return gw_ask_done(a, gw_state_why(g, host));
	r = upstream_open_stream(g->up, host, &fd);
	if (r < 0)
		return gw_ask_done(a, r == -EHOSTUNREACH ? gw_state_why(g, host) : strerror(-r));
	a->fd = fd;
	r = front_init(&a->front, fd, 64 * 1024, NULL);
	if (r < 0)
		return gw_ask_done(a, strerror(-r));
	a->front_ok = true;
	r = gw_put(&a->front.out, gw_user_hello(c));
	if (r >= 0)
		r = front_list(&a->front, NULL);
	if (r >= 0)
		r = watch_add(g->poller, fd, EPOLLIN | EPOLLOUT, gw_ask_on_io, a, &a->io);
	if (r < 0)
		gw_ask_done(a, strerror(-r));
}

static int gw_on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gwconn *c = userdata;
	char why[GW_WHY_MAX];
	size_t i;

	snprintf(why, sizeof(why), "no answer within %u ms", c->g->config.timeout_ms);
	for (i = 0; c->asks && i < c->g->hosts->n_entries && c->state == GW_LISTING; i++)
		gw_ask_done(&c->asks[i], why);
	gw_update(c);
	return 0;
}

/* Ask every host for the principal's consoles; gw_listed() continues with req. */
static void gw_start_listing(struct gwconn *c, json_t *req)
{
	struct gateway *g = c->g;
	size_t i, n = g->hosts->n_entries;
	int r;

	c->asks = calloc(n ?: 1, sizeof(*c->asks));
	if (!c->asks)
		return gw_error(c, PROTO_E_INTERNAL, "out of memory");
	for (i = 0; i < n; i++)
		c->asks[i] = (struct gwask){ .c = c, .host = i, .fd = -EBADF, .done = true };
	c->waiting = json_incref(req);
	c->state = GW_LISTING;
	r = sd_event_add_time_relative(g->event, &c->deadline, CLOCK_MONOTONIC,
				       (uint64_t)g->config.timeout_ms * 1000, 1000, gw_on_deadline, c);
	if (r < 0) {
		gw_listing_end(c);
		c->state = GW_IDLE;
		return gw_error(c, PROTO_E_INTERNAL, "cannot set a deadline: %s", strerror(-r));
	}
	c->n_pending = 1; /* held while starting, so no host's answer ends the list early */
	for (i = 0; i < n; i++)
		gw_ask_start(c, &c->asks[i], i);
	if (--c->n_pending == 0)
		gw_listed(c);
}

/* One list piece to the channel: consoles and hosts arrays (taken), more or not. */
static void gw_send_piece(struct gwconn *c, json_t *consoles, json_t *hosts, bool more)
{
	gw_send(c, json_pack("{s:s, s:o, s:[], s:o, s:b}", "type", "list", "consoles", consoles,
			     "errors", "hosts", hosts, "more", more));
}

/* The merged list, in pieces that fit a frame (listing.h joins them). */
static void gw_answer_list(struct gwconn *c)
{
	struct gateway *g = c->g;
	json_t *all = json_array(), *hosts = json_array(), *piece_c, *piece_h, *v;
	size_t i, size = 0;

	if (!all || !hosts)
		goto oom;
	for (i = 0; i < g->hosts->n_entries; i++) {
		struct gwask *a = &c->asks[i];
		json_t *h;

		if (a->consoles) {
			if (gwlist_merge(all, gw_host_name(g, i), a->consoles) < 0)
				goto oom;
			h = json_pack("{s:s, s:s}", "name", gw_host_name(g, i), "state", "up");
		} else
			h = json_pack("{s:s, s:s, s:s}", "name", gw_host_name(g, i), "state",
				      "unreachable", "error", a->why);
		if (!h || json_array_append_new(hosts, h) < 0)
			goto oom;
	}
	piece_c = json_array();
	piece_h = json_array();
	if (!piece_c || !piece_h) {
		json_decref(piece_c);
		json_decref(piece_h);
		goto oom;
	}
	/* Consoles, then hosts, each piece under GW_PIECE_MAX bytes of JSON. */
	for (i = 0; i < json_array_size(all) + json_array_size(hosts) && !c->dead; i++) {
		bool is_console = i < json_array_size(all);
		size_t len;

		v = is_console ? json_array_get(all, i) : json_array_get(hosts, i - json_array_size(all));
		len = json_dumpb(v, NULL, 0, JSON_COMPACT) + 1;
		if (size + len > GW_PIECE_MAX && size > 0) {
			gw_send_piece(c, piece_c, piece_h, true);
			piece_c = json_array();
			piece_h = json_array();
			size = 0;
			if (!piece_c || !piece_h) {
				json_decref(piece_c);
				json_decref(piece_h);
				goto oom;
			}
		}
		if (len > GW_PIECE_MAX)
			continue; /* cannot be a console the broker would send: it fits its frames */
		json_array_append(is_console ? piece_c : piece_h, v);
		size += len;
	}
	gw_send_piece(c, piece_c, piece_h, false);
	json_decref(all);
	json_decref(hosts);
	return;
oom:
	json_decref(all);
	json_decref(hosts);
	gw_error(c, PROTO_E_INTERNAL, "out of memory");
}

static void gw_bind(struct gwconn *c, size_t host, const char *local, json_t *req);

/* The console an unqualified name in the waiting request means, from the lists. */
static void gw_resolve_waiting(struct gwconn *c, json_t *req)
{
	struct gateway *g = c->g;
	size_t n = g->hosts->n_entries, i;
	const char *name = json_string_value(json_object_get(req, "console"));
	_cleanup_free_ json_t **lists = calloc(n ?: 1, sizeof(*lists));
	_cleanup_free_ const char **names = calloc(n ?: 1, sizeof(*names));
	char choices[400];
	int r;

	if (!lists || !names)
		return gw_error(c, PROTO_E_INTERNAL, "out of memory");
	for (i = 0; i < n; i++) {
		lists[i] = c->asks[i].consoles;
		names[i] = gw_host_name(g, i);
	}
	r = gwlist_resolve(lists, names, n, name, choices, sizeof(choices));
	/*
	 * Not unknown-console, which fronts show as "no console named": the
	 * choices come from the user's own lists, so they are the user's to see.
	 */
	if (r == -ENOTUNIQ)
		return gw_error(c, PROTO_E_BAD_REQUEST, "'%s' is on more than one host: %s", name,
				choices);
	if (r < 0)
		return gw_error(c, PROTO_E_UNKNOWN_CONSOLE, "no console named '%s'", name);
	gw_bind(c, (size_t)r, name, req);
}

/* Every host answered or the deadline passed. */
static void gw_listed(struct gwconn *c)
{
	json_t *req = json_incref(c->waiting);
	const char *type = json_string_value(json_object_get(req, "type"));

	c->deadline = sd_event_source_disable_unref(c->deadline);
	c->state = GW_IDLE;
	if (json_object_get(req, "console"))
		gw_resolve_waiting(c, req);
	else if (type && strcmp(type, "list") == 0)
		gw_answer_list(c);
	if (c->state == GW_IDLE || c->state == GW_BOUND) {
		/* The asks' lists are no longer needed (the cache keeps what it keeps). */
		size_t i;

		for (i = 0; c->asks && i < c->g->hosts->n_entries; i++)
			gw_ask_free(&c->asks[i]);
		free(c->asks);
	c->asks = NULL;
		c->waiting = unref(c->waiting);
	}
	json_decref(req);
}

/* ---- BOUND: one host's stream ---- */

static void gw_on_up(struct watch *w, int fd, uint32_t revents, void *userdata);

/*
 * Bind to host and forward req with the console named local (the host's
 * own name for it).  A host that is down: an attach that resumes closes
 * the connection (the channel tries again, and gives up in time); any
 * other request is told why.
 */
static void gw_bind(struct gwconn *c, size_t host, const char *local, json_t *req)
{
	struct gateway *g = c->g;
	bool resuming = json_object_get(req, "resume") != NULL;
	int fd = -EBADF, r;

	r = upstream_open_stream(g->up, host, &fd);
	if (r < 0) {
		if (resuming)
			return gw_close_after(c, NULL);
		if (r == -EHOSTUNREACH)
			return gw_error(c, PROTO_E_NOT_AVAILABLE, "host %s is unreachable: %s",
					gw_host_name(g, host), gw_state_why(g, host));
		return gw_error(c, PROTO_E_INTERNAL, "cannot reach host %s: %s",
				gw_host_name(g, host), strerror(-r));
	}
	c->up_fd = fd;
	c->host = host;
	r = frame_reader_init(&c->up_in);
	if (r >= 0)
		r = obuf_init(&c->up_out, GW_UP_MAX);
	if (r >= 0)
		r = gw_put(&c->up_out, gw_user_hello(c));
	if (r >= 0 && json_object_set_new(req, "console", json_string(local)) < 0)
		r = -ENOMEM;
	if (r >= 0)
		r = proto_put_control(&c->up_out, req);
	if (r >= 0)
		r = watch_add(g->poller, fd, EPOLLIN | EPOLLOUT, gw_on_up, c, &c->up_io);
	if (r < 0) {
		gw_unbind(c);
		return gw_error(c, PROTO_E_INTERNAL, "cannot reach host %s: %s",
				gw_host_name(g, host), strerror(-r));
	}
	c->state = GW_BOUND;
	log_info("gateway: %s from %s -> host %s, console %s", gw_label(c), c->from ?: "?",
		 gw_host_name(g, host), json_string_value(json_object_get(req, "console")));
}

/* A control message from the host: qualified, then to the channel. */
static void gw_from_host(struct gwconn *c, json_t *msg, const char *type)
{
	const char *host = gw_host_name(c->g, c->host);

	if (!c->up_hello) {
		c->up_hello = true;
		if (strcmp(type, "hello") == 0)
			return; /* answered ours; the channel had its own from us */
	}
	if (strcmp(type, "attached") == 0)
		c->attached = true;
	else if (strcmp(type, "detached") == 0) {
		const char *reason = json_string_value(json_object_get(msg, "reason"));

		c->attached = false;
		c->shutdown = reason && strcmp(reason, "shutdown") == 0;
	}
	if (gwlist_qualify(msg, host) < 0)
		return gw_error(c, PROTO_E_INTERNAL, "out of memory");
	gw_send(c, json_incref(msg));
}

/* Frames from the host, while the channel's queue has room for one more. */
static void gw_up_frames(struct gwconn *c)
{
	struct frame f;
	int r = 0;

	while (c->state == GW_BOUND && !c->dead && obuf_room(&c->out) >= GW_ROOM &&
	       (r = frame_reader_next(&c->up_in, &f)) > 0) {
		if (f.type == FRAME_CONTROL) {
			json_t *msg = NULL;
			const char *type = NULL;

			if (proto_decode_control(f.payload, f.len, &msg, &type, NULL, 0) < 0) {
				log_warning("gateway: host %s sent a malformed message; closing",
					    gw_host_name(c->g, c->host));
				gw_close_after(c, NULL);
				return;
			}
			gw_from_host(c, msg, type);
			json_decref(msg);
		} else if (f.type == FRAME_OUTPUT) {
			uint8_t hdr[FRAME_HEADER];

			frame_header(hdr, f.type, f.len);
			if (obuf_append(&c->out, hdr, sizeof(hdr)) < 0 ||
			    obuf_append(&c->out, f.payload, f.len) < 0)
				return gw_kill(c);
		} else {
			log_warning("gateway: host %s sent a frame of type 0x%02x; closing",
				    gw_host_name(c->g, c->host), f.type);
			return gw_close_after(c, NULL);
		}
	}
	if (c->state == GW_BOUND && r < 0) {
		log_warning("gateway: host %s sent a broken stream; closing", gw_host_name(c->g, c->host));
		gw_close_after(c, NULL);
	}
}

/* The stream ended.  Attached: the user is told, and the channel reconnects and resumes. */
static void gw_up_lost(struct gwconn *c)
{
	char text[256];

	if (c->attached && !c->shutdown) {
		snprintf(text, sizeof(text), "lost the connection to host %s; reconnecting",
			 gw_host_name(c->g, c->host));
		log_info("gateway: %s from %s: %s", gw_label(c), c->from ?: "?", text);
		return gw_close_after(c, text);
	}
	if (!c->up_hello)
		return gw_close_after(c, NULL);
	gw_close_after(c, NULL);
}

static void gw_on_up(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct gwconn *c = userdata;
	ssize_t n;

	if ((revents & EPOLLOUT) && obuf_flush(&c->up_out, c->up_fd) < 0)
		gw_up_lost(c);
	else if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		n = frame_reader_fill(&c->up_in, c->up_fd);
		gw_up_frames(c);
		if (c->state == GW_BOUND && (n < 0 || c->up_in.eof))
			gw_up_lost(c);
	}
	gw_update(c); /* the notice gw_up_lost() queued goes out from here */
}

/* ---- the gateway's own ttyhubd: web links and sessions ---- */

/*
 * One question to the gateway's own ttyhubd (--broker), which holds the
 * gateway's access file and its web links: the caller queues hello and a
 * request on l->f, gw_local_answer() waits for each answer.  It blocks, for
 * at most GW_LOCAL_USEC, as authz.h does and for the same reason: the
 * broker is on this machine and answers at once; a web link or a session's
 * start is rare next to the frames a gateway relays.
 */
struct gwlocal {
	int fd;         /* owned */
	struct front f; /* on fd */
	uint64_t deadline;
};

static int gw_local_open(struct gateway *g, struct gwlocal *l)
{
	int fd, r;

	*l = (struct gwlocal){ .fd = -EBADF, .deadline = clock_now_usec() + GW_LOCAL_USEC };
	fd = front_connect(*g->config.broker, true);
	if (fd < 0)
		return fd;
	r = front_init(&l->f, fd, GW_LOCAL_OUT_MAX, NULL);
	if (r < 0) {
		safe_close(fd);
		return r;
	}
	l->fd = fd;
	return 0;
}

static void gw_local_close(struct gwlocal *l)
{
	if (l->fd < 0)
		return;
	front_done(&l->f);
	l->fd = safe_close(l->fd);
}

/* The next answer (a reference for the caller), until the deadline.  0 or -errno. */
static int gw_local_answer(struct gwlocal *l, json_t **ret)
{
	struct front_event e;

	for (;;) {
		struct pollfd p = { .fd = l->fd, .events = POLLIN };
		uint64_t now;
		int r;

		if (front_flush(&l->f) < 0)
			return -EPIPE;
		while ((r = front_next_event(&l->f, &e)) > 0)
			if (e.type != FRONT_EV_DATA && e.type != FRONT_EV_NOTICE) {
				*ret = json_incref(e.msg);
				return 0;
			}
		if (r < 0)
			return r;
		if (front_eof(&l->f))
			return -ECONNRESET;
		now = clock_now_usec();
		if (now >= l->deadline)
			return -ETIMEDOUT;
		if (front_pending(&l->f) > 0)
			p.events |= POLLOUT;
		r = poll(&p, 1, (int)((l->deadline - now + 999) / 1000));
		if (r < 0 && errno != EINTR)
			return negative_errno();
		if (front_fill(&l->f) < 0)
			return -ECONNRESET;
	}
}

static bool gw_is_error(json_t *msg)
{
	return eq(json_string_value(json_object_get(msg, "type")), "error");
}

/*
 * Ask: the hello queued on l, then the request, and take both answers.
 * The answer to the request in *ret (or the hello's error, which ends the
 * question), else -errno with the connection's failure logged.
 */
static int gw_local_ask(struct gwconn *c, struct gwlocal *l, const char *what, json_t **ret)
{
	json_t *hello = NULL;
	int r;

	r = gw_local_answer(l, &hello);
	if (r >= 0 && gw_is_error(hello)) {
		*ret = hello;
		return 0;
	}
	json_decref(hello);
	if (r >= 0)
		r = gw_local_answer(l, ret);
	if (r < 0)
		log_warning_errno(r, "gateway: %s for %s: no answer from ttyhubd on %s", what,
				  gw_label(c), *c->g->config.broker);
	return r;
}

/* `web-link` {console, ro}: the gateway's ttyhubd mints it for the channel's key. */
static void gw_web_link(struct gwconn *c, json_t *req)
{
	const struct front_principal p = { .key = c->key, .from = c->from };
	const char *console = json_string_value(json_object_get(req, "console"));
	struct gwlocal l;
	json_t *answer = NULL;
	int r;

	if (!c->key || c->from_socket)
		return gw_error(c, PROTO_E_DENIED, "only a key's connection may mint a web link");
	if (!console)
		return gw_error(c, PROTO_E_BAD_REQUEST, "request needs a \"console\" name");
	r = gw_local_open(c->g, &l);
	if (r >= 0)
		r = front_hello(&l.f, GW_CLIENT, &p);
	if (r >= 0)
		r = front_web_link(&l.f, console, json_is_true(json_object_get(req, "ro")));
	if (r >= 0)
		r = gw_local_ask(c, &l, "a web link", &answer);
	gw_local_close(&l);
	if (r < 0)
		return gw_error(c, PROTO_E_NOT_AVAILABLE, "cannot mint a web link: %s",
				strerror(-r));
	gw_send(c, answer);
}

/* `redeem` {token, from} from ttyhub-webd: the link was minted by the gateway's ttyhubd. */
static void gw_redeem(struct gwconn *c, json_t *req)
{
	const char *token = json_string_value(json_object_get(req, "token"));
	json_t *jfrom = json_object_get(req, "from");
	struct gwlocal l;
	json_t *answer = NULL;
	int r;

	if (!c->web_front)
		return gw_error(c, PROTO_E_DENIED, "only a front may redeem a web link");
	if (!token || (jfrom && !json_is_string(jfrom)))
		return gw_error(c, PROTO_E_BAD_REQUEST, "redeem needs \"token\" (a string) and "
				"\"from\" (an address)");
	r = gw_local_open(c->g, &l);
	if (r >= 0)
		r = front_hello(&l.f, GW_CLIENT, NULL);
	if (r >= 0)
		r = front_redeem(&l.f, token, json_string_value(jfrom));
	if (r >= 0)
		r = gw_local_ask(c, &l, "a redeem", &answer);
	gw_local_close(&l);
	if (r < 0)
		return gw_error(c, PROTO_E_NOT_AVAILABLE, "cannot redeem the link: %s",
				strerror(-r));
	gw_send(c, answer);
}

/* ---- from the channel ---- */

static int gw_dup_member(json_t *o, const char *key, bool required, char **ret)
{
	json_t *v = json_object_get(o, key);
	const char *s = json_string_value(v);

	if (!v && !required)
		return 0;
	if (!s || strlen(s) > GW_FIELD_MAX)
		return -EINVAL;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* The principal as hello's (or the gateway's ttyhubd's, for a session) says, and who it is. */
static int gw_take_principal(struct gwconn *c, json_t *p)
{
	if (!json_is_object(p) || gw_dup_member(p, "key", true, &c->key) < 0 ||
	    gw_dup_member(p, "from", false, &c->from) < 0 ||
	    gw_dup_member(p, "grant", false, &c->grant) < 0 ||
	    gw_dup_member(p, "comment", false, &c->comment) < 0 ||
	    asprintf(&c->who, "%s\n%s\n%s", c->key, c->from ?: "", c->grant ?: "") < 0) {
		c->who = NULL;
		return -EINVAL;
	}
	return 0;
}

/*
 * hello {session, from} from ttyhub-webd: the gateway's ttyhubd knows the
 * session and answers with its principal (key, grant, comment) and console
 * (docs/protocol.md "Gateways"); from then on this connection speaks for
 * that key from the browser's address, as a channel's does, on that
 * console only.  Refused: its error, and the connection closes.
 */
static void gw_on_hello_session(struct gwconn *c, json_t *req)
{
	const char *session = json_string_value(json_object_get(req, "session"));
	json_t *jfrom = json_object_get(req, "from"), *answer = NULL, *p;
	struct gwlocal l;
	int r;

	if (!session || (jfrom && !json_is_string(jfrom))) {
		gw_error(c, PROTO_E_BAD_REQUEST, "hello's session must be a string");
		return gw_close_after(c, NULL);
	}
	r = gw_local_open(c->g, &l);
	if (r >= 0)
		r = front_hello_session(&l.f, GW_CLIENT, session, json_string_value(jfrom));
	if (r >= 0)
		r = gw_local_answer(&l, &answer);
	gw_local_close(&l);
	if (r < 0) {
		log_warning_errno(r, "gateway: a web session: no answer from ttyhubd on %s",
				  *c->g->config.broker);
		gw_error(c, PROTO_E_NOT_AVAILABLE, "cannot check the web session: %s",
			 strerror(-r));
		return gw_close_after(c, NULL);
	}
	if (gw_is_error(answer)) {
		gw_send(c, answer);
		return gw_close_after(c, NULL);
	}
	p = json_object_get(answer, "principal");
	if (json_is_object(p))
		json_object_del(p, "from"); /* the address is the browser's, as webd says */
	if (gw_take_principal(c, p) < 0 || !c->grant ||
	    gw_dup_member(p, "console", true, &c->web_console) < 0 ||
	    gw_dup_member(req, "from", false, &c->from) < 0) {
		/* A local admin's link, or a ttyhubd that is no gateway's: nothing to speak for. */
		json_decref(answer);
		gw_error(c, PROTO_E_DENIED, "this web session cannot be used through a gateway");
		return gw_close_after(c, NULL);
	}
	free(c->who);
	if (asprintf(&c->who, "%s\n%s\n%s", c->key, c->from ?: "", c->grant ?: "") < 0) {
		c->who = NULL;
		json_decref(answer);
		gw_error(c, PROTO_E_INTERNAL, "out of memory");
		return gw_close_after(c, NULL);
	}
	log_info("gateway: web session of %s from %s, console %s", gw_label(c), c->from ?: "?",
		 c->web_console);
	c->state = GW_IDLE;
	gw_send(c, json_pack("{s:s, s:i, s:s, s:O?}", "type", "hello", "version", 1, "server",
			     GW_CLIENT, "you", json_object_get(answer, "you")));
	json_decref(answer);
}

static void gw_on_hello(struct gwconn *c, json_t *req)
{
	json_t *p = json_object_get(req, "principal");

	if (c->from_socket && json_object_get(req, "session"))
		return gw_on_hello_session(c, req);
	if (c->from_socket && !p && !json_object_get(req, "session")) {
		/* ttyhub-webd's one-shot requests: a redeem. */
		c->web_front = true;
		c->state = GW_IDLE;
		return gw_send(c, json_pack("{s:s, s:i, s:s, s:s}", "type", "hello", "version", 1,
					    "server", GW_CLIENT, "you", "local front"));
	}
	/* The socket is for web fronts: only a channel (an authenticated key) names a principal. */
	if (c->from_socket || gw_take_principal(c, p) < 0) {
		gw_error(c, PROTO_E_DENIED, "a gateway serves SSH keys only");
		return gw_close_after(c, NULL);
	}
	c->state = GW_IDLE;
	gw_send(c, json_pack("{s:s, s:i, s:s, s:s}", "type", "hello", "version", 1, "server",
			     "ttyhub-sshd gateway", "you", c->comment ?: "gateway user"));
}

/* A request naming a console, before any binding. */
static void gw_route(struct gwconn *c, json_t *req, const char *name)
{
	char host[HOSTS_NAME_MAX];
	const char *rest = NULL;
	int r, i;

	r = gwlist_split(name, host, &rest);
	if (r < 0)
		return gw_error(c, PROTO_E_UNKNOWN_CONSOLE, "no console named '%s'", name);
	if (r == 0)
		return gw_start_listing(c, req); /* gw_listed() resolves it */
	i = upstream_find(c->g->up, host);
	if (i < 0)
		return gw_error(c, PROTO_E_UNKNOWN_CONSOLE, "no console named '%s'", name);
	gw_bind(c, (size_t)i, rest, req);
}

/* While bound: a name on the bound host is the host's own; another host's is refused. */
static int gw_localise(struct gwconn *c, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "console")), *rest = NULL;
	char host[HOSTS_NAME_MAX];
	int r;

	if (!name)
		return 0;
	r = gwlist_split(name, host, &rest);
	if (r == 0)
		return 0;
	if (r < 0 || strcmp(host, gw_host_name(c->g, c->host)) != 0) {
		gw_error(c, PROTO_E_BAD_REQUEST,
			 "this connection is on host %s: one connection serves one host",
			 gw_host_name(c->g, c->host));
		return -EINVAL;
	}
	return json_object_set_new(req, "console", json_string(rest)) < 0 ? -ENOMEM : 0;
}

/*
 * Whether a web session may name name: its console, or, for a console the
 * link named without a host, that console qualified (as `attached` and so a
 * resuming attach name it).
 */
static bool gw_session_allows(const struct gwconn *c, const char *name)
{
	char host[HOSTS_NAME_MAX], own[HOSTS_NAME_MAX];
	const char *rest = NULL, *own_rest = NULL;

	if (!name || eq(name, c->web_console))
		return name != NULL;
	return gwlist_split(c->web_console, own, &own_rest) == 0 &&
	       gwlist_split(name, host, &rest) > 0 && eq(rest, c->web_console);
}

static void gw_on_request(struct gwconn *c, json_t *req, const char *type)
{
	json_t *console = json_object_get(req, "console");

	if (c->state == GW_HELLO) {
		if (!eq(type, "hello")) {
			gw_error(c, PROTO_E_BAD_REQUEST, "the first request must be \"hello\"");
			return gw_close_after(c, NULL);
		}
		return gw_on_hello(c, req);
	}
	if (eq(type, "hello"))
		return gw_error(c, PROTO_E_BAD_REQUEST, "hello was already sent");
	if (eq(type, "ping"))
		return gw_send(c, json_pack("{s:s}", "type", "pong"));
	if (eq(type, "web-link"))
		return gw_web_link(c, req);
	if (eq(type, "redeem"))
		return gw_redeem(c, req);
	if (eq(type, "authorize"))
		return gw_error(c, PROTO_E_DENIED, "not through a gateway");
	if (c->web_front)
		return gw_error(c, PROTO_E_DENIED, "a front without a session may only redeem a "
				"web link");
	/* A web session is for its link's console (ttyhubd's words for a console out of reach). */
	if (c->web_console && console && !gw_session_allows(c, json_string_value(console)))
		return gw_error(c, PROTO_E_DENIED, "this web session is for %s only",
				c->web_console);
	if (c->state == GW_LISTING)
		return gw_error(c, PROTO_E_BUSY, "a list is being gathered");
	if (c->state == GW_BOUND) {
		if (gw_localise(c, req) < 0)
			return;
		if (proto_put_control(&c->up_out, req) < 0)
			gw_error(c, PROTO_E_BUSY, "the host does not take requests fast enough");
		return;
	}
	if (console && !json_is_string(console))
		return gw_error(c, PROTO_E_BAD_REQUEST, "console must be a string");
	if (console)
		return gw_route(c, req, json_string_value(console));
	if (eq(type, "list"))
		return gw_start_listing(c, req);
	if (eq(type, "attach"))
		return gw_error(c, PROTO_E_BAD_REQUEST, "attach needs a console");
	gw_error(c, PROTO_E_NOT_ATTACHED, "not attached to a console");
}

/* The channel's frames, while the queue up (when bound) has room for one more. */
static void gw_down_frames(struct gwconn *c)
{
	struct frame f;
	int r = 0;

	while (!c->dead && (c->state == GW_HELLO || c->state == GW_IDLE ||
			    (c->state == GW_BOUND && obuf_room(&c->up_out) >= GW_ROOM)) &&
	       (r = frame_reader_next(&c->in, &f)) > 0) {
		if (f.type == FRAME_CONTROL) {
			json_t *req = NULL;
			const char *type = NULL;

			if (proto_decode_control(f.payload, f.len, &req, &type, NULL, 0) < 0) {
				gw_error(c, PROTO_E_BAD_REQUEST, "malformed request");
				continue;
			}
			gw_on_request(c, req, type);
			json_decref(req);
		} else if (f.type == FRAME_DATA && c->state == GW_BOUND) {
			uint8_t hdr[FRAME_HEADER];

			frame_header(hdr, f.type, f.len);
			if (obuf_append(&c->up_out, hdr, sizeof(hdr)) < 0 ||
			    obuf_append(&c->up_out, f.payload, f.len) < 0)
				return gw_kill(c);
		} else if (f.type == FRAME_DATA) {
			/* Keystrokes before an attach went anywhere: nobody to give them to. */
		} else {
			gw_error(c, PROTO_E_BAD_FRAME, "unexpected frame type");
			return gw_close_after(c, NULL);
		}
	}
	if (r < 0) {
		gw_error(c, PROTO_E_BAD_FRAME, "malformed frame");
		gw_close_after(c, NULL);
	}
}

static void gw_on_down(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct gwconn *c = userdata;
	ssize_t n;

	if ((revents & EPOLLOUT) && obuf_flush(&c->out, c->fd) < 0)
		return gw_kill(c);
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		n = frame_reader_fill(&c->in, c->fd);
		gw_down_frames(c);
		if (n < 0 || c->in.eof) {
			/* The channel is gone; its last words (a detach) get one try. */
			if (c->state == GW_BOUND && c->up_fd >= 0)
				(void)obuf_flush(&c->up_out, c->up_fd);
			return gw_kill(c);
		}
	}
	gw_update(c);
}

/*
 * Events for both sockets from the queues: the channel is read while we
 * can take its frames, the host while the channel's queue has room;
 * writable is asked for while a queue holds bytes.  A closing connection
 * ends once the channel has everything.
 */
static void gw_update(struct gwconn *c)
{
	uint32_t ev = 0;

	if (c->dead)
		return;
	if (c->state == GW_BOUND) {
		gw_up_frames(c);
		gw_down_frames(c);
	}
	if (c->dead)
		return;
	if (c->state == GW_CLOSING && obuf_len(&c->out) == 0)
		return gw_kill(c);
	if (obuf_len(&c->out) > 0)
		(void)obuf_flush(&c->out, c->fd);
	if (c->state == GW_HELLO || c->state == GW_IDLE ||
	    (c->state == GW_BOUND && obuf_room(&c->up_out) >= GW_ROOM))
		ev |= EPOLLIN;
	if (obuf_len(&c->out) > 0)
		ev |= EPOLLOUT;
	if (c->state == GW_CLOSING && obuf_len(&c->out) == 0)
		return gw_kill(c);
	(void)watch_set_events(c->io, ev);
	if (c->state == GW_BOUND && c->up_io) {
		ev = obuf_room(&c->out) >= GW_ROOM ? EPOLLIN : 0;
		if (obuf_len(&c->up_out) > 0)
			ev |= EPOLLOUT;
		(void)watch_set_events(c->up_io, ev);
	}
}

/* ---- the gateway ---- */

int gateway_serve_fd(struct gateway *g, int fd, bool from_socket)
{
	_cleanup_close_ int owned = fd;
	struct gwconn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct gwconn){ .g = g, .fd = -EBADF, .up_fd = -EBADF, .from_socket = from_socket };
	r = frame_reader_init(&c->in);
	if (r >= 0)
		r = obuf_init(&c->out, GW_OUT_MAX);
	if (r >= 0)
		r = watch_add(g->poller, fd, EPOLLIN, gw_on_down, c, &c->io);
	if (r < 0) {
		frame_reader_done(&c->in);
		obuf_done(&c->out);
		free(c);
		return r;
	}
	c->fd = TAKE_FD(owned);
	LIST_INSERT_HEAD(&g->conns, c, entry); /* a macro: its element is named more than once */
	return 0;
}

int gateway_connect(struct gateway *g)
{
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	r = gateway_serve_fd(g, sv[1], false);
	if (r < 0) {
		safe_close(sv[0]);
		return r;
	}
	return sv[0];
}

static int gw_on_listen_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct gateway *g = userdata;

	(void)watch_set_events(g->listen_io, EPOLLIN);
	return 0;
}

/*
 * Accepting failed for a reason that lasts (out of descriptors): the
 * listener is level-triggered, so it would fire at once again.  Pause it
 * for a second; connections wait in the backlog meanwhile.
 */
static void gw_listen_pause(struct gateway *g)
{
	int r;

	(void)watch_disable(g->listen_io);
	g->listen_retry = sd_event_source_disable_unref(g->listen_retry);
	r = sd_event_add_time_relative(g->event, &g->listen_retry, CLOCK_MONOTONIC, 1000 * 1000,
				       1000, gw_on_listen_retry, g);
	if (r < 0)
		(void)watch_set_events(g->listen_io, EPOLLIN); /* better busy than deaf */
}

/*
 * --gateway-socket: a connection from root, our own uid or the configured
 * user is served like a channel's; anyone else is closed, with a log line.
 */
static void gw_on_listen(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct gateway *g = userdata;

	for (;;) {
		_cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ucred cred = {};
		socklen_t len = sizeof(cred);
		int r;

		if (cfd < 0) {
			r = -errno;
			if (r == -EINTR || r == -ECONNABORTED)
				continue;
			if (r != -EAGAIN) {
				log_warning_errno(r, "gateway: cannot accept on %s; pausing for 1 s",
						  g->socket_path);
				gw_listen_pause(g);
			}
			return;
		}
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			log_warning_errno(-errno, "gateway: cannot identify a peer on %s",
					  g->socket_path);
			continue;
		}
		if (cred.uid != 0 && cred.uid != geteuid() && cred.uid != g->config.socket_uid) {
			log_notice("gateway: refused a connection on %s from uid %u (pid %d): not "
				   "root, ours or --gateway-socket-user", g->socket_path,
				   (unsigned)cred.uid, (int)cred.pid);
			continue;
		}
		r = gateway_serve_fd(g, TAKE_FD(cfd), true);
		if (r < 0)
			log_warning_errno(r, "gateway: cannot serve a connection on %s",
					  g->socket_path);
	}
}

static int gw_listen(struct gateway *g, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(-ENAMETOOLONG, "--gateway-socket %s: too long a path", path);
	memcpy(sa.sun_path, path, strlen(path));
	g->socket_path = strdup(path);
	if (!g->socket_path)
		return log_error_errno(-ENOMEM, "cannot set up the gateway socket");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(-errno, "cannot create the gateway socket");
	/* A socket left by a gateway that did not exit cleanly; anything else stays. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return log_error_errno(-errno, "cannot bind the gateway socket %s", path);
	g->listen_fd = TAKE_FD(fd);
	/* The peer check decides; the mode keeps others from even connecting. */
	if (chmod(path, 0660) < 0 || listen(g->listen_fd, 64) < 0)
		return log_error_errno(-errno, "cannot listen on the gateway socket %s", path);
	r = watch_add(g->poller, g->listen_fd, EPOLLIN, gw_on_listen, g, &g->listen_io);
	if (r < 0)
		return log_error_errno(r, "cannot listen on the gateway socket %s", path);
	log_info("gateway: ttyhub-webd may connect on %s", path);
	return 0;
}

int gateway_new(sd_event *e, struct poller *p, const struct gateway_config *cfg,
		struct gateway **ret)
{
	_cleanup_free_ char *text = NULL;
	struct gateway *g;
	size_t len = 0, i;
	int r;

	r = read_file_bounded(cfg->hosts_path, HOSTS_MAX_SIZE, &text, &len);
	if (r < 0)
		return log_error_errno(r, "cannot read the hosts file %s", cfg->hosts_path);
	g = calloc(1, sizeof(*g));
	if (!g)
		return log_error_errno(-ENOMEM, "cannot set up the gateway");
	*g = (struct gateway){ .event = e, .poller = p, .config = *cfg, .listen_fd = -EBADF };
	LIST_INIT(&g->conns);
	LIST_INIT(&g->dead);
	r = hosts_parse(text, len, &g->hosts);
	if (r < 0) {
		log_error_errno(r, "cannot parse the hosts file %s", cfg->hosts_path);
		goto fail;
	}
	for (i = 0; i < g->hosts->n_errors; i++)
		log_error("%s:%u: %s; line skipped", cfg->hosts_path, g->hosts->errors[i].line,
			  g->hosts->errors[i].message);
	if (g->hosts->n_entries == 0) {
		r = log_error_errno(-EINVAL, "the hosts file %s names no usable host",
				    cfg->hosts_path);
		goto fail;
	}
	r = sd_event_add_defer(e, &g->sweep, gw_on_sweep, g);
	if (r >= 0)
		r = sd_event_source_set_enabled(g->sweep, SD_EVENT_OFF);
	if (r < 0) {
		log_error_errno(r, "cannot set up the gateway");
		goto fail;
	}
	g->key_path = strdup(cfg->key_path);
	if (!g->key_path) {
		r = log_error_errno(-ENOMEM, "cannot set up the gateway");
		goto fail;
	}
	g->upcfg = (struct upstream_config){ .key_path = g->key_path,
					     .keepalive_s = cfg->keepalive_s,
					     .keepalive_count = 3,
					     .connect_timeout_s = 10 };
	r = upstream_new(e, p, &g->upcfg, g->hosts, &g->up);
	if (r < 0)
		goto fail;
	if (cfg->socket_path) {
		r = gw_listen(g, cfg->socket_path);
		if (r < 0)
			goto fail;
	}
	g->config.socket_path = NULL; /* the caller's string: g->socket_path is ours */
	log_info("gateway: %zu host%s from %s", g->hosts->n_entries,
		 g->hosts->n_entries == 1 ? "" : "s", cfg->hosts_path);
	*ret = g;
	return 0;
fail:
	gateway_free(g);
	return r;
}

struct gateway *gateway_free(struct gateway *g)
{
	struct gwconn *c;
	size_t i;

	if (!g)
		return NULL;
	while ((c = LIST_FIRST(&g->conns))) {
		LIST_REMOVE(c, entry);
		gw_free(c);
	}
	while ((c = LIST_FIRST(&g->dead))) {
		LIST_REMOVE(c, entry);
		gw_free(c);
	}
	for (i = 0; i < GW_CACHE_MAX; i++) {
		free(g->cache[i].who);
		json_decref(g->cache[i].consoles);
	}
	g->listen_io = watch_free(g->listen_io);
	g->listen_retry = sd_event_source_disable_unref(g->listen_retry);
	if (g->listen_fd >= 0 && g->socket_path)
		(void)unlink(g->socket_path);
	g->listen_fd = safe_close(g->listen_fd);
	free(g->socket_path);
	g->up = upstream_free(g->up);
	g->hosts = hosts_file_free(g->hosts);
	free(g->key_path);
	sd_event_source_disable_unref(g->sweep);
	free(g);
	return NULL;
}
