/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the access file parser (ssh-front/access.h).  The
 * input is a whole access file.  After access_parse() the harness checks
 * what the parser promises about every result, then drives the two lookup
 * functions with fixed names and with names taken from the parsed input:
 *
 * - every entry has a known, non-certificate key type and a non-empty
 *   base64 blob whose length is a multiple of four; a comment, if any, is
 *   non-empty and trimmed;
 * - every rule has a non-empty pattern and the right RO or RW; every from=
 *   pattern is non-empty and not a bare "!";
 * - entry and error line numbers are within 1..(lines in the input) and
 *   strictly increasing (one result per line at most), and no line has both
 *   an entry and an error;
 * - error messages are printable ASCII (they are logged as is) and the
 *   number of errors is bounded;
 * - every rule's kind is access_pattern_kind() of its pattern; access_check()
 *   never returns more than the best rule, grants at least the rule's right
 *   to a console named by a rule's literal pattern (one without fnmatch
 *   metacharacters), never lets a UUID rule match a console without a UUID
 *   nor a VM or VM:ALIAS rule match a console without a VM name;
 * - warnings are printable ASCII, bounded, and only for lines that load;
 * - access_from_allows() allows anything without from=, refuses a NULL
 *   address with from=, and refuses an address named by a literal "!X";
 * - a line's grant text (access_format_grant(), what a gateway passes on)
 *   either does not fit (-ENOBUFS, "") or parses back as a grant with the
 *   line's rules in order and its break, and grants the same on the fixed
 *   consoles.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The parser is linear per line but the harness is not: keep inputs small. */
#define FUZZ_ACCESS_MAX_INPUT (64u * 1024)
/* ACCESS_MAX_ERRORS errors are kept, then one "too many" notice. */
#define FUZZ_ACCESS_MAX_ERRORS (ACCESS_MAX_ERRORS + 1)

static const struct access_console fuzz_fixed_consoles[] = {
	{ "web01", NULL, NULL },
	{ "web01", "c7a5fdbd-cdaf-9455-926a-d65c16db1809", "serial0" },
	{ "web-01", NULL, "console1" },
	{ "db01", "C7A5FDBD-CDAF-9455-926A-D65C16DB1809", NULL },
	{ "", NULL, "" },
	{ NULL, "c7a5fdbd-cdaf-9455-926a-d65c16db1809", "serial0" },
	{ NULL, NULL, NULL },
};

static const char *const fuzz_fixed_addrs[] = {
	"127.0.0.1", "::1", "10.0.0.5", "192.168.1.20", "fe80::1%eth0", "",
};

#define FUZZ_N(a) (sizeof(a) / sizeof((a)[0]))

static unsigned fuzz_count_lines(const uint8_t *data, size_t size)
{
	unsigned n = 0;

	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n')
			n++;
	if (size > 0 && data[size - 1] != '\n')
		n++;
	return n;
}

static bool fuzz_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool fuzz_is_literal(const char *s)
{
	return strpbrk(s, "*?[\\") == NULL;
}

static void fuzz_check_key(const struct access_entry *e)
{
	size_t n;

	if (!e->keytype || !e->base64)
		abort();
	if (!access_is_key_type(e->keytype))
		abort();
	n = strlen(e->base64);
	if (n == 0 || n % 4 != 0)
		abort();
	if (e->comment) {
		n = strlen(e->comment);
		if (n == 0 || fuzz_is_blank(e->comment[0]) || fuzz_is_blank(e->comment[n - 1]))
			abort();
	}
}

static bool fuzz_is_uuid_kind(enum access_kind k)
{
	return k == ACCESS_KIND_UUID || k == ACCESS_KIND_UUID_ALIAS;
}

/* The console a literal pattern names; parts point into buf. */
static void fuzz_console_of(const struct access_rule *rule, char *buf, size_t size,
			    struct access_console *con)
{
	char *colon;

	snprintf(buf, size, "%s", rule->pattern);
	*con = (struct access_console){ .vm = buf };
	switch (rule->kind) {
	case ACCESS_KIND_VM:
		break;
	case ACCESS_KIND_VM_ALIAS:
		colon = strrchr(buf, ':');
		*colon = '\0';
		con->alias = colon + 1;
		break;
	case ACCESS_KIND_UUID:
		*con = (struct access_console){ .vm = "x", .uuid = buf };
		break;
	case ACCESS_KIND_UUID_ALIAS:
		buf[UUID_STRING_LEN] = '\0';
		*con = (struct access_console){ .vm = "x", .uuid = buf,
						.alias = buf + UUID_STRING_LEN + 1 };
		break;
	}
}

static void fuzz_check_rights(const struct access_entry *e)
{
	enum access_right best = ACCESS_NONE, best_uuid = ACCESS_NONE, best_name = ACCESS_NONE, r;

	if ((e->n_rules == 0) != (e->rules == NULL))
		abort();
	for (size_t i = 0; i < e->n_rules; i++) {
		const struct access_rule *rule = &e->rules[i];
		struct access_console con;
		char buf[ACCESS_MAX_LINE + 1];

		if (!rule->pattern || rule->pattern[0] == '\0')
			abort();
		if (rule->right != ACCESS_RO && rule->right != ACCESS_RW)
			abort();
		if (rule->kind != access_pattern_kind(rule->pattern))
			abort();
		if (rule->right > best)
			best = rule->right;
		if (fuzz_is_uuid_kind(rule->kind) && rule->right > best_uuid)
			best_uuid = rule->right;
		if (!fuzz_is_uuid_kind(rule->kind) && rule->right > best_name)
			best_name = rule->right;
		/* a literal pattern matches the console it names */
		fuzz_console_of(rule, buf, sizeof(buf), &con);
		r = access_check(e, &con);
		if (fuzz_is_literal(rule->pattern) && strlen(rule->pattern) < ACCESS_NAME_MAX &&
		    r < rule->right)
			abort();
		if (r != ACCESS_NONE && r != ACCESS_RO && r != ACCESS_RW)
			abort();
	}

	for (size_t i = 0; i < FUZZ_N(fuzz_fixed_consoles); i++) {
		const struct access_console *con = &fuzz_fixed_consoles[i];

		r = access_check(e, con);
		if (r > best || (r != ACCESS_NONE && r != ACCESS_RO && r != ACCESS_RW))
			abort();
		/* names mean one thing: a UUID is matched by UUID rules only, and back */
		if (!con->vm && r > best_uuid)
			abort();
		if (!con->uuid && r > best_name)
			abort();
	}
	if (e->comment) {
		const struct access_console con = { e->comment, e->comment, e->comment };

		if (access_check(e, &con) > best)
			abort();
	}
}

static void fuzz_check_from(const struct access_entry *e)
{
	if ((e->n_from == 0) != (e->from == NULL))
		abort();
	if (e->n_from == 0) {
		if (!access_from_allows(e, NULL) || !access_from_allows(e, "127.0.0.1"))
			abort();
		if (e->comment && !access_from_allows(e, e->comment))
			abort();
		return;
	}
	if (access_from_allows(e, NULL))
		abort();
	for (size_t i = 0; i < e->n_from; i++) {
		const char *pat = e->from[i];

		if (!pat || pat[0] == '\0' || strcmp(pat, "!") == 0)
			abort();
		/* a literal exclusion wins over any inclusion */
		if (pat[0] == '!' && fuzz_is_literal(pat + 1) && access_from_allows(e, pat + 1))
			abort();
		(void)access_from_allows(e, pat);
	}
	for (size_t i = 0; i < FUZZ_N(fuzz_fixed_addrs); i++)
		(void)access_from_allows(e, fuzz_fixed_addrs[i]);
	if (e->comment)
		(void)access_from_allows(e, e->comment);
}

static char fuzz_grant[ACCESS_GRANT_MAX + 1];

static void fuzz_check_grant(const struct access_entry *e)
{
	struct access_entry *g = NULL;
	char msg[ACCESS_MSG_MAX];
	int n = access_format_grant(e, fuzz_grant, sizeof(fuzz_grant)), r;

	if (n == -ENOBUFS) {
		if (fuzz_grant[0] != '\0')
			abort();
		return;
	}
	if (n < 0 || (size_t)n != strlen(fuzz_grant))
		abort();
	r = access_parse_grant(fuzz_grant, (size_t)n, &g, msg, sizeof(msg));
	if (r == -ENOMEM)
		return;
	if (r != 0 || g->n_rules != e->n_rules || g->brk != e->brk || g->gateway)
		abort();
	for (size_t i = 0; i < e->n_rules; i++)
		if (strcmp(g->rules[i].pattern, e->rules[i].pattern) != 0 ||
		    g->rules[i].right != e->rules[i].right)
			abort();
	for (size_t i = 0; i < FUZZ_N(fuzz_fixed_consoles); i++)
		if (access_check(g, &fuzz_fixed_consoles[i]) !=
		    access_check(e, &fuzz_fixed_consoles[i]))
			abort();
	access_entry_free(g);
}

static void fuzz_check_warnings(const struct access_file *f, unsigned nlines)
{
	unsigned prev = 0;
	size_t ei = 0;

	if (f->n_warnings > FUZZ_ACCESS_MAX_ERRORS || (f->n_warnings > 0 && !f->warnings))
		abort();
	for (size_t i = 0; i < f->n_warnings; i++) {
		const struct access_error *w = &f->warnings[i];
		size_t n;

		if (w->line == 0 || w->line > nlines || w->line < prev || !w->message)
			abort();
		prev = w->line;
		/* only for a line that loaded */
		while (ei < f->n_entries && f->entries[ei].line < w->line)
			ei++;
		if (ei == f->n_entries || f->entries[ei].line != w->line)
			abort();
		n = strlen(w->message);
		if (n == 0 || n >= ACCESS_MSG_MAX)
			abort();
		for (size_t k = 0; k < n; k++)
			if (w->message[k] < 0x20 || w->message[k] > 0x7e)
				abort();
	}
}

static void fuzz_check_errors(const struct access_file *f, unsigned nlines)
{
	unsigned prev = 0;

	if (f->n_errors > FUZZ_ACCESS_MAX_ERRORS)
		abort();
	for (size_t i = 0; i < f->n_errors; i++) {
		const struct access_error *err = &f->errors[i];
		size_t n;

		if (err->line == 0 || err->line > nlines || err->line <= prev)
			abort();
		prev = err->line;
		if (!err->message)
			abort();
		n = strlen(err->message);
		if (n == 0 || n >= ACCESS_MSG_MAX)
			abort();
		for (size_t k = 0; k < n; k++)
			if (err->message[k] < 0x20 || err->message[k] > 0x7e)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct access_file *f = NULL;
	unsigned nlines, prev = 0;
	size_t ei = 0;
	int r;

	if (size > FUZZ_ACCESS_MAX_INPUT)
		return 0;
	nlines = fuzz_count_lines(data, size);

	r = access_parse((const char *)data, size, &f);
	if (r == -ENOMEM)
		return 0;
	if (r != 0 || !f)
		abort();
	if ((f->n_entries > 0 && !f->entries) || (f->n_errors > 0 && !f->errors))
		abort();

	fuzz_check_errors(f, nlines);
	fuzz_check_warnings(f, nlines);
	for (size_t i = 0; i < f->n_entries; i++) {
		const struct access_entry *e = &f->entries[i];

		if (e->line == 0 || e->line > nlines || e->line <= prev)
			abort();
		prev = e->line;
		/* errors are sorted too: no line is both an entry and an error */
		while (ei < f->n_errors && f->errors[ei].line < e->line)
			ei++;
		if (ei < f->n_errors && f->errors[ei].line == e->line)
			abort();
		fuzz_check_key(e);
		fuzz_check_rights(e);
		fuzz_check_from(e);
		fuzz_check_grant(e);
	}

	access_file_free(f);
	return 0;
}
