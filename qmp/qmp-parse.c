/* SPDX-License-Identifier: MIT */
/*
 * QMP line splitting, message classification and command encoding (see
 * qmp-parse.h).  Pure: memory only, no I/O, no logging.
 *
 * The splitter keeps the bytes of the unfinished line at the front of its
 * buffer (compacting when a feed follows returned lines) and remembers how
 * far it has already searched for '\n', so a message that arrives one byte
 * at a time costs linear time.  QMP strings never contain a raw newline
 * (JSON escapes control characters), so '\n' always ends a message.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp-parse.h"
#include "util.h"

#define QMP_SPLITTER_INITIAL 4096

void qmp_splitter_init(struct qmp_splitter *s, size_t max)
{
	*s = (struct qmp_splitter){ .max = max > 0 ? max : QMP_MSG_MAX };
}

void qmp_splitter_done(struct qmp_splitter *s)
{
	free(s->buf);
	*s = (struct qmp_splitter){};
}

/* Make room for want more bytes if the limit allows; false if out of memory. */
static bool qmp_splitter_grow(struct qmp_splitter *s, size_t want)
{
	size_t limit = s->max + 2, ncap;
	char *n;

	if (s->cap - s->len >= want || s->cap >= limit)
		return true;
	ncap = s->cap > 0 ? s->cap : QMP_SPLITTER_INITIAL;
	while (ncap - s->len < want && ncap < limit)
		ncap = ncap > limit / 2 ? limit : ncap * 2;
	if (ncap > limit)
		ncap = limit;
	n = realloc(s->buf, ncap);
	if (!n)
		return false;
	s->buf = n;
	s->cap = ncap;
	return true;
}

size_t qmp_splitter_feed(struct qmp_splitter *s, const void *data, size_t len)
{
	size_t n;

	if (s->error || len == 0)
		return 0;
	/* Drop the lines already returned. */
	if (s->start > 0) {
		memmove(s->buf, s->buf + s->start, s->len - s->start);
		s->len -= s->start;
		s->start = 0;
	}
	if (!qmp_splitter_grow(s, len) && s->cap == s->len) {
		s->error = -ENOMEM;
		return 0;
	}
	n = s->cap - s->len;
	if (n > len)
		n = len;
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return n;
}

int qmp_splitter_next(struct qmp_splitter *s, const char **ret, size_t *ret_len)
{
	for (;;) {
		char *line, *nl;
		size_t pending, llen;

		if (s->error)
			return s->error;
		if (!s->buf)
			return 0; /* nothing fed yet (the buffer is allocated on first feed) */
		pending = s->len - s->start;
		line = s->buf + s->start;
		nl = pending > s->scan ? memchr(line + s->scan, '\n', pending - s->scan) : NULL;
		if (!nl) {
			s->scan = pending;
			/* Even a following '\n' could not make this a line within the limit. */
			if (pending >= s->max + 2) {
				s->error = -EMSGSIZE;
				continue;
			}
			return 0;
		}
		llen = (size_t)(nl - line);
		s->start += llen + 1;
		s->scan = 0;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (llen > s->max) {
			s->error = -EMSGSIZE;
			continue;
		}
		if (llen == 0)
			continue;
		line[llen] = '\0';
		*ret = line;
		*ret_len = llen;
		return 1;
	}
}

size_t qmp_splitter_pending(const struct qmp_splitter *s)
{
	return s->len - s->start;
}

const char *qmp_msg_type_to_string(enum qmp_msg_type t)
{
	switch (t) {
	case QMP_MSG_GREETING:
		return "greeting";
	case QMP_MSG_RETURN:
		return "return";
	case QMP_MSG_ERROR:
		return "error";
	case QMP_MSG_EVENT:
		return "event";
	}
	return "unknown";
}

/* A JSON integer, or a real with an integral value (integers beyond int64 parse as reals). */
static bool qmp_json_int(const json_t *v, int64_t lo, int64_t hi, int64_t *ret)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < lo || i > hi)
			return false;
		*ret = i;
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);

		/* Range-check against [-2^63, 2^63) before converting. */
		if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) ||
		    d != (double)(int64_t)d || (int64_t)d < lo || (int64_t)d > hi)
			return false;
		*ret = (int64_t)d;
		return true;
	}
	return false;
}

static int qmp_fail(char *err, size_t errsz, int r, const char *fmt, ...)
	_printf_(4, 5);
static int qmp_fail(char *err, size_t errsz, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int qmp_parse_greeting(json_t *qmp, struct qmp_msg *m, char *err, size_t errsz)
{
	json_t *qemu = json_object_get(json_object_get(qmp, "version"), "qemu");
	json_t *caps = json_object_get(qmp, "capabilities");
	int64_t v[3];
	static const char *const names[3] = { "major", "minor", "micro" };

	if (!json_is_object(qmp))
		return qmp_fail(err, errsz, -EPROTO, "greeting: \"QMP\" is not an object");
	if (!json_is_object(qemu))
		return qmp_fail(err, errsz, -EPROTO, "greeting: no object \"version\".\"qemu\"");
	for (int i = 0; i < 3; i++)
		if (!qmp_json_int(json_object_get(qemu, names[i]), 0, INT32_MAX, &v[i]))
			return qmp_fail(err, errsz, -EPROTO,
					"greeting: version.qemu.%s is not a small integer >= 0",
					names[i]);
	if (caps && !json_is_array(caps))
		return qmp_fail(err, errsz, -EPROTO, "greeting: \"capabilities\" is not an array");
	m->greeting.major = (int)v[0];
	m->greeting.minor = (int)v[1];
	m->greeting.micro = (int)v[2];
	m->greeting.capabilities = caps;
	return 0;
}

static int qmp_parse_error(json_t *e, struct qmp_msg *m, char *err, size_t errsz)
{
	json_t *class = json_object_get(e, "class"), *desc = json_object_get(e, "desc");

	if (!json_is_object(e))
		return qmp_fail(err, errsz, -EPROTO, "error: \"error\" is not an object");
	if (!json_is_string(class) || !json_is_string(desc))
		return qmp_fail(err, errsz, -EPROTO,
				"error: \"class\" and \"desc\" must be strings");
	m->error.class = json_string_value(class);
	m->error.desc = json_string_value(desc);
	return 0;
}

static int qmp_parse_event(json_t *root, json_t *name, struct qmp_msg *m, char *err,
			   size_t errsz)
{
	json_t *data = json_object_get(root, "data"), *ts = json_object_get(root, "timestamp");
	int64_t sec, usec;

	if (!json_is_string(name))
		return qmp_fail(err, errsz, -EPROTO, "event: \"event\" is not a string");
	if (data && !json_is_object(data))
		return qmp_fail(err, errsz, -EPROTO, "event: \"data\" is not an object");
	if (!json_is_object(ts) ||
	    !qmp_json_int(json_object_get(ts, "seconds"), INT64_MIN, INT64_MAX, &sec) ||
	    !qmp_json_int(json_object_get(ts, "microseconds"), INT64_MIN, INT64_MAX, &usec))
		return qmp_fail(err, errsz, -EPROTO,
				"event: no \"timestamp\" with integer seconds and microseconds");
	m->event.name = json_string_value(name);
	m->event.data = data;
	m->event.seconds = sec;
	m->event.microseconds = usec;
	return 0;
}

int qmp_msg_parse(const char *line, size_t len, struct qmp_msg *ret, char *err, size_t errsz)
{
	const size_t flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES;
	static const char *const keys[] = { "QMP", "return", "error", "event" };
	static const enum qmp_msg_type types[] = { QMP_MSG_GREETING, QMP_MSG_RETURN,
						   QMP_MSG_ERROR, QMP_MSG_EVENT };
	struct qmp_msg m = {};
	json_error_t jerr;
	json_t *member = NULL;
	int found = 0, r;

	m.root = json_loadb(line, len, flags, &jerr);
	if (!m.root && json_error_code(&jerr) == json_error_numeric_overflow)
		m.root = json_loadb(line, len, flags | JSON_DECODE_INT_AS_REAL, &jerr);
	if (!m.root)
		return qmp_fail(err, errsz, -EBADMSG, "malformed JSON at byte %d: %s",
				jerr.position, jerr.text);
	if (!json_is_object(m.root)) {
		r = qmp_fail(err, errsz, -EPROTO, "message is not a JSON object");
		goto fail;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(m.root, keys[i]);

		if (!v)
			continue;
		found++;
		member = v;
		m.type = types[i];
	}
	if (found != 1) {
		r = qmp_fail(err, errsz, -EPROTO, "object has %s of \"QMP\", \"return\", "
			     "\"error\" and \"event\"", found == 0 ? "none" : "more than one");
		goto fail;
	}
	switch (m.type) {
	case QMP_MSG_GREETING:
		r = qmp_parse_greeting(member, &m, err, errsz);
		break;
	case QMP_MSG_RETURN:
		m.ret = member;
		r = 0;
		break;
	case QMP_MSG_ERROR:
		r = qmp_parse_error(member, &m, err, errsz);
		break;
	case QMP_MSG_EVENT:
		r = qmp_parse_event(m.root, member, &m, err, errsz);
		break;
	default:
		r = -EPROTO;
	}
	if (r < 0)
		goto fail;
	if (m.type == QMP_MSG_RETURN || m.type == QMP_MSG_ERROR)
		m.id = json_object_get(m.root, "id");
	*ret = m;
	return 0;
fail:
	json_decref(m.root);
	return r;
}

void qmp_msg_done(struct qmp_msg *m)
{
	json_decref(m->root);
	*m = (struct qmp_msg){};
}

int qmp_msg_id(const struct qmp_msg *m, uint64_t *ret)
{
	int64_t v;

	if (!m->id)
		return -ENOENT;
	if (!qmp_json_int(m->id, 0, INT64_MAX, &v))
		return -EINVAL;
	*ret = (uint64_t)v;
	return 0;
}

int qmp_encode_command(const char *cmd, const json_t *args, uint64_t id, char **ret,
		       size_t *ret_len)
{
	json_t *o, *name;
	char *s, *t;
	size_t len;
	int r = 0;

	if (!cmd || !*cmd || (args && !json_is_object(args)) || id > INT64_MAX)
		return -EINVAL;
	name = json_string(cmd); /* NULL if cmd is not UTF-8 */
	if (!name)
		return -EINVAL;
	o = json_object();
	if (!o) {
		json_decref(name);
		return -ENOMEM;
	}
	/* Insertion order is the output order: execute, arguments, id. */
	if (json_object_set_new(o, "execute", name) < 0 ||
	    (args && json_object_set(o, "arguments", (json_t *)args) < 0) ||
	    json_object_set_new(o, "id", json_integer((json_int_t)id)) < 0)
		r = -ENOMEM;
	s = r < 0 ? NULL : json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (r < 0)
		return r;
	if (!s)
		return -ENOMEM;
	len = strlen(s);
	if (len > QMP_MSG_MAX) {
		free(s);
		return -EMSGSIZE;
	}
	t = realloc(s, len + 3);
	if (!t) {
		free(s);
		return -ENOMEM;
	}
	memcpy(t + len, "\r\n", 3);
	*ret = t;
	*ret_len = len + 2;
	return 0;
}
