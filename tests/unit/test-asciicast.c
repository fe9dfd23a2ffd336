/* SPDX-License-Identifier: MIT */
/*
 * asciicast v2 lines (broker/asciicast.h): the header parses as JSON with
 * asciinema's members and ttyhub's own, events are [t, type, data] with t
 * to the microsecond, data is valid UTF-8 whatever the bytes, a character
 * cut between two chunks is written whole in the second event, any split
 * of a stream gives the same text as the whole, and password redaction:
 * prompts recognised (also through colours), the typed line replaced by
 * one "[redacted]", the next line typed as is (one prompt, one line),
 * redaction off on request.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "asciicast.h"

/* Parsed events of a buffer of lines: types and the concatenated data per type. */
struct events {
	size_t n;
	char types[64];
	double t[64];
	char *data[64];
};

static void events_parse(const char *buf, size_t len, struct events *ev)
{
	const char *p = buf, *end = buf + len;

	memset(ev, 0, sizeof(*ev));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		json_error_t err;
		json_t *j;

		assert_non_null(nl);
		j = json_loadb(p, (size_t)(nl - p), 0, &err);
		if (!j)
			fail_msg("not JSON: %.*s (%s)", (int)(nl - p), p, err.text);
		assert_true(json_is_array(j));
		assert_int_equal(json_array_size(j), 3);
		assert_true(json_is_real(json_array_get(j, 0)));
		assert_true(ev->n < 64);
		ev->t[ev->n] = json_real_value(json_array_get(j, 0));
		ev->types[ev->n] = json_string_value(json_array_get(j, 1))[0];
		ev->data[ev->n] = strdup(json_string_value(json_array_get(j, 2)));
		ev->n++;
		json_decref(j);
		p = nl + 1;
	}
}

static void events_free(struct events *ev)
{
	for (size_t i = 0; i < ev->n; i++)
		free(ev->data[i]);
	ev->n = 0;
}

/* All data of one type, concatenated. */
static char *events_text(const struct events *ev, char type)
{
	size_t len = 0;
	char *s;

	for (size_t i = 0; i < ev->n; i++)
		if (ev->types[i] == type)
			len += strlen(ev->data[i]);
	s = calloc(1, len + 1);
	assert_non_null(s);
	for (size_t i = 0; i < ev->n; i++)
		if (ev->types[i] == type)
			strcat(s, ev->data[i]);
	return s;
}

static size_t out_feed(struct asciicast *a, uint64_t t, const char *s, size_t len, char *out)
{
	return asciicast_output(a, t, s, len, out);
}

static size_t in_feed(struct asciicast *a, uint64_t t, const struct asciicast_prompt *p,
		      const char *s, char *out)
{
	return asciicast_input(a, t, p, s, strlen(s), out);
}

static void test_header(void **state)
{
	char buf[4096];
	json_t *j;
	int n = asciicast_header(&(const struct asciicast_header){
		.width = 132,
		.height = 43,
		.timestamp = 1764950000,
		.title = "vm:serial0",
		.term = "xterm-256color",
		.console = "vm:serial0",
		.vm = "vm",
		.principal = "alice \"the admin\" (ssh SHA256:abc)",
	}, buf, sizeof(buf));

	assert_true(n > 0);
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', (size_t)n - 1));
	j = json_loadb(buf, (size_t)n, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "width")), 132);
	assert_int_equal(json_integer_value(json_object_get(j, "height")), 43);
	assert_int_equal(json_integer_value(json_object_get(j, "timestamp")), 1764950000);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "env"), "TERM")),
			    "xterm-256color");
	assert_string_equal(json_string_value(json_object_get(j, "console")), "vm:serial0");
	assert_string_equal(json_string_value(json_object_get(j, "vm")), "vm");
	assert_string_equal(json_string_value(json_object_get(j, "principal")),
			    "alice \"the admin\" (ssh SHA256:abc)");
	json_decref(j);

	/* Optional members left out; a buffer too small is refused, never overrun. */
	n = asciicast_header(&(const struct asciicast_header){ .width = 80, .height = 24 }, buf,
			     sizeof(buf));
	assert_true(n > 0);
	assert_null(strstr(buf, "env"));
	assert_null(strstr(buf, "title"));
	assert_int_equal(asciicast_header(&(const struct asciicast_header){
		.width = 80, .height = 24, .principal = "a long principal label" }, buf, 40),
		-ENOBUFS);
}

static void test_event_format(void **state)
{
	char out[ASCIICAST_EVENTS_SIZE(64)];
	struct asciicast a;
	size_t n;

	asciicast_init(&a, true);
	n = out_feed(&a, 1250000, "a\"\\\r\n\t\x1b[1m\x00", 11, out);
	out[n] = '\0';
	assert_string_equal(out, "[1.250000, \"o\", \"a\\\"\\\\\\r\\n\\t\\u001b[1m\\u0000\"]\n");
	n = asciicast_event(3, 'm', "input from alice", out);
	out[n] = '\0';
	assert_string_equal(out, "[0.000003, \"m\", \"input from alice\"]\n");
	n = asciicast_event(UINT64_MAX, 'r', "80x24", out);
	assert_true(n <= ASCIICAST_EVENTS_SIZE(5));
	out[n] = '\0';
	assert_string_equal(out, "[18446744073709.551615, \"r\", \"80x24\"]\n");
	/* Nothing in, nothing out. */
	assert_int_equal(out_feed(&a, 0, "", 0, out), 0);
}

static void test_utf8_boundaries(void **state)
{
	static const char *const pieces[][4] = {
		{ "caf\xc3", "\xa9!", NULL },                 /* é cut after its lead */
		{ "\xe2", "\x82", "\xac", NULL },               /* € one byte at a time */
		{ "\xf0\x9f", "\x98", "\x80x", NULL },          /* 😀 over three chunks */
	};
	static const char *const whole[] = { "caf\xc3\xa9!", "\xe2\x82\xac", "\xf0\x9f\x98\x80x" };
	char out[ASCIICAST_EVENTS_SIZE(16)];

	for (size_t k = 0; k < 3; k++) {
		struct asciicast a;
		struct events ev;
		char all[1024] = "";
		size_t len = 0;
		char *text;

		asciicast_init(&a, true);
		for (size_t i = 0; pieces[k][i]; i++) {
			size_t n = out_feed(&a, i, pieces[k][i], strlen(pieces[k][i]), out);

			memcpy(all + len, out, n);
			len += n;
		}
		len += asciicast_finish(&a, 9, all + len);
		events_parse(all, len, &ev);
		/* Every event is valid JSON (jansson refuses invalid UTF-8) and no
		 * character was split: the text is the whole string, with no U+FFFD. */
		text = events_text(&ev, 'o');
		assert_string_equal(text, whole[k]);
		free(text);
		events_free(&ev);
	}
}

/* An "o" event continued: its close taken back, the rest and a new close written over it. */
static void test_output_more(void **state)
{
	char out[4 * ASCIICAST_EVENTS_SIZE(16)];
	struct asciicast a;
	struct events ev;
	size_t n;
	char *text;

	asciicast_init(&a, true);
	n = out_feed(&a, 5, "ab\xe2", 3, out);
	assert_int_equal(memcmp(out + n - ASCIICAST_CLOSE_LEN, ASCIICAST_CLOSE,
				ASCIICAST_CLOSE_LEN), 0);
	n -= ASCIICAST_CLOSE_LEN;
	/* Nothing whole yet: only the close comes back. */
	n += asciicast_output_more(&a, "\x82", 1, out + n) - ASCIICAST_CLOSE_LEN;
	n += asciicast_output_more(&a, "\xac\"d", 3, out + n);
	events_parse(out, n, &ev);
	assert_int_equal(ev.n, 1);
	text = events_text(&ev, 'o');
	assert_string_equal(text, "ab\xe2\x82\xac\"d");
	free(text);
	events_free(&ev);
}

static void test_utf8_repair(void **state)
{
	char out[ASCIICAST_EVENTS_SIZE(64)], all[1024];
	struct asciicast a;
	struct events ev;
	size_t len;
	char *text;

	asciicast_init(&a, false);
	/* A lone continuation, an overlong, a surrogate, past U+10FFFF, a 0xff. */
	len = out_feed(&a, 0, "a\x80" "b\xc0\xaf" "c\xed\xa0\x80" "d\xf4\x90\x80\x80" "e\xff", 16,
		       out);
	/* A cut sequence that the next chunk breaks: one U+FFFD per held byte. */
	len += out_feed(&a, 1, "\xe2\x82", 2, out + len);
	len += out_feed(&a, 2, "Z", 1, out + len);
	/* A cut sequence at the end of the recording. */
	len += out_feed(&a, 3, "\xf0\x9f", 2, out + len);
	assert_true(len < sizeof(all));
	memcpy(all, out, len);
	len += asciicast_finish(&a, 4, all + len);
	events_parse(all, len, &ev);
	text = events_text(&ev, 'o');
	assert_string_equal(text, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
			    "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
			    "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e\xef\xbf\xbd"
			    "\xef\xbf\xbd\xef\xbf\xbd" "Z" "\xef\xbf\xbd\xef\xbf\xbd");
	free(text);
	events_free(&ev);
}

static uint32_t rng = 12345;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Any split of a stream gives the text of the whole (chars never split, repair the same). */
static void test_split_equals_whole(void **state)
{
	static const char alphabet[][5] = { "a", "\r", "\n", "\x1b", "\xc3\xa9", "\xe2\x82\xac",
					    "\xf0\x9f\x98\x80", "\x80", "\xe2\x82", "\xf0", "\"" };

	for (int round = 0; round < 200; round++) {
		char data[256], out[ASCIICAST_EVENTS_SIZE(256)], *whole, *split;
		static char all[64 * ASCIICAST_EVENTS_SIZE(256)];
		struct asciicast a;
		struct events ev;
		size_t len = 0, n, off = 0, alen = 0;

		while (len < 200) {
			const char *s = alphabet[rnd() % (sizeof(alphabet) / sizeof(alphabet[0]))];

			memcpy(data + len, s, strlen(s));
			len += strlen(s);
		}
		asciicast_init(&a, true);
		n = out_feed(&a, 0, data, len, out);
		n += asciicast_finish(&a, 0, out + n);
		events_parse(out, n, &ev);
		whole = events_text(&ev, 'o');
		events_free(&ev);

		asciicast_init(&a, true);
		while (off < len) {
			size_t k = 1 + rnd() % 7;

			if (k > len - off)
				k = len - off;
			alen += out_feed(&a, off, data + off, k, all + alen);
			off += k;
		}
		alen += asciicast_finish(&a, off, all + alen);
		events_parse(all, alen, &ev);
		split = events_text(&ev, 'o');
		events_free(&ev);
		assert_string_equal(split, whole);
		free(whole);
		free(split);
	}
}

static void test_is_prompt(void **state)
{
	static const char *const yes[] = { "password:", "password: ", "[sudo] password for alice: ",
					   "enter passphrase for key '/root/.ssh/id_ed25519': ",
					   "enter pin:", "pin:  ", "new password:" };
	static const char *const no[] = { "password", "login: ", "spinning:", "mapping: ",
					  "password: ok", "", ":", "passwords are nice" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!asciicast_is_prompt(yes[i], strlen(yes[i])))
			fail_msg("not a prompt: '%s'", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (asciicast_is_prompt(no[i], strlen(no[i])))
			fail_msg("a prompt: '%s'", no[i]);
}

/* Feed output (also to the prompt tracker, as the console does) then inputs; the events. */
static void redaction_run(bool redact, const char *output, const char *const *inputs,
			  struct events *ev)
{
	static char all[16384];
	char out[ASCIICAST_EVENTS_SIZE(256)];
	struct asciicast a;
	struct asciicast_prompt p;
	size_t len = 0, n;

	asciicast_init(&a, redact);
	asciicast_prompt_init(&p);
	asciicast_prompt_feed(&p, output, strlen(output));
	n = out_feed(&a, 0, output, strlen(output), out);
	memcpy(all, out, n);
	len = n;
	for (size_t i = 0; inputs[i]; i++) {
		if (inputs[i][0] == '>') { /* output in between */
			asciicast_prompt_feed(&p, inputs[i] + 1, strlen(inputs[i] + 1));
			n = out_feed(&a, i, inputs[i] + 1, strlen(inputs[i] + 1), out);
		} else
			n = in_feed(&a, i, &p, inputs[i], out);
		memcpy(all + len, out, n);
		len += n;
	}
	len += asciicast_finish(&a, 99, all + len);
	events_parse(all, len, ev);
}

static void test_redaction(void **state)
{
	struct events ev;
	char *in;

	/* One chunk with the line end: one "[redacted]" with the line end. */
	redaction_run(true, "login: root\r\nPassword: ", (const char *const[]){ "hunter2\r", NULL },
		      &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "[redacted]\r");
	free(in);
	events_free(&ev);

	/* Typed key by key, CR LF at the end, then a command typed in the open. */
	redaction_run(true, "Password: ", (const char *const[]){ "h", "u", "n", "t", "e", "r",
		      "\r\n", ">\r\n$ ", "ls\r", NULL }, &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "[redacted]\r\nls\r");
	assert_null(strstr(in, "hunter"));
	free(in);
	events_free(&ev);

	/* Coloured prompt, sudo's wording, the rest of the chunk after the line end is kept. */
	redaction_run(true, "\x1b[1m[sudo] Password for alice:\x1b[0m ",
		      (const char *const[]){ "s3cret\rwhoami\r", NULL }, &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "[redacted]\rwhoami\r");
	free(in);
	events_free(&ev);

	/* Echoed asterisks do not end the redaction; only the line end does. */
	redaction_run(true, "Enter PIN: ", (const char *const[]){ "1", ">*", "2", ">*", "\r", NULL },
		      &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "[redacted]\r");
	free(in);
	events_free(&ev);

	/* Unfinished escape sequences before it (CSI, OSC) do not hide the prompt. */
	redaction_run(true, "\x1b[1;\r\nPassword: ", (const char *const[]){ "pw\r", NULL }, &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "[redacted]\r");
	free(in);
	events_free(&ev);
	redaction_run(true, "\x1b]0;title\r\nPassword: ", (const char *const[]){ "pw\r", NULL },
		      &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "[redacted]\r");
	free(in);
	events_free(&ev);

	/* A prompt that more output followed is no prompt any more. */
	redaction_run(true, "Password: \r\nLogin incorrect\r\nlogin: ",
		      (const char *const[]){ "root\r", NULL }, &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "root\r");
	free(in);
	events_free(&ev);

	/* One prompt, one redacted line: typed on before the guest answered, the next
	 * line is recorded; a new prompt redacts again. */
	redaction_run(true, "Password: ", (const char *const[]){ "pw1\r", "ls\r", ">\r\nPIN: ",
		      "1234\r", NULL }, &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "[redacted]\rls\r[redacted]\r");
	free(in);
	events_free(&ev);

	/* A redacted line that never ended: still one "[redacted]" at the end. */
	redaction_run(true, "Password: ", (const char *const[]){ "half", NULL }, &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "[redacted]");
	free(in);
	events_free(&ev);

	/* Off: typed as is. */
	redaction_run(false, "Password: ", (const char *const[]){ "hunter2\r", NULL }, &ev);
	in = events_text(&ev, 'i');
	assert_string_equal(in, "hunter2\r");
	free(in);
	events_free(&ev);
}

/* The documented bound holds for the worst bytes (every one a control, escaped to 6). */
static void test_bounds(void **state)
{
	char data[300], *out = malloc(ASCIICAST_EVENTS_SIZE(300));
	struct asciicast_prompt p;
	struct asciicast a;
	size_t n;

	assert_non_null(out);
	memset(data, 0x01, sizeof(data));
	asciicast_init(&a, true);
	asciicast_prompt_init(&p);
	n = asciicast_input(&a, UINT64_MAX, &p, data, sizeof(data), out);
	assert_true(n <= ASCIICAST_EVENTS_SIZE(300));
	n = asciicast_output(&a, UINT64_MAX, "\xf0\x9f\x98", 3, out);
	assert_int_equal(n, 0); /* all held back */
	n = asciicast_output(&a, UINT64_MAX, "Password: ", 10, out);
	asciicast_prompt_feed(&p, "Password: ", 10);
	n = asciicast_input(&a, UINT64_MAX, &p, "\xf0\x9f", 2, out);
	n = asciicast_finish(&a, UINT64_MAX, out);
	assert_true(n <= ASCIICAST_EVENTS_SIZE(0));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_event_format),
		cmocka_unit_test(test_utf8_boundaries),
		cmocka_unit_test(test_output_more),
		cmocka_unit_test(test_utf8_repair),
		cmocka_unit_test(test_split_equals_whole),
		cmocka_unit_test(test_is_prompt),
		cmocka_unit_test(test_redaction),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
