/* SPDX-License-Identifier: MIT */
/*
 * Exec commands of an SSH channel ("ssh host list"): list [--json],
 * attach NAME [--ro|--force], who NAME.  The broker answers for the key;
 * the answer is printed as SSH users may see it (view.h) and the channel
 * closes with status 0, or 2 for a command that is not one of these.
 */
#pragma once

#include "front.h"

struct chan;

/* Parse and start command (the channel is new and within its limits). */
void exec_start(struct chan *c, const char *command);
/* A LIST or WHO event for a channel in CHAN_EXEC. */
void exec_reply(struct chan *c, const struct front_event *e);
/* The console name an exec command asked for, or NULL (for "no console named"). */
const char *exec_console(const struct chan *c);
