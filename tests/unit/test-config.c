/* SPDX-License-Identifier: MIT */
/*
 * Configuration file parser: entries with their line numbers, comments and
 * blanks, quoting, and every kind of bad line reported with its number while
 * the good lines still load.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static struct config *parse(const char *text)
{
	struct config *c = NULL;

	assert_int_equal(config_parse(text, strlen(text), &c), 0);
	return c;
}

static void test_entries(void **state)
{
	struct config *c = parse("# comment\n\n  ring-size = 4M  \nconsole=a=/x.sock\n"
				 "socket = \"/run/x y.sock\"\r\nreplay=\n");

	assert_int_equal(c->n_errors, 0);
	assert_int_equal(c->n_entries, 4);
	assert_string_equal(c->entries[0].key, "ring-size");
	assert_string_equal(c->entries[0].value, "4M");
	assert_int_equal(c->entries[0].line, 3);
	assert_string_equal(c->entries[1].key, "console");
	assert_string_equal(c->entries[1].value, "a=/x.sock"); /* only the first '=' splits */
	assert_string_equal(c->entries[2].value, "/run/x y.sock");
	assert_int_equal(c->entries[2].line, 5);
	assert_string_equal(c->entries[3].value, "");
	config_free(c);
}

static void test_errors_keep_good_lines(void **state)
{
	struct config *c = parse("ring-size = 1M\nbogus line\n= value\nbad key = 1\n"
				 "replay = 5\nnul\0byte = 1\n");

	/* parse() used strlen: the NUL ends the text, so line 6 reads "nul". */
	assert_int_equal(c->n_entries, 2);
	assert_string_equal(c->entries[1].key, "replay");
	assert_int_equal(c->n_errors, 4);
	assert_int_equal(c->errors[0].line, 2);
	assert_non_null(strstr(c->errors[0].message, "expected \"option = value\""));
	assert_int_equal(c->errors[1].line, 3);
	assert_non_null(strstr(c->errors[1].message, "missing option name"));
	assert_int_equal(c->errors[2].line, 4);
	assert_non_null(strstr(c->errors[2].message, "bad option name"));
	assert_int_equal(c->errors[3].line, 6);
	config_free(c);
}

static void test_nul_byte(void **state)
{
	static const char text[] = "a = 1\nb\0c = 2\n";
	struct config *c = NULL;

	assert_int_equal(config_parse(text, sizeof(text) - 1, &c), 0);
	assert_int_equal(c->n_entries, 1);
	assert_int_equal(c->n_errors, 1);
	assert_int_equal(c->errors[0].line, 2);
	assert_non_null(strstr(c->errors[0].message, "NUL"));
	config_free(c);
}

static void test_limits(void **state)
{
	struct config *c = NULL;
	char *big = malloc(CONFIG_MAX_SIZE + 2);

	memset(big, '#', CONFIG_MAX_SIZE + 1);
	assert_int_equal(config_parse(big, CONFIG_MAX_SIZE + 1, &c), -EFBIG);
	assert_null(c);
	free(big);
	c = parse("");
	assert_int_equal(c->n_entries + c->n_errors, 0);
	config_free(c);
}

static void test_bool(void **state)
{
	assert_int_equal(config_parse_bool("yes"), 1);
	assert_int_equal(config_parse_bool("TRUE"), 1);
	assert_int_equal(config_parse_bool("on"), 1);
	assert_int_equal(config_parse_bool("1"), 1);
	assert_int_equal(config_parse_bool("no"), 0);
	assert_int_equal(config_parse_bool("Off"), 0);
	assert_int_equal(config_parse_bool("0"), 0);
	assert_int_equal(config_parse_bool("maybe"), -EINVAL);
	assert_int_equal(config_parse_bool(""), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_errors_keep_good_lines),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_bool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
