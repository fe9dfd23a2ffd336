/* SPDX-License-Identifier: MIT */
/*
 * Exec commands of an SSH channel ("ssh host list"), parsed (pure, no I/O):
 * list [--json], attach NAME [--ro|--force], who NAME, web-link NAME [--ro]
 * (a one-time link for a browser, docs/protocol.md), and the rescue actions
 * sysrq NAME KEY, nmi NAME, reset NAME, powerdown NAME (no confirmation:
 * the command is the confirmation; the broker checks the key's rights and
 * KEY).  The channel runs
 * them: it asks the broker, which answers for the key, prints the answer
 * with exec_printer() (as SSH users may see it: view.h) and closes with
 * status 0 (1 when the broker refuses), or 2 for a command that is not one
 * of these.
 */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "front.h"

/* Longest command: a console name of the longest the channel takes (CHAN_NAME_MAX), and words. */
#define EXEC_COMMAND_MAX (512 + 64)

enum exec_verb {
	EXEC_LIST,
	EXEC_LIST_JSON,
	EXEC_WHO,
	EXEC_ATTACH,
	EXEC_WEB_LINK,
	EXEC_ACTION,
};

struct exec {
	enum exec_verb verb;
	char name[EXEC_COMMAND_MAX];  /* WHO, ATTACH, WEB_LINK: the console named */
	enum attach_mode mode;        /* ATTACH: ATTACH_RW, or ATTACH_RO/ATTACH_FORCE; WEB_LINK: RW/RO */
	enum proto_action action;     /* ACTION */
	char key[8];                  /* ACTION sysrq: the key as typed (printable ASCII), else "" */
};

/*
 * 0 with *ret filled; -E2BIG for a command of EXEC_COMMAND_MAX bytes or
 * more (never cut: a cut name could name another console); -EINVAL for
 * anything that is not one of the commands.
 */
int exec_parse(const char *command, struct exec *ret);

/* Prints a broker answer (the event's message) for the user, lines ending in eol. */
typedef void exec_print_fn(FILE *f, json_t *msg, const char *eol);
/*
 * The printer for x's answer if an event of this type is one (LIST, WHO,
 * WEB_LINK, ACTION_DONE), else NULL.
 */
exec_print_fn *exec_printer(const struct exec *x, enum front_event_type type);
