/* SPDX-License-Identifier: MIT */
/*
 * Joining a console list that ttyhubd sent in pieces: order kept, errors
 * gathered, one-piece lists unchanged, malformed pieces and lists past the
 * bound refused (and the partial list freed).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "listing.h"

static json_t *piece(int first, int n, bool more, const char *error)
{
	json_t *consoles = json_array(), *errors = json_array();

	for (int i = first; i < first + n; i++)
		json_array_append_new(consoles, json_pack("{s:i}", "n", i));
	if (error)
		json_array_append_new(errors, json_pack("{s:s, s:s}", "origin", "x.xml", "message",
							error));
	return json_pack("{s:s, s:o, s:o, s:b}", "type", "list", "consoles", consoles, "errors",
			 errors, "more", more);
}

static void test_pieces_joined_in_order(void **state)
{
	json_t *acc = NULL, *p, *c;
	size_t i;

	p = piece(0, 3, true, "bad XML");
	assert_int_equal(listing_collect(&acc, p), 1);
	json_decref(p);
	p = piece(3, 2, true, NULL);
	assert_int_equal(listing_collect(&acc, p), 1);
	json_decref(p);
	p = piece(5, 4, false, "another");
	assert_int_equal(listing_collect(&acc, p), 0);
	json_decref(p);

	assert_int_equal(json_array_size(json_object_get(acc, "consoles")), 9);
	json_array_foreach(json_object_get(acc, "consoles"), i, c)
		assert_int_equal(json_integer_value(json_object_get(c, "n")), (json_int_t)i);
	assert_int_equal(json_array_size(json_object_get(acc, "errors")), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(acc, "errors"), 1), "message")), "another");
	json_decref(acc);
}

static void test_single_piece_without_more(void **state)
{
	json_t *acc = NULL, *p = json_pack("{s:s, s:[{s:s}]}", "type", "list", "consoles", "name",
					   "vm");

	/* An older broker: no "more", no "errors". */
	assert_int_equal(listing_collect(&acc, p), 0);
	json_decref(p);
	assert_int_equal(json_array_size(json_object_get(acc, "consoles")), 1);
	assert_int_equal(json_array_size(json_object_get(acc, "errors")), 0);
	json_decref(acc);
}

static void test_malformed_piece_frees_partial(void **state)
{
	json_t *acc = NULL, *p = piece(0, 2, true, NULL), *bad;

	assert_int_equal(listing_collect(&acc, p), 1);
	json_decref(p);
	bad = json_pack("{s:s, s:s}", "type", "list", "consoles", "not an array");
	assert_int_equal(listing_collect(&acc, bad), -EBADMSG);
	assert_null(acc);
	json_decref(bad);
	bad = json_pack("{s:s, s:[], s:i}", "type", "list", "consoles", "errors", 3);
	assert_int_equal(listing_collect(&acc, bad), -EBADMSG);
	assert_null(acc);
	json_decref(bad);
}

/*
 * Feed the same piece (which says more follow) until listing_collect()
 * stops, then drop it; returns its last answer, and in *ret_pieces how many
 * pieces it took.
 */
static int collect_until_refused(json_t *p, int *ret_pieces)
{
	json_t *acc = NULL;
	int r = 1, pieces = 0;

	while (r == 1) {
		r = listing_collect(&acc, p);
		pieces++;
	}
	json_decref(p);
	assert_null(acc);
	*ret_pieces = pieces;
	return r;
}

static void test_bound(void **state)
{
	int pieces;

	assert_int_equal(collect_until_refused(piece(0, 4096, true, NULL), &pieces), -E2BIG);
	assert_int_equal(pieces, LISTING_MAX_CONSOLES / 4096 + 1);
}

/* Errors count against the bound too, and so do empty pieces that never end. */
static void test_bound_errors_and_pieces(void **state)
{
	json_t *errors = json_array();
	int pieces;

	for (int i = 0; i < 4096; i++)
		json_array_append_new(errors, json_pack("{s:s, s:s}", "origin", "o", "message", "m"));
	assert_int_equal(collect_until_refused(json_pack("{s:s, s:[], s:o, s:b}", "type", "list",
							 "consoles", "errors", errors, "more",
							 true), &pieces),
			 -E2BIG);
	assert_int_equal(pieces, LISTING_MAX_CONSOLES / 4096 + 1);

	assert_int_equal(collect_until_refused(piece(0, 0, true, NULL), &pieces), -E2BIG);
	assert_int_equal(pieces, LISTING_MAX_PIECES + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pieces_joined_in_order),
		cmocka_unit_test(test_single_piece_without_more),
		cmocka_unit_test(test_malformed_piece_frees_partial),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_bound_errors_and_pieces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
