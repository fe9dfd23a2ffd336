/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the escape-command parser: tables of keystroke streams with
 * the expected pass-through bytes and command, the prefix split across
 * calls, stopping right after a command, custom prefixes, prefix parsing and
 * the help texts.
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

#include "escape.h"

static const char commands[] = ".faswrb?NRP";

/* Feed a whole buffer into an exact-size heap output buffer (ASan checks len + 2). */
static size_t feed(struct escape *e, const char *in, size_t len, uint8_t *out, size_t *ret_outlen,
		   enum escape_cmd *ret_cmd)
{
	uint8_t *buf = malloc(len + 2);
	size_t consumed;

	assert_non_null(buf);
	*ret_outlen = SIZE_MAX;
	*ret_cmd = (enum escape_cmd)'Z';
	consumed = escape_feed(e, (const uint8_t *)in, len, buf, ret_outlen, ret_cmd);
	assert_true(consumed <= len);
	assert_true(*ret_outlen <= len + 2);
	memcpy(out, buf, *ret_outlen);
	free(buf);
	return consumed;
}

static void test_prefix_each_command(void **state)
{
	for (const char *c = commands; *c; c++) {
		struct escape e;
		char in[3] = { ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1, *c };
		uint8_t out[8];
		size_t outlen, consumed;
		enum escape_cmd cmd;

		escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
		consumed = feed(&e, in, 3, out, &outlen, &cmd);
		assert_int_equal(consumed, 3);
		assert_int_equal(outlen, 0);
		assert_int_equal(cmd, (enum escape_cmd)*c);
	}
}

static void test_enum_values(void **state)
{
	/* the command bytes are the enum values */
	assert_int_equal(ESCAPE_DETACH, '.');
	assert_int_equal(ESCAPE_FORCE, 'f');
	assert_int_equal(ESCAPE_ATTACH_RW, 'a');
	assert_int_equal(ESCAPE_SPY, 's');
	assert_int_equal(ESCAPE_WHO, 'w');
	assert_int_equal(ESCAPE_REPLAY, 'r');
	assert_int_equal(ESCAPE_BREAK, 'b');
	assert_int_equal(ESCAPE_HELP, '?');
}

struct stream_case {
	const char *name;
	const char *in;
	size_t inlen;
	const char *out; /* bytes passed through */
	size_t outlen;
	size_t consumed;
	enum escape_cmd cmd;
};

#define SCASE(n, i, o, c, k) { n, i, sizeof(i) - 1, o, sizeof(o) - 1, c, k }

/* All with the default prefix, Ctrl-E c. */
static const struct stream_case streams[] = {
	SCASE("plain", "hello", "hello", 5, ESCAPE_NONE),
	SCASE("empty", "", "", 0, ESCAPE_NONE),
	SCASE("prefix other char", "\x05" "cx", "\x05" "cx", 3, ESCAPE_NONE),
	SCASE("prefix uppercase command", "\x05" "cD", "\x05" "cD", 3, ESCAPE_NONE),
	SCASE("prefix then newline", "\x05" "c\r", "\x05" "c\r", 3, ESCAPE_NONE),
	SCASE("prefix then p0", "\x05" "c\x05", "\x05" "c\x05", 3, ESCAPE_NONE),
	SCASE("p0 other char", "\x05x", "\x05x", 2, ESCAPE_NONE),
	SCASE("p0 then command char", "\x05.", "\x05.", 2, ESCAPE_NONE),
	SCASE("p0 p0 then c .", "\x05\x05" "c.", "\x05", 4, ESCAPE_DETACH),
	SCASE("p0 p0 p0 x", "\x05\x05\x05x", "\x05\x05\x05x", 4, ESCAPE_NONE),
	SCASE("command mid text", "ab\x05" "c.cd", "ab", 5, ESCAPE_DETACH),
	SCASE("first command wins", "\x05" "cw\x05" "c.", "", 3, ESCAPE_WHO),
	SCASE("passed prefix then command", "\x05" "cz\x05" "cb", "\x05" "cz", 6, ESCAPE_BREAK),
	SCASE("c alone", "cc.", "cc.", 3, ESCAPE_NONE),
	SCASE("nul bytes", "a\0\x05" "c?", "a\0", 5, ESCAPE_HELP),
	SCASE("held at end", "ab\x05", "ab", 3, ESCAPE_NONE),
	SCASE("prefix held at end", "ab\x05" "c", "ab", 4, ESCAPE_NONE),
};

static void test_streams(void **state)
{
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		const struct stream_case *c = &streams[i];
		struct escape e;
		uint8_t out[64];
		size_t outlen, consumed;
		enum escape_cmd cmd;

		escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
		consumed = feed(&e, c->in, c->inlen, out, &outlen, &cmd);
		if (consumed != c->consumed || cmd != c->cmd || outlen != c->outlen ||
		    memcmp(out, c->out, outlen) != 0) {
			print_error("case \"%s\": consumed %zu cmd %d outlen %zu\n", c->name,
				    consumed, (int)cmd, outlen);
			fail();
		}
	}
}

/*
 * Feed a stream in two pieces split at every point, continuing after each
 * command like a caller would; the concatenated output and the sequence of
 * commands must not depend on the split.
 */
static void run_pieces(const char *in, size_t len, size_t cut, uint8_t *out, size_t *ret_outlen,
		       char *cmds)
{
	struct escape e;
	size_t bounds[2] = { cut, len }, pos = 0, n = 0, ncmds = 0;

	escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
	for (size_t k = 0; k < 2; k++) {
		do {
			size_t outlen, consumed;
			enum escape_cmd cmd;

			consumed = feed(&e, in + pos, bounds[k] - pos, out + n, &outlen, &cmd);
			pos += consumed;
			n += outlen;
			if (cmd != ESCAPE_NONE)
				cmds[ncmds++] = (char)cmd;
			else
				assert_int_equal(pos, bounds[k]);
		} while (pos < bounds[k]);
	}
	cmds[ncmds] = '\0';
	*ret_outlen = n;
}

static void test_splits(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
		size_t outlen;
		const char *cmds;
	} cases[] = {
		{ "ab\x05" "c.cd", 7, "abcd", 4, "." },
		{ "\x05" "cx\x05" "c?y\x05\x05" "cr", 11, "\x05" "cxy\x05", 5, "?r" },
		{ "\x05\x05\x05" "cfz", 6, "\x05\x05z", 3, "f" },
		{ "x\x05" "c\x05" "c.", 6, "x\x05" "c\x05" "c.", 6, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t cut = 0; cut <= cases[i].len; cut++) {
			uint8_t out[64];
			char cmds[16];
			size_t outlen;

			run_pieces(cases[i].in, cases[i].len, cut, out, &outlen, cmds);
			assert_int_equal(outlen, cases[i].outlen);
			assert_memory_equal(out, cases[i].out, outlen);
			assert_string_equal(cmds, cases[i].cmds);
		}
	}
}

static void test_prefix_split_calls(void **state)
{
	struct escape e;
	uint8_t out[8];
	size_t outlen, consumed;
	enum escape_cmd cmd;

	/* one byte per call: nothing leaks before the command */
	escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
	consumed = feed(&e, "\x05", 1, out, &outlen, &cmd);
	assert_int_equal(consumed, 1);
	assert_int_equal(outlen, 0);
	assert_int_equal(cmd, ESCAPE_NONE);
	consumed = feed(&e, "c", 1, out, &outlen, &cmd);
	assert_int_equal(consumed, 1);
	assert_int_equal(outlen, 0);
	assert_int_equal(cmd, ESCAPE_NONE);
	consumed = feed(&e, ".", 1, out, &outlen, &cmd);
	assert_int_equal(consumed, 1);
	assert_int_equal(outlen, 0);
	assert_int_equal(cmd, ESCAPE_DETACH);

	/* held prefix released by a later non-command: len + 2 bytes out */
	consumed = feed(&e, "\x05" "c", 2, out, &outlen, &cmd);
	assert_int_equal(consumed, 2);
	assert_int_equal(outlen, 0);
	consumed = feed(&e, "q", 1, out, &outlen, &cmd);
	assert_int_equal(consumed, 1);
	assert_int_equal(outlen, 3);
	assert_memory_equal(out, "\x05" "cq", 3);
	assert_int_equal(cmd, ESCAPE_NONE);

	/* held first byte released by a later other byte */
	consumed = feed(&e, "\x05", 1, out, &outlen, &cmd);
	assert_int_equal(consumed, 1);
	assert_int_equal(outlen, 0);
	consumed = feed(&e, "zz", 2, out, &outlen, &cmd);
	assert_int_equal(consumed, 2);
	assert_int_equal(outlen, 3);
	assert_memory_equal(out, "\x05zz", 3);
}

static void test_custom_prefix(void **state)
{
	struct escape e;
	uint8_t out[16];
	size_t outlen, consumed;
	enum escape_cmd cmd;

	escape_init(&e, 0x1d, 'x'); /* ^]x */

	/* the default prefix is now plain text */
	consumed = feed(&e, "\x05" "c.", 3, out, &outlen, &cmd);
	assert_int_equal(consumed, 3);
	assert_int_equal(cmd, ESCAPE_NONE);
	assert_int_equal(outlen, 3);
	assert_memory_equal(out, "\x05" "c.", 3);

	consumed = feed(&e, "ls\x1dxs!", 6, out, &outlen, &cmd);
	assert_int_equal(consumed, 5);
	assert_int_equal(cmd, ESCAPE_SPY);
	assert_int_equal(outlen, 2);
	assert_memory_equal(out, "ls", 2);

	consumed = feed(&e, "\x1d" "c.", 3, out, &outlen, &cmd);
	assert_int_equal(consumed, 3);
	assert_int_equal(cmd, ESCAPE_NONE);
	assert_memory_equal(out, "\x1d" "c.", 3);
}

static void test_parse_prefix(void **state)
{
	static const struct {
		const char *s;
		uint8_t p0, p1;
	} good[] = {
		{ "^Ec", 0x05, 'c' },
		{ "^ec", 0x05, 'c' },
		{ "^]x", 0x1d, 'x' },
		{ "^@a", 0x00, 'a' },
		{ "^_.", 0x1f, '.' },
		{ "^[C", 0x1b, 'C' },
		{ "^AA", 0x01, 'A' },
		{ "\\x05c", 0x05, 'c' },
		{ "\\x1Dz", 0x1d, 'z' },
		{ "\\x00q", 0x00, 'q' },
		{ "ctrl-e c", 0x05, 'c' },
		{ "Ctrl-E c", 0x05, 'c' },
		{ "CTRL-E C", 0x05, 'C' },
		{ "ctrl-ec", 0x05, 'c' },
		{ "ctrl-] x", 0x1d, 'x' },
		{ "ctrl-z ^", 0x1a, '^' },
	};
	static const char *const bad[] = {
		"", "^", "^E", "c", "Ec", "^Ecc", "^E ", "^E\t", "^?c", "^`c", "^{c", "^1c",
		"\\x", "\\x5", "\\x5c", "\\x20c", "\\x7fc", "\\xg5c", "\\x05", "\\x05cd",
		"ctrl-", "ctrl-e", "ctrl-e ", "ctrl-e  c", "ctrl-1 c", "ctrl-e c ",
		"ctrle c", "alt-e c", "^E\xc3\xa9", "^E\x7f", "x05c", " ^Ec",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t p[2] = { 0xaa, 0xaa };

		if (escape_parse_prefix(good[i].s, p) != 0) {
			print_error("\"%s\" rejected\n", good[i].s);
			fail();
		}
		assert_int_equal(p[0], good[i].p0);
		assert_int_equal(p[1], good[i].p1);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t p[2] = { 0xaa, 0xbb };

		if (escape_parse_prefix(bad[i], p) != -EINVAL) {
			print_error("\"%s\" accepted\n", bad[i]);
			fail();
		}
		/* not written on failure */
		assert_int_equal(p[0], 0xaa);
		assert_int_equal(p[1], 0xbb);
	}
}

static void test_parse_then_use(void **state)
{
	struct escape e;
	uint8_t p[2], out[8];
	size_t outlen;
	enum escape_cmd cmd;

	assert_int_equal(escape_parse_prefix("ctrl-] q", p), 0);
	escape_init(&e, p[0], p[1]);
	assert_int_equal(feed(&e, "\x1dqw", 3, out, &outlen, &cmd), 3);
	assert_int_equal(cmd, ESCAPE_WHO);
	assert_int_equal(outlen, 0);
}

/* Every command character appears on a line of the help text after marker. */
static void assert_help_lists_commands(const char *help, const char *marker)
{
	char needle[64];

	for (const char *c = commands; *c; c++) {
		snprintf(needle, sizeof(needle), "%s %c ", marker, *c);
		if (!strstr(help, needle)) {
			print_error("help lacks \"%s\"\n", needle);
			fail();
		}
	}
}

/* Lines end in CRLF and there is no bare LF. */
static void assert_crlf_lines(const char *help)
{
	size_t len = strlen(help);

	assert_true(len > 2);
	assert_memory_equal(help + len - 2, "\r\n", 2);
	for (size_t i = 0; i < len; i++)
		if (help[i] == '\n')
			assert_true(i > 0 && help[i - 1] == '\r');
}

static void test_help_static(void **state)
{
	const char *help = escape_help();

	assert_non_null(help);
	assert_crlf_lines(help);
	assert_help_lists_commands(help, "<escape>");
	assert_null(strstr(help, "Ctrl-E"));
}

static void test_format_help(void **state)
{
	struct escape e;
	char buf[1024], small[16];
	int r;

	escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
	r = escape_format_help(&e, buf, sizeof(buf));
	assert_true(r > 0);
	assert_int_equal((size_t)r, strlen(buf));
	assert_crlf_lines(buf);
	assert_help_lists_commands(buf, "Ctrl-E c");
	assert_null(strstr(buf, "<escape>"));

	escape_init(&e, 0x1d, 'x');
	r = escape_format_help(&e, buf, sizeof(buf));
	assert_true(r > 0);
	assert_help_lists_commands(buf, "Ctrl-] x");
	assert_null(strstr(buf, "Ctrl-E"));

	escape_init(&e, 0x00, '@');
	r = escape_format_help(&e, buf, sizeof(buf));
	assert_true(r > 0);
	assert_help_lists_commands(buf, "Ctrl-@ @");

	/* too small: -ENOBUFS, still NUL-terminated inside the buffer */
	memset(small, 'Z', sizeof(small));
	r = escape_format_help(&e, small, sizeof(small));
	assert_int_equal(r, -ENOBUFS);
	assert_non_null(memchr(small, '\0', sizeof(small)));

	/* exact size fits, one less does not */
	escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
	r = escape_format_help(&e, buf, sizeof(buf));
	assert_true(r > 0);
	{
		char *exact = malloc((size_t)r + 1);

		assert_non_null(exact);
		assert_int_equal(escape_format_help(&e, exact, (size_t)r + 1), r);
		assert_string_equal(exact, buf);
		assert_int_equal(escape_format_help(&e, exact, (size_t)r), -ENOBUFS);
		free(exact);
	}
	assert_int_equal(escape_format_help(&e, small, 0), -ENOBUFS);
}

/* Feed in whole, collecting (command, arg) pairs and the pass-through bytes. */
static size_t feed_all(struct escape *e, const char *in, uint8_t *out, enum escape_cmd *cmds,
		       uint8_t *args, size_t max_cmds)
{
	size_t len = strlen(in), off = 0, n = 0, total = 0;

	while (off < len) {
		enum escape_cmd cmd;
		size_t outlen;

		off += feed(e, in + off, len - off, out + total, &outlen, &cmd);
		total += outlen;
		if (cmd != ESCAPE_NONE) {
			assert_true(n < max_cmds);
			cmds[n] = cmd;
			args[n++] = e->arg;
		}
	}
	for (size_t i = n; i < max_cmds; i++)
		cmds[i] = ESCAPE_NONE;
	return total;
}

static void test_sysrq_key(void **state)
{
	struct escape e;
	enum escape_cmd cmds[4];
	uint8_t out[64], args[4];
	size_t n;

	escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
	/* The key is consumed: it never reaches the guest. */
	n = feed_all(&e, "a\x05" "cShb", out, cmds, args, 4);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ab", 2);
	assert_int_equal(cmds[0], ESCAPE_SYSRQ);
	assert_int_equal(args[0], 'h');
	assert_int_equal(cmds[1], ESCAPE_NONE);
	/* Not a key: cancelled (arg 0), consumed all the same. */
	n = feed_all(&e, "\x05" "cSH\x05" "cS\x05\x05" "cS0", out, cmds, args, 4);
	assert_int_equal(n, 0);
	assert_int_equal(cmds[0], ESCAPE_SYSRQ);
	assert_int_equal(args[0], 0);
	assert_int_equal(cmds[1], ESCAPE_SYSRQ);
	assert_int_equal(args[1], 0); /* the prefix byte was taken as the "key" */
	assert_int_equal(cmds[2], ESCAPE_SYSRQ);
	assert_int_equal(args[2], '0');
	assert_int_equal(cmds[3], ESCAPE_NONE);
	n = feed_all(&e, "\x05" "cS", out, cmds, args, 4);
	assert_int_equal(n, 0);
	assert_int_equal(cmds[0], ESCAPE_NONE); /* waiting for the key */
	n = feed_all(&e, "z", out, cmds, args, 4);
	assert_int_equal(n, 0);
	assert_int_equal(cmds[0], ESCAPE_SYSRQ);
	assert_int_equal(args[0], 'z');
}

static void test_actions_without_confirm(void **state)
{
	struct escape e;
	enum escape_cmd cmds[4];
	uint8_t out[64], args[4];
	size_t n;

	escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
	assert_false(e.confirm);
	n = feed_all(&e, "\x05" "cN\x05" "cRy\x05" "cP", out, cmds, args, 4);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'y'); /* no question: "y" is just typing */
	assert_int_equal(cmds[0], ESCAPE_NMI);
	assert_int_equal(cmds[1], ESCAPE_RESET);
	assert_int_equal(cmds[2], ESCAPE_POWERDOWN);
	assert_int_equal(cmds[3], ESCAPE_NONE);
}

static void test_actions_confirm(void **state)
{
	struct escape e;
	enum escape_cmd cmds[4];
	uint8_t out[64], args[4];
	size_t n;

	escape_init(&e, ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1);
	e.confirm = true;
	n = feed_all(&e, "\x05" "cRyx\x05" "cPY", out, cmds, args, 4);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'x');
	assert_int_equal(cmds[0], ESCAPE_CONFIRM);
	assert_int_equal(args[0], 'R');
	assert_int_equal(cmds[1], ESCAPE_RESET);
	assert_int_equal(cmds[2], ESCAPE_CONFIRM);
	assert_int_equal(args[2], 'P');
	assert_int_equal(cmds[3], ESCAPE_POWERDOWN);
	/* Anything but y cancels, and is consumed: Enter, n, the prefix itself. */
	n = feed_all(&e, "\x05" "cR\r\x05" "cPn", out, cmds, args, 4);
	assert_int_equal(n, 0);
	assert_int_equal(cmds[0], ESCAPE_CONFIRM);
	assert_int_equal(cmds[1], ESCAPE_CANCEL);
	assert_int_equal(args[1], 'R');
	assert_int_equal(cmds[2], ESCAPE_CONFIRM);
	assert_int_equal(cmds[3], ESCAPE_CANCEL);
	assert_int_equal(args[3], 'P');
	n = feed_all(&e, "\x05" "cR", out, cmds, args, 4);
	n += feed_all(&e, "\x05", out, cmds, args, 4);
	assert_int_equal(n, 0);
	assert_int_equal(cmds[0], ESCAPE_CANCEL);
	/* NMI and sysrq never ask. */
	n = feed_all(&e, "\x05" "cN\x05" "cSs", out, cmds, args, 4);
	assert_int_equal(cmds[0], ESCAPE_NMI);
	assert_int_equal(cmds[1], ESCAPE_SYSRQ);
	assert_int_equal(args[1], 's');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enum_values),
		cmocka_unit_test(test_prefix_each_command),
		cmocka_unit_test(test_streams),
		cmocka_unit_test(test_splits),
		cmocka_unit_test(test_prefix_split_calls),
		cmocka_unit_test(test_custom_prefix),
		cmocka_unit_test(test_parse_prefix),
		cmocka_unit_test(test_parse_then_use),
		cmocka_unit_test(test_help_static),
		cmocka_unit_test(test_format_help),
		cmocka_unit_test(test_sysrq_key),
		cmocka_unit_test(test_actions_without_confirm),
		cmocka_unit_test(test_actions_confirm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
