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

	TAILQ_FOREACH(o, &r->consoles, entry) {
		if (strcmp(o->name, c->name) == 0)
			return -EEXIST;
		if (c->primary && o->primary && strcmp(o->vm, c->vm) == 0)
			return -EEXIST;
	}
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

json_t *registry_list_json(struct registry *r)
{
	json_t *consoles = json_array(), *errors = json_array();
	struct source_error *e;
	struct console *c;

	if (!consoles || !errors) {
		json_decref(consoles);
		json_decref(errors);
		return NULL;
	}
	TAILQ_FOREACH(c, &r->consoles, entry)
		json_array_append_new(consoles, console_list_json(c));
	TAILQ_FOREACH(e, &r->errors, entry)
		json_array_append_new(errors, json_pack("{s:s, s:s}", "origin", e->origin,
							"message", e->message));
	return json_pack("{s:s, s:o, s:o}", "type", "list", "consoles", consoles, "errors", errors);
}
