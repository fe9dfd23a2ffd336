/* SPDX-License-Identifier: MIT */
/*
 * Exec commands (see exec.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "listing.h"
#include "log.h"
#include "view.h"

int exec_parse(const char *command, struct exec *ret)
{
	char cmd[EXEC_COMMAND_MAX], *argv[5], *save = NULL;
	int argc = 0;

	if (command && strlen(command) >= sizeof(cmd))
		return -E2BIG;
	snprintf(cmd, sizeof(cmd), "%s", command ? command : "");
	for (char *t = strtok_r(cmd, " \t", &save); t && argc < 5; t = strtok_r(NULL, " \t", &save))
		argv[argc++] = t;
	*ret = (struct exec){ .mode = ATTACH_RW };
	if (argc >= 1 && argc <= 2 && strcmp(argv[0], "list") == 0 &&
	    (argc == 1 || strcmp(argv[1], "--json") == 0))
		ret->verb = argc == 1 ? EXEC_LIST : EXEC_LIST_JSON;
	else if (argc == 2 && strcmp(argv[0], "who") == 0)
		ret->verb = EXEC_WHO;
	else if (argc >= 2 && argc <= 3 && strcmp(argv[0], "attach") == 0 &&
		 (argc == 2 || strcmp(argv[2], "--ro") == 0 || strcmp(argv[2], "--force") == 0)) {
		ret->verb = EXEC_ATTACH;
		if (argc == 3)
			ret->mode = strcmp(argv[2], "--ro") == 0 ? ATTACH_RO : ATTACH_FORCE;
	} else if (argc >= 2 && argc <= 3 && strcmp(argv[0], "web-link") == 0 &&
		   argv[1][0] != '-' && (argc == 2 || strcmp(argv[2], "--ro") == 0)) {
		/* "web-link --ro VM" is a mistake to say, not a console named "--ro". */
		ret->verb = EXEC_WEB_LINK;
		ret->mode = argc == 3 ? ATTACH_RO : ATTACH_RW;
	} else if (argc >= 2 && argc <= 3 && proto_action_from_string(argv[0]) >= 0 &&
		   argv[1][0] != '-' &&
		   (argc == 3) == (proto_action_from_string(argv[0]) == PROTO_ACTION_SYSRQ)) {
		ret->verb = EXEC_ACTION;
		ret->action = proto_action_from_string(argv[0]);
		if (argc == 3) {
			/* The broker judges the key; only something a JSON string carries goes. */
			if (strlen(argv[2]) >= sizeof(ret->key))
				return -EINVAL;
			for (const char *p = argv[2]; *p; p++)
				if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
					return -EINVAL;
			snprintf(ret->key, sizeof(ret->key), "%s", argv[2]);
		}
	} else
		return -EINVAL;
	if (argc >= 2)
		snprintf(ret->name, sizeof(ret->name), "%s", argv[1]);
	return 0;
}

static void exec_print_list(FILE *f, json_t *msg, const char *eol)
{
	json_t *view = view_consoles(json_object_get(msg, "consoles"));

	listing_print_front_consoles(f, view, eol);
	json_decref(view);
	view = view_hosts(json_object_get(msg, "hosts"));
	listing_print_hosts(f, view, eol);
	json_decref(view);
}

/* JSON for programs: "\n" whatever the terminal. */
static void exec_print_list_json(FILE *f, json_t *msg, const char *eol)
{
	json_t *out = json_pack("{s:o}", "consoles",
				view_consoles(json_object_get(msg, "consoles")));

	if (!out)
		return;
	/* On a gateway: which hosts answered (gateway.h). */
	if (json_object_get(msg, "hosts"))
		json_object_set_new(out, "hosts", view_hosts(json_object_get(msg, "hosts")));
	json_dumpf(out, f, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	fputc('\n', f);
	json_decref(out);
}

static void exec_print_who(FILE *f, json_t *msg, const char *eol)
{
	json_t *view = view_who(msg);

	listing_print_who(f, view, eol);
	json_decref(view);
}

/*
 * The link alone on its line, for a script or a copy-paste.  The broker
 * built it from its own --web-url, a token and a percent-encoded name: it is
 * printed only if it is plain printable ASCII, as a URL is.
 */
static void exec_print_web_link(FILE *f, json_t *msg, const char *eol)
{
	const char *url = json_string_value(json_object_get(msg, "url"));

	if (!url)
		return;
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return;
	fprintf(f, "%s%s", url, eol);
}

/* "sysrq h done on vm:serial0": the broker's names only (front.c keeps known ones). */
static void exec_print_action_done(FILE *f, json_t *msg, const char *eol)
{
	const char *action = json_string_value(json_object_get(msg, "action"));
	const char *key = json_string_value(json_object_get(msg, "key"));
	const char *console = json_string_value(json_object_get(msg, "console"));
	char name[600];

	if (proto_action_from_string(action) < 0)
		return;
	log_sanitize(console ? console : "", console ? strlen(console) : 0, name, sizeof(name));
	fprintf(f, "%s%s%s done on %s%s", action, proto_sysrq_key_valid(key) ? " " : "",
		proto_sysrq_key_valid(key) ? key : "", name, eol);
}

exec_print_fn *exec_printer(const struct exec *x, enum front_event_type type)
{
	if (type == FRONT_EV_ACTION_DONE && x->verb == EXEC_ACTION)
		return exec_print_action_done;
	if (type == FRONT_EV_LIST && x->verb == EXEC_LIST)
		return exec_print_list;
	if (type == FRONT_EV_LIST && x->verb == EXEC_LIST_JSON)
		return exec_print_list_json;
	if (type == FRONT_EV_WHO && x->verb == EXEC_WHO)
		return exec_print_who;
	if (type == FRONT_EV_WEB_LINK && x->verb == EXEC_WEB_LINK)
		return exec_print_web_link;
	return NULL;
}
