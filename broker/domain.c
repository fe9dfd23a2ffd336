/* SPDX-License-Identifier: MIT */
/*
 * Consoles of one domain definition (see domain.h).
 */
#include <stdio.h>

#include "domain.h"
#include "server.h"

struct domain_ctl {
	const char *origin;
	const struct console_ops *ops;
	void *ops_data;
	const char *chardev_prefix;
};

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
	};
}

void domain_apply(struct server *s, struct domain *d, const struct domxml *dom,
		  const char *origin, const struct console_ops *ops, void *ops_data,
		  const char *chardev_prefix)
{
	const struct domain_ctl ctl = { origin, ops, ops_data, chardev_prefix };
	struct console *kept[DOMXML_MAX_DEVICES] = {};
	char id[160];
	size_t n = 0;

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
		d->consoles[n++] = c;
	}
	d->n = n;
}

void domain_clear(struct server *s, struct domain *d, const char *why)
{
	for (size_t i = 0; i < d->n; i++)
		server_remove_console(s, d->consoles[i], why);
	d->n = 0;
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
