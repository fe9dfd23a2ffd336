/* SPDX-License-Identifier: MIT */
/*
 * Protocol message builders (see message.h).  Every message starts as
 * {"type": proto_msg_to_string(T)} from proto_msg_new(), so a message name
 * is spelled only in proto.c's table.
 */
#include <errno.h>
#include <stdlib.h>

#include "message.h"

static json_t *proto_msg_new(enum proto_msg type)
{
	return json_pack("{s:s}", "type", proto_msg_to_string(type));
}

/*
 * Add one member, or give up on the whole message: NULL msg or value (out of
 * memory earlier) frees the other, so calls chain without checks in between.
 * json_object_set_new() steals value even when it fails.
 */
static json_t *proto_set(json_t *msg, const char *key, json_t *value)
{
	if (!msg || !value) {
		json_decref(msg);
		json_decref(value);
		return NULL;
	}
	if (json_object_set_new(msg, key, value) < 0) {
		json_decref(msg);
		return NULL;
	}
	return msg;
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *proto_replay_value(long replay)
{
	return replay == PROTO_REPLAY_ALL ? json_string("all") : json_integer(replay);
}

json_t *proto_msg_hello(const char *you, const char *principal_fingerprint,
			const char *principal_comment)
{
	json_t *m = proto_msg_new(PROTO_HELLO);

	m = proto_set(m, "version", json_integer(PROTO_VERSION));
	m = proto_set(m, "server", json_string("ttyhubd"));
	m = proto_set(m, "you", json_string(you));
	if (principal_fingerprint)
		m = proto_set(m, "principal",
			      json_pack("{s:s, s:s}", "fingerprint", principal_fingerprint,
					"comment", principal_comment ? principal_comment : ""));
	return m;
}

json_t *proto_msg_authorized(const char *fingerprint, const char *comment, const char *you,
			     const char *grant, bool gateway)
{
	json_t *m = proto_msg_new(PROTO_AUTHORIZED);

	m = proto_set(m, "fingerprint", json_string(fingerprint));
	m = proto_set(m, "comment", json_string(comment ? comment : ""));
	m = proto_set(m, "you", json_string(you));
	m = proto_set(m, "grant", json_string(grant ? grant : ""));
	return proto_set(m, "gateway", json_boolean(gateway));
}

json_t *proto_msg_pong(void)
{
	return proto_msg_new(PROTO_PONG);
}

json_t *proto_msg_list(void)
{
	json_t *m = proto_msg_new(PROTO_LIST);

	m = proto_set(m, "consoles", json_array());
	m = proto_set(m, "errors", json_array());
	return proto_set(m, "more", json_false());
}

json_t *proto_console_object(const struct proto_console *c)
{
	json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:s, s:s, s:o, s:I, "
			      "s:s, s:s, s:b}",
			      "name", c->name, "vm", c->vm, "uuid", str_or_null(c->uuid),
			      "alias", str_or_null(c->alias), "device", str_or_null(c->device),
			      "target", str_or_null(c->target), "backend", str_or_null(c->backend),
			      "path", str_or_null(c->path), "primary", c->primary,
			      "state", c->state ? c->state : "", "status", c->status ? c->status : "",
			      "writer", str_or_null(c->writer), "watchers", (json_int_t)c->watchers,
			      "origin", c->origin ? c->origin : "",
			      "access", c->may_write ? "rw" : "ro", "break", c->may_break);

	if (o && c->vm_state && c->vm_state[0])
		o = proto_set(o, "vm_state", json_string(c->vm_state));
	if (o && c->guest_open >= 0)
		o = proto_set(o, "guest_open", json_boolean(c->guest_open));
	return o;
}

int proto_list_add_console(json_t *list, json_t *obj)
{
	return json_array_append_new(json_object_get(list, "consoles"), obj) < 0 ? -ENOMEM : 0;
}

json_t *proto_list_error(const char *origin, const char *message)
{
	return json_pack("{s:s, s:s}", "origin", origin, "message", message);
}

int proto_list_add_error(json_t *list, json_t *err)
{
	return json_array_append_new(json_object_get(list, "errors"), err) < 0 ? -ENOMEM : 0;
}

void proto_list_set_more(json_t *list, bool more)
{
	json_object_set_new(list, "more", json_boolean(more));
}

json_t *proto_msg_attached(const struct proto_attached *a)
{
	json_t *m = proto_msg_new(PROTO_ATTACHED);

	m = proto_set(m, "console", json_string(a->console));
	m = proto_set(m, "vm", json_string(a->vm));
	if (a->uuid)
		m = proto_set(m, "uuid", json_string(a->uuid));
	m = proto_set(m, "role", json_string(a->writer ? "writer" : "watcher"));
	m = proto_set(m, "writer", str_or_null(a->writer_label));
	m = proto_set(m, "clients", json_integer(a->clients));
	m = proto_set(m, "state", json_string(a->state ? a->state : ""));
	m = proto_set(m, "status", json_string(a->status ? a->status : ""));
	if (a->previous)
		m = proto_set(m, "previous", json_string(a->previous));
	if (a->vm_state && a->vm_state[0])
		m = proto_set(m, "vm_state", json_string(a->vm_state));
	if (a->guest_open >= 0)
		m = proto_set(m, "guest_open", json_boolean(a->guest_open));
	m = proto_set(m, "access", json_string(a->may_write ? "rw" : "ro"));
	m = proto_set(m, "break", json_boolean(a->may_break));
	if (a->epoch != 0) {
		char epoch[PROTO_EPOCH_STRLEN + 1];

		proto_epoch_to_string(a->epoch, epoch);
		m = proto_set(m, "epoch", json_string(epoch));
		m = proto_set(m, "offset", json_integer((json_int_t)a->offset));
		m = proto_set(m, "tail", json_integer((json_int_t)a->tail));
		m = proto_set(m, "head", json_integer((json_int_t)a->head));
	}
	if (a->resumed)
		m = proto_set(m, "resumed", json_string(a->resumed));
	if (a->resumed && a->lost > 0)
		m = proto_set(m, "lost", json_integer((json_int_t)a->lost));
	if (a->lease)
		m = proto_set(m, "lease", json_string(a->lease));
	return m;
}

json_t *proto_msg_state(const char *console, bool writer, const char *writer_label,
			unsigned clients, bool may_write, const char *lease)
{
	json_t *m = proto_msg_new(PROTO_STATE);

	m = proto_set(m, "console", json_string(console));
	m = proto_set(m, "role", json_string(writer ? "writer" : "watcher"));
	m = proto_set(m, "writer", str_or_null(writer_label));
	m = proto_set(m, "clients", json_integer(clients));
	m = proto_set(m, "access", json_string(may_write ? "rw" : "ro"));
	if (lease)
		m = proto_set(m, "lease", json_string(lease));
	return m;
}

json_t *proto_msg_who(const char *console)
{
	json_t *m = proto_msg_new(PROTO_WHO);

	m = proto_set(m, "console", json_string(console));
	return proto_set(m, "clients", json_array());
}

int proto_who_add(json_t *who, const struct proto_who_client *c)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:I}", "id", (json_int_t)c->id, "user", c->user,
			      "role", c->writer ? "writer" : "watcher", "since",
			      (json_int_t)c->since);

	if (o && c->login)
		o = proto_set(o, "login", json_string(c->login));
	if (o && c->pid >= 0)
		o = proto_set(o, "pid", json_integer(c->pid));
	if (!o || json_array_append_new(json_object_get(who, "clients"), o) < 0)
		return -ENOMEM;
	return 0;
}

json_t *proto_msg_break_sent(const char *console)
{
	return proto_set(proto_msg_new(PROTO_BREAK_SENT), "console", json_string(console));
}

json_t *proto_msg_action_done(const char *console, enum proto_action action, const char *key)
{
	json_t *m = proto_set(proto_msg_new(PROTO_ACTION_DONE), "console", json_string(console));

	m = proto_set(m, "action", json_string(proto_action_to_string(action)));
	return key ? proto_set(m, "key", json_string(key)) : m;
}

json_t *proto_msg_detached(const char *console, enum detach_reason reason, const char *text)
{
	json_t *m = proto_msg_new(PROTO_DETACHED);

	m = proto_set(m, "console", json_string(console));
	m = proto_set(m, "reason", json_string(detach_reason_to_string(reason)));
	return proto_set(m, "text", json_string(text));
}

json_t *proto_msg_notice(const char *text)
{
	return proto_set(proto_msg_new(PROTO_NOTICE), "text", json_string(text));
}

json_t *proto_msg_notice_dropped(const char *text, uint64_t dropped)
{
	return proto_set(proto_msg_notice(text), "dropped", json_integer((json_int_t)dropped));
}

json_t *proto_msg_notice_lost(const char *text, uint64_t lost)
{
	return proto_set(proto_msg_notice(text), "lost", json_integer((json_int_t)lost));
}

json_t *proto_msg_output(const struct proto_output *o)
{
	char epoch[PROTO_EPOCH_STRLEN + 1];
	json_t *m = proto_msg_new(PROTO_OUTPUT);
	char *text;
	size_t n;

	/* Each invalid byte becomes U+FFFD (3 bytes): the bound proto_utf8_repair() needs. */
	text = malloc(o->len * 3 + 1);
	if (!text) {
		json_decref(m);
		return NULL;
	}
	n = proto_utf8_repair(o->data, o->len, text);
	proto_epoch_to_string(o->epoch, epoch);
	m = proto_set(m, "console", json_string(o->console));
	m = proto_set(m, "epoch", json_string(epoch));
	m = proto_set(m, "start", json_integer((json_int_t)o->start));
	m = proto_set(m, "next", json_integer((json_int_t)o->next));
	m = proto_set(m, "head", json_integer((json_int_t)o->head));
	m = proto_set(m, "contents", json_stringn(text, n));
	m = proto_set(m, "more", json_boolean(o->next < o->head));
	if (o->expired) {
		m = proto_set(m, "expired", json_true());
		m = proto_set(m, "lost", json_integer((json_int_t)o->lost));
	}
	free(text);
	return m;
}

json_t *proto_msg_error(const char *code, const char *message)
{
	json_t *m = proto_msg_new(PROTO_ERROR);

	m = proto_set(m, "code", json_string(code));
	return proto_set(m, "message", json_string(message));
}

json_t *proto_msg_web_link(const char *url, const char *console, uint64_t expires_in)
{
	json_t *m = proto_msg_new(PROTO_WEB_LINK);

	m = proto_set(m, "url", json_string(url));
	m = proto_set(m, "console", json_string(console));
	return proto_set(m, "expires_in", json_integer((json_int_t)expires_in));
}

json_t *proto_msg_redeemed(const char *session, const char *console, bool may_write,
			   uint64_t expires_in, const char *you)
{
	json_t *m = proto_msg_new(PROTO_REDEEMED);

	m = proto_set(m, "session", json_string(session));
	m = proto_set(m, "console", json_string(console));
	m = proto_set(m, "access", json_string(may_write ? "rw" : "ro"));
	m = proto_set(m, "expires_in", json_integer((json_int_t)expires_in));
	return proto_set(m, "you", json_string(you));
}

json_t *proto_req_hello(const char *client, const char *key, const char *from, const char *grant,
			const char *comment)
{
	json_t *m = proto_msg_new(PROTO_HELLO), *p;

	m = proto_set(m, "version", json_integer(PROTO_VERSION));
	m = proto_set(m, "client", json_string(client));
	if (!key)
		return m;
	p = json_pack("{s:s, s:s}", "key", key, "from", from ? from : "");
	if (grant)
		p = proto_set(p, "grant", json_string(grant));
	if (comment)
		p = proto_set(p, "comment", json_string(comment));
	return proto_set(m, "principal", p);
}

json_t *proto_req_ping(void)
{
	return proto_msg_new(PROTO_PING);
}

json_t *proto_req_authorize(const char *key, const char *from)
{
	json_t *m = proto_msg_new(PROTO_AUTHORIZE);

	m = proto_set(m, "key", json_string(key));
	return proto_set(m, "from", json_string(from ? from : ""));
}

json_t *proto_req_hello_session(const char *client, const char *session, const char *from)
{
	json_t *m = proto_msg_new(PROTO_HELLO);

	m = proto_set(m, "version", json_integer(PROTO_VERSION));
	m = proto_set(m, "client", json_string(client));
	m = proto_set(m, "session", json_string(session));
	return from ? proto_set(m, "from", json_string(from)) : m;
}

json_t *proto_req_web_link(const char *console, bool ro)
{
	json_t *m = proto_msg_new(PROTO_WEB_LINK);

	m = proto_set(m, "console", json_string(console));
	return proto_set(m, "ro", json_boolean(ro));
}

json_t *proto_req_redeem(const char *token, const char *from)
{
	json_t *m = proto_msg_new(PROTO_REDEEM);

	m = proto_set(m, "token", json_string(token));
	return from ? proto_set(m, "from", json_string(from)) : m;
}

json_t *proto_req_list(const char *console)
{
	json_t *m = proto_msg_new(PROTO_LIST);

	return console ? proto_set(m, "console", json_string(console)) : m;
}

json_t *proto_req_attach(const char *console, enum attach_mode mode, long replay)
{
	json_t *m = proto_msg_new(PROTO_ATTACH);

	m = proto_set(m, "console", json_string(console));
	m = proto_set(m, "mode", json_string(attach_mode_to_string(mode)));
	if (replay != PROTO_REPLAY_DEFAULT)
		m = proto_set(m, "replay", proto_replay_value(replay));
	return m;
}

json_t *proto_req_attach_resume(const char *console, enum attach_mode mode, long replay,
				const struct proto_resume *r)
{
	json_t *m = proto_req_attach(console, mode, replay), *res;
	char epoch[PROTO_EPOCH_STRLEN + 1];

	if (!r)
		return m;
	proto_epoch_to_string(r->epoch, epoch);
	res = json_pack("{s:s, s:I}", "epoch", epoch, "offset", (json_int_t)r->offset);
	if (res && r->lease)
		res = proto_set(res, "lease", json_string(r->lease));
	return proto_set(m, "resume", res);
}

json_t *proto_req_output(const char *console, bool has_start, int64_t start, unsigned max)
{
	json_t *m = proto_set(proto_msg_new(PROTO_OUTPUT), "console", json_string(console));

	if (has_start)
		m = proto_set(m, "start", json_integer((json_int_t)start));
	if (max > 0)
		m = proto_set(m, "max", json_integer((json_int_t)max));
	return m;
}

json_t *proto_req_take(bool force)
{
	return proto_set(proto_msg_new(PROTO_TAKE), "force", json_boolean(force));
}

json_t *proto_req_release(void)
{
	return proto_msg_new(PROTO_RELEASE);
}

json_t *proto_req_who(const char *console)
{
	json_t *m = proto_msg_new(PROTO_WHO);

	return console ? proto_set(m, "console", json_string(console)) : m;
}

json_t *proto_req_replay(long lines)
{
	return proto_set(proto_msg_new(PROTO_REPLAY), "lines", proto_replay_value(lines));
}

json_t *proto_req_break(const char *console)
{
	json_t *m = proto_msg_new(PROTO_BREAK);

	return console ? proto_set(m, "console", json_string(console)) : m;
}

json_t *proto_req_action(const char *console, const char *action, const char *key)
{
	json_t *m = proto_set(proto_msg_new(PROTO_ACTION), "action", json_string(action));

	if (console)
		m = proto_set(m, "console", json_string(console));
	return key ? proto_set(m, "key", json_string(key)) : m;
}

json_t *proto_req_resize(unsigned cols, unsigned rows)
{
	json_t *m = proto_msg_new(PROTO_RESIZE);

	m = proto_set(m, "cols", json_integer(cols));
	return proto_set(m, "rows", json_integer(rows));
}

json_t *proto_req_detach(void)
{
	return proto_msg_new(PROTO_DETACH);
}
