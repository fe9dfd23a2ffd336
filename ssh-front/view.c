/* SPDX-License-Identifier: MIT */
/*
 * What SSH users may see (see view.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "view.h"

void view_label(const char *label, char *buf, size_t size)
{
	const char *ssh = NULL, *p;
	size_t len = label ? strlen(label) : 0;

	for (p = label ? strstr(label, " (ssh ") : NULL; p; p = strstr(p + 1, " (ssh "))
		ssh = p;
	if (ssh && len > 0 && label[len - 1] == ')')
		snprintf(buf, size, "%.*s", (int)(ssh - label), label);
	else
		snprintf(buf, size, "local admin");
}

static bool view_path_start(const char *text, const char *p)
{
	return *p == '/' && (p == text || strchr(" (:='\"", p[-1]));
}

/* Append n bytes of t to out (bounded by size, NUL kept room for). */
static size_t view_put(char *out, size_t o, size_t size, const char *t, size_t n)
{
	n = MIN(n, size - 1 - o);
	memcpy(out + o, t, n);
	return o + n;
}

void view_scrub(const char *in, char *out, size_t size)
{
	static const char local[] = " (local, pid ";
	const char *p = in ? in : "";
	size_t o = 0;

	if (size == 0)
		return;
	while (*p && o + 1 < size) {
		const char *l = strstr(p, local), *q, *start;

		for (q = p; *q && (!l || q < l) && !view_path_start(in, q); q++)
			;
		if (*q == '/' && (!l || q < l)) {
			o = view_put(out, o, size, p, (size_t)(q - p));
			o = view_put(out, o, size, "[path]", 6);
			p = q + strcspn(q, " )'\",;");
		} else if (l) {
			/* "NAME (local, pid N)" or "uid N (local, pid N)", then maybe " [client]" */
			for (start = l; start > p && start[-1] != ' '; start--)
				;
			if (start - p >= 4 && strncmp(start - 4, "uid ", 4) == 0)
				start -= 4;
			o = view_put(out, o, size, p, (size_t)(start - p));
			o = view_put(out, o, size, "local admin", 11);
			q = strchr(l + 1, ')');
			p = q ? q + 1 : l + strlen(l);
			if (p[0] == ' ' && p[1] == '[' && strchr(p, ']'))
				p = strchr(p, ']') + 1;
		} else {
			o = view_put(out, o, size, p, strlen(p));
			break;
		}
	}
	out[o] = '\0';
}

json_t *view_console(json_t *con)
{
	static const char *const keep[] = { "name", "vm", "uuid", "alias", "device", "target",
					    "state", "watchers", "host" };
	const char *writer = json_string_value(json_object_get(con, "writer"));
	const char *access = json_string_value(json_object_get(con, "access"));
	json_t *o = json_object();
	char label[256];

	if (!o)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
		json_t *v = json_object_get(con, keep[i]);

		if (v && (json_is_string(v) || json_is_integer(v) || json_is_null(v)))
			json_object_set(o, keep[i], v);
	}
	/* The broker lists only consoles the key may use; without a verdict, say the least. */
	json_object_set_new(o, "access", json_string(streq_opt(access, "rw") ? "rw" : "ro"));
	if (writer)
		view_label(writer, label, sizeof(label));
	json_object_set_new(o, "writer", writer ? json_string(label) : json_null());
	return o;
}

json_t *view_consoles(json_t *consoles)
{
	json_t *out = json_array(), *con;
	size_t i;

	json_array_foreach(consoles, i, con)
		json_array_append_new(out, view_console(con));
	return out;
}

json_t *view_hosts(json_t *hosts)
{
	json_t *out = json_array(), *h;
	size_t i;

	json_array_foreach(hosts, i, h) {
		const char *error = json_string_value(json_object_get(h, "error"));
		json_t *o = json_pack("{s:s?, s:s?}", "name",
				      json_string_value(json_object_get(h, "name")), "state",
				      json_string_value(json_object_get(h, "state")));
		char why[256];

		if (o && error) {
			view_scrub(error, why, sizeof(why));
			json_object_set_new(o, "error", json_string(why));
		}
		json_array_append_new(out, o);
	}
	return out;
}

json_t *view_who(json_t *who)
{
	json_t *clients = json_array(), *cl;
	size_t i;

	json_array_foreach(json_object_get(who, "clients"), i, cl) {
		const char *user = json_string_value(json_object_get(cl, "user"));
		const char *role = json_string_value(json_object_get(cl, "role"));
		char label[256];

		view_label(user, label, sizeof(label));
		json_array_append_new(clients, json_pack("{s:s, s:s, s:O?}", "role",
							 role ? role : "?", "user", label, "since",
							 json_object_get(cl, "since")));
	}
	return json_pack("{s:s, s:o}", "type", "who", "clients", clients);
}
