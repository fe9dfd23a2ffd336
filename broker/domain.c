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
#include "util.h"

struct domain_ctl {
	const char *origin;
	struct source *source;
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

/* A console of origin is not registered: logged, and shown among list's errors. */
static void domain_refuse_console(const struct source_env *env, const char *origin,
				  const char *name, const char *why)
{
	char text[1200];

	log_error("%s: console %s refused: %s; ignoring this definition", origin, name, why);
	snprintf(text, sizeof(text), "console %s refused: %s", name, why);
	registry_set_refused(env->registry, origin, name, text);
}

int domain_add_console(const struct source_env *env, const struct console_spec *spec,
		       struct console **ret)
{
	const char *origin = spec->origin ? spec->origin : "?";
	char err[700];
	struct console *c;
	int r;

	/* Names are refused, never cut: a cut name could be another console's. */
	r = registry_check_names(spec->vm, spec->alias, err, sizeof(err));
	if (r < 0) {
		char vm[REGISTRY_VM_MAX], alias[REGISTRY_ALIAS_MAX];
		char name[REGISTRY_VM_MAX + REGISTRY_ALIAS_MAX];

		/* Keyed by the cut name the console would have had, so a rescan replaces it. */
		log_escape(spec->vm, strlen(spec->vm), vm, sizeof(vm));
		snprintf(name, sizeof(name), "%s%s%s", vm, spec->alias ? ":" : "",
			 spec->alias ? log_escape(spec->alias, strlen(spec->alias), alias,
						  sizeof(alias)) : "");
		domain_refuse_console(env, origin, name, err);
		return r;
	}
	r = console_new(env->console, spec, &c);
	if (r < 0)
		return log_error_errno(r, "cannot create console for %s", spec->vm);
	r = registry_add(env->registry, c, err, sizeof(err));
	if (r < 0) {
		domain_refuse_console(env, origin, c->name, err);
		console_free(c, NULL);
		return r;
	}
	if (c->supported)
		log_info("console %s: %s %s (from %s)", c->name, c->type ? c->type : "unix",
			 c->path, c->origin);
	else
		log_notice("console %s: not supported: %s", c->name, c->reason);
	r = console_start(c);
	if (r < 0) {
		registry_remove(env->registry, c);
		console_free(c, NULL);
		return log_error_errno(r, "cannot start console");
	}
	if (ret)
		*ret = c;
	return 0;
}

void domain_remove_console(const struct source_env *env, struct console *c, const char *why)
{
	log_info("console %s removed: %s", c->name, why);
	registry_remove(env->registry, c);
	console_free(c, why);
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
		.source = ctl->source,
		.guest = ctl->guest,
	};
}

static void domain_forget_refusals(const struct source_env *env, struct domain *d)
{
	if (d->vm[0])
		registry_clear_refused_vm(env->registry, d->origin, d->vm);
	d->vm[0] = '\0';
}

void domain_apply(const struct source_env *env, struct domain *d, const struct domxml *dom,
		  const char *origin, struct source *src, const char *chardev_prefix)
{
	struct peer_guest g = domain_guest(dom);

	domain_apply_guest(env, d, dom, origin, src, chardev_prefix, &g);
}

void domain_apply_guest(const struct source_env *env, struct domain *d,
			const struct domxml *dom, const char *origin, struct source *src,
			const char *chardev_prefix, const struct peer_guest *guest)
{
	const struct domain_ctl ctl = { origin, src, chardev_prefix, *guest };
	struct console *kept[DOMXML_MAX_DEVICES] = {};
	char id[160];
	size_t n = 0;

	/* Refusals of the last definition go; adding this one sets them again if they hold. */
	domain_forget_refusals(env, d);
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
			domain_remove_console(env, c, "its definition changed");
	}
	for (size_t j = 0; j < dom->n_devs; j++) {
		struct console_spec spec;
		struct console *c = kept[j];

		domain_spec(&spec, dom, &dom->devs[j], j, &ctl, id, sizeof(id));
		if (!c && domain_add_console(env, &spec, &c) < 0)
			continue;
		c->guest = *guest; /* the QEMU user may have changed (a restarted QEMU) */
		d->consoles[n++] = c;
	}
	d->n = n;
}

void domain_clear(const struct source_env *env, struct domain *d, const char *why)
{
	for (size_t i = 0; i < d->n; i++)
		domain_remove_console(env, d->consoles[i], why);
	d->n = 0;
	domain_forget_refusals(env, d);
}

void domain_set_guest_state(struct domain *d, const char *vm_state)
{
	for (size_t i = 0; i < d->n; i++)
		console_set_guest_state(d->consoles[i], vm_state, CONSOLE_GUEST_OPEN_KEEP);
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
