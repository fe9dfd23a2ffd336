/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the SSH exec command parser (ssh-front/exec.h): each
 * command and its options, anything else refused (never guessed), an
 * over-long command refused rather than cut, and the printer of each answer
 * (web-link: the URL alone on its line, nothing for a URL with control
 * characters or blanks).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exec.h"
#include "view.h"

static void test_parse(void **state)
{
	struct exec x;

	assert_int_equal(exec_parse("list", &x), 0);
	assert_int_equal(x.verb, EXEC_LIST);
	assert_int_equal(exec_parse("list --json", &x), 0);
	assert_int_equal(x.verb, EXEC_LIST_JSON);
	assert_int_equal(exec_parse("who vm", &x), 0);
	assert_int_equal(x.verb, EXEC_WHO);
	assert_string_equal(x.name, "vm");
	assert_int_equal(exec_parse("attach vm:serial0 --force", &x), 0);
	assert_int_equal(x.verb, EXEC_ATTACH);
	assert_int_equal(x.mode, ATTACH_FORCE);
	assert_int_equal(exec_parse("web-link vm:serial1", &x), 0);
	assert_int_equal(x.verb, EXEC_WEB_LINK);
	assert_string_equal(x.name, "vm:serial1");
	assert_int_equal(x.mode, ATTACH_RW);
	assert_int_equal(exec_parse("  web-link\tvm  --ro ", &x), 0);
	assert_int_equal(x.verb, EXEC_WEB_LINK);
	assert_string_equal(x.name, "vm");
	assert_int_equal(x.mode, ATTACH_RO);
}

static void test_parse_actions(void **state)
{
	struct exec x;

	assert_int_equal(exec_parse("sysrq vm h", &x), 0);
	assert_int_equal(x.verb, EXEC_ACTION);
	assert_int_equal(x.action, PROTO_ACTION_SYSRQ);
	assert_string_equal(x.name, "vm");
	assert_string_equal(x.key, "h");
	/* The broker judges the key: it says which keys are valid. */
	assert_int_equal(exec_parse("sysrq vm H", &x), 0);
	assert_string_equal(x.key, "H");
	assert_int_equal(exec_parse("nmi vm:serial0", &x), 0);
	assert_int_equal(x.action, PROTO_ACTION_NMI);
	assert_string_equal(x.key, "");
	assert_int_equal(exec_parse("reset vm", &x), 0);
	assert_int_equal(x.action, PROTO_ACTION_RESET);
	assert_int_equal(exec_parse("powerdown vm", &x), 0);
	assert_int_equal(x.action, PROTO_ACTION_POWERDOWN);
}

static void test_parse_refuses(void **state)
{
	static const char *bad[] = {
		"", "web-link", "web-link vm --rw", "web-link vm --force", "web-link vm --ro x",
		"web-link --ro", "weblink vm", "WEB-LINK vm", "list --ro", "who", "attach",
		"sysrq", "sysrq vm", "sysrq vm h x", "sysrq vm \x01", "sysrq vm 12345678",
		"nmi", "nmi vm x", "reset", "reset vm --yes", "reset --yes", "powerdown vm now",
		"break vm", "action vm nmi",
	};
	char big[EXEC_COMMAND_MAX + 8];
	struct exec x;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (exec_parse(bad[i], &x) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
	assert_int_equal(exec_parse(NULL, &x), -EINVAL);
	memcpy(big, "web-link ", 9);
	memset(big + 9, 'a', sizeof(big) - 10);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(exec_parse(big, &x), -E2BIG);
}

static char *print(const struct exec *x, enum front_event_type type, json_t *msg)
{
	exec_print_fn *fn = exec_printer(x, type);
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_non_null(fn);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	fn(f, msg, "\r\n");
	fclose(f);
	json_decref(msg);
	return buf;
}

static void test_print_action(void **state)
{
	struct exec x;
	char *out;

	assert_int_equal(exec_parse("sysrq vm h", &x), 0);
	assert_null(exec_printer(&x, FRONT_EV_LIST));
	out = print(&x, FRONT_EV_ACTION_DONE,
		    json_pack("{s:s, s:s, s:s, s:s}", "type", "action-done", "console",
			      "vm:serial0", "action", "sysrq", "key", "h"));
	assert_string_equal(out, "sysrq h done on vm:serial0\r\n");
	free(out);
	out = print(&x, FRONT_EV_ACTION_DONE,
		    json_pack("{s:s, s:s, s:s}", "type", "action-done", "console",
			      "vm\x1b[2J", "action", "reset"));
	assert_null(strchr(out, '\x1b'));
	free(out);
	out = print(&x, FRONT_EV_ACTION_DONE,
		    json_pack("{s:s, s:s}", "type", "action-done", "action", "\x1b[2J"));
	assert_string_equal(out, "");
	free(out);
}

static void test_print_web_link(void **state)
{
	struct exec x;
	char *out;

	assert_int_equal(exec_parse("web-link vm --ro", &x), 0);
	assert_null(exec_printer(&x, FRONT_EV_LIST));
	assert_null(exec_printer(&x, FRONT_EV_WHO));
	out = print(&x, FRONT_EV_WEB_LINK,
		    json_pack("{s:s, s:s}", "type", "web-link", "url", "https://h/#t=abc&c=vm"));
	assert_string_equal(out, "https://h/#t=abc&c=vm\r\n");
	free(out);
	/* What is no plain URL is not printed at all. */
	out = print(&x, FRONT_EV_WEB_LINK,
		    json_pack("{s:s, s:s}", "type", "web-link", "url", "https://h/\x1b[2J"));
	assert_string_equal(out, "");
	free(out);
	out = print(&x, FRONT_EV_WEB_LINK, json_pack("{s:s}", "type", "web-link"));
	assert_string_equal(out, "");
	free(out);
	/* Another verb's printer does not take a web-link answer. */
	assert_int_equal(exec_parse("list", &x), 0);
	assert_null(exec_printer(&x, FRONT_EV_WEB_LINK));
}

/* What SSH users see of the broker's words: paths hidden, a fingerprint's '/' is no path. */
static void test_scrub(void **state)
{
	char out[256];

	view_scrub("cannot open /var/lib/ttyhub/x.sock (refused)", out, sizeof(out));
	assert_string_equal(out, "cannot open [path] (refused)");
	view_scrub("host key does not match the pinned key (offered SHA256:/9xQ+ab, pinned "
		   "SHA256:GK/1qA)", out, sizeof(out));
	assert_string_equal(out, "host key does not match the pinned key (offered SHA256:/9xQ+ab, "
				 "pinned SHA256:GK/1qA)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_print_web_link),
		cmocka_unit_test(test_parse_actions),
		cmocka_unit_test(test_print_action),
		cmocka_unit_test(test_scrub),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
