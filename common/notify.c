/* SPDX-License-Identifier: MIT */
/*
 * STATUS= updates and signal setup shared by ttyhubd and ttyhub-sshd
 * (see notify.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

struct notify_status {
	notify_status_fn fn;
	void *userdata;
	char last[160];
};

static int notify_on_timer(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct notify_status *ns = userdata;
	char status[160] = "STATUS=";

	ns->fn(ns->userdata, status + 7, sizeof(status) - 7);
	if (strcmp(status, ns->last) != 0) {
		sd_notify(0, status);
		snprintf(ns->last, sizeof(ns->last), "%s", status);
	}
	sd_event_source_set_time_relative(es, 1000000);
	sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
	return 0;
}

static void notify_free(void *userdata)
{
	free(userdata);
}

static int notify_status_start(sd_event *e, notify_status_fn fn, void *userdata)
{
	struct notify_status *ns = calloc(1, sizeof(*ns));
	sd_event_source *es = NULL;
	int r;

	if (!ns)
		return -ENOMEM;
	ns->fn = fn;
	ns->userdata = userdata;
	/* Floating: owned by the loop, freed with it. */
	r = sd_event_add_time_relative(e, &es, CLOCK_MONOTONIC, 0, 0, notify_on_timer, ns);
	if (r < 0) {
		free(ns);
		return r;
	}
	sd_event_source_set_destroy_callback(es, notify_free);
	sd_event_source_set_floating(es, 1);
	sd_event_source_unref(es);
	return 0;
}

void notify_block_signals(void)
{
	sigset_t mask;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
}

static int notify_on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si,
				 void *userdata)
{
	log_info("received %s, exiting", strsignal((int)si->ssi_signo));
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

struct notify_stop {
	sd_event_signal_handler_t fn;
	void *userdata;
	bool asked;
};

/* The first SIGTERM/SIGINT asks the daemon to wind down; the next ends the loop. */
static int notify_on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si,
				 void *userdata)
{
	struct notify_stop *ns = userdata;

	if (ns->asked)
		return notify_on_exit_signal(s, si, NULL);
	ns->asked = true;
	log_info("received %s, stopping", strsignal((int)si->ssi_signo));
	return ns->fn(s, si, ns->userdata);
}

int notify_setup_loop_stop(sd_event *e, sd_event_signal_handler_t on_stop, void *stop_data,
			   sd_event_signal_handler_t on_reload, void *reload_data,
			   notify_status_fn status, void *status_data)
{
	struct notify_stop *ns = NULL;
	sd_event_signal_handler_t fn = notify_on_exit_signal;
	sd_event_source *es = NULL;
	int r;

	if (on_stop) {
		ns = calloc(1, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		*ns = (struct notify_stop){ .fn = on_stop, .userdata = stop_data };
		fn = notify_on_stop_signal;
	}
	r = sd_event_add_signal(e, &es, SIGTERM, fn, ns);
	if (r < 0) {
		free(ns);
		return r;
	}
	/* Floating: owned by the loop, and ns with it. */
	if (ns)
		sd_event_source_set_destroy_callback(es, notify_free);
	sd_event_source_set_floating(es, 1);
	sd_event_source_unref(es);
	r = sd_event_add_signal(e, NULL, SIGINT, fn, ns);
	if (r >= 0)
		r = sd_event_add_signal(e, NULL, SIGHUP, on_reload, reload_data);
	if (r >= 0)
		r = sd_event_set_watchdog(e, true);
	if (r >= 0)
		r = notify_status_start(e, status, status_data);
	return r;
}

int notify_setup_loop(sd_event *e, sd_event_signal_handler_t on_reload, void *reload_data,
		      notify_status_fn status, void *status_data)
{
	return notify_setup_loop_stop(e, NULL, NULL, on_reload, reload_data, status, status_data);
}
