/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the replay sanitiser: a table of input/expected-output
 * cases, each also checked fed in every two-piece split and byte by byte,
 * for idempotence, and against the output bound; then a pseudo-random soak
 * that checks the output properties with an independent UTF-8 validator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sanitize.h"

struct san_case {
	const char *name;
	const char *in;
	size_t inlen;
	const char *out;
	size_t outlen;
};

/* String literals may hold NUL bytes, so lengths come from sizeof. */
#define CASE(n, i, o) { n, i, sizeof(i) - 1, o, sizeof(o) - 1 }

static const struct san_case cases[] = {
	CASE("empty", "", ""),
	CASE("plain text", "hello, world 123 ~!@#$%^&*()_+{}|:\"<>?",
	     "hello, world 123 ~!@#$%^&*()_+{}|:\"<>?"),
	CASE("crlf and tab", "a\tb\r\nc\n", "a\tb\r\nc\n"),
	CASE("sgr colour", "\x1b[1;31mred\x1b[0m plain", "red plain"),
	CASE("csi private and intermediate", "\x1b[?1049h\x1b[2 qX\x1b[>4;1m", "X"),
	CASE("csi with cursor moves", "a\x1b[10;20Hb\x1b[Kc", "abc"),
	CASE("osc 0 bel", "x\x1b]0;evil title\x07y", "xy"),
	CASE("osc 2 st", "x\x1b]2;evil title\x1b\\y", "xy"),
	CASE("osc 52 bel", "A\x1b]52;c;ZWNobyBwd25lZA==\x07" "B", "AB"),
	CASE("osc 52 st", "A\x1b]52;c;ZWNobyBwd25lZA==\x1b\\B", "AB"),
	CASE("osc 8 hyperlink", "\x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\", "link"),
	CASE("osc with utf-8 title", "\x1b]0;caf\xc3\xa9 \xe2\x82\xac\x07ok", "ok"),
	CASE("osc with c0 inside", "\x1b]0;a\nb\tc\x07ok", "ok"),
	CASE("dcs decrqss", "a\x1bP$qm\x1b\\b", "ab"),
	CASE("dcs with bel", "a\x1bP1$r0m\x07" "b", "ab"),
	CASE("apc", "a\x1b_Gf=100;AAAA\x1b\\b", "ab"),
	CASE("pm", "a\x1b^private\x1b\\b", "ab"),
	CASE("sos", "a\x1bXstring\x1b\\b", "ab"),
	CASE("two-byte esc", "a\x1b" "7b\x1b" "8c\x1b" "cd\x1b=e\x1b>f", "abcdef"),
	CASE("esc intermediate", "a\x1b(Bb\x1b#8c\x1b%Gd", "abcd"),
	CASE("esc esc", "a\x1b\x1b[31mb", "ab"),
	CASE("lone st", "a\x1b\\b", "ab"),
	CASE("8-bit csi", "a\x9b" "31mb", "ab"),
	CASE("utf-8 csi", "a\xc2\x9b" "31mb", "ab"),
	CASE("8-bit osc st", "a\x9d" "0;t\x9c" "b", "ab"),
	CASE("utf-8 osc st", "a\xc2\x9d" "0;t\xc2\x9c" "b", "ab"),
	CASE("8-bit osc bel", "a\x9d" "0;t\x07" "b", "ab"),
	CASE("8-bit dcs", "a\x90q#0;2;0;0;0\x9c" "b", "ab"),
	CASE("utf-8 dcs", "a\xc2\x90q\xc2\x9c" "b", "ab"),
	CASE("8-bit apc pm sos", "a\x9fx\x9c" "b\x9ey\x9c" "c\x98z\x9c" "d", "abcd"),
	CASE("utf-8 apc pm sos",
	     "a\xc2\x9fx\xc2\x9c" "b\xc2\x9ey\xc2\x9c" "c\xc2\x98z\xc2\x9c" "d", "abcd"),
	CASE("osc ended by 8-bit csi", "a\x1b]0;t\x9b" "1mb", "ab"),
	CASE("other c1 dropped", "a\x84\x85\x8e" "b\xc2\x80\xc2\x85" "c", "abc"),
	CASE("can aborts csi", "a\x1b[31\x18" "b", "ab"),
	CASE("sub aborts osc", "a\x1b]0;t\x1a" "b", "ab"),
	CASE("can aborts esc", "a\x1b\x18" "b", "ab"),
	CASE("lf inside csi kept", "a\x1b[1\n2mb", "a\nb"),
	CASE("other c0 inside csi dropped", "a\x1b[1\x01" "2mb", "ab"),
	CASE("non-ascii ends csi", "a\x1b[1\xc3\xa9" "b", "a\xc3\xa9" "b"),
	CASE("nul", "a\0b", "ab"),
	CASE("bel", "a\x07" "b", "ab"),
	CASE("del", "a\x7f" "b", "ab"),
	CASE("c0 controls",
	     "\x01\x02\x03\x04\x05\x06\x08\x0b\x0c\x0e\x0f\x10\x11\x1c\x1f" "ok", "ok"),
	CASE("utf-8 e acute", "caf\xc3\xa9", "caf\xc3\xa9"),
	CASE("utf-8 euro", "5\xe2\x82\xac", "5\xe2\x82\xac"),
	CASE("utf-8 emoji", "hi \xf0\x9f\x98\x80!", "hi \xf0\x9f\x98\x80!"),
	CASE("utf-8 nbsp and max", "\xc2\xa0\xf4\x8f\xbf\xbf", "\xc2\xa0\xf4\x8f\xbf\xbf"),
	CASE("utf-8 edges", "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbd\xf0\x90\x80\x80",
	     "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbd\xf0\x90\x80\x80"),
	CASE("overlong slash", "\xc0\xaf", "??"),
	CASE("overlong c1", "a\xc1\x81" "b", "a??b"),
	CASE("overlong 3-byte", "\xe0\x80\xaf", "???"),
	CASE("overlong 4-byte", "\xf0\x80\x80\xaf", "????"),
	CASE("overlong c0 then raw csi", "\xc0\x9b" "1mx", "??1mx"),
	CASE("surrogate", "a\xed\xa0\x80" "b", "a???b"),
	CASE("low surrogate", "\xed\xbf\xbf", "???"),
	CASE("above 10ffff", "\xf4\x90\x80\x80", "????"),
	CASE("f5 lead", "\xf5\x80\x80\x80", "????"),
	CASE("ff fe", "\xff\xfe", "??"),
	CASE("stray continuation", "a\xa0" "b\xbf", "a?b?"),
	CASE("truncated then ascii", "\xe2\x82x", "??x"),
	CASE("truncated then lead", "\xe2\xc3\xa9", "?\xc3\xa9"),
	CASE("truncated at end", "ok\xe2\x82", "ok??"),
	CASE("truncated 4-byte at end", "\xf0\x9f\x98", "???"),
	CASE("lone esc at end", "abc\x1b", "abc"),
	CASE("csi at end", "abc\x1b[31", "abc"),
	CASE("bad utf-8 inside osc swallowed", "a\x1b]0;\xff\xe2\x07" "b", "ab"),
	CASE("truncated utf-8 inside osc at end", "a\x1b]0;t\xe2\x82", "a"),
	CASE("esc then text", "\x1b\xc3\xa9", "\xc3\xa9"),
	CASE("raw csi after character", "\xc3\xa9\x9b" "2Jx", "\xc3\xa9x"),
	CASE("st alone dropped", "a\x9c" "b\xc2\x9c" "c", "abc"),
};

static size_t run_whole(const uint8_t *in, size_t len, uint8_t *out)
{
	struct sanitizer s;
	size_t n;

	sanitize_init(&s);
	n = sanitize_feed(&s, in, len, out);
	assert_true(n <= len + SANITIZE_SLACK);
	n += sanitize_finish(&s, out + n);
	return n;
}

/* Feed in a heap buffer of exactly the documented capacity, so ASan sees overruns. */
static size_t feed_exact(struct sanitizer *s, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t *buf = malloc(len + SANITIZE_SLACK);
	size_t n;

	assert_non_null(buf);
	n = sanitize_feed(s, in, len, buf);
	assert_true(n <= len + SANITIZE_SLACK);
	memcpy(out, buf, n);
	free(buf);
	return n;
}

static size_t finish_exact(struct sanitizer *s, uint8_t *out)
{
	uint8_t *buf = malloc(SANITIZE_SLACK);
	size_t n;

	assert_non_null(buf);
	n = sanitize_finish(s, buf);
	assert_true(n <= SANITIZE_SLACK);
	memcpy(out, buf, n);
	free(buf);
	return n;
}

static void assert_bytes_equal(const char *name, const uint8_t *got, size_t gotlen,
			       const uint8_t *want, size_t wantlen)
{
	if (gotlen != wantlen || memcmp(got, want, wantlen) != 0) {
		print_error("case \"%s\": got %zu bytes, want %zu\n", name, gotlen, wantlen);
		fail();
	}
}

static void test_table_whole(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct san_case *c = &cases[i];
		uint8_t out[256];
		size_t n;

		assert_true(c->inlen + SANITIZE_SLACK <= sizeof(out));
		n = run_whole((const uint8_t *)c->in, c->inlen, out);
		assert_bytes_equal(c->name, out, n, (const uint8_t *)c->out, c->outlen);
	}
}

static void test_table_splits(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct san_case *c = &cases[i];
		const uint8_t *in = (const uint8_t *)c->in;

		for (size_t cut = 0; cut <= c->inlen; cut++) {
			struct sanitizer s;
			uint8_t out[512];
			size_t n;

			sanitize_init(&s);
			n = feed_exact(&s, in, cut, out);
			n += feed_exact(&s, in + cut, c->inlen - cut, out + n);
			n += finish_exact(&s, out + n);
			assert_bytes_equal(c->name, out, n, (const uint8_t *)c->out, c->outlen);
		}
	}
}

static void test_table_bytewise(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct san_case *c = &cases[i];
		struct sanitizer s;
		uint8_t out[512];
		size_t n = 0;

		sanitize_init(&s);
		for (size_t j = 0; j < c->inlen; j++)
			n += feed_exact(&s, (const uint8_t *)c->in + j, 1, out + n);
		n += finish_exact(&s, out + n);
		assert_bytes_equal(c->name, out, n, (const uint8_t *)c->out, c->outlen);
	}
}

static void test_table_idempotent(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct san_case *c = &cases[i];
		uint8_t once[256], twice[256];
		size_t n1, n2;

		n1 = run_whole((const uint8_t *)c->in, c->inlen, once);
		n2 = run_whole(once, n1, twice);
		assert_bytes_equal(c->name, twice, n2, once, n1);
	}
}

static void test_lone_esc_streaming(void **state)
{
	struct sanitizer s;
	uint8_t out[64];
	size_t n;

	/* ESC at the end of one call starts a sequence finished by the next */
	sanitize_init(&s);
	n = sanitize_feed(&s, (const uint8_t *)"abc\x1b", 4, out);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "abc", 3);
	n = sanitize_feed(&s, (const uint8_t *)"[31mdef", 7, out);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "def", 3);
	assert_int_equal(sanitize_finish(&s, out), 0);

	/* ESC ] at the end, string continued and terminated by ESC \ across calls */
	sanitize_init(&s);
	n = sanitize_feed(&s, (const uint8_t *)"x\x1b]", 3, out);
	assert_int_equal(n, 1);
	n = sanitize_feed(&s, (const uint8_t *)"0;t\x1b", 4, out);
	assert_int_equal(n, 0);
	n = sanitize_feed(&s, (const uint8_t *)"\\y", 2, out);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'y');
}

static void test_utf8_split_completion(void **state)
{
	struct sanitizer s;
	uint8_t out[64];
	size_t n;

	/* a cut UTF-8 sequence is held, then completed by the next call */
	sanitize_init(&s);
	n = sanitize_feed(&s, (const uint8_t *)"\xf0\x9f", 2, out);
	assert_int_equal(n, 0);
	n = sanitize_feed(&s, (const uint8_t *)"\x98", 1, out);
	assert_int_equal(n, 0);
	n = sanitize_feed(&s, (const uint8_t *)"\x80", 1, out);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\xf0\x9f\x98\x80", 4);

	/* truncated at end: finish flushes one '?' per held byte */
	n = sanitize_feed(&s, (const uint8_t *)"\xe2\x82", 2, out);
	assert_int_equal(n, 0);
	n = sanitize_finish(&s, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "??", 2);

	/* finish resets: the sanitizer is usable again and starts in ground */
	n = sanitize_feed(&s, (const uint8_t *)"ok", 2, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ok", 2);
	assert_int_equal(sanitize_finish(&s, out), 0);

	/* ... even after an unterminated string */
	n = sanitize_feed(&s, (const uint8_t *)"\x1b]0;t", 5, out);
	assert_int_equal(n, 0);
	assert_int_equal(sanitize_finish(&s, out), 0);
	n = sanitize_feed(&s, (const uint8_t *)"ok", 2, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ok", 2);
	assert_int_equal(sanitize_finish(&s, out), 0);

	/* ... or a malformed byte: a raw C1 byte in a new stream is a control again */
	n = sanitize_feed(&s, (const uint8_t *)"\xc0\xe2", 2, out);
	assert_int_equal(n, 1);
	assert_int_equal(sanitize_finish(&s, out), 1);
	n = sanitize_feed(&s, (const uint8_t *)"\x9b" "1mX", 4, out);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'X');
}

static void test_slack_bound(void **state)
{
	struct sanitizer s;
	uint8_t out[1 + SANITIZE_SLACK];
	size_t n;

	/* three held bytes plus a bad byte: the worst case for one input byte */
	sanitize_init(&s);
	assert_int_equal(sanitize_feed(&s, (const uint8_t *)"\xf0\x9f\x98", 3, out), 0);
	n = sanitize_feed(&s, (const uint8_t *)"\xff", 1, out);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "????", 4);
	assert_true(n <= 1 + SANITIZE_SLACK);
}

/* Build "<prefix><fill * count><suffix>" in a heap buffer. */
static uint8_t *build(const char *prefix, char fill, size_t count, const char *suffix,
		      size_t *ret_len)
{
	size_t lp = strlen(prefix), ls = strlen(suffix);
	uint8_t *b = malloc(lp + count + ls);

	assert_non_null(b);
	memcpy(b, prefix, lp);
	memset(b + lp, fill, count);
	memcpy(b + lp + count, suffix, ls);
	*ret_len = lp + count + ls;
	return b;
}

static void test_string_bound(void **state)
{
	uint8_t *in, *out;
	size_t len, n;

	/* under the bound, LF does not end a string */
	in = build("a\x1b]0;", 'x', 100, "\nmore\x07" "b", &len);
	out = malloc(len + SANITIZE_SLACK);
	assert_non_null(out);
	n = run_whole(in, len, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ab", 2);
	free(in);
	free(out);

	/* a terminated string longer than the bound is still dropped whole */
	in = build("a\x1b]52;c;", 'Q', 3 * SANITIZE_MAX_STRING, "\x07" "b", &len);
	out = malloc(len + SANITIZE_SLACK);
	assert_non_null(out);
	n = run_whole(in, len, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ab", 2);
	free(in);
	free(out);

	/* an unterminated one ends at the first LF after the bound */
	in = build("a\x9d", 'x', SANITIZE_MAX_STRING + 10, "\nafter", &len);
	out = malloc(len + SANITIZE_SLACK);
	assert_non_null(out);
	n = run_whole(in, len, out);
	assert_int_equal(n, 7);
	assert_memory_equal(out, "a\nafter", 7);
	free(in);
	free(out);

	/* ... or CR */
	in = build("\x1bP", 'x', SANITIZE_MAX_STRING, "\rz", &len);
	out = malloc(len + SANITIZE_SLACK);
	assert_non_null(out);
	n = run_whole(in, len, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\rz", 2);
	free(in);
	free(out);
}

static void test_params_bound(void **state)
{
	uint8_t *in, *out;
	size_t len, n;

	/* exactly the bound of parameter bytes: still one sequence */
	in = build("a\x1b[", '1', SANITIZE_MAX_PARAMS, "mb", &len);
	out = malloc(len + SANITIZE_SLACK);
	assert_non_null(out);
	n = run_whole(in, len, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "ab", 2);
	free(in);
	free(out);

	/* beyond it the sequence is abandoned and the rest is text */
	in = build("a\x9b", '1', SANITIZE_MAX_PARAMS + 3, "mb", &len);
	out = malloc(len + SANITIZE_SLACK);
	assert_non_null(out);
	n = run_whole(in, len, out);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "a111mb", 6);
	free(in);
	free(out);
}

/*
 * Independent checker: the output may contain only TAB, CR, LF, 0x20-0x7e
 * and well-formed UTF-8 (shortest form, no surrogates, <= U+10FFFF) for
 * code points from U+00A0.
 */
static bool output_is_clean(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t b = p[i];
		size_t n;
		uint32_t cp, min;

		if (b < 0x80) {
			if (b == 0x7f || (b < 0x20 && b != '\t' && b != '\r' && b != '\n'))
				return false;
			i++;
			continue;
		}
		if ((b & 0xe0) == 0xc0) {
			n = 2;
			cp = b & 0x1f;
			min = 0x80;
		} else if ((b & 0xf0) == 0xe0) {
			n = 3;
			cp = b & 0x0f;
			min = 0x800;
		} else if ((b & 0xf8) == 0xf0) {
			n = 4;
			cp = b & 0x07;
			min = 0x10000;
		} else
			return false;
		if (i + n > len)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (cp < 0xa0)
			return false; /* C1 */
		i += n;
	}
	return true;
}

static void test_checker_rejects(void **state)
{
	/* make sure the soak's checker is not vacuous */
	assert_true(output_is_clean((const uint8_t *)"a\t\r\n\xc3\xa9", 6));
	assert_false(output_is_clean((const uint8_t *)"\x1b", 1));
	assert_false(output_is_clean((const uint8_t *)"\x7f", 1));
	assert_false(output_is_clean((const uint8_t *)"\x9b", 1));
	assert_false(output_is_clean((const uint8_t *)"\xc2\x9b", 2));
	assert_false(output_is_clean((const uint8_t *)"\xc0\xaf", 2));
	assert_false(output_is_clean((const uint8_t *)"\xed\xa0\x80", 3));
	assert_false(output_is_clean((const uint8_t *)"\xf4\x90\x80\x80", 4));
	assert_false(output_is_clean((const uint8_t *)"\xe2\x82", 2));
}

static uint64_t rng_state;

static uint32_t rng_next(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

/* Mostly interesting bytes, so that every parser state is visited often. */
static uint8_t rng_byte(void)
{
	static const uint8_t hot[] = {
		0x1b, 0x1b, 0x1b, '[', ']', 'P', '_', '^', 'X', '\\', 0x07, 0x18, 0x1a,
		0x9b, 0x9c, 0x9d, 0x90, 0x9f, 0x9e, 0x98, 0xc2, 0xc3, 0xe0, 0xe2, 0xed,
		0xf0, 0xf4, 0x80, 0x82, 0x9f, 0xa0, 0xbf, 0xc0, 0xff, '\n', '\r', '\t',
		0, 0x7f, '0', ';', 'm', '?', ' ', '(',
	};
	uint32_t r = rng_next();

	switch (r % 4) {
	case 0:
		return hot[(r >> 8) % sizeof(hot)];
	case 1:
		return 0x20 + (r >> 8) % 0x5f;
	default:
		return r >> 8;
	}
}

#define SOAK_LEN 200000

static void test_soak(void **state)
{
	uint8_t *in = malloc(SOAK_LEN);
	uint8_t *whole = malloc(SOAK_LEN + SANITIZE_SLACK);
	uint8_t *pieces = malloc(SOAK_LEN + SANITIZE_SLACK);
	uint8_t *again = malloc(SOAK_LEN + SANITIZE_SLACK);
	struct sanitizer s;
	size_t nwhole, npieces, nagain, pos;

	assert_non_null(in);
	assert_non_null(whole);
	assert_non_null(pieces);
	assert_non_null(again);

	rng_state = 0x7474796875620001ULL;
	for (size_t i = 0; i < SOAK_LEN; i++)
		in[i] = rng_byte();

	nwhole = run_whole(in, SOAK_LEN, whole);
	assert_true(nwhole > 0);
	assert_true(output_is_clean(whole, nwhole));

	/* random chunk sizes, including empty ones */
	sanitize_init(&s);
	npieces = 0;
	pos = 0;
	while (pos < SOAK_LEN) {
		size_t chunk = rng_next() % 64;

		if (chunk > SOAK_LEN - pos)
			chunk = SOAK_LEN - pos;
		npieces += feed_exact(&s, in + pos, chunk, pieces + npieces);
		pos += chunk;
	}
	npieces += finish_exact(&s, pieces + npieces);
	assert_int_equal(npieces, nwhole);
	assert_memory_equal(pieces, whole, nwhole);

	/* fixed point */
	nagain = run_whole(whole, nwhole, again);
	assert_int_equal(nagain, nwhole);
	assert_memory_equal(again, whole, nwhole);

	free(in);
	free(whole);
	free(pieces);
	free(again);
}

static void test_soak_uniform(void **state)
{
	/* uniformly random bytes over several seeds, whole buffer only */
	uint8_t *in = malloc(SOAK_LEN / 4);
	uint8_t *out = malloc(SOAK_LEN / 4 + SANITIZE_SLACK);
	uint8_t *again = malloc(SOAK_LEN / 4 + SANITIZE_SLACK);

	assert_non_null(in);
	assert_non_null(out);
	assert_non_null(again);
	for (uint64_t seed = 1; seed <= 8; seed++) {
		size_t n, n2;

		rng_state = seed * 0x9e3779b97f4a7c15ULL;
		for (size_t i = 0; i < SOAK_LEN / 4; i++)
			in[i] = rng_next() >> 24;
		n = run_whole(in, SOAK_LEN / 4, out);
		assert_true(output_is_clean(out, n));
		n2 = run_whole(out, n, again);
		assert_int_equal(n2, n);
		assert_memory_equal(again, out, n);
	}
	free(in);
	free(out);
	free(again);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_whole),
		cmocka_unit_test(test_table_splits),
		cmocka_unit_test(test_table_bytewise),
		cmocka_unit_test(test_table_idempotent),
		cmocka_unit_test(test_lone_esc_streaming),
		cmocka_unit_test(test_utf8_split_completion),
		cmocka_unit_test(test_slack_bound),
		cmocka_unit_test(test_string_bound),
		cmocka_unit_test(test_params_bound),
		cmocka_unit_test(test_checker_rejects),
		cmocka_unit_test(test_soak),
		cmocka_unit_test(test_soak_uniform),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
