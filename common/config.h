/* SPDX-License-Identifier: MIT */
/*
 * Configuration files of the daemons (pure parser, no I/O).  One option
 * per line, named like the long command-line option without "--":
 *
 *   # comment
 *   ring-size = 4M
 *   console = web01=/run/web01.sock      (repeatable options may repeat)
 *   libvirt-qemu-monitor = yes           (options without argument: yes/no)
 *
 * Values run to the end of the line (surrounding blanks trimmed; an optional
 * pair of double quotes is removed).  The daemon checks keys and values with
 * the same code as its command line, so a bad value is reported with the
 * line number.  Lines that are not "key = value" are errors, reported with
 * their line number and skipped.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_MAX_SIZE (1024 * 1024)
#define CONFIG_MAX_ENTRIES 4096

struct config_entry {
	unsigned line;
	char *key;
	char *value;
};

struct config_error {
	unsigned line;
	char *message;
};

struct config {
	struct config_entry *entries;
	size_t n_entries;
	struct config_error *errors;
	size_t n_errors;
};

/* Returns 0 with *ret (which may hold errors), -EFBIG or -ENOMEM. */
int config_parse(const char *buf, size_t len, struct config **ret);
struct config *config_free(struct config *c);

/*
 * "yes"/"true"/"on"/"1" -> 1, "no"/"false"/"off"/"0" -> 0, else -EINVAL.
 */
int config_parse_bool(const char *s);

/*
 * Apply a configuration file through a daemon's own option parser: each
 * entry becomes argv { "config", "--key=value" } (or "--key" for an option
 * named in flags, when its value is true) and is passed to apply(), which
 * parses it exactly like the command line.  Errors are logged as
 * "PATH:LINE: ...".  A missing file is fine unless required.
 * Returns 0, or the first error (after logging every bad line).
 */
typedef int (*config_apply_fn)(int argc, char *argv[]);
int config_load(const char *path, bool required, const char *const *flags, config_apply_fn apply);
/*
 * The strings config_load() passed to apply() stay valid (option parsers
 * keep pointers to them) until this is called, before loading again.
 */
void config_release_args(void);

/* "--config FILE" or "--config=FILE" in argv: sets *path and *required. */
void config_find_arg(int argc, char *argv[], const char **path, bool *required);
