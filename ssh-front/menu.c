/* SPDX-License-Identifier: MIT */
/*
 * The console menu (see menu.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "log.h"
#include "menu.h"
#include "session.h"
#include "sshd.h"
#include "view.h"

#define MENU_MAX 64

static int menu_on_timeout(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct chan *c = userdata;
	struct session *s = c->session;

	if (c->state == CHAN_MENU) {
		chan_close(c, 1, "no console chosen in %u seconds; closing",
			   s->sshd->config.menu_timeout_s);
		chan_pump(c); /* may free c */
		session_update_events(s);
	}
	return 0;
}

/* (Re)start the menu's idle timer. */
static void menu_touch(struct chan *c)
{
	uint64_t usec = (uint64_t)c->session->sshd->config.menu_timeout_s * 1000000;

	if (!c->menu_timer) {
		if (sd_event_add_time_relative(c->session->sshd->event, &c->menu_timer,
					       CLOCK_MONOTONIC, usec, 0, menu_on_timeout, c) < 0)
			chan_close(c, 1, "cannot show the menu (out of resources)");
		return;
	}
	sd_event_source_set_time_relative(c->menu_timer, usec);
	sd_event_source_set_enabled(c->menu_timer, SD_EVENT_ONESHOT);
}

void menu_start(struct chan *c)
{
	c->state = CHAN_MENU;
	chan_sent(c, front_list(&c->front, NULL));
}

void menu_show(struct chan *c, json_t *list)
{
	json_t *allowed = view_consoles(json_object_get(list, "consoles")), *con;
	char line[CHAN_NAME_MAX + 128];
	size_t i;

	json_decref(c->menu);
	c->menu = NULL;
	if (json_array_size(allowed) == 0) {
		json_decref(allowed);
		chan_close(c, 1, "no consoles are available to your key");
		return;
	}
	snprintf(line, sizeof(line), "ttyhub: consoles you may use:%s", chan_eol(c));
	chan_say(c, line, strlen(line));
	while (json_array_size(allowed) > MENU_MAX)
		json_array_remove(allowed, MENU_MAX);
	json_array_foreach(allowed, i, con) {
		const char *name = json_string_value(json_object_get(con, "name"));
		char esc[CHAN_NAME_MAX];

		snprintf(line, sizeof(line), "  %2zu) %-28s %-10s %s%s", i + 1,
			 log_sanitize(name ? name : "?", name ? strlen(name) : 1, esc, sizeof(esc)),
			 json_string_value(json_object_get(con, "state")),
			 json_string_value(json_object_get(con, "access")), chan_eol(c));
		chan_say(c, line, strlen(line));
	}
	c->menu = allowed;
	snprintf(line, sizeof(line), "Select a console (number or name, q to quit): ");
	chan_say(c, line, strlen(line));
	c->state = CHAN_MENU;
	c->line_len = 0;
	menu_touch(c);
}

static const char *menu_name(const struct chan *c, size_t i)
{
	return json_string_value(json_object_get(json_array_get(c->menu, i), "name")) ?: "";
}

/* The line is complete: a number, a name, or q. */
static void menu_choose(struct chan *c)
{
	static const char again[] = "No such choice. Number or name (q to quit): ";
	size_t n_menu = json_array_size(c->menu);
	unsigned long n;
	char *end;

	chan_say(c, "\r\n", 2);
	c->line[c->line_len] = '\0';
	n = strtoul(c->line, &end, 10);
	if (strcmp(c->line, "q") == 0) {
		chan_close(c, 0, NULL);
		return;
	}
	if (*end == '\0' && end != c->line && n >= 1 && n <= n_menu) {
		chan_start_attach(c, menu_name(c, n - 1), ATTACH_RW, PROTO_REPLAY_DEFAULT);
		return;
	}
	for (size_t k = 0; k < n_menu; k++)
		if (strcmp(c->line, menu_name(c, k)) == 0) {
			chan_start_attach(c, menu_name(c, k), ATTACH_RW, PROTO_REPLAY_DEFAULT);
			return;
		}
	chan_say(c, again, sizeof(again) - 1);
	c->line_len = 0;
}

size_t menu_keys(struct chan *c, const uint8_t *data, size_t len)
{
	if (len > 0 && c->state == CHAN_MENU)
		menu_touch(c);
	for (size_t i = 0; i < len && c->state == CHAN_MENU; i++) {
		uint8_t ch = data[i];

		if (ch == '\r' || ch == '\n')
			menu_choose(c);
		else if (ch == 0x03 || ch == 0x04)
			chan_close(c, 0, NULL);
		else if ((ch == 0x7f || ch == 0x08) && c->line_len > 0) {
			c->line_len--;
			chan_say(c, "\b \b", 3);
		} else if (ch >= 0x20 && ch < 0x7f && c->line_len < sizeof(c->line) - 1) {
			c->line[c->line_len++] = (char)ch;
			chan_say(c, (const char *)&ch, 1);
		}
	}
	return len;
}
