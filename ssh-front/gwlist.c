/* SPDX-License-Identifier: MIT */
/*
 * Console names on a gateway (see gwlist.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gwlist.h"

int gwlist_split(const char *name, char host[static HOSTS_NAME_MAX], const char **ret_rest)
{
	const char *slash = strchr(name, '/');
	size_t n;

	if (!slash)
		return 0;
	n = (size_t)(slash - name);
	if (n == 0 || n >= HOSTS_NAME_MAX || slash[1] == '\0')
		return -EINVAL;
	memcpy(host, name, n);
	host[n] = '\0';
	*ret_rest = slash + 1;
	return 1;
}

static const char *member(json_t *c, const char *key)
{
	return json_string_value(json_object_get(c, key));
}

static bool eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* "UUID" or "UUID:ALIAS" against the console's UUID (any case) and alias. */
static bool uuid_matches(json_t *c, const char *name)
{
	const char *uuid = member(c, "uuid"), *colon;
	size_t n;

	if (!uuid)
		return false;
	n = strlen(uuid);
	if (strncasecmp(name, uuid, n) != 0)
		return false;
	if (name[n] == '\0')
		return true;
	colon = name + n;
	return *colon == ':' && eq(colon + 1, member(c, "alias"));
}

bool gwlist_matches(json_t *c, const char *name)
{
	if (eq(name, member(c, "name")))
		return true;
	if (eq(name, member(c, "vm")) && json_is_true(json_object_get(c, "primary")))
		return true;
	return uuid_matches(c, name);
}

/* Add "HOST/NAME" to choices, or "..." once it does not fit. */
static void choices_add(char *choices, size_t size, const char *host, const char *name)
{
	size_t len = strlen(choices);
	int n;

	if (len + 4 >= size || (len >= 3 && strcmp(choices + len - 3, "...") == 0))
		return;
	n = snprintf(choices + len, size - len, "%s%s/%s", len ? ", " : "", host, name);
	if (n < 0 || (size_t)n >= size - len)
		snprintf(choices + len, size - len, "%s...", len ? ", " : "");
}

int gwlist_resolve(json_t *const *lists, const char *const *names, size_t n, const char *name,
		   char *choices, size_t size)
{
	int found = -ENOENT;
	size_t i, j;
	json_t *c;

	if (size > 0)
		choices[0] = '\0';
	for (i = 0; i < n; i++) {
		bool here = false;

		json_array_foreach(lists[i], j, c) {
			if (!gwlist_matches(c, name))
				continue;
			here = true;
			if (size > 0)
				choices_add(choices, size, names[i], member(c, "name") ?: "?");
		}
		if (here)
			found = found == -ENOENT ? (int)i : -ENOTUNIQ;
	}
	return found;
}

static int qualify_member(json_t *o, const char *key, const char *host)
{
	const char *s = member(o, key);
	char *q;
	int r;

	if (!s)
		return 0;
	if (asprintf(&q, "%s/%s", host, s) < 0)
		return -ENOMEM;
	r = json_object_set_new(o, key, json_string(q));
	free(q);
	return r < 0 ? -ENOMEM : 0;
}

static int qualify_console(json_t *c, const char *host)
{
	if (qualify_member(c, "name", host) < 0 ||
	    json_object_set_new(c, "host", json_string(host)) < 0)
		return -ENOMEM;
	return 0;
}

int gwlist_merge(json_t *merged, const char *host, json_t *consoles)
{
	json_t *c, *copy;
	size_t i;

	json_array_foreach(consoles, i, c) {
		if (!json_is_object(c))
			continue;
		copy = json_deep_copy(c);
		if (!copy || qualify_console(copy, host) < 0 || json_array_append_new(merged, copy) < 0)
			return -ENOMEM;
	}
	return 0;
}

int gwlist_qualify(json_t *msg, const char *host)
{
	json_t *consoles = json_object_get(msg, "consoles"), *c;
	size_t i;

	if (qualify_member(msg, "console", host) < 0)
		return -ENOMEM;
	if (!eq(member(msg, "type"), "list") || !json_is_array(consoles))
		return 0;
	json_array_foreach(consoles, i, c)
		if (json_is_object(c) && qualify_console(c, host) < 0)
			return -ENOMEM;
	return 0;
}
