/* SPDX-License-Identifier: MIT */
/*
 * The console menu of an SSH channel without a console in its user name:
 * the consoles ttyhubd lists for the key, numbered, and a line editor (the
 * client's terminal is raw, so the menu echoes).
 *
 * The menu knows nothing of channels: it speaks and acts through the ops
 * its owner fills in.  The owner asks the broker for the list, feeds the
 * keystrokes while the menu is shown, and closes a menu left idle.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* What a menu asks of its owner (userdata: menu.userdata). */
struct menu_ops {
	/* Text for the user (already safe). */
	void (*say)(void *userdata, const char *text, size_t len);
	/* The menu ends without a choice: close with status, saying text (NULL: nothing). */
	void (*close)(void *userdata, int status, const char *text);
	/* The user chose the console name: attach to it. */
	void (*choose)(void *userdata, const char *name);
};

struct menu {
	const struct menu_ops *ops;
	void *userdata;
	json_t *list;       /* owned: the consoles offered, by number */
	char line[130];     /* typed so far */
	size_t line_len;
};

void menu_init(struct menu *m, const struct menu_ops *ops, void *userdata);
void menu_done(struct menu *m);
/*
 * Show the list (the broker's answer, already only the key's consoles),
 * lines ending in eol; an empty one closes (ops->close).
 */
void menu_show(struct menu *m, json_t *list, const char *eol);
/*
 * Keystrokes while the menu is shown; returns the bytes consumed (all).
 * Those after a choice, or after the menu closed, are discarded.
 */
size_t menu_keys(struct menu *m, const uint8_t *data, size_t len);
