/* SPDX-License-Identifier: MIT */
/*
 * What SSH users may learn of the host (pure, no I/O): consoles, not
 * sockets.  Clients are shown as their SSH principal's comment, anyone else
 * as "local admin"; free text from the broker loses absolute paths and
 * local clients' pids.  Everything not on these lists is dropped.  The
 * broker decides which consoles a key sees; this only trims what is shown.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* "COMMENT (ssh SHA256:...)" -> "COMMENT"; anything else -> "local admin". */
void view_label(const char *label, char *buf, size_t size);
/* Free text from the broker (notices, errors): local clients and paths made anonymous. */
void view_scrub(const char *in, char *out, size_t size);
/* One console as SSH users see it, with the broker's "access" for the key. */
json_t *view_console(json_t *con);
/* Every console of a list, as view_console(). */
json_t *view_consoles(json_t *consoles);
/* A gateway's hosts (name, state, error scrubbed); an empty array on a host. */
json_t *view_hosts(json_t *hosts);
/* A `who` answer as SSH users see it: role, principal comment, since. */
json_t *view_who(json_t *who);
