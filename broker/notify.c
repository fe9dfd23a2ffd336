/* SPDX-License-Identifier: MIT */
/*
 * STATUS= updates and signal setup shared by ttyhubd and ttyhub-sshd
 * (see notify.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

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

int notify_status_start(sd_event *e, notify_status_fn fn, void *userdata)
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
