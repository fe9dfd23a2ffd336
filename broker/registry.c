/* SPDX-License-Identifier: MIT */
/*
 * Console registry (see registry.h).  A linked list is enough: lookups
 * happen per request, not per byte, and hosts have hundreds of consoles,
 * not millions.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "registry.h"
#include "util.h"

void registry_init(struct registry *r)
{
	TAILQ_INIT(&r->consoles);
	TAILQ_INIT(&r->errors);
	r->n_consoles = 0;
}

void registry_done(struct registry *r)
{
	struct source_error *e;

	while ((e = TAILQ_FIRST(&r->errors))) {
		TAILQ_REMOVE(&r->errors, e, entry);
		free(e->origin);
		free(e->message);
		free(e);
	}
}

struct console *registry_find_exact(struct registry *r, const char *name)
{
	struct console *c;

	TAILQ_FOREACH(c, &r->consoles, entry)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

struct console *registry_find(struct registry *r, const char *name)
{
	const char *colon = strrchr(name, ':');
	struct console *c = registry_find_exact(r, name);

	if (c)
		return c;
	TAILQ_FOREACH(c, &r->consoles, entry) {
		/* "VM" or "UUID": the VM's primary console. */
		if (c->primary && (strcmp(c->vm, name) == 0 ||
				   (c->uuid && strcasecmp(c->uuid, name) == 0)))
			return c;
		/* "UUID:ALIAS" */
		if (colon && c->uuid && c->alias && strlen(c->uuid) == (size_t)(colon - name) &&
		    strncasecmp(c->uuid, name, (size_t)(colon - name)) == 0 &&
		    strcmp(c->alias, colon + 1) == 0)
			return c;
	}
	return NULL;
}

int registry_add(struct registry *r, struct console *c)
{
	struct console *o;

	struct console *before = NULL;

	TAILQ_FOREACH(o, &r->consoles, entry) {
		if (strcmp(o->name, c->name) == 0)
			return -EEXIST;
		if (c->primary && o->primary && strcmp(o->vm, c->vm) == 0)
			return -EEXIST;
		if (!before && strcmp(o->order, c->order) > 0)
			before = o;
	}
	/* Kept in list order: a list sent in pieces resumes after a position. */
	if (before)
		TAILQ_INSERT_BEFORE(before, c, entry);
	else
		TAILQ_INSERT_TAIL(&r->consoles, c, entry);
	r->n_consoles++;
	return 0;
}

void registry_remove(struct registry *r, struct console *c)
{
	TAILQ_REMOVE(&r->consoles, c, entry);
	r->n_consoles--;
}

void registry_clear_error(struct registry *r, const char *origin)
{
	struct source_error *e;

	TAILQ_FOREACH(e, &r->errors, entry)
		if (strcmp(e->origin, origin) == 0) {
			TAILQ_REMOVE(&r->errors, e, entry);
			free(e->origin);
			free(e->message);
			free(e);
			return;
		}
}

void registry_set_error(struct registry *r, const char *origin, const char *message)
{
	struct source_error *e;

	registry_clear_error(r, origin);
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->origin = strdup(origin);
	e->message = strdup(message);
	if (!e->origin || !e->message) {
		free(e->origin);
		free(e->message);
		free(e);
		return;
	}
	TAILQ_INSERT_TAIL(&r->errors, e, entry);
}

/* Bytes of compact JSON o takes. */
static size_t json_size(json_t *o)
{
	return json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_ENSURE_ASCII);
}

json_t *registry_list_piece(struct registry *r, const char *after, size_t budget,
			    const char **last)
{
	json_t *msg, *consoles, *errors;
	struct source_error *e;
	struct console *c;
	size_t used = 0;

	msg = json_pack("{s:s, s:[], s:[], s:b}", "type", "list", "consoles", "errors", "more", 0);
	if (!msg)
		return NULL;
	consoles = json_object_get(msg, "consoles");
	errors = json_object_get(msg, "errors");
	*last = after;
	if (!after)
		TAILQ_FOREACH(e, &r->errors, entry) {
			json_t *o = json_pack("{s:s, s:s}", "origin", e->origin, "message",
					      e->message);
			size_t n = o ? json_size(o) + 1 : 0;

			if (!o || used + n > budget / 2) {
				json_decref(o);
				break;
			}
			used += n;
			json_array_append_new(errors, o);
		}
	TAILQ_FOREACH(c, &r->consoles, entry) {
		json_t *o;
		size_t n;

		if (after && strcmp(c->order, after) <= 0)
			continue;
		o = console_list_json(c);
		if (!o)
			continue;
		n = json_size(o) + 1;
		if (used + n > budget && json_array_size(consoles) > 0) {
			json_decref(o);
			json_object_set_new(msg, "more", json_true());
			break;
		}
		*last = c->order;
		if (used + n <= budget) {
			used += n;
			json_array_append_new(consoles, o);
		} else {
			log_warning("console %s: its description does not fit in a frame", c->name);
			json_decref(o);
		}
	}
	return msg;
}
