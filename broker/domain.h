/* SPDX-License-Identifier: MIT */
/*
 * The consoles that one domain definition contributes, whatever the source
 * (a domain XML file, libvirt, QMP).  Applying a new definition diffs it
 * against the consoles already created: unchanged devices keep their console
 * (clients, ring and chardev connection stay); changed or vanished ones are
 * removed with a notice; new ones are added.  Each console learns which
 * guest user may be at its chardev's far end (peer.h).
 */
#pragma once

#include "console.h"
#include "domxml.h"
#include "registry.h"

struct server;

struct domain {
	struct console *consoles[DOMXML_MAX_DEVICES];
	size_t n;
	/* What its consoles were last applied as, so that refusals of them (registry errors
	 * shown in list) go when the domain goes or changes: */
	char vm[REGISTRY_VM_MAX]; /* the escaped VM name, "" before the first apply */
	char origin[300];
};

/*
 * ops/ops_data: the source's control of these consoles (NULL for none);
 * with chardev_prefix, each console's QEMU chardev id is prefix + alias
 * (libvirt names them "char" + alias).
 */
void domain_apply(struct server *s, struct domain *d, const struct domxml *dom,
		  const char *origin, const struct console_ops *ops, void *ops_data,
		  const char *chardev_prefix);
/*
 * The same with the guest the chardevs must connect to given by the source
 * (QMP: the monitor's peer) instead of found from dom (its DAC seclabel,
 * else the user libvirt-qemu).
 */
void domain_apply_guest(struct server *s, struct domain *d, const struct domxml *dom,
			const char *origin, const struct console_ops *ops, void *ops_data,
			const char *chardev_prefix, const struct peer_guest *guest);
/* A marker line in the history of every console of the domain. */
void domain_mark(struct domain *d, const char *text);
void domain_clear(struct server *s, struct domain *d, const char *why);
/* Notice to every client attached to any console of the domain. */
void domain_announce(struct domain *d, const char *text);
