/* SPDX-License-Identifier: MIT */
/*
 * Console: fan-out of guest output and the single-writer model
 * (see console.h).
 *
 * The console owns its chardev and hears from it through chardev_ops; it
 * is configured by the console_env it is given, never by the server.  A
 * writer paused because the input queue was full is resumed from the
 * console's defer source once the guest took some, so no client frame is
 * ever processed from inside a chardev callback.
 *
 * Attached clients are struct console_attachment: the console reaches them
 * only through their ops (console.h), never through client.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "fdstore.h"
#include "log.h"
#include "util.h"

static const struct chardev_ops console_chardev_ops;
static void console_on_output(struct console *c);
static void console_log_catch_up(struct console *c);
static uint64_t console_now_usec(void);

static int strdup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static int console_on_resume(sd_event_source *es, void *userdata)
{
	struct console *c = userdata;
	struct console_attachment *w = c->input_waiter;

	/* Still waiting (a detach or a change of writer resumes it at once)? Room now? */
	if (!w || obuf_room(&c->input) == 0)
		return 0;
	c->input_waiter = NULL;
	w->ops->resume_input(w);
	return 0;
}

/* Resume the paused writer from the loop (see console.h: resume). */
static void console_schedule_resume(struct console *c)
{
	if (c->input_waiter && c->resume)
		(void)sd_event_source_set_enabled(c->resume, SD_EVENT_ONESHOT);
}

/* The console's name in the fd store (fdstore.h) for kind. */
static int console_store_name(const struct console *c, enum fdstore_kind kind, char *buf,
			      size_t size)
{
	char key[FDSTORE_KEY_MAX + 1];
	int r = fdstore_key(c->uuid, c->alias, c->name, key, sizeof(key));

	return r < 0 ? r : fdstore_name(kind, key, buf, size);
}

/*
 * The ring: the one kept in the fd store across a restart of ttyhubd (with
 * its connection, in *ret_con_fd, or -EBADF), else a new one, handed to the
 * store.
 */
static int console_ring_open(struct console *c, int *ret_con_fd)
{
	char key[FDSTORE_KEY_MAX + 1], name[FDSTORE_NAME_MAX + 1];
	uint8_t lease[RING_LEASE_SIZE];
	uint64_t now;
	int r;

	*ret_con_fd = -EBADF;
	r = c->supported ? fdstore_key(c->uuid, c->alias, c->name, key, sizeof(key)) : -EINVAL;
	if (r == -ENAMETOOLONG && fdstore_enabled())
		log_notice("console %s: its name is too long for the fd store; its history will "
			   "not survive a restart of ttyhubd", c->name);
	if (r >= 0 && fdstore_claim(key, c, &c->ring, ret_con_fd) >= 0) {
		/* A socket kept for another path (the definition changed) is not this console's. */
		if (*ret_con_fd >= 0 && !streq_opt(ring_stored_path(&c->ring), c->path)) {
			log_notice("console %s: the kept connection was to %s, now %s: reconnecting",
				   c->name, ring_stored_path(&c->ring), c->path);
			*ret_con_fd = safe_close(*ret_con_fd);
			if (console_store_name(c, FDSTORE_CON, name, sizeof(name)) >= 0)
				fdstore_remove(name, c);
		}
		log_info("console %s: history kept across a restart of ttyhubd (%llu bytes%s)",
			 c->name, (unsigned long long)ring_head(&c->ring),
			 *ret_con_fd >= 0 ? ", still connected" : "");
		/* The writer that had it when the last ttyhubd stopped gets time to come back. */
		if (ring_get_lease(&c->ring, lease) &&
		    sd_event_now(c->env->event, CLOCK_MONOTONIC, &now) >= 0)
			c->lease_hold_until = now + CONSOLE_LEASE_HOLD_USEC;
	} else {
		int k = ring_init(&c->ring, c->env->ring_size);

		if (k < 0)
			return k;
		if (r >= 0 && fdstore_name(FDSTORE_RING, key, name, sizeof(name)) >= 0)
			(void)fdstore_push(name, ring_fd(&c->ring), true, c);
	}
	ring_set_identity(&c->ring, c->uuid, c->alias, c->name, c->path);
	return 0;
}

int console_new(const struct console_env *env, const struct console_spec *spec,
		struct console **ret)
{
	char vm[CONSOLE_VM_MAX], alias[CONSOLE_ALIAS_MAX];
	_cleanup_close_ int con_fd = -EBADF;
	struct console *c;
	int r;

	/* Names are shown in notices and lists: keep them printable from the start. */
	log_escape(spec->vm, strlen(spec->vm), vm, sizeof(vm));
	if (spec->alias)
		log_escape(spec->alias, strlen(spec->alias), alias, sizeof(alias));
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->env = env;
	TAILQ_INIT(&c->attached);
	alert_scanner_init(&c->alerts);
	c->chardev.fd = -EBADF;
	c->ring.fd = -EBADF;
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
	c->source = spec->source;
	c->guest = spec->guest;
	c->guest_open = -1;
	if (r >= 0)
		r = console_ring_open(c, &con_fd);
	if (r >= 0)
		r = obuf_init(&c->input, CONSOLE_INPUT_MAX);
	if (r >= 0)
		r = sd_event_add_defer(env->event, &c->resume, console_on_resume, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->resume, SD_EVENT_OFF);
	if (r >= 0 && c->supported) {
		const struct chardev_owner owner = {
			.ops = &console_chardev_ops,
			.userdata = c,
			.name = c->name,
			.ring = &c->ring,
			.input = &c->input,
			.guest = &c->guest,
		};

		r = chardev_init(&c->chardev, &owner, c->backend, c->path);
		if (r >= 0 && con_fd >= 0)
			chardev_adopt(&c->chardev, TAKE_FD(con_fd));
	}
	/* A log that cannot be written is reported once and never stops the console. */
	if (r >= 0 && c->supported && env->log)
		r = conslog_open(env->log, c->name, &c->log);
	if (r < 0) {
		console_free(c, NULL);
		return r;
	}
	/* What a kept ring got while ttyhubd was away (or was not logged before it died). */
	console_log_catch_up(c);
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
	c->resume = sd_event_source_disable_unref(c->resume);
	/* Gone for good (at shutdown the store is frozen and keeps them for the next ttyhubd). */
	if (ring_fd(&c->ring) >= 0) {
		char name[FDSTORE_NAME_MAX + 1];

		if (console_store_name(c, FDSTORE_CON, name, sizeof(name)) >= 0)
			fdstore_remove(name, c);
		if (console_store_name(c, FDSTORE_RING, name, sizeof(name)) >= 0)
			fdstore_remove(name, c);
	}
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
	struct console_attachment *a;

	while ((a = TAILQ_FIRST(&c->attached))) {
		char text[512];

		/* A stopping broker is no news: fronts reconnect and resume (one line then). */
		if (reason != DETACH_SHUTDOWN) {
			snprintf(text, sizeof(text), "console %s is gone: %s", c->name, why);
			a->ops->notice(a, text);
		}
		/* Told first: detaching may resume a paused writer, whose leftover input then
		 * gets its "not attached" answer after this. */
		a->ops->send(a, proto_msg_detached(c->name, reason, why));
		console_detach(c, a, false);
		a->ops->flush(a);
	}
}

int console_start(struct console *c)
{
	if (!c->supported)
		return 0;
	return chardev_start(&c->chardev, c->env->event);
}

/* Whether the escaped name a console keeps (c_name) is the escape of the raw spec name. */
static bool console_name_matches(const char *c_name, const char *spec_name, size_t size)
{
	char esc[CONSOLE_VM_MAX];

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
	       console_name_matches(c->vm, spec->vm, CONSOLE_VM_MAX) &&
	       console_name_matches(c->alias, spec->alias, CONSOLE_ALIAS_MAX) &&
	       streq_opt(c->uuid, spec->uuid) &&
	       streq_opt(c->path, spec->path) && streq_opt(c->target, spec->target) &&
	       streq_opt(c->type, spec->type) && streq_opt(c->reason, spec->reason) &&
	       streq_opt(c->chardev_id, spec->chardev_id) && c->source == spec->source;
}

const char *console_state(const struct console *c)
{
	if (!c->supported)
		return "unsupported";
	return chardev_state_to_string(c->chardev.state);
}

/* Format a notice once; give it to ONE client, or to every attached one if ONE is NULL. */
static void console_vtell(struct console *c, struct console_attachment *one, const char *fmt,
			  va_list ap)
{
	char text[512];
	struct console_attachment *a;

	vsnprintf(text, sizeof(text), fmt, ap);
	TAILQ_FOREACH(a, &c->attached, entry) {
		if (one && a != one)
			continue;
		/* What everyone attached was told is what a recording's reader must see too. */
		if (!one)
			recording_marker(a->rec, text);
		a->ops->notice(a, text);
		a->ops->flush(a);
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

void console_set_guest_state(struct console *c, const char *vm_state, int guest_open)
{
	if (vm_state)
		snprintf(c->vm_state, sizeof(c->vm_state), "%s", vm_state);
	if (guest_open != CONSOLE_GUEST_OPEN_KEEP)
		c->guest_open = guest_open < 0 ? -1 : !!guest_open;
}

void console_record_mark(struct console *c, const char *fmt, ...)
{
	char text[RECORDING_MARK_MAX + 1];
	struct console_attachment *a;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	TAILQ_FOREACH(a, &c->attached, entry)
		recording_marker(a->rec, text);
}

void console_mark(struct console *c, const char *text)
{
	char line[600];
	int n;

	/* Before the ring's copy, which each recording gets as output when it is sent. */
	console_record_mark(c, "%s", text);
	console_log_catch_up(c);
	conslog_mark(c->log, text);
	/* A line of its own: the guest may be in the middle of one. */
	n = snprintf(line, sizeof(line), "\r\n[ttyhub] %s\r\n", text);
	ring_write(&c->ring, line, (size_t)MIN(n, (int)sizeof(line) - 1));
	asciicast_prompt_feed(&c->prompt, line, (size_t)MIN(n, (int)sizeof(line) - 1));
	/* The log has its own marker line: not these bytes again. */
	ring_set_logged(&c->ring, ring_head(&c->ring));
	console_on_output(c);
}

static void console_on_output(struct console *c)
{
	struct console_attachment *a;

	/* A client waiting for its socket to drain is flushed by EPOLLOUT, not by every read. */
	TAILQ_FOREACH(a, &c->attached, entry)
		if (!a->want_write)
			a->ops->flush(a);
}

/* ---- chardev events --------------------------------------------------- */

/* ---- alerts ------------------------------------------------------------ */

/* MESSAGE_ID of every alert's journal entry (journalctl MESSAGE_ID=...). */
#define CONSOLE_ALERT_MESSAGE_ID "60af5a679d5f45b888fbfb6ff5083175"

/*
 * Whether stderr is the journal: systemd sets JOURNAL_STREAM to stderr's
 * "DEVICE:INODE" when it connects it (systemd.exec(5)); the comparison keeps
 * a variable inherited by a child whose stderr went elsewhere from counting.
 */
static bool console_stderr_is_journal(void)
{
	static int cached = -1;
	unsigned long long dev, ino;
	const char *e;
	struct stat st;

	if (cached < 0) {
		e = getenv("JOURNAL_STREAM");
		cached = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 &&
			 fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
			 (unsigned long long)st.st_ino == ino;
	}
	return cached;
}

/*
 * One alert: one structured journal entry (or one stderr line without a
 * journal), then a notice to everyone attached.  The line is guest text:
 * escaped once here for every sink.
 */
static void console_on_alert(void *userdata, const struct alert_event *ev)
{
	struct console *c = userdata;
	int prio = ev->alert->builtin ? LOG_CRIT : LOG_ERR;
	char line[ALERT_LINE_MAX + 64], more[64] = "";

	log_escape(ev->line, ev->line_len, line, sizeof(line));
	if (ev->suppressed > 0)
		snprintf(more, sizeof(more), " (%u more alert%s suppressed)", ev->suppressed,
			 ev->suppressed == 1 ? "" : "s");
	if (!console_stderr_is_journal() ||
	    sd_journal_send("MESSAGE=alert %s on %s: %s%s", ev->alert->name, c->name, line, more,
			    "PRIORITY=%d", prio, "MESSAGE_ID=" CONSOLE_ALERT_MESSAGE_ID,
			    "SYSLOG_IDENTIFIER=ttyhubd", "TTYHUB_CONSOLE=%s", c->name,
			    "TTYHUB_VM=%s", c->vm, "TTYHUB_ALERT=%s", ev->alert->name,
			    "TTYHUB_LINE=%s", line, "TTYHUB_SUPPRESSED=%u", ev->suppressed,
			    NULL) < 0)
		log_full_errno(prio, 0, "alert %s on %s: %s%s", ev->alert->name, c->name, line,
			       more);
	/* The clients get the line itself before the notice about it. */
	console_on_output(c);
	console_announce(c, "alert %s: %s%s", ev->alert->name, line, more);
}

/* Guest output from the ring, each byte once (see console_log_catch_up()). */
static void console_scan(struct console *c, const void *data, size_t len)
{
	uint64_t now;

	if (!c->env->alerts || c->env->alerts->n == 0 || len == 0)
		return;
	if (!c->env->event || sd_event_now(c->env->event, CLOCK_MONOTONIC, &now) < 0)
		now = console_now_usec();
	alert_scanner_feed(&c->alerts, c->env->alerts, data, len, now, console_on_alert, c);
}

/*
 * The console log gets the ring's bytes from `logged` on, and `logged` is
 * kept in the ring's header: after a restart of ttyhubd (even a SIGKILL)
 * the log continues where it stopped, from the kept ring.  The alert
 * scanner reads the same bytes here, for the same reason: each byte once,
 * also what a kept ring got while ttyhubd was away.
 */
static void console_log_catch_up(struct console *c)
{
	uint64_t pos = ring_logged(&c->ring), head = ring_head(&c->ring);
	bool scan = c->env->alerts && c->env->alerts->n > 0;

	if (pos < ring_tail(&c->ring)) {
		if (c->log)
			conslog_markf(c->log, "%llu bytes not logged (older than the history)",
				      (unsigned long long)(ring_tail(&c->ring) - pos));
		pos = ring_tail(&c->ring);
		/* Whatever line was being scanned lost its middle. */
		alert_scanner_init(&c->alerts);
	}
	while ((c->log || scan) && pos < head) {
		struct iovec iov[2];
		size_t n = ring_peek(&c->ring, pos, (size_t)MIN(head - pos, (uint64_t)SIZE_MAX),
				     iov);

		conslog_write(c->log, iov[0].iov_base, iov[0].iov_len);
		conslog_write(c->log, iov[1].iov_base, iov[1].iov_len);
		console_scan(c, iov[0].iov_base, iov[0].iov_len);
		console_scan(c, iov[1].iov_base, iov[1].iov_len);
		pos += n;
	}
	ring_set_logged(&c->ring, head);
}

static void console_chardev_data(void *userdata, const void *data, size_t len)
{
	struct console *c = userdata;

	/* Only recordings redact after a prompt: without them, no work per byte for it. */
	if (c->env->record && *c->env->record)
		asciicast_prompt_feed(&c->prompt, data, len);
	console_log_catch_up(c);
}

static void console_chardev_output(void *userdata)
{
	console_on_output(userdata);
}

static void console_chardev_connected(void *userdata)
{
	struct console *c = userdata;
	char name[FDSTORE_NAME_MAX + 1];

	/* A new connection is a new epoch; kept in the store (FDPOLL=0: the guest's last
	 * words stay in it even if it hangs up while ttyhubd is away). */
	ring_new_epoch(&c->ring);
	/* Offsets start a new epoch: a recording says where (resume points name it). */
	console_record_mark(c, "guest connected: epoch %016llx",
			    (unsigned long long)ring_epoch(&c->ring));
	if (c->backend == DOMXML_BACKEND_UNIX &&
	    console_store_name(c, FDSTORE_CON, name, sizeof(name)) >= 0)
		(void)fdstore_push(name, c->chardev.fd, false, c);
	if (c->n_clients > 0)
		console_announce(c, "console %s connected", c->name);
}

static void console_chardev_disconnected(void *userdata, const char *why)
{
	struct console *c = userdata;
	char name[FDSTORE_NAME_MAX + 1];

	/* The store's copy would keep the guest's one-client socket busy. */
	if (console_store_name(c, FDSTORE_CON, name, sizeof(name)) >= 0)
		fdstore_remove(name, c);
	/* Keystrokes for a guest that went away must not reach the next boot. */
	obuf_consume(&c->input, obuf_len(&c->input));
	/* The paused writer hears console_input() drop its bytes: from the loop. */
	console_schedule_resume(c);
	console_announce(c, "console %s disconnected (%s); reconnecting", c->name, why);
}

static void console_chardev_input_drained(void *userdata)
{
	console_schedule_resume(userdata);
}

static const struct chardev_ops console_chardev_ops = {
	.on_data = console_chardev_data,
	.on_output = console_chardev_output,
	.on_connected = console_chardev_connected,
	.on_disconnected = console_chardev_disconnected,
	.on_input_drained = console_chardev_input_drained,
};

/*
 * A new writer gets a fresh lease (16 random bytes, kept with the ring).
 * Without randomness there is no lease: the writer simply cannot come back
 * as the writer after its connection drops.
 */
static void console_mint_lease(struct console *c)
{
	uint8_t lease[RING_LEASE_SIZE];
	ssize_t n;

	do
		n = getrandom(lease, sizeof(lease), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(lease)) {
		log_warning("%s: no randomness for the writer's lease: %m", c->name);
		ring_clear_lease(&c->ring);
		return;
	}
	ring_set_lease(&c->ring, lease);
}

/* The lease as a string, for a only if it is the writer; NULL otherwise. */
static const char *console_lease_for(const struct console *c, const struct console_attachment *a,
				     char buf[PROTO_LEASE_STRLEN + 1])
{
	uint8_t lease[RING_LEASE_SIZE];

	if (c->writer != a || !a || !ring_get_lease(&c->ring, lease))
		return NULL;
	proto_lease_to_string(lease, buf);
	return buf;
}

void console_forget_lease(struct console *c, struct console_attachment *a)
{
	if (c->writer == a && a)
		ring_clear_lease(&c->ring);
}

static void console_send_state(struct console *c, struct console_attachment *a)
{
	char lease[PROTO_LEASE_STRLEN + 1];

	a->ops->send(a, proto_msg_state(c->name, a->role == CONSOLE_WRITER,
					c->writer ? c->writer->label : NULL, c->n_clients,
					a->right == ACCESS_RW, console_lease_for(c, a, lease)));
}

/* Make a the writer (with a new lease); the previous writer (if any) becomes a watcher. */
static void console_set_writer(struct console *c, struct console_attachment *a)
{
	struct console_attachment *old = c->writer;

	if (old == a)
		return;
	c->writer = a;
	if (a) {
		a->role = CONSOLE_WRITER;
		console_mint_lease(c);
	}
	if (old) {
		old->role = CONSOLE_WATCHER;
		old->ro_hint_sent = false;
		if (c->input_waiter == old) {
			c->input_waiter = NULL;
			old->ops->resume_input(old); /* drops what it still had queued */
		}
		console_send_state(c, old);
	}
	if (a)
		console_send_state(c, a);
}

/* Set the cursor `replay` lines back (or the oldest byte held); replay is sanitised. */
static void console_rewind(struct console *c, struct console_attachment *a, long replay)
{
	if (replay == PROTO_REPLAY_ALL)
		a->pos = ring_tail(&c->ring);
	else
		a->pos = ring_lines_back(&c->ring, (unsigned)MIN(replay, PROTO_REPLAY_MAX));
	a->sanitize_until = ring_head(&c->ring);
	sanitize_init(&a->san);
}

void console_replay(struct console *c, struct console_attachment *a, long lines)
{
	if (a->console == c)
		console_rewind(c, a, lines);
}

void console_attach(struct console *c, struct console_attachment *a, enum attach_mode mode,
		    long replay)
{
	console_attach_resume(c, a, mode, replay, NULL);
}

static uint64_t console_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Set a's cursor from a resume point (see console.h).  Returns "exact",
 * "gap" (with *ret_lost) or "restarted"; NULL without a resume point (the
 * replay as usual).
 */
static const char *console_resume_cursor(struct console *c, struct console_attachment *a,
					 long replay, const struct console_resume *resume,
					 uint64_t *ret_lost)
{
	uint64_t tail = ring_tail(&c->ring), head = ring_head(&c->ring);

	*ret_lost = 0;
	if (!resume || !ring_epoch_known(&c->ring, resume->epoch)) {
		console_rewind(c, a, replay);
		return resume ? "restarted" : NULL;
	}
	/* Offsets are ring positions across epochs: continue there, raw, no replay. */
	if (resume->offset < tail) {
		*ret_lost = tail - resume->offset;
		a->pos = tail;
	} else
		a->pos = MIN(resume->offset, head);
	a->sanitize_until = a->pos;
	sanitize_init(&a->san);
	return *ret_lost > 0 ? "gap" : "exact";
}

/* Does resume carry the lease the ring keeps?  (Compared in constant time: it is a secret.) */
static bool console_lease_matches(const struct console *c, const struct console_resume *resume)
{
	uint8_t lease[RING_LEASE_SIZE], diff = 0;

	if (!resume || !resume->has_lease || !ring_get_lease(&c->ring, lease))
		return false;
	for (size_t i = 0; i < sizeof(lease); i++)
		diff |= lease[i] ^ resume->lease[i];
	return diff == 0;
}

/*
 * Nobody was told a client left when the broker restarted, so its coming
 * back is no news either: the writer with its lease, a watcher that
 * resumed where it was.
 */
static bool console_attach_is_return(const struct console_attachment *a, bool lease_back,
				     const char *resumed)
{
	if (a->role == CONSOLE_WRITER)
		return lease_back;
	return resumed && strcmp(resumed, "restarted") != 0;
}

void console_attach_resume(struct console *c, struct console_attachment *a,
			   enum attach_mode mode, long replay, const struct console_resume *resume)
{
	char old[sizeof(a->label)] = ""; /* the writer a force attach took over from */
	char old_audit[sizeof(a->audit)] = "";
	char lease[PROTO_LEASE_STRLEN + 1];
	const char *how, *resumed;
	uint64_t lost;
	bool lease_back = console_lease_matches(c, resume) && a->right == ACCESS_RW;
	/* A writer that had the role before a broker restart may still come back for it. */
	uint8_t kept[RING_LEASE_SIZE];
	bool held = !lease_back && c->lease_hold_until != 0 && ring_get_lease(&c->ring, kept) &&
		    console_now_usec() < c->lease_hold_until;

	a->console = c;
	a->role = CONSOLE_WATCHER;
	a->ro_hint_sent = false;
	TAILQ_INSERT_TAIL(&c->attached, a, entry);
	c->n_clients++;
	resumed = console_resume_cursor(c, a, replay, resume, &lost);

	if (mode == ATTACH_FORCE && c->writer) {
		snprintf(old, sizeof(old), "%s", c->writer->label);
		snprintf(old_audit, sizeof(old_audit), "%s", c->writer->audit);
		console_set_writer(c, a);
	} else if (lease_back && !c->writer) {
		/* The lease's holder is back: the writer again, with the same lease. */
		c->writer = a;
		a->role = CONSOLE_WRITER;
		c->lease_hold_until = 0;
	} else if (mode == ATTACH_FORCE || (mode == ATTACH_RW && !c->writer && !held)) {
		c->writer = a;
		a->role = CONSOLE_WRITER;
		c->lease_hold_until = 0;
		console_mint_lease(c);
	}
	how = a->role == CONSOLE_WRITER ? "read-write" : "read-only";
	/* vm and uuid: which VM this is, so a front can check it attached the console it asked for. */
	a->ops->send(a, proto_msg_attached(&(const struct proto_attached){
		.console = c->name,
		.vm = c->vm,
		.uuid = c->uuid,
		.writer = a->role == CONSOLE_WRITER,
		.writer_label = c->writer ? c->writer->label : NULL,
		.clients = c->n_clients,
		.state = console_state(c),
		.status = c->supported ? c->chardev.status : c->reason,
		.previous = old[0] ? old : NULL,
		.vm_state = c->vm_state,
		.guest_open = c->guest_open,
		.may_write = a->right == ACCESS_RW,
		.may_break = a->may_break,
		.epoch = ring_epoch(&c->ring),
		.offset = a->pos,
		.tail = ring_tail(&c->ring),
		.head = ring_head(&c->ring),
		.resumed = resumed,
		.lost = lost,
		.lease = console_lease_for(c, a, lease),
	}));
	/* Right after `attached`, before any output: what the resume could not do. */
	if (lost > 0) {
		char text[160];

		snprintf(text, sizeof(text), "%llu bytes of output were lost (older than the "
			 "history); continuing from the oldest byte kept", (unsigned long long)lost);
		a->ops->send(a, proto_msg_notice_lost(text, lost));
	} else if (resumed && strcmp(resumed, "restarted") == 0) {
		char text[600];

		snprintf(text, sizeof(text), "console %s restarted since you left; replaying its "
			 "history", c->name);
		a->ops->notice(a, text);
	}
	/* Watching although nobody writes: say why, or it looks like a bug. */
	if (held && mode == ATTACH_RW && a->role == CONSOLE_WATCHER && !c->writer)
		a->ops->notice(a, "ttyhubd restarted: its writer has a few seconds to come back; "
			       "you are watching (take the console to write)");
	if (old[0])
		console_announce(c, "%s attached and took write access from %s", a->label, old);
	else if (console_attach_is_return(a, lease_back, resumed))
		log_debug("%s is back on %s: not announced", a->audit, c->name);
	else if (a->role == CONSOLE_WRITER)
		console_announce(c, "%s attached %s (%u attached)", a->label, how, c->n_clients);
	else
		console_tell_writer(c, "%s attached %s (%u attached)", a->label, how, c->n_clients);
	if (old_audit[0]) {
		log_info("%s attached to %s and took write access from %s", a->audit, c->name,
			 old_audit);
		conslog_markf(c->log, "%s attached and took write access from %s", a->audit,
			      old_audit);
	} else {
		log_info("%s attached to %s %s%s", a->audit, c->name, how,
			 resumed ? " (resumed)" : "");
		conslog_markf(c->log, "%s attached %s", a->audit, how);
	}
	a->ops->flush(a);
}

void console_detach(struct console *c, struct console_attachment *a, bool announce)
{
	bool was_writer = c->writer == a;

	TAILQ_REMOVE(&c->attached, a, entry);
	c->n_clients--;
	a->console = NULL;
	a->role = CONSOLE_WATCHER;
	if (c->input_waiter == a)
		c->input_waiter = NULL;
	if (was_writer)
		c->writer = NULL;
	/* The session ends here, whichever way it ended (the file says where it was cut). */
	a->rec = recording_free(a->rec);
	/* A writer waiting for the guest must not stay deaf: its queued input is dropped. */
	if (a->input_paused)
		a->ops->resume_input(a);
	log_info("%s detached from %s", a->audit, c->name);
	conslog_markf(c->log, "%s detached", a->audit);
	if (!announce)
		return;
	if (was_writer)
		console_announce(c, "%s (the writer) detached; nobody writes now", a->label);
	else
		console_tell_writer(c, "%s detached", a->label);
}

int console_take(struct console *c, struct console_attachment *a, bool force)
{
	char old[sizeof(a->label)], old_audit[sizeof(a->audit)];

	if (c->writer == a)
		return 0;
	if (!c->writer) {
		console_set_writer(c, a);
		c->lease_hold_until = 0;
		console_announce(c, "%s now writes", a->label);
		log_info("%s writes to %s", a->audit, c->name);
		return 0;
	}
	if (!force)
		return -EBUSY;
	snprintf(old, sizeof(old), "%s", c->writer->label);
	snprintf(old_audit, sizeof(old_audit), "%s", c->writer->audit);
	console_set_writer(c, a);
	console_announce(c, "%s took write access from %s", a->label, old);
	log_info("%s took write access to %s from %s", a->audit, c->name, old_audit);
	conslog_markf(c->log, "%s took write access from %s", a->audit, old_audit);
	return 0;
}

void console_release(struct console *c, struct console_attachment *a)
{
	if (c->writer != a)
		return;
	console_forget_lease(c, a);
	console_set_writer(c, NULL);
	a->role = CONSOLE_WATCHER;
	console_send_state(c, a);
	console_announce(c, "%s dropped to read-only; nobody writes now", a->label);
}

size_t console_input(struct console *c, struct console_attachment *a, const uint8_t *data,
		     size_t len)
{
	size_t n;

	if (c->writer != a)
		return len;
	/* Nothing to deliver to: drop, as a disconnected serial line would. */
	if (!c->supported || c->chardev.state != CHARDEV_CONNECTED)
		return len;
	n = MIN(len, obuf_room(&c->input));
	if (n > 0)
		obuf_append(&c->input, data, n);
	/*
	 * The waiter first: if the kick below drains the queue, that schedules
	 * its resume (the client pauses before the loop runs it).  Set after the
	 * kick, a queue drained at once would leave nobody to wake it.
	 */
	if (n < len)
		c->input_waiter = a;
	if (n > 0) {
		struct console_attachment *x;

		/* On its way to the guest: every attach session sees who typed it. */
		TAILQ_FOREACH(x, &c->attached, entry)
			recording_input(x->rec, a->label, &c->prompt, data, n);
		chardev_kick_write(&c->chardev);
	}
	return n;
}

struct access_console console_access(const struct console *c)
{
	return (struct access_console){ .vm = c->vm, .uuid = c->uuid, .alias = c->alias };
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
	const struct console_attachment *a;

	TAILQ_FOREACH(a, &c->attached, entry) {
		struct proto_who_client w = {
			.user = a->label,
			.writer = a->role == CONSOLE_WRITER,
			.pid = -1,
		};

		/* The owner adds its id, since and (with_local) a local peer's login and pid. */
		a->ops->who(a, with_local, &w);
		if (who && proto_who_add(who, &w) < 0) {
			json_decref(who);
			who = NULL;
		}
	}
	return who;
}
