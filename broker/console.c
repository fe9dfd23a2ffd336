/* SPDX-License-Identifier: MIT */
/*
 * Console: fan-out of guest output and the single-writer model
 * (see console.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "console.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "util.h"

static int strdup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int console_new(struct server *s, const struct console_spec *spec, struct console **ret)
{
	char vm[REGISTRY_VM_MAX], alias[REGISTRY_ALIAS_MAX];
	struct console *c;
	int r;

	/* Names are shown in notices and lists: keep them printable from the start. */
	log_escape(spec->vm, strlen(spec->vm), vm, sizeof(vm));
	if (spec->alias)
		log_escape(spec->alias, strlen(spec->alias), alias, sizeof(alias));
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->server = s;
	TAILQ_INIT(&c->clients);
	c->chardev.fd = -EBADF;
	c->primary = spec->primary;
	c->supported = spec->supported;
	c->backend = spec->backend;
	if (spec->alias)
		r = asprintf(&c->name, "%s:%s", vm, alias) < 0 ? -ENOMEM : 0;
	else
		r = strdup_opt(&c->name, vm);
	if (r >= 0)
		r = strdup_opt(&c->vm, vm);
	/* vm is escaped, so \x01 cannot occur in it and ends it in the comparison. */
	if (r >= 0)
		r = asprintf(&c->order, "%s\x01%c%s", vm, c->primary ? '0' : '1', c->name) < 0
			    ? -ENOMEM : 0;
	if (r >= 0)
		r = strdup_opt(&c->uuid, spec->uuid);
	if (r >= 0)
		r = strdup_opt(&c->alias, spec->alias ? alias : NULL);
	if (r >= 0)
		r = strdup_opt(&c->element, spec->element);
	if (r >= 0)
		r = strdup_opt(&c->target, spec->target);
	if (r >= 0)
		r = strdup_opt(&c->type, spec->type);
	if (r >= 0)
		r = strdup_opt(&c->origin, spec->origin);
	if (r >= 0)
		r = strdup_opt(&c->reason, spec->reason);
	if (r >= 0)
		r = strdup_opt(&c->path, spec->path);
	if (r >= 0)
		r = strdup_opt(&c->chardev_id, spec->chardev_id);
	c->ops = spec->ops;
	c->ops_data = spec->ops_data;
	c->guest = spec->guest;
	c->guest_open = -1;
	if (r >= 0)
		r = ring_init(&c->ring, s->config.ring_size);
	if (r >= 0)
		r = obuf_init(&c->input, CONSOLE_INPUT_MAX);
	if (r >= 0 && c->supported)
		r = chardev_init(&c->chardev, c, c->backend, c->path);
	if (r >= 0 && c->supported && s->config.log_dir) {
		const struct conslog_config lc = {
			.dir = s->config.log_dir,
			.max_size = s->config.log_max_size,
			.backups = s->config.log_backups,
			.timestamps = s->config.log_timestamps,
		};

		/* A log that cannot be written is reported once and never stops the console. */
		r = conslog_open(&lc, c->name, &c->log);
	}
	if (r < 0) {
		console_free(c, NULL);
		return r;
	}
	*ret = c;
	return 0;
}

struct console *console_free(struct console *c, const char *why)
{
	if (!c)
		return NULL;
	console_detach_all(c, DETACH_CONSOLE_GONE, why ? why : "console removed");
	if (c->supported)
		chardev_done(&c->chardev);
	ring_done(&c->ring);
	c->log = conslog_free(c->log);
	obuf_done(&c->input);
	free(c->name);
	free(c->vm);
	free(c->order);
	free(c->uuid);
	free(c->alias);
	free(c->element);
	free(c->target);
	free(c->type);
	free(c->origin);
	free(c->reason);
	free(c->path);
	free(c->chardev_id);
	free(c);
	return NULL;
}

void console_detach_all(struct console *c, enum detach_reason reason, const char *why)
{
	struct client *cl;

	while ((cl = TAILQ_FIRST(&c->clients))) {
		char text[512];

		snprintf(text, sizeof(text), "console %s is gone: %s", c->name, why);
		client_notice(cl, text);
		/* Told first: detaching may resume a paused writer, whose leftover input then
		 * gets its "not attached" answer after this. */
		client_send_new(cl, proto_msg_detached(c->name, reason, why));
		console_detach(c, cl, false);
		client_flush(cl);
	}
}

int console_start(struct console *c)
{
	if (!c->supported)
		return 0;
	return chardev_start(&c->chardev, c->server->event);
}

/* Whether the escaped name a console keeps (c_name) is the escape of the raw spec name. */
static bool console_name_matches(const char *c_name, const char *spec_name, size_t size)
{
	char esc[REGISTRY_VM_MAX];

	if (!c_name || !spec_name)
		return !c_name && !spec_name;
	/* console_new() escapes into a buffer of this size; names that do not fit are refused. */
	log_escape(spec_name, strlen(spec_name), esc, MIN(size, sizeof(esc)));
	return strcmp(c_name, esc) == 0;
}

bool console_matches_spec(const struct console *c, const struct console_spec *spec)
{
	/* c->vm and c->alias are escaped (console_new): compare like with like. */
	return c->supported == spec->supported && c->backend == spec->backend &&
	       c->primary == spec->primary &&
	       console_name_matches(c->vm, spec->vm, REGISTRY_VM_MAX) &&
	       console_name_matches(c->alias, spec->alias, REGISTRY_ALIAS_MAX) &&
	       streq_opt(c->uuid, spec->uuid) &&
	       streq_opt(c->path, spec->path) && streq_opt(c->target, spec->target) &&
	       streq_opt(c->type, spec->type) && streq_opt(c->reason, spec->reason) &&
	       streq_opt(c->chardev_id, spec->chardev_id) && c->ops == spec->ops &&
	       c->ops_data == spec->ops_data;
}

const char *console_state(const struct console *c)
{
	if (!c->supported)
		return "unsupported";
	return chardev_state_to_string(c->chardev.state);
}

/* Format a notice once; give it to ONE client, or to every attached one if ONE is NULL. */
static void console_vtell(struct console *c, struct client *one, const char *fmt, va_list ap)
{
	char text[512];
	struct client *cl;

	vsnprintf(text, sizeof(text), fmt, ap);
	TAILQ_FOREACH(cl, &c->clients, console_entry) {
		if (one && cl != one)
			continue;
		client_notice(cl, text);
		client_flush(cl);
	}
}

void console_announce(struct console *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	console_vtell(c, NULL, fmt, ap);
	va_end(ap);
}

/*
 * Watchers coming and going concern the one whose typing they see: told to
 * everyone, a console with N watchers would send N notices per attach.
 */
static void console_tell_writer(struct console *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void console_tell_writer(struct console *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->writer)
		return;
	va_start(ap, fmt);
	console_vtell(c, c->writer, fmt, ap);
	va_end(ap);
}

void console_log_output(struct console *c, const void *data, size_t len)
{
	conslog_write(c->log, data, len);
}

void console_mark(struct console *c, const char *text)
{
	char line[600];
	int n;

	conslog_mark(c->log, text);
	/* A line of its own: the guest may be in the middle of one. */
	n = snprintf(line, sizeof(line), "\r\n[ttyhub] %s\r\n", text);
	ring_write(&c->ring, line, (size_t)MIN(n, (int)sizeof(line) - 1));
	console_on_output(c);
}

void console_on_output(struct console *c)
{
	struct client *cl;

	/* A client waiting for its socket to drain is flushed by EPOLLOUT, not by every read. */
	TAILQ_FOREACH(cl, &c->clients, console_entry)
		if (!cl->want_write)
			client_flush(cl);
}

void console_on_connected(struct console *c)
{
	if (c->n_clients > 0)
		console_announce(c, "console %s connected", c->name);
}

void console_on_disconnected(struct console *c, const char *why)
{
	struct client *w = c->input_waiter;

	/* Keystrokes for a guest that went away must not reach the next boot. */
	obuf_consume(&c->input, obuf_len(&c->input));
	c->input_waiter = NULL;
	if (w)
		client_resume_input(w);
	console_announce(c, "console %s disconnected (%s); reconnecting", c->name, why);
}

void console_on_input_drained(struct console *c)
{
	struct client *w = c->input_waiter;

	if (!w || obuf_room(&c->input) == 0)
		return;
	c->input_waiter = NULL;
	client_resume_input(w);
}

static void console_send_state(struct console *c, struct client *cl)
{
	client_send_new(cl, proto_msg_state(c->name, cl->role == CLIENT_WRITER,
					    c->writer ? c->writer->label : NULL, c->n_clients));
}

/* Make cl the writer; the previous writer (if any) becomes a watcher. */
static void console_set_writer(struct console *c, struct client *cl)
{
	struct client *old = c->writer;

	if (old == cl)
		return;
	c->writer = cl;
	if (cl)
		cl->role = CLIENT_WRITER;
	if (old) {
		old->role = CLIENT_WATCHER;
		old->ro_hint_sent = false;
		if (c->input_waiter == old) {
			c->input_waiter = NULL;
			client_resume_input(old); /* drops what it still had queued */
		}
		console_send_state(c, old);
	}
	if (cl)
		console_send_state(c, cl);
}

void console_attach(struct console *c, struct client *cl, enum attach_mode mode, long replay)
{
	char old[sizeof(cl->label)] = ""; /* the writer a force attach took over from */
	char old_audit[sizeof(cl->audit)] = "";
	const char *how;

	cl->console = c;
	cl->role = CLIENT_WATCHER;
	cl->ro_hint_sent = false;
	TAILQ_INSERT_TAIL(&c->clients, cl, console_entry);
	c->n_clients++;

	if (replay == PROTO_REPLAY_ALL)
		cl->pos = ring_tail(&c->ring);
	else
		cl->pos = ring_lines_back(&c->ring, (unsigned)MIN(replay, PROTO_REPLAY_MAX));
	cl->sanitize_until = ring_head(&c->ring);
	sanitize_init(&cl->san);

	if (mode == ATTACH_FORCE && c->writer) {
		snprintf(old, sizeof(old), "%s", c->writer->label);
		snprintf(old_audit, sizeof(old_audit), "%s", c->writer->audit);
		console_set_writer(c, cl);
	} else if (mode != ATTACH_RO && !c->writer) {
		c->writer = cl;
		cl->role = CLIENT_WRITER;
	}
	how = cl->role == CLIENT_WRITER ? "read-write" : "read-only";
	/* vm and uuid: which VM this is, so a front can check it attached the console it asked for. */
	client_send_new(cl, proto_msg_attached(&(const struct proto_attached){
		.console = c->name,
		.vm = c->vm,
		.uuid = c->uuid,
		.writer = cl->role == CLIENT_WRITER,
		.writer_label = c->writer ? c->writer->label : NULL,
		.clients = c->n_clients,
		.state = console_state(c),
		.status = c->supported ? c->chardev.status : c->reason,
		.previous = old[0] ? old : NULL,
		.vm_state = c->vm_state,
		.guest_open = c->guest_open,
		.may_write = cl->right == ACCESS_RW,
		.may_break = cl->may_break,
	}));
	if (old[0])
		console_announce(c, "%s attached and took write access from %s", cl->label, old);
	else if (cl->role == CLIENT_WRITER)
		console_announce(c, "%s attached %s (%u attached)", cl->label, how, c->n_clients);
	else
		console_tell_writer(c, "%s attached %s (%u attached)", cl->label, how, c->n_clients);
	if (old_audit[0]) {
		log_info("%s attached to %s and took write access from %s", cl->audit, c->name,
			 old_audit);
		conslog_markf(c->log, "%s attached and took write access from %s", cl->audit,
			      old_audit);
	} else {
		log_info("%s attached to %s %s", cl->audit, c->name, how);
		conslog_markf(c->log, "%s attached %s", cl->audit, how);
	}
	client_flush(cl);
}

void console_detach(struct console *c, struct client *cl, bool announce)
{
	bool was_writer = c->writer == cl;

	TAILQ_REMOVE(&c->clients, cl, console_entry);
	c->n_clients--;
	cl->console = NULL;
	cl->role = CLIENT_WATCHER;
	if (c->input_waiter == cl)
		c->input_waiter = NULL;
	if (was_writer)
		c->writer = NULL;
	/* A writer waiting for the guest must not stay deaf: its queued input is dropped. */
	if (cl->input_paused)
		client_resume_input(cl);
	log_info("%s detached from %s", cl->audit, c->name);
	conslog_markf(c->log, "%s detached", cl->audit);
	if (!announce)
		return;
	if (was_writer)
		console_announce(c, "%s (the writer) detached; nobody writes now", cl->label);
	else
		console_tell_writer(c, "%s detached", cl->label);
}

int console_take(struct console *c, struct client *cl, bool force)
{
	char old[sizeof(cl->label)], old_audit[sizeof(cl->audit)];

	if (c->writer == cl)
		return 0;
	if (!c->writer) {
		console_set_writer(c, cl);
		console_announce(c, "%s now writes", cl->label);
		log_info("%s writes to %s", cl->audit, c->name);
		return 0;
	}
	if (!force)
		return -EBUSY;
	snprintf(old, sizeof(old), "%s", c->writer->label);
	snprintf(old_audit, sizeof(old_audit), "%s", c->writer->audit);
	console_set_writer(c, cl);
	console_announce(c, "%s took write access from %s", cl->label, old);
	log_info("%s took write access to %s from %s", cl->audit, c->name, old_audit);
	conslog_markf(c->log, "%s took write access from %s", cl->audit, old_audit);
	return 0;
}

void console_release(struct console *c, struct client *cl)
{
	if (c->writer != cl)
		return;
	console_set_writer(c, NULL);
	cl->role = CLIENT_WATCHER;
	console_send_state(c, cl);
	console_announce(c, "%s dropped to read-only; nobody writes now", cl->label);
}

size_t console_input(struct console *c, struct client *cl, const uint8_t *data, size_t len)
{
	size_t n;

	if (c->writer != cl)
		return len;
	/* Nothing to deliver to: drop, as a disconnected serial line would. */
	if (!c->supported || c->chardev.state != CHARDEV_CONNECTED)
		return len;
	n = MIN(len, obuf_room(&c->input));
	if (n > 0) {
		obuf_append(&c->input, data, n);
		chardev_kick_write(&c->chardev);
	}
	if (n < len)
		c->input_waiter = cl;
	return n;
}

void console_describe(const struct console *c, struct proto_console *ret)
{
	*ret = (struct proto_console){
		.name = c->name,
		.vm = c->vm,
		.uuid = c->uuid,
		.alias = c->alias,
		.device = c->element,
		.target = c->target,
		.backend = c->type,
		.path = c->path,
		.primary = c->primary,
		.state = console_state(c),
		.status = c->supported ? c->chardev.status : c->reason,
		.writer = c->writer ? c->writer->label : NULL,
		.watchers = c->n_clients - (c->writer ? 1 : 0),
		.origin = c->origin,
		.vm_state = c->vm_state,
		.guest_open = c->guest_open,
	};
}

json_t *console_list_json(const struct console *c, bool may_write, bool may_break)
{
	struct proto_console pc;

	console_describe(c, &pc);
	pc.may_write = may_write;
	pc.may_break = may_break;
	return proto_console_object(&pc);
}

json_t *console_who_json(const struct console *c, bool with_local)
{
	json_t *who = proto_msg_who(c->name);
	const struct client *cl;

	TAILQ_FOREACH(cl, &c->clients, console_entry) {
		/* A local peer's login and pid: for a local admin's eyes only. */
		bool local = with_local && !cl->principal;

		if (who && proto_who_add(who, &(const struct proto_who_client){
				   .id = cl->id,
				   .user = cl->label,
				   .writer = cl->role == CLIENT_WRITER,
				   .since = (int64_t)(cl->since_usec / 1000000),
				   .login = local ? cl->user : NULL,
				   .pid = local ? (int)cl->pid : -1,
			   }) < 0) {
			json_decref(who);
			who = NULL;
		}
	}
	return who;
}
