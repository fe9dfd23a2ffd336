/* SPDX-License-Identifier: MIT */
/*
 * The --console options as a console source (see source-cmdline.h).
 *
 * The source remembers which console each option made, so a rescan diffs
 * the options against that and never looks at other sources' consoles.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "domain.h"
#include "log.h"
#include "source-cmdline.h"
#include "util.h"

#define CMDLINE_ORIGIN "--console option"

struct cmdline_entry {
	char *arg;          /* owned: "NAME=PATH" */
	struct console *c;  /* the console it made, or NULL (refused) */
};

struct cmdline {
	struct source source; /* first */
	const struct source_env *env;
	struct cmdline_entry *entries; /* owned: what the last rescan applied */
	size_t n;
	char **args;                   /* owned: what the next rescan applies */
	size_t n_args;
};

static const struct source_ops cmdline_ops;

static void cmdline_free_args(char **args, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(args[i]);
	free(args);
}

int source_cmdline_set(struct source *s, const char *const *args, size_t n)
{
	struct cmdline *cl = (struct cmdline *)s;
	char **copy = calloc(MAX(n, 1u), sizeof(*copy));

	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		copy[i] = strdup(args[i]);
		if (!copy[i]) {
			cmdline_free_args(copy, i);
			return -ENOMEM;
		}
	}
	cmdline_free_args(cl->args, cl->n_args);
	cl->args = copy;
	cl->n_args = n;
	return 0;
}

static int cmdline_add(struct cmdline *cl, const char *arg, struct console **ret)
{
	char name[256];
	const char *eq = strchr(arg, '='), *path;
	struct stat st;
	struct console_spec spec = {
		.vm = name,
		.origin = CMDLINE_ORIGIN,
		.primary = true,
		.supported = true,
		.backend = DOMXML_BACKEND_UNIX,
		.type = "unix",
		.guest = { .path_owner = true }, /* the socket's owner is the guest */
	};

	if (!eq)
		return log_error_errno(-EINVAL, "--console %s: expected NAME=PATH", arg);
	path = eq + 1;
	if ((size_t)(eq - arg) >= sizeof(name))
		return log_error_errno(-EINVAL, "--console %s: name too long", arg);
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	if (strchr(name, ':'))
		return log_error_errno(-EINVAL, "--console %s: names may not contain ':'", arg);
	spec.path = path;
	/* A character device (a pty slave) is opened as a pty; anything else as a socket. */
	if (stat(path, &st) == 0 && S_ISCHR(st.st_mode)) {
		spec.backend = DOMXML_BACKEND_PTY;
		spec.type = "pty";
	}
	return domain_add_console(cl->env, &spec, ret);
}

/* Apply cl->args; returns the first error (each is logged). */
static int cmdline_apply(struct cmdline *cl)
{
	struct cmdline_entry *next = calloc(MAX(cl->n_args, 1u), sizeof(*next));
	int r = 0;

	if (!next)
		return log_error_errno(-ENOMEM, "--console options");
	/* Consoles whose option is still there stay; the others go first, freeing their names. */
	for (size_t i = 0; i < cl->n_args; i++)
		for (size_t j = 0; j < cl->n; j++)
			if (cl->entries[j].c && strcmp(cl->entries[j].arg, cl->args[i]) == 0) {
				next[i].c = TAKE_PTR(cl->entries[j].c);
				break;
			}
	for (size_t j = 0; j < cl->n; j++) {
		if (cl->entries[j].c)
			domain_remove_console(cl->env, cl->entries[j].c,
					      "removed from the configuration");
		free(cl->entries[j].arg);
	}
	free(cl->entries);
	cl->entries = next;
	cl->n = cl->n_args;
	for (size_t i = 0; i < cl->n; i++) {
		int k = 0;

		next[i].arg = strdup(cl->args[i]);
		if (!next[i].arg)
			k = -ENOMEM;
		else if (!next[i].c)
			k = cmdline_add(cl, cl->args[i], &next[i].c);
		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}

static struct source *cmdline_free(struct source *s)
{
	struct cmdline *cl = (struct cmdline *)s;

	if (!cl)
		return NULL;
	for (size_t j = 0; j < cl->n; j++) {
		if (cl->entries[j].c)
			domain_remove_console(cl->env, cl->entries[j].c,
					      "ttyhubd is shutting down");
		free(cl->entries[j].arg);
	}
	free(cl->entries);
	cmdline_free_args(cl->args, cl->n_args);
	free(cl);
	return NULL;
}

static int cmdline_rescan(struct source *s)
{
	return cmdline_apply((struct cmdline *)s);
}

static const struct source_ops cmdline_ops = {
	.kind = "cmdline",
	.free = cmdline_free,
	.rescan = cmdline_rescan,
};

int source_cmdline_open(const struct source_env *env, const char *const *args, size_t n,
			struct source **ret)
{
	struct cmdline *cl = calloc(1, sizeof(*cl));
	int r;

	if (!cl)
		return -ENOMEM;
	cl->source.ops = &cmdline_ops;
	cl->env = env;
	r = source_cmdline_set(&cl->source, args, n);
	if (r >= 0)
		r = cmdline_apply(cl);
	if (r < 0) {
		cmdline_free(&cl->source);
		return r;
	}
	*ret = &cl->source;
	return 0;
}
