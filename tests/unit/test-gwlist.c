/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for console names on a gateway: qualified names split, an
 * unqualified name resolves to the one host where it means a console (by
 * name, primary VM console, UUID, UUID:ALIAS) and is ambiguous on two,
 * merged lists and messages from a host come back qualified.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gwlist.h"

#define UUID1 "c7a5fdbd-cdaf-9455-926a-d65c16db1809"

static json_t *console(const char *vm, const char *alias, const char *uuid, bool primary)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:b}", "name", "", "vm", vm, "alias", alias,
			      "primary", primary);
	char name[128];

	snprintf(name, sizeof(name), "%s:%s", vm, alias);
	json_object_set_new(c, "name", json_string(name));
	if (uuid)
		json_object_set_new(c, "uuid", json_string(uuid));
	return c;
}

static void test_split(void **state)
{
	char host[HOSTS_NAME_MAX];
	const char *rest = NULL;

	assert_int_equal(gwlist_split("h2/web01", host, &rest), 1);
	assert_string_equal(host, "h2");
	assert_string_equal(rest, "web01");
	assert_int_equal(gwlist_split("web01:serial0", host, &rest), 0);
	assert_int_equal(gwlist_split("/web01", host, &rest), -EINVAL);
	assert_int_equal(gwlist_split("h2/", host, &rest), -EINVAL);
	char long_host[HOSTS_NAME_MAX + 8];
	memset(long_host, 'h', HOSTS_NAME_MAX);
	strcpy(long_host + HOSTS_NAME_MAX, "/x");
	assert_int_equal(gwlist_split(long_host, host, &rest), -EINVAL);
}

static void test_resolve(void **state)
{
	json_t *h1 = json_pack("[o, o]", console("web01", "serial0", UUID1, true),
			       console("web01", "console0", UUID1, false));
	json_t *h2 = json_pack("[o, o]", console("db01", "serial0", NULL, true),
			       console("web02", "serial0", NULL, true));
	json_t *h3 = json_pack("[o]", console("web02", "serial0", NULL, true));
	json_t *lists[] = { h1, h2, NULL, h3 };
	const char *names[] = { "h1", "h2", "down", "h3" };
	char choices[64];

	assert_int_equal(gwlist_resolve(lists, names, 4, "web01", choices, sizeof(choices)), 0);
	assert_int_equal(gwlist_resolve(lists, names, 4, "web01:console0", choices,
					sizeof(choices)), 0);
	/* A UUID in any case, and UUID:ALIAS. */
	assert_int_equal(gwlist_resolve(lists, names, 4, "C7A5FDBD-CDAF-9455-926A-D65C16DB1809",
					choices, sizeof(choices)), 0);
	assert_int_equal(gwlist_resolve(lists, names, 4, UUID1 ":console0", choices,
					sizeof(choices)), 0);
	assert_int_equal(gwlist_resolve(lists, names, 4, UUID1 ":nope", choices,
					sizeof(choices)), -ENOENT);
	assert_int_equal(gwlist_resolve(lists, names, 4, "db01", choices, sizeof(choices)), 1);
	assert_int_equal(gwlist_resolve(lists, names, 4, "nope", choices, sizeof(choices)), -ENOENT);
	/* A VM's console that is not its primary one does not answer to the VM's name. */
	json_array_remove(h1, 0);
	assert_int_equal(gwlist_resolve(lists, names, 4, "web01", choices, sizeof(choices)), -ENOENT);
	assert_int_equal(gwlist_resolve(lists, names, 4, "web02", choices, sizeof(choices)),
			 -ENOTUNIQ);
	assert_string_equal(choices, "h2/web02:serial0, h3/web02:serial0");
	/* Choices that do not fit are cut with "...". */
	char small[24];
	assert_int_equal(gwlist_resolve(lists, names, 4, "web02", small, sizeof(small)), -ENOTUNIQ);
	assert_string_equal(small, "h2/web02:serial0, ...");
	json_decref(h1);
	json_decref(h2);
	json_decref(h3);
}

static void test_merge_qualify(void **state)
{
	json_t *merged = json_array();
	json_t *h = json_pack("[o, i]", console("web01", "serial0", NULL, true), 7);
	json_t *msg = json_pack("{s:s, s:s}", "type", "attached", "console", "web01:serial0");
	json_t *list = json_pack("{s:s, s:[o]}", "type", "list", "consoles",
				 console("db01", "serial0", NULL, true));

	assert_int_equal(gwlist_merge(merged, "h2", h), 0);
	assert_int_equal(json_array_size(merged), 1); /* the non-object is skipped */
	assert_string_equal(json_string_value(json_object_get(json_array_get(merged, 0), "name")),
			    "h2/web01:serial0");
	assert_string_equal(json_string_value(json_object_get(json_array_get(merged, 0), "host")),
			    "h2");
	/* The host's own list is left as it was. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "name")),
			    "web01:serial0");
	assert_int_equal(gwlist_qualify(msg, "h2"), 0);
	assert_string_equal(json_string_value(json_object_get(msg, "console")), "h2/web01:serial0");
	assert_int_equal(gwlist_qualify(list, "h1"), 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(list, "consoles"), 0), "name")),
			    "h1/db01:serial0");
	json_decref(merged);
	json_decref(h);
	json_decref(msg);
	json_decref(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_merge_qualify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
