/* SPDX-License-Identifier: MIT */
/*
 * The console menu (see menu.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "menu.h"
#include "view.h"

#define MENU_MAX 64
/* Longest console name shown: as the channel's (CHAN_NAME_MAX), past the broker's longest. */
#define MENU_NAME_MAX 512

void menu_init(struct menu *m, const struct menu_ops *ops, void *userdata)
{
	*m = (struct menu){ .ops = ops, .userdata = userdata };
}

void menu_done(struct menu *m)
{
	json_decref(m->list);
	m->list = NULL;
}

static void menu_say(struct menu *m, const char *text)
{
	m->ops->say(m->userdata, text, strlen(text));
}

/* On a gateway: a line for each host that did not answer (gateway.h). */
static void menu_say_hosts(struct menu *m, json_t *list, const char *eol)
{
	json_t *hosts = view_hosts(json_object_get(list, "hosts")), *h;
	char line[MENU_NAME_MAX + 384], name[MENU_NAME_MAX];
	size_t i;

	json_array_foreach(hosts, i, h) {
		const char *n = json_string_value(json_object_get(h, "name")) ?: "?";
		const char *why = json_string_value(json_object_get(h, "error")) ?: "";

		if (streq_opt(json_string_value(json_object_get(h, "state")), "up"))
			continue;
		snprintf(line, sizeof(line), "  host %s: unreachable (%s)%s",
			 log_sanitize(n, strlen(n), name, sizeof(name)), why, eol);
		menu_say(m, line);
	}
	json_decref(hosts);
}

void menu_show(struct menu *m, json_t *list, const char *eol)
{
	json_t *allowed = view_consoles(json_object_get(list, "consoles")), *con;
	char line[MENU_NAME_MAX + 128];
	size_t i;

	json_decref(m->list);
	m->list = NULL;
	if (json_array_size(allowed) == 0) {
		json_decref(allowed);
		menu_say_hosts(m, list, eol);
		m->ops->close(m->userdata, 1, "no consoles are available to your key");
		return;
	}
	snprintf(line, sizeof(line), "ttyhub: consoles you may use:%s", eol);
	menu_say(m, line);
	while (json_array_size(allowed) > MENU_MAX)
		json_array_remove(allowed, MENU_MAX);
	json_array_foreach(allowed, i, con) {
		const char *name = json_string_value(json_object_get(con, "name"));
		char esc[MENU_NAME_MAX];

		snprintf(line, sizeof(line), "  %2zu) %-28s %-10s %s%s", i + 1,
			 log_sanitize(name ? name : "?", name ? strlen(name) : 1, esc, sizeof(esc)),
			 json_string_value(json_object_get(con, "state")),
			 json_string_value(json_object_get(con, "access")), eol);
		menu_say(m, line);
	}
	m->list = allowed;
	menu_say_hosts(m, list, eol);
	menu_say(m, "Select a console (number or name, q to quit): ");
	m->line_len = 0;
}

static const char *menu_name(const struct menu *m, size_t i)
{
	return json_string_value(json_object_get(json_array_get(m->list, i), "name")) ?: "";
}

/* The line is complete: a number, a name, or q.  Returns true if the menu ended. */
static bool menu_choose(struct menu *m)
{
	static const char again[] = "No such choice. Number or name (q to quit): ";
	size_t n_menu = json_array_size(m->list);
	unsigned long n;
	char *end;

	m->ops->say(m->userdata, "\r\n", 2);
	m->line[m->line_len] = '\0';
	n = strtoul(m->line, &end, 10);
	if (strcmp(m->line, "q") == 0) {
		m->ops->close(m->userdata, 0, NULL);
		return true;
	}
	if (*end == '\0' && end != m->line && n >= 1 && n <= n_menu) {
		m->ops->choose(m->userdata, menu_name(m, n - 1));
		return true;
	}
	for (size_t k = 0; k < n_menu; k++)
		if (strcmp(m->line, menu_name(m, k)) == 0) {
			m->ops->choose(m->userdata, menu_name(m, k));
			return true;
		}
	m->ops->say(m->userdata, again, sizeof(again) - 1);
	m->line_len = 0;
	return false;
}

size_t menu_keys(struct menu *m, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t ch = data[i];

		if (ch == '\r' || ch == '\n') {
			if (menu_choose(m))
				break;
		} else if (ch == 0x03 || ch == 0x04) {
			m->ops->close(m->userdata, 0, NULL);
			break;
		} else if ((ch == 0x7f || ch == 0x08) && m->line_len > 0) {
			m->line_len--;
			m->ops->say(m->userdata, "\b \b", 3);
		} else if (ch >= 0x20 && ch < 0x7f && m->line_len < sizeof(m->line) - 1) {
			m->line[m->line_len++] = (char)ch;
			m->ops->say(m->userdata, (const char *)&ch, 1);
		}
	}
	return len;
}
