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

/* Ignore SIGPIPE; block SIGTERM, SIGINT and SIGHUP for sd_event_add_signal(). */
void notify_block_signals(void);

/*
 * The loop of a daemon: SIGTERM and SIGINT end it, SIGHUP calls on_reload,
 * WATCHDOG=1 is sent by sd-event itself (so a hung loop stops pinging), and
 * STATUS= is kept up to date with status().  Returns 0 or -errno.
 */
int notify_setup_loop(sd_event *e, sd_event_signal_handler_t on_reload, void *reload_data,
		      notify_status_fn status, void *status_data);
/*
 * The same, with on_stop called for SIGTERM and SIGINT instead of ending the
 * loop at once: the daemon winds down and calls sd_event_exit() itself
 * (a second signal still ends the loop at once).
 */
int notify_setup_loop_stop(sd_event *e, sd_event_signal_handler_t on_stop, void *stop_data,
			   sd_event_signal_handler_t on_reload, void *reload_data,
			   notify_status_fn status, void *status_data);
