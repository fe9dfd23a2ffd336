/* SPDX-License-Identifier: MIT */
/*
 * Console source: the --console NAME=PATH options (command line or
 * configuration file).  PATH is a UNIX socket whose owner is taken to be the
 * guest, or a pty slave (a character device).  On reload the new options are
 * set and a rescan applies them: consoles no longer listed (or listed with
 * another path) go, new ones come, unchanged ones keep their clients.
 */
#pragma once

#include <stddef.h>

#include "source.h"

/*
 * Kind "cmdline".  args are "NAME=PATH" strings (copied).  Fails, with
 * nothing left behind, when any of them cannot become a console.
 */
int source_cmdline_open(const struct source_env *env, const char *const *args, size_t n,
			struct source **ret);
/* The options as they are now (copied); the next rescan applies them. */
int source_cmdline_set(struct source *s, const char *const *args, size_t n);
