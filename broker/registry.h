/* SPDX-License-Identifier: MIT */
/*
 * All consoles known to ttyhubd, whatever source defined them, with lookup
 * by name: "VM:ALIAS", "UUID:ALIAS", or "VM"/"UUID" for the VM's primary
 * console.  Also keeps the per-source errors (a domain XML file that does
 * not parse) so `ttyhub list` can show them.
 */
#pragma once

#include <jansson.h>
#include <sys/queue.h>

#include "console.h"

struct source_error {
	char *origin;
	char *message;
	TAILQ_ENTRY(source_error) entry;
};

struct registry {
	TAILQ_HEAD(, console) consoles;
	unsigned n_consoles;
	TAILQ_HEAD(, source_error) errors;
};

void registry_init(struct registry *r);
void registry_done(struct registry *r);
/* -EEXIST if the name (or the VM's primary name) is taken. */
int registry_add(struct registry *r, struct console *c);
void registry_remove(struct registry *r, struct console *c);
struct console *registry_find(struct registry *r, const char *name);
struct console *registry_find_exact(struct registry *r, const char *name);

void registry_set_error(struct registry *r, const char *origin, const char *message);
void registry_clear_error(struct registry *r, const char *origin);

/*
 * One piece of the console list, in list order (console->order: by VM, its
 * primary console first, then by name): the consoles after position `after`
 * (NULL: from the first) whose JSON fits in budget bytes, with the source
 * errors in the first piece.  "more" is true when consoles remain; *last is
 * the position to resume after (borrowed from the registry or `after`).
 */
json_t *registry_list_piece(struct registry *r, const char *after, size_t budget,
			    const char **last);
