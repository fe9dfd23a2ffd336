/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for config_parse() and config_parse_bool(): the
 * configuration files of ttyhubd and ttyhub-sshd.
 *
 * Model: the input is a whole file.  It is cut into lines here too ('\n'
 * ends a line; a last line without one still counts), and every entry and
 * error the parser reports is checked against those lines:
 *   - an entry has a non-empty key of [A-Za-z0-9-], which is what stands
 *     before the first '=' of its line, and a value that ends that line
 *     (blanks aside, and inside a pair of double quotes if there was one);
 *   - entries and errors each have strictly increasing line numbers within
 *     the line count, and no line is both an entry and an error;
 *   - every error has a non-empty one-line message;
 *   - the counts stay within CONFIG_MAX_ENTRIES and the error cap.
 * Each value, and the start of the input as a string, goes through
 * config_parse_bool(), whose answer must be 1, 0 or -EINVAL and must not
 * depend on letter case.  Violations abort().
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* config_parse() is linear; this only bounds the line table below. */
#define FUZZ_CONFIG_MAX_INPUT (256 * 1024)
/* config.c stops recording errors after this many. */
#define FUZZ_CONFIG_MAX_ERRORS 100
#define FUZZ_CONFIG_BOOL_MAX 16

struct line_table {
	size_t *start; /* offset of each line; line n (1-based) is start[n - 1] */
	size_t n;
};

static void lines_split(const char *buf, size_t len, struct line_table *t)
{
	size_t pos = 0;

	/* At most one line per byte. */
	t->start = malloc((len + 1) * sizeof(*t->start));
	if (!t->start)
		abort();
	t->n = 0;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);

		t->start[t->n++] = pos;
		pos = nl ? (size_t)(nl - buf) + 1 : len;
	}
}

/* Line n without its '\n'. */
static const char *line_get(const char *buf, size_t len, const struct line_table *t, unsigned n,
			    size_t *ret_len)
{
	const char *nl;
	size_t s, e;

	if (n < 1 || n > t->n)
		abort();
	s = t->start[n - 1];
	nl = memchr(buf + s, '\n', len - s);
	e = nl ? (size_t)(nl - buf) : len;
	*ret_len = e - s;
	return buf + s;
}

static void check_bool(const char *s)
{
	char upper[FUZZ_CONFIG_BOOL_MAX + 1];
	size_t n = strlen(s);
	int r;

	r = config_parse_bool(s);
	if (r != 0 && r != 1 && r != -EINVAL)
		abort();
	/* Only a word or a digit is a boolean. */
	if (r >= 0 && n == 0)
		abort();
	if (n > FUZZ_CONFIG_BOOL_MAX)
		return;
	for (size_t i = 0; i <= n; i++)
		upper[i] = (char)toupper((unsigned char)s[i]);
	if (config_parse_bool(upper) != r)
		abort();
}

static void check_entry(const char *buf, size_t len, const struct line_table *t,
			const struct config_entry *e)
{
	const char *line, *eq, *s, *end;
	size_t line_len, klen, vlen;

	if (!e->key || !e->value || !e->key[0])
		abort();
	for (const char *p = e->key; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '-'))
			abort();
	if (strchr(e->value, '\n'))
		abort();

	line = line_get(buf, len, t, e->line, &line_len);
	if (memchr(line, '\0', line_len))
		abort(); /* lines with a NUL byte are errors */
	eq = memchr(line, '=', line_len);
	if (!eq)
		abort();
	klen = strlen(e->key);
	vlen = strlen(e->value);

	/* The key is what stands before the first '=', blanks trimmed. */
	s = line;
	end = eq;
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if ((size_t)(end - s) != klen || memcmp(s, e->key, klen) != 0)
		abort();

	/* The value ends the line, blanks trimmed, or sits between a pair of quotes there. */
	s = eq + 1;
	end = line + line_len;
	while (end > s && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if ((size_t)(end - s) == vlen + 2 && s[0] == '"' && end[-1] == '"') {
		if (memcmp(s + 1, e->value, vlen) != 0)
			abort();
	} else if ((size_t)(end - s) != vlen || memcmp(s, e->value, vlen) != 0) {
		abort();
	}
	check_bool(e->value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct config *c = (struct config *)(uintptr_t)1; /* untouched on failure */
	char head[FUZZ_CONFIG_BOOL_MAX + 1];
	struct line_table t;
	size_t n;
	int r;

	if (size > FUZZ_CONFIG_MAX_INPUT)
		return 0;

	n = size < FUZZ_CONFIG_BOOL_MAX ? size : FUZZ_CONFIG_BOOL_MAX;
	memcpy(head, data, n);
	head[n] = '\0';
	check_bool(head);

	r = config_parse(buf, size, &c);
	if (r < 0) {
		/* Within CONFIG_MAX_SIZE, only running out of memory can fail. */
		if (r != -ENOMEM || c != (struct config *)(uintptr_t)1)
			abort();
		return 0;
	}
	if (r != 0 || !c || c == (struct config *)(uintptr_t)1)
		abort();

	lines_split(buf, size, &t);
	if (c->n_entries > CONFIG_MAX_ENTRIES || c->n_errors > FUZZ_CONFIG_MAX_ERRORS)
		abort();
	if (c->n_entries + c->n_errors > t.n)
		abort();
	if ((c->n_entries > 0 && !c->entries) || (c->n_errors > 0 && !c->errors))
		abort();

	for (size_t i = 0; i < c->n_entries; i++) {
		const struct config_entry *e = &c->entries[i];

		if (e->line < 1 || e->line > t.n)
			abort();
		if (i > 0 && e->line <= c->entries[i - 1].line)
			abort();
		check_entry(buf, size, &t, e);
	}

	for (size_t i = 0, j = 0; i < c->n_errors; i++) {
		const struct config_error *e = &c->errors[i];

		if (e->line < 1 || e->line > t.n)
			abort();
		if (i > 0 && e->line <= c->errors[i - 1].line)
			abort();
		if (!e->message || !e->message[0] || strchr(e->message, '\n'))
			abort();
		/* Both lists are sorted: walk the entries alongside. */
		while (j < c->n_entries && c->entries[j].line < e->line)
			j++;
		if (j < c->n_entries && c->entries[j].line == e->line)
			abort();
	}

	free(t.start);
	config_free(c);
	return 0;
}
