/* SPDX-License-Identifier: MIT */
/*
 * Console registry (see registry.h).  A linked list is enough: lookups
 * happen per request, not per byte, and hosts have hundreds of consoles,
 * not millions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "message.h"
#include "registry.h"
#include "util.h"

/*
 * Length of s once escaped as console names are.  log_escape() keeps room for
 * "..." and the NUL, so 4 bytes a byte plus 5 always holds the whole escape.
 */
static int escaped_len(const char *s, size_t *ret)
{
	size_t n = strlen(s);
	char *buf = malloc(4 * n + 5);

	if (!buf)
		return -ENOMEM;
	log_escape(s, n, buf, 4 * n + 5);
	*ret = strlen(buf);
	free(buf);
	return 0;
}

int registry_check_names(const char *vm, const char *alias, char *err, size_t errsz)
{
	char esc[64];
	size_t n;
	int r;

	r = escaped_len(vm, &n);
	if (r < 0)
		return r;
	if (n > REGISTRY_VM_LEN) {
		snprintf(err, errsz, "VM name %s is too long (%zu bytes escaped, at most %d)",
			 log_escape(vm, strlen(vm), esc, sizeof(esc)), n, REGISTRY_VM_LEN);
		return -ENAMETOOLONG;
	}
	if (!alias)
		return 0;
	r = escaped_len(alias, &n);
	if (r < 0)
		return r;
	if (n > REGISTRY_ALIAS_LEN) {
		snprintf(err, errsz, "alias %s is too long (%zu bytes escaped, at most %d)",
			 log_escape(alias, strlen(alias), esc, sizeof(esc)), n, REGISTRY_ALIAS_LEN);
		return -ENAMETOOLONG;
	}
	return 0;
}

static void error_free(struct source_error *e)
{
	free(e->origin);
	free(e->console);
	free(e->message);
	free(e);
}

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
		error_free(e);
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

/* Name resolution levels, in order of precedence. */
enum lookup_level { LOOKUP_NAME, LOOKUP_VM, LOOKUP_UUID, _LOOKUP_MAX };

static bool lookup_matches(const struct console *c, const char *name, enum lookup_level level)
{
	const char *colon;

	switch (level) {
	case LOOKUP_NAME:
		return strcmp(c->name, name) == 0;
	case LOOKUP_VM:
		return c->primary && strcmp(c->vm, name) == 0;
	case LOOKUP_UUID:
		if (!c->uuid)
			return false;
		/* "UUID": the primary console; "UUID:ALIAS": that console. */
		if (uuid_is_canonical(name))
			return c->primary && strcasecmp(c->uuid, name) == 0;
		colon = name + UUID_STRING_LEN;
		return uuid_is_canonical_n(name, strnlen(name, UUID_STRING_LEN)) &&
		       *colon == ':' && c->alias && strncasecmp(c->uuid, name, UUID_STRING_LEN) == 0 &&
		       strlen(c->uuid) == UUID_STRING_LEN && strcmp(c->alias, colon + 1) == 0;
	default:
		return false;
	}
}

int registry_lookup(struct registry *r, const char *name, struct console **ret)
{
	if (strnlen(name, REGISTRY_NAME_MAX + 1) > REGISTRY_NAME_MAX)
		return -ENAMETOOLONG;
	for (enum lookup_level level = 0; level < _LOOKUP_MAX; level++) {
		struct console *c, *found = NULL;

		TAILQ_FOREACH(c, &r->consoles, entry) {
			if (!lookup_matches(c, name, level))
				continue;
			if (found)
				return -ENOTUNIQ;
			found = c;
		}
		if (found) {
			*ret = found;
			return 0;
		}
	}
	return -ENOENT;
}

struct console *registry_find(struct registry *r, const char *name)
{
	struct console *c;

	return registry_lookup(r, name, &c) < 0 ? NULL : c;
}

static bool uuid_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcasecmp(a, b) == 0);
}

/* The reason o and c cannot both be registered, or 0. */
static int registry_conflict(const struct console *o, const struct console *c, char *err,
			     size_t errsz)
{
	const char *from = o->origin ? o->origin : "?";
	char uuid[3 * UUID_STRING_LEN];

	if (strcmp(o->name, c->name) == 0) {
		snprintf(err, errsz, "console %s is already defined (by %s)", c->name, from);
		return -EEXIST;
	}
	if (c->primary && o->primary && strcmp(o->vm, c->vm) == 0) {
		snprintf(err, errsz, "VM %s already has a primary console, %s (from %s)", c->vm,
			 o->name, from);
		return -EEXIST;
	}
	if (strcmp(o->vm, c->vm) == 0 && !uuid_eq(o->uuid, c->uuid)) {
		log_escape(o->uuid ? o->uuid : "none", strlen(o->uuid ? o->uuid : "none"), uuid,
			   sizeof(uuid));
		snprintf(err, errsz, "VM name %s is already used by the VM with UUID %s (from %s)",
			 c->vm, uuid, from);
		return -ENOTUNIQ;
	}
	if (c->uuid && o->uuid && strcasecmp(o->uuid, c->uuid) == 0 && strcmp(o->vm, c->vm) != 0) {
		log_escape(c->uuid, strlen(c->uuid), uuid, sizeof(uuid));
		snprintf(err, errsz, "UUID %s is already used by VM %s (from %s)", uuid, o->vm,
			 from);
		return -ENOTUNIQ;
	}
	if ((c->uuid && strcasecmp(o->vm, c->uuid) == 0) ||
	    (o->uuid && strcasecmp(c->vm, o->uuid) == 0)) {
		snprintf(err, errsz, "VM %s: its name or UUID is the other's of VM %s (from %s)",
			 c->vm, o->vm, from);
		return -ENOTUNIQ;
	}
	if (strcmp(o->vm, c->vm) != 0 && (strcmp(c->vm, o->name) == 0 || strcmp(c->name, o->vm) == 0)) {
		snprintf(err, errsz, "console %s of VM %s: a name of console %s of VM %s (from %s)",
			 c->name, c->vm, o->name, o->vm, from);
		return -ENOTUNIQ;
	}
	return 0;
}

int registry_add(struct registry *r, struct console *c, char *err, size_t errsz)
{
	struct console *o, *before = NULL;
	char uuid[3 * UUID_STRING_LEN];
	int k;

	if (c->uuid && !uuid_is_canonical(c->uuid)) {
		log_escape(c->uuid, strlen(c->uuid), uuid, sizeof(uuid));
		snprintf(err, errsz, "VM %s: UUID %s is not canonical (8-4-4-4-12 hex digits)",
			 c->vm, uuid);
		return -EINVAL;
	}
	if (uuid_is_canonical(c->vm)) {
		snprintf(err, errsz, "VM name %s is a UUID; a VM may not be named like one", c->vm);
		return -EINVAL;
	}
	TAILQ_FOREACH(o, &r->consoles, entry) {
		k = registry_conflict(o, c, err, errsz);
		if (k < 0)
			return k;
		if (!before && strcmp(o->order, c->order) > 0)
			before = o;
	}
	/* Kept in list order: a list sent in pieces resumes after a position. */
	if (before)
		TAILQ_INSERT_BEFORE(before, c, entry);
	else
		TAILQ_INSERT_TAIL(&r->consoles, c, entry);
	r->n_consoles++;
	if (c->origin)
		registry_clear_refused(r, c->origin, c->name);
	return 0;
}

void registry_remove(struct registry *r, struct console *c)
{
	TAILQ_REMOVE(&r->consoles, c, entry);
	r->n_consoles--;
}

/* Which errors of an origin registry_drop() removes. */
enum registry_drop_what {
	DROP_ALL,     /* every one: the source's own and its refused consoles' */
	DROP_CONSOLE, /* the one about console (NULL: the source's own) */
	DROP_VM,      /* the refusals of VM's consoles: "VM" and "VM:ALIAS" */
};

static bool registry_drop_matches(const struct source_error *e, enum registry_drop_what what,
				  const char *name)
{
	size_t n;

	switch (what) {
	case DROP_ALL:
		return true;
	case DROP_CONSOLE:
		return streq_opt(e->console, name);
	case DROP_VM:
		n = strlen(name);
		return e->console && strncmp(e->console, name, n) == 0 &&
		       (!e->console[n] || e->console[n] == ':');
	}
	return false;
}

static void registry_drop(struct registry *r, const char *origin, enum registry_drop_what what,
			  const char *name)
{
	struct source_error *e, *next;

	for (e = TAILQ_FIRST(&r->errors); e; e = next) {
		next = TAILQ_NEXT(e, entry);
		if (strcmp(e->origin, origin) != 0 || !registry_drop_matches(e, what, name))
			continue;
		TAILQ_REMOVE(&r->errors, e, entry);
		error_free(e);
	}
}

void registry_clear_error(struct registry *r, const char *origin)
{
	registry_drop(r, origin, DROP_ALL, NULL);
}

void registry_clear_refused(struct registry *r, const char *origin, const char *console)
{
	registry_drop(r, origin, DROP_CONSOLE, console);
}

void registry_clear_refused_vm(struct registry *r, const char *origin, const char *vm)
{
	registry_drop(r, origin, DROP_VM, vm);
}

static void registry_put(struct registry *r, const char *origin, const char *console,
			 const char *message)
{
	struct source_error *e;

	registry_drop(r, origin, DROP_CONSOLE, console);
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->origin = strdup(origin);
	e->console = console ? strdup(console) : NULL;
	e->message = strdup(message);
	if (!e->origin || !e->message || (console && !e->console)) {
		error_free(e);
		return;
	}
	TAILQ_INSERT_TAIL(&r->errors, e, entry);
}

void registry_set_error(struct registry *r, const char *origin, const char *message)
{
	registry_put(r, origin, NULL, message);
}

void registry_set_refused(struct registry *r, const char *origin, const char *console,
			  const char *message)
{
	registry_put(r, origin, console, message);
}

/* Bytes of compact JSON o takes. */
static size_t json_size(json_t *o)
{
	return json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_ENSURE_ASCII);
}

json_t *registry_list_piece(struct registry *r, const char *after, size_t budget,
			    bool with_errors, registry_describe_fn describe, void *userdata,
			    const char **last)
{
	json_t *msg;
	struct source_error *e;
	struct console *c;
	size_t used = 0;

	msg = proto_msg_list();
	if (!msg)
		return NULL;
	*last = after;
	if (!after && with_errors)
		TAILQ_FOREACH(e, &r->errors, entry) {
			json_t *o = proto_list_error(e->origin, e->message);
			size_t n = o ? json_size(o) + 1 : 0;

			if (!o || used + n > budget / 2) {
				json_decref(o);
				break;
			}
			used += n;
			proto_list_add_error(msg, o);
		}
	TAILQ_FOREACH(c, &r->consoles, entry) {
		json_t *o;
		size_t n;

		if (after && strcmp(c->order, after) <= 0)
			continue;
		o = describe(userdata, c);
		if (!o)
			continue;
		n = json_size(o) + 1;
		if (used + n > budget && json_array_size(json_object_get(msg, "consoles")) > 0) {
			json_decref(o);
			proto_list_set_more(msg, true);
			break;
		}
		*last = c->order;
		if (used + n <= budget) {
			used += n;
			proto_list_add_console(msg, o);
		} else {
			log_warning("console %s: its description does not fit in a frame", c->name);
			json_decref(o);
		}
	}
	return msg;
}
