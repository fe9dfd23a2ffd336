/* SPDX-License-Identifier: MIT */
/*
 * All consoles known to ttyhubd, whatever source defined them, with lookup
 * by name: "VM:ALIAS", "UUID:ALIAS", or "VM"/"UUID" for the VM's primary
 * console.  Also keeps the per-source errors (a domain XML file that does
 * not parse, a console refused at registration) so `ttyhub list` can show
 * them.
 *
 * Names mean one thing.  A name is resolved in a fixed order: an exact
 * console name, then a VM name (its primary console), then a canonical
 * UUID (any case) or "UUID:ALIAS"; more than one console at the first
 * level that matches is an error, never a guess.  registry_add() keeps the
 * levels apart: UUIDs must be canonical (8-4-4-4-12 hex digits), a VM may
 * not be named like a UUID, and one VM name belongs to one UUID and one
 * UUID to one VM name.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "console.h"

struct source_error {
	char *origin;
	char *console; /* the refused console's name, or NULL for an error of the source */
	char *message;
	TAILQ_ENTRY(source_error) entry;
};

struct registry {
	TAILQ_HEAD(, console) consoles;
	unsigned n_consoles;
	TAILQ_HEAD(, source_error) errors;
};

/*
 * Buffers console_new() escapes a VM name and an alias into.  log_escape()
 * keeps room for "..." there, so the longest escaped names kept whole are
 * 4 bytes shorter (_LEN); longer ones are refused, never cut.
 */
#define REGISTRY_VM_MAX 256
#define REGISTRY_ALIAS_MAX 128
#define REGISTRY_VM_LEN (REGISTRY_VM_MAX - 4)
#define REGISTRY_ALIAS_LEN (REGISTRY_ALIAS_MAX - 4)
/* Longest console name: "VM:ALIAS". */
#define REGISTRY_NAME_MAX (REGISTRY_VM_LEN + 1 + REGISTRY_ALIAS_LEN)

/*
 * Whether a VM name and alias (raw, as a source gives them; alias may be
 * NULL) fit the bounds once escaped for display.  Returns 0, or -ENAMETOOLONG
 * with the reason in err: names are refused, never cut.
 */
int registry_check_names(const char *vm, const char *alias, char *err, size_t errsz);

void registry_init(struct registry *r);
void registry_done(struct registry *r);
/*
 * Register c.  Returns 0, or with the reason in err (errsz bytes, text safe
 * to log and show):
 * -EINVAL   c's UUID is not canonical, or its VM name is a UUID;
 * -EEXIST   the console name, or the VM's primary console, is taken;
 * -ENOTUNIQ the VM name belongs to another UUID, the UUID to another VM
 *           name, or the VM name is another console's name (or vice versa).
 * On success any refusal recorded for c's origin and name is cleared.
 */
int registry_add(struct registry *r, struct console *c, char *err, size_t errsz);
void registry_remove(struct registry *r, struct console *c);
/*
 * Resolve a name (see the top of this file).  Returns 0 and *ret, -ENOENT,
 * -ENOTUNIQ (more than one console at the winning level: the caller says
 * "'NAME' is ambiguous" and names none of them), or -ENAMETOOLONG (longer
 * than any console name can be).
 */
int registry_lookup(struct registry *r, const char *name, struct console **ret);
/* registry_lookup(), NULL on any error. */
struct console *registry_find(struct registry *r, const char *name);
struct console *registry_find_exact(struct registry *r, const char *name);

/* The error of a source (replaces the previous one of that origin). */
void registry_set_error(struct registry *r, const char *origin, const char *message);
/* Forget every error of origin: its own and its refused consoles'. */
void registry_clear_error(struct registry *r, const char *origin);
/* A console of origin was refused (replaces the previous refusal of that console). */
void registry_set_refused(struct registry *r, const char *origin, const char *console,
			  const char *message);
void registry_clear_refused(struct registry *r, const char *origin, const char *console);
/* Forget the refusals of origin's consoles of one VM (escaped name): "VM" and "VM:ALIAS". */
void registry_clear_refused_vm(struct registry *r, const char *origin, const char *vm);

/*
 * How one client sees a console in a list: its object (a new reference, e.g.
 * console_list_json() with that client's rights), or NULL to leave it out
 * (the client may not see it).
 */
typedef json_t *(*registry_describe_fn)(void *userdata, const struct console *c);

/*
 * One piece of the console list, in list order (console->order: by VM, its
 * primary console first, then by name): the consoles after position `after`
 * (NULL: from the first) that describe() shows and whose JSON fits in budget
 * bytes, with the source errors in the first piece when with_errors.  "more"
 * is true when consoles remain; *last is the position to resume after
 * (borrowed from the registry or `after`).
 */
json_t *registry_list_piece(struct registry *r, const char *after, size_t budget,
			    bool with_errors, registry_describe_fn describe, void *userdata,
			    const char **last);
