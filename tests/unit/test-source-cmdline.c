/* SPDX-License-Identifier: MIT */
/*
 * The --console options as a source (broker/source-cmdline.c): a rescan
 * after new options keeps the consoles still listed (the same objects, so
 * their clients stay), removes the others, adds the new ones, and retries
 * one that was refused; a bad option at start leaves nothing behind.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "console.h"
#include "registry.h"
#include "source-cmdline.h"
#include "util.h"

struct fx {
	sd_event *e;
	struct registry reg;
	struct console_env cenv;
	struct source_env env;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(sd_event_new(&fx->e), 0);
	registry_init(&fx->reg);
	fx->cenv = (struct console_env){ .event = fx->e, .ring_size = 4096 };
	fx->env = (struct source_env){ .event = fx->e, .registry = &fx->reg,
				       .console = &fx->cenv };
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(fx->reg.n_consoles, 0); /* the source took its consoles with it */
	registry_done(&fx->reg);
	sd_event_unref(fx->e);
	free(fx);
	return 0;
}

static struct console *find(struct fx *fx, const char *name)
{
	return registry_find_exact(&fx->reg, name);
}

static void test_rescan_diffs_the_options(void **state)
{
	struct fx *fx = *state;
	const char *first[] = { "a=/nonexistent/a.sock", "b=/nonexistent/b.sock" };
	const char *second[] = { "b=/nonexistent/b.sock", "c=/nonexistent/c.sock" };
	const char *third[] = { "b=/nonexistent/elsewhere.sock" };
	struct console *b;
	struct source *s;

	assert_int_equal(source_cmdline_open(&fx->env, first, 2, &s), 0);
	assert_string_equal(s->ops->kind, "cmdline");
	assert_int_equal(fx->reg.n_consoles, 2);
	assert_non_null(find(fx, "a"));
	b = find(fx, "b");
	assert_non_null(b);
	assert_string_equal(b->origin, "--console option");
	assert_true(b->primary);
	assert_string_equal(b->path, "/nonexistent/b.sock");

	/* Set, but not applied until the rescan. */
	assert_int_equal(source_cmdline_set(s, second, 2), 0);
	assert_non_null(find(fx, "a"));
	assert_null(find(fx, "c"));
	assert_int_equal(s->ops->rescan(s), 0);
	assert_null(find(fx, "a"));
	assert_ptr_equal(find(fx, "b"), b); /* kept, not made again */
	assert_non_null(find(fx, "c"));
	assert_int_equal(fx->reg.n_consoles, 2);

	/* Another path is another console. */
	assert_int_equal(source_cmdline_set(s, third, 1), 0);
	assert_int_equal(s->ops->rescan(s), 0);
	assert_int_equal(fx->reg.n_consoles, 1);
	assert_string_equal(find(fx, "b")->path, "/nonexistent/elsewhere.sock");

	s->ops->free(s);
}

static void test_refused_console_is_retried(void **state)
{
	struct fx *fx = *state;
	const char *args[] = { "x=/nonexistent/x.sock", "x=/nonexistent/y.sock" };
	const char *one[] = { "x=/nonexistent/y.sock" };
	struct source *s;

	/* Two consoles of one name: the second is refused, which fails the start. */
	assert_int_equal(source_cmdline_open(&fx->env, args, 2, &s), -EEXIST);
	assert_int_equal(fx->reg.n_consoles, 0);

	assert_int_equal(source_cmdline_open(&fx->env, args, 1, &s), 0);
	assert_int_equal(source_cmdline_set(s, args, 2), 0);
	assert_int_equal(s->ops->rescan(s), -EEXIST);
	assert_string_equal(find(fx, "x")->path, "/nonexistent/x.sock");
	/* The first goes: the refused one gets its name now. */
	assert_int_equal(source_cmdline_set(s, one, 1), 0);
	assert_int_equal(s->ops->rescan(s), 0);
	assert_string_equal(find(fx, "x")->path, "/nonexistent/y.sock");
	s->ops->free(s);
}

static void test_bad_option(void **state)
{
	struct fx *fx = *state;
	const char *args[] = { "ok=/nonexistent/ok.sock", "vm:alias=/nonexistent/bad.sock" };
	struct source *s = NULL;

	assert_int_equal(source_cmdline_open(&fx->env, args, 2, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(fx->reg.n_consoles, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rescan_diffs_the_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_console_is_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_option, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
