/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the replay sanitiser (broker/sanitize.h).  Byte 0
 * seeds the chunk sizes; the rest is guest output.  It is sanitised whole
 * (one sanitize_feed() and sanitize_finish()) and in chunks, and:
 *
 * - the output holds no ESC or other C0 control except TAB, CR and LF, no
 *   DEL, and is valid UTF-8 (shortest form, no surrogates, <= U+10FFFF)
 *   without U+0080..U+009F;
 * - sanitising the output again gives it back unchanged (fixed point);
 * - the chunked output equals the whole one;
 * - every call writes at most len + SANITIZE_SLACK bytes (finish at most
 *   SANITIZE_SLACK): each call's output area ends exactly at the end of an
 *   allocation, so ASan also catches a write past the promised bound;
 * - input that is already clean (valid UTF-8 with no controls but TAB, CR
 *   and LF) passes unchanged;
 * - the sanitizer is reusable after sanitize_finish().
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"
#include "fuzz-util.h"

#define FUZZ_SANITIZE_MAX_INPUT (64u * 1024)

/*
 * Length of the valid UTF-8 character at s[0..n) that is clean text (not a
 * C0 control other than TAB/CR/LF, not DEL, not U+0080..U+009F), or 0.
 */
static size_t fuzz_clean_char(const uint8_t *s, size_t n)
{
	uint8_t b = s[0];
	uint32_t cp, min;
	size_t len;

	if (b < 0x80) {
		if (b == '\t' || b == '\r' || b == '\n')
			return 1;
		return b >= 0x20 && b != 0x7f ? 1 : 0;
	}
	if (b >= 0xc0 && b <= 0xdf) {
		len = 2;
		cp = b & 0x1f;
		min = 0x80;
	} else if (b >= 0xe0 && b <= 0xef) {
		len = 3;
		cp = b & 0x0f;
		min = 0x800;
	} else if (b >= 0xf0 && b <= 0xf7) {
		len = 4;
		cp = b & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return len;
}

FUZZ_NO_COVERAGE
static bool fuzz_is_clean(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t k = fuzz_clean_char(s + i, n - i);

		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/*
 * Sanitise in[0..len) into out (outcap bytes), in chunks when seed != 0.
 * scratch has scratch_size >= len + SANITIZE_SLACK bytes.  Returns the
 * output length.
 */
static size_t fuzz_sanitize(struct sanitizer *s, const uint8_t *in, size_t len, uint8_t seed,
			    uint8_t *scratch, size_t scratch_size, uint8_t *out, size_t outcap)
{
	static const size_t max_chunk[8] = { 1, 2, 3, 4, 7, 16, 100, 5000 };
	uint32_t state = (uint32_t)seed * 2654435761u + 1;
	size_t limit = max_chunk[seed & 7], off = 0, outlen = 0, n, w;

	while (off < len) {
		n = seed == 0 ? len - off : 1 + fuzz_next(&state) % limit;
		if (n > len - off)
			n = len - off;
		if (n + SANITIZE_SLACK > scratch_size)
			abort();
		w = sanitize_feed(s, in + off, n,
				  scratch + scratch_size - (n + SANITIZE_SLACK));
		if (w > n + SANITIZE_SLACK || w > outcap - outlen)
			abort();
		memcpy(out + outlen, scratch + scratch_size - (n + SANITIZE_SLACK), w);
		outlen += w;
		off += n;
	}
	w = sanitize_finish(s, scratch + scratch_size - SANITIZE_SLACK);
	if (w > SANITIZE_SLACK || w > outcap - outlen)
		abort();
	memcpy(out + outlen, scratch + scratch_size - SANITIZE_SLACK, w);
	outlen += w;
	/*
	 * Fed whole this is the header's bound for one feed plus finish; fed in
	 * chunks it follows from the chunked output being equal to the whole.
	 */
	if (outlen > len + 2 * SANITIZE_SLACK)
		abort();
	return outlen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *scratch = NULL, *whole = NULL, *chunked = NULL, *again = NULL, seed;
	size_t scratch_size, cap, nwhole, nchunked, nagain;
	struct sanitizer s;

	if (size == 0 || size > FUZZ_SANITIZE_MAX_INPUT)
		return 0;
	seed = data[0];
	data++;
	size--;

	/* the second pass sanitises up to size + 2 * SANITIZE_SLACK bytes */
	scratch_size = size + 3 * SANITIZE_SLACK;
	cap = size + 4 * SANITIZE_SLACK;
	scratch = malloc(scratch_size);
	whole = malloc(cap);
	chunked = malloc(cap);
	again = malloc(cap);
	if (!scratch || !whole || !chunked || !again)
		goto out;

	sanitize_init(&s);
	nwhole = fuzz_sanitize(&s, data, size, 0, scratch, scratch_size, whole, cap);
	if (!fuzz_is_clean(whole, nwhole))
		abort();
	if (fuzz_is_clean(data, size) && (nwhole != size || memcmp(whole, data, size) != 0))
		abort();

	/* s was reset by sanitize_finish(): reuse it */
	nagain = fuzz_sanitize(&s, whole, nwhole, 0, scratch, scratch_size, again, cap);
	if (nagain != nwhole || memcmp(again, whole, nwhole) != 0)
		abort();

	if (seed != 0) {
		sanitize_init(&s);
		nchunked = fuzz_sanitize(&s, data, size, seed, scratch, scratch_size, chunked,
					  cap);
		if (nchunked != nwhole || memcmp(chunked, whole, nwhole) != 0)
			abort();
	}
out:
	free(scratch);
	free(whole);
	free(chunked);
	free(again);
	return 0;
}
