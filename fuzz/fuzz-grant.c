/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for grant text (broker/access.h, docs/protocol.md
 * "Gateways"): what a gateway asserts a user may do, as a host reads it.
 * The input is the grant text, NULs and all.
 *
 * - access_parse_grant() returns 0 or -EINVAL (-ENOMEM aside); on -EINVAL
 *   there is no entry and the message is non-empty printable ASCII (it is
 *   logged and sent back); text over ACCESS_GRANT_MAX bytes or holding a NUL
 *   is always refused;
 * - a parsed grant holds only rules and break: no key, comment, from= or
 *   gateway; every rule has a non-empty pattern, the right RO or RW and the
 *   kind access_pattern_kind() gives;
 * - its canonical text (access_format_grant()) always fits, since it is
 *   never longer than the input, and is a fixed point: it parses back to the
 *   same rules in the same order and the same break, and formats to itself;
 * - access_check() of the grant and of its reparse agree for names taken
 *   from the rules' patterns.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "fuzz-util.h"

static char fuzz_canon[ACCESS_GRANT_MAX + 1], fuzz_again[ACCESS_GRANT_MAX + 1];

static void fuzz_check_message(const char *msg)
{
	size_t n = strlen(msg);

	if (n == 0 || n >= ACCESS_MSG_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (msg[i] < 0x20 || msg[i] > 0x7e)
			abort();
}

static void fuzz_check_entry(const struct access_entry *g)
{
	if (g->keytype || g->base64 || g->comment || g->n_from || g->from || g->gateway)
		abort();
	if (g->n_rules > 0 && !g->rules)
		abort();
	for (size_t i = 0; i < g->n_rules; i++) {
		const struct access_rule *r = &g->rules[i];

		if (!r->pattern || r->pattern[0] == '\0' ||
		    (r->right != ACCESS_RO && r->right != ACCESS_RW) ||
		    r->kind != access_pattern_kind(r->pattern))
			abort();
	}
}

static void fuzz_same(const struct access_entry *a, const struct access_entry *b)
{
	if (a->n_rules != b->n_rules || a->brk != b->brk)
		abort();
	for (size_t i = 0; i < a->n_rules; i++) {
		const struct access_console con = { a->rules[i].pattern, a->rules[i].pattern,
						    a->rules[i].pattern };

		if (strcmp(a->rules[i].pattern, b->rules[i].pattern) != 0 ||
		    a->rules[i].right != b->rules[i].right || a->rules[i].kind != b->rules[i].kind)
			abort();
		if (access_check(a, &con) != access_check(b, &con))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct access_entry *g = NULL, *back = NULL;
	char msg[ACCESS_MSG_MAX];
	int r, n;

	/* Past the limit it is refused at once; keep some of that side too. */
	if (size > ACCESS_GRANT_MAX + 16)
		return 0;
	r = access_parse_grant((const char *)data, size, &g, msg, sizeof(msg));
	if (r == -ENOMEM)
		return 0;
	if (r == -EINVAL) {
		if (g)
			abort();
		fuzz_check_message(msg);
		return 0;
	}
	if (r != 0 || !g || size > ACCESS_GRANT_MAX || memchr(data, '\0', size))
		abort();
	fuzz_check_entry(g);
	n = access_format_grant(g, fuzz_canon, sizeof(fuzz_canon));
	if (n < 0 || (size_t)n > size || (size_t)n != strlen(fuzz_canon))
		abort();
	r = access_parse_grant(fuzz_canon, (size_t)n, &back, msg, sizeof(msg));
	if (r == -ENOMEM) {
		access_entry_free(g);
		return 0;
	}
	if (r != 0)
		abort();
	fuzz_check_entry(back);
	fuzz_same(g, back);
	if (access_format_grant(back, fuzz_again, sizeof(fuzz_again)) != n ||
	    strcmp(fuzz_canon, fuzz_again) != 0)
		abort();
	access_entry_free(back);
	access_entry_free(g);
	return 0;
}
