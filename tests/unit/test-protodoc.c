/* SPDX-License-Identifier: MIT */
/*
 * docs/protocol.md keeps up with the protocol: every message type
 * (proto_msg_to_string()) appears in one of its tables, and every error code
 * (proto_error_codes) and detach reason has a row of its own ("| `code` |")
 * in the table of its kind; every frame type of frame.h has a row in the
 * framing table, and each outcome of a resume a row in the Resume table.
 * The document's path is argv[1] (CMake passes the source tree's copy).
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

#include "fileio.h"
#include "frame.h"
#include "proto.h"

static char *doc; /* the whole document */

/* Whether some table row (a line starting with '|') holds `name`. */
static bool doc_has(const char *name)
{
	char want[128];

	snprintf(want, sizeof(want), "`%s`", name);
	for (const char *p = doc; (p = strstr(p, want)); p++) {
		const char *bol = p;

		while (bol > doc && bol[-1] != '\n')
			bol--;
		if (*bol == '|')
			return true;
	}
	return false;
}

/* Whether the table whose header row starts with `header` has a row starting with `row`. */
static bool table_has_row(const char *header, const char *row)
{
	const char *t = strstr(doc, header), *end;

	if (!t)
		return false;
	end = strstr(t, "\n\n"); /* a table ends at the first blank line */
	if (!end)
		end = t + strlen(t);
	t = strstr(t, row);
	return t && t < end;
}

/* Whether the table whose header row starts with `header` has a row "| `name` |". */
static bool table_has(const char *header, const char *name)
{
	char want[128];

	snprintf(want, sizeof(want), "\n| `%s` |", name);
	return table_has_row(header, want);
}

#define ERROR_TABLE "\n| error `code` |"
#define REASON_TABLE "\n| `reason` of `detached` |"

static void test_messages(void **state)
{
	for (int m = 0; m < _PROTO_MSG_MAX; m++) {
		const char *name = proto_msg_to_string(m);

		if (!doc_has(name))
			fail_msg("message type \"%s\" is in no table of docs/protocol.md", name);
	}
}

static void test_error_codes(void **state)
{
	for (size_t i = 0; proto_error_codes[i]; i++)
		if (!table_has(ERROR_TABLE, proto_error_codes[i]))
			fail_msg("error code \"%s\" has no row in docs/protocol.md's error table",
				 proto_error_codes[i]);
}

static void test_detach_reasons(void **state)
{
	for (int r = 0; r < _DETACH_REASON_MAX; r++)
		if (!table_has(REASON_TABLE, detach_reason_to_string(r)))
			fail_msg("detach reason \"%s\" has no row in docs/protocol.md's reason table",
				 detach_reason_to_string(r));
}

#define FRAME_TABLE "\n| type | payload |"
#define RESUME_TABLE "\n| `resumed` | when |"

static void test_frames_and_resume(void **state)
{
	static const uint8_t types[] = { FRAME_CONTROL, FRAME_DATA, FRAME_OUTPUT };
	static const char *const outcomes[] = { "exact", "gap", "restarted" };

	for (size_t i = 0; i < sizeof(types); i++) {
		char row[32];

		/* "| `O` (0x4F) |": the letter and its byte. */
		snprintf(row, sizeof(row), "\n| `%c` (0x%02X) |", types[i], types[i]);
		if (!table_has_row(FRAME_TABLE, row))
			fail_msg("frame type %c has no row in docs/protocol.md's framing table",
				 types[i]);
	}
	for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
		if (!table_has(RESUME_TABLE, outcomes[i]))
			fail_msg("resume outcome \"%s\" has no row in docs/protocol.md's Resume table",
				 outcomes[i]);
	assert_false(table_has_row(FRAME_TABLE, "\n| `X` (0x58) |"));
}

/* The check itself can fail: a name the document does not have is found missing. */
static void test_checker(void **state)
{
	assert_false(doc_has("no-such-message"));
	assert_true(doc_has("hello"));
	assert_true(table_has(ERROR_TABLE, "denied"));
	assert_false(table_has(ERROR_TABLE, "no-such-code"));
	/* A reason is no error code: each table is checked on its own. */
	assert_false(table_has(ERROR_TABLE, "console-gone"));
	assert_true(table_has(REASON_TABLE, "console-gone"));
}

int main(int argc, char *argv[])
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_error_codes),
		cmocka_unit_test(test_detach_reasons),
		cmocka_unit_test(test_frames_and_resume),
	};
	size_t len;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: test-protodoc PATH/docs/protocol.md\n");
		return 2;
	}
	r = read_file_bounded(argv[1], 1024 * 1024, &doc, &len);
	if (r < 0) {
		fprintf(stderr, "cannot read %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	r = cmocka_run_group_tests(tests, NULL, NULL);
	free(doc);
	return r;
}
