/* SPDX-License-Identifier: MIT */
/*
 * The daemons' side of systemd's service protocol that is not in
 * sd-daemon itself: blocking the signals the loop handles, and a STATUS=
 * line kept up to date (sent once a second when it changed).
 */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

/* Fill buf with the one-line status, e.g. "12 consoles, 3 clients". */
typedef void (*notify_status_fn)(void *userdata, char *buf, size_t size);

int notify_status_start(sd_event *e, notify_status_fn fn, void *userdata);

/* Ignore SIGPIPE; block SIGTERM, SIGINT and SIGHUP for sd_event_add_signal(). */
void notify_block_signals(void);
