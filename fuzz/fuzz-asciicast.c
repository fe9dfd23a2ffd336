/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the asciicast formatter (broker/asciicast.h).  Byte 0
 * chooses redaction (bit 0); the rest is a list of operations, each a kind
 * byte (o: output, O: output in two halves, the second continuing the first
 * event with asciicast_output_more(), i: input, m: marker, r: resize,
 * anything else: finish and start again) and a length byte, then that many
 * bytes of data.  Checks:
 *
 * - every call writes at most the documented ASCIICAST_EVENTS_SIZE(len):
 *   each call's buffer ends exactly at the end of an allocation, so ASan
 *   also catches a write past it;
 * - what is written is whole lines, each a JSON array [t, "x", "data"] that
 *   jansson accepts (so the data is valid UTF-8) with the kind it should be;
 * - with redaction, the bytes of an input line typed right after a prompt
 *   ("Password: " as output) never appear in any event.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "asciicast.h"
#include "fuzz-util.h"

#define FUZZ_CAST_SECRET "Zq7-secret-Zq7"

FUZZ_NO_COVERAGE
static void fuzz_check_lines(const char *buf, size_t n, bool secret_hidden)
{
	const char *p = buf, *end = buf + n;

	if (n > 0 && buf[n - 1] != '\n')
		abort();
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		json_t *j, *type;

		if (!nl)
			abort();
		j = json_loadb(p, (size_t)(nl - p), JSON_ALLOW_NUL, NULL);
		if (!j || !json_is_array(j) || json_array_size(j) != 3 ||
		    !json_is_number(json_array_get(j, 0)))
			abort();
		type = json_array_get(j, 1);
		if (!json_is_string(type) || json_string_length(type) != 1 ||
		    !strchr("oimr", json_string_value(type)[0]) ||
		    !json_is_string(json_array_get(j, 2)))
			abort();
		if (secret_hidden && strstr(json_string_value(json_array_get(j, 2)), FUZZ_CAST_SECRET))
			abort();
		json_decref(j);
		p = nl + 1;
	}
}

/* One call with its output buffer ending exactly at the documented bound. */
static size_t fuzz_call(struct asciicast *a, struct asciicast_prompt *p, uint8_t kind, uint64_t t,
			const uint8_t *d, size_t len)
{
	size_t cap = ASCIICAST_EVENTS_SIZE(len), n;
	char *out = malloc(cap), text[300];

	if (!out)
		return 0;
	switch (kind) {
	case 'o':
		asciicast_prompt_feed(p, d, len);
		n = asciicast_output(a, t, d, len, out);
		break;
	case 'O': {
		/* The first half's event continued by the second: still whole lines, one event. */
		size_t h = len / 2, cap2 = ASCIICAST_EVENTS_SIZE(h) + ASCIICAST_EVENTS_SIZE(len - h);
		char *two = malloc(cap2);

		n = 0;
		if (!two)
			break;
		asciicast_prompt_feed(p, d, len);
		n = asciicast_output(a, t, d, h, two);
		if (n > ASCIICAST_EVENTS_SIZE(h))
			abort();
		if (n >= ASCIICAST_CLOSE_LEN) {
			size_t k;

			if (memcmp(two + n - ASCIICAST_CLOSE_LEN, ASCIICAST_CLOSE, ASCIICAST_CLOSE_LEN))
				abort();
			n -= ASCIICAST_CLOSE_LEN;
			k = asciicast_output_more(a, d + h, len - h, two + n);
			if (k < ASCIICAST_CLOSE_LEN || k > ASCIICAST_EVENTS_SIZE(len - h))
				abort();
			n += k;
			if (memchr(two, '\n', n - 1))
				abort(); /* one event */
		} else
			n += asciicast_output(a, t, d + h, len - h, two + n);
		fuzz_check_lines(two, n, false);
		free(two);
		n = 0;
		break;
	}
	case 'i':
		n = asciicast_input(a, t, p, d, len, out);
		break;
	case 'm':
	case 'r':
		memcpy(text, d, len);
		text[len] = '\0';
		n = asciicast_event(t, (char)kind, text, out);
		break;
	default:
		n = asciicast_finish(a, t, out);
	}
	if (n > cap)
		abort();
	fuzz_check_lines(out, n, false);
	free(out);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct asciicast_prompt p;
	struct asciicast a;
	uint64_t t = 0;
	size_t i = 1;

	if (size == 0 || size > 64 * 1024)
		return 0;
	asciicast_init(&a, data[0] & 1);
	asciicast_prompt_init(&p);
	while (i + 2 <= size) {
		uint8_t kind = data[i], len = data[i + 1];

		i += 2;
		if (len > size - i)
			len = (uint8_t)(size - i);
		(void)fuzz_call(&a, &p, kind, t, data + i, len);
		i += len;
		t += (uint64_t)kind * 1000003;
	}
	(void)fuzz_call(&a, &p, 0, t, NULL, 0);

	/* A prompt, then the secret typed in pieces: never recorded (whatever came before). */
	if (data[0] & 1) {
		static const char *const keys[] = { "Zq7-sec", "ret-Z", "q7", "\r" };
		char *out = malloc(ASCIICAST_EVENTS_SIZE(16));
		size_t n;

		if (!out)
			return 0;
		asciicast_finish(&a, t, out);
		asciicast_prompt_feed(&p, "\r\nPassword: ", 12);
		n = asciicast_output(&a, t, "\r\nPassword: ", 12, out);
		fuzz_check_lines(out, n, false);
		for (size_t k = 0; k < 4; k++) {
			n = asciicast_input(&a, t, &p, keys[k], strlen(keys[k]), out);
			fuzz_check_lines(out, n, true);
			if (k < 3 && n != 0)
				abort(); /* nothing of the line before its end */
		}
		free(out);
	}
	return 0;
}
