/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the escape-command parser (broker/escape.h),
 * differential against a reference written here.  Input layout:
 *
 *   byte 0        seed for the chunk sizes
 *   byte 1        length L (mod 16) of a prefix string
 *   L bytes       the prefix string, for escape_parse_prefix() ("^]x", ...)
 *   the rest      keystrokes
 *
 * The keystrokes are run with the default prefix and, if the prefix string
 * parses, with that prefix.  Each run feeds the keystrokes whole and in
 * chunks, re-feeding the rest of a chunk after each command as a caller
 * does, then one DEL (never a prefix or command byte) that releases any
 * held prefix bytes.  The result, the pass-through bytes with the position
 * of each command among them, must equal the reference's for the whole
 * input and must not depend on the chunking.  The reference looks ahead
 * instead of keeping state: at a first prefix byte followed by the second
 * and one more byte, those three are a command (when the third is one) or
 * are passed through; a prefix that is cut off by the end is held.  The
 * rescue actions take one more byte: S its SysRq key (the command's arg, 0
 * for a byte that is not a key), and, when confirm is on (bit 0x40 of the
 * seed byte), R and P are a CONFIRM whose next byte answers: y/Y gives the
 * command, anything else CANCEL.  Each command's arg is compared too.
 *
 * escape_parse_prefix() is also checked: a parsed prefix is a control byte
 * and a printable one, a failed parse leaves its output alone, and the
 * caret, "\xHH" and "ctrl-" spellings of a parsed prefix give it back.
 * escape_format_help() must fit a large buffer and truncate into a small
 * one as a NUL-terminated prefix of the full text.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "fuzz-util.h"

#define FUZZ_ESCAPE_MAX_INPUT (64u * 1024)
#define FUZZ_ESCAPE_PREFIX_MAX 15
/* Not a first prefix byte (a control), not a second one (0x21-0x7e), not a command. */
#define FUZZ_ESCAPE_FLUSH 0x7f

static const uint8_t fuzz_commands[] = ".faswrb?SNRP";

struct fuzz_cmd {
	size_t at; /* pass-through bytes before the command */
	uint8_t cmd;
	uint8_t arg; /* escape.arg after it */
};

struct fuzz_result {
	uint8_t *out;
	size_t outlen;
	size_t outcap;
	struct fuzz_cmd *cmds;
	size_t ncmds;
	size_t cmdcap;
};

static bool fuzz_is_command(uint8_t b)
{
	return b != '\0' && memchr(fuzz_commands, b, sizeof(fuzz_commands) - 1) != NULL;
}

/* What escape_feed() may return besides ESCAPE_NONE. */
static bool fuzz_is_result(uint8_t b)
{
	return fuzz_is_command(b) || b == ESCAPE_CONFIRM || b == ESCAPE_CANCEL;
}

static int fuzz_result_init(struct fuzz_result *res, size_t len)
{
	/* the flush byte plus two released prefix bytes */
	res->outcap = len + 3;
	res->cmdcap = len / 2 + 2; /* a CONFIRM and its answer: two per four bytes */
	res->out = malloc(res->outcap);
	res->cmds = malloc(res->cmdcap * sizeof(*res->cmds));
	res->outlen = 0;
	res->ncmds = 0;
	if (!res->out || !res->cmds) {
		free(res->out);
		free(res->cmds);
		return -ENOMEM;
	}
	return 0;
}

static void fuzz_result_done(struct fuzz_result *res)
{
	free(res->out);
	free(res->cmds);
}

static void fuzz_result_byte(struct fuzz_result *res, uint8_t b)
{
	if (res->outlen >= res->outcap)
		abort();
	res->out[res->outlen++] = b;
}

static void fuzz_result_cmd(struct fuzz_result *res, uint8_t cmd, uint8_t arg)
{
	if (res->ncmds >= res->cmdcap)
		abort();
	res->cmds[res->ncmds].at = res->outlen;
	res->cmds[res->ncmds].cmd = cmd;
	res->cmds[res->ncmds].arg = arg;
	res->ncmds++;
}

FUZZ_NO_COVERAGE
static bool fuzz_result_equal(const struct fuzz_result *a, const struct fuzz_result *b)
{
	if (a->outlen != b->outlen || a->ncmds != b->ncmds)
		return false;
	if (memcmp(a->out, b->out, a->outlen) != 0)
		return false;
	for (size_t i = 0; i < a->ncmds; i++)
		if (a->cmds[i].at != b->cmds[i].at || a->cmds[i].cmd != b->cmds[i].cmd ||
		    a->cmds[i].arg != b->cmds[i].arg)
			return false;
	return true;
}

/* The reference over in[0..len) followed by the flush byte; needs p0 != p1. */
FUZZ_NO_COVERAGE
static void fuzz_reference(const uint8_t p[2], bool confirm, const uint8_t *in, size_t len,
			   struct fuzz_result *res)
{
	size_t n = len + 1, i = 0;

#define FUZZ_AT(k) ((k) < len ? in[k] : FUZZ_ESCAPE_FLUSH)
	while (i < n) {
		uint8_t b = FUZZ_AT(i);

		if (b == p[0] && i + 1 < n && FUZZ_AT(i + 1) == p[1]) {
			if (i + 2 >= n)
				break; /* whole prefix held at the end */
			uint8_t c = FUZZ_AT(i + 2);

			if (c == 'S' && i + 3 < n) {
				/* The key: always there, the flush byte at worst (not a key). */
				uint8_t k = FUZZ_AT(i + 3);
				bool key = (k >= '0' && k <= '9') || (k >= 'a' && k <= 'z');

				fuzz_result_cmd(res, c, key ? k : 0);
				i += 4;
				continue;
			}
			if (confirm && (c == 'R' || c == 'P') && i + 3 < n) {
				uint8_t a = FUZZ_AT(i + 3);

				fuzz_result_cmd(res, ESCAPE_CONFIRM, c);
				fuzz_result_cmd(res, a == 'y' || a == 'Y' ? c : ESCAPE_CANCEL, c);
				i += 4;
				continue;
			}
			if (fuzz_is_command(c)) {
				fuzz_result_cmd(res, c, 0);
			} else {
				fuzz_result_byte(res, p[0]);
				fuzz_result_byte(res, p[1]);
				fuzz_result_byte(res, FUZZ_AT(i + 2));
			}
			i += 3;
			continue;
		}
		if (b == p[0] && i + 1 >= n)
			break; /* first prefix byte held at the end */
		fuzz_result_byte(res, b);
		i++;
	}
#undef FUZZ_AT
}

/*
 * Feed one chunk, re-feeding after each command.  scratch has scratch_size
 * bytes; the output area is placed at its end so that writing more than
 * len + 2 bytes overflows the allocation.
 */
static void fuzz_feed_chunk(struct escape *e, const uint8_t *in, size_t len, uint8_t *scratch,
			    size_t scratch_size, struct fuzz_result *res)
{
	while (len > 0) {
		uint8_t *out;
		size_t consumed, outlen = SIZE_MAX;
		enum escape_cmd cmd = (enum escape_cmd)'Z';

		if (len + 2 > scratch_size)
			abort();
		out = scratch + scratch_size - (len + 2);
		consumed = escape_feed(e, in, len, out, &outlen, &cmd);
		if (consumed == 0 || consumed > len || outlen > len + 2)
			abort();
		for (size_t i = 0; i < outlen; i++)
			fuzz_result_byte(res, out[i]);
		if (cmd == ESCAPE_NONE) {
			if (consumed != len)
				abort();
		} else {
			if (!fuzz_is_result((uint8_t)cmd))
				abort();
			fuzz_result_cmd(res, (uint8_t)cmd, e->arg);
		}
		in += consumed;
		len -= consumed;
	}
}

/* Run the parser over in[0..len) plus the flush byte; seed 0 feeds it whole. */
static int fuzz_run(const uint8_t p[2], bool confirm, const uint8_t *in, size_t len,
		    uint8_t seed, struct fuzz_result *res)
{
	static const size_t max_chunk[8] = { 1, 2, 3, 5, 8, 16, 64, 4096 };
	static const uint8_t flush = FUZZ_ESCAPE_FLUSH;
	uint32_t state = (uint32_t)seed * 2654435761u + 1;
	size_t limit = max_chunk[seed & 7], off = 0;
	struct escape e;
	uint8_t *scratch;

	if (fuzz_result_init(res, len) < 0)
		return -ENOMEM;
	scratch = malloc(len + 3);
	if (!scratch) {
		fuzz_result_done(res);
		return -ENOMEM;
	}
	escape_init(&e, p[0], p[1]);
	e.confirm = confirm;
	while (off < len) {
		size_t n = seed == 0 ? len : 1 + fuzz_next(&state) % limit;

		if (n > len - off)
			n = len - off;
		fuzz_feed_chunk(&e, in + off, n, scratch, len + 3, res);
		off += n;
	}
	fuzz_feed_chunk(&e, &flush, 1, scratch, len + 3, res);
	free(scratch);
	return 0;
}

static void fuzz_check_prefix(const uint8_t p[2], const uint8_t *in, size_t len, uint8_t seed)
{
	struct fuzz_result ref, whole, chunked;
	bool confirm = seed & 0x40;

	if (fuzz_result_init(&ref, len) < 0)
		return;
	fuzz_reference(p, confirm, in, len, &ref);
	if (fuzz_run(p, confirm, in, len, 0, &whole) == 0) {
		if (!fuzz_result_equal(&whole, &ref))
			abort();
		fuzz_result_done(&whole);
	}
	if (seed != 0 && fuzz_run(p, confirm, in, len, seed, &chunked) == 0) {
		if (!fuzz_result_equal(&chunked, &ref))
			abort();
		fuzz_result_done(&chunked);
	}
	fuzz_result_done(&ref);
}

/* Parsing the caret, hex and ctrl- spellings of p must give p back. */
static void fuzz_check_spellings(const uint8_t p[2])
{
	char s[3][16];
	uint8_t q[2];

	snprintf(s[0], sizeof(s[0]), "^%c%c", '@' + p[0], p[1]);
	snprintf(s[1], sizeof(s[1]), "\\x%02x%c", p[0], p[1]);
	snprintf(s[2], sizeof(s[2]), "ctrl-%c %c", '@' + p[0], p[1]);
	for (size_t i = 0; i < 3; i++) {
		q[0] = q[1] = 0xff;
		if (escape_parse_prefix(s[i], q) != 0 || q[0] != p[0] || q[1] != p[1])
			abort();
	}
}

static void fuzz_check_help(const uint8_t p[2], uint8_t seed)
{
	char full[2048], small[64];
	size_t size = 1 + seed % sizeof(small);
	struct escape e;
	int n;

	escape_init(&e, p[0], p[1]);
	n = escape_format_help(&e, full, sizeof(full));
	if (n <= 0 || (size_t)n != strlen(full))
		abort();
	n = escape_format_help(&e, small, size);
	if (n != -ENOBUFS || strlen(small) >= size || strncmp(full, small, strlen(small)) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t defprefix[2] = { ESCAPE_DEFAULT_PREFIX0, ESCAPE_DEFAULT_PREFIX1 };
	char prefix_str[FUZZ_ESCAPE_PREFIX_MAX + 1];
	uint8_t seed = 0, prefix[2] = { 0xee, 0xee };
	size_t plen = 0;
	bool have_prefix = false;
	int r;

	if (size > FUZZ_ESCAPE_MAX_INPUT)
		return 0;
	if (size >= 2) {
		seed = data[0];
		plen = data[1] % (FUZZ_ESCAPE_PREFIX_MAX + 1);
		if (plen > size - 2)
			plen = size - 2;
		memcpy(prefix_str, data + 2, plen);
		prefix_str[plen] = '\0';
		data += 2 + plen;
		size -= 2 + plen;

		r = escape_parse_prefix(prefix_str, prefix);
		if (r == 0) {
			if (prefix[0] > 0x1f || prefix[1] < 0x21 || prefix[1] > 0x7e)
				abort();
			have_prefix = true;
		} else if (r != -EINVAL || prefix[0] != 0xee || prefix[1] != 0xee) {
			abort();
		}
	}
	if (escape_parse_prefix(NULL, prefix) != -EINVAL)
		abort();

	fuzz_check_prefix(defprefix, data, size, seed);
	if (have_prefix) {
		fuzz_check_spellings(prefix);
		fuzz_check_help(prefix, seed);
		fuzz_check_prefix(prefix, data, size, seed);
	}
	return 0;
}
