/* SPDX-License-Identifier: MIT */
/*
 * Consoles of one domain definition (see domain.h).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "domain.h"
#include "log.h"
#include "server.h"

struct domain_ctl {
	const char *origin;
	const struct console_ops *ops;
	void *ops_data;
	const char *chardev_prefix;
	struct peer_guest guest;
};

/*
 * The QEMU user of a domain definition: its DAC seclabel if it has one
 * (a uid, or a user name looked up here), else the user libvirt-qemu if it
 * exists, else nobody in particular.
 */
static struct peer_guest domain_guest(const struct domxml *dom)
{
	struct peer_guest g = {};
	struct passwd *pw = NULL;
	char name[sizeof(g.name)];
	uid_t uid;
	int r;

	r = dom->dac_label ? peer_parse_user(dom->dac_label, false, &uid, name, sizeof(name))
			   : -ENOENT;
	if (r == 1) {
		g.set = true;
		g.uid = uid;
		pw = getpwuid(uid);
	} else if (r == 0) {
		pw = getpwnam(name);
		if (pw) {
			g.set = true;
			g.uid = pw->pw_uid;
		}
	} else {
		pw = getpwnam("libvirt-qemu");
		if (pw) {
			g.set = true;
			g.uid = pw->pw_uid;
		}
	}
	if (g.set && pw)
		snprintf(g.name, sizeof(g.name), "%s", pw->pw_name);
	return g;
}

static void domain_spec(struct console_spec *spec, const struct domxml *dom,
			const struct domxml_dev *dev, size_t index, const struct domain_ctl *ctl,
			char *chardev_id, size_t size)
{
	chardev_id[0] = '\0';
	if (dev->chardev)
		snprintf(chardev_id, size, "%s", dev->chardev);
	else if (ctl->chardev_prefix && dev->alias)
		snprintf(chardev_id, size, "%s%s", ctl->chardev_prefix, dev->alias);
	*spec = (struct console_spec){
		.vm = dom->name,
		.uuid = dom->uuid,
		.alias = dev->alias,
		.element = dev->element,
		.target = dev->target_type,
		.type = dev->type,
		.origin = ctl->origin,
		.primary = index == 0,
		.supported = dev->supported,
		.reason = dev->reason,
		.backend = dev->backend,
		.path = dev->path,
		.chardev_id = chardev_id[0] ? chardev_id : NULL,
		.ops = ctl->ops,
		.ops_data = ctl->ops_data,
		.guest = ctl->guest,
	};
}

static void domain_forget_refusals(struct server *s, struct domain *d)
{
	if (d->vm[0])
		registry_clear_refused_vm(&s->registry, d->origin, d->vm);
	d->vm[0] = '\0';
}

void domain_apply(struct server *s, struct domain *d, const struct domxml *dom,
		  const char *origin, const struct console_ops *ops, void *ops_data,
		  const char *chardev_prefix)
{
	struct peer_guest g = domain_guest(dom);

	domain_apply_guest(s, d, dom, origin, ops, ops_data, chardev_prefix, &g);
}

void domain_apply_guest(struct server *s, struct domain *d, const struct domxml *dom,
			const char *origin, const struct console_ops *ops, void *ops_data,
			const char *chardev_prefix, const struct peer_guest *guest)
{
	const struct domain_ctl ctl = { origin, ops, ops_data, chardev_prefix, *guest };
	struct console *kept[DOMXML_MAX_DEVICES] = {};
	char id[160];
	size_t n = 0;

	/* Refusals of the last definition go; adding this one sets them again if they hold. */
	domain_forget_refusals(s, d);
	log_escape(dom->name, strlen(dom->name), d->vm, sizeof(d->vm));
	snprintf(d->origin, sizeof(d->origin), "%s", origin);

	for (size_t i = 0; i < d->n; i++) {
		struct console *c = d->consoles[i];
		bool keep = false;

		for (size_t j = 0; j < dom->n_devs && !keep; j++) {
			struct console_spec spec;

			domain_spec(&spec, dom, &dom->devs[j], j, &ctl, id, sizeof(id));
			if (!kept[j] && console_matches_spec(c, &spec)) {
				kept[j] = c;
				keep = true;
			}
		}
		if (!keep)
			server_remove_console(s, c, "its definition changed");
	}
	for (size_t j = 0; j < dom->n_devs; j++) {
		struct console_spec spec;
		struct console *c = kept[j];

		domain_spec(&spec, dom, &dom->devs[j], j, &ctl, id, sizeof(id));
		if (!c && server_add_console(s, &spec, &c) < 0)
			continue;
		c->guest = *guest; /* the QEMU user may have changed (a restarted QEMU) */
		d->consoles[n++] = c;
	}
	d->n = n;
}

void domain_clear(struct server *s, struct domain *d, const char *why)
{
	for (size_t i = 0; i < d->n; i++)
		server_remove_console(s, d->consoles[i], why);
	d->n = 0;
	domain_forget_refusals(s, d);
}

void domain_announce(struct domain *d, const char *text)
{
	for (size_t i = 0; i < d->n; i++)
		console_announce(d->consoles[i], "%s", text);
}

void domain_mark(struct domain *d, const char *text)
{
	for (size_t i = 0; i < d->n; i++)
		console_mark(d->consoles[i], text);
}
