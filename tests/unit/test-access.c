/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the access file parser: real OpenSSH public keys (ed25519,
 * rsa 2048, ecdsa 256/384/521, dsa, generated with ssh-keygen), synthetic
 * sk-* key blobs built with an independent base64 encoder, the options
 * field (quotes, commas, spaces, \" escapes, case-insensitive names,
 * accumulating consoles=), the right and from= checks, a table of every
 * error with its line number, line handling (CRLF, comments, blank lines,
 * leading blanks, no final newline, NUL bytes, line and file limits) and
 * random garbage checked against invariants.  The gateway option, and
 * grant text (access_parse_grant(), access_format_grant()): canonical
 * forms, every error, quotes that survive a round trip, the size limits.
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

#include "access.h"

/* Generated with ssh-keygen -t ed25519|rsa -b 2048|ecdsa -b 256/384/521|dsa, -N ''. */
#define T_ED25519 "ssh-ed25519"
#define B_ED25519 \
	"AAAAC3NzaC1lZDI1NTE5AAAAIENfFXq4EYk9LzqkiRhloV9LcdHbvf07H0EC6GpjoKiv"
#define K_ED25519 T_ED25519 " " B_ED25519
#define T_RSA "ssh-rsa"
#define B_RSA \
	"AAAAB3NzaC1yc2EAAAADAQABAAABAQCcn0f99YT9DpAu07LwFbvl+QdiLsuO7de9sD9J7LpC" \
	"AKOGV24v2LLGv4C56yR62kPPDyISAK0AWfSOv/SuQtt/COB8TrUCe0fPcTx/X6A1nxanvmaC" \
	"l+JndYaZapa6QAyHSyazytICSwGinFCYKcLA6I6Xwd/r+2W0sbSzGnnnyZj4Z3fenrS2iWFm" \
	"llmanrs7eu4LxGxDkmICFEfSWAUmxE5nueZLaG0FsL/YUi1jgDbPD9QaO5KFijf0clh59IuI" \
	"IbzoHmYcC5NGy4YDgtzUFgBxhFczmjTdOIfmw5wBFD5vjI57NtG79a5LENlOg1DLFl3M1PiS" \
	"rlWf8aIaaKHP"
#define K_RSA T_RSA " " B_RSA
#define T_EC256 "ecdsa-sha2-nistp256"
#define B_EC256 \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCwxmJ/YmGzVi0HrGoJ+" \
	"idnXiOT0Q8E5pewGhJcShFNSyDb/+8YXDpUc1wOTg4QlN0dR7DMhMbN3Gbw8/wDEW3o="
#define K_EC256 T_EC256 " " B_EC256
#define T_EC384 "ecdsa-sha2-nistp384"
#define B_EC384 \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBGEFPqRtDmP/l8Yn6U6M" \
	"NJiRp9Xtt1kN8T9zHfOsmDLhCaPD4kq1Ixthw8gb35EIW65Aq9tb4Tb4xkx+lmZejmAf8tzx" \
	"GWLY5KH/uLb9Tu0tjo7U+Oodgf0MMdS/MB/Lkw=="
#define K_EC384 T_EC384 " " B_EC384
#define T_EC521 "ecdsa-sha2-nistp521"
#define B_EC521 \
	"AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBADRvVkp2mbF52R77RPP" \
	"dwenbkXdFV8bQi/2a1HflWH7rmEo++Z+S1QaCk8T9D6VGxnCiKeBz+X7I540M/yxKbvsmQAU" \
	"+IugGAYJGKavG2/FFG+bifBn+oBwYa/sPedUoQGxsvLA43XGwlmCKS/KkuD6mh+M2ff9+dbd" \
	"GH76bGFfkFU7zg=="
#define K_EC521 T_EC521 " " B_EC521
#define T_DSA "ssh-dss"
#define B_DSA \
	"AAAAB3NzaC1kc3MAAACBAJNMSnOR4xkrsyB4aLthZN6bt+bceE6mP3VGAoTswvRUsq0E4HJ8" \
	"vgYaoZ5oLyMp/OK73MEVjW9XgikR5Ua3YNc2kGLoBrFTy2DZ8+qE02XYAizt8PYS6zFJXCsH" \
	"Fp8XXl9s0BVi+ZNFSV+eVTBLiqVek9Tm6TSb8b31hBkAVxMDAAAAFQDNItc/MY9DGfHZpRM8" \
	"Hb0VcXFUuQAAAIAyV/UkVOKRYVKp51ybQ6FxIOM6bD9lZEZMlMPlbfEQ3AnbWaqh54LCDqBh" \
	"o1DGdvDBQrunDo0bzCaTVvF7Wbsl+ACUMQpNaqgboDkR1Mdx2wdEvakJS47hxddTJvWbNnnb" \
	"75//0SbeXnD8yko/nITv+8JsIoVJXsP/R/zIaKz4jAAAAIAGsgZ+N3z2QXVdnQygaPEpYSfT" \
	"v7AXehAB0/L6gQOYKwaV6HT8aY/jKMPa22XryntuJ+RW6oMcm+fCNSUsDmUrpbfmCg2Pfozz" \
	"m8FPodgRe5MC1dQv6vUGzxj1IIQ9P4miyDbSaqSQLzR1OLP/XmtLQF2OnyZN+b+MpZqWO/2a" \
	"FQ=="
#define K_DSA T_DSA " " B_DSA
/* The ed25519 key above, signed by a throw-away CA (ssh-keygen -s). */
#define T_CERT "ssh-ed25519-cert-v01@openssh.com"
#define B_CERT \
	"AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIB76/wYalG5jcHJvgEZ/" \
	"qAJkv+GUSW2e2iA/ckL7VIawAAAAIENfFXq4EYk9LzqkiRhloV9LcdHbvf07H0EC6GpjoKiv" \
	"AAAAAAAAAAAAAAABAAAAAmlkAAAABwAAAANib2IAAAAAAAAAAP//////////AAAAAAAAAIIA" \
	"AAAVcGVybWl0LVgxMS1mb3J3YXJkaW5nAAAAAAAAABdwZXJtaXQtYWdlbnQtZm9yd2FyZGlu" \
	"ZwAAAAAAAAAWcGVybWl0LXBvcnQtZm9yd2FyZGluZwAAAAAAAAAKcGVybWl0LXB0eQAAAAAA" \
	"AAAOcGVybWl0LXVzZXItcmMAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAg4yFynLT5" \
	"aj504IvWRB17SYoJOYDjdmP7367uvqywxnEAAABTAAAAC3NzaC1lZDI1NTE5AAAAQIFjhnxb" \
	"j3v8FWfaLL8BmJwxabDwrFhkjXydCmP9wObSTIQy1TIrDl74i2hY6p6DNy/1H3Xz7bapmXlV" \
	"wqw0egA="
#define K_CERT T_CERT " " B_CERT

#define C_ED25519 "user-ed25519@test"

static struct access_file *parse_ok(const char *text)
{
	struct access_file *f = NULL;

	assert_int_equal(access_parse(text, strlen(text), &f), 0);
	assert_non_null(f);
	return f;
}

/* Parse a one-line file that must load; returns its entry in *ret_f. */
static const struct access_entry *parse_one(const char *line, struct access_file **ret_f)
{
	struct access_file *f = parse_ok(line);

	if (f->n_errors > 0)
		print_error("unexpected error for <%s>: line %u: %s\n", line, f->errors[0].line,
			    f->errors[0].message);
	assert_int_equal(f->n_errors, 0);
	assert_int_equal(f->n_entries, 1);
	assert_int_equal(f->entries[0].line, 1);
	*ret_f = f;
	return &f->entries[0];
}

/* A plain base64 encoder (with padding), independent of the parser's decoder. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? abc[v & 63] : '=';
	}
	out[o] = '\0';
}

/* base64 of string(type) followed by extra bytes of payload (0x01, 0x02, ...). */
static void make_blob(const char *type, size_t extra, char *out)
{
	uint8_t buf[512];
	size_t tl = strlen(type), n = 0;

	assert_true(4 + tl + extra <= sizeof(buf));
	buf[n++] = (uint8_t)(tl >> 24);
	buf[n++] = (uint8_t)(tl >> 16);
	buf[n++] = (uint8_t)(tl >> 8);
	buf[n++] = (uint8_t)tl;
	memcpy(buf + n, type, tl);
	n += tl;
	for (size_t i = 0; i < extra; i++)
		buf[n++] = (uint8_t)(i + 1);
	b64_encode(buf, n, out);
}

struct key_case {
	const char *line;
	const char *type;
	const char *base64;
	const char *comment; /* or NULL */
};

static const struct key_case key_cases[] = {
	{ K_ED25519 " " C_ED25519, T_ED25519, B_ED25519, C_ED25519 },
	{ K_RSA " user-rsab2048@test", T_RSA, B_RSA, "user-rsab2048@test" },
	{ K_EC256 " user-ecdsab256@test", T_EC256, B_EC256, "user-ecdsab256@test" },
	{ K_EC384 " user-ecdsab384@test", T_EC384, B_EC384, "user-ecdsab384@test" },
	{ K_EC521 " user-ecdsab521@test", T_EC521, B_EC521, "user-ecdsab521@test" },
	{ K_DSA " dsa@test", T_DSA, B_DSA, "dsa@test" },
	{ K_ED25519, T_ED25519, B_ED25519, NULL },
	{ K_ED25519 "   \t ", T_ED25519, B_ED25519, NULL },
	{ K_ED25519 "  alice at  the laptop \t", T_ED25519, B_ED25519, "alice at  the laptop" },
	{ K_RSA "\t\tx", T_RSA, B_RSA, "x" },
	{ T_EC256 " \t  " B_EC256 " c", T_EC256, B_EC256, "c" },
};

static void test_real_keys(void **state)
{
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
		const struct key_case *c = &key_cases[i];
		struct access_file *f;
		const struct access_entry *e = parse_one(c->line, &f);

		assert_string_equal(e->keytype, c->type);
		assert_string_equal(e->base64, c->base64);
		if (c->comment)
			assert_string_equal(e->comment, c->comment);
		else
			assert_null(e->comment);
		assert_int_equal(e->n_rules, 0);
		assert_null(e->rules);
		assert_int_equal(e->n_from, 0);
		assert_false(e->brk);
		access_file_free(f);
	}
}

/* Key types without a key at hand (security keys) and every padding length. */
static void test_synthetic_blobs(void **state)
{
	static const char *const types[] = {
		"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
		"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp521", "ssh-dss",
	};

	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		for (size_t extra = 1; extra <= 40; extra++) {
			char blob[800], line[1000];
			struct access_file *f;
			const struct access_entry *e;

			make_blob(types[t], extra, blob);
			snprintf(line, sizeof(line), "consoles=\"x:ro\" %s %s sk", types[t], blob);
			e = parse_one(line, &f);
			assert_string_equal(e->keytype, types[t]);
			assert_string_equal(e->base64, blob);
			assert_string_equal(e->comment, "sk");
			access_file_free(f);
		}
	}
}

struct rule_exp {
	const char *pattern;
	enum access_right right;
};

struct option_case {
	const char *opts;
	struct rule_exp rules[5];
	size_t n_rules;
	bool brk;
	const char *from[4];
	size_t n_from;
};

static const struct option_case option_cases[] = {
	{ "consoles=\"web-*:rw,db01:ro\",break",
	  { { "web-*", ACCESS_RW }, { "db01", ACCESS_RO } }, 2, true, { NULL }, 0 },
	{ "consoles=\"a:ro\",consoles=\"b:rw\",consoles=\"c:ro\"",
	  { { "a", ACCESS_RO }, { "b", ACCESS_RW }, { "c", ACCESS_RO } }, 3, false, { NULL }, 0 },
	{ "CONSOLES=\"x:rw\",Break,ReStRiCt",
	  { { "x", ACCESS_RW } }, 1, true, { NULL }, 0 },
	{ "consoles=\"my vm:rw, db:ro ,\tz*:ro\"",
	  { { "my vm", ACCESS_RW }, { "db", ACCESS_RO }, { "z*", ACCESS_RO } }, 3, false,
	  { NULL }, 0 },
	{ "consoles=\"web01:serial1:rw,*:console?:ro\"",
	  { { "web01:serial1", ACCESS_RW }, { "*:console?", ACCESS_RO } }, 2, false, { NULL }, 0 },
	{ "consoles=\"we\\\"b:rw\"", { { "we\"b", ACCESS_RW } }, 1, false, { NULL }, 0 },
	{ "consoles=\"a\\*b:ro,[ab]c:rw\"",
	  { { "a\\*b", ACCESS_RO }, { "[ab]c", ACCESS_RW } }, 2, false, { NULL }, 0 },
	{ "consoles=\"x:ro,y:rw\",consoles=\"x:rw\"",
	  { { "x", ACCESS_RO }, { "y", ACCESS_RW }, { "x", ACCESS_RW } }, 3, false, { NULL }, 0 },
	{ "from=\"10.0.0.*,!10.0.0.5\",consoles=\"*:ro\"",
	  { { "*", ACCESS_RO } }, 1, false, { "10.0.0.*", "!10.0.0.5" }, 2 },
	{ "from=\"::1, 192.168.*\"", { { NULL, 0 } }, 0, false, { "::1", "192.168.*" }, 2 },
	{ "restrict,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc,"
	  "consoles=\"a:ro\"",
	  { { "a", ACCESS_RO } }, 1, false, { NULL }, 0 },
	{ "NO-x11-FORWARDING,break,break", { { NULL, 0 } }, 0, true, { NULL }, 0 },
	{ "From=\"h\",CONSOLES=\"q:rw\"", { { "q", ACCESS_RW } }, 1, false, { "h" }, 1 },
};

static void test_options(void **state)
{
	static const char *const keys[] = { K_ED25519, K_RSA, K_EC384 };

	for (size_t i = 0; i < sizeof(option_cases) / sizeof(option_cases[0]); i++) {
		const struct option_case *c = &option_cases[i];
		char line[2000];
		struct access_file *f;
		const struct access_entry *e;

		snprintf(line, sizeof(line), "%s %s the comment", c->opts, keys[i % 3]);
		e = parse_one(line, &f);
		assert_int_equal(e->n_rules, c->n_rules);
		for (size_t k = 0; k < c->n_rules; k++) {
			assert_string_equal(e->rules[k].pattern, c->rules[k].pattern);
			assert_int_equal(e->rules[k].right, c->rules[k].right);
		}
		assert_int_equal(e->brk, c->brk);
		assert_int_equal(e->n_from, c->n_from);
		for (size_t k = 0; k < c->n_from; k++)
			assert_string_equal(e->from[k], c->from[k]);
		assert_string_equal(e->comment, "the comment");
		access_file_free(f);
	}
}

static void test_quoted_blanks_in_options(void **state)
{
	/* blanks inside quotes do not end the options field; \" does not close a quote */
	struct access_file *f;
	const struct access_entry *e = parse_one(
		"consoles=\"a b:rw,\\\" c d:ro\",from=\"x y\"\t" K_RSA " rsa key", &f);

	assert_int_equal(e->n_rules, 2);
	assert_string_equal(e->rules[0].pattern, "a b");
	assert_string_equal(e->rules[1].pattern, "\" c d");
	assert_int_equal(e->rules[1].right, ACCESS_RO);
	assert_int_equal(e->n_from, 1);
	assert_string_equal(e->from[0], "x y");
	assert_string_equal(e->keytype, T_RSA);
	assert_string_equal(e->comment, "rsa key");
	access_file_free(f);
}

#define UUID_CAFE "cafe0000-1111-2222-3333-444455556666"
#define UUID_DB "db000000-aaaa-bbbb-cccc-ddddeeeeffff"

struct check_case {
	struct access_console con;
	enum access_right right;
};

static void test_check(void **state)
{
	static const struct check_case cases[] = {
		{ { "web-01", NULL, NULL }, ACCESS_RW },
		{ { "web-02", NULL, NULL }, ACCESS_RO },
		{ { "db1", NULL, NULL }, ACCESS_RO },
		{ { "db10", NULL, NULL }, ACCESS_NONE },
		{ { "x", NULL, "serial1" }, ACCESS_RW },
		{ { "x", NULL, "serial2" }, ACCESS_NONE },
		/* a pattern without ':' grants every console of a matching VM */
		{ { "web-02", NULL, "serial0" }, ACCESS_RO },
		{ { "web-01", UUID_CAFE, "console1" }, ACCESS_RW },
		{ { "WEB-01", NULL, NULL }, ACCESS_NONE },
		{ { "", NULL, NULL }, ACCESS_NONE },
		{ { NULL, NULL, NULL }, ACCESS_NONE },
	};
	struct access_file *f;
	const struct access_entry *e = parse_one(
		"consoles=\"web-*:ro,web-01:rw,db?:ro,*:serial1:rw\" " K_ED25519, &f);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(access_check(e, &cases[i].con), cases[i].right);
	access_file_free(f);
}

static void test_pattern_kind(void **state)
{
	assert_int_equal(access_pattern_kind("web01"), ACCESS_KIND_VM);
	assert_int_equal(access_pattern_kind("ca*"), ACCESS_KIND_VM);
	assert_int_equal(access_pattern_kind("cafe0000-1111-2222-3333-44445555666*"),
			 ACCESS_KIND_VM);
	assert_int_equal(access_pattern_kind("web01:serial0"), ACCESS_KIND_VM_ALIAS);
	assert_int_equal(access_pattern_kind("*:serial0"), ACCESS_KIND_VM_ALIAS);
	assert_int_equal(access_pattern_kind(UUID_CAFE), ACCESS_KIND_UUID);
	assert_int_equal(access_pattern_kind("CAFE0000-1111-2222-3333-444455556666"),
			 ACCESS_KIND_UUID);
	assert_int_equal(access_pattern_kind(UUID_CAFE ":serial*"), ACCESS_KIND_UUID_ALIAS);
	/* not canonical: dashes elsewhere, no dashes, a non-hex digit */
	assert_int_equal(access_pattern_kind("cafe00001-111-2222-3333-444455556666"),
			 ACCESS_KIND_VM);
	assert_int_equal(access_pattern_kind("cafe0000111122223333444455556666"), ACCESS_KIND_VM);
	assert_int_equal(access_pattern_kind("cafe0000-1111-2222-3333-44445555666g"),
			 ACCESS_KIND_VM);
}

/*
 * M1: patterns are typed.  Each case here was granted by the old rule, which
 * matched every pattern against VM:ALIAS, VM, UUID and UUID:ALIAS alike.
 */
static void test_check_names_mean_one_thing(void **state)
{
	const struct access_console web01 = { "web01", UUID_CAFE, "serial0" };
	const struct access_console web01_c1 = { "web01", UUID_CAFE, "console1" };
	const struct access_console db = { "db01", UUID_DB, "serial0" };
	const struct access_console cache = { "cache-1", UUID_DB, "serial0" };
	struct access_file *f = parse_ok(
		/* 1: meant for cache-* VMs */
		"consoles=\"ca*:rw\" " K_ED25519 "\n"
		/* 2: a VM-name pattern that also looks like aliases' ends */
		"consoles=\"*0:ro\" " K_ED25519 "\n"
		/* 3: a UUID prefix */
		"consoles=\"db*:ro,cafe0000-*:ro\" " K_ED25519 "\n"
		/* 4: UUID:ALIAS written as a prefix and a glob */
		"consoles=\"cafe*:serial0:ro\" " K_ED25519 "\n"
		/* 5: full UUIDs */
		"consoles=\"CAFE0000-1111-2222-3333-444455556666:rw\" " K_ED25519 "\n"
		"consoles=\"" UUID_CAFE ":console*:rw\" " K_ED25519 "\n"
		/* 7: VM:ALIAS */
		"consoles=\"web01:serial0:rw,*:console1:ro\" " K_ED25519 "\n"
		/* 8: a VM-name pattern never matches VM:ALIAS */
		"consoles=\"web01:s*:ro,*serial0:rw\" " K_ED25519 "\n");

	assert_int_equal(f->n_errors, 0);
	assert_int_equal(f->n_entries, 8);
	/* "ca*" grants cache-1, never web01 through its UUID cafe0000-... */
	assert_int_equal(access_check(&f->entries[0], &web01), ACCESS_NONE);
	assert_int_equal(access_check(&f->entries[0], &cache), ACCESS_RW);
	/* "*0" grants VMs whose name ends in 0, not every serial0 */
	assert_int_equal(access_check(&f->entries[1], &web01), ACCESS_NONE);
	assert_int_equal(access_check(&f->entries[1], &db), ACCESS_NONE);
	/* UUID prefixes grant nothing */
	assert_int_equal(access_check(&f->entries[2], &web01), ACCESS_NONE);
	assert_int_equal(access_check(&f->entries[2], &db), ACCESS_RO); /* the VM name db01 */
	assert_int_equal(access_check(&f->entries[2], &cache), ACCESS_NONE);
	assert_int_equal(access_check(&f->entries[3], &web01), ACCESS_NONE);
	/* a full UUID grants that VM, any case, and UUID:ALIAS its matching aliases */
	assert_int_equal(access_check(&f->entries[4], &web01), ACCESS_RW);
	assert_int_equal(access_check(&f->entries[4], &web01_c1), ACCESS_RW);
	assert_int_equal(access_check(&f->entries[4], &db), ACCESS_NONE);
	assert_int_equal(access_check(&f->entries[5], &web01), ACCESS_NONE);
	assert_int_equal(access_check(&f->entries[5], &web01_c1), ACCESS_RW);
	assert_int_equal(access_check(&f->entries[5], &cache), ACCESS_NONE);
	/* VM:ALIAS patterns match VM:ALIAS */
	assert_int_equal(access_check(&f->entries[6], &web01), ACCESS_RW);
	assert_int_equal(access_check(&f->entries[6], &web01_c1), ACCESS_RO);
	assert_int_equal(access_check(&f->entries[6], &db), ACCESS_NONE);
	/* "web01:s*" grants web01:serial0; "*serial0" (no ':') matches no alias */
	assert_int_equal(access_check(&f->entries[7], &web01), ACCESS_RO);
	assert_int_equal(access_check(&f->entries[7], &db), ACCESS_NONE);
	access_file_free(f);
}

static void test_pattern_warnings(void **state)
{
	static const struct {
		const char *pattern;
		bool warns;
	} cases[] = {
		{ "*0", true },     { "*1", true },        { "*serial1", true },
		{ "**console", true }, { "*beef", true },  { "*-0a1b", true },
		{ "c7a5fdbd-*", true }, { "c7a5fdbd*", true },
		/* no surprise: leading '*' over VM names, VM:ALIAS, full UUIDs, names */
		{ "*", false },     { "*-prod", false },   { "*web*", false },
		{ "*:serial0", false }, { "*0:serial0", false }, { "ca*", false },
		{ "db*", false },   { UUID_CAFE, false },  { UUID_CAFE ":serial*", false },
		{ "web01", false },
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = access_pattern_warning(cases[i].pattern, buf, sizeof(buf));

		if (r != (int)cases[i].warns)
			fail_msg("pattern %s: warning %d, expected %d", cases[i].pattern, r,
				 cases[i].warns);
		if (r)
			for (const char *p = buf; *p; p++)
				assert_true(*p >= 0x20 && *p < 0x7f);
	}
}

static void test_warnings_have_lines(void **state)
{
	struct access_file *f = parse_ok(
		"# comment\n"
		"consoles=\"web*:rw\" " K_ED25519 "\n"
		"consoles=\"web*:rw,*0:ro,*serial1:rw\" " K_ED25519 "\n"
		/* a line with an error is skipped: no warning for it */
		"consoles=\"*0:ro\",bogus " K_ED25519 "\n"
		"consoles=\"*1:ro\" " K_ED25519 "\n");

	assert_int_equal(f->n_entries, 3);
	assert_int_equal(f->n_errors, 1);
	assert_int_equal(f->n_warnings, 3);
	assert_int_equal(f->warnings[0].line, 3);
	assert_non_null(strstr(f->warnings[0].message, "\"*0\""));
	assert_int_equal(f->warnings[1].line, 3);
	assert_non_null(strstr(f->warnings[1].message, "\"*serial1\""));
	assert_int_equal(f->warnings[2].line, 5);
	/* warnings never stop a rule from working */
	assert_int_equal(f->entries[1].n_rules, 3);
	access_file_free(f);
}

static void test_check_max_right(void **state)
{
	const struct access_console web = { "web", NULL, NULL };
	const struct access_console other = { "other", NULL, NULL };
	struct access_file *f = parse_ok(
		/* 1: rw first, ro second: rw wins */
		"consoles=\"*:rw,web:ro\" " K_ED25519 "\n"
		/* 2: ro then rw in a later consoles= */
		"consoles=\"web:ro\",consoles=\"w*:rw\" " K_ED25519 "\n"
		/* 3: no consoles=: logs in, sees nothing */
		"break " K_ED25519 "\n"
		/* 4: only ro */
		"consoles=\"web:ro,web:ro\" " K_ED25519 "\n");

	assert_int_equal(f->n_errors, 0);
	assert_int_equal(f->n_entries, 4);
	assert_int_equal(access_check(&f->entries[0], &web), ACCESS_RW);
	assert_int_equal(access_check(&f->entries[0], &other), ACCESS_RW);
	assert_int_equal(access_check(&f->entries[1], &web), ACCESS_RW);
	assert_int_equal(access_check(&f->entries[1], &other), ACCESS_NONE);
	assert_int_equal(access_check(&f->entries[2], &web), ACCESS_NONE);
	assert_true(f->entries[2].brk);
	assert_int_equal(access_check(&f->entries[3], &web), ACCESS_RO);
	assert_int_equal(access_check(&f->entries[3], &other), ACCESS_NONE);
	access_file_free(f);
}

static void test_action_options(void **state)
{
	struct access_file *f = parse_ok(
		"consoles=\"a:rw\",sysrq " K_ED25519 "\n"
		"nmi,consoles=\"a:rw\" " K_ED25519 "\n"
		"consoles=\"a:rw\",power,break " K_ED25519 "\n"
		"sysrq,nmi,power " K_ED25519 "\n"
		"consoles=\"a:rw\" " K_ED25519 "\n"
		"sysrq=\"h\" " K_ED25519 "\n"
		"SYSRQ " K_ED25519 "\n");
	const struct {
		bool sysrq, nmi, power, brk;
	} want[] = {
		{ true, false, false, false },
		{ false, true, false, false },
		{ false, false, true, true },
		{ true, true, true, false },
		{ false, false, false, false },
	};

	/* Each right on its own; break gives none of them; they take no value. */
	assert_int_equal(f->n_entries, 6);
	/* Option names are case-insensitive, as OpenSSH's. */
	assert_true(f->entries[5].sysrq);
	assert_false(f->entries[5].nmi);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(f->entries[i].sysrq, want[i].sysrq);
		assert_int_equal(f->entries[i].nmi, want[i].nmi);
		assert_int_equal(f->entries[i].power, want[i].power);
		assert_int_equal(f->entries[i].brk, want[i].brk);
	}
	assert_int_equal(f->n_errors, 1);
	assert_int_equal(f->errors[0].line, 6);
	assert_string_equal(f->errors[0].message, "option \"sysrq\" takes no value");
	access_file_free(f);
}

struct from_case {
	const char *addr;
	bool allowed[4]; /* for each of the four lines below */
};

static void test_from(void **state)
{
	static const struct from_case cases[] = {
		{ "10.0.0.1", { true, true, false, false } },
		{ "10.0.0.5", { true, false, false, false } },
		{ "10.0.1.1", { true, false, false, false } },
		{ "::1", { true, true, false, true } },
		{ "192.168.7.7", { true, false, false, true } },
		{ "192.168.1.7", { true, false, false, false } },
		{ "", { true, false, false, false } },
		{ NULL, { true, false, false, false } },
	};
	struct access_file *f = parse_ok(
		K_ED25519 "\n"
		"from=\"10.0.0.*,!10.0.0.5,::1\" " K_ED25519 "\n"
		/* negations only: nothing is allowed */
		"from=\"!10.*\" " K_ED25519 "\n"
		/* the exclusion wins wherever it is listed */
		"from=\"!192.168.1.*,192.168.*,::1\" " K_ED25519 "\n");

	assert_int_equal(f->n_errors, 0);
	assert_int_equal(f->n_entries, 4);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t k = 0; k < 4; k++)
			assert_int_equal(access_from_allows(&f->entries[k], cases[i].addr),
					 cases[i].allowed[k]);
	access_file_free(f);
}

struct error_case {
	const char *line;
	const char *message;
};

static const struct error_case error_cases[] = {
	{ "command=\"ls\" " K_ED25519, "unknown option \"command\"" },
	{ "environment=\"A=B\",consoles=\"a:rw\" " K_ED25519, "unknown option \"environment\"" },
	{ "consoles=\"a:rw\",permitopen=\"x:1\" " K_ED25519, "unknown option \"permitopen\"" },
	{ "tunnel=\"0\" " K_ED25519, "unknown option \"tunnel\"" },
	{ "no-pty " K_ED25519, "unknown option \"no-pty\"" },
	{ "cert-authority " K_ED25519, "unknown option \"cert-authority\"" },
	{ "\x01\xff\"q\" " K_ED25519, "unknown option \"\\x01\\xff\\\"q\\\"\"" },
	{ "consoles=\"web:rw " K_ED25519, "unterminated quoted string" },
	{ "consoles=\"a:rw\",from=\"x " K_ED25519 " comment", "unterminated quoted string" },
	{ "consoles=\"a:rw\"", "missing key" },
	{ "consoles=\"a:rw\" " T_ED25519, "missing key" },
	{ T_ED25519, "missing key" },
	{ T_ED25519 "   ", "missing key" },
	{ "hello", "missing key" },
	{ T_ED25519 " AAAA!!!!", "invalid base64 in key" },
	{ T_ED25519 " AAAAC3NzaC1lZDI1NTE5AAAAIENfFXq4EYk9LzqkiRhloV9LcdHbvf07H0EC6GpjoKi",
	  "invalid base64 in key" },
	{ T_ED25519 " AAAAC3NzaC1l=DI1NTE5AAAAIENfFXq4EYk9LzqkiRhloV9LcdHbvf07H0EC6GpjoKiv",
	  "invalid base64 in key" },
	{ T_ED25519 " AAAAC3NzaC1lZDI1NTE5AAAAIENfFXq4EYk9LzqkiRhloV9LcdHbvf07H0EC6GpjoKiv=",
	  "invalid base64 in key" },
	{ T_ED25519 " AAAAC3NzaC1lZDI1NTE5AAAAIENfFXq4EYk9LzqkiRhloV9LcdHbvf07H0EC6GpjoK_v",
	  "invalid base64 in key" },
	{ T_ED25519 " ====", "invalid base64 in key" },
	{ T_RSA " " B_ED25519, "key type mismatch" },
	{ T_EC384 " " B_EC256, "key type mismatch" },
	{ T_ED25519 " " B_RSA " x", "key type mismatch" },
	{ T_ED25519 " AAAA", "key type mismatch" },
	/* string("ssh-ed25519") and nothing after it */
	{ T_ED25519 " AAAAC3NzaC1lZDI1NTE5", "truncated key" },
	{ "consoles=\"web\" " K_ED25519,
	  "consoles=: expected PATTERN:ro or PATTERN:rw, got \"web\"" },
	{ "consoles=\"a:rw,web:rx\" " K_ED25519,
	  "consoles=: expected PATTERN:ro or PATTERN:rw, got \"web:rx\"" },
	{ "consoles=\"web:RW\" " K_ED25519,
	  "consoles=: expected PATTERN:ro or PATTERN:rw, got \"web:RW\"" },
	{ "consoles=\"web:ro:\" " K_ED25519,
	  "consoles=: expected PATTERN:ro or PATTERN:rw, got \"web:ro:\"" },
	{ "consoles=\"a:rw,,b:ro\" " K_ED25519,
	  "consoles=: expected PATTERN:ro or PATTERN:rw, got \"\"" },
	{ "consoles=\"a:rw,\" " K_ED25519,
	  "consoles=: expected PATTERN:ro or PATTERN:rw, got \"\"" },
	{ "consoles=\"\" " K_ED25519, "consoles=: expected PATTERN:ro or PATTERN:rw, got \"\"" },
	{ "consoles=\":rw\" " K_ED25519, "consoles=: empty pattern in \":rw\"" },
	{ "consoles=\"a:ro, :ro\" " K_ED25519, "consoles=: empty pattern in \":ro\"" },
	{ T_ED25519 "-cert-v01@openssh.com AAAA", "certificates are not supported yet" },
	{ "consoles=\"a:rw\" ssh-rsa-cert-v01@openssh.com " B_RSA,
	  "certificates are not supported yet" },
	{ "sk-ssh-ed25519-cert-v01@openssh.com AAAA", "certificates are not supported yet" },
	{ K_CERT " user-ed25519@test", "certificates are not supported yet" },
	{ "consoles=\"a:rw\" " K_CERT, "certificates are not supported yet" },
	{ "break=\"yes\" " K_ED25519, "option \"break\" takes no value" },
	{ "restrict=\"\" " K_ED25519, "option \"restrict\" takes no value" },
	{ "consoles " K_ED25519, "option \"consoles\" needs a value" },
	{ "break,from " K_ED25519, "option \"from\" needs a value" },
	{ "consoles=web:rw " K_ED25519, "option \"consoles\": value must be in double quotes" },
	{ "consoles= " K_ED25519, "option \"consoles\": value must be in double quotes" },
	{ "consoles=\"a:rw\"x " K_ED25519, "option \"consoles\": unexpected text after the value" },
	{ "consoles=\"a:rw\"\"b:ro\" " K_ED25519,
	  "option \"consoles\": unexpected text after the value" },
	{ "break,,restrict " K_ED25519, "empty option" },
	{ "break, " K_ED25519, "empty option" },
	{ ",break " K_ED25519, "empty option" },
	{ "=\"x\" " K_ED25519, "empty option" },
	{ "from=\"\" " K_ED25519, "from=: empty pattern" },
	{ "from=\"a,!\" " K_ED25519, "from=: empty pattern" },
	{ "from=\"a,,b\" " K_ED25519, "from=: empty pattern" },
	{ "from=\"a\",from=\"b\" " K_ED25519, "duplicate option \"from\"" },
	{ "ssh-ed448 " B_ED25519 " comment", "unknown key type \"ssh-ed448\"" },
	{ "foo bar baz", "unknown key type \"bar\"" },
	{ "consoles=\"a:rw\" SSH-ED25519 " B_ED25519, "unknown key type \"SSH-ED25519\"" },
};

/* Each bad line as line 2 (after a comment and before a good key): only it fails. */
static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *c = &error_cases[i];
		char text[4000];
		struct access_file *f;

		snprintf(text, sizeof(text), K_EC256 " one\n%s\n# comment\n\n" K_RSA " two\n",
			 c->line);
		f = parse_ok(text);
		if (f->n_errors != 1 || strcmp(f->errors[0].message, c->message) != 0)
			print_error("case %zu <%s>: got %zu errors, first \"%s\"\n", i, c->line,
				    f->n_errors, f->n_errors ? f->errors[0].message : "");
		assert_int_equal(f->n_errors, 1);
		assert_int_equal(f->errors[0].line, 2);
		assert_string_equal(f->errors[0].message, c->message);
		assert_int_equal(f->n_entries, 2);
		assert_int_equal(f->entries[0].line, 1);
		assert_string_equal(f->entries[0].comment, "one");
		assert_int_equal(f->entries[1].line, 5);
		assert_string_equal(f->entries[1].comment, "two");
		access_file_free(f);
	}
}

/* Long file content in a message is shortened, and bytes are escaped before the cut. */
static void test_message_quoting(void **state)
{
	char name[301], line[600];
	struct access_file *f;
	const char *m;

	for (size_t i = 0; i < 300; i++)
		name[i] = i % 2 ? 'a' : '\x7f';
	name[300] = '\0';
	snprintf(line, sizeof(line), "%s %s", name, K_ED25519);
	f = parse_ok(line);
	assert_int_equal(f->n_errors, 1);
	m = f->errors[0].message;
	assert_true(strncmp(m, "unknown option \"\\x7fa\\x7fa\\x7fa", 30) == 0);
	assert_true(strlen(m) < 100);
	assert_string_equal(m + strlen(m) - 4, "...\"");
	access_file_free(f);
}

/* Non-zero padding bits and missing padding, with the real ecdsa-256 key. */
static void test_base64_strict(void **state)
{
	char blob[sizeof(B_EC256)], line[sizeof(B_EC256) + 64];
	size_t n = strlen(B_EC256);
	struct access_file *f;

	/* B_EC256 ends in "o=": 'o' has its two unused bits clear, 'p' does not */
	memcpy(blob, B_EC256, n + 1);
	assert_int_equal(blob[n - 2], 'o');
	assert_int_equal(blob[n - 1], '=');
	blob[n - 2] = 'p';
	snprintf(line, sizeof(line), T_EC256 " %s", blob);
	f = parse_ok(line);
	assert_int_equal(f->n_entries, 0);
	assert_int_equal(f->n_errors, 1);
	assert_string_equal(f->errors[0].message, "invalid base64 in key");
	access_file_free(f);

	/* no padding */
	blob[n - 2] = 'o';
	blob[n - 1] = '\0';
	snprintf(line, sizeof(line), T_EC256 " %s", blob);
	f = parse_ok(line);
	assert_int_equal(f->n_entries, 0);
	assert_string_equal(f->errors[0].message, "invalid base64 in key");
	access_file_free(f);
}

/* Lines 2 and 4 are bad; 1, 3 and 5 load. */
static void test_mixed_file(void **state)
{
	struct access_file *f = parse_ok(
		"consoles=\"a:ro\" " K_ED25519 " first\n"
		"command=\"/bin/sh\" " K_ED25519 " bad\n"
		"consoles=\"b:rw\",break " K_RSA " third\n"
		"consoles=\"c\" " K_EC256 " bad\n"
		"from=\"127.0.0.1\" " K_EC521 " fifth");

	assert_int_equal(f->n_entries, 3);
	assert_int_equal(f->n_errors, 2);
	assert_int_equal(f->errors[0].line, 2);
	assert_string_equal(f->errors[0].message, "unknown option \"command\"");
	assert_int_equal(f->errors[1].line, 4);
	assert_string_equal(f->errors[1].message,
			    "consoles=: expected PATTERN:ro or PATTERN:rw, got \"c\"");
	assert_int_equal(f->entries[0].line, 1);
	assert_string_equal(f->entries[0].comment, "first");
	assert_string_equal(f->entries[0].rules[0].pattern, "a");
	assert_int_equal(f->entries[1].line, 3);
	assert_string_equal(f->entries[1].keytype, T_RSA);
	assert_true(f->entries[1].brk);
	assert_int_equal(f->entries[1].rules[0].right, ACCESS_RW);
	assert_int_equal(f->entries[2].line, 5);
	assert_string_equal(f->entries[2].comment, "fifth");
	assert_string_equal(f->entries[2].from[0], "127.0.0.1");
	access_file_free(f);
}

static void test_layout(void **state)
{
	struct access_file *f = parse_ok(
		"# header comment\r\n"                        /* 1 */
		"\r\n"                                        /* 2 */
		"   \t  \n"                                   /* 3 */
		"  # indented comment\n"                      /* 4 */
		"\t  " K_ED25519 " indented\r\n"              /* 5 */
		"consoles=\"a:rw\" " K_RSA " crlf \r\n"       /* 6 */
		"\n"                                          /* 7 */
		"#" K_EC256 "\n"                              /* 8: commented out */
		"bad\r\n"                                     /* 9 */
		K_EC384 "\r\r\n"                              /* 10: a second CR is content */
		K_EC521 " last, no newline");                 /* 11 */

	assert_int_equal(f->n_entries, 3);
	assert_int_equal(f->entries[0].line, 5);
	assert_string_equal(f->entries[0].comment, "indented");
	assert_int_equal(f->entries[1].line, 6);
	assert_string_equal(f->entries[1].comment, "crlf");
	assert_string_equal(f->entries[1].rules[0].pattern, "a");
	assert_int_equal(f->entries[2].line, 11);
	assert_string_equal(f->entries[2].comment, "last, no newline");
	assert_int_equal(f->n_errors, 2);
	assert_int_equal(f->errors[0].line, 9);
	assert_string_equal(f->errors[0].message, "missing key");
	assert_int_equal(f->errors[1].line, 10);
	assert_string_equal(f->errors[1].message, "invalid base64 in key");
	access_file_free(f);
}

static void test_empty_and_blank_files(void **state)
{
	static const char *const texts[] = { "", "\n", "\n\n\n", "\r\n", "# only\n", "  \t\r\n#x" };
	struct access_file *f = NULL;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		f = parse_ok(texts[i]);
		assert_int_equal(f->n_entries, 0);
		assert_int_equal(f->n_errors, 0);
		access_file_free(f);
	}
	f = NULL;
	assert_int_equal(access_parse(NULL, 0, &f), 0);
	assert_non_null(f);
	assert_int_equal(f->n_entries + f->n_errors, 0);
	access_file_free(f);
	access_file_free(NULL);
}

static void test_nul_byte(void **state)
{
	static const char text[] = K_ED25519 " a\n" K_ED25519 " b\0c\n\0\n" K_ED25519 " d";
	struct access_file *f = NULL;

	assert_int_equal(access_parse(text, sizeof(text) - 1, &f), 0);
	assert_int_equal(f->n_entries, 2);
	assert_string_equal(f->entries[0].comment, "a");
	assert_int_equal(f->entries[1].line, 4);
	assert_string_equal(f->entries[1].comment, "d");
	assert_int_equal(f->n_errors, 2);
	assert_int_equal(f->errors[0].line, 2);
	assert_string_equal(f->errors[0].message, "NUL byte in line");
	assert_int_equal(f->errors[1].line, 3);
	assert_string_equal(f->errors[1].message, "NUL byte in line");
	access_file_free(f);
}

/* A key line padded with its comment to exactly len bytes, then eol. */
static char *long_line(size_t len, const char *eol)
{
	size_t kl = strlen(K_ED25519 " "), el = strlen(eol);
	char *s = malloc(len + el + 1);

	assert_non_null(s);
	assert_true(len > kl);
	memcpy(s, K_ED25519 " ", kl);
	memset(s + kl, 'c', len - kl);
	memcpy(s + len, eol, el + 1);
	return s;
}

static void test_line_length(void **state)
{
	static const char *const eols[] = { "", "\n", "\r\n" };

	for (size_t i = 0; i < 3; i++) {
		struct access_file *f;
		char *s = long_line(ACCESS_MAX_LINE, eols[i]);

		f = parse_ok(s);
		assert_int_equal(f->n_errors, 0);
		assert_int_equal(f->n_entries, 1);
		assert_int_equal(strlen(f->entries[0].comment),
				 ACCESS_MAX_LINE - strlen(K_ED25519 " "));
		access_file_free(f);
		free(s);

		s = long_line(ACCESS_MAX_LINE + 1, eols[i]);
		f = parse_ok(s);
		assert_int_equal(f->n_entries, 0);
		assert_int_equal(f->n_errors, 1);
		assert_int_equal(f->errors[0].line, 1);
		assert_string_equal(f->errors[0].message, "line too long");
		access_file_free(f);
		free(s);
	}
}

static void test_long_line_among_others(void **state)
{
	size_t big = 10 * ACCESS_MAX_LINE;
	char *s = malloc(big + 200);
	struct access_file *f;
	size_t n = 0;

	assert_non_null(s);
	n += (size_t)sprintf(s + n, "%s", K_ED25519 " a\n");
	memset(s + n, '"', big); /* an unterminated quote that never ends */
	n += big;
	n += (size_t)sprintf(s + n, "\n%s", K_ED25519 " c\n");
	f = parse_ok(s);
	assert_int_equal(f->n_entries, 2);
	assert_int_equal(f->entries[1].line, 3);
	assert_int_equal(f->n_errors, 1);
	assert_int_equal(f->errors[0].line, 2);
	assert_string_equal(f->errors[0].message, "line too long");
	access_file_free(f);
	free(s);
}

static void test_size_limit(void **state)
{
	const char *line = "consoles=\"vm*:rw\" " K_ED25519 "\n";
	size_t ll = strlen(line), n_lines = ACCESS_MAX_SIZE / ll, n = 0;
	char *buf = malloc(ACCESS_MAX_SIZE + 1);
	struct access_file *f = (struct access_file *)buf; /* must stay untouched on error */

	assert_non_null(buf);
	for (size_t i = 0; i < n_lines; i++, n += ll)
		memcpy(buf + n, line, ll);
	memset(buf + n, '#', ACCESS_MAX_SIZE + 1 - n);

	assert_int_equal(access_parse(buf, ACCESS_MAX_SIZE + 1, &f), -EFBIG);
	assert_ptr_equal(f, buf);
	assert_int_equal(access_parse(buf, SIZE_MAX, &f), -EFBIG);
	assert_ptr_equal(f, buf);

	/* exactly the limit is fine: every key loads, the comment tail is skipped */
	assert_int_equal(access_parse(buf, ACCESS_MAX_SIZE, &f), 0);
	assert_int_equal(f->n_entries, n_lines);
	assert_int_equal(f->n_errors, 0);
	assert_int_equal(f->entries[n_lines - 1].line, n_lines);
	access_file_free(f);
	free(buf);
}

static void test_error_cap(void **state)
{
	size_t n_bad = 1000;
	char *buf = malloc(n_bad * 4 + 200);
	struct access_file *f;
	size_t n = 0;

	assert_non_null(buf);
	for (size_t i = 0; i < n_bad; i++)
		n += (size_t)sprintf(buf + n, "xx\n");
	sprintf(buf + n, "%s", K_ED25519 " after the bad lines\n");
	f = parse_ok(buf);
	assert_int_equal(f->n_entries, 1);
	assert_int_equal(f->entries[0].line, n_bad + 1);
	/* a bounded number of errors, the last one saying that more were dropped */
	assert_true(f->n_errors > 10 && f->n_errors < 200);
	assert_string_equal(f->errors[0].message, "missing key");
	assert_string_equal(f->errors[f->n_errors - 2].message, "missing key");
	assert_int_equal(f->errors[f->n_errors - 1].line, f->n_errors);
	assert_non_null(strstr(f->errors[f->n_errors - 1].message, "too many errors"));
	access_file_free(f);
	free(buf);
}

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* Random bytes biased towards the syntax: the parser must hold its invariants. */
static void test_garbage(void **state)
{
	static const char *const pieces[] = {
		"\n", "\r\n", "\"", "\\\"", ",", "=", " ", "\t", "#", "\0", "consoles=",
		"from=", "break", ":rw", ":ro", "!", K_ED25519, T_RSA, B_EC256,
		"-cert-v01@openssh.com", "AAAA", "====", "\xff\xfe",
	};

	for (int iter = 0; iter < 3000; iter++) {
		size_t len = 0, cap = 1 + rng() % 2048, lines = 1;
		char *buf = malloc(cap + 200);
		struct access_file *f = NULL;
		size_t n_pieces = sizeof(pieces) / sizeof(pieces[0]);
		unsigned last = 0;

		assert_non_null(buf);
		while (len < cap) {
			if (rng() % 3 == 0) {
				buf[len++] = (char)(rng() & 0xff);
			} else {
				const char *p = pieces[rng() % n_pieces];
				size_t pl = *p ? strlen(p) : 1;

				memcpy(buf + len, p, pl);
				len += pl;
			}
		}
		for (size_t i = 0; i < len; i++)
			lines += buf[i] == '\n';
		assert_int_equal(access_parse(buf, len, &f), 0);
		for (size_t i = 0; i < f->n_entries; i++) {
			const struct access_entry *e = &f->entries[i];

			assert_true(e->line > last && e->line <= lines);
			last = e->line;
			assert_non_null(e->keytype);
			assert_non_null(e->base64);
			for (size_t k = 0; k < e->n_rules; k++)
				assert_true(e->rules[k].right == ACCESS_RO ||
					    e->rules[k].right == ACCESS_RW);
		}
		last = 0;
		for (size_t i = 0; i < f->n_errors; i++) {
			const char *m = f->errors[i].message;

			assert_true(f->errors[i].line > last && f->errors[i].line <= lines);
			last = f->errors[i].line;
			assert_true(strlen(m) > 0 && strlen(m) < 256);
			for (const char *c = m; *c; c++)
				assert_true(*c >= 0x20 && *c < 0x7f);
		}
		access_file_free(f);
		free(buf);
	}
}

/* One line that must load; its entry (the file is the caller's to free). */
static const struct access_entry *one_line(const char *text, struct access_file **ret)
{
	assert_int_equal(access_parse(text, strlen(text), ret), 0);
	assert_int_equal((*ret)->n_errors, 0);
	assert_int_equal((*ret)->n_entries, 1);
	return &(*ret)->entries[0];
}

static void test_gateway_option(void **state)
{
	struct access_file *f;
	const struct access_entry *e;

	e = one_line("gateway,consoles=\"web*:rw\",break " K_ED25519 " gw@gateway\n", &f);
	assert_true(e->gateway);
	assert_true(e->brk);
	assert_int_equal(e->n_rules, 1);
	access_file_free(f);
	e = one_line("GATEWAY " K_ED25519 "\n", &f);
	assert_true(e->gateway);
	access_file_free(f);
	e = one_line("consoles=\"*:rw\" " K_ED25519 "\n", &f);
	assert_false(e->gateway);
	access_file_free(f);
	/* A flag: a value is an error for the line. */
	assert_int_equal(access_parse("gateway=\"x\" " K_ED25519 "\n",
				      strlen("gateway=\"x\" " K_ED25519 "\n"), &f), 0);
	assert_int_equal(f->n_entries, 0);
	assert_int_equal(f->n_errors, 1);
	assert_string_equal(f->errors[0].message, "option \"gateway\" takes no value");
	access_file_free(f);
}

/* Parse grant text, expect success, and return its canonical form (static buffer). */
static const char *canon(const char *text)
{
	static char buf[ACCESS_GRANT_MAX + 1];
	struct access_entry *g = NULL;
	char msg[ACCESS_MSG_MAX];
	int n;

	assert_int_equal(access_parse_grant(text, strlen(text), &g, msg, sizeof(msg)), 0);
	assert_non_null(g);
	assert_null(g->keytype);
	assert_int_equal(g->n_from, 0);
	n = access_format_grant(g, buf, sizeof(buf));
	assert_true(n >= 0);
	assert_int_equal((size_t)n, strlen(buf));
	access_entry_free(g);
	return buf;
}

static void grant_error(const char *text, size_t len, const char *message)
{
	struct access_entry *g = NULL;
	char msg[ACCESS_MSG_MAX];

	assert_int_equal(access_parse_grant(text, len, &g, msg, sizeof(msg)), -EINVAL);
	assert_null(g);
	assert_string_equal(msg, message);
}

static void test_grant_parse_format(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ "", "" },
		{ "break", "break" },
		{ "BREAK", "break" },
		{ "consoles=\"web*:rw\"", "consoles=\"web*:rw\"" },
		{ "consoles=\" web*:rw , db01:ro \",break", "consoles=\"web*:rw,db01:ro\",break" },
		{ "break,consoles=\"a:ro\",Consoles=\"b:rw\"", "consoles=\"a:ro,b:rw\",break" },
		{ "consoles=\"my vm:rw\"", "consoles=\"my vm:rw\"" },
		{ "consoles=\"a\\\"b:rw\"", "consoles=\"a\\\"b:rw\"" },
		{ "consoles=\"c\\d:ro\"", "consoles=\"c\\d:ro\"" },
		/* a pattern with a backslash before a quote: a\"b */
		{ "consoles=\"a\\\\\"b:rw\"", "consoles=\"a\\\\\"b:rw\"" },
		{ "consoles=\"vm:serial0:rw,*:console1:ro\"",
		  "consoles=\"vm:serial0:rw,*:console1:ro\"" },
		/* The rescue actions' flags, always in the same order. */
		{ "power,nmi,consoles=\"a:rw\",sysrq,break", "consoles=\"a:rw\",break,sysrq,nmi,power" },
		{ "nmi", "nmi" },
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{ "from=\"1.2.3.4\"", "option \"from\" is not part of a grant" },
		{ "gateway", "option \"gateway\" is not part of a grant" },
		{ "restrict", "option \"restrict\" is not part of a grant" },
		{ "command=\"x\"", "unknown option \"command\"" },
		{ "consoles=web:rw", "option \"consoles\": value must be in double quotes" },
		{ "consoles=\"web\"", "consoles=: expected PATTERN:ro or PATTERN:rw, got \"web\"" },
		{ "consoles=\"\"", "consoles=: expected PATTERN:ro or PATTERN:rw, got \"\"" },
		{ "consoles=\"a:rw", "unterminated quoted string" },
		{ "consoles=\"a:rw\" ", "option \"consoles\": unexpected text after the value" },
		{ " break", "unknown option \" break\"" },
		{ "break,", "empty option" },
		{ ",break", "empty option" },
		{ "break=\"x\"", "option \"break\" takes no value" },
	};
	struct access_entry *g = NULL;
	char msg[ACCESS_MSG_MAX];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		const char *c = canon(ok[i].in);

		assert_string_equal(c, ok[i].out);
		/* Canonical text is a fixed point. */
		assert_string_equal(canon(ok[i].out), ok[i].out);
	}
	/* The rules mean what they meant in a file. */
	assert_int_equal(access_parse_grant("consoles=\"a\\\"b:rw,db*:ro\"",
					    strlen("consoles=\"a\\\"b:rw,db*:ro\""), &g, msg,
					    sizeof(msg)), 0);
	assert_int_equal(g->n_rules, 2);
	assert_string_equal(g->rules[0].pattern, "a\"b");
	assert_int_equal(g->rules[0].right, ACCESS_RW);
	assert_int_equal(g->rules[1].kind, ACCESS_KIND_VM);
	assert_false(g->brk);
	assert_int_equal(access_check(g, &(struct access_console){ .vm = "db7" }), ACCESS_RO);
	access_entry_free(g);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		grant_error(bad[i].in, strlen(bad[i].in), bad[i].msg);
	grant_error("break\0", 6, "NUL byte in grant");
}

static void test_grant_limits(void **state)
{
	char *big = malloc(ACCESS_GRANT_MAX + 64), buf[64];
	struct access_entry *g = NULL;
	struct access_file *f;
	const struct access_entry *e;
	char msg[ACCESS_MSG_MAX];
	size_t n;

	assert_non_null(big);
	/* Exactly ACCESS_GRANT_MAX bytes parse; one more does not. */
	n = (size_t)snprintf(big, ACCESS_GRANT_MAX + 64, "consoles=\"");
	memset(big + n, 'a', ACCESS_GRANT_MAX - n - 4);
	memcpy(big + ACCESS_GRANT_MAX - 4, ":rw\"", 5);
	assert_int_equal(strlen(big), ACCESS_GRANT_MAX);
	assert_int_equal(access_parse_grant(big, ACCESS_GRANT_MAX, &g, msg, sizeof(msg)), 0);
	assert_string_equal(canon(big), big);
	access_entry_free(g);
	memcpy(big + ACCESS_GRANT_MAX - 4, "a:rw\"", 6);
	grant_error(big, ACCESS_GRANT_MAX + 1, "grant longer than 8192 bytes");
	/* A line too long to pass on as a grant formats to nothing (never a cut grant). */
	{
		size_t len = ACCESS_GRANT_MAX + 200;
		char *line = malloc(len + 200);

		assert_non_null(line);
		n = (size_t)snprintf(line, len, "consoles=\"");
		memset(line + n, 'b', ACCESS_GRANT_MAX);
		snprintf(line + n + ACCESS_GRANT_MAX, 200, ":rw\" %s\n", K_ED25519);
		e = one_line(line, &f);
		assert_int_equal(access_format_grant(e, big, ACCESS_GRANT_MAX + 1), -ENOBUFS);
		assert_string_equal(big, "");
		access_file_free(f);
		free(line);
	}
	/* A small buffer: -ENOBUFS and "". */
	e = one_line("from=\"10.*\",gateway,consoles=\"web*:rw,db01:ro\",break,restrict " K_ED25519
		     " gw\n", &f);
	assert_int_equal(access_format_grant(e, buf, sizeof(buf)), 32);
	assert_string_equal(buf, "consoles=\"web*:rw,db01:ro\",break");
	assert_int_equal(access_format_grant(e, buf, 32), -ENOBUFS);
	assert_string_equal(buf, "");
	access_file_free(f);
	/* Narrowed to watching (a --ro web link's session): every rule :ro, no flags. */
	e = one_line("consoles=\"web*:rw,db01:ro\",break,sysrq,power " K_ED25519 " gw\n", &f);
	assert_int_equal(access_format_grant_ro(e, buf, sizeof(buf)), 26);
	assert_string_equal(buf, "consoles=\"web*:ro,db01:ro\"");
	assert_int_equal(access_format_grant(e, buf, sizeof(buf)), 44);
	assert_string_equal(buf, "consoles=\"web*:rw,db01:ro\",break,sysrq,power");
	access_file_free(f);
	e = one_line("break,nmi " K_ED25519 "\n", &f);
	assert_int_equal(access_format_grant_ro(e, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	access_file_free(f);
	/* A line without consoles= or break grants nothing: "". */
	e = one_line("from=\"10.*\" " K_ED25519 "\n", &f);
	assert_int_equal(access_format_grant(e, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	access_file_free(f);
	assert_null(access_entry_free(NULL));
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_keys),
		cmocka_unit_test(test_synthetic_blobs),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_quoted_blanks_in_options),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_pattern_kind),
		cmocka_unit_test(test_check_names_mean_one_thing),
		cmocka_unit_test(test_pattern_warnings),
		cmocka_unit_test(test_warnings_have_lines),
		cmocka_unit_test(test_check_max_right),
		cmocka_unit_test(test_from),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_message_quoting),
		cmocka_unit_test(test_base64_strict),
		cmocka_unit_test(test_mixed_file),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_empty_and_blank_files),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_long_line_among_others),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_error_cap),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_gateway_option),
		cmocka_unit_test(test_grant_parse_format),
		cmocka_unit_test(test_grant_limits),
		cmocka_unit_test(test_action_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
