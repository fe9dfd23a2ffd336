/* SPDX-License-Identifier: MIT */
/*
 * Alerts (`--alert NAME=REGEX`): "tell me when a console says X".  Pure
 * module, no I/O: the console feeds it output and gets events back.
 *
 * An alert set is compiled once from "NAME=REGEX" specs (POSIX extended
 * regular expressions, REG_NOSUB: only "does it match" is asked) on top of
 * the built-in defaults (alert_defaults[]: panic, oops, bug, emergency).  A
 * spec whose NAME is already in the set replaces that alert in place, so a
 * user's "panic=..." overrides the default and a later spec the earlier one.
 *
 * A scanner is a console's state: a bounded line buffer and the rate limit.
 * Output is split on LF; CR, escape sequences (CSI, OSC and other strings,
 * two- and three-byte ESC sequences) and other control bytes are dropped
 * before matching, so colours and cursor moves cannot hide a word from a
 * regex.  Each line is matched against the alerts in order and raises at
 * most one alert: the first that matches.  A line longer than
 * ALERT_LINE_MAX is matched on its first ALERT_LINE_MAX bytes as soon as
 * they are there, and the rest is skipped up to the LF.  So the work per
 * byte is bounded: one state-machine step, and once per ALERT_LINE_MAX bytes
 * at most one regexec() per alert.  The set is not owned by the scanner: it
 * is passed to every feed, so a reload can swap it under live scanners.
 *
 * Rate limit per scanner: ALERT_RATE_BURST alerts per ALERT_RATE_WINDOW_USEC
 * window (the window starts at the first alert after the previous one
 * ended); matches beyond that are counted, and the next alert that is let
 * through carries the count (alert_event.suppressed: "N more alerts
 * suppressed").  The clock is the caller's (injected for tests).
 */
#pragma once

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALERT_NAME_MAX 32
#define ALERT_MAX 64
#define ALERT_LINE_MAX 1024
#define ALERT_RATE_BURST 5
#define ALERT_RATE_WINDOW_USEC (60 * UINT64_C(1000000))
/* Room for alert_set_add()'s error text. */
#define ALERT_ERROR_MAX 512

struct alert {
	char name[ALERT_NAME_MAX + 1];
	char *regex; /* owned: the source text, for messages */
	/*
	 * A regex without an ERE special character (the defaults: "Kernel
	 * panic", "Oops:") means its text anywhere in the line: matched with
	 * strstr(), many times cheaper per line than regexec().
	 */
	bool literal;
	bool builtin;
	regex_t re;
};

struct alert_set {
	struct alert alerts[ALERT_MAX];
	size_t n;
};

/* The built-in defaults, in matching order (NULL-terminated pairs). */
extern const char *const alert_defaults[][2];

/* A set holding the defaults (with_defaults) or nothing.  0 or -ENOMEM. */
int alert_set_new(bool with_defaults, struct alert_set **ret);
struct alert_set *alert_set_free(struct alert_set *set);
static inline void alert_set_freep(struct alert_set **set)
{
	alert_set_free(*set);
}
/*
 * Add "NAME=REGEX" (replacing the alert named NAME, if any).  Returns 0;
 * -EINVAL for a bad spec, -E2BIG when the set has ALERT_MAX alerts already,
 * -ENOMEM; on error err (size errsz, may be NULL) says why, naming the spec
 * (escaped) and, for a bad regex, regerror()'s text.
 */
int alert_set_add(struct alert_set *set, const char *spec, char *err, size_t errsz);
/* Whether spec would be accepted by alert_set_add() (compiled and thrown away). */
int alert_spec_check(const char *spec, char *err, size_t errsz);
/* The first alert matching line (NUL-terminated), or NULL. */
const struct alert *alert_set_match(const struct alert_set *set, const char *line);

enum alert_scan_state {
	ALERT_SCAN_TEXT,
	ALERT_SCAN_ESC,     /* after ESC */
	ALERT_SCAN_ESC_INT, /* ESC and intermediate bytes (ESC ( B) */
	ALERT_SCAN_CSI,     /* ESC [ ... up to a final byte */
	ALERT_SCAN_STRING,  /* OSC, DCS, APC, PM, SOS: up to BEL or ESC \ */
	ALERT_SCAN_STRING_ESC,
	ALERT_SCAN_SKIP,    /* the rest of an over-long line, up to LF */
};

struct alert_scanner {
	char line[ALERT_LINE_MAX + 1]; /* cleaned text of the current line, NUL room */
	size_t len;
	enum alert_scan_state state;
	uint64_t window_start; /* the rate limit's window, caller's clock */
	unsigned in_window;    /* alerts raised in it */
	unsigned suppressed;   /* matches dropped since the last alert raised */
	uint64_t raised, dropped; /* totals, for tests and the fuzzer */
};

struct alert_event {
	const struct alert *alert;
	const char *line; /* the cleaned line, NUL-terminated */
	size_t line_len;  /* <= ALERT_LINE_MAX */
	unsigned suppressed; /* matches the rate limit dropped before this one */
};

/* Called for every alert raised; must not feed the same scanner. */
typedef void (*alert_fn)(void *userdata, const struct alert_event *ev);

void alert_scanner_init(struct alert_scanner *s);
/*
 * Scan len bytes of output at now_usec (any monotonic clock) with set (NULL
 * or empty: only the line state is kept up to date).  Returns how many
 * alerts were raised (fn called that often).
 */
size_t alert_scanner_feed(struct alert_scanner *s, const struct alert_set *set,
			  const void *data, size_t len, uint64_t now_usec, alert_fn fn,
			  void *userdata);
