/* SPDX-License-Identifier: MIT */
/*
 * Exec commands (see exec.h).
 */
#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "exec.h"
#include "listing.h"
#include "view.h"

static void exec_print_who(FILE *f, json_t *who, const char *eol)
{
	json_t *view = view_who(who);

	listing_print_who(f, view, eol);
	json_decref(view);
}

/* JSON for programs: "\n" whatever the terminal. */
static void exec_print_json(FILE *f, json_t *o, const char *eol)
{
	json_dumpf(o, f, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	fputc('\n', f);
}

static bool exec_is_who(const struct chan *c)
{
	return strncmp(c->exec, "who ", 4) == 0;
}

const char *exec_console(const struct chan *c)
{
	return c->state == CHAN_EXEC && exec_is_who(c) ? c->exec + 4 : NULL;
}

void exec_start(struct chan *c, const char *command)
{
	char cmd[CHAN_NAME_MAX + 64], *argv[5], *save = NULL;
	int argc = 0;

	if (command && strlen(command) >= sizeof(cmd)) {
		/* Never cut: a cut name could name another console. */
		chan_close(c, 2, "command too long (at most %zu bytes)", sizeof(cmd) - 1);
		return;
	}
	snprintf(cmd, sizeof(cmd), "%s", command ? command : "");
	for (char *t = strtok_r(cmd, " \t", &save); t && argc < 5; t = strtok_r(NULL, " \t", &save))
		argv[argc++] = t;
	if (chan_connect_broker(c) < 0)
		return;
	if (argc >= 1 && argc <= 2 && strcmp(argv[0], "list") == 0 &&
	    (argc == 1 || strcmp(argv[1], "--json") == 0)) {
		snprintf(c->exec, sizeof(c->exec), "%s", argc == 1 ? "list" : "list --json");
		c->state = CHAN_EXEC;
		chan_sent(c, front_list(&c->front, NULL));
	} else if (argc == 2 && strcmp(argv[0], "who") == 0) {
		snprintf(c->exec, sizeof(c->exec), "who %s", argv[1]);
		chan_asked(c);
		c->state = CHAN_EXEC;
		chan_sent(c, front_who(&c->front, argv[1]));
	} else if (argc >= 2 && argc <= 3 && strcmp(argv[0], "attach") == 0 &&
		   (argc == 2 || strcmp(argv[2], "--ro") == 0 || strcmp(argv[2], "--force") == 0)) {
		enum attach_mode mode = argc == 2 ? ATTACH_RW
					: strcmp(argv[2], "--ro") == 0 ? ATTACH_RO : ATTACH_FORCE;

		chan_start_attach(c, argv[1], mode, PROTO_REPLAY_DEFAULT);
	} else
		chan_close(c, 2, "unknown command; try: list [--json] | attach NAME [--ro|--force] | "
			   "who NAME");
}

void exec_reply(struct chan *c, const struct front_event *e)
{
	if (e->type == FRONT_EV_LIST && strcmp(c->exec, "list --json") == 0) {
		json_t *out = json_pack("{s:o}", "consoles",
					view_consoles(json_object_get(e->msg, "consoles")));

		if (out)
			chan_print(c, exec_print_json, out);
		json_decref(out);
		chan_close(c, 0, NULL);
	} else if (e->type == FRONT_EV_LIST && strcmp(c->exec, "list") == 0) {
		json_t *view = view_consoles(json_object_get(e->msg, "consoles"));

		chan_print(c, listing_print_front_consoles, view);
		json_decref(view);
		chan_close(c, 0, NULL);
	} else if (e->type == FRONT_EV_WHO && exec_is_who(c)) {
		chan_print(c, exec_print_who, e->msg);
		chan_close(c, 0, NULL);
	}
}
