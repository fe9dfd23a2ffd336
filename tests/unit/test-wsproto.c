/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for ttyhub-webd's pure parsers: the ttyhub.v1 codec
 * (web-front/wsproto.h: every page message accepted with its values, a
 * table of refused ones, the encoders) and the HTTP pieces webd parses
 * itself (web-front/webreq.h: the token body, the session cookie, origins
 * normalised and the Origin and Host checks).
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

#include "webreq.h"
#include "wsproto.h"

static int decode(const char *msg, size_t len, struct wsproto_msg *m)
{
	char err[256];

	return wsproto_decode((const uint8_t *)msg, len, m, err, sizeof(err));
}

#define DECODE(lit, m) decode(lit, sizeof(lit) - 1, m)

static void test_hello(void **state)
{
	struct wsproto_msg m;

	assert_int_equal(DECODE("\x01{\"console\":\"vm1:serial0\",\"mode\":\"rw\",\"cols\":80,"
				"\"rows\":24}", &m), 0);
	assert_int_equal(m.type, WSPROTO_HELLO);
	assert_string_equal(m.hello.console, "vm1:serial0");
	assert_int_equal(m.hello.mode, ATTACH_RW);
	assert_int_equal(m.hello.replay, PROTO_REPLAY_DEFAULT);
	assert_false(m.hello.has_resume);
	assert_int_equal(m.hello.cols, 80);
	assert_int_equal(m.hello.rows, 24);

	assert_int_equal(DECODE("\x01{\"console\":\"v\",\"replay\":\"all\",\"resume\":{\"epoch\":"
				"\"0123456789abcdef\",\"offset\":4096}}", &m), 0);
	assert_int_equal(m.hello.mode, ATTACH_RO); /* mode absent: read-only */
	assert_int_equal(m.hello.replay, PROTO_REPLAY_ALL);
	assert_true(m.hello.has_resume);
	assert_true(m.hello.epoch == 0x0123456789abcdefULL);
	assert_true(m.hello.offset == 4096);

	assert_int_equal(DECODE("\x01{\"console\":\"v\",\"mode\":\"force\",\"replay\":7}", &m), 0);
	assert_int_equal(m.hello.mode, ATTACH_FORCE);
	assert_int_equal(m.hello.replay, 7);
}

static void test_others(void **state)
{
	struct wsproto_msg m;

	assert_int_equal(DECODE("\x02" "ab\0c", &m), 0);
	assert_int_equal(m.type, WSPROTO_INPUT);
	assert_int_equal(m.len, 4);
	assert_memory_equal(m.data, "ab\0c", 4);
	assert_int_equal(DECODE("\x02", &m), 0);
	assert_int_equal(m.len, 0);

	assert_int_equal(DECODE("\x03\x01\x00\x00\x30", &m), 0);
	assert_int_equal(m.cols, 256);
	assert_int_equal(m.rows, 48);

	assert_int_equal(DECODE("\x04{\"op\":\"replay\",\"lines\":20}", &m), 0);
	assert_int_equal(m.op, WSPROTO_OP_REPLAY);
	assert_int_equal(m.lines, 20);
	assert_int_equal(DECODE("\x04{\"op\":\"break\"}", &m), 0);
	assert_int_equal(m.op, WSPROTO_OP_BREAK);

	assert_int_equal(DECODE("\x05\x00\x00\x00\x00\x00\x01\x00\x02", &m), 0);
	assert_true(m.ack == 0x10002ULL);
}

static void test_refused(void **state)
{
	static const struct {
		const char *msg;
		size_t len;
	} bad[] = {
#define B(lit) { lit, sizeof(lit) - 1 }
		B(""),
		B("\x00"),
		B("\x06"),
		B("\x81\x00"),
		B("\x85{}"),
		B("\x01"),
		B("\x01[]"),
		B("\x01{\"console\":1}"),
		B("\x01{\"console\":\"\"}"),
		B("\x01{\"console\":\"a\\u0000b\"}"),
		B("\x01{\"console\":\"v\",\"mode\":\"admin\"}"),
		B("\x01{\"console\":\"v\",\"replay\":-1}"),
		B("\x01{\"console\":\"v\",\"resume\":{\"epoch\":\"0000000000000000\",\"offset\":1}}"),
		B("\x01{\"console\":\"v\",\"resume\":{\"epoch\":\"0123456789abcdef\",\"offset\":-1}}"),
		B("\x01{\"console\":\"v\",\"resume\":[]}"),
		B("\x01{\"console\":\"v\",\"cols\":0}"),
		B("\x01{\"console\":\"v\",\"rows\":100000}"),
		B("\x01{\"console\":\"v\",\"console\":\"w\"}"),
		B("\x01{\"console\":\"v\"} x"),
		B("\x03\x00\x50\x00"),
		B("\x03\x00\x00\x00\x18"),
		B("\x03\xff\xff\x00\x18"),
		B("\x04{\"op\":\"shell\"}"),
		B("\x04{\"op\":\"take\",\"lines\":3}"),
		B("\x04{\"op\":\"replay\",\"lines\":\"all\"}"),
		B("\x04{}"),
		B("\x05\x00"),
		B("\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
#undef B
	};
	struct wsproto_msg m;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (wsproto_decode((const uint8_t *)bad[i].msg, bad[i].len, &m, err, sizeof(err)) !=
		    -EBADMSG)
			fail_msg("accepted case %zu", i);
		assert_true(err[0] != '\0');
	}
}

static void test_encode(void **state)
{
	uint8_t hdr[WSPROTO_OUTPUT_HEADER], *b = NULL;
	json_t *o = json_pack("{s:s}", "text", "hi");
	size_t n;

	wsproto_output_header(hdr, 0x0102030405060708ULL, 0x1112131415161718ULL);
	assert_memory_equal(hdr, "\x81\x01\x02\x03\x04\x05\x06\x07\x08\x11\x12\x13\x14\x15\x16"
			    "\x17\x18", 17);
	assert_int_equal(wsproto_encode_json(WSPROTO_NOTICE, o, &b, &n), 0);
	assert_int_equal(n, 1 + strlen("{\"text\":\"hi\"}"));
	assert_memory_equal(b, "\x83{\"text\":\"hi\"}", n);
	free(b);
	assert_int_equal(wsproto_encode_json(WSPROTO_OUTPUT, o, &b, &n), -EINVAL);
	json_decref(o);
}

static void test_token_and_cookie(void **state)
{
	char out[WEBREQ_SECRET_MAX + 1];
	static const char tok[] = "{\"token\":\"AbC-_9\",\"x\":1}";

	assert_int_equal(webreq_session_token(tok, strlen(tok), out, sizeof(out)), 0);
	assert_string_equal(out, "AbC-_9");
	assert_int_equal(webreq_session_token("{\"token\":\"a b\"}", 15, out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(webreq_session_token("{\"token\":\"\"}", 12, out, sizeof(out)), -EINVAL);
	assert_int_equal(webreq_session_token("[\"token\"]", 9, out, sizeof(out)), -EINVAL);

	assert_int_equal(webreq_cookie("a=1; ttyhub=XYZ_-1; b=2", "ttyhub", out, sizeof(out)), 0);
	assert_string_equal(out, "XYZ_-1");
	assert_int_equal(webreq_cookie("__Host-ttyhub=abc", "__Host-ttyhub", out, sizeof(out)), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(webreq_cookie("__Host-ttyhub=abc", "ttyhub", out, sizeof(out)), -ENOENT);
	assert_int_equal(webreq_cookie("xttyhub=abc", "ttyhub", out, sizeof(out)), -ENOENT);
	assert_int_equal(webreq_cookie("ttyhub=a\"b", "ttyhub", out, sizeof(out)), -EINVAL);
	assert_int_equal(webreq_cookie("", "ttyhub", out, sizeof(out)), -ENOENT);
}

static void test_origins(void **state)
{
	char n[WEBREQ_ORIGIN_MAX];
	char o1[] = "https://console.example.org", o2[] = "http://127.0.0.1:8443";
	char *const list[] = { o1, o2 };

	assert_int_equal(webreq_origin_normalize("HTTPS://Console.Example.ORG:443/", n, sizeof(n)),
			 0);
	assert_string_equal(n, "https://console.example.org");
	assert_int_equal(webreq_origin_normalize("http://[::1]:8080", n, sizeof(n)), 0);
	assert_string_equal(n, "http://[::1]:8080");
	assert_int_equal(webreq_origin_normalize("http://h/x", n, sizeof(n)), -EINVAL);
	assert_int_equal(webreq_origin_normalize("http://u@h", n, sizeof(n)), -EINVAL);
	assert_int_equal(webreq_origin_normalize("http://h:0", n, sizeof(n)), -EINVAL);
	assert_int_equal(webreq_origin_normalize("ws://h", n, sizeof(n)), -EINVAL);
	/* Found by fuzz-webreq: a colon in a name (not a port) is no origin. */
	assert_int_equal(webreq_origin_normalize("https://a.org:g:443/", n, sizeof(n)), -EINVAL);
	assert_int_equal(webreq_origin_normalize("http://[::1", n, sizeof(n)), -EINVAL);
	assert_int_equal(webreq_origin_normalize("http://[g::1]", n, sizeof(n)), -EINVAL);

	assert_true(webreq_origin_allowed("https://console.example.org", list, 2));
	assert_true(webreq_origin_allowed("http://127.0.0.1:8443", list, 2));
	assert_false(webreq_origin_allowed("https://console.example.org:443", list, 2));
	assert_false(webreq_origin_allowed("http://console.example.org", list, 2));
	assert_false(webreq_origin_allowed("https://evil.example.org", list, 2));
	assert_false(webreq_origin_allowed("null", list, 2));
	assert_false(webreq_origin_allowed(NULL, list, 2));

	assert_true(webreq_host_allowed("console.example.org", list, 2));
	assert_true(webreq_host_allowed("console.example.org:443", list, 2));
	assert_true(webreq_host_allowed("127.0.0.1:8443", list, 2));
	assert_false(webreq_host_allowed("127.0.0.1", list, 2));
	assert_false(webreq_host_allowed("evil.example.org", list, 2));
	assert_false(webreq_host_allowed(NULL, list, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_others),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_token_and_cookie),
		cmocka_unit_test(test_origins),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
