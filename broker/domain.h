/* SPDX-License-Identifier: MIT */
/*
 * The consoles that one domain definition contributes, whatever the source
 * (a domain XML file, libvirt, QMP).  Applying a new definition diffs it
 * against the consoles already created: unchanged devices keep their console
 * (clients, ring and chardev connection stay); changed or vanished ones are
 * removed with a notice; new ones are added.  Each console learns which
 * guest user may be at its chardev's far end (peer.h).
 *
 * Also the one place a source adds or removes a console: the registry
 * checks, refusals recorded for `ttyhub list`, creation and start.
 */
#pragma once

#include "console.h"
#include "domxml.h"
#include "registry.h"
#include "source.h"

struct domain {
	struct console *consoles[DOMXML_MAX_DEVICES];
	size_t n;
	/* What its consoles were last applied as, so that refusals of them (registry errors
	 * shown in list) go when the domain goes or changes: */
	char vm[REGISTRY_VM_MAX]; /* the escaped VM name, "" before the first apply */
	char origin[300];
};

/*
 * Create, register and start one console.  Logs and returns -errno on
 * failure (a name refused or taken is also shown among list's errors).
 */
int domain_add_console(const struct source_env *env, const struct console_spec *spec,
		       struct console **ret);
/* Unregister and free c; its clients are told why. */
void domain_remove_console(const struct source_env *env, struct console *c, const char *why);

/*
 * src: the source whose control these consoles get (serial break), or NULL;
 * with chardev_prefix, each console's QEMU chardev id is prefix + alias
 * (libvirt names them "char" + alias).
 */
void domain_apply(const struct source_env *env, struct domain *d, const struct domxml *dom,
		  const char *origin, struct source *src, const char *chardev_prefix);
/*
 * The same with the guest the chardevs must connect to given by the source
 * (QMP: the monitor's peer) instead of found from dom (its DAC seclabel,
 * else the user libvirt-qemu).
 */
void domain_apply_guest(const struct source_env *env, struct domain *d,
			const struct domxml *dom, const char *origin, struct source *src,
			const char *chardev_prefix, const struct peer_guest *guest);
/* A marker line in the history of every console of the domain. */
void domain_mark(struct domain *d, const char *text);
void domain_clear(const struct source_env *env, struct domain *d, const char *why);
/* What the source knows of the guest, on every console of the domain (console.h). */
void domain_set_guest_state(struct domain *d, const char *vm_state);
/* Notice to every client attached to any console of the domain. */
void domain_announce(struct domain *d, const char *text);
