/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the alert scanner (broker/alert.h).  Byte 0 seeds
 * the chunk sizes and the clock; the rest is guest output.  It goes through
 * a scanner with the default set plus two user alerts (one that matches
 * almost every line, so the rate limit is exercised), whole and in chunks:
 *
 * - every event's line is NUL-terminated at line_len <= ALERT_LINE_MAX and
 *   holds no ESC, no other C0 control and no DEL (what is matched is text);
 * - the alert named matches the line, and no earlier alert in the set does;
 * - bounded output: at most ALERT_RATE_BURST alerts per window of the
 *   injected clock, and raised + dropped is at most one per LF plus one per
 *   ALERT_LINE_MAX bytes;
 * - fed in chunks, the events (names, lines, counts) equal those fed whole.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "fuzz-util.h"

#define FUZZ_ALERT_MAX_INPUT (64u * 1024)
#define FUZZ_ALERT_EVENTS 64

struct fuzz_events {
	const struct alert_set *set;
	size_t n;
	uint32_t hash; /* of every event's name, line and suppressed count, in order */
};

FUZZ_NO_COVERAGE
static uint32_t fuzz_hash(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

FUZZ_NO_COVERAGE
static void fuzz_on_alert(void *userdata, const struct alert_event *ev)
{
	struct fuzz_events *e = userdata;
	const struct alert *first;

	if (ev->line_len > ALERT_LINE_MAX || ev->line_len == 0 || ev->line[ev->line_len] != '\0' ||
	    strlen(ev->line) != ev->line_len)
		abort();
	for (size_t i = 0; i < ev->line_len; i++) {
		uint8_t b = (uint8_t)ev->line[i];

		if (b < 0x20 || b == 0x7f)
			abort();
	}
	first = alert_set_match(e->set, ev->line);
	if (first != ev->alert)
		abort();
	e->n++;
	e->hash = fuzz_hash(e->hash, ev->alert->name, strlen(ev->alert->name));
	e->hash = fuzz_hash(e->hash, ev->line, ev->line_len + 1);
	e->hash = fuzz_hash(e->hash, &ev->suppressed, sizeof(ev->suppressed));
}

/* Feed in chunks (seed 0: whole) at a clock that moves by the chunk; returns the events. */
static struct fuzz_events fuzz_scan(const struct alert_set *set, const uint8_t *data,
				    size_t size, uint8_t seed, struct alert_scanner *sc)
{
	static const size_t max_chunk[8] = { 1, 2, 3, 5, 16, 100, 1500, 5000 };
	struct fuzz_events e = { .set = set, .hash = 2166136261u };
	uint32_t state = (uint32_t)seed * 2654435761u + 1;
	size_t off = 0;

	alert_scanner_init(sc);
	while (off < size) {
		size_t n = seed == 0 ? size - off : 1 + fuzz_next(&state) % max_chunk[seed & 7];

		if (n > size - off)
			n = size - off;
		/* One clock for the whole input: chunking must not change the windows. */
		if (alert_scanner_feed(sc, set, data + off, n, 7, fuzz_on_alert, &e) > n)
			abort();
		off += n;
	}
	return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct alert_set *set;
	struct alert_scanner sc;
	struct fuzz_events whole, chunked;
	size_t lf = 0, bound;
	uint8_t seed;

	if (size == 0 || size > FUZZ_ALERT_MAX_INPUT)
		return 0;
	if (!set) {
		/* Compiled once, as ttyhubd does. */
		if (alert_set_new(true, &set) < 0 || alert_set_add(set, "vowel=[aeiou]", NULL, 0) < 0 ||
		    alert_set_add(set, "oops=^Oops: [0-9a-f]+", NULL, 0) < 0)
			abort();
	}
	seed = data[0];
	data++;
	size--;

	whole = fuzz_scan(set, data, size, 0, &sc);
	for (size_t i = 0; i < size; i++)
		lf += data[i] == '\n';
	bound = lf + size / ALERT_LINE_MAX + 1;
	if (whole.n > ALERT_RATE_BURST || sc.raised != whole.n || sc.raised + sc.dropped > bound)
		abort();
	if (seed != 0) {
		chunked = fuzz_scan(set, data, size, seed, &sc);
		if (chunked.n != whole.n || chunked.hash != whole.hash)
			abort();
	}
	return 0;
}
