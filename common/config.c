/* SPDX-License-Identifier: MIT */
/*
 * Configuration file parser (see config.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "fileio.h"
#include "log.h"
#include "util.h"

static int config_add_error(struct config *c, unsigned line, const char *fmt, ...)
	_printf_(3, 4);
static int config_add_error(struct config *c, unsigned line, const char *fmt, ...)
{
	struct config_error *e;
	va_list ap;

	if (c->n_errors >= 100)
		return 0; /* enough to say the file is not a config file */
	e = realloc(c->errors, (c->n_errors + 1) * sizeof(*e));
	if (!e)
		return -ENOMEM;
	c->errors = e;
	e = &c->errors[c->n_errors];
	e->line = line;
	va_start(ap, fmt);
	if (vasprintf(&e->message, fmt, ap) < 0) {
		va_end(ap);
		return -ENOMEM;
	}
	va_end(ap);
	c->n_errors++;
	return 0;
}

static char *trim(char *s, char *end)
{
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

static int config_line(struct config *c, unsigned lineno, char *line, size_t len)
{
	char *eq, *key, *value, esc[96];
	struct config_entry *e;

	if (memchr(line, '\0', len))
		return config_add_error(c, lineno, "NUL byte in line");
	line[len] = '\0';
	key = trim(line, line + len);
	if (!*key || *key == '#')
		return 0;
	eq = strchr(key, '=');
	if (!eq)
		return config_add_error(c, lineno, "expected \"option = value\", got \"%s\"",
					log_escape(key, strlen(key), esc, sizeof(esc)));
	value = trim(eq + 1, eq + 1 + strlen(eq + 1));
	key = trim(key, eq);
	if (!*key)
		return config_add_error(c, lineno, "missing option name before '='");
	for (const char *p = key; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return config_add_error(c, lineno, "bad option name \"%s\"",
						log_escape(key, strlen(key), esc, sizeof(esc)));
	if (strlen(value) >= 2 && value[0] == '"' && value[strlen(value) - 1] == '"') {
		value[strlen(value) - 1] = '\0';
		value++;
	}
	if (c->n_entries >= CONFIG_MAX_ENTRIES)
		return config_add_error(c, lineno, "too many options");
	/* The array doubles when its count reaches a power of two: linear in the file. */
	if ((c->n_entries & (c->n_entries - 1)) == 0) {
		e = realloc(c->entries, (c->n_entries ? 2 * c->n_entries : 1) * sizeof(*e));
		if (!e)
			return -ENOMEM;
		c->entries = e;
	}
	e = &c->entries[c->n_entries];
	e->line = lineno;
	e->key = strdup(key);
	e->value = strdup(value);
	if (!e->key || !e->value) {
		free(e->key);
		free(e->value);
		return -ENOMEM;
	}
	c->n_entries++;
	return 0;
}

int config_parse(const char *buf, size_t len, struct config **ret)
{
	struct config *c;
	unsigned lineno = 0;
	int r = 0;

	if (len > CONFIG_MAX_SIZE)
		return -EFBIG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t pos = 0; pos < len && r >= 0;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		char *line = malloc(n + 1);

		lineno++;
		if (!line) {
			r = -ENOMEM;
			break;
		}
		memcpy(line, buf + pos, n);
		r = config_line(c, lineno, line, n);
		free(line);
		pos += n + 1;
	}
	if (r < 0) {
		config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

struct config *config_free(struct config *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_entries; i++) {
		free(c->entries[i].key);
		free(c->entries[i].value);
	}
	for (size_t i = 0; i < c->n_errors; i++)
		free(c->errors[i].message);
	free(c->entries);
	free(c->errors);
	free(c);
	return NULL;
}

int config_parse_bool(const char *s)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -EINVAL;
}

/* Arguments handed to apply(): the daemon keeps pointers into them (optarg). */
static char **kept_args;
static size_t n_kept_args;

static int config_keep(char *arg)
{
	char **k = realloc(kept_args, (n_kept_args + 1) * sizeof(*k));

	if (!k)
		return -ENOMEM;
	kept_args = k;
	kept_args[n_kept_args++] = arg;
	return 0;
}

void config_release_args(void)
{
	for (size_t i = 0; i < n_kept_args; i++)
		free(kept_args[i]);
	free(kept_args);
	kept_args = NULL;
	n_kept_args = 0;
}

static bool config_is_flag(const char *const *flags, const char *key)
{
	for (; flags && *flags; flags++)
		if (strcmp(*flags, key) == 0)
			return true;
	return false;
}

int config_load(const char *path, bool required, const char *const *flags, config_apply_fn apply)
{
	_cleanup_free_ char *buf = NULL;
	struct config *c = NULL;
	char prefix[512];
	size_t len;
	int r, first = 0;

	r = read_file_bounded(path, CONFIG_MAX_SIZE, &buf, &len);
	if (r == -ENOENT && !required)
		return 0;
	if (r < 0)
		return log_error_errno(r, "cannot read configuration file %s", path);
	r = config_parse(buf, len, &c);
	if (r < 0)
		return log_error_errno(r, "cannot parse configuration file %s", path);
	for (size_t i = 0; i < c->n_errors; i++)
		log_error("%s:%u: %s", path, c->errors[i].line, c->errors[i].message);
	if (c->n_errors > 0)
		first = -EINVAL;
	for (size_t i = 0; i < c->n_entries; i++) {
		const struct config_entry *e = &c->entries[i];
		char *arg = NULL;
		char *argv[3] = { (char *)"config", NULL, NULL };

		snprintf(prefix, sizeof(prefix), "%s:%u: ", path, e->line);
		log_set_prefix(prefix);
		if (strcmp(e->key, "config") == 0 || strcmp(e->key, "help") == 0 ||
		    strcmp(e->key, "version") == 0) {
			log_error("option %s cannot be set in a configuration file", e->key);
			r = -EINVAL;
		} else if (config_is_flag(flags, e->key)) {
			int b = config_parse_bool(e->value);

			if (b < 0) {
				log_error("%s: expected yes or no, got \"%s\"", e->key, e->value);
				r = -EINVAL;
			} else if (b == 0)
				r = 0;
			else if (asprintf(&arg, "--%s", e->key) < 0)
				r = -ENOMEM;
			else {
				argv[1] = arg;
				r = apply(2, argv);
			}
		} else if (asprintf(&arg, "--%s=%s", e->key, e->value) < 0)
			r = -ENOMEM;
		else {
			argv[1] = arg;
			r = apply(2, argv);
		}
		log_set_prefix(NULL);
		if (arg && config_keep(arg) < 0) {
			free(arg);
			r = -ENOMEM;
		}
		if (r < 0 && first == 0)
			first = r;
	}
	config_free(c);
	return first;
}

void config_find_arg(int argc, char *argv[], const char **path, bool *required)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			*path = argv[i + 1];
			*required = true;
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			*path = argv[i] + 9;
			*required = true;
		}
	}
}
