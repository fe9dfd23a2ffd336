/* SPDX-License-Identifier: MIT */
/*
 * The console menu of an SSH channel without a console in its user name:
 * the consoles ttyhubd lists for the key, numbered, and a line editor (the
 * client's terminal is raw, so the menu echoes).  A choice starts an attach;
 * an idle menu closes after menu_timeout seconds.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct chan;

/* Ask the broker for the list; menu_show() follows when it comes. */
void menu_start(struct chan *c);
/* Show the list (the broker's answer, already only the key's consoles). */
void menu_show(struct chan *c, json_t *list);
/* Keystrokes while the menu is shown; returns the bytes consumed (all). */
size_t menu_keys(struct chan *c, const uint8_t *data, size_t len);
