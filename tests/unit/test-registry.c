/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the console registry (broker/registry.c): names mean one
 * thing.  Consoles are bare structs (no chardev, no server); list pieces
 * describe them through the test's own callback (describe() below).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry.h"

#define U1 "c7a5fdbd-cdaf-9455-926a-d65c16db1809"
#define U2 "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
#define U3 "cafe0000-1111-2222-3333-444455556666"

/* How registry_list_piece() describes each console; ttyhubd's uses the client's rights. */
static json_t *describe(void *userdata, const struct console *c)
{
	const char *hide = userdata;

	if (hide && strcmp(c->name, hide) == 0)
		return NULL;
	return json_pack("{s:s}", "name", c->name);
}

static struct console *con_new(const char *vm, const char *uuid, const char *alias, bool primary,
			       const char *origin)
{
	struct console *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->vm = strdup(vm);
	c->uuid = uuid ? strdup(uuid) : NULL;
	c->alias = alias ? strdup(alias) : NULL;
	c->primary = primary;
	c->origin = strdup(origin ? origin : "test");
	if (alias)
		assert_true(asprintf(&c->name, "%s:%s", vm, alias) > 0);
	else
		c->name = strdup(vm);
	assert_true(asprintf(&c->order, "%s\x01%c%s", vm, primary ? '0' : '1', c->name) > 0);
	return c;
}

static void con_free(struct console *c)
{
	free(c->name);
	free(c->vm);
	free(c->uuid);
	free(c->alias);
	free(c->origin);
	free(c->order);
	free(c);
}

static void reg_free(struct registry *r)
{
	struct console *c;

	while ((c = TAILQ_FIRST(&r->consoles))) {
		registry_remove(r, c);
		con_free(c);
	}
	registry_done(r);
}

/* Add c, which must be accepted. */
static struct console *add_ok(struct registry *r, struct console *c)
{
	char err[512] = "";
	int k = registry_add(r, c, err, sizeof(err));

	if (k < 0)
		fail_msg("console %s refused: %s", c->name, err);
	return c;
}

/* Add c, which must be refused with code; the reason must contain what (if not NULL). */
static void add_refused(struct registry *r, struct console *c, int code, const char *what)
{
	char err[512] = "";
	int k = registry_add(r, c, err, sizeof(err));

	if (k != code)
		fail_msg("console %s: %d, expected %d (%s)", c->name, k, code, err);
	assert_true(err[0] != '\0');
	if (what && !strstr(err, what))
		fail_msg("console %s: reason \"%s\" lacks \"%s\"", c->name, err, what);
	for (const char *p = err; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	con_free(c);
}

static struct console *find(struct registry *r, const char *name)
{
	struct console *c = NULL;
	int k = registry_lookup(r, name, &c);

	if (k < 0)
		return NULL;
	assert_non_null(c);
	assert_ptr_equal(registry_find(r, name), c);
	return c;
}

static void test_uuid_canonical(void **state)
{
	assert_true(uuid_is_canonical(U1));
	assert_true(uuid_is_canonical("C7A5FDBD-CDAF-9455-926A-D65C16DB1809"));
	assert_false(uuid_is_canonical(""));
	assert_false(uuid_is_canonical("web01"));
	assert_false(uuid_is_canonical("c7a5fdbdcdaf9455926ad65c16db1809"));
	assert_false(uuid_is_canonical("{" U1 "}"));
	assert_false(uuid_is_canonical(U1 "0"));
	assert_false(uuid_is_canonical(U1 ":serial0"));
	assert_false(uuid_is_canonical("c7a5fdbd-cdaf-9455-926a-d65c16db180g"));
	assert_false(uuid_is_canonical("c7a5fdbd-cdaf-9455-926ad-65c16db1809"));
	assert_true(uuid_is_canonical_n(U1 ":serial0", 36));
	assert_false(uuid_is_canonical_n(U1, 35));
}

static void test_lookup_precedence(void **state)
{
	struct registry r;
	struct console *web, *web_c1, *db, *plain;

	registry_init(&r);
	web = add_ok(&r, con_new("web01", U1, "serial0", true, NULL));
	web_c1 = add_ok(&r, con_new("web01", U1, "console1", false, NULL));
	db = add_ok(&r, con_new("db01", U2, "serial0", true, NULL));
	plain = add_ok(&r, con_new("plain", NULL, NULL, true, "--console option"));

	assert_ptr_equal(find(&r, "web01:serial0"), web);
	assert_ptr_equal(find(&r, "web01:console1"), web_c1);
	assert_ptr_equal(find(&r, "web01"), web); /* the VM: its primary console */
	assert_ptr_equal(find(&r, U1), web);
	assert_ptr_equal(find(&r, "C7A5FDBD-CDAF-9455-926A-D65C16DB1809"), web);
	assert_ptr_equal(find(&r, U1 ":console1"), web_c1);
	assert_ptr_equal(find(&r, "C7A5FDBD-CDAF-9455-926A-D65C16DB1809:console1"), web_c1);
	assert_ptr_equal(find(&r, U2), db);
	assert_ptr_equal(find(&r, "plain"), plain);

	/* no prefixes, no partial UUIDs, aliases are case-sensitive */
	assert_null(find(&r, "web0"));
	assert_null(find(&r, "c7a5fdbd"));
	assert_null(find(&r, "c7a5fdbd-cdaf-9455-926a-d65c16db180"));
	assert_null(find(&r, U1 ":Console1"));
	assert_null(find(&r, U1 ":"));
	assert_null(find(&r, U3));
	assert_null(find(&r, ""));
	assert_int_equal(registry_lookup(&r, "nothing", &web), -ENOENT);
	reg_free(&r);
}

/* More than one console at the winning level is an error, never the first in list order. */
static void test_lookup_ambiguous(void **state)
{
	struct registry r;
	struct console *a, *b, *c, *got = NULL;

	registry_init(&r);
	/* Bypass registry_add (which refuses these) to test lookup on its own. */
	a = con_new("alpha", U1, "serial0", true, NULL);
	b = con_new("beta", U1, "serial0", true, NULL);
	TAILQ_INSERT_TAIL(&r.consoles, a, entry);
	TAILQ_INSERT_TAIL(&r.consoles, b, entry);
	r.n_consoles = 2;
	assert_int_equal(registry_lookup(&r, U1, &got), -ENOTUNIQ);
	assert_null(got);
	assert_null(registry_find(&r, U1));
	assert_int_equal(registry_lookup(&r, U1 ":serial0", &got), -ENOTUNIQ);
	/* a higher level with one match still wins */
	assert_int_equal(registry_lookup(&r, "alpha", &got), 0);
	assert_ptr_equal(got, a);

	/* two primaries of one VM name: ambiguous at the VM level */
	c = con_new("alpha", U1, "console0", true, NULL);
	TAILQ_INSERT_TAIL(&r.consoles, c, entry);
	r.n_consoles++;
	got = NULL;
	assert_int_equal(registry_lookup(&r, "alpha", &got), -ENOTUNIQ);
	assert_null(got);
	assert_int_equal(registry_lookup(&r, "alpha:console0", &got), 0);
	assert_ptr_equal(got, c);
	reg_free(&r);
}

/* An exact console name beats a VM name, which beats a UUID. */
static void test_lookup_levels(void **state)
{
	struct registry r;
	struct console *named, *vm;

	registry_init(&r);
	/* console "x:y" from --console-like source, and VM "x" with alias "z" */
	vm = add_ok(&r, con_new("x", U1, "z", true, NULL));
	named = con_new("x", U1, "y", false, NULL);
	add_ok(&r, named);
	assert_ptr_equal(find(&r, "x:y"), named);
	assert_ptr_equal(find(&r, "x"), vm);
	reg_free(&r);
}

static void test_lookup_too_long(void **state)
{
	struct registry r;
	struct console *c = NULL;
	char name[REGISTRY_NAME_MAX + 2];

	registry_init(&r);
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(registry_lookup(&r, name, &c), -ENAMETOOLONG);
	name[REGISTRY_NAME_MAX] = '\0';
	assert_int_equal(registry_lookup(&r, name, &c), -ENOENT);
	reg_free(&r);
}

static void test_add_refusals(void **state)
{
	struct registry r;

	registry_init(&r);
	add_ok(&r, con_new("web01", U1, "serial0", true, NULL));
	add_ok(&r, con_new("web01", U1, "console1", false, NULL));
	add_ok(&r, con_new("solo", NULL, NULL, true, "--console option"));

	/* only canonical UUIDs */
	add_refused(&r, con_new("a", "web01", "serial0", true, NULL), -EINVAL, "not canonical");
	add_refused(&r, con_new("a", "c7a5fdbdcdaf9455926ad65c16db1809", "serial0", true, NULL),
		    -EINVAL, "not canonical");
	add_refused(&r, con_new("a", "", "serial0", true, NULL), -EINVAL, "not canonical");
	add_refused(&r, con_new("a", "x\x1b[2J", "serial0", true, NULL), -EINVAL, "\\x1b");
	/* a VM named like a UUID: its own, another VM's, or any */
	add_refused(&r, con_new(U1, U2, "serial0", true, NULL), -EINVAL, "is a UUID");
	add_refused(&r, con_new(U3, NULL, NULL, true, NULL), -EINVAL, "is a UUID");
	add_refused(&r, con_new("C7A5FDBD-CDAF-9455-926A-D65C16DB1809", U2, "serial0", true, NULL),
		    -EINVAL, "is a UUID");
	/* the same console name, or a second primary console */
	add_refused(&r, con_new("web01", U1, "serial0", true, NULL), -EEXIST, "already defined");
	add_refused(&r, con_new("web01", U1, "serial1", true, NULL), -EEXIST, "primary");
	/* a VM name taken by another UUID (or by a console without one) */
	add_refused(&r, con_new("web01", U2, "serial1", false, NULL), -ENOTUNIQ, U1);
	add_refused(&r, con_new("web01", NULL, "serial1", false, NULL), -ENOTUNIQ, NULL);
	add_refused(&r, con_new("solo", U2, "serial0", false, NULL), -ENOTUNIQ, NULL);
	/* a UUID taken by another VM name, in any case */
	add_refused(&r, con_new("evil", U1, "serial0", true, NULL), -ENOTUNIQ, "web01");
	add_refused(&r, con_new("evil", "C7A5FDBD-CDAF-9455-926A-D65C16DB1809", "serial0", true,
				NULL), -ENOTUNIQ, "web01");
	/* a VM name that is another console's name */
	add_refused(&r, con_new("web01:serial0", U2, "x", true, NULL), -ENOTUNIQ, NULL);

	/* the same VM from another definition: same name and UUID, another alias */
	add_ok(&r, con_new("web01", "C7A5FDBD-CDAF-9455-926A-D65C16DB1809", "serial2", false, NULL));
	assert_int_equal(r.n_consoles, 4);
	reg_free(&r);
}

/* The victim's UUID named as the impostor's VM name: refused whichever comes first. */
static void test_add_impostor_either_order(void **state)
{
	struct registry r;

	registry_init(&r);
	add_ok(&r, con_new("victim", U1, "serial0", true, NULL));
	add_refused(&r, con_new(U1, U2, "serial0", true, NULL), -EINVAL, NULL);
	reg_free(&r);

	registry_init(&r);
	add_refused(&r, con_new(U1, U2, "serial0", true, NULL), -EINVAL, NULL);
	add_ok(&r, con_new("victim", U1, "serial0", true, NULL));
	assert_ptr_equal(find(&r, U1), TAILQ_FIRST(&r.consoles));
	reg_free(&r);
}

static void test_check_names(void **state)
{
	char err[512], vm[REGISTRY_VM_MAX + 1], alias[REGISTRY_ALIAS_MAX + 1], ctl[80];

	memset(vm, 'v', sizeof(vm) - 1);
	vm[REGISTRY_VM_LEN] = '\0';
	assert_int_equal(registry_check_names(vm, NULL, err, sizeof(err)), 0);
	vm[REGISTRY_VM_LEN] = 'v';
	vm[REGISTRY_VM_LEN + 1] = '\0';
	assert_int_equal(registry_check_names(vm, NULL, err, sizeof(err)), -ENAMETOOLONG);
	assert_non_null(strstr(err, "too long"));

	memset(alias, 'a', sizeof(alias) - 1);
	alias[REGISTRY_ALIAS_LEN] = '\0';
	assert_int_equal(registry_check_names("vm", alias, err, sizeof(err)), 0);
	alias[REGISTRY_ALIAS_LEN] = 'a';
	alias[REGISTRY_ALIAS_LEN + 1] = '\0';
	assert_int_equal(registry_check_names("vm", alias, err, sizeof(err)), -ENAMETOOLONG);

	/* the escaped length counts: 64 control bytes are 256 bytes escaped */
	memset(ctl, '\x01', 64);
	ctl[64] = '\0';
	assert_int_equal(registry_check_names(ctl, NULL, err, sizeof(err)), -ENAMETOOLONG);
	for (const char *p = err; *p; p++)
		assert_true((unsigned char)*p >= 0x20);
	ctl[REGISTRY_VM_LEN / 4] = '\0';
	assert_int_equal(registry_check_names(ctl, NULL, err, sizeof(err)), 0);
	ctl[REGISTRY_VM_LEN / 4 + 1] = '\0';
	ctl[REGISTRY_VM_LEN / 4] = '\x01';
	assert_int_equal(registry_check_names(ctl, NULL, err, sizeof(err)), -ENAMETOOLONG);
}

static size_t count_errors(struct registry *r)
{
	struct source_error *e;
	size_t n = 0;

	TAILQ_FOREACH(e, &r->errors, entry)
		n++;
	return n;
}

/* Refusals show in the list and go away when the console is added fine or its source forgets. */
static void test_refusal_errors(void **state)
{
	struct registry r;
	struct console *c;
	const char *last;
	json_t *piece, *errors;

	registry_init(&r);
	registry_set_error(&r, "/d/a.xml", "does not parse");
	registry_set_refused(&r, "/d/b.xml", "evil:serial0", "console evil:serial0 refused: x");
	registry_set_refused(&r, "/d/b.xml", "evil:serial0", "console evil:serial0 refused: y");
	registry_set_refused(&r, "/d/b.xml", "evil:console1", "console evil:console1 refused: y");
	registry_set_refused(&r, "libvirt qemu:///system", "other:serial0", "refused: z");
	assert_int_equal(count_errors(&r), 4);

	piece = registry_list_piece(&r, NULL, 60000, true, describe, NULL, &last);
	errors = json_object_get(piece, "errors");
	assert_int_equal(json_array_size(errors), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 1), "origin")),
			    "/d/b.xml");
	assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 1),
							      "message")),
			    "console evil:serial0 refused: y");
	json_decref(piece);

	/* the source's own error replaces only itself */
	registry_set_error(&r, "/d/b.xml", "cannot read");
	assert_int_equal(count_errors(&r), 5);
	/* re-added fine: that console's refusal goes */
	c = add_ok(&r, con_new("evil", U2, "serial0", true, "/d/b.xml"));
	assert_int_equal(count_errors(&r), 4);
	/* the source forgets the file: every error of it goes */
	registry_clear_error(&r, "/d/b.xml");
	assert_int_equal(count_errors(&r), 2);
	registry_clear_refused(&r, "libvirt qemu:///system", "other:serial0");
	assert_int_equal(count_errors(&r), 1);
	registry_clear_error(&r, "/d/a.xml");
	assert_int_equal(count_errors(&r), 0);
	assert_ptr_equal(find(&r, "evil"), c);
	reg_free(&r);
}

/* A domain that goes takes the refusals of its VM's consoles with it, and nobody else's. */
static void test_refusals_of_a_vm(void **state)
{
	const char *lv = "libvirt qemu:///system";
	struct registry r;

	registry_init(&r);
	registry_set_refused(&r, lv, "evil", "refused: a");
	registry_set_refused(&r, lv, "evil:serial0", "refused: b");
	registry_set_refused(&r, lv, "evil:console1", "refused: c");
	registry_set_refused(&r, lv, "evil2:serial0", "refused: d"); /* another VM, same prefix */
	registry_set_refused(&r, "/d/x.xml", "evil:serial0", "refused: e"); /* another source */
	registry_set_error(&r, lv, "source error");
	assert_int_equal(count_errors(&r), 6);
	registry_clear_refused_vm(&r, lv, "evil");
	assert_int_equal(count_errors(&r), 3);
	registry_clear_refused_vm(&r, lv, "evil2");
	assert_int_equal(count_errors(&r), 2); /* the source's own error stays */
	registry_clear_refused_vm(&r, "/d/x.xml", "evil");
	assert_int_equal(count_errors(&r), 1);
	reg_free(&r);
}

/* A client's list: only what describe() shows, errors only when asked, "more" only if shown. */
static void test_list_filtered(void **state)
{
	struct registry r;
	const char *last;
	json_t *piece, *consoles;

	registry_init(&r);
	add_ok(&r, con_new("a", U1, "serial0", true, "t"));
	add_ok(&r, con_new("b", U2, "serial0", true, "t"));
	registry_set_error(&r, "/d/a.xml", "does not parse");

	piece = registry_list_piece(&r, NULL, 60000, false, describe, "b:serial0", &last);
	consoles = json_object_get(piece, "consoles");
	assert_int_equal(json_array_size(consoles), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(consoles, 0), "name")),
			    "a:serial0");
	assert_int_equal(json_array_size(json_object_get(piece, "errors")), 0);
	assert_true(json_is_false(json_object_get(piece, "more")));
	assert_string_equal(json_string_value(json_object_get(piece, "type")), "list");
	json_decref(piece);

	/* A budget for one console: the hidden one does not make "more" true. */
	piece = registry_list_piece(&r, NULL, 30, false, describe, "b:serial0", &last);
	assert_int_equal(json_array_size(json_object_get(piece, "consoles")), 1);
	assert_true(json_is_false(json_object_get(piece, "more")));
	json_decref(piece);
	piece = registry_list_piece(&r, NULL, 30, false, describe, NULL, &last);
	assert_int_equal(json_array_size(json_object_get(piece, "consoles")), 1);
	assert_true(json_is_true(json_object_get(piece, "more")));
	json_decref(piece);
	reg_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_filtered),
		cmocka_unit_test(test_uuid_canonical),
		cmocka_unit_test(test_lookup_precedence),
		cmocka_unit_test(test_lookup_ambiguous),
		cmocka_unit_test(test_lookup_levels),
		cmocka_unit_test(test_lookup_too_long),
		cmocka_unit_test(test_add_refusals),
		cmocka_unit_test(test_add_impostor_either_order),
		cmocka_unit_test(test_check_names),
		cmocka_unit_test(test_refusal_errors),
		cmocka_unit_test(test_refusals_of_a_vm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
