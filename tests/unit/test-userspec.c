/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the SSH user name parser: a table of every accepted form
 * with the console, mode and replay it yields, and a table of rejected user
 * names (each must leave the output untouched), plus the length limits, and
 * the resume points: accepted with every other option, and a bad one is its
 * own error (-EBADMSG) only when nothing else is wrong.
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

#include "userspec.h"

#define UUID "c7a5fdbd-cdaf-9455-926a-d65c16db1809"

struct ok_case {
	const char *user;
	const char *console;
	enum attach_mode mode;
	long replay;
};

static const struct ok_case ok_cases[] = {
	{ "web01", "web01", ATTACH_RW, -2 },
	/* A gateway's host (ssh-front/gateway.h). */
	{ "h2/web01", "h2/web01", ATTACH_RW, -2 },
	{ "h-2.example/web01:serial1+ro", "h-2.example/web01:serial1", ATTACH_RO, -2 },
	{ "web01:serial1", "web01:serial1", ATTACH_RW, -2 },
	{ "web01+ro", "web01", ATTACH_RO, -2 },
	{ "web01+force", "web01", ATTACH_FORCE, -2 },
	{ "web01+replay=100", "web01", ATTACH_RW, 100 },
	{ "web01+replay=all", "web01", ATTACH_RW, -1 },
	{ "web01+replay=0", "web01", ATTACH_RW, 0 },
	{ "web01+replay=1000000", "web01", ATTACH_RW, 1000000 },
	{ "web01+replay=999999", "web01", ATTACH_RW, 999999 },
	{ "web01+replay=0000007", "web01", ATTACH_RW, 7 },
	{ "web01:console1+force+replay=100", "web01:console1", ATTACH_FORCE, 100 },
	{ "web01+replay=5+ro", "web01", ATTACH_RO, 5 },
	{ "web01+replay=all+force", "web01", ATTACH_FORCE, -1 },
	{ "web01:serial0+ro+replay=all", "web01:serial0", ATTACH_RO, -1 },
	{ UUID, UUID, ATTACH_RW, -2 },
	{ UUID ":serial0+ro", UUID ":serial0", ATTACH_RO, -2 },
	{ "a", "a", ATTACH_RW, -2 },
	{ "a:b", "a:b", ATTACH_RW, -2 },
	{ "9", "9", ATTACH_RW, -2 },
	{ "my_vm.v2-x", "my_vm.v2-x", ATTACH_RW, -2 },
	{ "_vm", "_vm", ATTACH_RW, -2 },
	{ "vm-", "vm-", ATTACH_RW, -2 },
	{ "vm.", "vm.", ATTACH_RW, -2 },
	{ "Web01:UA-Serial_1.x", "Web01:UA-Serial_1.x", ATTACH_RW, -2 },
	{ "console", "console", ATTACH_RW, -2 },
};

static void test_accepted(void **state)
{
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];
		struct userspec u;

		memset(&u, 0xa5, sizeof(u));
		if (userspec_parse(c->user, &u) != 0)
			print_error("rejected: <%s>\n", c->user);
		assert_int_equal(userspec_parse(c->user, &u), 0);
		assert_string_equal(u.console, c->console);
		assert_int_equal(u.mode, c->mode);
		assert_int_equal(u.replay, c->replay);
		assert_false(u.resume);
	}
}

static const char *const bad_cases[] = {
	"",
	"/web01",
	"h2/",
	"h2/a/b",
	"-h/web01",
	".h/web01",
	"h:1/web01",
	"h2/:serial0",
	"+ro",
	"+",
	"web01+",
	"web01++ro",
	"web01+ro+",
	"web01+ro+force",
	"web01+force+ro",
	"web01+ro+ro",
	"web01+force+force",
	"web01+replay=1+replay=2",
	"web01+replay=all+replay=3",
	"web01+replay=3+replay=3",
	"web01+replay=",
	"web01+replay",
	"web01+replay=-1",
	"web01+replay=+5",
	"web01+replay= 1",
	"web01+replay=1 ",
	"web01+replay=1000001",
	"web01+replay=9999999",
	"web01+replay=00000001",
	"web01+replay=99999999999999999999999",
	"web01+replay=1e3",
	"web01+replay=0x10",
	"web01+replay=ALL",
	"web01+replay=al",
	"web01+replay=allx",
	"web01+Replay=1",
	"web01+RO",
	"web01+rw",
	"web01+foo",
	"web01+ro=1",
	"web01+force=yes",
	"web01+r",
	"web01+rox",
	"web 01",
	"web01 ",
	" web01",
	"web01\t",
	"web01\n",
	"web01+ro\n",
	"web01:",
	":serial0",
	":",
	"a:b:c",
	"web01::serial0",
	"-web",
	".web",
	"..",
	"web01:-x",
	"web01:.x",
	"web/01/x", /* one host part at most */
	"../web01",
	"web@host",
	"web01;id",
	"web01$",
	"web*",
	"w\303\251b",
	"web01\x7f",
	"web01\x01",
	"web01=ro",
	/* a bad resume point with another error: the other error wins (menu) */
	"web01+resume=x+foo",
	"web01+foo+resume=x",
	"web01+ro+force+resume=0123456789abcdef:1",
	"web01+resume=0123456789abcdef:1+replay=x",
	"web01+resume",
	"web01+Resume=0123456789abcdef:1",
	"web01+resume=0123456789abcdef:1+",
	"web01+resume=0123456789abcdef:+1", /* '+' starts an option "1" */
	"web01:+resume=0123456789abcdef:1",
	"+resume=0123456789abcdef:1",
	"web01 +resume=0123456789abcdef:1",
};

static void test_rejected(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct userspec u, orig;

		memset(&u, 0xa5, sizeof(u));
		memcpy(&orig, &u, sizeof(u));
		if (userspec_parse(bad_cases[i], &u) != -EINVAL)
			print_error("accepted: <%s>\n", bad_cases[i]);
		assert_int_equal(userspec_parse(bad_cases[i], &u), -EINVAL);
		/* the output is written only on success */
		assert_memory_equal(&u, &orig, sizeof(u));
	}
}

static void test_lengths(void **state)
{
	char user[2048];
	struct userspec u;

	/* 128 bytes is the longest console name */
	memset(user, 'v', 128);
	user[128] = '\0';
	assert_int_equal(userspec_parse(user, &u), 0);
	assert_int_equal(strlen(u.console), 128);
	assert_memory_equal(u.console, user, 129);

	strcpy(user + 128, "+ro+replay=all");
	assert_int_equal(userspec_parse(user, &u), 0);
	assert_int_equal(strlen(u.console), 128);
	assert_int_equal(u.mode, ATTACH_RO);
	assert_int_equal(u.replay, -1);

	/* 64 + ':' + 63 */
	memset(user, 'v', 128);
	user[64] = ':';
	user[128] = '\0';
	assert_int_equal(userspec_parse(user, &u), 0);
	assert_string_equal(u.console, user);

	memset(user, 'v', 129);
	user[129] = '\0';
	assert_int_equal(userspec_parse(user, &u), -EINVAL);
	strcpy(user + 129, "+ro");
	assert_int_equal(userspec_parse(user, &u), -EINVAL);

	/*
	 * The longest user name that parses fits USERSPEC_USER_MAX, which the
	 * front's buffer holds whole: a "+ro" at the end is never cut off.
	 */
	memset(user, 'v', USERSPEC_CONSOLE_MAX);
	strcpy(user + USERSPEC_CONSOLE_MAX, "+ro+replay=1000000");
	assert_true(strlen(user) <= USERSPEC_USER_MAX);
	assert_int_equal(userspec_parse(user, &u), 0);
	assert_int_equal(u.mode, ATTACH_RO);
	memset(user, 'v', USERSPEC_USER_MAX + 1);
	user[USERSPEC_USER_MAX + 1] = '\0';
	assert_int_equal(userspec_parse(user, &u), -EINVAL);

	/* a very long user name: no overrun, just a refusal */
	memset(user, 'v', sizeof(user) - 1);
	user[sizeof(user) - 1] = '\0';
	assert_int_equal(userspec_parse(user, &u), -EINVAL);
	user[10] = '+';
	assert_int_equal(userspec_parse(user, &u), -EINVAL);
}

#define EPOCH "0123456789abcdef"

struct resume_case {
	const char *user;
	const char *console;
	enum attach_mode mode;
	long replay;
	uint64_t epoch, offset;
};

static const struct resume_case resume_cases[] = {
	{ "web01+resume=" EPOCH ":0", "web01", ATTACH_RW, -2, 0x0123456789abcdefULL, 0 },
	{ "web01+resume=" EPOCH ":10240", "web01", ATTACH_RW, -2, 0x0123456789abcdefULL, 10240 },
	{ "web01:serial0+resume=ffffffffffffffff:9223372036854775807", "web01:serial0", ATTACH_RW,
	  -2, UINT64_MAX, INT64_MAX },
	{ "web01+resume=0000000000000001:00042", "web01", ATTACH_RW, -2, 1, 42 },
	{ "web01+resume=ABCDEF0123456789:7", "web01", ATTACH_RW, -2, 0xabcdef0123456789ULL, 7 },
	{ "web01+ro+resume=" EPOCH ":5", "web01", ATTACH_RO, -2, 0x0123456789abcdefULL, 5 },
	{ "web01+resume=" EPOCH ":5+force", "web01", ATTACH_FORCE, -2, 0x0123456789abcdefULL, 5 },
	{ "web01+replay=all+resume=" EPOCH ":5+ro", "web01", ATTACH_RO, -1,
	  0x0123456789abcdefULL, 5 },
	{ UUID ":serial1+resume=" EPOCH ":1+replay=10", UUID ":serial1", ATTACH_RW, 10,
	  0x0123456789abcdefULL, 1 },
};

static void test_resume(void **state)
{
	for (size_t i = 0; i < sizeof(resume_cases) / sizeof(resume_cases[0]); i++) {
		const struct resume_case *c = &resume_cases[i];
		struct userspec u;

		memset(&u, 0xa5, sizeof(u));
		if (userspec_parse(c->user, &u) != 0)
			print_error("rejected: <%s>\n", c->user);
		assert_int_equal(userspec_parse(c->user, &u), 0);
		assert_string_equal(u.console, c->console);
		assert_int_equal(u.mode, c->mode);
		assert_int_equal(u.replay, c->replay);
		assert_true(u.resume);
		assert_true(u.epoch == c->epoch);
		assert_true(u.offset == c->offset);
	}
}

/* A resume point that is wrong while all else is right: said in words, not the menu. */
static const char *const bad_resume_cases[] = {
	"web01+resume=",
	"web01+resume=" EPOCH,
	"web01+resume=" EPOCH ":",
	"web01+resume=:5",
	"web01+resume=0000000000000000:5", /* epoch zero is never one */
	"web01+resume=0123456789abcde:5",  /* 15 digits */
	"web01+resume=0123456789abcdef0:5",
	"web01+resume=0123456789abcdeg:5",
	"web01+resume=" EPOCH ":-1",
	"web01+resume=" EPOCH ":1x",
	"web01+resume=" EPOCH ":0x10",
	"web01+resume=" EPOCH ":9223372036854775808", /* past INT64_MAX */
	"web01+resume=" EPOCH ":99999999999999999999999999999999999",
	"web01+resume=" EPOCH ";5",
	"web01+resume=" EPOCH ":5:6",
	"web01+resume=" EPOCH ":5+resume=" EPOCH ":5", /* twice, even the same */
	"web01+resume=" EPOCH ":5+resume=" EPOCH ":6",
	"web01+ro+resume=nonsense",
	"web01+resume=nonsense+replay=all",
};

static void test_resume_rejected(void **state)
{
	char msg[256];

	for (size_t i = 0; i < sizeof(bad_resume_cases) / sizeof(bad_resume_cases[0]); i++) {
		struct userspec u, orig;

		memset(&u, 0xa5, sizeof(u));
		memcpy(&orig, &u, sizeof(u));
		if (userspec_parse(bad_resume_cases[i], &u) != -EBADMSG)
			print_error("not a resume error: <%s>\n", bad_resume_cases[i]);
		assert_int_equal(userspec_parse(bad_resume_cases[i], &u), -EBADMSG);
		assert_memory_equal(&u, &orig, sizeof(u));
	}
	/* the sentence names the form the user must type */
	snprintf(msg, sizeof(msg), "%s", userspec_resume_error());
	assert_non_null(strstr(msg, "+resume=EPOCH:OFFSET"));
}

/* The longest name with every option, resume included, fits USERSPEC_USER_MAX. */
static void test_resume_length(void **state)
{
	char user[USERSPEC_USER_MAX + 64];
	struct userspec u;

	memset(user, 'v', USERSPEC_CONSOLE_MAX);
	strcpy(user + USERSPEC_CONSOLE_MAX,
	       "+force+replay=1000000+resume=ffffffffffffffff:9223372036854775807");
	assert_true(strlen(user) <= USERSPEC_USER_MAX);
	assert_int_equal(userspec_parse(user, &u), 0);
	assert_true(u.resume);
	assert_true(u.offset == INT64_MAX);
}

static void test_null(void **state)
{
	struct userspec u;

	assert_int_equal(userspec_parse(NULL, &u), -EINVAL);
	assert_int_equal(userspec_parse("web01", NULL), -EINVAL);
}

/* Every byte value in the console part: only [A-Za-z0-9_.:-] parse ("vm+x": bad option). */
static void test_each_byte(void **state)
{
	for (int c = 1; c < 256; c++) {
		char user[] = "vm?x";
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-' ||
			  c == '/'; /* "vm/x": host vm, console x */
		struct userspec u;
		int r;

		user[2] = (char)c;
		r = userspec_parse(user, &u);
		assert_int_equal(r, ok ? 0 : -EINVAL);
		if (ok)
			assert_string_equal(u.console, user);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_rejected),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_resume),
		cmocka_unit_test(test_resume_rejected),
		cmocka_unit_test(test_resume_length),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_each_byte),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
