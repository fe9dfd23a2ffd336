/* SPDX-License-Identifier: MIT */
/*
 * Console list and who tables (see listing.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "listing.h"
#include "log.h"

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "-";
}

static void cell(FILE *f, const char *s, int width)
{
	char esc[512];

	fprintf(f, "%-*s", width, log_sanitize(s, strlen(s), esc, sizeof(esc)));
}

int listing_collect(json_t **acc, json_t *piece)
{
	json_t *consoles = json_object_get(piece, "consoles");
	json_t *errors = json_object_get(piece, "errors");
	json_t *hosts = json_object_get(piece, "hosts"); /* a gateway's (gateway.h) */
	bool more = json_is_true(json_object_get(piece, "more"));
	int r = 0;

	if (!json_is_array(consoles) || (errors && !json_is_array(errors)) ||
	    (hosts && !json_is_array(hosts)))
		r = -EBADMSG;
	else if (!*acc && !(*acc = json_pack("{s:s, s:[], s:[], s:i}", "type", "list", "consoles",
					      "errors", "pieces", 0)))
		r = -ENOMEM;
	else if (json_array_size(json_object_get(*acc, "consoles")) + json_array_size(consoles) +
		 json_array_size(json_object_get(*acc, "errors")) + json_array_size(errors) +
		 json_array_size(json_object_get(*acc, "hosts")) + json_array_size(hosts) >
		 LISTING_MAX_CONSOLES)
		r = -E2BIG;
	else if (json_integer_value(json_object_get(*acc, "pieces")) >= LISTING_MAX_PIECES)
		r = -E2BIG;
	else if (json_object_set_new(*acc, "pieces",
				     json_integer(json_integer_value(json_object_get(*acc, "pieces")) + 1)) < 0)
		r = -ENOMEM;
	else if (json_array_extend(json_object_get(*acc, "consoles"), consoles) < 0 ||
		 (errors && json_array_extend(json_object_get(*acc, "errors"), errors) < 0))
		r = -ENOMEM;
	else if (hosts && !json_object_get(*acc, "hosts") &&
		 json_object_set_new(*acc, "hosts", json_array()) < 0)
		r = -ENOMEM;
	else if (hosts && json_array_extend(json_object_get(*acc, "hosts"), hosts) < 0)
		r = -ENOMEM;
	if (r < 0) {
		json_decref(*acc);
		*acc = NULL;
		return r;
	}
	return more ? 1 : 0;
}

/*
 * The console table.  A front's view (front) has no BACKEND column and no
 * status text (which may name host paths), and shows the key's ACCESS.
 */
static void listing_print_rows(FILE *f, json_t *consoles, bool front, const char *eol)
{
	json_t *c;
	size_t i;

	if (front)
		fprintf(f, "%-28s %-11s %-18s %-6s %-8s %s%s", "NAME", "STATE", "DEVICE",
			"ACCESS", "WATCHERS", "WRITER", eol);
	else
		fprintf(f, "%-28s %-11s %-7s %-18s %-8s %s%s", "NAME", "STATE", "BACKEND",
			"DEVICE", "WATCHERS", "WRITER / STATUS", eol);
	json_array_foreach(consoles, i, c) {
		const char *writer = json_string_value(json_object_get(c, "writer"));
		json_t *target = json_object_get(c, "target");
		char device[512];

		snprintf(device, sizeof(device), "%s%s%s", str(c, "device"),
			 json_is_string(target) ? "/" : "", json_is_string(target) ? str(c, "target") : "");
		cell(f, str(c, "name"), 28);
		fputc(' ', f);
		cell(f, str(c, "state"), 11);
		fputc(' ', f);
		if (!front) {
			cell(f, str(c, "backend"), 7);
			fputc(' ', f);
		}
		cell(f, device, 18);
		if (front) {
			fputc(' ', f);
			cell(f, str(c, "access"), 6);
		}
		fprintf(f, " %-8lld ", (long long)json_integer_value(json_object_get(c, "watchers")));
		cell(f, writer ? writer : front ? "-" : str(c, "status"), 0);
		fputs(eol, f);
	}
	if (json_array_size(consoles) == 0)
		fprintf(f, "(no consoles)%s", eol);
}

void listing_print_consoles(FILE *f, json_t *consoles, json_t *errors, const char *eol)
{
	json_t *c;
	size_t i;

	listing_print_rows(f, consoles, false, eol);
	json_array_foreach(errors, i, c) {
		fputs("error: ", f);
		cell(f, str(c, "origin"), 0);
		fputs(": ", f);
		cell(f, str(c, "message"), 0);
		fputs(eol, f);
	}
}

void listing_print_front_consoles(FILE *f, json_t *consoles, const char *eol)
{
	listing_print_rows(f, consoles, true, eol);
}

void listing_print_hosts(FILE *f, json_t *hosts, const char *eol)
{
	json_t *h;
	size_t i;
	char name[256], why[512];

	json_array_foreach(hosts, i, h) {
		const char *state = str(h, "state");

		if (strcmp(state, "up") == 0)
			continue;
		log_sanitize(str(h, "name"), strlen(str(h, "name")), name, sizeof(name));
		log_sanitize(str(h, "error"), strlen(str(h, "error")), why, sizeof(why));
		fprintf(f, "%s: unreachable (%s)%s", name, why, eol);
	}
}

void listing_print_who(FILE *f, json_t *who, const char *eol)
{
	json_t *clients = json_object_get(who, "clients"), *c;
	size_t i;

	fprintf(f, "%-8s %s%s", "ROLE", "USER", eol);
	json_array_foreach(clients, i, c) {
		json_t *pid = json_object_get(c, "pid");

		fprintf(f, "%-8s ", str(c, "role"));
		cell(f, str(c, "user"), 0);
		/* Given to local admins only: the local peer's user name and pid. */
		if (json_is_string(json_object_get(c, "login")) && json_is_integer(pid)) {
			fputs(" (", f);
			cell(f, str(c, "login"), 0);
			fprintf(f, ", pid %lld)", (long long)json_integer_value(pid));
		}
		fputs(eol, f);
	}
	if (json_array_size(clients) == 0)
		fprintf(f, "(nobody attached)%s", eol);
}
