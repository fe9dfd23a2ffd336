/* SPDX-License-Identifier: MIT */
/*
 * Console names on a gateway (pure, no I/O; see gateway.h).  Every host's
 * ttyhubd names its consoles as usual ("web01:serial0"); through the
 * gateway each is also "HOST/NAME", HOST the hosts file's name.  A user may
 * type:
 *   - "HOST/NAME": always that host, NAME resolved there by its broker;
 *   - NAME alone (a VM, VM:ALIAS, a UUID or UUID:ALIAS): the one host on
 *     which it means a console, as that host's broker would resolve it
 *     (docs/protocol.md "Names"); on two or more hosts it is ambiguous and
 *     the answer lists the qualified choices the user may see.
 * Messages from a host are rewritten before the user sees them: every
 * "console" member and every listed console's "name" gets "HOST/", and a
 * listed console gets "host".
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hosts.h"

/*
 * Split "HOST/REST".  1: a qualified name, host copied (HOSTS_NAME_MAX
 * bytes) and *ret_rest pointing at REST; 0: no '/' (an unqualified name);
 * -EINVAL: an empty or over-long HOST, or an empty REST.
 */
int gwlist_split(const char *name, char host[static HOSTS_NAME_MAX], const char **ret_rest);

/* Whether name means the listed console c on its host (c is one entry of a host's list). */
bool gwlist_matches(json_t *c, const char *name);

/*
 * The host an unqualified name means: lists[i] is host i's consoles array
 * (NULL: the host did not answer), names[i] its name.  Returns the index
 * of the one host with a match, -ENOENT for none, -ENOTUNIQ for several,
 * with "h1/web01, h2/web01" (cut with "..." to fit) in choices.
 */
int gwlist_resolve(json_t *const *lists, const char *const *names, size_t n, const char *name,
		   char *choices, size_t size);

/* Append copies of a host's listed consoles to merged, qualified (see above).  0 or -ENOMEM. */
int gwlist_merge(json_t *merged, const char *host, json_t *consoles);

/*
 * Qualify a message from host in place: its "console" member, and for a
 * `list` its consoles.  0, or -ENOMEM.
 */
int gwlist_qualify(json_t *msg, const char *host);
